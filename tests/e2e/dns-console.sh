#!/usr/bin/env bash
# The console's DNS page: add a record in the browser (a bad value refused
# on its field), `dig` it from the node's dpx, change its value in the
# browser and `dig` again, delete it in the browser,
# `dig` gets NXDOMAIN; each change is a revision by admin in the history.
# The page also lists the dyndns host with its last update (made with
# curl) and the proxy route whose health check fails (nothing listens on
# its backend) as down with the reason, and the answers dpx counted by
# type and response code (dig over UDP and TCP).
# Desktop and phone screenshots in the test output.
. "$(dirname "$0")/../lib.sh"
. "$ROOT/tests/dpx-lib.sh"
command -v dig >/dev/null || fail "needs dig (scripts/deps.sh)"
browser_deps
STATE=$(mktemp -d /tmp/alpharen-dnsui.XXXXXX)
on_exit "rm -rf $STATE"
ZONE=ui.test.
read -r DNS_PORT DEAD < <(free_ports 2 | xargs)
seed_ports "$STATE/seed.toml"
cat >>"$STATE/seed.toml" <<TOML
[dpx]
zone = "$ZONE"
port = $DNS_PORT
[dpx.dyndns]
min_interval = 0
[[dpx.dyndns.users]]
name = "alice"
hostnames = ["home.ui.test"]
[[dpx.routes]]
host = "app.ui.test"
backend = "http://127.0.0.1:$DEAD"
[dpx.routes.health]
path = "/health"
interval = 1
timeout = 1
fails = 1
[[dpx.records]]
name = "www"
type = "A"
value = "192.0.2.10"
TOML
console_node "$STATE" ns1
{ cat "$STATE/seed.toml"; printf '[node]\nhostname = "ns1"\n[secrets]\n"dpx.dyndns.alice" = "alice-pass-1"\n'; } >"$STATE/cfg.toml"
before=$(grep -c "reloaded; TLS certificate" "$STATE/log/web.log" || :)
ctl config apply --file "$STATE/cfg.toml" >/dev/null || fail "config with the dyndns password refused"
# The web service takes the new password up when it reloads (a signal
# after the revision is stored); a try before that would count as a
# wrong password.
wait_for 20 bash -c "[ \$(grep -c 'reloaded; TLS certificate' '$STATE/log/web.log') -gt $before ]" || fail "the web service did not reload after the dyndns password was set"
curl -sk -u alice:alice-pass-1 "$BASE/nic/update?hostname=home.ui.test&myip=192.0.2.50" | has -x 'good 192.0.2.50' || fail "dyndns update"
q() { dig +short +time=2 +tries=1 -p "$DNS_PORT" @127.0.0.1 "$@"; }
wait_for 20 bash -c "[ \"\$(dig +short +time=2 +tries=1 -p $DNS_PORT @127.0.0.1 www.$ZONE A)\" = 192.0.2.10 ]" || fail "dpx does not serve www"

# Answers are counted by type and response code, over UDP (the fast
# path's NXDOMAIN) and TCP (hickory's).
count() { "$ALPHAREN" ctl --state-dir "$STATE" --json dpx | jq -r "$1 // 0"; }
mx0=$(count .queries.by_type.MX); nx0=$(count .queries.by_rcode.NXDOMAIN)
for _ in 1 2 3; do q nothere.$ZONE MX >/dev/null; done
for _ in 1 2; do q +tcp nothere.$ZONE MX >/dev/null; done
mx=$(count .queries.by_type.MX); nx=$(count .queries.by_rcode.NXDOMAIN)
[ $((mx - mx0)) = 5 ] && [ $((nx - nx0)) = 5 ] ||
  fail "5 MX queries for a missing name (3 UDP, 2 TCP) counted as MX +$((mx - mx0)), NXDOMAIN +$((nx - nx0))"
pass "ctl dpx counts answers by type and response code over UDP and TCP"

browse() { TEST_OUT=$OUT timeout 120 node "$DIR/dns.mjs" "$BASE" "$PASSWORD" "$@"; }
browse add || fail "DNS page: add (screenshots in $OUT)"
wait_for 10 bash -c "[ \"\$(dig +short +time=2 +tries=1 -p $DNS_PORT @127.0.0.1 www2.$ZONE A)\" = 192.0.2.77 ]" ||
  fail "dig www2.$ZONE A does not answer 192.0.2.77: $(q www2.$ZONE A)"
ttl=$(dig +noall +answer +time=2 +tries=1 -p "$DNS_PORT" @127.0.0.1 "www2.$ZONE" A | awk '{print $2}')
[ "$ttl" = 120 ] || fail "www2's TTL is $ttl, not 120"
pass "dig www2.$ZONE A -> 192.0.2.77 with TTL 120, added in the browser"
browse edit || fail "DNS page: edit (screenshots in $OUT)"
wait_for 10 bash -c "[ \"\$(dig +short +time=2 +tries=1 -p $DNS_PORT @127.0.0.1 www2.$ZONE A)\" = 192.0.2.78 ]" ||
  fail "after the edit, dig www2.$ZONE A answers $(q www2.$ZONE A)"
ttl=$(dig +noall +answer +time=2 +tries=1 -p "$DNS_PORT" @127.0.0.1 "www2.$ZONE" A | awk '{print $2}')
[ "$ttl" = 120 ] || fail "after the edit, www2's TTL is $ttl, not 120"
pass "edited in the browser: dig www2.$ZONE A -> 192.0.2.78, TTL kept"
PHONE=1 browse delete || fail "DNS page on a phone: delete (screenshots in $OUT)"
status=$(dig +time=2 +tries=1 -p "$DNS_PORT" @127.0.0.1 "www2.$ZONE" A | sed -n 's/.*status: \([A-Z]*\).*/\1/p')
[ "$status" = NXDOMAIN ] || fail "after delete, www2 answers $status"
pass "deleted in the browser (phone width): dig says NXDOMAIN"
history=$("$ALPHAREN" ctl --state-dir "$STATE" --json config history)
jq -e '[.revisions[] | select(.comment | test("^dns record www2 A 192.0.2.7(7 added|7 changed to www2 A 192.0.2.78|8 removed)$"))] | length == 3 and all(.[]; .author == "admin")' <<<"$history" >/dev/null ||
  fail "history lacks the three revisions by admin: $(jq -c '[.revisions[] | {comment, author}]' <<<"$history")"
pass "the add, the edit and the delete are revisions by admin in the history"
