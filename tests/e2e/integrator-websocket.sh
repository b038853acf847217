#!/usr/bin/env bash
# Integrator WebSocket channels end to end: a Python websockets client
# (Debian's python3-websockets) sends and receives through a channel with
# `transport = "websocket"` on :11223 directly and through the dpx reverse
# proxy; the upgrade without or with a wrong API key is refused with 401
# (directly and through the proxy); a service behind a REST channel pushes
# to all clients of the channel and to one by its id, and a service pushes
# to the client whose message it handles before its answer; a message
# larger than max_message_size is closed with 1009 and the limit named;
# an idle connection is closed with 1000 at idle_timeout. Loopback only.
. "$(dirname "$0")/../lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3   # Debian's, with python3-websockets
needs curl jq
$PY -c 'import websockets' 2>/dev/null || fail "needs python3-websockets (scripts/deps.sh)"
CLIENT="timeout 60 $PY $HERE/integrator_ws_client.py"

STATE=$(mktemp -d /tmp/alpharen-wsx.XXXXXX)
on_exit "rm -rf $STATE"
# The proxy's route names the integrator's port, known after seed_ports.
cat >"$STATE/seed.toml" <<'TOML'
[node]
hostname = "wsx1"
[integrator]
tls = "off"
workers = 2
timeout = 5
worker_memory_limit = 256
[[integrator.security]]
name = "ws.key"
kind = "apikey"
password = "ws-test-key-0123456789"
[[integrator.channels]]
name = "chat"
url_path = "/ws/chat"
transport = "websocket"
service = "wsx.echo"
security = "ws.key"
max_message_size = 65536
ping_interval = 1
[[integrator.channels]]
name = "quiet"
url_path = "/ws/quiet"
transport = "websocket"
service = "wsx.echo"
idle_timeout = 2
[[integrator.channels]]
name = "push"
url_path = "/push"
methods = ["POST"]
service = "wsx.push"
[[dpx.routes]]
host = "wsx.dpx.test"
backend = "http://127.0.0.1:@LB_PORT@"
TOML
seed_ports "$STATE/seed.toml"
sed -i "s/@LB_PORT@/$LB_PORT/" "$STATE/seed.toml"
start_node "$STATE" --config "$STATE/seed.toml"
wait_for 20 curl -sfk "https://127.0.0.1:$HTTPS_PORT/api/v1/health" || fail "web (the proxy) not up"
wait_for 20 ctl integrator status >/dev/null || fail "integrator control socket not reachable"
ctl integrator deploy "$HERE/integrator/wsx.py" >/dev/null || fail "deploy wsx.py (self.wsx must pass the deploy check)"
wait_for 20 bash -c "'$ALPHAREN' ctl --state-dir '$STATE' --json integrator status | has '\"idle_workers\": 2'" \
  || fail "the deploy did not start the integrator workers"
pass "node up, wsx.py (using self.wsx) deployed"

WS=ws://127.0.0.1:$LB_PORT
PROXY=wss://wsx.dpx.test:$HTTPS_PORT

out=$($CLIENT echo "$WS/ws/chat") || fail "direct: $out"
pass "direct: $out"
out=$($CLIENT echo "$PROXY/ws/chat") || fail "through the proxy: $out"
pass "through the dpx proxy: $out"

out=$($CLIENT refused "$WS/ws/chat") || fail "direct: $out"
pass "direct: $out"
out=$($CLIENT refused "$PROXY/ws/chat") || fail "through the proxy: $out"
pass "through the proxy: $out"
code=$(curl -s -o "$STATE/426.json" -w '%{http_code}' -H 'X-API-Key: ws-test-key-0123456789' "http://127.0.0.1:$LB_PORT/ws/chat")
[ "$code" = 426 ] && jq -e '.error | test("WebSocket client")' "$STATE/426.json" >/dev/null \
  || fail "a plain GET on the WebSocket channel gave $code $(cat "$STATE/426.json")"
code=$(curl -s -o /dev/null -D "$STATE/h405" -w '%{http_code}' -X POST "http://127.0.0.1:$LB_PORT/ws/chat")
[ "$code" = 405 ] && has -i '^allow: GET' "$STATE/h405" || fail "POST on the WebSocket channel gave $code"
pass "a plain GET with the key is 426 (connect with a WebSocket client); POST is 405 Allow: GET"

out=$($CLIENT push "$WS/ws/chat" "http://127.0.0.1:$LB_PORT/push") || fail "pushes: $out"
pass "$out"

out=$($CLIENT oversized "$WS/ws/chat" 65536) || fail "oversized: $out"
[ "$out" = "1009 message larger than 65536 bytes" ] || fail "oversized message: closed with '$out'"
out=$($CLIENT oversized "$PROXY/ws/chat" 65536) || fail "oversized through the proxy: $out"
[ "$out" = "1009 message larger than 65536 bytes" ] || fail "oversized message through the proxy: closed with '$out'"
pass "a message of 65537 bytes on a 65536-byte channel: closed '$out' (directly and through the proxy)"

out=$($CLIENT idle "$WS/ws/quiet") || fail "idle: $out"
[ "$out" = "1000 no message for 2 s" ] || fail "idle connection: closed with '$out'"
pass "a connection with no message for idle_timeout (2 s): closed '$out'"

# After the clients went: none left in the status, and the log has no
# keepalive closes (the clients answered every 1 s ping).
wait_for 10 bash -o pipefail -c "'$ALPHAREN' ctl --state-dir '$STATE' --json integrator status | jq -e '.websocket_clients == {}'" \
  || fail "clients still listed: $(ctl --json integrator status | jq -c .websocket_clients)"
grep -q 'no answer to a ping' "$STATE/console.log" && fail "a client that answers pings was closed for it"
pass "no client left in the status; no keepalive close of a client that answers pings"
