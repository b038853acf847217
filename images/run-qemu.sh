#!/usr/bin/env bash
# Boots a node image in QEMU: UEFI (OVMF), KVM when usable else TCG, serial
# console on this terminal (and in images/out/serial.log), host ports
# 8443 -> 443 and 2222 -> 22 on 127.0.0.1. Prints the console URL and the
# setup code as soon as the node shows them.
#   Usage: images/run-qemu.sh [IMAGE]   (Ctrl-A X quits QEMU)
# DISK=sata|nvme attaches the disk the way a PC has it (default virtio);
# NIC=e1000e (or another QEMU model) replaces virtio-net-pci.
# A virtio-rng device seeds the kernel's random pool at power-on (OVMF's
# EFI RNG protocol and the virtio_rng module): TCG's CPU has no RDRAND.
# The UEFI variables live beside the image (IMAGE.OVMF_VARS.fd), one file
# per image, so VMs of different images can run at once; FRESH_VARS=1
# starts from OVMF's defaults (a boot entry left from another disk would
# stop OVMF in its shell).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
IMG=${1:-$ROOT/images/out/alpharen-qemu-x86_64.img}
OUT=$(dirname "$IMG")
LOG=${SERIAL_LOG:-$OUT/serial.log}
[ -f "$IMG" ] || { echo "no image at $IMG: run images/build.sh first" >&2; exit 1; }
vars=${IMG%.img}.OVMF_VARS.fd
[ "${FRESH_VARS:-}" != 1 ] && [ -f "$vars" ] || cp /usr/share/OVMF/OVMF_VARS_4M.fd "$vars"
# KVM only if it really runs a kernel: nested or odd hosts expose a
# /dev/kvm that fails at the first instruction. The answer is cached.
accel=tcg
if [ -w /dev/kvm ]; then
  cache=$ROOT/images/out/accel
  if [ ! -f "$cache" ]; then
    kernel=$(ls "$ROOT"/images/out/work-*/input/vmlinuz 2>/dev/null | head -n 1 || true)
    probe=$ROOT/images/out/kvm-probe.log; : > "$probe"
    if [ -n "$kernel" ]; then
      timeout 10 qemu-system-x86_64 -machine q35,accel=kvm -m 256 -kernel "$kernel" -append "console=ttyS0 panic=-1" \
        -display none -monitor none -serial file:"$probe" -no-reboot >/dev/null 2>&1 || true
    fi
    if grep -q "Linux version" "$probe"; then echo kvm > "$cache"; else echo tcg > "$cache"; fi
  fi
  accel=$(cat "$cache")
fi
case ${DISK:-virtio} in
  virtio) disk=(-drive file="$IMG",if=virtio,format=raw) ;;
  sata) disk=(-drive file="$IMG",if=none,id=d0,format=raw -device ide-hd,drive=d0,bus=ide.0) ;;
  nvme) disk=(-drive file="$IMG",if=none,id=d0,format=raw -device nvme,drive=d0,serial=alpharen0) ;;
  *) echo "DISK must be virtio, sata or nvme" >&2; exit 2 ;;
esac
echo "QEMU with $accel; serial console below (Ctrl-A X quits)" >&2
: > "$LOG"
(
  for _ in $(seq 1 1200); do
    code=$(sed -n 's/.*setup code \([A-Z0-9-]*\).*/\1/p' "$LOG" | tail -n 1)
    if [ -n "$code" ]; then
      printf '\n\n=== ALPHA-REN console: https://127.0.0.1:%s/   setup code: %s   (ssh: ssh -p %s admin@127.0.0.1) ===\n\n' \
        "${WEB_PORT:-8443}" "$code" "${SSH_PORT:-2222}" >&2
      exit 0
    fi
    grep -q "alpharen: ready" "$LOG" 2>/dev/null && grep -q "setup complete\|no setup" "$LOG" && exit 0
    sleep 0.5
  done
) &
exec qemu-system-x86_64 -machine q35,accel=$accel -m 512 -smp 2 \
  -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
  -drive if=pflash,format=raw,file="$vars" \
  "${disk[@]}" \
  -netdev user,id=n0,hostfwd=tcp:127.0.0.1:${WEB_PORT:-8443}-:443,hostfwd=tcp:127.0.0.1:${SSH_PORT:-2222}-:22 \
  -device "${NIC:-virtio-net-pci}",netdev=n0 \
  -device virtio-rng-pci \
  -chardev stdio,id=s0,logfile="$LOG",signal=on -serial chardev:s0 \
  -display none -monitor none ${QEMU_EXTRA:-}
