#!/usr/bin/env bash
# Clusters linked across LANs: two clusters of one node each, lan-a (A)
# and lan-b (B), in two namespaces whose LAN addresses have no route to
# each other; their only path is ARVPN (the vpn service's boringtun)
# over a veth underlay. B makes a link token naming its VPN address; A
# links to it as a NATS leaf node; a service on A invokes a service on B
# and publishes to a topic of B (by naming the cluster); then the
# underlay is down for 20 s while A publishes, and once it is back every
# message published during the cut arrives on B. Also: a wrong link
# token is refused, and nothing is written.
. "$(dirname "$0")/../lib.sh"
. "$ROOT/tests/cluster-lib.sh"
browser_deps

lan_pair A B
for n in A B; do
  i=$([ $n = A ] && echo 1 || echo 2)
  member_config $n <<TOML
[vpn]
enabled = true
listen_port = 51820
addresses = ["10.7.0.$i/24"]
TOML
  if [ $n = B ]; then
    cat >>"$W/$n.toml" <<'TOML'
[[integrator.topics]]
name = "remote"
subscribers = ["lb.sink"]
max_attempts = 5
backoff_ms = 100
TOML
  fi
  start $n
done
key() { c "$1" --json vpn | jq -r .public_key; }
KA=$(key A); KB=$(key B)
[ -n "$KA" ] && [ -n "$KB" ] || fail "no VPN public keys"
c A config set vpn.peers "[{name = \"lan-b\", public_key = \"$KB\", endpoint = \"10.98.0.2:51820\", allowed_ips = [\"10.7.0.2/32\"], persistent_keepalive = 5}]" >/dev/null
c A config confirm >/dev/null
c B config set vpn.peers "[{name = \"lan-a\", public_key = \"$KA\", endpoint = \"10.98.0.1:51820\", allowed_ips = [\"10.7.0.1/32\"], persistent_keepalive = 5}]" >/dev/null
c B config confirm >/dev/null
wait_for 30 ip netns exec "${NS[A]}" ping -c1 -W1 10.7.0.2 || { c A vpn; c B vpn; fail "no ARVPN between A and B"; }
! ip netns exec "${NS[A]}" ping -c1 -W1 "${IP[B]}" >/dev/null 2>&1 || fail "A reaches B's LAN address without the VPN"
pass "ARVPN up between the LANs; no other route between their LAN addresses"

for n in A B; do
  out=$(c $n cluster init "lan-${n,,}" --advertise "${IP[$n]}") || fail "cluster init on $n: $out"
done
single() { st "$1" | jq -e '.jetstream.mode == "single server" and ([.members[] | select(.state == "up")] | length) == 1' >/dev/null; }
for n in A B; do wait_for 60 single $n || { st $n; fail "cluster lan-${n,,} on $n not up"; }; done

# Services: B answers invokes and records each message of topic "remote".
cat >"$W/lb.py" <<'PY'
from alpharen.integrator import Service

class Echo(Service):
    name = 'lb.echo'
    def handle(self):
        self.response.payload = {'cluster': 'lan-b', 'got': self.request.payload}

class Sink(Service):
    name = 'lb.sink'
    def handle(self):
        self.kv.ns('link').set('m%05d' % self.request.payload['n'], True)
PY
cat >"$W/la.py" <<'PY'
from alpharen.integrator import Service

class Call(Service):
    name = 'la.call'
    def handle(self):
        self.response.payload = self.invoke('lb.echo', {'x': 1}, cluster='lan-b')

class Pub(Service):
    name = 'la.pub'
    def handle(self):
        p = self.request.payload
        for n in range(p['from'], p['to']):
            self.pubsub.publish('remote', {'n': n}, cluster='lan-b')
        self.response.payload = {'published': p['to'] - p['from']}
PY
wait_for 60 c B integrator deploy "$W/lb.py" >/dev/null || fail "deploy lb.py on B"
wait_for 60 c A integrator deploy "$W/la.py" >/dev/null || fail "deploy la.py on A"

