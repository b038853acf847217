#!/usr/bin/env bash
# Runs every end-to-end test script; each gets its own output dir and a
# time limit. Prints a summary and fails if any failed.
set -uo pipefail
shopt -s nullglob
cd "$(dirname "$0")/.."
export ALPHAREN_BIN=${ALPHAREN_BIN:-$PWD/target/debug/alpharen}
failed=()
for t in tests/e2e/*.sh; do
  name=$(basename "$t" .sh)
  out=tests/out/$name
  rm -rf "$out"; mkdir -p "$out"
  echo "== $name"
  if TEST_OUT=$PWD/$out timeout --kill-after=10 900 "$t" >"$out/output.txt" 2>&1; then
    tail -n 3 "$out/output.txt"
  else
    echo "FAILED: $name (output below, also in $out/output.txt)"
    tail -n 40 "$out/output.txt"
    failed+=("$name")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "end-to-end failures: ${failed[*]}"
  exit 1
fi
echo "all end-to-end tests passed"
