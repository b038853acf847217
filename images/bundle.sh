#!/usr/bin/env bash
# Builds images/out/alpharen-<board>-<version>.aru, the signed update
# bundle of the slot images/build.sh last built for BOARD (its squashfs and
# boot files, kept in images/out/slot-<board>/). Format and checks:
# docs/update.md.   Usage: images/bundle.sh [BOARD]
#   UPDATE_KEY=FILE | offline   the signing key (images/update-key.sh);
#                               default: the development key
#   UPDATE_SIGNATURE=FILE       pack with this .minisig of the manifest made
#                               before (offline signing) instead of signing
#   MIN_FROM=VERSION            the lowest version that may install it (default 0)
#   IMAGES_OUT=DIR              instead of images/out (tests/e2e/update-bundle.sh)
#   SLOT_DIR=DIR                the slot to bundle instead of images/out/slot-BOARD;
#                               for rpi4-64, Buildroot's images/slot-rpi4-64
#                               (made by buildroot/board/post-image.sh)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BOARD=${1:-qemu-x86_64}
OUT=${IMAGES_OUT:-$ROOT/images/out}
SLOT=${SLOT_DIR:-$OUT/slot-$BOARD}
WORK=$OUT/bundle-$BOARD
BIN=${ALPHAREN_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/alpharen}

command -v minisign >/dev/null || scripts/deps.sh
if [ ! -f "$SLOT/slot.env" ]; then
  [ "$BOARD" != rpi4-64 ] || { echo "no slot in $SLOT: build the Raspberry Pi image with Buildroot (buildroot/configs/alpharen_rpi4_64_defconfig), then SLOT_DIR=<output>/images/slot-rpi4-64" >&2; exit 2; }
  [ -z "${IMAGES_OUT:-}${SLOT_DIR:-}" ] || { echo "no slot in $SLOT (images/build.sh makes it)" >&2; exit 2; }
  images/build.sh "$BOARD"
fi
[ -n "${ALPHAREN_BIN:-}" ] || cargo build --release -q
# VERSION, BUILD_ID and PARTS (NAME=FILE in the slot directory, bundle order).
# shellcheck source=/dev/null
. "$SLOT/slot.env"
# shellcheck source=images/update-key.sh
. images/update-key.sh
parts=()
for p in $PARTS; do parts+=("${p%%=*}=$SLOT/${p#*=}"); done
mkdir -p "$WORK"
manifest=$WORK/manifest.json

if [ -z "${UPDATE_SIGNATURE:-}" ]; then
  "$BIN" bundle manifest --board "$BOARD" --version "$VERSION" --build-id "$BUILD_ID" \
    --min-from "${MIN_FROM:-0}" --out "$manifest" "${parts[@]}"
  if [ "$UPDATE_KEY" = offline ]; then
    echo "bundle: sign $manifest on the machine that holds the release key:"
    echo "  minisign -S -s release.key -m manifest.json -t 'alpharen $BOARD $VERSION build $BUILD_ID'"
    echo "then bring manifest.json.minisig back and run"
    echo "  UPDATE_SIGNATURE=manifest.json.minisig UPDATE_KEY=offline UPDATE_PUB=$UPDATE_PUB $0 $BOARD"
    exit 0
  fi
  UPDATE_SIGNATURE=$manifest.minisig
  # The development key has no password; a release key asks for its own.
  minisign -S -s "$UPDATE_KEY" -m "$manifest" -x "$UPDATE_SIGNATURE" \
    -t "alpharen $BOARD $VERSION build $BUILD_ID" >/dev/null
fi
aru=$OUT/alpharen-$BOARD-$VERSION.aru
"$BIN" bundle pack --manifest "$manifest" --signature "$UPDATE_SIGNATURE" --out "$aru" "${parts[@]}"
# Checked as a node would, with the public key the image carries.
"$BIN" bundle verify --key "$UPDATE_PUB" "$aru"
echo "bundle: $aru ($(du -h --apparent-size "$aru" | cut -f1))"
