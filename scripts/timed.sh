#!/usr/bin/env bash
# Runs the steps in order, each given as NAME=COMMAND (run by bash), stops
# at the first that fails, and prints how long each took; after a step
# named e2e it also lists each end-to-end test from tests/out/summary.tsv,
# and last the end of each failed one's output.
#   scripts/timed.sh "lint=make lint" "unit=make unit"
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
rows=() status=0 t0=$EPOCHREALTIME
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
for step in "$@"; do
  name=${step%%=*} cmd=${step#*=}
  [ "$name" = e2e ] && rm -f tests/out/summary.tsv
  t=$EPOCHREALTIME
  bash -c "$cmd"; status=$?
  result=ok; [ "$status" = 0 ] || result="FAILED (exit $status)"
  rows+=("$name"$'\t'"$(since "$t")"$'\t'"$result")
  if [ "$name" = e2e ] && [ -f tests/out/summary.tsv ]; then
    while IFS=$'\t' read -r test secs res; do rows+=("  e2e/$test"$'\t'"$secs"$'\t'"$res"); done <tests/out/summary.tsv
  fi
  [ "$status" = 0 ] || break
done
echo
printf '%-28s %9s  %s\n' step seconds result
for r in "${rows[@]}"; do IFS=$'\t' read -r name secs res <<<"$r"; printf '%-28s %9s  %s\n' "$name" "$secs" "$res"; done
printf '%-28s %9s\n' total "$(since "$t0")"
# The end of each failed test's output comes last, where a log cut to
# its tail (as CI shows it) still holds why.
if [ -f tests/out/summary.tsv ]; then
  while IFS=$'\t' read -r test _ res; do
    [ "$res" = ok ] && continue
    echo; echo "== e2e/$test $res; the end of tests/out/$test/output.txt:"
    tail -n 12 "tests/out/$test/output.txt"
  done <tests/out/summary.tsv
fi
exit "$status"
