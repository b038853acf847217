#!/usr/bin/env bash
# Offline validation of the BR2_EXTERNAL tree against a Buildroot 2026.05.1
# source tree: every defconfig resolves, `make show-info` parses every
# package, `utils/check-package` accepts every file of buildroot/
# (defconfigs included: they must force hash checking), and the resolved
# .config still holds our options (Kconfig silently drops unknown ones).
# The post-image step runs on stand-in inputs with or without a Buildroot
# tree: the Raspberry Pi disk and its update slot always (a signed bundle
# of that slot made by images/bundle.sh when an alpharen binary is built),
# the x86 disk once images/build.sh has made its parts.
#   Usage: tests/buildroot-check.sh [BUILDROOT_DIR]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BR=${1:-${BUILDROOT_DIR:-}}
if [ -z "$BR" ] || [ ! -f "$BR/Makefile" ]; then
  echo "skip defconfig and check-package checks: give the path of a Buildroot 2026.05.1 tree (tests/buildroot-check.sh BUILDROOT_DIR)"
  BR=
else
  grep -q "^export BR2_VERSION := 2026.05.1$" "$BR/Makefile" || echo "warning: $BR is not Buildroot 2026.05.1"
fi
EXT=$ROOT/buildroot
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
status=0
for cfg in "$EXT"/configs/*_defconfig; do
  [ -n "$BR" ] || break
  name=$(basename "$cfg")
  out=$work/${name%_defconfig}
  if ! make -s -C "$BR" BR2_EXTERNAL="$EXT" O="$out" "$name" >"$out.log" 2>&1; then
    echo "FAIL $name: defconfig"; tail -20 "$out.log"; status=1; continue
  fi
  if ! make -s -C "$BR" O="$out" show-info >"$out.info" 2>"$out.err"; then
    echo "FAIL $name: show-info"; tail -20 "$out.err"; status=1; continue
  fi
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert "alpharen" in d, "alpharen package missing"' "$out.info" \
    || { echo "FAIL $name: alpharen not in show-info"; status=1; continue; }
  missing=$(grep -v '^#' "$cfg" | grep '=' | while IFS= read -r line; do
    grep -qxF "$line" "$out/.config" || echo "  $line"; done)
  if [ -n "$missing" ]; then echo "FAIL $name: options dropped by Kconfig:"; echo "$missing"; status=1; continue; fi
  echo "ok $name"
done
# post-image with stand-in inputs (Debian's systemd-boot, taken out of the
# .deb the way package/alpharen-sdboot does, any kernel, our squashfs): the
# x86 disk has the four partitions and boot-counted entries that mount the
# slot by partition name; the Raspberry Pi disk is checked below.
deb=$(ls "$ROOT"/images/out/cache/systemd-boot-efi_*.deb 2>/dev/null | head -n 1 || true)
sq=$ROOT/images/out/work-qemu-x86_64/input/rootfs.squashfs
# post_image BOARD: the post-image step on the stand-in inputs in $bin.
post_image() {
  BR2_EXTERNAL_ALPHAREN_PATH=$EXT BUILD_DIR=$work/build TARGET_DIR=$work/target \
    "$EXT/board/post-image.sh" "$bin" "$1" >"$work/post-image-$1.log" 2>&1 && return 0
  echo "FAIL post-image $1"; tail -20 "$work/post-image-$1.log"; status=1; return 1
}
# table IMG EXPR: a Python expression over the partition table `t` of IMG.
table() { sfdisk -J "$1" | python3 -c 'import json,sys; t=json.load(sys.stdin)["partitiontable"]; print(eval(sys.argv[1]))' "$2"; }
# at IMG N: the byte offset of the Nth partition (from 0), for mtools.
at() { table "$1" "t['partitions'][$2]['start'] * 512"; }
if [ -n "$deb" ] && [ -f "$sq" ]; then
  bin=$work/images; mkdir -p "$bin" "$work/build" "$work/target" "$work/sd"
  (cd "$work/sd" && ar x "$deb" data.tar.xz && tar -xJf data.tar.xz ./usr/lib/systemd/boot/efi/systemd-bootx64.efi)
  cp "$work/sd/usr/lib/systemd/boot/efi/systemd-bootx64.efi" "$bin/"
  cp "$sq" "$bin/rootfs.squashfs"
  head -c 1M /dev/urandom > "$bin/bzImage"
  if post_image qemu-x86_64; then
    img=$bin/alpharen-qemu-x86_64.img
    names=$(table "$img" "' '.join(p['name'] for p in t['partitions'])")
    esp=$(at "$img" 0)
    entry=$(mtype -i "$img@@$esp" ::loader/entries/alpharen-b+3.conf 2>/dev/null || true)
    if [ "$names" = "esp rootfs-a rootfs-b data" ] && mdir -i "$img@@$esp" ::EFI/BOOT/BOOTX64.EFI >/dev/null 2>&1 \
        && grep -q "root=PARTLABEL=rootfs-b .*alpharen.slot=b" <<<"$entry" && ! grep -q initrd <<<"$entry"; then
      echo "ok post-image (stand-in inputs): $names"
    else
      echo "FAIL post-image: partitions '$names', entry B: $entry"; status=1
    fi
  fi
  rm -rf "$bin"
else
  echo "skip x86 post-image check: build the image once first (images/build.sh) for its parts"
fi
# rpi4-64: stand-in firmware, kernel, device tree and squashfs; the MBR
# disk has autoboot.txt on partition 1 and per-slot cmdline.txt naming the
# root, and the update slot beside it holds the rootfs and every boot file
# but cmdline.txt as bundle parts.
bin=$work/images; mkdir -p "$bin/rpi-firmware/overlays" "$work/build" "$work/target"
cp "$EXT/board/rpi4-64/config.txt" "$bin/rpi-firmware/"
for f in rpi-firmware/start4.elf rpi-firmware/fixup4.dat rpi-firmware/overlays/disable-bt.dtbo Image bcm2711-rpi-4-b.dtb rootfs.squashfs; do
  head -c 64k /dev/urandom > "$bin/$f"
done
if post_image rpi4-64; then
  img=$bin/alpharen-rpi4-64.img
  layout=$(table "$img" "' '.join([t['label'], t['id']] + [p['type'] for p in t['partitions']])")
  autoboot=$(mtype -i "$img@@$(at "$img" 0)" ::autoboot.txt 2>/dev/null || true)
  cmd_b=$(mtype -i "$img@@$(at "$img" 2)" ::cmdline.txt 2>/dev/null || true)
  kernel_b=$(mtype -i "$img@@$(at "$img" 2)" ::kernel8.img 2>/dev/null | cmp - "$bin/Image" && echo same || true)
  if [ "$layout" = "dos 0x41524e34 c c c f 83 83 83" ] && grep -qx 'boot_partition=3' <<<"$autoboot" \
      && mdir -i "$img@@$(at "$img" 2)" ::start4.elf >/dev/null 2>&1 && [ "$kernel_b" = same ] \
      && grep -q 'root=PARTUUID=41524e34-06 .*alpharen.slot=b' <<<"$cmd_b"; then
    echo "ok post-image rpi4-64 (stand-in inputs): $layout"
  else
    echo "FAIL post-image rpi4-64: layout '$layout', autoboot: $autoboot, slot B cmdline: $cmd_b, kernel8.img: $kernel_b"; status=1
  fi
  slot=$bin/slot-rpi4-64
  # shellcheck source=/dev/null
  parts=$(. "$slot/slot.env" && echo "$PARTS")
  want="rootfs=rootfs.squashfs bcm2711-rpi-4-b.dtb=bcm2711-rpi-4-b.dtb config.txt=config.txt fixup4.dat=fixup4.dat kernel8.img=kernel8.img overlays..disable-bt.dtbo=overlays..disable-bt.dtbo start4.elf=start4.elf"
  same=yes
  for p in $want; do f=${p#*=}; src=${f//..//}; [ "$f" = rootfs.squashfs ] && src=../rootfs.squashfs; [ "$f" = kernel8.img ] && src=../Image
    cmp -s "$slot/$f" "$bin/rpi-firmware/$src" 2>/dev/null || cmp -s "$slot/$f" "$bin/${src#../}" 2>/dev/null || same="no ($f)"; done
  if [ "$parts" = "$want" ] && [ "$same" = yes ] && [ ! -e "$slot/cmdline.txt" ]; then
    echo "ok update slot rpi4-64: $parts"
  else
    echo "FAIL update slot rpi4-64: parts '$parts' (want '$want'), same files: $same"; status=1
  fi
  alpharen=${ALPHAREN_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/alpharen}
  if [ -x "$alpharen" ] && command -v minisign >/dev/null; then
    if IMAGES_OUT=$work/out SLOT_DIR=$slot ALPHAREN_BIN=$alpharen "$ROOT/images/bundle.sh" rpi4-64 >"$work/bundle.log" 2>&1; then
      aru=$(ls "$work"/out/alpharen-rpi4-64-*.aru)
      if verified=$("$alpharen" bundle verify --key "$work/out/update-dev.pub" --board rpi4-64 --running 0 "$aru" 2>&1) \
          && jq -e '.board == "rpi4-64" and ([.parts[].name] == ["rootfs","bcm2711-rpi-4-b.dtb","config.txt","fixup4.dat","kernel8.img","overlays..disable-bt.dtbo","start4.elf"])' \
          "$work/out/bundle-rpi4-64/manifest.json" >/dev/null; then
        echo "ok bundle rpi4-64: $(basename "$aru") verified for a rpi4-64 node: ${verified//$'\n'/ }"
      else
        echo "FAIL bundle rpi4-64: $verified; manifest: $(jq -c '[.board, [.parts[].name]]' "$work/out/bundle-rpi4-64/manifest.json")"; status=1
      fi
    else
      echo "FAIL bundle rpi4-64:"; tail -5 "$work/bundle.log"; status=1
    fi
  else
    echo "skip bundle rpi4-64: no alpharen binary ($alpharen) or no minisign"
  fi
fi
rm -rf "$bin"
if [ -z "$BR" ]; then
  :
elif (cd "$EXT" && find . \( -type f -o -type l \) -printf '%P\0' | sort -z \
    | xargs -0 /usr/bin/python3 "$BR/utils/check-package" -b); then
  echo "ok check-package"
else
  echo "FAIL check-package"; status=1
fi
exit $status
