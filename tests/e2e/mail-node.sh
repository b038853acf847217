#!/usr/bin/env bash
# The mail service under the real supervisor: `alpharen run --dev` starts
# it, `ctl mail ...` reaches it through control.sock, swaks and
# `alpharen sendmail` mail reaches the aiosmtpd smarthost, a config change
# (SIGHUP) moves the relay.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../mail-lib.sh"
STATE=$(mktemp -d /tmp/mail-node.XXXXXX); on_exit "rm -rf $STATE"
P=$(free_ports 1); SP=$(free_ports 1); SP2=$(free_ports 1)
write_config "$STATE" "$P" "$SP" >/dev/null 2>&1 || true
rm -f "$STATE/alpharen.db"*   # seeded by `run --config` below instead
start_sink "$STATE" "$SP"
seed_ports "$STATE/cfg.toml"
start_node "$STATE" --config "$STATE/cfg.toml"
wait_for 20 bash -c "exec 3<>/dev/tcp/127.0.0.1/$P" || { cat "$STATE/console.log"; fail "mail listener not up under the supervisor"; }
ctl services | has '^mail' || { ctl services; fail "mail not in the service list"; }
relay_ok() { "$ALPHAREN" ctl --state-dir "$STATE" mail status | has "relay    smarthost 127.0.0.1:$SP"; }
wait_for 10 relay_ok || { ctl mail status; fail "ctl mail status does not show the smarthost"; }
pass "supervisor starts mail; ctl mail status answers through control.sock"

out=$(swaks --server "127.0.0.1:$P" --from a@example.org --to b@example.net --h-Subject node-swaks 2>&1 || true)
grep -q "queued as" <<<"$out" || { echo "$out"; fail "swaks not accepted"; }
echo "Subject: node-sendmail" | "$ALPHAREN" sendmail --state-dir "$STATE" -f root c@example.net || fail "alpharen sendmail exited $?"
ctl mail test ops2@example.net | has queued || fail "ctl mail test"
wait_for 20 sink_ge 3 || { ctl mail queue; fail "mail did not reach the smarthost"; }
grep -q 'X-Sink-From: root@n1' "$STATE"/sink/*.eml || fail "sendmail sender not qualified with the node name"
pass "swaks, alpharen sendmail and ctl mail test delivered via the smarthost"

q=$(ctl --json mail queue) || fail "ctl mail queue: $q"
[ "$(grep -o '"id"' <<<"$q" | wc -l)" -eq 0 ] || { echo "$q"; fail "queue not empty"; }
ctl mail notify "disk almost full" "sda1 91%" | has queued || fail "ctl mail notify"
wait_for 10 sink_ge 4 || fail "notification not delivered"
pass "ctl mail queue / notify"

# Relay moved by a config change: the supervisor sends SIGHUP.
stop_sink
start_sink "$STATE" "$SP2"
ctl config set mail.relay.port "$SP2" >/dev/null || fail "ctl config set mail.relay.port"
moved() { "$ALPHAREN" ctl --state-dir "$STATE" mail status | has ":$SP2 "; }
wait_for 10 moved || { ctl mail status; fail "relay port not re-read after the config change"; }
out=$(swaks --server "127.0.0.1:$P" --from a@example.org --to b@example.net --h-Subject after-hup 2>&1 || true)
grep -q 'queued as' <<<"$out" || { echo "$out"; fail "not accepted after reload"; }
wait_for 20 bash -c "grep -q 'Subject: after-hup' '$STATE'/sink/*.eml" || fail "not delivered to the new relay after SIGHUP"
pass "config change → SIGHUP → new relay used"
echo "mail-node: all passed"
