#!/usr/bin/env bash
# Builds images/out/alpharen-<board>.img: a GPT disk with an ESP
# (systemd-boot, boot-counted entries for slots A and B), two squashfs root
# slots and an ext4 data partition. Every part comes from Debian's packages
# plus our release binary.   Usage: images/build.sh [qemu-x86_64|pc-x86_64]
# The slot's squashfs and boot files stay in images/out/slot-<board>/ for
# images/bundle.sh. ALPHAREN_VERSION overrides the version (Cargo.toml's);
# the update keys the image trusts are chosen by images/update-key.sh.
# IMAGES_OUT=DIR builds into DIR instead of images/out (a second version
# for tests/e2e/qemu-update.sh); the package cache stays images/out/cache.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BOARD=${1:-qemu-x86_64}
[ -f "board/$BOARD/board.env" ] || { echo "unknown board $BOARD (see board/)" >&2; exit 2; }
# shellcheck source=/dev/null
. "board/$BOARD/board.env"
OUT=${IMAGES_OUT:-$ROOT/images/out}
CACHE=$ROOT/images/out/cache
WORK=$OUT/work-$BOARD
IMAGE=alpharen-$BOARD.img
BIN=${ALPHAREN_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/alpharen}
VERSION=${ALPHAREN_VERSION:-$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)}
BUILD_ID=$(git describe --always --dirty 2>/dev/null || echo unknown)-$(date -u +%Y%m%d%H%M%S)

scripts/deps.sh
# shellcheck source=images/update-key.sh
. images/update-key.sh
[ -n "${ALPHAREN_BIN:-}" ] || cargo build --release -q
rm -rf "$WORK"; mkdir -p "$CACHE" "$WORK"/{input,tmp,empty,kernel,boot,initramfs,rootfs}

say() { echo "image: $*"; }

