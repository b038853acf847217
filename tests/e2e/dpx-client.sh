#!/usr/bin/env bash
# ARDPX dyndns client end to end, two nodes on loopback: node A serves the
# zone and /nic/update; node B's `[dpx.client]` finds its address through a
# check URL and keeps `lan1.<zone>` current at A over HTTPS (trusting A's
# self-signed certificate). A wrong password halts B's client after one
# `badauth` instead of retrying.
. "$(dirname "$0")/../lib.sh"
. "$ROOT/tests/dpx-lib.sh"

W=$(mktemp -d /tmp/dpx-client.XXXXXX); on_exit "rm -rf $W"
chmod 711 "$W"   # services run as their own users and must reach $W/a
ZONE=dpx.test.
DNS_PORT=$(free_ports 1)

# Node A: the provider.
seed_ports "$W/a.toml"; A_HTTPS=$HTTPS_PORT
cat >>"$W/a.toml" <<TOML
[node]
hostname = "pub"
[dpx]
zone = "$ZONE"
port = $DNS_PORT
[[dpx.dyndns.users]]
name = "lan1"
hostnames = ["lan1.dpx.test"]
TOML
start_node "$W/a" --config "$W/a.toml"; A_PID=$NODE_PID
STATE=$W/a
{ cat "$W/a.toml"; printf '[secrets]\n"dpx.dyndns.lan1" = "lan1-pass"\n'; } >"$W/a-secrets.toml"
ctl config apply --file "$W/a-secrets.toml" >/dev/null || fail "secrets not applied on A"
wait_for 20 test -s "$W/a/tls/cert.pem" || fail "A has no certificate"

# The check URL: answers B's "public" address.
read -r CHECK_PORT < <(free_ports 1)
mkdir -p "$W/check"; echo "Current IP Address: 192.0.2.99" >"$W/check/ip"
(cd "$W/check" && exec /usr/bin/python3 -m http.server "$CHECK_PORT" --bind 127.0.0.1) >"$W/check.log" 2>&1 &
CHECK=$!; on_exit "kill $CHECK 2>/dev/null"
wait_for 10 curl -sf "http://127.0.0.1:$CHECK_PORT/ip" || fail "check URL server did not start"

# Node B: the client.
seed_ports "$W/b.toml"
client_cfg() { # client_cfg PASSWORD
  cat "$W/b.toml"
  cat <<TOML
[node]
hostname = "lan1"
[dpx.client]
server = "https://localhost:$A_HTTPS"
hostname = "lan1.dpx.test"
username = "lan1"
check_url = "http://127.0.0.1:$CHECK_PORT/ip"
ca_file = "$W/a/tls/cert.pem"
interval = 3600
[secrets]
"dpx.client.password" = "$1"
TOML
}
start_node "$W/b" --config "$W/b.toml"
STATE=$W/b
client_cfg lan1-pass >"$W/b-client.toml"
ctl config apply --file "$W/b-client.toml" >/dev/null || fail "client config refused on B"
wait_for 30 bash -c "dig @127.0.0.1 -p $DNS_PORT +short +time=1 +tries=1 lan1.$ZONE A | grep -q '^192.0.2.99$'" \
  || { ctl dpx; ctl logs dpx | tail; fail "B's address did not reach A's zone"; }
wait_for 10 bash -c "'$ALPHAREN' ctl --state-dir '$W/b' dpx | grep -q 'lan1.dpx.test 192.0.2.99 (ok, answer: good 192.0.2.99)'" \
  || { ctl dpx; fail "ctl dpx on B does not show the accepted update"; }
pass "B's dyndns client updated lan1.$ZONE at A over HTTPS (good)"

# A reload that leaves [dpx.client] alone keeps the client and what it
# registered: no second update (a provider counts those as abuse).
b_log() { "$ALPHAREN" ctl --state-dir "$W/b" logs dpx -n 1000; }
reloads=$(b_log | grep -c 'configuration reloaded')
{ client_cfg lan1-pass; printf '[[dpx.routes]]\nhost = "x.lan1.dpx.test"\nbackend = "http://127.0.0.1:9"\n'; } >"$W/b-route.toml"
ctl config apply --file "$W/b-route.toml" >/dev/null || fail "route change refused on B"
wait_for 10 bash -c "[ \$('$ALPHAREN' ctl --state-dir '$W/b' logs dpx -n 1000 | grep -c 'configuration reloaded') -gt $reloads ]" \
  || fail "B's dpx did not reload after a config change"
[ "$(b_log | grep -c 'dyndns update sent')" = 1 ] \
  || { b_log | grep 'dyndns update sent'; fail "B sent its unchanged address again after a reload"; }
pass "a reload that does not touch [dpx.client] sends no second update"

# A wrong password: one badauth, then the client halts.
client_cfg wrong-pass | sed 's/^interval = 3600/interval = 3601/' >"$W/b-wrong.toml"
echo "Current IP Address: 192.0.2.100" >"$W/check/ip"
ctl config apply --file "$W/b-wrong.toml" >/dev/null || fail "client config refused on B"
wait_for 30 bash -c "'$ALPHAREN' ctl --state-dir '$W/b' dpx | grep -q '(halted, answer: badauth'" \
  || { ctl dpx; ctl logs dpx | tail; fail "badauth did not halt the client"; }
[ "$(grep -c 'dyndns: bad credentials' <("$ALPHAREN" ctl --state-dir "$W/a" logs web -n 1000))" = 1 ] \
  || fail "A saw more than one bad login from the halted client"
[ "$(q lan1.$ZONE A)" = 192.0.2.99 ] || fail "a refused update changed A's zone"
pass "badauth halts the client after one attempt"
