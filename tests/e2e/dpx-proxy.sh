#!/usr/bin/env bash
# ARDPX reverse proxy end to end on one machine: `[[dpx.routes]]` on the
# web service's HTTPS listener in front of a Python backend on loopback.
# curl (HTTP/1.1 and HTTP/2) reaches the backend by host name with
# X-Forwarded-*, a path prefix picks another backend, bodies stream both
# ways, a WebSocket echoes through, vpn_only refuses a non-VPN client, the
# console stays on the node's own name, and a stopped backend gives 502.
. "$(dirname "$0")/../lib.sh"
. "$ROOT/tests/dpx-lib.sh"
PY=/usr/bin/python3   # Debian's, with python3-websockets

STATE=$(mktemp -d /tmp/dpx-proxy.XXXXXX); on_exit "rm -rf $STATE"
read -r BP WP < <($PY -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*(x.getsockname()[1] for x in s))')
$PY "$ROOT/tests/e2e/dpx_backend.py" "$BP" "$WP" "$STATE/release" >"$STATE/backend.log" 2>&1 &
BACKEND=$!; on_exit "kill $BACKEND 2>/dev/null"
wait_for 10 curl -sf "http://127.0.0.1:$BP/echo" || { cat "$STATE/backend.log"; fail "backend did not start"; }

seed_ports "$STATE/seed.toml"
cat >>"$STATE/seed.toml" <<TOML
[node]
hostname = "ns1"
[[dpx.routes]]
host = "app.dpx.test"
backend = "http://127.0.0.1:$BP"
[[dpx.routes]]
host = "app.dpx.test"
backend = "http://127.0.0.1:$WP"
path_prefix = "/ws"
[[dpx.routes]]
host = "private.dpx.test"
backend = "http://127.0.0.1:$BP"
vpn_only = true
TOML
start_node "$STATE" --config "$STATE/seed.toml"
wait_for 20 curl -sfk "https://127.0.0.1:$HTTPS_PORT/api/v1/health" || fail "web not up"

app() { curl -sk --max-time 30 --resolve "app.dpx.test:$HTTPS_PORT:127.0.0.1" "$@"; }
BASE="https://app.dpx.test:$HTTPS_PORT"
app "$BASE/echo?x=1" >"$STATE/echo.json" || fail "proxied request failed"
$PY - "$STATE/echo.json" <<'PY' || { cat "$STATE/echo.json"; fail "backend did not see the request as sent, with X-Forwarded-*"; }
import json, sys
e = json.load(open(sys.argv[1]))
h = e["headers"]
assert e["path"] == "/echo?x=1", e
assert h["x-forwarded-for"] == "127.0.0.1", h
assert h["x-forwarded-proto"] == "https", h
assert h["x-forwarded-host"] == "app.dpx.test", h
assert h["host"] == "app.dpx.test", h
PY
app --http2 -o /dev/null -w '%{http_version} %{http_code}' "$BASE/echo" | has '^2 200$' || fail "HTTP/2 client not proxied"
curl -sk "https://127.0.0.1:$HTTPS_PORT/api/v1/health" | has '"ok"' || fail "the console moved off the node's own address"
pass "host route to the backend over HTTP/1.1 and HTTP/2 with X-Forwarded-For/-Proto/-Host; console unchanged"

head -c 5000000 /dev/zero >"$STATE/big"
[ "$(app --data-binary @"$STATE/big" -H 'Content-Type: application/octet-stream' "$BASE/upload")" = 5000000 ] || fail "5 MB upload not streamed through"
app -N "$BASE/stream" >"$STATE/stream.out" &
CURL=$!
wait_for 20 grep -q first "$STATE/stream.out" || fail "first chunk not delivered before the body ended"
grep -q last "$STATE/stream.out" && fail "backend did not hold the stream"
touch "$STATE/release"
wait "$CURL" || fail "streaming request failed"
grep -q last "$STATE/stream.out" || fail "stream did not complete"
pass "request and response bodies stream through"

[ "$(timeout 30 $PY "$ROOT/tests/e2e/dpx_ws_client.py" "$HTTPS_PORT" app.dpx.test /ws hello-through-proxy)" = hello-through-proxy ] \
  || fail "WebSocket echo through the proxy"
pass "WebSocket upgrade on the /ws prefix route echoes"

[ "$(curl -sk -o /dev/null -w '%{http_code}' --resolve "private.dpx.test:$HTTPS_PORT:127.0.0.1" "https://private.dpx.test:$HTTPS_PORT/echo")" = 403 ] \
  || fail "vpn_only route served to a client outside the VPN"
pass "vpn_only route refuses a client outside the VPN"

kill "$BACKEND"; wait "$BACKEND" 2>/dev/null || true
wait_for 10 bash -c "! curl -s http://127.0.0.1:$BP/ >/dev/null"
code=$(app -o "$STATE/502.html" -w '%{http_code}' "$BASE/echo")
[ "$code" = 502 ] || fail "backend down gave $code, not 502"
grep -q 'Bad Gateway' "$STATE/502.html" && grep -q 'app.dpx.test' "$STATE/502.html" || fail "502 page does not say what is wrong"
pass "backend down: 502 page"
