#!/usr/bin/env bash
# Benchmark: the cost of privilege separation. The same node run RUNS times
# with BEFORE_BIN (a build without it) and with this build, alternating, as
# root: idle PSS of each built-in service after SETTLE seconds, then
# GetUserDetails through the integrator's :11223 with
# `wrk -t2 -c32 -d$DURATION --latency`. Prints medians and after/before
# ratios. Not pass/fail, but a wrk error or failed command stops it;
# loopback only.
. "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || fail "run as root: privileges are separated only under root"
[ -x "${BEFORE_BIN:-}" ] || fail "BEFORE_BIN must name a release alpharen built without privilege separation"
command -v wrk >/dev/null || fail "wrk missing (scripts/deps.sh installs it)"
DURATION=${BENCH_DURATION:-10s}
SETTLE=${SETTLE:-15}
SERVICES="net vpn dpx web ssh mail pgha integrator"

# measure BIN LABEL: one node; appends "LABEL SERVICE PSS_KIB" and
# "LABEL rps N" lines to $OUT/privsep-bench.txt.
measure() {
  local bin=$1 label=$2 state pid svc
  state=$(mktemp -d /tmp/alpharen-bench-privsep.XXXXXX)
  cat >"$state/seed.toml" <<'TOML'
[integrator]
workers = 2
[[integrator.channels]]
name = "open.user.get"
url_path = "/open/user/get-details"
service = "api.user.get-details"
TOML
  seed_ports "$state/seed.toml"
  "$bin" run --state-dir "$state" --dev --config "$state/seed.toml" >"$state/console.log" 2>&1 &
  local node=$!
  on_exit "kill $node 2>/dev/null"
  wait_for 20 "$bin" ctl --state-dir "$state" status || { cat "$state/console.log"; fail "$label node did not start"; }
  sleep "$SETTLE"
  for svc in $SERVICES; do
    pid=$("$bin" ctl --state-dir "$state" --json services | jq -r ".[] | select(.name==\"$svc\") | .pid")
    [[ $pid =~ ^[0-9]+$ ]] || fail "$label: $svc is not running"
    echo "$label $svc $(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup")" >>"$OUT/privsep-bench.txt"
  done
  "$bin" ctl --state-dir "$state" integrator deploy "$HERE/e2e/integrator/get_user_details.py" >/dev/null \
    || fail "$label: deploy failed"
  wrk_run "$OUT/privsep-wrk-$label.txt" -t2 -c32 -d"$DURATION" "http://127.0.0.1:$LB_PORT/open/user/get-details"
  echo "$label rps $WRK_RPS" >>"$OUT/privsep-bench.txt"
  kill "$node"; wait "$node" 2>/dev/null || true
  rm -rf "$state"
}

: >"$OUT/privsep-bench.txt"
for ((run = 1; run <= RUNS; run++)); do
  measure "$BEFORE_BIN" before
  measure "$ALPHAREN" after
done
values() { awk -v l="$1" -v k="$2" '$1 == l && $2 == k {print $3}' "$OUT/privsep-bench.txt"; }
printf '%-11s %12s %12s %6s\n' "idle PSS" "before KiB" "after KiB" "ratio"
for svc in $SERVICES; do
  b=$(median $(values before "$svc")); a=$(median $(values after "$svc"))
  printf '%-11s %12.0f %12.0f %6s\n' "$svc" "$b" "$a" "$(ratio "$a" "$b")"
done
echo "integrator req/s before: $(stats $(values before rps))"
echo "integrator req/s after:  $(stats $(values after rps))"
echo "integrator req/s ratio after/before: $(ratio "$(median $(values after rps))" "$(median $(values before rps))")"
