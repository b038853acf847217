#!/usr/bin/env bash
# The build side of update bundles (docs/update.md) on stand-in slot files,
# without a node: images/bundle.sh makes the development key and a bundle
# that `alpharen bundle verify` accepts; a bundle signed by another key, a
# flipped byte in the rootfs part, another board, a downgrade, a truncated
# and a garbage file are each refused with their reason; the offline
# signing flow (UPDATE_KEY=offline, then UPDATE_SIGNATURE=) works with a
# key made by Debian's minisign; a slot that changed after its manifest
# was signed is not packed.
. "$(dirname "$0")/../lib.sh"
command -v minisign >/dev/null || fail "needs minisign (scripts/deps.sh)"
T=$(mktemp -d /tmp/alpharen-bundle.XXXXXX)
on_exit "rm -rf $T"
slot=$T/out/slot-qemu-x86_64
mkdir -p "$slot"
head -c $((3 * 1024 * 1024 + 123)) /dev/urandom > "$slot/rootfs.squashfs"
head -c 70000 /dev/urandom > "$slot/vmlinuz"
head -c 5000 /dev/urandom > "$slot/initrd.img"
printf 'VERSION=0.2.0\nBUILD_ID=e2e\nPARTS="rootfs=rootfs.squashfs vmlinuz=vmlinuz initrd.img=initrd.img"\n' > "$slot/slot.env"
bundle() { IMAGES_OUT=$T/out ALPHAREN_BIN=$ALPHAREN "$ROOT/images/bundle.sh" qemu-x86_64; }
verify() { "$ALPHAREN" bundle verify --key "$T/out/update-dev.pub" --board "${BOARD:-qemu-x86_64}" --running "${RUNNING:-0.1.0}" "$@"; }
# refused REASON VERIFY-ARGS...: verify fails and says REASON.
refused() {
  local reason=$1; shift
  if verify "$@" >"$T/verify.out" 2>&1; then cat "$T/verify.out"; fail "accepted: $*"; fi
  grep -q -- "$reason" "$T/verify.out" || { cat "$T/verify.out"; fail "no \"$reason\""; }
}

bundle >"$T/bundle.out" 2>&1 || { cat "$T/bundle.out"; fail "images/bundle.sh"; }
aru=$T/out/alpharen-qemu-x86_64-0.2.0.aru
[ -f "$aru" ] && [ -f "$T/out/update-dev.key" ] || fail "no bundle or no development key"
verify "$aru" > "$T/verify.out" || fail "verify"
grep -q "a node running it would accept it: Upgrade" "$T/verify.out" || fail "not an upgrade"
# Format 2: a part's identity (root) is the SHA-256 of its 4 KiB blocks'
# SHA-256 digests in order, computed here on its own.
root=$(python3 -c 'import hashlib, sys
d = open(sys.argv[1], "rb").read()
print(hashlib.sha256(b"".join(hashlib.sha256(d[i:i + 4096]).digest() for i in range(0, len(d), 4096))).hexdigest())' "$slot/rootfs.squashfs")
grep -q "rootfs $(stat -c %s "$slot/rootfs.squashfs") bytes, root $root" "$T/verify.out" \
  || fail "the manifest's rootfs is not the slot's size and root ($root): $(cat "$T/verify.out")"
pass "bundle made and verified with the development key"

minisign -G -W -p "$T/other.pub" -s "$T/other.key" >/dev/null
other=$(sed -n 's/.*public key \([0-9A-F]*\)$/\1/p' "$T/other.pub")
UPDATE_KEY=$T/other.key IMAGES_OUT=$T/out ALPHAREN_BIN=$ALPHAREN "$ROOT/images/bundle.sh" >/dev/null 2>&1
refused "signed by key $other, which this node does not trust" "$aru"
bundle >/dev/null 2>&1
pass "a bundle signed by another key"

# Flip one byte of block 3 of rootfs: after the header, manifest, signature
# and group 0's block-hash table (256 x 32 bytes).
m=$(stat -c %s "$T/out/bundle-qemu-x86_64/manifest.json")
s=$(stat -c %s "$T/out/bundle-qemu-x86_64/manifest.json.minisig")
at=$((16 + m + 4 + s + 8192 + 3 * 4096 + 17))
cp "$aru" "$T/flipped.aru"
printf "$(printf '\\%03o' $(( $(od -An -tu1 -j $at -N1 "$aru") ^ 1 )))" | dd of="$T/flipped.aru" bs=1 seek=$at conv=notrunc status=none
refused "part rootfs: block 3 (part bytes 12288..16384, bundle byte $((at - 17)))" "$T/flipped.aru"
pass "a flipped byte names its block"

BOARD=pc-x86_64 refused "the bundle is for board qemu-x86_64, this node is a pc-x86_64" "$aru"
RUNNING=0.3.0 refused "downgrade refused: the bundle is version 0.2.0, this node runs 0.3.0" "$aru"
head -c 2000000 "$aru" > "$T/short.aru"
refused "the bundle is truncated: it ends at byte 2000000, inside block" - < "$T/short.aru"
refused "not an update bundle" "$T/out/update-dev.pub"
pass "wrong board, downgrade, truncated and garbage refused"

# Offline signing: only the manifest meets the release key.
minisign -G -W -p "$T/release.pub" -s "$T/release.key" >/dev/null
UPDATE_KEY=offline UPDATE_PUB=$T/release.pub bundle > "$T/offline.out" 2>&1 || { cat "$T/offline.out"; fail "offline step 1"; }
grep -q "sign .*manifest.json on the machine that holds the release key" "$T/offline.out" || fail "no instructions"
mkdir "$T/offline" && cp "$T/out/bundle-qemu-x86_64/manifest.json" "$T/offline/"
minisign -S -s "$T/release.key" -m "$T/offline/manifest.json" -t "e2e offline" >/dev/null
UPDATE_KEY=offline UPDATE_PUB=$T/release.pub UPDATE_SIGNATURE=$T/offline/manifest.json.minisig bundle >/dev/null 2>&1 \
  || fail "offline step 2"
"$ALPHAREN" bundle verify --key "$T/release.pub" "$aru" > "$T/verify.out" || fail "offline bundle"
grep -q "signed by release.pub" "$T/verify.out" || fail "offline bundle's signer"
pass "offline signing"

head -c 4096 /dev/urandom | dd of="$slot/vmlinuz" bs=4096 seek=2 conv=notrunc status=none
if UPDATE_KEY=offline UPDATE_PUB=$T/release.pub UPDATE_SIGNATURE=$T/offline/manifest.json.minisig bundle >"$T/changed.out" 2>&1; then
  fail "packed a slot that changed after its manifest was signed"
fi
grep -q "part vmlinuz: group 0 differs; it changed since the manifest was made" "$T/changed.out" || { cat "$T/changed.out"; fail "reason"; }
pass "a changed slot is not packed"
