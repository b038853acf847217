#!/usr/bin/env bash
# The console's VPN page, end to end: a node in a namespace, headless
# Chromium (Playwright) in the same namespace adds a site-to-site peer
# (after its field errors) and a device; the device's QR code, read back
# by zbarimg from a screenshot, is the downloaded wg-quick config, and a
# wireguard-go client in a second namespace set up from it pings the
# node; the page shows its handshake and traffic, disables it (no more
# traffic), enables it, deletes it (gone from `ctl vpn`). The private key
# is nowhere in the state directory. Screenshots in $OUT.
. "$(dirname "$0")/../lib.sh"
. "$ROOT/tests/vpn-lib.sh"
command -v zbarimg >/dev/null || fail "needs zbarimg (zbar-tools, scripts/deps.sh)"
browser_deps

S=vc$$
NODE=${S}n; CLI=${S}c
ns_pair "$NODE" "$CLI" 10.97.0.1 10.97.0.2
STATE=$OUT/node
rm -rf "$STATE" "$OUT"/vpn-*; mkdir -p "$STATE"
cat >"$OUT/seed.toml" <<TOML
[vpn]
enabled = true
listen_port = 51820
addresses = ["10.8.0.1/24"]
pool = "10.8.0.0/24"
endpoint = "10.97.0.1:51820"
TOML
start_node_in "$NODE" "$STATE" "$OUT/seed.toml"
BASE=https://127.0.0.1:8443   # the dev port, inside the node's namespace
inns() { ip netns exec "$NODE" "$@"; }
wait_for 20 inns curl -skf "$BASE/api/v1/health" || { tail -20 "$STATE/console.log"; fail "web did not come up"; }
PASSWORD="correct horse"
inns curl -sk --max-time 30 -H 'content-type: application/json' \
  --data "{\"code\":\"$(cat "$STATE/setup-code")\",\"admin_password\":\"$PASSWORD\",\"hostname\":\"node1\"}" \
  "$BASE/api/v1/setup" >"$OUT/setup.json" || fail "setup"
# Chromium runs in the node's namespace (the dev port is on loopback) and
# aborts what it loads with ERR_NETWORK_CHANGED when an address or link
# there changes: it starts only once arvpn0 is up with its address.
tunnel_up() { ip -n "$NODE" link show arvpn0 | has '[<,]UP[,>]' && ip -n "$NODE" -br addr show arvpn0 | has ' 10\.8\.0\.1/24'; }
wait_for 20 tunnel_up || { ip -n "$NODE" addr show arvpn0; tail -20 "$STATE/console.log"; fail "arvpn0 did not come up with 10.8.0.1/24"; }
wait_for 20 net_settled "$NODE" || { ip -n "$NODE" addr; fail "addresses in $NODE still tentative after 20 s"; }
pass "node set up, tunnel up"

# browser PHASE [ARG]: one phase of tests/browser/vpn.mjs in the node's namespace.
browser() {
  TEST_OUT=$OUT timeout 120 ip netns exec "$NODE" node "$DIR/vpn.mjs" "$BASE" "$PASSWORD" "$@" \
    || fail "browser phase $1 (screenshots in $OUT)"
}
# pings: whether the client reaches the node through the tunnel now.
pings() { ip netns exec "$CLI" ping -c1 -W1 10.8.0.1 >/dev/null 2>&1; }

SITE_KEY=$(wg genkey | wg pubkey)
browser add "$SITE_KEY"
ctl vpn --json >"$OUT/status-added.json"
python3 - "$OUT/status-added.json" "$SITE_KEY" <<'PY' || fail "ctl vpn does not show what the page added"
import json, sys
s = json.load(open(sys.argv[1]))
p = {p["name"]: p for p in s["peers"]}
assert p["branch"]["public_key"] == sys.argv[2] and p["branch"]["configured_endpoint"] == "10.97.0.9:51820", p
assert p["branch"]["allowed_ips"] == ["192.168.52.0/24"], p
assert p["phone"]["allowed_ips"] == ["10.8.0.2/32"] and p["phone"]["enabled"], p
PY
pass "site and device added through the page are in ctl vpn"

