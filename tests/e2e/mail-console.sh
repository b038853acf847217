#!/usr/bin/env bash
# The console's Mail page: with the smarthost down, queued mails show
# their last error and one is deleted in the browser; with it up, "Retry
# now" delivers the other to the aiosmtpd sink, the deleted one never
# arrives, and the page's test mail does. The relay form: a smarthost
# without a host is refused on its field; "Test connection" of the form
# as filled in fails with a wrong password and succeeds with the right
# one at a second sink that requires AUTH; saved, the password is in the
# secret store only and mail goes through that sink.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../mail-lib.sh"
browser_deps
STATE=$(mktemp -d /tmp/alpharen-mailui.XXXXXX); on_exit "rm -rf $STATE"
P=$(free_ports 1); SP=$(free_ports 1)
cat >"$STATE/seed.toml" <<EOT
[node]
hostname = "n1"
[mail]
admin_recipients = ["ops@example.net"]
[mail.listen]
port = $P
[mail.relay]
mode = "smarthost"
host = "127.0.0.1"
port = $SP
tls = "none"
EOT
seed_ports "$STATE/seed.toml"
console_node "$STATE" n1
wait_for 20 bash -c "exec 3<>/dev/tcp/127.0.0.1/$P" || fail "mail did not listen"
# The smarthost is down: both stay queued after their first attempt.
ctl mail test ops@example.net | has queued || fail "ctl mail test"
ctl mail test drop@example.net | has queued || fail "ctl mail test"
tried() { ctl --json mail queue | jq -e '.messages | length == 2 and all(.[]; .attempts >= 1 and .last_error != null)' >/dev/null; }
wait_for 30 tried || { ctl mail queue; fail "the mails were not tried"; }

browse() { TEST_OUT=$OUT timeout 120 node "$DIR/mail.mjs" "$BASE" "$PASSWORD" "$@"; }
browse stuck || fail "Mail page: stuck (screenshots in $OUT)"
ctl --json mail queue | jq -e '.messages | length == 1 and .[0].to == ["ops@example.net"]' >/dev/null ||
  fail "after the delete the queue is: $(ctl --json mail queue)"
pass "the stuck mails show their error; the one deleted in the browser is gone from the spool"

start_sink "$STATE" "$SP"
browse retry || fail "Mail page: retry (screenshots in $OUT)"
wait_for 20 bash -c "grep -qs 'X-Sink-To: form@example.net' '$STATE'/sink/*.eml" || fail "the page's test mail did not arrive"
grep -qs 'X-Sink-To: ops@example.net' "$STATE"/sink/*.eml || fail "the retried mail did not arrive"
grep -qs 'drop@example.net' "$STATE"/sink/*.eml && fail "the deleted mail was delivered"
pass "Retry now delivered the stuck mail; the test mail from the page arrived; the deleted one did not"

ctl mail test-relay | has "127.0.0.1:$SP: connected (TLS none)" || fail "ctl mail test-relay against the running sink"
AP=$(free_ports 1); mkdir -p "$STATE/auth"
start_sink "$STATE/auth" "$AP" --auth relayuser:s3cret-relay
browse relay "$AP" || fail "Mail page: relay form (screenshots in $OUT)"
ctl mail test-relay | has "127.0.0.1:$AP: connected (TLS none, logged in)" || fail "ctl mail test-relay after the form saved the relay"
"$ALPHAREN" ctl --state-dir "$STATE" --json config history | jq -e '.revisions[0] | .comment == "mail relay" and .author == "admin"' >/dev/null ||
  fail "the relay form's save is not a revision by admin"
ctl config export | has s3cret-relay && fail "the relay password is in the configuration"
[ -d "$STATE/log" ] || fail "no log directory at $STATE/log"
grep -rqF s3cret-relay "$STATE/log" && fail "the relay password is in a log"
ctl mail test via-auth@example.net | has queued || fail "ctl mail test through the saved relay"
wait_for 20 bash -c "grep -qs 'X-Sink-To: via-auth@example.net' '$STATE'/auth/sink/*.eml" || fail "mail did not go through the relay saved by the form"
pass "relay form: tested before saving (wrong and right password), saved as a revision, password only in the secret store, mail goes through it"
