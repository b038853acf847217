#!/usr/bin/env bash
# ARVPN end to end: a node (boringtun's protocol core, our packet path)
# in one namespace, a wireguard-go
# client in another, configured with the unmodified output of
# `ctl vpn peer add`: handshake, ping, TCP transfer, status, wrong key,
# bad input, service restart, peer del; then two nodes site to site with
# a LAN namespace behind each.
. "$(dirname "$0")/../lib.sh"
. "$ROOT/tests/vpn-lib.sh"

S=vpn$$
NODE=${S}n; CLI=${S}c
ns_pair "$NODE" "$CLI" 10.99.0.1 10.99.0.2
STATE=$OUT/node
rm -rf "$STATE"; mkdir -p "$STATE"   # a fresh node also when run again by hand
cat >"$OUT/seed.toml" <<TOML
[vpn]
enabled = true
listen_port = 51820
addresses = ["10.8.0.1/24"]
pool = "10.8.0.0/24"
dns = ["10.8.0.1"]
endpoint = "10.99.0.1:51820"
TOML
start_node_in "$NODE" "$STATE" "$OUT/seed.toml"
wait_for 20 ip -n "$NODE" link show arvpn0 || { cat "$STATE/console.log"; fail "arvpn0 did not appear"; }
ip -n "$NODE" -br addr show arvpn0 | has 10.8.0.1/24 || fail "arvpn0 has no 10.8.0.1/24"
pass "node up with arvpn0"

# Road warrior: the config from `peer add` applied unmodified.
ctl vpn peer add laptop --conf "$OUT/laptop.conf" --svg "$OUT/laptop.svg" >"$OUT/peer-add.txt"
grep -q '^PrivateKey = ' "$OUT/laptop.conf" && grep -q '^Endpoint = 10.99.0.1:51820' "$OUT/laptop.conf" \
  && grep -q '^Address = 10.8.0.2/32' "$OUT/laptop.conf" && grep -q '^PersistentKeepalive = 25' "$OUT/laptop.conf" \
  || { cat "$OUT/laptop.conf"; fail "client config is incomplete"; }
grep -q '<svg' "$OUT/laptop.svg" || fail "no SVG QR code"
[ "$(grep -c '█\|▀\|▄' "$OUT/peer-add.txt")" -gt 10 ] || fail "no terminal QR code"
pass "peer add wrote a wg-quick config and QR codes"

wg_client "$CLI" wg0 "$OUT/laptop.conf"
wait_for 20 ip netns exec "$CLI" ping -c1 -W1 10.8.0.1 || { ip netns exec "$CLI" wg show; ctl vpn; cat "$STATE/console.log" | tail -20; fail "no ping through the tunnel"; }
[ "$(ip netns exec "$CLI" wg show wg0 latest-handshakes | awk '{print $2}')" -gt 0 ] || fail "client saw no handshake"
pass "handshake and ping node <- wireguard-go"

ip netns exec "$NODE" iperf3 -s -1 -B 10.8.0.1 -p 5201 >"$OUT/iperf-s.log" 2>&1 &
IPS=$!; on_exit "kill $IPS 2>/dev/null"
wait_for 10 ip netns exec "$NODE" sh -c 'ss -ltn | grep -q :5201'
ip netns exec "$CLI" timeout 30 iperf3 -c 10.8.0.1 -p 5201 -n 20M -J >"$OUT/iperf-c.json" || fail "TCP transfer through the tunnel failed"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); b=d["end"]["sum_received"]["bytes"]; s=d["end"]["sum_sent"]["bytes"]; assert s>=20*1024*1024 and b>=16*1024*1024, (s, b)' "$OUT/iperf-c.json" || fail "TCP transfer incomplete"
pass "TCP transfer of 20 MiB through the tunnel"

ctl vpn --json >"$OUT/status.json"
python3 - "$OUT/status.json" <<'PY' || fail "vpn.status does not show the peer's handshake and traffic"
import json, sys
s = json.load(open(sys.argv[1]))
p = [p for p in s["peers"] if p["name"] == "laptop"][0]
assert s["running"] and s["backend"] == "boringtun", s
assert p["latest_handshake_secs_ago"] is not None and p["latest_handshake_secs_ago"] < 60, p
assert p["rx_bytes"] > 16_000_000 and p["tx_bytes"] > 0, p
assert p["endpoint"].startswith("10.99.0.2:"), p
PY
ctl vpn | has laptop || fail "ctl vpn does not list the peer"
pass "status: handshake, rx/tx, endpoint"

