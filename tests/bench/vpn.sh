#!/usr/bin/env bash
# WireGuard throughput of the vpn service (boringtun's protocol core, our
# packet path with TUN and UDP offloads) against wireguard-go, in the same
# run: iperf3 TCP through
#   1. the bare veth between two namespaces (the ceiling),
#   2. node (alpharen serve vpn) <-> wireguard-go client (mixed), the
#      client set up from `ctl vpn peer add` output,
#   3. wireguard-go <-> wireguard-go,
#   4. node <-> node (ours at both ends, site to site).
# Both directions (client->server and -R). CPU is the server-side tunnel
# process's utime+stime delta (/proc/<pid>/stat) over the transfer, given
# as cores busy per Gbit/s. RUNS runs each way: medians, spread, ratios of
# the medians. Not a pass/fail test, but a failed iperf3 stops it.
#   RUNS=3 SECS=10 tests/bench/vpn.sh
SECS=${SECS:-10}
TEST_OUT=$(mktemp -d /tmp/vpn-bench.XXXXXX); export TEST_OUT
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/vpn-lib.sh"
on_exit "rm -rf $TEST_OUT"
TICK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# iperf NS_CLIENT SERVER_IP NS_SERVER PID_FOR_CPU [-R] -> "gbps cores"
_iperf() {
  local cns=$1 ip=$2 sns=$3 pid=$4; shift 4
  ip netns exec "$sns" iperf3 -s -1 -B "$ip" -p 5301 >/dev/null 2>&1 &
  local spid=$!
  wait_for 10 sh -c "ip netns exec $sns ss -ltn | grep -q :5301"
  local c0=0 t0; t0=$(date +%s.%N)
  [ "$pid" != - ] && c0=$(cpu_ticks "$pid")
  ip netns exec "$cns" iperf3 -c "$ip" -p 5301 -t "$SECS" -J "$@" >"$OUT/iperf.json" || { cat "$OUT/iperf.json"; fail "iperf3 -c $ip $* exited $?"; }
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
# measure NAME NS_CLIENT SERVER_IP NS_SERVER PID_FOR_CPU: RUNS runs each way;
# fills NAME_to, NAME_from (Gbit/s) and NAME_cpu_to, NAME_cpu_from (cores
# busy per Gbit/s) with the values of every run, space separated.
measure() {
  local name=$1 r g c; shift
  local to="" from="" cto="" cfrom=""
  for r in $(seq 1 "$RUNS"); do
    r=$(_iperf "$@"); read -r g c <<<"$r"; to+=" $g"; cto+=" $(ratio "$c" "$g")"
    r=$(_iperf "$@" -R); read -r g c <<<"$r"; from+=" $g"; cfrom+=" $(ratio "$c" "$g")"
  done
  printf -v "${name}_to" %s "$to"; printf -v "${name}_from" %s "$from"
  printf -v "${name}_cpu_to" %s "$cto"; printf -v "${name}_cpu_from" %s "$cfrom"
}

echo "load average at the start: $(cut -d" " -f1-3 /proc/loadavg)"
S=vb$$
# --- 1. bare veth --------------------------------------------------------
ns_pair ${S}a ${S}b 10.99.1.1 10.99.1.2
measure veth ${S}b 10.99.1.1 ${S}a -

# --- 2. node <-> wireguard-go client (mixed) --------------------------
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
vpn_pid() { "$ALPHAREN" ctl --state-dir "$1" services --json | python3 -c 'import json,sys; d=json.load(sys.stdin); s=d["services"] if isinstance(d,dict) else d; print([x["pid"] for x in s if x["name"]=="vpn"][0])'; }
VPN_PID=$(vpn_pid "$STATE")
measure ours ${S}c 10.8.0.1 ${S}n "$VPN_PID"

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
measure wgo ${S}h 10.9.0.1 ${S}g "$WGO_PID"

# --- 4. node <-> node -----------------------------------------------------
ns_pair ${S}p ${S}q 10.99.4.1 10.99.4.2
for n in p:10.6.0.1 q:10.6.0.2; do
  printf '[vpn]\nenabled = true\naddresses = ["%s/24"]\n' "${n#*:}" >"$OUT/seed-${n%%:*}.toml"
  start_node_in "${S}${n%%:*}" "$OUT/${n%%:*}" "$OUT/seed-${n%%:*}.toml"
done
on() { local d=$1; shift; "$ALPHAREN" ctl --state-dir "$OUT/$d" "$@"; }
wait_for 20 sh -c "\"$ALPHAREN\" ctl --state-dir $OUT/p vpn --json | grep -q '\"running\": true'" || fail "node p: no tunnel"
wait_for 20 sh -c "\"$ALPHAREN\" ctl --state-dir $OUT/q vpn --json | grep -q '\"running\": true'" || fail "node q: no tunnel"
key() { on "$1" vpn --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["public_key"])'; }
KP=$(key p); KQ=$(key q)
on p config set vpn.peers "[{name = \"q\", public_key = \"$KQ\", endpoint = \"10.99.4.2:51820\", allowed_ips = [\"10.6.0.2/32\"]}]" >/dev/null
on q config set vpn.peers "[{name = \"p\", public_key = \"$KP\", endpoint = \"10.99.4.1:51820\", allowed_ips = [\"10.6.0.1/32\"]}]" >/dev/null
wait_for 20 ip netns exec ${S}q ping -c1 -W1 10.6.0.1 || fail "no node <-> node tunnel"
measure both ${S}q 10.6.0.1 ${S}p "$(vpn_pid "$OUT/p")"

echo "iperf3 TCP, $SECS s per run, $RUNS runs each way, $(nproc) cores; CPU = server-side tunnel process, cores busy per Gbit/s"
# shellcheck disable=SC2154,SC2086 # set by measure; the lists split into values on purpose
for side in veth ours both wgo; do
  to=${side}_to from=${side}_from cto=${side}_cpu_to cfrom=${side}_cpu_from
  a=$(stats ${!to}); b=$(stats ${!from}); echo "$side: to server Gbit/s $a; from server Gbit/s $b"
  [ "$side" = veth ] && continue
  a=$(stats ${!cto}); b=$(stats ${!cfrom}); echo "$side: cpu/Gbps to server $a; from server $b"
done
# shellcheck disable=SC2154,SC2086
{ a=$(ratio "$(median $ours_to)" "$(median $wgo_to)"); b=$(ratio "$(median $ours_from)" "$(median $wgo_from)")
  c=$(ratio "$(median $both_to)" "$(median $veth_to)"); d=$(ratio "$(median $both_from)" "$(median $veth_from)"); }
echo "ratio mixed (node <-> wireguard-go) / wireguard-go (medians): $a (to server), $b (from server)"
# shellcheck disable=SC2154,SC2086
{ a=$(ratio "$(median $both_to)" "$(median $wgo_to)"); b=$(ratio "$(median $both_from)" "$(median $wgo_from)"); }
echo "ratio ours at both ends / wireguard-go (medians): $a (to server), $b (from server)"
echo "ratio ours at both ends / bare veth (medians): $c (to server), $d (from server)"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
