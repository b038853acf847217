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
  [ -f "$BINARIES_DIR/$KERNEL_IMAGE" ] || { echo "post-image: kernel $KERNEL_IMAGE missing in $BINARIES_DIR" >&2; exit 1; }
  parts=$(mktemp -d); trap 'rm -rf "$parts"' EXIT
  for slot in a b; do
    n=$([ $slot = a ] && echo 5 || echo 6)
    mkdir -p "$parts/boot-$slot"
    (cd "$fw" && find . -mindepth 1 -maxdepth 1 ! -name cmdline.txt -exec cp -r {} "$parts/boot-$slot/" \;)
    cp "$BINARIES_DIR/$KERNEL_IMAGE" "$parts/boot-$slot/$kernel"
    cp "$BINARIES_DIR"/*.dtb "$parts/boot-$slot/"
    printf '%s root=PARTUUID=%08x-%02d rootfstype=squashfs ro rootwait alpharen.slot=%s\n' \
      "$CMDLINE" "$DISK_SIGNATURE" "$n" "$slot" > "$parts/boot-$slot/cmdline.txt"
  done
  # The slot an update bundle carries (images/bundle.sh rpi4-64 with
  # SLOT_DIR=$BINARIES_DIR/slot-rpi4-64): the rootfs and every boot file
  # but cmdline.txt (the installer makes the target's from the booted
  # slot's). Part names cannot hold "/": overlays/x.dtbo is the part
  # overlays..x.dtbo (docs/update.md).
  slot_dir=$BINARIES_DIR/slot-$BOARD
  rm -rf "$slot_dir"; mkdir -p "$slot_dir"
  ln -f "$BINARIES_DIR/rootfs.squashfs" "$slot_dir/" 2>/dev/null || cp "$BINARIES_DIR/rootfs.squashfs" "$slot_dir/"
  list="rootfs=rootfs.squashfs"
  while IFS= read -r f; do
    name=${f//\//..}
    [[ $name =~ ^[a-z0-9][a-z0-9._-]*$ ]] && [ ${#name} -le 64 ] \
      || { echo "post-image: boot file $f cannot be a bundle part (names are [a-z0-9._-], lower case)" >&2; exit 1; }
    cp "$parts/boot-a/$f" "$slot_dir/$name"
    list="$list $name=$name"
  done < <(cd "$parts/boot-a" && find . -type f ! -name cmdline.txt -printf '%P\n' | LC_ALL=C sort)
  # The firmware's version (ALPHAREN_VERSION, else the workspace's), as
  # images/build.sh names it.
  version=${ALPHAREN_VERSION:-$(sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO/Cargo.toml" | head -n 1)}
  build=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)-$(date -u +%Y%m%d%H%M%S)
  printf 'VERSION=%s\nBUILD_ID=%s\nPARTS="%s"\n' "$version" "$build" "$list" > "$slot_dir/slot.env"
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