# The QR code as the page showed it (a screenshot of the image) decodes to
# the downloaded file, a wg-quick config for this node.
zbarimg --raw -q "$OUT/vpn-qr.png" >"$OUT/vpn-qr.txt" 2>"$OUT/zbarimg.err" || fail "zbarimg found no QR code in $OUT/vpn-qr.png"
python3 - "$OUT/vpn-qr.txt" "$OUT/vpn-device.conf" <<'PY' || fail "the QR code is not the downloaded config"
import sys
qr, conf = (open(p).read().strip() for p in sys.argv[1:])
assert qr == conf, (qr, conf)
PY
grep -q '^\[Interface\]' "$OUT/vpn-qr.txt" && grep -q '^PrivateKey = ' "$OUT/vpn-qr.txt" \
  && grep -q '^Address = 10.8.0.2/32' "$OUT/vpn-qr.txt" && grep -q '^\[Peer\]' "$OUT/vpn-qr.txt" \
  && grep -q '^Endpoint = 10.97.0.1:51820' "$OUT/vpn-qr.txt" \
  || { cat "$OUT/vpn-qr.txt"; fail "the QR code is not a wg-quick config for this node"; }
PRIV=$(sed -n 's/^PrivateKey = //p' "$OUT/vpn-qr.txt")
! grep -rqaF "$PRIV" "$STATE" || fail "the device's private key is stored on the node"
pass "QR code decodes (zbarimg) to the downloaded wg-quick config; the private key is not on the node"

# Not wg0: wireguard-go's UAPI socket (/var/run/wireguard/IF.sock) is
# outside the namespace, shared with vpn.sh's client when both run.
wg_client "$CLI" wgcon0 "$OUT/vpn-qr.txt"
wait_for 20 pings || { ip netns exec "$CLI" wg show; ctl vpn; tail -20 "$STATE/console.log"; fail "no ping through the tunnel with the QR code's config"; }
ip netns exec "$CLI" ping -c5 -i0.2 -s1000 -W1 10.8.0.1 >/dev/null || fail "pings lost through the tunnel"
pass "wireguard-go with the scanned config pings the node"

browser handshake
pass "the page shows the device's handshake and traffic"

browser disable
ctl vpn --json | python3 -c 'import json,sys; p=[p for p in json.load(sys.stdin)["peers"] if p["name"]=="phone"][0]; assert p["enabled"] is False, p' \
  || fail "ctl vpn does not show the device disabled"
ctl config show vpn --json | has '"enabled": false' || fail "the config does not hold the device as disabled"
! ip netns exec "$CLI" ping -c3 -W1 -i0.5 10.8.0.1 >/dev/null 2>&1 || fail "traffic passes from a disabled device"
pass "disabled from the page: no traffic"

browser enable
wait_for 30 pings || fail "the device does not come back when enabled"
pass "enabled from the page: traffic again"

browser delete
st=$(ctl vpn --json) || fail "ctl vpn: $st"
python3 -c 'import json,sys; n=[p["name"] for p in json.load(sys.stdin)["peers"]]; assert n == ["branch"], n' <<<"$st" \
  || fail "the device is still in ctl vpn: $st"
! ip netns exec "$CLI" ping -c3 -W1 -i0.5 10.8.0.1 >/dev/null 2>&1 || fail "traffic passes after delete"
ctl config history --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
r = (d["revisions"] if isinstance(d, dict) else d)[0]
assert r["comment"] == "vpn peer del phone" and r["author"] == "admin", r' || fail "the delete is not a revision by admin"
pass "deleted from the page: gone from ctl vpn, no traffic"
echo "vpn-console: all passed"
