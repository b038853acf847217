#!/usr/bin/env bash
# Update install throughput and memory (docs/update.md, issue 18).
#   RUNS=3 SIZE_MIB=128 tests/bench/update.sh
# A squashfs of SIZE_MIB MiB of random files (mksquashfs) becomes the
# rootfs part of a signed bundle (images/bundle.sh). A `run --dev` node on
# a stand-in disk (ALPHAREN_UPDATE_TARGET, files under $BENCH_DIR, default
# /var/tmp: a real disk, not tmpfs) installs it RUNS times with `ctl
# system update FILE` (the file passed to the supervisor, which reads it)
# and RUNS times with `cat FILE | ctl system update -` (a pipe, as the
# ssh door's: the supervisor reads the pipe ctl passes), in bundle bytes
# per second from ctl's start to the installed answer: verification of
# every 4 KiB block (SHA-256, each byte hashed once: bundle format 2),
# writes (through the page cache, each range waited for and dropped
# from it 16 MiB behind the writes), the parts, record and entry fsynced;
# `dd bs=1M conv=fsync` writes the same squashfs onto the same file RUNS
# times, and so does `dd bs=1M oflag=direct conv=fsync` (which keeps
# the page cache out, as ours does), and `cat | dd bs=1M iflag=fullblock
# conv=fsync` (through a pipe, the peer of the piped install). All read
# from the page cache (each source read once first). Also: the supervisor's resident memory sampled every 50 ms
# during each install (peak over its idle RSS), and once more with a
# bundle twice the size, to show it does not grow with the bundle.
# Last, RAUC (Debian's `rauc`, if installed) side by side: `rauc bundle`
# of the same squashfs (time, size) and `rauc install` into a raw slot on
# the same disk, when its service can run here (private D-Bus, noop
# boot loader); what cannot run is said.
. "$(dirname "$0")/lib.sh"
for tool in mksquashfs minisign jq; do command -v $tool >/dev/null || fail "needs $tool (scripts/deps.sh)"; done
SIZE_MIB=${SIZE_MIB:-128}
W=$(mktemp -d "${BENCH_DIR:-/var/tmp}/alpharen-update-bench.XXXXXX")
chmod 755 "$W"  # the services run as their own users; else they exit and restart all through the bench
on_exit "rm -rf $W"
STATE=$W/state

# bundle W/out SIZE VERSION: a slot of a SIZE MiB squashfs, bundled.
bundle() {
  local out=$1 size=$2 slot=$1/slot-qemu-x86_64
  mkdir -p "$slot" "$out/src"
  for i in $(seq 1 "$size"); do head -c 1048576 /dev/urandom >"$out/src/f$i"; done
  mksquashfs "$out/src" "$slot/rootfs.squashfs" -noappend -quiet -no-progress >/dev/null || fail "mksquashfs"
  rm -rf "$out/src"
  head -c 8000000 /dev/urandom >"$slot/vmlinuz"
  head -c 2000000 /dev/urandom >"$slot/initrd.img"
  printf 'VERSION=%s\nBUILD_ID=bench\nPARTS="rootfs=rootfs.squashfs vmlinuz=vmlinuz initrd.img=initrd.img"\n' "$3" >"$slot/slot.env"
  [ -f "$W/update-dev.key" ] && cp "$W"/update-dev.* "$out/"
  IMAGES_OUT=$out "$ROOT/images/bundle.sh" qemu-x86_64 >"$out/bundle.log" 2>&1 || { cat "$out/bundle.log"; fail "images/bundle.sh"; }
  cp -n "$out"/update-dev.* "$W/"
}
bundle "$W/v2" "$SIZE_MIB" 0.2.0
bundle "$W/big" $((SIZE_MIB * 2)) 0.2.0
aru=$W/v2/alpharen-qemu-x86_64-0.2.0.aru
sq=$W/v2/slot-qemu-x86_64/rootfs.squashfs
big=$W/big/alpharen-qemu-x86_64-0.2.0.aru

disk=$W/disk
mkdir -p "$disk/esp/loader/entries" "$disk/esp/a" "$disk/esp/b" "$W/keys"
cp "$W/update-dev.pub" "$W/keys/"
# Written out once, as a partition is: a sparse file would make the first
# install (and only it) allocate its blocks.
for s in a b; do dd if=/dev/zero of="$disk/rootfs-$s" bs=1M count=$((SIZE_MIB * 2 + 64)) conv=fsync status=none || fail "stand-in rootfs-$s"; done
printf 'title ALPHA-REN slot a\nversion 1\nlinux /a/vmlinuz\ninitrd /a/initrd.img\noptions alpharen.slot=a\n' >"$disk/esp/loader/entries/alpharen-a.conf"
echo a >"$disk/booted"
printf 'VERSION_ID=0.1.0\nBUILD_ID=bench\nALPHAREN_BOARD=qemu-x86_64\n' >"$W/os-release"
ALPHAREN_UPDATE_TARGET=$disk ALPHAREN_UPDATE_KEYS=$W/keys ALPHAREN_OS_RELEASE=$W/os-release start_node "$STATE"
cat "$aru" "$big" "$sq" >/dev/null   # into the page cache, for both sides
# The bundles just made are on the same file system as the stand-in ESP,
# whose syncfs at an install's start would otherwise write them out (0.4 s
# charged to the first install; a node's ESP is a file system of its own).
sync

