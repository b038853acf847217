#!/usr/bin/env bash
# The console's DNS page: add a record in the browser (a bad value refused
# on its field), `dig` it from the node's dpx, delete it in the browser,
# `dig` gets NXDOMAIN; each change is a revision by admin in the history.
# Desktop and phone screenshots in the test output.
. "$(dirname "$0")/../lib.sh"
. "$ROOT/tests/dpx-lib.sh"
command -v dig >/dev/null || fail "needs dig (scripts/deps.sh)"
browser_deps
STATE=$(mktemp -d /tmp/alpharen-dnsui.XXXXXX)
on_exit "rm -rf $STATE"
ZONE=ui.test.
DNS_PORT=$(free_ports 1)
seed_ports "$STATE/seed.toml"
cat >>"$STATE/seed.toml" <<TOML
[dpx]
zone = "$ZONE"
port = $DNS_PORT
[[dpx.records]]
name = "www"
type = "A"
value = "192.0.2.10"
TOML
console_node "$STATE" ns1
q() { dig +short +time=2 +tries=1 -p "$DNS_PORT" @127.0.0.1 "$@"; }
wait_for 20 bash -c "[ \"\$(dig +short +time=2 +tries=1 -p $DNS_PORT @127.0.0.1 www.$ZONE A)\" = 192.0.2.10 ]" || fail "dpx does not serve www"

browse() { TEST_OUT=$OUT timeout 120 node "$DIR/dns.mjs" "$BASE" "$PASSWORD" "$@"; }
browse add || fail "DNS page: add (screenshots in $OUT)"
wait_for 10 bash -c "[ \"\$(dig +short +time=2 +tries=1 -p $DNS_PORT @127.0.0.1 www2.$ZONE A)\" = 192.0.2.77 ]" ||
  fail "dig www2.$ZONE A does not answer 192.0.2.77: $(q www2.$ZONE A)"
ttl=$(dig +noall +answer +time=2 +tries=1 -p "$DNS_PORT" @127.0.0.1 "www2.$ZONE" A | awk '{print $2}')
[ "$ttl" = 120 ] || fail "www2's TTL is $ttl, not 120"
pass "dig www2.$ZONE A -> 192.0.2.77 with TTL 120, added in the browser"
PHONE=1 browse delete || fail "DNS page on a phone: delete (screenshots in $OUT)"
status=$(dig +time=2 +tries=1 -p "$DNS_PORT" @127.0.0.1 "www2.$ZONE" A | sed -n 's/.*status: \([A-Z]*\).*/\1/p')
[ "$status" = NXDOMAIN ] || fail "after delete, www2 answers $status"
pass "deleted in the browser (phone width): dig says NXDOMAIN"
history=$("$ALPHAREN" ctl --state-dir "$STATE" --json config history)
jq -e '[.revisions[] | select(.comment | test("dns record www2 A 192.0.2.77 (added|removed)"))] | length == 2 and all(.[]; .author == "admin")' <<<"$history" >/dev/null ||
  fail "history lacks the two revisions by admin: $(jq -c '[.revisions[] | {comment, author}]' <<<"$history")"
pass "the add and the delete are revisions by admin in the history"