# Wrong key: the client swaps its private key; no handshake, no traffic.
GOOD_KEY=$(sed -n 's/^PrivateKey = //p' "$OUT/laptop.conf")
HS0=$(ip netns exec "$CLI" wg show wg0 latest-handshakes | awk '{print $2}')
ip netns exec "$CLI" sh -c 'umask 077; wg genkey > /tmp/'$S'.key; wg set wg0 private-key /tmp/'$S'.key'
rm -f "/tmp/$S.key"
! ip netns exec "$CLI" ping -c3 -W1 -i0.5 10.8.0.1 >/dev/null 2>&1 || fail "traffic passed with a wrong key"
[ "$(ip netns exec "$CLI" wg show wg0 latest-handshakes | awk '{print $2}')" = "$HS0" ] || fail "handshake with a wrong key"
ip netns exec "$CLI" sh -c "umask 077; echo '$GOOD_KEY' > /tmp/$S.key; wg set wg0 private-key /tmp/$S.key"; rm -f "/tmp/$S.key"
wait_for 20 ip netns exec "$CLI" ping -c1 -W1 10.8.0.1 || fail "tunnel did not come back with the right key"
pass "wrong key: no handshake; right key: back"

# Bad input: refused as a whole, with paths; nothing applied.
out=$(ctl config set vpn.peers '[{name = "bad", public_key = "nope", allowed_ips = ["10.9.0.0/24"]}]' 2>&1) && fail "malformed key accepted"
echo "$out" | has 'vpn.peers\[0\].public_key' || fail "malformed key error has no path: $out"
LAPTOP=$(ctl config show vpn --json | python3 -c 'import json,sys; p=json.load(sys.stdin)["config"]["peers"][0]; print("{name = \"%s\", public_key = \"%s\", allowed_ips = %s}" % (p["name"], p["public_key"], json.dumps(p["allowed_ips"])))')
out=$(ctl config set vpn.peers "[$LAPTOP, {name = \"site\", public_key = \"xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\", allowed_ips = [\"10.8.0.0/25\"]}]" 2>&1) && fail "overlapping allowed IPs accepted"
echo "$out" | has 'overlaps' || fail "overlap error unclear: $out"
out=$(ctl config set vpn.pool '"10.8.0.0/30"' 2>&1) || fail "pool change refused: $out"
ctl config confirm >/dev/null
# 10.8.0.1 is the node, .2 the laptop: a /30 has no address left.
out=$(ctl vpn peer add p3 2>&1) && fail "peer added to an exhausted pool"
echo "$out" | has 'no free address' || fail "pool exhausted error unclear: $out"
ctl config set vpn.pool '"10.8.0.0/24"' >/dev/null && ctl config confirm >/dev/null
# Port in use: the node keeps its working port and says why.
ip netns exec "$NODE" python3 -c 'import socket,time; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(("0.0.0.0",51999)); time.sleep(60)' &
HOLD=$!; on_exit "kill $HOLD 2>/dev/null"
wait_for 10 sh -c "ip netns exec $NODE ss -lun | grep -q :51999" || fail "could not hold UDP 51999"
ctl config set vpn.listen_port 51999 >/dev/null
wait_for 10 sh -c "\"$ALPHAREN\" ctl --state-dir \"$STATE\" vpn --json | grep -q 'already in use'" || fail "port in use not reported"
ip netns exec "$CLI" ping -c1 -W2 10.8.0.1 >/dev/null || fail "tunnel broken by a refused port change"
ctl config set vpn.listen_port 51820 >/dev/null && ctl config confirm >/dev/null
kill $HOLD 2>/dev/null || true
wait_for 10 sh -c "\"$ALPHAREN\" ctl --state-dir \"$STATE\" vpn --json | grep -q '\"error\": null'" || fail "error not cleared"
pass "bad input: malformed key, overlap, pool exhausted, port in use"

