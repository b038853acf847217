#!/usr/bin/env bash
# The ESP's loader.conf and one boot-counted entry per slot (A preferred:
# the higher version), for images/build.sh and the Buildroot post-image
# step alike.   Usage: board/loader-entries.sh OUTDIR CMDLINE [INITRD]
# Each entry's command line gets alpharen.slot=<slot>. With INITRD (the
# ESP holds /<slot>/INITRD) the initramfs finds and mounts the slot's root;
# without, the kernel mounts it itself (root=PARTLABEL=rootfs-<slot>), which
# needs the block and squashfs drivers built in.
set -euo pipefail
out=$1 cmdline=$2 initrd=${3:-}
printf 'timeout 0\nconsole-mode keep\n' > "$out/loader.conf"
for slot in a b; do
  version=$([ $slot = a ] && echo 2 || echo 1)
  {
    echo "title ALPHA-REN slot $slot"
    echo "sort-key alpharen"
    echo "version $version"
    echo "linux /$slot/vmlinuz"
    if [ -n "$initrd" ]; then
      echo "initrd /$slot/$initrd"
      echo "options $cmdline alpharen.slot=$slot"
    else
      echo "options $cmdline root=PARTLABEL=rootfs-$slot rootfstype=squashfs ro rootwait alpharen.slot=$slot"
    fi
  } > "$out/entry-$slot.conf"
done
