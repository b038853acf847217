# shellcheck shell=bash
# Helpers for the benchmarks. Source it: `. "$(dirname "$0")/lib.sh"`.
# Everything of tests/lib.sh, plus:
#  - ALPHAREN_BIN defaults to the RELEASE binary ($CARGO_TARGET_DIR or
#    target/), built first when missing; a debug build would measure the
#    wrong thing.
#  - RUNS (default 3): how many times each side is measured; every bench
#    runs ours and the reference the same number of times.
#  - stats, ratio, wrk_run: median and spread, ratios of medians, wrk with
#    its errors made fatal.
_bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [ -z "${ALPHAREN_BIN:-}" ]; then
  ALPHAREN_BIN=${CARGO_TARGET_DIR:-$_bench_root/target}/release/alpharen
  if [ ! -x "$ALPHAREN_BIN" ]; then
    echo "building the release binary first: cargo build --release -p alpharen" >&2
    (cd "$_bench_root" && ${CARGO:-cargo} build --release -p alpharen) || { echo "FAIL: release build" >&2; exit 1; }
  fi
fi
export ALPHAREN_BIN
. "$_bench_root/tests/lib.sh"
RUNS=${RUNS:-3}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || fail "RUNS must be a positive number, not '$RUNS'"
echo "binary: $ALPHAREN; RUNS=$RUNS"

# stats VALUE...: "median M (min–max A–B, n N)"; fails on no or non-numeric values.
stats() {
  python3 - "$@" 2>/dev/null <<'PY' || fail "stats: not numbers: $*"
import statistics, sys
v = [float(x) for x in sys.argv[1:]]
assert v, "no values"
print(f"median {statistics.median(v):.6g} (min–max {min(v):.6g}–{max(v):.6g}, n {len(v)})")
PY
}
# median VALUE...: the median alone, for ratios.
median() {
  python3 -c 'import statistics, sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@" 2>/dev/null \
    || fail "median: not numbers: $*"
}
# ratio A B: A / B with two decimals.
ratio() { python3 -c 'import sys; a, b = map(float, sys.argv[1:]); print(f"{a / b:.2f}")' "$1" "$2" 2>/dev/null || fail "ratio $1 / $2"; }

# service_pid STATE-DIR NAME: the pid of a node's service.
service_pid() {
  "$ALPHAREN" ctl --state-dir "$1" --json services | jq -er ".[] | select(.name == \"$2\") | .pid"
}

# cpu_ticks PID...: user + system CPU of the processes (all their
# threads), in clock ticks.
cpu_ticks() {
  local p t=0
  for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$t"
}

# wrk_run OUT WRK-ARGS...: one wrk run (with --latency) into OUT, inside
# the network namespace WRK_NETNS when set; fails when wrk fails or
# reports non-2xx answers or socket errors. Sets WRK_RPS (requests/s) and
# WRK_P99_MS (99th percentile latency in ms); with WRK_CPU_PIDS set (the
# server's processes), also WRK_CPU_US: their CPU time (user + system)
# per request in microseconds, which other load on the machine disturbs
# far less than requests/s.
wrk_run() {
  local out=$1 netns=() c0=0 c1; shift
  [ -z "${WRK_NETNS:-}" ] || netns=(ip netns exec "$WRK_NETNS")
  [ -z "${WRK_CPU_PIDS:-}" ] || c0=$(cpu_ticks $WRK_CPU_PIDS)
  timeout 600 "${netns[@]}" wrk --latency "$@" >"$out" 2>&1 || { cat "$out"; fail "wrk $* exited $?"; }
  if [ -n "${WRK_CPU_PIDS:-}" ]; then
    c1=$(cpu_ticks $WRK_CPU_PIDS)
    WRK_CPU_US=$(awk -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" '/ requests in / { if ($1 > 0) print t / hz * 1e6 / $1 }' "$out")
    [ -n "$WRK_CPU_US" ] || { cat "$out"; fail "wrk $*: no 'requests in' line"; }
  fi
  if grep -qE 'Non-2xx|Socket errors' "$out"; then cat "$out"; fail "wrk $*: errors (above)"; fi
  WRK_RPS=$(awk '/^Requests\/sec/ {print $2}' "$out")
  WRK_P99_MS=$(awk '$1 == "99%" { v = $2
    if (v ~ /us$/) { sub(/us$/, "", v); print v / 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v); print v + 0 }
    else if (v ~ /m$/) { sub(/m$/, "", v); print v * 60000 } else { sub(/s$/, "", v); print v * 1000 } }' "$out")
  [ -n "$WRK_RPS" ] && [ -n "$WRK_P99_MS" ] || { cat "$out"; fail "wrk $*: no Requests/sec or 99% line"; }
}

# wrk_runs NAME WRK-ARGS...: RUNS wrk_run's into $OUT/wrk-NAME-N.txt; sets
# NAME_rps and NAME_p99 to the medians and NAME_line to the summary.
wrk_runs() {
  local name=$1 i r=() p=(); shift
  for i in $(seq 1 "$RUNS"); do
    wrk_run "$OUT/wrk-$name-$i.txt" "$@"; r+=("$WRK_RPS"); p+=("$WRK_P99_MS")
  done
  printf -v "${name}_rps" %s "$(median "${r[@]}")"; printf -v "${name}_p99" %s "$(median "${p[@]}")"
  printf -v "${name}_line" %s "req/s $(stats "${r[@]}"); p99 ms $(stats "${p[@]}")"
}

# node_red_install: Node-RED from npm into NODE_RED_DIR (default
# $OUT/node-red-pkg, outside the source tree), once; sets NODE_RED.
node_red_install() {
  NODE_RED_DIR=${NODE_RED_DIR:-$OUT/node-red-pkg}
  NODE_RED=$NODE_RED_DIR/node_modules/.bin/node-red
  [ -x "$NODE_RED" ] && return 0
  mkdir -p "$NODE_RED_DIR"
  (cd "$NODE_RED_DIR" && { [ -f package.json ] || npm init -y >/dev/null; } \
    && timeout 600 npm install --no-audit --no-fund node-red >"$OUT/npm-install.log" 2>&1) \
    || { tail "$OUT/npm-install.log"; fail "Node-RED install from npm failed (see $OUT/npm-install.log)"; }
}
# node_red_flow DIR HOST PORT: Node-RED's settings.js and flows.json in
# DIR (emptied first) for GetUserDetails' work: GET /api/user/get-details
# on HOST:PORT answers the same JSON (http in → function → http response).
# Start it with `"$NODE_RED" --settings DIR/settings.js --userDir DIR`.
node_red_flow() {
  rm -rf "$1"; mkdir -p "$1"
  cat >"$1/settings.js" <<JS
module.exports = { uiHost: "$2", uiPort: $3, httpAdminRoot: false, httpNodeRoot: "/",
  userDir: "$1", flowFile: "flows.json", logging: { console: { level: "warn" } } };
JS
  cat >"$1/flows.json" <<'JSON'
[
 {"id": "t1", "type": "tab", "label": "bench"},
 {"id": "in1", "type": "http in", "z": "t1", "url": "/api/user/get-details", "method": "get", "wires": [["fn1"]]},
 {"id": "fn1", "type": "function", "z": "t1", "func": "msg.payload = {user_name: 'John Doe', user_type: 'SRT'};\nreturn msg;", "outputs": 1, "wires": [["out1"]]},
 {"id": "out1", "type": "http response", "z": "t1", "statusCode": "", "headers": {}, "wires": []}
]
JSON
}
