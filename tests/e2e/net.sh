#!/usr/bin/env bash
# The net service against real peers: the node runs inside a network
# namespace; dnsmasq (DHCP) and chronyd (NTP) run in a peer namespace,
# joined by veth pairs. Nothing leaves the namespaces this script creates.
. "$(dirname "$0")/../lib.sh"
command -v dnsmasq >/dev/null || fail "dnsmasq missing (scripts/deps.sh)"
command -v chronyd >/dev/null || fail "chronyd missing (scripts/deps.sh)"
command -v jq >/dev/null || fail "jq missing (scripts/deps.sh)"

T=$(mktemp -d "$OUT/net.XXXXXX"); chmod 711 "$T"   # service users (ar-*) pass through to the state dir
STATE=$T/state
N=arn-node-$$; P=arn-peer-$$
on_exit "ip netns del $N 2>/dev/null; ip netns del $P 2>/dev/null"
ip netns add $N; ip netns add $P
inN() { ip netns exec $N "$@"; }
inP() { ip netns exec $P "$@"; }
inN ip link set lo up; inP ip link set lo up
ip link add eth0 netns $N type veth peer name p0 netns $P
ip link add eth1 netns $N type veth peer name p1 netns $P
inP ip addr add 10.77.0.1/24 dev p0; inP ip link set p0 up
inP ip addr add 10.88.0.1/24 dev p1; inP ip link set p1 up
# 802.1Q may be missing from the kernel (no 8021q module): then the VLAN
# check is skipped, and the service only reports the failure.
VLAN_OK=0
if inN ip link add link eth1 name vtest type vlan id 4000 2>/dev/null; then inN ip link del vtest; VLAN_OK=1; fi
# An address someone else put there: the service must leave it alone.
inN ip addr add 10.88.0.99/24 dev eth1

start_dnsmasq() {
  ip netns exec $P dnsmasq --no-daemon --no-ping --port=0 --interface=p0 --bind-interfaces \
    --dhcp-range=10.77.0.100,10.77.0.150,2m --dhcp-leasefile="$T/leases" \
    --dhcp-option=option:router,10.77.0.2 --dhcp-option=option:dns-server,10.77.0.53 \
    --dhcp-option=option:classless-static-route,0.0.0.0/0,10.77.0.1,198.18.0.0/15,10.77.0.254 \
    --dhcp-option=option:mtu,1400 --dhcp-option=option:domain-name,example.test \
    --log-dhcp --log-facility="$T/dnsmasq.log" >/dev/null 2>&1 &
  DNSMASQ_PID=$!
  on_exit "kill $DNSMASQ_PID 2>/dev/null"
}
start_dnsmasq
cat >"$T/chrony.conf" <<EOC
allow 10.77.0.0/24
local stratum 8
port 123
bindaddress 10.77.0.1
cmdport 0
pidfile $T/chronyd.pid
EOC
# -x: never touch the (shared) system clock
ip netns exec $P chronyd -x -d -f "$T/chrony.conf" >"$T/chronyd.log" 2>&1 &
CHRONY_PID=$!
on_exit "kill $CHRONY_PID 2>/dev/null"

cat >"$T/seed.toml" <<EOC
[node]
hostname = "netnode"
confirm_timeout = 10
[network]
manage = true
[[network.interfaces]]
name = "eth0"
dhcp4 = true
[[network.interfaces]]
name = "eth1"
addresses = ["10.88.0.5/24", "fd00:88::5/64"]
routes = [{ dest = "198.51.100.0/24", via = "10.88.0.1", metric = 50 }]
[[network.interfaces]]
name = "eth1.10"
addresses = ["10.99.0.5/24"]
[[network.interfaces]]
name = "eth2"
addresses = ["10.66.0.5/24"]
[[network.vlans]]
id = 10
link = "eth1"
[network.time]
servers = ["10.77.0.1"]
EOC
CLOCK_BEFORE=$(date +%s)
mkdir -p "$STATE"
ip netns exec $N "$ALPHAREN" run --state-dir "$STATE" --dev --config "$T/seed.toml" >"$STATE/console.log" 2>&1 &
NODE_PID=$!
on_exit "kill $NODE_PID 2>/dev/null; wait $NODE_PID 2>/dev/null"
wait_for 20 ctl status || { cat "$STATE/console.log"; fail "node did not start"; }
pass "node runs in namespace $N"

