#!/usr/bin/env bash
# Boot time to "ready" of the node image, against the same kernel, loader
# and QEMU settings booting a busybox initramfs to a shell prompt (the
# reference in PEERS.md). Same run, same disk layout: the reference disk is
# ours with slot A's initramfs replaced. RUNS boots of each: medians,
# spread, ratio of the medians. Also reports image sizes.
#   RUNS=2 tests/bench/boot.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
IMG=images/out/alpharen-qemu-x86_64.img
[ -f "$IMG" ] || images/build.sh qemu-x86_64 >/dev/null   # from $ALPHAREN_BIN, the release binary
work=$(mktemp -d)
on_exit "rm -rf $work"   # each QEMU is stopped by time_to

# Reference initramfs: busybox, a prompt marker, nothing else.
ref=$work/initramfs; mkdir -p "$ref"/{bin,proc,dev}
cp images/out/work-qemu-x86_64/boot/bin/busybox "$ref/bin/busybox"
cat > "$ref/init" <<'SH'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
echo "BUSYBOX-SHELL-READY"
exec sh
SH
chmod +x "$ref/init"
(cd "$ref" && find . | cpio --quiet -o -H newc | gzip -9) > "$work/ref-initrd.img"
cp --sparse=always "$IMG" "$work/ref.img"
esp_start=$(sfdisk -J "$work/ref.img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["partitiontable"]["partitions"][0]["start"]*512)')
mcopy -o -i "$work/ref.img@@$esp_start" "$work/ref-initrd.img" ::a/initrd.img

# time_to DISK MARKER -> "TOTAL AFTER": seconds from QEMU start to MARKER on
# serial, and from the node's root being mounted (the initramfs's "slot ...
# from" line; "-" for the reference) to MARKER: the part that is ours alone,
# free of the firmware's and kernel's spread.
time_to() {
  local disk=$1 marker=$2 log=$work/serial-$RANDOM.log ts=
  local web ssh; read -r web ssh < <(free_ports 2)
  local t0; t0=$(date +%s.%N)
  SERIAL_LOG=$log WEB_PORT=$web SSH_PORT=$ssh \
    setsid images/run-qemu.sh "$disk" </dev/null >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 1 6000); do
    [ -n "$ts" ] || ! grep -q "alpharen: slot . from" "$log" 2>/dev/null || ts=$(date +%s.%N)
    grep -q "$marker" "$log" 2>/dev/null && break
    sleep 0.1
  done
  local t1; t1=$(date +%s.%N)
  kill -- -"$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  grep -q "$marker" "$log" || { echo "no '$marker' within 600 s" >&2; return 1; }
  echo "$(echo "$t1 - $t0" | bc) $([ -n "$ts" ] && echo "$t1 - $ts" | bc || echo -)"
}
# Every boot after the first is what a node does day to day; the first one
# also grows and formats the data partition, reported on its own.
ours=(); first=(); theirs=(); after=()
for i in $(seq 1 "$RUNS"); do
  cp --sparse=always "$IMG" "$work/ours.img"
  # Assigned first, so that a boot that never gets there stops the bench (set -e).
  t=$(time_to "$work/ours.img" "alpharen: ready"); first+=("${t% *}")
  t=$(time_to "$work/ours.img" "alpharen: ready"); ours+=("${t% *}"); after+=("${t#* }")
  t=$(time_to "$work/ref.img" "BUSYBOX-SHELL-READY"); theirs+=("${t% *}")
done
echo "accelerator: $(cat images/out/accel 2>/dev/null || echo tcg)"
a=$(stats "${first[@]}"); echo "first boot to ready (s): $a"
a=$(stats "${ours[@]}"); echo "node image to ready (s): $a"
a=$(stats "${after[@]}"); echo "  of which root mounted -> ready (s): $a"
a=$(stats "${theirs[@]}"); echo "busybox shell (s):       $a"
a=$(ratio "$(median "${ours[@]}")" "$(median "${theirs[@]}")"); echo "ratio node/busybox (medians): $a (goal <= 1.2, issue #24)"
echo "image: $(du -h --apparent-size "$IMG" | cut -f1) apparent, $(du -h "$IMG" | cut -f1) allocated, $(zstd -q -c "$IMG" | wc -c | numfmt --to=iec) zstd"
echo "rootfs squashfs: $(du -h images/out/work-qemu-x86_64/input/rootfs.squashfs | cut -f1); initramfs: $(du -h images/out/work-qemu-x86_64/input/initrd.img | cut -f1)"
