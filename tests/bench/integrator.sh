#!/usr/bin/env bash
# Benchmark: GetUserDetails through the integrator's :11223 against Node-RED
# (http in → function → http response returning the same JSON), same run,
# `wrk -t2 -c32 -d15s --latency`, RUNS runs of each. Prints medians, spread,
# req/s and p99 ratios of the medians, and idle RSS. Not pass/fail, but a
# wrk error or failed command stops it; loopback only.
. "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")/.." && pwd)
STATE=$OUT/bench-integrator
DURATION=${BENCH_DURATION:-15s}
read -r NR_PORT < <(free_ports 1)
rm -rf "$STATE"; mkdir -p "$STATE"
command -v wrk >/dev/null || fail "wrk missing (scripts/deps.sh installs it)"
export ALPHAREN STATE; export -f ctl

# Node-RED from npm, installed outside the source tree unless given.
NODE_RED_DIR=${NODE_RED_DIR:-$OUT/node-red-pkg}
if [ ! -x "$NODE_RED_DIR/node_modules/.bin/node-red" ]; then
  mkdir -p "$NODE_RED_DIR"
  (cd "$NODE_RED_DIR" && [ -f package.json ] || npm init -y >/dev/null) 
  (cd "$NODE_RED_DIR" && timeout 600 npm install --no-audit --no-fund node-red >"$OUT/npm-install.log" 2>&1) \
    || { tail "$OUT/npm-install.log"; fail "Node-RED install from npm failed (see $OUT/npm-install.log)"; }
fi

cat >"$OUT/bench.toml" <<'TOML'
[node]
hostname = "bench"
[integrator]
# Plain HTTP, as Node-RED is measured: the channel, not TLS.
tls = "off"
[[integrator.security]]
name = "cust.basic"
kind = "basic"
username = "cust"
password = "bench-password"
[[integrator.channels]]
name = "cust.user.get"
url_path = "/api/user/get-details"
service = "api.user.get-details"
security = "cust.basic"
[[integrator.channels]]
name = "open.user.get"
url_path = "/open/user/get-details"
service = "api.user.get-details"
TOML
start_integrator "$OUT/bench.toml"
ctl integrator deploy "$HERE/e2e/integrator/get_user_details.py" >/dev/null
curl -sf -u cust:bench-password "$LB/api/user/get-details" >/dev/null || fail "integrator does not answer"

rss_kb() { local t=0 p; for p in "$@"; do t=$((t + $(awk '/^VmRSS/ {print $2}' /proc/$p/status 2>/dev/null || echo 0))); done; echo $t; }
integrator_pids() {
  local main; main=$(pgrep -f "serve integrator --state-dir $STATE" | head -1)
  echo "$main $(pgrep -P "$main" | tr '\n' ' ')"
}

sleep 2
I_RSS=$(rss_kb $(integrator_pids))
wrk_runs basic -t2 -c32 -d"$DURATION" -H "Authorization: Basic $(printf cust:bench-password | base64)" "$LB/api/user/get-details"
wrk_runs open -t2 -c32 -d"$DURATION" "$LB/open/user/get-details"
echo "integrator basic auth: $basic_line"
echo "integrator no auth:    $open_line"
echo "integrator idle RSS (server + workers) ${I_RSS} kB"
kill "$NODE_PID" 2>/dev/null; wait "$NODE_PID" 2>/dev/null || true

NR_DIR=$OUT/node-red-user
rm -rf "$NR_DIR"; mkdir -p "$NR_DIR"
cat >"$NR_DIR/settings.js" <<JS
module.exports = { uiHost: "127.0.0.1", uiPort: $NR_PORT, httpAdminRoot: false, httpNodeRoot: "/",
  userDir: "$NR_DIR", flowFile: "flows.json", logging: { console: { level: "warn" } } };
JS
cat >"$NR_DIR/flows.json" <<'JSON'
[
 {"id": "t1", "type": "tab", "label": "bench"},
 {"id": "in1", "type": "http in", "z": "t1", "url": "/api/user/get-details", "method": "get", "wires": [["fn1"]]},
 {"id": "fn1", "type": "function", "z": "t1", "func": "msg.payload = {user_name: 'John Doe', user_type: 'SRT'};\nreturn msg;", "outputs": 1, "wires": [["out1"]]},
 {"id": "out1", "type": "http response", "z": "t1", "statusCode": "", "headers": {}, "wires": []}
]
JSON
"$NODE_RED_DIR/node_modules/.bin/node-red" --settings "$NR_DIR/settings.js" --userDir "$NR_DIR" >"$OUT/node-red.log" 2>&1 &
NR_PID=$!
on_exit "kill $NR_PID 2>/dev/null; wait $NR_PID 2>/dev/null"
wait_for 60 curl -sf "http://127.0.0.1:$NR_PORT/api/user/get-details" || { tail "$OUT/node-red.log"; fail "Node-RED did not start"; }
echo "Node-RED answers: $(curl -s "http://127.0.0.1:$NR_PORT/api/user/get-details")"
sleep 2
NR_NODE=$(pgrep -P "$NR_PID" node || true)
N_RSS=$(rss_kb $NR_PID $NR_NODE)
wrk_runs nr -t2 -c32 -d"$DURATION" "http://127.0.0.1:$NR_PORT/api/user/get-details"
echo "node-red no auth:      $nr_line; idle RSS ${N_RSS} kB"
awk -v a="$basic_rps" -v o="$open_rps" -v n="$nr_rps" -v ap="$basic_p99" -v op="$open_p99" -v np="$nr_p99" -v ir="$I_RSS" -v nr="$N_RSS" 'BEGIN {
  printf "ratio req/s integrator/node-red: basic auth %.2fx, no auth %.2fx\n", a / n, o / n
  printf "ratio p99   integrator/node-red: basic auth %.2fx, no auth %.2fx (lower is better)\n", ap / np, op / np
  printf "ratio idle RSS integrator/node-red: %.2fx\n", ir / nr }'