# Not linked yet: an invoke says so.
out=$(c A --json integrator invoke la.call) || fail "invoke la.call: $out"
jq -e '.status >= 500' <<<"$out" >/dev/null && has "no member of cluster lan-b answers" <<<"$out" || fail "an invoke before the link: $out"
pass "before the link, an invoke of lan-b says no member answers"

out=$(c B cluster link-token --address 10.7.0.2) || fail "link-token on B: $out"
LTOKEN=$(grep -o 'arl1\.[^ ]*' <<<"$out") || fail "no link token in: $out"
# A wrong secret, a wrong fingerprint, a join token: refused, nothing written.
bad_secret=$(sed -E 's/^(arl1\.[0-9a-f]{64}\.)[^@]*/\1AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/' <<<"$LTOKEN")
out=$(c A cluster link "$bad_secret" 2>&1) && fail "a link token with a wrong secret was taken"
has "link secret" <<<"$out" || fail "wrong secret error unclear: $out"
bad_fp=$(sed -E 's/^arl1\.[0-9a-f]{64}/arl1.'"$(printf 'ab%.0s' {1..32})"'/' <<<"$LTOKEN")
out=$(c A cluster link "$bad_fp" 2>&1) && fail "a link token with a wrong fingerprint was taken"
has "fingerprint" <<<"$out" || fail "wrong fingerprint error unclear: $out"
out=$(c A cluster link "$(c B cluster token)" 2>&1) && fail "a join token was taken as a link token"
has "link token starts with" <<<"$out" || fail "join token as link token error unclear: $out"
c A --json config show cluster | jq -e '(.config.links // []) == []' >/dev/null || fail "a refused link was written"
pass "wrong link secret, wrong CA fingerprint and a join token are refused; nothing written"

out=$(c A cluster link "$LTOKEN") || fail "cluster link on A: $out"
has "linked to cluster lan-b at 10.7.0.2:7422" <<<"$out" || fail "link answer: $out"
linked() { st A | jq -e '.links.out[0].name == "lan-b" and .links.out[0].state == "connected"' >/dev/null; }
wait_for 60 linked || { st A | jq .links; c A logs cluster | tail -8; c B logs cluster | tail -8; fail "A's link to lan-b does not connect"; }
bash -o pipefail -c "$(declare -f c st); ALPHAREN=$ALPHAREN W=$W st B | jq -e '[.links.in[].from | startswith(\"10.7.0.1:\")] == [true]'" >/dev/null \
  || { st B | jq .links; fail "B does not list exactly one link, arriving over the VPN"; }
c A cluster status | has "lan-b" || fail "ctl cluster status does not show the link"
pass "A links to lan-b as a leaf node over ARVPN (TLS to B's CA, link password); both sides list it"

# The leaf port answers nothing without the link password.
ip netns exec "${NS[A]}" python3 - <<'PY' || fail "B's leaf port took a connection without the link password"
import socket, ssl
s = socket.create_connection(("10.7.0.2", 7422), timeout=5)
info = s.recv(4096)
assert info.startswith(b"INFO"), info
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
t = ctx.wrap_socket(s)
t.sendall(b'CONNECT {"user":"link","pass":"wrong","verbose":false}\r\nPING\r\n')
t.settimeout(5)
data = b""
try:
    while b"-ERR" not in data and b"PONG" not in data:
        chunk = t.recv(4096)
        if not chunk: break
        data += chunk
except (OSError, ssl.SSLError):
    pass
assert b"PONG" not in data, data
PY
pass "B's leaf port refuses a wrong link password"

invoked() { c A --json integrator invoke la.call | jq -e '.status == 200 and .body.cluster == "lan-b" and .body.got.x == 1' >/dev/null; }
wait_for 30 invoked || { c A --json integrator invoke la.call; c B logs integrator | tail -8; fail "A's service does not invoke lb.echo in lan-b"; }
pass "a service on A invokes a service in lan-b by naming the cluster"

got() { c B --json integrator kv list --ns link | jq -r '.. | strings | select(startswith("m"))' | sort -u | wc -l; }
c A --json integrator invoke la.pub '{"from": 0, "to": 50}' | jq -e '.status == 200' >/dev/null || fail "publish 0..50 on A"
wait_for 30 bash -c "[ \$($(declare -f c got); ALPHAREN=$ALPHAREN W=$W got) = 50 ]" || { echo "got $(got)"; c B logs integrator | tail -8; fail "50 messages published on A did not arrive in lan-b"; }
pass "50 messages published on A to lan-b's topic arrive"

