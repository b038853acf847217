#!/usr/bin/env bash
# The pc-x86_64 image (Debian's generic kernel, modules from the initramfs)
# the way a PC has its disk: UEFI (OVMF) + systemd-boot, once on SATA
# (AHCI) and once on NVMe, with an Intel e1000e NIC. Each boot must find
# its root slot, grow and format the blank data partition and mount it,
# and serve the console through the forwarded port.
# e2e-lock: image (builds images/out/ and its cache)
. "$(dirname "$0")/../lib.sh"
cd "$ROOT"
build_image pc-x86_64
for bus in ${BUSES:-sata nvme}; do
  disk=$OUT/pc-$bus.img
  cp --sparse=always "$IMG" "$disk"
  truncate -s +256M "$disk"
  on_exit "rm -f '$disk'"
  LOG=$OUT/serial-pc-$bus.log
  read -r WEB SSHP < <(free_ports 2)
  DISK=$bus NIC=e1000e FRESH_VARS=1 SERIAL_LOG=$LOG WEB_PORT=$WEB SSH_PORT=$SSHP \
    setsid images/run-qemu.sh "$disk" </dev/null >"$LOG.stdout" 2>&1 &
  QEMU=$!
  on_exit "kill -- -$QEMU 2>/dev/null"
  wait_for 500 grep -q "alpharen: ready" "$LOG" || { tail -40 "$LOG"; fail "$bus: boot did not reach ready"; }
  dev=$([ $bus = sata ] && echo sda || echo nvme0n1p)
  grep -q "slot a from /dev/${dev}2" "$LOG" || { grep alpharen: "$LOG"; fail "$bus: root not found on /dev/${dev}2"; }
  grep -Eq "data partition .* grown to" "$LOG" || { grep init: "$LOG"; fail "$bus: data partition not grown"; }
  grep -q "cannot mount the data partition" "$LOG" && { grep init: "$LOG"; fail "$bus: data partition not mounted"; }
  wait_for 300 curl -sfk --max-time 10 "https://127.0.0.1:$WEB/api/v1/health" -o /dev/null \
    || { tail -20 "$LOG"; fail "$bus: console not reachable through the e1000e NIC"; }
  kill -- -"$QEMU" 2>/dev/null; wait "$QEMU" 2>/dev/null || true
  pass "pc-x86_64 on $bus: root slot A, data grown and mounted, console up over e1000e"
done
