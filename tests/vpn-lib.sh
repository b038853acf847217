# Helpers for the vpn test and benchmark: namespaces joined by a veth, a
# node inside one of them, and a wireguard-go client configured the way
# wg-quick does it. Source after tests/lib.sh.
export WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1
for t in ip wg wireguard-go iperf3; do
  command -v "$t" >/dev/null || fail "$t is missing: run scripts/deps.sh (see scripts/deps.d/vpn.list)"
done
[ "$(id -u)" -eq 0 ] || fail "the vpn tests need root (network namespaces)"

# ns_pair A B ADDR_A ADDR_B: two fresh namespaces and a veth between them.
ns_pair() {
  local a=$1 b=$2
  ip netns add "$a"; on_exit "ip netns del $a"
  ip netns add "$b"; on_exit "ip netns del $b"
  ip link add "v-$a" netns "$a" type veth peer name "v-$b" netns "$b"
  ip -n "$a" addr add "$3/24" dev "v-$a"
  ip -n "$b" addr add "$4/24" dev "v-$b"
  for n in "$a" "$b"; do ip -n "$n" link set lo up; ip -n "$n" link set "v-$n" up; done
}

# net_settled NS: no address in NS still tentative (IPv6 duplicate address
# detection runs for a second or two after a link comes up, and its end
# is an address change): a browser started in NS before that aborts what
# it loads with ERR_NETWORK_CHANGED.
net_settled() { [ -z "$(ip -n "$1" addr show tentative)" ]; }

# start_node_in NS DIR SEED: `alpharen run --dev` inside NS, waits for the socket.
start_node_in() {
  local ns=$1 dir=$2 seed=$3
  mkdir -p "$dir"
  ip netns exec "$ns" "$ALPHAREN" run --state-dir "$dir" --dev --config "$seed" >"$dir/console.log" 2>&1 &
  local pid=$!
  _node_dirs+=("$dir")
  on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
  wait_for 20 "$ALPHAREN" ctl --state-dir "$dir" status || { cat "$dir/console.log"; fail "node in $dir did not start"; }
}

# wg_client NS IF CONF: wireguard-go interface IF in NS set up from a wg-quick
# file as wg-quick would: Address/DNS stripped for `wg setconf`, then
# addresses, MTU and a route per AllowedIPs.
wg_client() {
  local ns=$1 ifc=$2 conf=$3
  if ! ip -n "$ns" link show "$ifc" >/dev/null 2>&1; then
    ip netns exec "$ns" wireguard-go -f "$ifc" >"$OUT/wireguard-go-$ifc.log" 2>&1 &
    local pid=$!
    on_exit "kill $pid 2>/dev/null"
    wait_for 10 ip -n "$ns" link show "$ifc" || fail "wireguard-go did not create $ifc"
    wait_for 10 test -S "/var/run/wireguard/$ifc.sock" || fail "wireguard-go has no UAPI socket"
  fi
  grep -vE '^[[:space:]]*(Address|DNS|MTU|Table|PreUp|PostUp|PreDown|PostDown|SaveConfig)[[:space:]]*=' "$conf" >"$conf.stripped"
  ip netns exec "$ns" wg setconf "$ifc" "$conf.stripped"
  ip -n "$ns" addr flush dev "$ifc"
  local a r
  for a in $(sed -n 's/^Address *= *//p' "$conf" | tr ',' ' '); do ip -n "$ns" addr add "$a" dev "$ifc"; done
  ip -n "$ns" link set "$ifc" mtu 1420 up
  for r in $(sed -n 's/^AllowedIPs *= *//p' "$conf" | tr ',' ' '); do ip -n "$ns" route replace "$r" dev "$ifc"; done
}