st() { ctl --json net; }
jqnet() { st | jq -e "$1" >/dev/null; }
has_addr() { inN ip -o addr show dev "$1" | grep -c >/dev/null " $2 "; }
lacks_addr() { ! has_addr "$@"; }
dump() { { echo "--- net log"; tail -30 "$STATE/log/net.log"; echo "--- dnsmasq"; tail -8 "$T/dnsmasq.log"; inN ip addr; inN ip route; } >&2 || true; }

# DHCP: address, default route, MTU, resolver
wait_for 30 bash -c "ip netns exec $N ip -o -4 addr show dev eth0 | grep -c >/dev/null 'inet 10.77.0.1[0-9][0-9]/24'" || { dump; fail "no DHCP address on eth0"; }
LEASED=$(inN ip -o -4 addr show dev eth0 | awk '{print $4}')
pass "DHCP address $LEASED on eth0"
wait_for 5 bash -c "ip netns exec $N ip route show default | grep -c >/dev/null 'via 10.77.0.1 dev eth0'" || { dump; fail "no DHCP default route"; }
wait_for 5 bash -c "ip netns exec $N ip route show 198.18.0.0/15 | grep -c >/dev/null 'via 10.77.0.254 dev eth0'" || { dump; fail "no classless static route (option 121)"; }
inN ip route show default | has "via 10.77.0.2 " && fail "router option 3 used although option 121 was sent"
pass "default route via 10.77.0.1 and 198.18.0.0/15 via 10.77.0.254 from option 121 (option 3 ignored, RFC 3442)"
[ "$(inN cat /sys/class/net/eth0/mtu)" = 1400 ] || fail "MTU from DHCP not applied"
pass "MTU 1400 from DHCP"
wait_for 5 grep -q "nameserver 10.77.0.53" "$STATE/run/resolv.conf" || fail "resolver lacks the DHCP DNS server"
grep -q "search example.test" "$STATE/run/resolv.conf" || fail "resolver lacks the DHCP domain"
pass "resolv.conf from the lease"
grep -q "netnode" "$T/dnsmasq.log" || fail "hostname not sent to the DHCP server"
pass "hostname sent"

# Static: two addresses, a route, a VLAN; the foreign address survives
has_addr eth1 10.88.0.5/24 && has_addr eth1 fd00:88::5/64 || { dump; fail "static addresses missing"; }
inN ip route show 198.51.100.0/24 | grep -c >/dev/null "via 10.88.0.1 dev eth1 .*metric 50" || { dump; fail "static route missing"; }
if [ $VLAN_OK = 1 ]; then
  wait_for 10 has_addr eth1.10 10.99.0.5/24 || { dump; fail "VLAN eth1.10 not configured"; }
  inN ip -d link show eth1.10 | grep -c >/dev/null "vlan protocol 802.1Q id 10" || fail "eth1.10 is not VLAN 10"
else
  echo "skip: this kernel has no 802.1Q support; VLAN creation is checked on the guest kernel in qemu-boot.sh"
fi
has_addr eth1 10.88.0.99/24 || { dump; fail "foreign address was removed"; }
pass "static addresses, route, VLAN; foreign address untouched"

# Missing link reported, then configured when it appears
wait_for 5 jqnet '.missing | index("eth2")' || fail "eth2 not reported missing"
ctl net >"$T/net.txt"; grep -q "MISSING .*eth2" "$T/net.txt" || fail "ctl net does not show the missing link"
inN ip link add eth2 type veth peer name eth2p
wait_for 10 has_addr eth2 10.66.0.5/24 || { dump; fail "eth2 not configured after it appeared"; }
pass "missing eth2 reported, configured once it appeared"

