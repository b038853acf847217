#!/usr/bin/env bash
# WireGuard throughput of the vpn service (boringtun, one device thread)
# against wireguard-go, in the same run: iperf3 TCP through
#   1. the bare veth between two namespaces (the ceiling),
#   2. node (alpharen serve vpn) <-> wireguard-go client, the client set
#      up from `ctl vpn peer add` output,
#   3. wireguard-go <-> wireguard-go.
# Both directions (client->server and -R). CPU is the server-side tunnel
# process's utime+stime delta (/proc/<pid>/stat) over the transfer, given
# as cores busy per Gbit/s. Not a pass/fail test.
#   SECS=10 tests/bench/vpn.sh
SECS=${SECS:-10}
TEST_OUT=$(mktemp -d /tmp/vpn-bench.XXXXXX); export TEST_OUT
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/vpn-lib.sh"
on_exit "rm -rf $TEST_OUT"
TICK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# iperf NS_CLIENT SERVER_IP NS_SERVER PID_FOR_CPU [-R] -> "gbps cores"
iperf() {
  local cns=$1 ip=$2 sns=$3 pid=$4; shift 4
  ip netns exec "$sns" iperf3 -s -1 -B "$ip" -p 5301 >/dev/null 2>&1 &
  local spid=$!
  wait_for 10 sh -c "ip netns exec $sns ss -ltn | grep -q :5301"
  local c0=0 t0; t0=$(date +%s.%N)
  [ "$pid" != - ] && c0=$(cpu_ticks "$pid")
  ip netns exec "$cns" iperf3 -c "$ip" -p 5301 -t "$SECS" -J "$@" >"$OUT/iperf.json"
  local c1=0 t1; t1=$(date +%s.%N)
  [ "$pid" != - ] && c1=$(cpu_ticks "$pid")
  wait "$spid" 2>/dev/null || true
  python3 - "$OUT/iperf.json" "$c0" "$c1" "$t0" "$t1" "$TICK" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
gbps = d["end"]["sum_received"]["bits_per_second"] / 1e9
c0, c1, t0, t1, tick = map(float, sys.argv[2:])
cores = (c1 - c0) / tick / (t1 - t0)
print(f"{gbps:.3f} {cores:.2f}")
PY
}

S=vb$$
# --- 1. bare veth --------------------------------------------------------
ns_pair ${S}a ${S}b 10.99.1.1 10.99.1.2
read -r VETH _ < <(iperf ${S}b 10.99.1.1 ${S}a -)
read -r VETH_R _ < <(iperf ${S}b 10.99.1.1 ${S}a - -R)

# --- 2. node (boringtun) <-> wireguard-go client --------------------------
ns_pair ${S}n ${S}c 10.99.2.1 10.99.2.2
STATE=$OUT/node
cat >"$OUT/seed.toml" <<TOML
[vpn]
enabled = true
addresses = ["10.8.0.1/24"]
pool = "10.8.0.0/24"
endpoint = "10.99.2.1:51820"
TOML
start_node_in ${S}n "$STATE" "$OUT/seed.toml"
wait_for 20 ip -n ${S}n link show arvpn0 || fail "arvpn0 did not appear"
ctl vpn peer add bench --conf "$OUT/bench.conf" --no-qr >/dev/null
wg_client ${S}c wg0 "$OUT/bench.conf"
wait_for 20 ip netns exec ${S}c ping -c1 -W1 10.8.0.1 || fail "no tunnel"
VPN_PID=$(ctl services --json | python3 -c 'import json,sys; d=json.load(sys.stdin); s=d["services"] if isinstance(d,dict) else d; print([x["pid"] for x in s if x["name"]=="vpn"][0])')
read -r OURS OURS_CPU < <(iperf ${S}c 10.8.0.1 ${S}n "$VPN_PID")
read -r OURS_R OURS_R_CPU < <(iperf ${S}c 10.8.0.1 ${S}n "$VPN_PID" -R)

# --- 3. wireguard-go <-> wireguard-go -------------------------------------
ns_pair ${S}g ${S}h 10.99.3.1 10.99.3.2
KS=$(wg genkey); KC=$(wg genkey)
ip netns exec ${S}g wireguard-go -f wgs >"$OUT/wgs.log" 2>&1 & GS=$!; on_exit "kill $GS 2>/dev/null"
ip netns exec ${S}h wireguard-go -f wgc >"$OUT/wgc.log" 2>&1 & GC=$!; on_exit "kill $GC 2>/dev/null"
wait_for 10 ip -n ${S}g link show wgs; wait_for 10 ip -n ${S}h link show wgc
wait_for 10 test -S /var/run/wireguard/wgs.sock; wait_for 10 test -S /var/run/wireguard/wgc.sock
umask 077
echo "$KS" >"$OUT/ks"; echo "$KC" >"$OUT/kc"
ip netns exec ${S}g wg set wgs listen-port 51820 private-key "$OUT/ks" peer "$(echo "$KC" | wg pubkey)" allowed-ips 10.9.0.2/32
ip netns exec ${S}h wg set wgc private-key "$OUT/kc" peer "$(echo "$KS" | wg pubkey)" allowed-ips 10.9.0.0/24 endpoint 10.99.3.1:51820 persistent-keepalive 25
ip -n ${S}g addr add 10.9.0.1/24 dev wgs; ip -n ${S}g link set wgs mtu 1420 up
ip -n ${S}h addr add 10.9.0.2/24 dev wgc; ip -n ${S}h link set wgc mtu 1420 up
wait_for 20 ip netns exec ${S}h ping -c1 -W1 10.9.0.1 || fail "no wireguard-go tunnel"
WGO_PID=$(pgrep -f "wireguard-go -f wgs" | head -1)
read -r WGO WGO_CPU < <(iperf ${S}h 10.9.0.1 ${S}g "$WGO_PID")
read -r WGO_R WGO_R_CPU < <(iperf ${S}h 10.9.0.1 ${S}g "$WGO_PID" -R)

python3 - <<PY
rows = [
  ("bare veth", $VETH, $VETH_R, None, None),
  ("node (boringtun) <-> wireguard-go", $OURS, $OURS_R, $OURS_CPU, $OURS_R_CPU),
  ("wireguard-go <-> wireguard-go", $WGO, $WGO_R, $WGO_CPU, $WGO_R_CPU),
]
print(f"iperf3 TCP, {$SECS} s per run, $(nproc) cores; CPU = server-side tunnel process, cores busy per Gbit/s")
print(f"{'path':36} {'to server':>10} {'from server':>12} {'cpu/Gbps':>9} {'cpu/Gbps -R':>12}")
for name, a, b, c, d in rows:
    cc = f"{c/a:.2f}" if c is not None and a else "-"
    dd = f"{d/b:.2f}" if d is not None and b else "-"
    print(f"{name:36} {a:9.3f}G {b:11.3f}G {cc:>9} {dd:>12}")
print(f"ratio ours / wireguard-go: {$OURS/$WGO:.2f} (to server), {$OURS_R/$WGO_R:.2f} (from server)")
print(f"ratio ours / bare veth:    {$OURS/$VETH:.3f} (to server), {$OURS_R/$VETH_R:.3f} (from server)")
PY
