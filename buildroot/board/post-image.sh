#!/usr/bin/env bash
# Buildroot post-image step: the same GPT layout as images/build.sh
# (../../board/genimage.cfg.in): ESP, rootfs A and B, data.
# Called as post-image.sh BINARIES_DIR BOARD.
set -euo pipefail
BINARIES_DIR=$1
BOARD=$2
LAYOUT="$BR2_EXTERNAL_ALPHAREN_PATH/../board/genimage.cfg.in"
GENIMAGE_TMP="$BUILD_DIR/genimage.tmp"
sed "s/@IMAGE@/alpharen-$BOARD.img/" "$LAYOUT" > "$BINARIES_DIR/genimage.cfg"
rm -rf "$GENIMAGE_TMP"
genimage --rootpath "$TARGET_DIR" --tmppath "$GENIMAGE_TMP" \
  --inputpath "$BINARIES_DIR" --outputpath "$BINARIES_DIR" --config "$BINARIES_DIR/genimage.cfg"
