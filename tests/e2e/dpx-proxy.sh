#!/usr/bin/env bash
# ARDPX reverse proxy end to end on one machine: `[[dpx.routes]]` on the
# web service's HTTPS listener in front of a Python backend on loopback.
# curl (HTTP/1.1 and HTTP/2) reaches the backend by host name with
# X-Forwarded-*, a path prefix picks another backend, bodies stream both
# ways, a WebSocket echoes through, vpn_only refuses a non-VPN client, the
# console stays on the node's own name, a slow backend gives 504 at the
# route's response_timeout, a health-checked backend is taken out of service
# and brought back, HTTPS backends are verified against the route's
# ca_file, a stopped backend gives 502, a config change that drops a
# route's health check stops its checker, and a request in flight when the
# web service stops is answered first.
. "$(dirname "$0")/../lib.sh"
. "$ROOT/tests/dpx-lib.sh"
PY=/usr/bin/python3   # Debian's, with python3-websockets

STATE=$(mktemp -d /tmp/dpx-proxy.XXXXXX); on_exit "rm -rf $STATE"
read -r BP WP TP TWP < <(free_ports 4)
# The backend logs every request; /health answers 503 while $STATE/sick exists.
start_backend() {
  SICK_FILE=$STATE/sick $PY "$ROOT/tests/e2e/dpx_backend.py" "$BP" "$WP" "$STATE/release" >>"$STATE/backend.log" 2>&1 &
  BACKEND=$!; on_exit "kill $BACKEND 2>/dev/null"
  wait_for 10 curl -sf "http://127.0.0.1:$BP/echo" || { cat "$STATE/backend.log"; fail "backend did not start"; }
}
start_backend

# A private CA and an HTTPS backend with a certificate from it for
# backend.internal and 127.0.0.1.
ssl() { openssl "$@" >>"$STATE/openssl.log" 2>&1 || { cat "$STATE/openssl.log"; fail "openssl $1"; }; }
ssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout "$STATE/ca.key" -out "$STATE/ca.pem" -subj /CN=dpx-test-ca \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
ssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$STATE/tls.key" -out "$STATE/tls.csr" -subj /CN=backend.internal
printf 'subjectAltName=DNS:backend.internal,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$STATE/tls.ext"
ssl x509 -req -in "$STATE/tls.csr" -CA "$STATE/ca.pem" -CAkey "$STATE/ca.key" -CAcreateserial \
  -days 2 -extfile "$STATE/tls.ext" -out "$STATE/tls.pem"
$PY "$ROOT/tests/e2e/dpx_tls_backend.py" "$TP" "$TWP" "$STATE/tls.pem" "$STATE/tls.key" >"$STATE/tls-backend.log" 2>&1 &
TLS_BACKEND=$!; on_exit "kill $TLS_BACKEND 2>/dev/null"
wait_for 10 curl -sf --cacert "$STATE/ca.pem" "https://127.0.0.1:$TP/" || { cat "$STATE/tls-backend.log"; fail "HTTPS backend did not start"; }

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
[[dpx.routes]]
host = "slow.dpx.test"
backend = "http://127.0.0.1:$BP"
response_timeout = 1
[[dpx.routes]]
host = "checked.dpx.test"
backend = "http://127.0.0.1:$BP"
[dpx.routes.health]
path = "/health"
interval = 1
timeout = 1
fails = 2
passes = 1
[[dpx.routes]]
host = "tls.dpx.test"
backend = "https://127.0.0.1:$TP"
ca_file = "$STATE/ca.pem"
[[dpx.routes]]
host = "tls.dpx.test"
backend = "https://127.0.0.1:$TWP"
path_prefix = "/ws"
ca_file = "$STATE/ca.pem"
tls_server_name = "backend.internal"
[[dpx.routes]]
host = "untrusted.dpx.test"
backend = "https://127.0.0.1:$TP"
TOML
start_node "$STATE" --config "$STATE/seed.toml"
wait_for 20 curl -sfk "https://127.0.0.1:$HTTPS_PORT/api/v1/health" || fail "web not up"

# to HOST PATH [CURL ARGS...]: a request to the node's proxy for HOST.
to() {
  local host=$1 path=$2; shift 2
  curl -sk --max-time 30 --resolve "$host:$HTTPS_PORT:127.0.0.1" "$@" "https://$host:$HTTPS_PORT$path"
}
# code HOST PATH [CURL ARGS...]: the status the proxy answers.
code() { to "$@" -o /dev/null -w '%{http_code}'; }
export -f to code; export HTTPS_PORT
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

[ "$(code slow.dpx.test /echo)" = 200 ] || fail "route with response_timeout = 1 does not serve a quick answer"
[ "$(code slow.dpx.test /slow -o "$STATE/504.html")" = 504 ] || fail "backend slower than response_timeout did not give 504"
grep -q 'Gateway Timeout' "$STATE/504.html" && grep -q 'slow.dpx.test' "$STATE/504.html" && grep -q 'within 1 s' "$STATE/504.html" \
  || { cat "$STATE/504.html"; fail "504 page does not say what is wrong"; }
