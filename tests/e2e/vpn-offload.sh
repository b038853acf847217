#!/usr/bin/env bash
# ARVPN packet path with and without offloads: node A (TUN with
# IFF_VNET_HDR + TSO/USO, UDP GSO/GRO) talks site to site to node B (same
# build, offloads on: ours at both ends) and to node C started with
# ALPHAREN_VPN_OFFLOAD=0 (plain TUN, one datagram per send, no GRO).
# 20 MiB of TCP each way on both links, ping, and the logged features.
# (ours <-> plain wireguard-go 0.0.20220316, which has no offloads, is
# tests/e2e/vpn.sh.)
. "$(dirname "$0")/../lib.sh"
. "$ROOT/tests/vpn-lib.sh"

S=vo$$
A=${S}a; B=${S}b; C=${S}c
ns_pair "$A" "$B" 10.97.0.1 10.97.0.2
ip netns add "$C"; on_exit "ip netns del $C"
ip link add "v-$A-c" netns "$A" type veth peer name "v-$C" netns "$C"
ip -n "$A" addr add 10.96.0.1/24 dev "v-$A-c"; ip -n "$C" addr add 10.96.0.2/24 dev "v-$C"
ip -n "$A" link set "v-$A-c" up; ip -n "$C" link set "v-$C" up; ip -n "$C" link set lo up

seed() { printf '[vpn]\nenabled = true\naddresses = ["%s"]\n' "$1" >"$OUT/seed-$2.toml"; }
seed 10.7.0.1/24 a; seed 10.7.0.2/24 b; seed 10.7.0.3/24 c
start_node_in "$A" "$OUT/a" "$OUT/seed-a.toml"
start_node_in "$B" "$OUT/b" "$OUT/seed-b.toml"
ALPHAREN_VPN_OFFLOAD=0 start_node_in "$C" "$OUT/c" "$OUT/seed-c.toml"
on() { local n=$1; shift; "$ALPHAREN" ctl --state-dir "$OUT/$n" "$@"; }
for n in a b c; do
  wait_for 20 bash -o pipefail -c "\"$ALPHAREN\" ctl --state-dir \"$OUT/$n\" vpn --json | jq -e .running" >/dev/null \
    || { tail -20 "$OUT/$n/console.log"; fail "node $n: tunnel not up"; }
done
key() { on "$1" vpn --json | jq -r .public_key; }
KA=$(key a); KB=$(key b); KC=$(key c)
on a config set vpn.peers "[{name = \"b\", public_key = \"$KB\", endpoint = \"10.97.0.2:51820\", allowed_ips = [\"10.7.0.2/32\"]}, {name = \"c\", public_key = \"$KC\", endpoint = \"10.96.0.2:51820\", allowed_ips = [\"10.7.0.3/32\"]}]" >/dev/null
on b config set vpn.peers "[{name = \"a\", public_key = \"$KA\", endpoint = \"10.97.0.1:51820\", allowed_ips = [\"10.7.0.1/32\"]}]" >/dev/null
on c config set vpn.peers "[{name = \"a\", public_key = \"$KA\", endpoint = \"10.96.0.1:51820\", allowed_ips = [\"10.7.0.1/32\"]}]" >/dev/null
# A change that needs no confirmation (nothing to roll back to) has none.
for n in a b c; do
  out=$(on "$n" config confirm 2>&1) || has 'nothing is waiting' <<<"$out" || fail "node $n: confirm: $out"
done

# What each node turned on, from its log (kernel >= 6.2 has TUN USO).
feature() { grep "$2" "$OUT/$1/log/vpn.log" | tail -1; }
feature a 'tun device' | has 'vnet_hdr=true' || { feature a 'tun device'; fail "node a: TUN offloads not enabled"; }
feature c 'tun device' | has 'vnet_hdr=false' || { feature c 'tun device'; fail "node c: TUN offloads not off"; }
feature c 'vpn socket' | has 'udp_gso_segments=1 ' || { feature c 'vpn socket'; fail "node c: UDP GSO not off"; }
if [ "$(uname -r | awk -F. '{print $1 * 100 + $2}')" -ge 602 ]; then
  feature a 'tun device' | has 'uso=true' || fail "node a: TUN USO not enabled on a >= 6.2 kernel"
  feature a 'vpn socket' | has -E 'udp_gso_segments=([2-9]|[1-9][0-9]+) ' || { feature a 'vpn socket'; fail "node a: UDP GSO not enabled"; }
fi
pass "offloads on in a and b, off in c (ALPHAREN_VPN_OFFLOAD=0)"

ip netns exec "$A" iperf3 -s -B 10.7.0.1 -p 5201 >"$OUT/iperf-s.log" 2>&1 &
IPS=$!; on_exit "kill $IPS 2>/dev/null"
wait_for 10 ip netns exec "$A" sh -c 'ss -ltn | grep -q :5201'
# xfer NS NAME [-R]: 20 MiB of TCP through the tunnel to/from node a.
xfer() {
  local ns=$1 name=$2; shift 2
  ip netns exec "$ns" timeout 60 iperf3 -c 10.7.0.1 -p 5201 -n 20M -J "$@" >"$OUT/iperf-$name.json" \
    || fail "$name: TCP transfer through the tunnel failed"
  jq -e '.end.sum_sent.bytes >= 20*1024*1024 and .end.sum_received.bytes >= 16*1024*1024' "$OUT/iperf-$name.json" >/dev/null \
    || fail "$name: TCP transfer incomplete"
}
for pair in "$B:b:10.7.0.2" "$C:c:10.7.0.3"; do
  IFS=: read -r ns n ip <<<"$pair"
  wait_for 30 ip netns exec "$ns" ping -c1 -W1 10.7.0.1 || { on a vpn; on "$n" vpn; tail -20 "$OUT/a/console.log"; fail "$n -> a: no ping"; }
  ip netns exec "$A" ping -c3 -i0.2 -W1 "$ip" >/dev/null || fail "a -> $n: no ping"
  xfer "$ns" "$n-to-a"
  xfer "$ns" "$n-from-a" -R
done
pass "20 MiB TCP each way: a <-> b (offloads both ends), a <-> c (no offloads at c)"

on a vpn --json >"$OUT/status-a.json"
jq -e '[.peers[] | select(.rx_bytes > 16000000 and .tx_bytes > 16000000 and .latest_handshake_secs_ago != null)] | length == 2' "$OUT/status-a.json" >/dev/null \
  || { cat "$OUT/status-a.json"; fail "node a's status does not count both peers' traffic"; }
pass "status counts the traffic of both peers"
echo "vpn-offload: all passed"
