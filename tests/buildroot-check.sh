#!/usr/bin/env bash
# Offline validation of the BR2_EXTERNAL tree against a Buildroot 2026.05.1
# source tree: every defconfig resolves, `make show-info` parses every
# package, `utils/check-package` accepts our files, and the resolved
# .config still holds our options (Kconfig silently drops unknown ones).
#   Usage: tests/buildroot-check.sh BUILDROOT_DIR
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BR=${1:-${BUILDROOT_DIR:-}}
if [ -z "$BR" ] || [ ! -f "$BR/Makefile" ]; then
  echo "skipped: give the path of a Buildroot 2026.05.1 tree (tests/buildroot-check.sh BUILDROOT_DIR)"
  exit 0
fi
grep -q "^export BR2_VERSION := 2026.05.1$" "$BR/Makefile" || echo "warning: $BR is not Buildroot 2026.05.1"
EXT=$ROOT/buildroot
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
status=0
for cfg in "$EXT"/configs/*_defconfig; do
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
if (cd "$EXT" && /usr/bin/python3 "$BR/utils/check-package" -b Config.in external.mk package/*/*); then
  echo "ok check-package"
else
  echo "FAIL check-package"; status=1
fi
exit $status