# secs_since T0: seconds from T0 (date +%s.%N) to now. mib_per_s BYTES
# SECS: MiB/s. rate_since BYTES T0: MiB/s of BYTES from T0 to now.
secs_since() { python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$1" "$(date +%s.%N)"; }
mib_per_s() { python3 -c "import sys; print(int(sys.argv[1]) / float(sys.argv[2]) / 1048576)" "$1" "$2"; }
rate_since() { mib_per_s "$1" "$(secs_since "$2")"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$NODE_PID/status"; }
# install FILE [-]: one install of FILE (passed to the supervisor open),
# or with "-" of FILE's bytes piped into standard input (as from the ssh
# door); sets SECS and PEAK_KIB (supervisor RSS above idle).
install() {
  local idle; idle=$(rss_kib)
  : >"$W/rss"
  ( while :; do rss_kib >>"$W/rss"; sleep 0.05; done ) &
  local sampler=$! t0; t0=$(date +%s.%N)
  if [ "${2:-}" = - ]; then
    # shellcheck disable=SC2002 # a pipe, as from the ssh door
    cat "$1" | ctl --json system update - >"$W/install.json" 2>"$W/install.err" || { kill "$sampler"; cat "$W/install.err"; fail "install of $1 from a pipe"; }
  else
    ctl --json system update "$1" >"$W/install.json" 2>"$W/install.err" || { kill "$sampler"; cat "$W/install.err"; fail "install of $1"; }
  fi
  SECS=$(secs_since "$t0")
  kill "$sampler"; wait "$sampler" 2>/dev/null || true
  PEAK_KIB=$(( $(sort -n "$W/rss" | tail -n 1) - idle ))
}
ours=(); piped=(); dds=(); ddds=(); ddps=(); peaks=()
asz=$(stat -c %s "$aru"); ssz=$(stat -c %s "$sq")
mibs() { mib_per_s "$asz" "$SECS"; }
for _ in $(seq 1 "$RUNS"); do
  install "$aru"
  ours+=("$(mibs)")
  peaks+=("$PEAK_KIB")
  install "$aru" -
  piped+=("$(mibs)")
  peaks+=("$PEAK_KIB")
  for flags in "" oflag=direct; do
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086 # no flags, or one
    dd if="$sq" of="$disk/rootfs-b" bs=1M conv=fsync,notrunc $flags status=none || fail "dd $flags"
    rate=$(rate_since "$ssz" "$t0")
    if [ -z "$flags" ]; then dds+=("$rate"); else ddds+=("$rate"); fi
  done
  # The pipe's peer: dd taking the squashfs through a pipe too.
  t0=$(date +%s.%N)
  cat "$sq" | dd of="$disk/rootfs-b" bs=1M iflag=fullblock conv=fsync,notrunc status=none || fail "dd from a pipe"
  ddps+=("$(rate_since "$ssz" "$t0")")
done
# What each leaves of the new system in the page cache (fincore: resident
# bytes of the slot's file).
cached() { fincore --bytes --noheadings --output RES "$disk/rootfs-b" || fail "fincore"; }
install "$aru"
ours_cached=$(cached)
dd if="$sq" of="$disk/rootfs-b" bs=1M conv=fsync,notrunc status=none || fail "dd"
dd_cached=$(cached)
install "$big"
big_peak=$PEAK_KIB
echo "bundle $((asz / 1048576)) MiB (squashfs $((ssz / 1048576)) MiB + boot files 10 MB), disk files under ${BENCH_DIR:-/var/tmp}"
echo "install (ctl system update FILE, the file passed to the supervisor: every block's SHA-256 checked before it is written, the page cache dropped behind the writes, parts, record and entry fsynced), MiB/s of bundle: $(stats "${ours[@]}")"
echo "install from a pipe (cat FILE | ctl system update -, as over ssh; the supervisor reads the pipe), MiB/s of bundle: $(stats "${piped[@]}")"
echo "dd bs=1M conv=fsync of the squashfs, MiB/s:    $(stats "${dds[@]}")"
echo "dd bs=1M oflag=direct conv=fsync, MiB/s:  $(stats "${ddds[@]}")"
echo "ratio install/dd (medians): FILE $(ratio "$(median "${ours[@]}")" "$(median "${dds[@]}")"), pipe $(ratio "$(median "${piped[@]}")" "$(median "${dds[@]}")")"
echo "dd from a pipe (cat squashfs | dd bs=1M iflag=fullblock conv=fsync), MiB/s: $(stats "${ddps[@]}")"
echo "ratio pipe install / dd from a pipe (medians): $(ratio "$(median "${piped[@]}")" "$(median "${ddps[@]}")")"
echo "ratio install/dd oflag=direct (medians): FILE $(ratio "$(median "${ours[@]}")" "$(median "${ddds[@]}")"), pipe $(ratio "$(median "${piped[@]}")" "$(median "${ddds[@]}")")"
echo "slot's bytes left in the page cache after one install: ours $ours_cached, dd conv=fsync $dd_cached (of $ssz)"
echo "supervisor RSS above idle while installing, KiB: $(stats "${peaks[@]}"); with a bundle twice the size: $big_peak"

# --- RAUC side by side
if ! command -v rauc >/dev/null; then
  echo "RAUC: not installed (apt-get install rauc), not compared"
  exit 0
fi
R=$W/rauc; mkdir -p "$R/content"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$R/key.pem" -out "$R/cert.pem" -subj /CN=bench -days 2 >/dev/null 2>&1 || fail "openssl"
ln "$sq" "$R/content/rootfs.squashfs"
printf '[update]\ncompatible=alpharen-bench\nversion=0.2.0\n[image.rootfs]\nfilename=rootfs.squashfs\n' >"$R/content/manifest.raucm"
rb=(); ab=()
for i in $(seq 1 "$RUNS"); do
  rm -f "$R/b.raucb"
  t0=$(date +%s.%N)
  rauc bundle --cert="$R/cert.pem" --key="$R/key.pem" "$R/content" "$R/b.raucb" >"$R/bundle.log" 2>&1 || { cat "$R/bundle.log"; fail "rauc bundle"; }
  rb+=("$(secs_since "$t0")")
  rm -f "$W/ours.aru"
  t0=$(date +%s.%N)
  IMAGES_OUT=$W/v2 "$ROOT/images/bundle.sh" qemu-x86_64 >/dev/null 2>&1 || fail "images/bundle.sh"
  ab+=("$(secs_since "$t0")")
done
echo "bundle size: ours $asz bytes, RAUC (plain) $(stat -c %s "$R/b.raucb") bytes (squashfs $ssz; ours also carries 10 MB of boot files)"
echo "make the bundle, s: ours (images/bundle.sh: manifest, sign, pack, verify) $(stats "${ab[@]}"); rauc bundle $(stats "${rb[@]}")"

# rauc install needs its service on the system bus: a private bus here.
cat >"$R/bus.conf" <<XML
<busconfig><type>system</type><listen>unix:path=$R/bus</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*"/><allow receive_sender="*"/></policy></busconfig>
XML
dbus-daemon --config-file="$R/bus.conf" --fork --print-pid >"$R/bus.pid" 2>"$R/bus.err" || { echo "RAUC install: no private D-Bus here ($(cat "$R/bus.err")), not compared"; exit 0; }
on_exit "kill $(cat "$R/bus.pid") 2>/dev/null"
export DBUS_SYSTEM_BUS_ADDRESS=unix:path=$R/bus
printf '[system]\ncompatible=alpharen-bench\nbootloader=noop\ndata-directory=%s/data\n\n[keyring]\npath=%s/cert.pem\n\n[slot.rootfs.0]\ndevice=%s/rootfs-a\ntype=raw\nbootname=A\n\n[slot.rootfs.1]\ndevice=%s/rootfs-b\ntype=raw\nbootname=B\n' \
  "$R" "$R" "$disk" "$disk" >"$R/system.conf"
mkdir -p "$R/data"
rauc service --conf="$R/system.conf" --override-boot-slot=A >"$R/service.log" 2>&1 &
on_exit "kill $! 2>/dev/null"
wait_for 10 rauc status || { echo "RAUC install: its service did not come up here: $(tail -3 "$R/service.log")"; exit 0; }
ri=()
for _ in $(seq 1 "$RUNS"); do
  t0=$(date +%s.%N)
  if ! timeout 600 rauc install "$R/b.raucb" >"$R/install.log" 2>&1; then
    echo "RAUC install: failed here: $(tail -3 "$R/install.log" | tr '\n' ' ')"; exit 0
  fi
  ri+=("$(rate_since "$(stat -c %s "$R/b.raucb")" "$t0")")
done
echo "rauc install, MiB/s of bundle: $(stats "${ri[@]}")"
echo "ratio ours/rauc install (medians): $(ratio "$(median "${ours[@]}")" "$(median "${ri[@]}")")"