pass "response_timeout: a backend that accepts but does not answer in time gives a 504 page"

[ "$(code checked.dpx.test /echo)" = 200 ] || fail "health-checked route does not serve a healthy backend"
touch "$STATE/sick"
wait_for 20 bash -c '[ "$(code checked.dpx.test /echo)" = 503 ]' || fail "failing health checks did not take the backend out of service"
seen=$(wc -l <"$STATE/backend.log"); probes=$(grep -c 'GET /health' "$STATE/backend.log")
[ "$(code checked.dpx.test /echo?while-down -o "$STATE/503.html")" = 503 ] || fail "backend out of service still answered"
grep -q 'health check' "$STATE/503.html" && grep -q 'checked.dpx.test' "$STATE/503.html" && grep -q '503 Service Unavailable' "$STATE/503.html" \
  || { cat "$STATE/503.html"; fail "503 page does not name the host and the failed health check"; }
wait_for 10 bash -c "[ \$(grep -c 'GET /health' '$STATE/backend.log') -gt $probes ]" || fail "health probes stopped"
tail -n +"$((seen + 1))" "$STATE/backend.log" | grep -v 'GET /health' | has . \
  && { cat "$STATE/backend.log"; fail "the proxy sent more than health probes to a backend out of service"; }
rm "$STATE/sick"
wait_for 20 bash -c '[ "$(code checked.dpx.test /echo)" = 200 ]' || fail "passing health checks did not bring the backend back"
pass "health check: a failing backend gets a 503 page and no requests, and comes back when it passes"

[ "$(to tls.dpx.test /)" = tls-ok ] || fail "HTTPS backend with the route's ca_file not reached"
[ "$(timeout 30 $PY "$ROOT/tests/e2e/dpx_ws_client.py" "$HTTPS_PORT" tls.dpx.test /ws hello-over-tls)" = hello-over-tls ] \
  || fail "WebSocket echo through an HTTPS backend (tls_server_name)"
[ "$(code untrusted.dpx.test / -o "$STATE/tls-502.html")" = 502 ] || fail "HTTPS backend with an unknown CA was not refused"
grep -q 'certificate was refused' "$STATE/tls-502.html" && grep -q 'ca_file' "$STATE/tls-502.html" \
  || { cat "$STATE/tls-502.html"; fail "502 page does not say the certificate was refused"; }
pass "HTTPS backends: verified with ca_file (and tls_server_name, WebSocket too); an unknown CA gives a 502 that says so"

kill "$BACKEND"; wait "$BACKEND" 2>/dev/null || true
wait_for 10 bash -c "! curl -s http://127.0.0.1:$BP/ >/dev/null"
code=$(app -o "$STATE/502.html" -w '%{http_code}' "$BASE/echo")
[ "$code" = 502 ] || fail "backend down gave $code, not 502"
grep -q 'Bad Gateway' "$STATE/502.html" && grep -q 'app.dpx.test' "$STATE/502.html" || fail "502 page does not say what is wrong"
wait_for 20 bash -c '[ "$(code checked.dpx.test /echo)" = 503 ]' || fail "a stopped backend was not taken out of service"
pass "backend down: 502 page; health-checked route: 503"

start_backend
wait_for 20 bash -c '[ "$(code checked.dpx.test /echo)" = 200 ]' || fail "restarted backend not back in service"
pass "restarted backend passes its health check and serves again"

touch "$STATE/sick"
wait_for 20 bash -c '[ "$(code checked.dpx.test /echo)" = 503 ]' || fail "failing health checks did not take the backend out of service"
ctl --json config show | $PY -c 'import json, sys
d = json.load(sys.stdin)["config"]
for r in d["dpx"]["routes"]:
    if r["host"] == "checked.dpx.test":
        del r["health"]
json.dump(d, sys.stdout)' >"$STATE/no-health.json"
ctl config apply --file "$STATE/no-health.json" >/dev/null || fail "config without the health check refused"
wait_for 20 bash -c '[ "$(code checked.dpx.test /echo)" = 200 ]' || fail "route without a health check still out of service"
stopped=
for _ in 1 2 3 4 5; do
  before=$(grep -c 'GET /health' "$STATE/backend.log")
  sleep 3
  [ "$(grep -c 'GET /health' "$STATE/backend.log")" = "$before" ] && { stopped=1; break; }
done
[ -n "$stopped" ] || fail "health probes went on after the check was removed from the route"
pass "config change: the route drops its health check on reload, its checker stops and it serves again"

# A request in flight when the web service stops (each worker drains its
# own connections) is answered before the service goes.
app "$BASE/slow" >"$STATE/drain.out" &
SLOW=$!
sleep 1
ctl restart web >/dev/null || fail "restart web"
wait "$SLOW" || fail "the request in flight failed when the web service stopped"
[ "$(cat "$STATE/drain.out")" = slow ] || fail "the request in flight got $(cat "$STATE/drain.out"), not its answer"
wait_for 20 bash -c '[ "$(code app.dpx.test /echo)" = 200 ]' || fail "the proxy did not come back after the restart"
pass "stopping: a proxied request in flight is answered before the web service goes"
