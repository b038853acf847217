#!/usr/bin/env bash
# Access without port forwarding, three namespaces: an outside client, a
# public node (its real ports, not --dev: DNS 53, HTTPS 443) and a private
# node whose backend listens only on its ARVPN address. The private node
# dials the tunnel out; the public node resolves app.<zone> and proxies it
# through the tunnel. curl and a WebSocket from outside reach the backend;
# backend down gives the 502 page.
. "$(dirname "$0")/../lib.sh"
. "$ROOT/tests/vpn-lib.sh"
PY=/usr/bin/python3   # Debian's, with python3-websockets
command -v dig >/dev/null || fail "dig missing (scripts/deps.d/dpx.list)"

S=dt$$
OUT=$(mktemp -d /tmp/dpx-tunnel.XXXXXX); on_exit "rm -rf $OUT"   # fresh state dirs every run
chmod 711 "$OUT"   # services run as their own users and must reach the state dirs in it
OUTSIDE=${S}o; PUB=${S}p; PRIV=${S}q
ns_pair "$OUTSIDE" "$PUB" 10.97.0.2 10.97.0.1
ip netns add "$PRIV"; on_exit "ip netns del $PRIV"
ip link add w-pub netns "$PUB" type veth peer name w-priv netns "$PRIV"
ip -n "$PUB" addr add 10.96.0.1/24 dev w-pub; ip -n "$PRIV" addr add 10.96.0.2/24 dev w-priv
ip -n "$PUB" link set w-pub up; ip -n "$PRIV" link set w-priv up; ip -n "$PRIV" link set lo up

# Public node: a node's own ports inside its namespace; links left alone.
PSTATE=$OUT/pub; mkdir -p "$PSTATE"
cat >"$OUT/pub.toml" <<TOML
[node]
hostname = "pub"
[network]
manage = false
[vpn]
enabled = true
addresses = ["10.8.0.1/24"]
[dpx]
zone = "dpx.test."
[[dpx.records]]
name = "app"
type = "A"
value = "10.97.0.1"
[[dpx.routes]]
host = "app.dpx.test"
backend = "http://10.8.0.2:8080"
[[dpx.routes]]
host = "app.dpx.test"
backend = "http://10.8.0.2:8081"
path_prefix = "/ws"
TOML
ip netns exec "$PUB" "$ALPHAREN" run --state-dir "$PSTATE" --config "$OUT/pub.toml" >"$PSTATE/console.log" 2>&1 &
PUB_PID=$!; on_exit "kill $PUB_PID 2>/dev/null; wait $PUB_PID 2>/dev/null"
wait_for 20 "$ALPHAREN" ctl --state-dir "$PSTATE" status || { cat "$PSTATE/console.log"; fail "public node did not start"; }
# Private node: VPN only.
QSTATE=$OUT/priv
printf '[vpn]\nenabled = true\naddresses = ["10.8.0.2/24"]\n' >"$OUT/priv.toml"
start_node_in "$PRIV" "$QSTATE" "$OUT/priv.toml"
key() { "$ALPHAREN" ctl --state-dir "$1" vpn --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["public_key"] or "")'; }
wait_for 20 bash -c "[ -n \"\$('$ALPHAREN' ctl --state-dir '$PSTATE' vpn --json | grep -o '\"public_key\": \"[^\"]*\"')\" ]" || fail "public node has no VPN key"
wait_for 20 bash -c "[ -n \"\$('$ALPHAREN' ctl --state-dir '$QSTATE' vpn --json | grep -o '\"public_key\": \"[^\"]*\"')\" ]" || fail "private node has no VPN key"
KP=$(key "$PSTATE"); KQ=$(key "$QSTATE")
"$ALPHAREN" ctl --state-dir "$QSTATE" config set vpn.peers "[{name = \"pub\", public_key = \"$KP\", endpoint = \"10.96.0.1:51820\", allowed_ips = [\"10.8.0.1/32\"], persistent_keepalive = 25}]" >/dev/null
"$ALPHAREN" ctl --state-dir "$QSTATE" config confirm >/dev/null
"$ALPHAREN" ctl --state-dir "$PSTATE" config set vpn.peers "[{name = \"lan1\", public_key = \"$KQ\", allowed_ips = [\"10.8.0.2/32\"]}]" >/dev/null
"$ALPHAREN" ctl --state-dir "$PSTATE" config confirm >/dev/null
wait_for 30 ip netns exec "$PRIV" ping -c1 -W1 10.8.0.1 || { "$ALPHAREN" ctl --state-dir "$QSTATE" vpn; fail "tunnel private -> public not up"; }
pass "private node dialed the tunnel out to the public node"

BP=8080; WP=8081
ip netns exec "$PRIV" $PY "$ROOT/tests/e2e/dpx_backend.py" "$BP" "$WP" "$OUT/release" 10.8.0.2 >"$OUT/backend.log" 2>&1 &
BACKEND=$!; on_exit "kill $BACKEND 2>/dev/null"
wait_for 10 ip netns exec "$PRIV" curl -sf "http://10.8.0.2:$BP/echo" || { cat "$OUT/backend.log"; fail "backend did not start"; }
ip netns exec "$PUB" curl -s --max-time 3 "http://10.96.0.2:$BP/echo" >/dev/null && fail "backend reachable without the tunnel"
ip netns exec "$OUTSIDE" curl -s --max-time 3 "http://10.8.0.2:$BP/echo" >/dev/null && fail "outside reaches the private backend directly"

APP=$(ip netns exec "$OUTSIDE" dig @10.97.0.1 +short +time=2 +tries=3 app.dpx.test A)
[ "$APP" = 10.97.0.1 ] || fail "outside: app.dpx.test resolved to '$APP'"
out() { ip netns exec "$OUTSIDE" "$@"; }
out curl -sk --max-time 20 --resolve "app.dpx.test:443:$APP" https://app.dpx.test/echo >"$OUT/echo.json" || fail "outside curl through the proxy failed"
$PY - "$OUT/echo.json" <<'PY' || { cat "$OUT/echo.json"; fail "backend did not get the outside request"; }
import json, sys
h = json.load(open(sys.argv[1]))["headers"]
assert h["x-forwarded-for"] == "10.97.0.2" and h["host"] == "app.dpx.test", h
PY
pass "outside: dig app.dpx.test, curl https://app.dpx.test/ reaches the private backend through the tunnel"

[ "$(out timeout 30 $PY "$ROOT/tests/e2e/dpx_ws_client.py" 443 app.dpx.test /ws through-the-tunnel "$APP")" = through-the-tunnel ] \
  || fail "WebSocket echo through proxy and tunnel"
pass "WebSocket echo through the proxy and the tunnel"

kill "$BACKEND"; wait "$BACKEND" 2>/dev/null || true
code=$(out curl -sk --max-time 20 -o "$OUT/502.html" -w '%{http_code}' --resolve "app.dpx.test:443:$APP" https://app.dpx.test/echo)
[ "$code" = 502 ] && grep -q 'Bad Gateway' "$OUT/502.html" || fail "backend down gave $code, not the 502 page"
pass "backend down: 502 page"