# 1. Debian parts, downloaded once into the cache and unpacked.
kpkg=$(apt-cache depends "$KERNEL_PACKAGE" | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1)
[ -n "$kpkg" ] || { echo "cannot resolve $KERNEL_PACKAGE to a kernel package" >&2; exit 1; }
PYTHON_DEBS="python3.11-minimal libpython3.11-minimal libpython3.11-stdlib"
# The data partition's first-boot tools: grow (sfdisk, partx), format, check.
DISK_DEBS="fdisk e2fsprogs util-linux"
for p in "$kpkg" systemd-boot-efi busybox-static $PYTHON_DEBS $DISK_DEBS; do
  ls "$CACHE/${p}_"*.deb >/dev/null 2>&1 || (cd "$CACHE" && apt-get download "$p" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
done
dpkg-deb -x "$(ls "$CACHE/${kpkg}_"*.deb | head -n 1)" "$WORK/kernel"
dpkg-deb -x "$(ls "$CACHE"/systemd-boot-efi_*.deb | head -n 1)" "$WORK/boot"
dpkg-deb -x "$(ls "$CACHE"/busybox-static_*.deb | head -n 1)" "$WORK/boot"
KVER=$(ls "$WORK/kernel/lib/modules")
depmod -b "$WORK/kernel" "$KVER"
say "kernel $KVER"

# 2. Initramfs: busybox, the modules the board needs (dependencies first), our init script.
mods=$(python3 - "$WORK/kernel/lib/modules/$KVER/modules.dep" $MODULES <<'PY'
import sys
deps = {}
for line in open(sys.argv[1]):
    path, _, rest = line.partition(":")
    deps[path] = rest.split()
by_name = {p.rsplit("/", 1)[-1].split(".ko")[0].replace("-", "_"): p for p in deps}
order = []
def add(path):
    for d in deps.get(path, []):
        add(d)
    if path not in order:
        order.append(path)
for name in sys.argv[2:]:
    path = by_name.get(name.replace("-", "_"))
    if path is None:
        sys.exit(f"module {name} is not in this kernel (built in, or misspelt in board.env)")
    add(path)
print("\n".join(order))
PY
)
ir=$WORK/initramfs
mkdir -p "$ir"/{bin,dev,proc,sys,newroot,etc,lib/modules}
cp "$WORK/boot/bin/busybox" "$ir/bin/busybox"
cp images/initramfs-init "$ir/init"
for m in $mods; do
  mkdir -p "$ir/lib/modules/$(dirname "$m")"
  cp "$WORK/kernel/lib/modules/$KVER/$m" "$ir/lib/modules/$m"
done
echo "$mods" > "$ir/etc/modules"
(cd "$ir" && find . | cpio --quiet -o -H newc | gzip -9) > "$WORK/input/initrd.img"
cp "$WORK/kernel/boot/vmlinuz-$KVER" "$WORK/input/vmlinuz"

# 3. Root filesystem: alpharen (+ the glibc it links), busybox, the overlay.
rf=$WORK/rootfs
mkdir -p "$rf"/{bin,sbin,usr/bin,usr/sbin,etc,data,proc,sys,dev,run,tmp,root,boot/efi}
install -m 0755 "$BIN" "$rf/usr/bin/alpharen"
ln -s ../usr/bin/alpharen "$rf/sbin/init"
ln -s ../bin/alpharen "$rf/usr/sbin/sendmail"
cp "$WORK/boot/bin/busybox" "$rf/bin/busybox"
for applet in $("$rf/bin/busybox" --list); do
  [ -e "$rf/bin/$applet" ] || ln -s busybox "$rf/bin/$applet"
done
# python3 for the integrator's service workers (user code never runs in a
# Rust process): Debian's interpreter and standard library, without docs
# or tests, compiled to bytecode here (Debian's postinst would do it; the
# root is read-only, so without it every worker start compiles each module
# it imports: 0.30 s instead of 0.07 s per worker on the build machine).
for p in $PYTHON_DEBS; do dpkg-deb -x "$(ls "$CACHE/${p}_"*.deb | head -n 1)" "$rf"; done
rm -rf "$rf/usr/share/doc" "$rf/usr/share/man" "$rf/usr/share/lintian" "$rf"/usr/lib/python3.11/{test,idlelib,tkinter,turtledemo,ensurepip,lib2to3}
find "$rf/usr/lib/python3.11" -name __pycache__ -prune -exec rm -rf {} +
# Same minor version, same bytecode: Debian 12's python3.11 on this machine.
/usr/bin/python3.11 -I -m compileall -q -j 0 --invalidation-mode unchecked-hash \
  -s "$rf" -p / "$rf/usr/lib/python3.11" >/dev/null
ln -sf python3.11 "$rf/usr/bin/python3"
mkdir -p "$WORK/disk"
for p in $DISK_DEBS; do dpkg-deb -x "$(ls "$CACHE/${p}_"*.deb | head -n 1)" "$WORK/disk"; done
mkdir -p "$WORK/nats"
# The cluster service's engine (docs/cluster.md): one static binary, from
# Debian forky (scripts/nats-server.sh says why).
# shellcheck source=scripts/nats-server.sh
. scripts/nats-server.sh
dpkg-deb -x "$(nats_deb "$CACHE")" "$WORK/nats"
install -m 0755 "$WORK/nats/usr/sbin/nats-server" "$rf/usr/sbin/"
install -m 0755 "$WORK/disk/sbin/sfdisk" "$WORK/disk/sbin/mke2fs" "$WORK/disk/sbin/e2fsck" "$WORK/disk/usr/bin/partx" "$rf/usr/sbin/"
# Shared libraries of everything we ship, taken from this build machine
# (the same Debian release as the packages).
for elf in "$BIN" "$rf/usr/bin/python3.11" "$rf"/usr/lib/python3.11/lib-dynload/*.so "$rf"/usr/sbin/*; do
  ! ldd "$elf" 2>/dev/null | grep "not found" || { echo "$elf needs a library this machine lacks" >&2; exit 1; }
  for lib in $(ldd "$elf" 2>/dev/null | grep -o '/[^ ]*'); do
    [ -e "$rf$lib" ] || { mkdir -p "$rf$(dirname "$lib")"; cp -L "$lib" "$rf$lib"; }
  done
done
mkdir -p "$rf/etc/ssl/certs"
cp /etc/ssl/certs/ca-certificates.crt "$rf/etc/ssl/certs/"
cp -a overlays/. "$rf/"
# ALPHAREN_BOARD: which update bundles fit this image (docs/update.md).
printf 'VERSION_ID=%s\nBUILD_ID=%s\nALPHAREN_BOARD=%s\n' "$VERSION" "$BUILD_ID" "$BOARD" >> "$rf/etc/os-release"
# The keys update bundles must be signed with (docs/update.md).
install -D -m 0644 "$UPDATE_PUB" "$rf/etc/alpharen/update-keys/$(basename "$UPDATE_PUB")"
chmod 1777 "$rf/tmp"
mksquashfs "$rf" "$WORK/input/rootfs.squashfs" -comp zstd -noappend -all-root -quiet >/dev/null

# 4. ESP: systemd-boot and one boot-counted entry per slot (A preferred).
cp "$WORK/boot/usr/lib/systemd/boot/efi/systemd-bootx64.efi" "$WORK/input/"
board/loader-entries.sh "$WORK/input" "$CMDLINE" initrd.img

# 5. Assemble with genimage.
sed "s/@IMAGE@/$IMAGE/" board/genimage.cfg.in > "$WORK/genimage.cfg"
genimage --config "$WORK/genimage.cfg" --inputpath "$WORK/input" --outputpath "$OUT" \
  --rootpath "$WORK/empty" --tmppath "$WORK/tmp" >"$WORK/genimage.log" 2>&1 \
  || { cat "$WORK/genimage.log"; exit 1; }
say "$OUT/$IMAGE: $(du -h --apparent-size "$OUT/$IMAGE" | cut -f1) (rootfs $(du -h "$WORK/input/rootfs.squashfs" | cut -f1), initramfs $(du -h "$WORK/input/initrd.img" | cut -f1))"

# 6. The slot for update bundles (hard links: the next build removes WORK).
SLOT=$OUT/slot-$BOARD
rm -rf "$SLOT"; mkdir -p "$SLOT"
ln "$WORK/input/rootfs.squashfs" "$WORK/input/vmlinuz" "$WORK/input/initrd.img" "$SLOT/"
printf 'VERSION=%q\nBUILD_ID=%q\nPARTS=%q\n' "$VERSION" "$BUILD_ID" \
  "rootfs=rootfs.squashfs vmlinuz=vmlinuz initrd.img=initrd.img" > "$SLOT/slot.env"
say "slot $VERSION ($BUILD_ID) kept in $SLOT for images/bundle.sh"

# 7. What the tests and benches read stays (input/, boot/); the unpacked
# packages and trees (a kernel's modules are ~400 MB) go.
find "$WORK" -mindepth 1 -maxdepth 1 ! -name input ! -name boot -exec rm -rf {} +
