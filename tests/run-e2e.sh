#!/usr/bin/env bash
# Runs the end-to-end test scripts, E2E_JOBS at a time (2 by default).
#   tests/run-e2e.sh            every tests/e2e/*.sh
#   tests/run-e2e.sh vpn web    only those (names without .sh)
# Each test gets its own output dir (tests/out/NAME/output.txt) and a time
# limit (E2E_TIMEOUT seconds, 900 by default, or its own `# e2e-timeout:
# SECONDS` header line). A script that shares
# something with others names it in a header line `# e2e-lock: NAME`:
# scripts with the same lock never run at the same time, and
# `# e2e-lock: exclusive` runs with no other script beside it.
# Each script runs in a network namespace of its own with only its
# loopback up (`unshare --net`), so that no script sees another's
# addresses, links and ports: Chromium aborts what it loads with
# ERR_NETWORK_CHANGED when an address in its namespace changes, and a
# port one script holds is free for the next. What a script fetches from
# the registries (npm, PyPI, crates, Debian packages for an image) it
# fetches through `online` (tests/lib.sh), in this runner's namespace
# (E2E_HOSTNET).
# The longest tests (by their last run, in tests/out/durations.tsv, or
# tests/e2e-durations.tsv in a fresh clone) start first. Prints each
# test's result as it ends, then a table of durations (also in
# tests/out/summary.txt); fails if any failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
export ALPHAREN_BIN=${ALPHAREN_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/debug/alpharen}
JOBS=${E2E_JOBS:-2}
LIMIT=${E2E_TIMEOUT:-900}
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || { echo "E2E_JOBS must be a positive number, not '$JOBS'" >&2; exit 2; }
[ -x "$ALPHAREN_BIN" ] || { echo "no $ALPHAREN_BIN: build first (make e2e-build, or make e2e ONLY=…)" >&2; exit 2; }

names=()
if [ $# -gt 0 ]; then
  for n in "$@"; do
    n=$(basename "$n" .sh)
    [ -f "tests/e2e/$n.sh" ] || { echo "no test tests/e2e/$n.sh; there are: $(cd tests/e2e && ls ./*.sh | sed 's|^\./||; s|\.sh$||' | tr '\n' ' ')" >&2; exit 2; }
    [[ " ${names[*]} " == *" $n "* ]] || names+=("$n")
  done
else
  for t in tests/e2e/*.sh; do names+=("$(basename "$t" .sh)"); done
fi

declare -A lock=() pid_of=() start_of=() result=() secs=() limit_of=()
for n in "${names[@]}"; do lock[$n]=$(sed -n 's/^# e2e-lock: *\([a-z0-9_-]*\).*/\1/p' "tests/e2e/$n.sh" | head -n 1); done
export E2E_HOSTNET=/proc/$$/ns/net

# can_start NAME: true when NAME's lock is free of every running script's.
can_start() {
  local r
  for r in "${!pid_of[@]}"; do
    [ "${lock[$1]}" = exclusive ] || [ "${lock[$r]}" = exclusive ] && return 1
    [ -n "${lock[$1]}" ] && [ "${lock[$1]}" = "${lock[$r]}" ] && return 1
  done
  return 0
}
start() {
  local n=$1 out=tests/out/$1
  rm -rf "$out"; mkdir -p "$out"
  # A script may ask for a longer limit in a header line `# e2e-timeout: SECONDS`.
  local limit
  limit=$(sed -n 's/^# e2e-timeout: *\([0-9][0-9]*\).*/\1/p' "tests/e2e/$n.sh" | head -n 1)
  limit_of[$n]=${limit:-$LIMIT}
  TEST_OUT=$PWD/$out timeout --kill-after=10 "${limit_of[$n]}" \
    unshare --net -- sh -c 'ip link set lo up && exec "$0"' "tests/e2e/$n.sh" >"$out/output.txt" 2>&1 </dev/null &
  pid_of[$n]=$!
  start_of[$n]=$EPOCHREALTIME
}
# reap: waits for one running script to end and reports it.
reap() {
  local done_pid n rc sig
  wait -n -p done_pid "${pid_of[@]}"; rc=$?
  for n in "${!pid_of[@]}"; do [ "${pid_of[$n]}" = "$done_pid" ] && break; done
  unset "pid_of[$n]"
  secs[$n]=$(awk -v a="${start_of[$n]}" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
  if [ "$rc" = 0 ]; then
    result[$n]=ok
    echo "== $n: ok (${secs[$n]} s)"; tail -n 3 "tests/out/$n/output.txt"
  else
    # The status says what a test that printed nothing died of (141: SIGPIPE).
    result[$n]="FAILED (exit $rc)"
    [ "$rc" -gt 128 ] && sig=$(kill -l "$((rc - 128))" 2>/dev/null) && result[$n]="FAILED (exit $rc, SIG$sig)"
    [ "$rc" = 124 ] && result[$n]="FAILED (timeout ${limit_of[$n]} s)"
    echo "== $n: ${result[$n]} (${secs[$n]} s; output below, also in tests/out/$n/output.txt)"
    tail -n 40 "tests/out/$n/output.txt"
    [ -s "tests/out/$n/output.txt" ] || echo "(it printed nothing)"
  fi
}
stop_all() { local p; for p in "${pid_of[@]}"; do kill -TERM -- "-$p" 2>/dev/null; done; exit 130; }
trap stop_all INT TERM

t0=$EPOCHREALTIME
mkdir -p tests/out
declare -A last=()
# A fresh clone has no last run: tests/e2e-durations.tsv holds the
# durations of a whole CI-like run (2 jobs), so the longest still go first.
durations=tests/out/durations.tsv
[ -f "$durations" ] || durations=tests/e2e-durations.tsv
if [ -f "$durations" ]; then
  while IFS=$'\t' read -r n s; do last[$n]=$s; done <"$durations"
fi
# Longest first; a test without a recorded duration counts as long.
mapfile -t pending < <(for n in "${names[@]}"; do printf '%s\t%s\n' "${last[$n]:-1e9}" "$n"; done | sort -s -t$'\t' -k1,1gr | cut -f2)
while [ ${#pending[@]} -gt 0 ] || [ ${#pid_of[@]} -gt 0 ]; do
  started=0
  if [ ${#pid_of[@]} -lt "$JOBS" ]; then
    for i in "${!pending[@]}"; do
      if can_start "${pending[i]}"; then start "${pending[i]}"; unset "pending[i]"; started=1; break; fi
    done
  fi
  [ "$started" = 1 ] && continue
  reap
done

failed=()
{
  printf '%-22s %-8s %s\n' test seconds result
  for n in "${names[@]}"; do printf '%-22s %8s %s\n' "$n" "${secs[$n]}" "${result[$n]}"; done
  printf '%-22s %8s %s\n' "(wall, $JOBS jobs)" "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')" ""
} | tee tests/out/summary.txt
for n in "${names[@]}"; do
  printf '%s\t%s\t%s\n' "$n" "${secs[$n]}" "${result[$n]}"
  [ "${result[$n]}" = ok ] || failed+=("$n")
done >tests/out/summary.tsv
for n in "${names[@]}"; do last[$n]=${secs[$n]}; done
for n in "${!last[@]}"; do printf '%s\t%s\n' "$n" "${last[$n]}"; done | sort >tests/out/durations.tsv
if [ ${#failed[@]} -gt 0 ]; then
  echo "end-to-end failures: ${failed[*]}"
  exit 1
fi
echo "all end-to-end tests passed"