# The cut: the underlay down for 20 s after A noticed the link is down
# (3 pings 5 s apart); A publishes 50 messages as the cut begins and 50
# once the link shows down. Both go to A's outbox; none arrives before
# the underlay is back.
ip -n "${NS[A]}" link set wan0 down
c A --json integrator invoke la.pub '{"from": 50, "to": 100}' | jq -e '.status == 200 and .body.published == 50' >/dev/null \
  || fail "publishing on A as the link went down failed (the outbox should take it)"
down() { st A | jq -e '.links.out[0].state == "not connected"' >/dev/null; }
wait_for 60 down || { st A | jq .links; fail "A does not see the link down"; }
t0=$SECONDS
c A --json integrator invoke la.pub '{"from": 100, "to": 150}' | jq -e '.status == 200 and .body.published == 50' >/dev/null \
  || fail "publishing on A with the link down failed (the outbox should take it)"
invoke_down=$(c A --json integrator invoke la.call)
jq -e '.status >= 500' <<<"$invoke_down" >/dev/null && has "no member of cluster lan-b answers" <<<"$invoke_down" \
  || fail "an invoke with the link down: $invoke_down"
sleep $((20 - (SECONDS - t0) > 0 ? 20 - (SECONDS - t0) : 0))
[ "$(got)" = 50 ] || fail "messages published with the link down arrived in lan-b before it was back ($(got) of 150)"
ip -n "${NS[A]}" link set wan0 up
wait_for 90 bash -c "[ \$($(declare -f c got); ALPHAREN=$ALPHAREN W=$W got) = 150 ]" || { echo "got $(got)"; st A | jq .links; c A logs integrator | tail -8; fail "messages published during the 20 s cut did not all arrive"; }
wait_for 30 invoked || fail "invoke does not work again after the cut"
pass "link down for 20 s once A saw it: 100 messages published meanwhile all arrive after; invoke said the link is down, works again"

c A cluster unlink lan-b >/dev/null || fail "unlink"
wait_for 30 bash -o pipefail -c "$(declare -f c st); ALPHAREN=$ALPHAREN W=$W st B | jq -e '.links.in == []'" >/dev/null || fail "B still lists a link after unlink"
pass "unlink: the leaf connection is gone"
# Joining from the console: A leaves lan-a; on its Cluster page a
# damaged token, a wrong secret and a wrong CA fingerprint (tokens for
# B's web API over the VPN) each show their error and A stays outside.
c A cluster leave >/dev/null || fail "leave on A"
JT=$(c B cluster token) || fail "join token on B"
JT=${JT%@*}@10.7.0.2:443
damaged=$(sed -E 's/^arc1\.[0-9a-f]{4}/arc1.zz/' <<<"$JT")
wrong_secret=$(sed -E 's/^(arc1\.[0-9a-f]{64}\.)[^@]*/\1AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/' <<<"$JT")
wrong_fp=$(sed -E 's/^arc1\.[0-9a-f]{64}/arc1.'"$(printf 'ab%.0s' {1..32})"'/' <<<"$JT")
PASSWORD="correct horse battery"
ip netns exec "${NS[A]}" curl -skf -H 'content-type: application/json' \
  --data "{\"code\":\"$(cat "$W/a/setup-code")\",\"admin_password\":\"$PASSWORD\",\"hostname\":\"a\"}" \
  "https://${IP[A]}/api/v1/setup" >/dev/null || fail "console setup on A"
ip netns exec "${NS[A]}" env TEST_OUT="$OUT" timeout 180 node "$DIR/cluster-join.mjs" "https://${IP[A]}" "$PASSWORD" \
  "$damaged" "$wrong_secret" "$wrong_fp" || fail "joining from the console (screenshots in $OUT)"
st A | jq -e '.name == null' >/dev/null || fail "A joined a cluster with a refused token"
pass "console join: a damaged token, a wrong secret and a wrong fingerprint are refused with their reasons"
echo "cluster-link: all passed"
