#!/usr/bin/env bash
# Runs the steps in order, each given as NAME=COMMAND (run by bash), stops
# at the first that fails, and prints how long each took; after a step
# named e2e it also lists each end-to-end test from tests/out/summary.tsv,
# and last the end of each failed one's output.
#   scripts/timed.sh "lint=make lint" "unit=make unit"
# A step whose name ends in & runs in the background (its own process
# group) beside the steps after it (its output goes to tests/out/steps/NAME.log, and its end is printed
# when it is joined); it is joined before the first step named e2e, or at
# the end. A failed background step stops the run there.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
rows=() status=0 t0=$EPOCHREALTIME
declare -A bg_pid=() bg_start=()
since() { awk -v a="$1" -v b="${2:-$EPOCHREALTIME}" 'BEGIN { printf "%.1f", b - a }'; }
# row NAME START RESULT [END]: a line of the table (END defaults to now).
row() { rows+=("$1"$'\t'"$(since "$2" "${4:-}")"$'\t'"$3"); }
# join: waits for every background step, records each, and prints the end
# of its log (all of it up to 40 lines when it failed).
join() {
  local name rc log end
  for name in "${!bg_pid[@]}"; do
    wait "${bg_pid[$name]}"; rc=$?
    log=tests/out/steps/$name.log
    # The step's own end (written by its wrapper), not the moment it is joined.
    end=$(cat "tests/out/steps/$name.end" 2>/dev/null || true)
    if [ "$rc" = 0 ]; then
      row "$name" "${bg_start[$name]}" "ok (in the background)" "$end"
      echo "== step $name (in the background): ok; the end of $log:"; tail -n 5 "$log"
    elif [ "$status" != 0 ] && [ "$rc" = 143 ]; then
      row "$name" "${bg_start[$name]}" "stopped (another step failed)"
    else
      row "$name" "${bg_start[$name]}" "FAILED (exit $rc)" "$end"; status=$rc
      echo "== step $name (in the background): FAILED (exit $rc); the end of $log:"; tail -n 40 "$log"
    fi
    unset "bg_pid[$name]"
  done
}
for step in "$@"; do
  name=${step%%=*} cmd=${step#*=}
  if [[ $name == *'&' ]]; then
    name=${name%&}
    mkdir -p tests/out/steps
    echo "== step $name starts in the background (tests/out/steps/$name.log)"
    bg_start[$name]=$EPOCHREALTIME
    rm -f "tests/out/steps/$name.end"
    setsid bash -c 'bash -c "$1"; rc=$?; echo "$EPOCHREALTIME" >"$2"; exit "$rc"' _ "$cmd" "tests/out/steps/$name.end" \
      >"tests/out/steps/$name.log" 2>&1 </dev/null &
    bg_pid[$name]=$!
    continue
  fi
  if [ "$name" = e2e ]; then
    join
    [ "$status" = 0 ] || break
    rm -f tests/out/summary.tsv
  fi
  t=$EPOCHREALTIME
  bash -c "$cmd"; status=$?
  result=ok; [ "$status" = 0 ] || result="FAILED (exit $status)"
  row "$name" "$t" "$result"
  if [ "$name" = e2e ] && [ -f tests/out/summary.tsv ]; then
    while IFS=$'\t' read -r test secs res; do rows+=("  e2e/$test"$'\t'"$secs"$'\t'"$res"); done <tests/out/summary.tsv
  fi
  [ "$status" = 0 ] || break
done
[ "$status" = 0 ] && join
# A failed step stops the run, but a background step is still waited for:
# its time and result belong in the table, and nothing is left running.
[ "$status" = 0 ] || { for p in "${bg_pid[@]}"; do kill -TERM -- "-$p" 2>/dev/null; done; join; }
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
    [ -s "tests/out/$test/output.txt" ] || echo "(it printed nothing)"
  done <tests/out/summary.tsv
fi
exit "$status"