# SNTP offset reported, clock left alone
wait_for 15 jqnet '.time.last.offset != null' || { st | jq .time >&2; fail "no SNTP offset"; }
st | jq -e '.time.set_clock == false and .time.clock_stepped == false and .time.last.stratum >= 8' >/dev/null || { st | jq .time >&2; fail "time status wrong"; }
NOW=$(date +%s); [ $((NOW - CLOCK_BEFORE)) -ge 0 ] && [ $((NOW - CLOCK_BEFORE)) -lt 300 ] || fail "host clock moved"
pass "SNTP offset $(st | jq .time.last.offset) s from chrony, clock untouched"
ctl net >"$T/net.txt"; grep -q "lease     $LEASED on eth0" "$T/net.txt" || { cat "$T/net.txt"; fail "ctl net does not show the lease"; }
pass "ctl net renders links, lease, dns, time"

# Reapply (SIGHUP with the same config) changes nothing
snap() { inN ip -o addr | sed "s/ tentative//; s/ dadfailed//"; inN ip route; inN ip -6 route; inN ip -o link | sed 's/ state [A-Z]*//'; }
BEFORE=$(snap)
# count PATTERN: lines of the net service's log that match (0 when none do).
count() { grep -c "$1" "$STATE/log/net.log" || [ $? = 1 ]; }
# Without 802.1Q here, a reload retries the VLAN that failed (SIGHUP clears
# the failed VLANs on purpose); that attempt changes nothing and is not counted.
applies() {
  awk -v skip="$([ "$VLAN_OK" = 1 ] || echo 'action=CreateVlan')" \
    '/INFO.*apply action=/ && (skip == "" || index($0, skip) == 0) { n++ } END { print n + 0 }' "$STATE/log/net.log"
}
APPLIES=$(applies)
[ "$APPLIES" -gt 0 ] || fail "no 'apply action' lines in the log before the reapply: the count below would prove nothing"
RELOADS=$(count "SIGHUP: reloading")
NETPID=$(ctl --json services | jq -r '.[] | select(.name=="net") | .pid')
kill -HUP "$NETPID"
wait_for 5 bash -c "[ \$(grep -c 'SIGHUP: reloading' '$STATE/log/net.log') -gt $RELOADS ]" || fail "net did not log a reload after SIGHUP"
sleep 1
[ "$(snap)" = "$BEFORE" ] || { diff <(echo "$BEFORE") <(snap) >&2; fail "reapply changed something"; }
[ "$(applies)" = "$APPLIES" ] || { grep "apply action" "$STATE/log/net.log" | tail -n 5 >&2; fail "reapply issued netlink changes"; }
pass "reapply changes nothing"

# Removing one address removes only that one
sed 's|addresses = \["10.88.0.5/24", "fd00:88::5/64"\]|addresses = ["10.88.0.5/24"]|' "$T/seed.toml" >"$T/less.toml"
ctl config apply --file "$T/less.toml" >/dev/null
ctl config confirm >/dev/null
wait_for 10 bash -c "! ip netns exec $N ip -o addr show dev eth1 | grep -c >/dev/null fd00:88::5/64" || fail "removed address still there"
has_addr eth1 10.88.0.5/24 && has_addr eth1 10.88.0.99/24 && has_addr eth0 "$LEASED" || fail "other addresses touched"
pass "removing one address removes only that one"

# Commit-confirm: move the address the admin reaches the node on and do
# not confirm: the old address is back once the timeout passes.
admin_reaches() { inP busybox ping -c 1 -W 2 "$1" >/dev/null 2>&1; }
admin_reaches 10.88.0.5 || fail "the admin in the peer namespace cannot reach 10.88.0.5"
sed 's|addresses = \["10.88.0.5/24"\]|addresses = ["10.88.0.6/24"]|' "$T/less.toml" >"$T/moved.toml"
ctl config apply --file "$T/moved.toml" >/dev/null
wait_for 10 has_addr eth1 10.88.0.6/24 || { dump; fail "moved address not applied"; }
# The new address goes on before the old one comes off (one apply, a few ms apart).
wait_for 10 lacks_addr eth1 10.88.0.5/24 || { dump; fail "old address kept after the move"; }
admin_reaches 10.88.0.5 && fail "10.88.0.5 still answers after the move"
wait_for 40 has_addr eth1 10.88.0.5/24 || { dump; fail "unconfirmed address change did not revert"; }
wait_for 10 bash -c "! ip netns exec $N ip -o addr show dev eth1 | grep -c >/dev/null 10.88.0.6/24" || fail "moved address left behind after the revert"
ctl config history | has -i "revert" || fail "history does not show the revert"
wait_for 10 admin_reaches 10.88.0.5 || fail "the admin cannot reach 10.88.0.5 after the revert"
pass "unconfirmed move of the admin's address reverted after the timeout"

