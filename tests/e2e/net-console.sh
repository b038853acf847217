#!/usr/bin/env bash
# The console's Network page, with the node in its own network namespace
# managing eth0 (a veth whose other end is up in the same namespace): the
# page shows eth0 with its static address; moving that address in the
# page's form shows the commit-confirm banner with its countdown, and
# without a confirm the node puts the old address back, which the page
# then shows. Nothing leaves the namespace this script creates.
. "$(dirname "$0")/../lib.sh"
browser_deps
T=$(mktemp -d /tmp/alpharen-netui.XXXXXX); chmod 711 "$T"   # service users (ar-*) pass through to the state dir
on_exit "rm -rf $T"
STATE=$T/state
N=arn-netui-$$
ip netns add $N; on_exit "ip netns del $N"
inN() { ip netns exec $N "$@"; }
# No IPv6 here: a link-local address finishing duplicate detection a
# second after the link comes up is a network change to Chromium, which
# then aborts the page it is loading (net::ERR_NETWORK_CHANGED).
inN sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
inN ip link set lo up
inN ip link add eth0 type veth peer name p0
inN ip link set p0 up
cat >"$T/seed.toml" <<EOC
[node]
hostname = "netui"
confirm_timeout = 30
[network]
manage = true
[[network.interfaces]]
name = "eth0"
addresses = ["10.99.0.2/24"]
EOC
seed_ports "$T/seed.toml"
mkdir -p "$STATE"
# Not through inN: $! must be the node itself (ip execs it), not a
# subshell whose kill would leave the node running after the test.
ip netns exec $N "$ALPHAREN" run --state-dir "$STATE" --dev --config "$T/seed.toml" >"$STATE/console.log" 2>&1 &
NODE_PID=$!
_node_dirs+=("$STATE")
on_exit "kill $NODE_PID 2>/dev/null; wait $NODE_PID 2>/dev/null"
BASE=https://127.0.0.1:$HTTPS_PORT PASSWORD="correct horse battery"
wait_for 20 inN curl -skf "$BASE/api/v1/health" || { cat "$STATE/console.log"; fail "web did not come up"; }
inN curl -skf -H 'content-type: application/json' \
  --data "{\"code\":\"$(cat "$STATE/setup-code")\",\"admin_password\":\"$PASSWORD\",\"hostname\":\"netui\"}" \
  "$BASE/api/v1/setup" >/dev/null || fail "setup"
has_addr() { inN ip -o addr show dev eth0 | has -F " $1 "; }
wait_for 20 has_addr 10.99.0.2/24 || fail "eth0 did not get 10.99.0.2/24"

inN env TEST_OUT="$OUT" timeout 150 node "$DIR/net.mjs" "$BASE" "$PASSWORD" ||
  { tail -n 20 "$STATE/log/net.log"; ctl config history; fail "Network page (screenshots in $OUT)"; }
has_addr 10.99.0.2/24 && ! has_addr 10.99.0.3/24 || fail "eth0 after the revert: $(inN ip -o addr show dev eth0)"
ctl config history | has -i "revert" || fail "history does not show the revert"
pass "Network page: eth0's address moved in the form, the banner counted down, the node reverted it and the page shows the old address"
