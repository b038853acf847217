#!/usr/bin/env bash
# Buildroot post-image step: the same GPT layout as images/build.sh
# (../../board/genimage.cfg.in): ESP with systemd-boot (package
# alpharen-sdboot) and boot-counted entries for slots A and B, the squashfs
# root twice, and the blank data partition. The board kernels have their
# disk and squashfs drivers built in, so there is no initramfs: the
# entries mount the slot with root=PARTLABEL=rootfs-<slot>.
# Called as post-image.sh BINARIES_DIR BOARD.
set -euo pipefail
BINARIES_DIR=$1
BOARD=$2
REPO="$BR2_EXTERNAL_ALPHAREN_PATH/.."
case "$BOARD" in
  qemu-x86_64|pc-x86_64) ;;
  *) echo "post-image: no A/B disk layout for $BOARD yet (only qemu-x86_64 and pc-x86_64)" >&2; exit 1 ;;
esac
[ -f "$BINARIES_DIR/systemd-bootx64.efi" ] || { echo "post-image: systemd-bootx64.efi missing (BR2_PACKAGE_ALPHAREN_SDBOOT)" >&2; exit 1; }
# shellcheck source=/dev/null
CMDLINE=$(. "$REPO/board/$BOARD/board.env" && echo "$CMDLINE")
cp "$BINARIES_DIR/bzImage" "$BINARIES_DIR/vmlinuz"
"$REPO/board/loader-entries.sh" "$BINARIES_DIR" "$CMDLINE"
GENIMAGE_TMP="$BUILD_DIR/genimage.tmp"
sed -e "s/@IMAGE@/alpharen-$BOARD.img/" -e '/initrd\.img/d' "$REPO/board/genimage.cfg.in" > "$BINARIES_DIR/genimage.cfg"
rm -rf "$GENIMAGE_TMP"
genimage --rootpath "$TARGET_DIR" --tmppath "$GENIMAGE_TMP" \
  --inputpath "$BINARIES_DIR" --outputpath "$BINARIES_DIR" --config "$BINARIES_DIR/genimage.cfg"