# Bad input: clear errors, nothing applied
REV=$(ctl --json status | jq .revision)
cat >"$T/bad.toml" <<EOC
[[network.interfaces]]
name = "eth1"
addresses = ["10.88.0.500/24"]
gateway4 = "192.0.2.1"
[[network.vlans]]
id = 10
link = "eth1"
[[network.vlans]]
id = 10
link = "eth1"
name = "v10"
EOC
if ctl config apply --file "$T/bad.toml" >"$T/bad.out" 2>&1; then fail "bad config accepted"; fi
for p in 'network.interfaces\[0\].addresses\[0\]' 'network.interfaces\[0\].gateway4' 'network.vlans\[1\].id'; do
  grep -q "$p" "$T/bad.out" || { cat "$T/bad.out"; fail "error does not name $p"; }
done
[ "$(ctl --json status | jq .revision)" = "$REV" ] || fail "bad config changed the revision"
has_addr eth1 10.88.0.5/24 || fail "bad config changed addresses"
pass "bad network config refused with paths, nothing applied"

# SIGTERM releases the lease; a restart gets one again
ctl restart net >/dev/null
wait_for 10 grep -q "DHCPRELEASE" "$T/dnsmasq.log" || { dump; fail "no DHCPRELEASE on stop"; }
pass "lease released on SIGTERM"
wait_for 30 bash -c "ip netns exec $N ip -o -4 addr show dev eth0 | grep -c >/dev/null 'inet 10.77.0.1[0-9][0-9]/24'" || { dump; fail "no lease after restart"; }
pass "lease again after restart"

# Carrier down/up: the lease is kept while the cable is out; the client
# starts over when the carrier is back.
ACKS=$(grep -c "DHCPACK" "$T/dnsmasq.log")
ADDR=$(inN ip -o -4 addr show dev eth0 | awk '{print $4}')
inP ip link set p0 down
wait_for 10 bash -c "ip netns exec $N ip -o link show eth0 | grep -c >/dev/null NO-CARRIER" || fail "eth0 kept its carrier"
wait_for 10 jqnet '.links[] | select(.name == "eth0") | .carrier == false' || { dump; fail "net.status does not show the carrier loss"; }
sleep 1
has_addr eth0 "$ADDR" || { dump; fail "lease dropped when the carrier went"; }
inP ip link set p0 up
wait_for 30 bash -c "[ \$(grep -c DHCPACK '$T/dnsmasq.log') -gt $ACKS ]" || { dump; fail "no DHCP exchange after the carrier came back"; }
has_addr eth0 "$ADDR" || { dump; fail "no address after the carrier came back"; }
pass "carrier down: lease kept; carrier up: DHCP again"

# Renewal at T1 (60 s of a 2 min lease)
ACKS=$(grep -c "DHCPACK" "$T/dnsmasq.log")
wait_for 75 bash -c "[ \$(grep -c DHCPACK '$T/dnsmasq.log') -gt $ACKS ]" || { dump; fail "no renewal"; }
pass "lease renewed at T1"

# Server gone: the lease is kept until it expires, then removed
kill $DNSMASQ_PID; wait $DNSMASQ_PID 2>/dev/null || true
ADDR=$(inN ip -o -4 addr show dev eth0 | awk '{print $4}')
sleep 20
has_addr eth0 "$ADDR" || fail "lease dropped although not expired"
pass "server gone: lease kept"
wait_for 130 bash -c "! ip netns exec $N ip -o -4 addr show dev eth0 | grep -c >/dev/null inet" || { dump; fail "expired lease not removed"; }
inN ip route show default | grep -c >/dev/null "dev eth0" && fail "default route of expired lease remains"
has_addr eth1 10.88.0.5/24 || fail "expiry touched static addresses"
kill -0 $NODE_PID || fail "node died"
pass "expired lease removed; service still running"
echo "net: all passed"