# Restart of the service: the client gets back without doing anything.
vpn_pid() { ctl services --json | jq -r '(if type == "object" then .services else . end)[] | select(.name == "vpn") | .pid'; }
# The old process serves until it has stopped: wait for the new one.
restarted() { [ "$(vpn_pid)" != "$PID0" ] && ctl vpn --json | jq -e .running; }
PID0=$(vpn_pid)
ctl restart vpn >/dev/null
wait_for 20 restarted || fail "vpn service did not restart"
wait_for 40 ip netns exec "$CLI" ping -c1 -W1 10.8.0.1 || { tail -20 "$STATE/console.log"; fail "tunnel did not come back after a vpn restart"; }
pass "vpn restart: tunnel back without client action"

# peer del: revoked at once.
ctl vpn peer del laptop >/dev/null
! ip netns exec "$CLI" ping -c3 -W1 -i0.5 10.8.0.1 >/dev/null 2>&1 || fail "traffic still passes after peer del"
st=$(ctl vpn --json) || fail "ctl vpn: $st"
has laptop <<<"$st" && fail "peer still listed"
pass "peer del: traffic stops at once"

# Site to site: node1 (LAN 192.168.51.0/24) <-> node2 (LAN 192.168.52.0/24).
N1=$NODE; N2=${S}m; L1=${S}x; L2=${S}y
ip netns add "$N2"; on_exit "ip netns del $N2"
ip link add w-a netns "$N1" type veth peer name w-b netns "$N2"
ip -n "$N1" addr add 10.98.0.1/24 dev w-a; ip -n "$N2" addr add 10.98.0.2/24 dev w-b
ip -n "$N1" link set w-a up; ip -n "$N2" link set w-b up; ip -n "$N2" link set lo up
for pair in "$N1:$L1:51" "$N2:$L2:52"; do
  IFS=: read -r n l net <<<"$pair"
  ip netns add "$l"; on_exit "ip netns del $l"
  ip link add "lan-$net" netns "$n" type veth peer name eth0 netns "$l"
  ip -n "$n" addr add "192.168.$net.1/24" dev "lan-$net"; ip -n "$n" link set "lan-$net" up
  ip -n "$l" addr add "192.168.$net.10/24" dev eth0; ip -n "$l" link set eth0 up; ip -n "$l" link set lo up
  ip -n "$l" route add default via "192.168.$net.1"
  ip netns exec "$n" sysctl -qw net.ipv4.ip_forward=1
done
P1=$(ctl vpn --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["public_key"])')
cat >"$OUT/seed2.toml" <<TOML
[vpn]
enabled = true
addresses = ["10.7.0.2/24"]
TOML
STATE2=$OUT/node2
start_node_in "$N2" "$STATE2" "$OUT/seed2.toml"
ctl2() { "$ALPHAREN" ctl --state-dir "$STATE2" "$@"; }
wait_for 20 sh -c "\"$ALPHAREN\" ctl --state-dir \"$STATE2\" vpn --json | grep -q '\"running\": true'" || fail "node2 tunnel not up"
P2=$(ctl2 vpn --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["public_key"])')
ctl2 config set vpn.peers "[{name = \"site1\", public_key = \"$P1\", endpoint = \"10.98.0.1:51820\", allowed_ips = [\"10.7.0.1/32\", \"192.168.51.0/24\"], persistent_keepalive = 25}]" >/dev/null
ctl2 config confirm >/dev/null
ctl config set vpn.addresses '["10.8.0.1/24", "10.7.0.1/24"]' >/dev/null
ctl config set vpn.peers "[{name = \"site2\", public_key = \"$P2\", endpoint = \"10.98.0.2:51820\", allowed_ips = [\"10.7.0.2/32\", \"192.168.52.0/24\"]}]" >/dev/null
ctl config confirm >/dev/null
wait_for 30 ip netns exec "$L1" ping -c1 -W1 192.168.52.10 || { ctl2 vpn; ctl vpn; tail -20 "$STATE2/console.log"; fail "LAN hosts do not reach each other"; }
ip netns exec "$L2" ping -c1 -W1 192.168.51.10 >/dev/null || fail "LAN2 -> LAN1 failed"
pass "site to site: LAN hosts reach each other through the tunnel"
echo "vpn: all passed"
