#!/usr/bin/env bash
# Buildroot post-image step: the A/B disk of the board.
# x86-64 (qemu-x86_64, pc-x86_64): the same GPT layout as images/build.sh
# (../../board/genimage.cfg.in): ESP with systemd-boot (package
# alpharen-sdboot) and boot-counted entries for slots A and B, the squashfs
# root twice, and the blank data partition. The board kernels have their
# disk and squashfs drivers built in, so there is no initramfs: the
# entries mount the slot with root=PARTLABEL=rootfs-<slot>.
# rpi4-64: the MBR layout of ../../board/rpi4-64/genimage.cfg.in, one FAT
# boot partition per slot (firmware, kernel, device tree, a cmdline.txt
# naming the slot's root by PARTUUID) and autoboot.txt for the firmware's
# tryboot A/B switch.
# Called as post-image.sh BINARIES_DIR BOARD.
set -euo pipefail
BINARIES_DIR=$1
BOARD=$2
REPO="$BR2_EXTERNAL_ALPHAREN_PATH/.."
GENIMAGE_TMP="$BUILD_DIR/genimage.tmp"
[ -f "$REPO/board/$BOARD/board.env" ] || { echo "post-image: unknown board $BOARD (no board/$BOARD/board.env)" >&2; exit 1; }
# shellcheck source=/dev/null
. "$REPO/board/$BOARD/board.env"
genimage_run() { # ROOTPATH
  rm -rf "$GENIMAGE_TMP"
  genimage --rootpath "$1" --tmppath "$GENIMAGE_TMP" \
    --inputpath "$BINARIES_DIR" --outputpath "$BINARIES_DIR" --config "$BINARIES_DIR/genimage.cfg"
}
if [ "$BOARD" = rpi4-64 ]; then
  fw=$BINARIES_DIR/rpi-firmware
  kernel=$(sed -n 's/^kernel=//p' "$fw/config.txt")
  [ -f "$BINARIES_DIR/$kernel" ] || { echo "post-image: kernel $kernel (config.txt) missing in $BINARIES_DIR" >&2; exit 1; }
  parts=$(mktemp -d); trap 'rm -rf "$parts"' EXIT
  for slot in a b; do
    n=$([ $slot = a ] && echo 5 || echo 6)
    mkdir -p "$parts/boot-$slot"
    (cd "$fw" && find . -mindepth 1 -maxdepth 1 ! -name cmdline.txt -exec cp -r {} "$parts/boot-$slot/" \;)
    cp "$BINARIES_DIR/$kernel" "$BINARIES_DIR"/*.dtb "$parts/boot-$slot/"
    printf '%s root=PARTUUID=%08x-%02d rootfstype=squashfs ro rootwait alpharen.slot=%s\n' \
      "$CMDLINE" "$DISK_SIGNATURE" "$n" "$slot" > "$parts/boot-$slot/cmdline.txt"
  done
  printf '[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n' > "$BINARIES_DIR/autoboot.txt"
  sed -e "s/@IMAGE@/alpharen-$BOARD.img/" -e "s/@SIGNATURE@/$DISK_SIGNATURE/" \
    "$REPO/board/rpi4-64/genimage.cfg.in" > "$BINARIES_DIR/genimage.cfg"
  genimage_run "$parts"
  exit 0
fi
[ -f "$BINARIES_DIR/systemd-bootx64.efi" ] || { echo "post-image: systemd-bootx64.efi missing (BR2_PACKAGE_ALPHAREN_SDBOOT)" >&2; exit 1; }
cp "$BINARIES_DIR/bzImage" "$BINARIES_DIR/vmlinuz"
"$REPO/board/loader-entries.sh" "$BINARIES_DIR" "$CMDLINE"
sed -e "s/@IMAGE@/alpharen-$BOARD.img/" -e '/initrd\.img/d' "$REPO/board/genimage.cfg.in" > "$BINARIES_DIR/genimage.cfg"
genimage_run "$TARGET_DIR"
