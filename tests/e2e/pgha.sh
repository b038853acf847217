#!/usr/bin/env bash
# pgha against real PostgreSQL 15 and OpenSSH: two servers streaming
# (synchronous standby) in their own namespaces, the controller in a third,
# an HTTP referee in a fourth (tests/pgha-lib.sh). Checks, in order:
#  1. kill the master's postgres → promotion after the grace, every
#     committed transaction on the new master, the old master rebuilt as a
#     streaming replica (data folder moved aside, not deleted);
#  2. controller cut from the master while the referee sees it → no promotion;
#  3. master cut from everyone → fencing attempted and logged, promotion,
#     and once it is back, two masters → the old one rebuilt;
#  4. backups: the instance zipped on its host (after a server that fails),
#     sent to the storage namespace, two kept; the sync folder rsynced from
#     the node without its excluded paths; a run with the storage cut
#     fails with an alert;
#  5. a server's SSH host key changes → the group halts, alert logged.
# After 1, the console's PostgreSQL HA page (Chromium in the node's
# namespace) names the new master.
. "$(dirname "$0")/../lib.sh"
. "$ROOT/tests/pgha-lib.sh"
browser_deps
pgha_user

T=$(mktemp -d /tmp/pgha-e2e.XXXXXX); chmod 755 "$T"
on_exit "rm -rf $T"
GRACE=4
pg_net
sshd_for A; sshd_for B
pg_pair
referee
storage
BACKUP=1 controller $GRACE
LOG=$STATE/log/pgctrl_main.log
wait_for 30 healthy_with 0 || { pgha_status; fail "group not healthy with A as master"; }
ssh_up() { [ "$(group 'servers[0].ssh_state')" = up ] && [ "$(group 'servers[1].ssh_state')" = up ]; }
wait_for 30 ssh_up || { pgha_status; fail "no SSH to A and B"; }
pass "A master, B streaming, both hosts reachable over SSH"

# 1. kill the master
sql A "SELECT sync_state FROM pg_stat_replication" | has -x sync || fail "B is not a synchronous standby"
sql A "CREATE TABLE t (i int PRIMARY KEY)" >/dev/null
for i in $(seq 1 200); do echo "INSERT INTO t VALUES ($i);"; done |
  in_ns A runuser -u postgres -- $PGBIN/psql -X -q -v ON_ERROR_STOP=1 -h "${IP[A]}" -U postgres -d postgres
kill -9 "$(postmaster_pid A)"
wait_for 30 is_primary B || { pgha_status; cat "$LOG"; fail "B was not promoted"; }
[ "$(sql B 'SELECT count(*) FROM t')" = 200 ] || fail "committed rows missing on the new master"
has "action fence 10.66.0.1" "$LOG" || fail "no fencing before the promotion"
pass "A killed: B promoted after the grace with all 200 committed transactions"
wait_for 120 healthy_with 1 || { pgha_status; cat "$LOG"; fail "A was not rebuilt as a replica of B"; }
is_streaming A || fail "A does not stream"
ls "$T/A/backups" | has "^data\.[0-9]\{8\}T[0-9]\{6\}Z$" || fail "old data folder not kept in pg_backup_folder"
sql B "INSERT INTO t VALUES (201)" >/dev/null
replicated_to_A() { [ "$(sql A 'SELECT max(i) FROM t')" = 201 ]; }
wait_for 10 replicated_to_A || fail "a write on B did not reach A"
pass "A rebuilt from B (data folder moved aside) and streaming"
BASE=https://127.0.0.1:8443 PASSWORD="correct horse battery"
in_ns C curl -skf -H 'content-type: application/json' \
  --data "{\"code\":\"$(cat "$STATE/setup-code")\",\"admin_password\":\"$PASSWORD\",\"hostname\":\"pg\"}" \
  "$BASE/api/v1/setup" >/dev/null || fail "console setup"
in_ns C env TEST_OUT="$OUT" timeout 120 node "$DIR/pgha.mjs" "$BASE" "$PASSWORD" "${IP[B]}:5432" ||
  fail "the console does not show B as master (screenshots in $OUT)"
pass "the console's PostgreSQL HA page names B as master after the failover"

# 2. controller cut from the master B; A and the referee still see it
in_ns C ip route add blackhole "${IP[B]}/32"
situation_is() { group situation | has "^$1"; }
wait_for 30 situation_is "no quorum" ||
  { pgha_status; fail "no quorum was not reported"; }
is_primary B && ! is_primary A || fail "a partition of the controller changed the roles"
in_ns C ip route del blackhole "${IP[B]}/32"
wait_for 30 healthy_with 1 || { pgha_status; fail "group not healthy after the partition healed"; }
is_primary B && ! is_primary A || fail "roles changed after the partition healed"
pass "controller cut from the master: no quorum, no promotion"

# 3. master B cut from everyone
unplug B
wait_for 60 is_primary A || { pgha_status; cat "$LOG"; fail "A was not promoted with B unplugged"; }
has "could not fence" "$LOG" || fail "the failed fencing attempt was not logged"
pass "B unplugged: fencing attempted and logged, A promoted"
plug B
wait_for 120 healthy_with 0 || { pgha_status; cat "$LOG"; fail "B was not rebuilt after coming back"; }
has "two masters" "$LOG" || fail "the two masters were not logged"
pass "B back as a second master: rebuilt as A's replica"

# 4. backups
backup_last() { pgha_status | jq -r .backup_last; }
# backup_run: asks for a run and waits for its result; prints it.
backup_run() {
  local before; before=$(backup_last)
  "$ALPHAREN" ctl --state-dir "$STATE" pgha backup >/dev/null
  backup_changed() { [ "$(backup_last)" != "$before" ]; }
  wait_for 120 backup_changed || fail "no backup result"
  backup_last
}
STORE=$T/K/store/dow_$(date -u +%u)
backup_run | has " ok$" || { pgha_status; cat "$STATE/log/bkp_controller.log"; fail "backup failed"; }
ZIP=$(ls "$STORE"/pgdb1_10.66.0.1_*.zip | tail -1)
unzip -l "$ZIP" | has "data/PG_VERSION" || fail "the archive holds no data folder"
[ -f "$STORE/sync/a.txt" ] && [ ! -e "$STORE/sync/temp" ] || fail "sync folder not sent or exclusion ignored"
has "from 10.66.0.99 failed; trying the next server" "$STATE/log/bkp_controller.log" || fail "no fallback to the next server"
pass "backup: instance zipped on A after 10.66.0.99 failed, sync folder rsynced without temp/"
sleep 1; backup_run | has " ok$" || fail "second backup failed"
sleep 1; backup_run | has " ok$" || fail "third backup failed"
[ "$(ls "$STORE"/pgdb1_10.66.0.1_*.zip | wc -l)" = 2 ] || fail "retention did not keep exactly 2 archives"
pass "backup: retention keeps 2 archives"
unplug K
backup_run | has "failed" || fail "a backup with the storage cut did not fail"
has "alert: backup failed" "$STATE/log/bkp_controller.log" || fail "no alert for the failed backup"
plug K
pass "backup: storage cut → run failed, alert raised"

# 5. a changed host key
kill "$SSHD_B"; wait "$SSHD_B" 2>/dev/null || true
rm -f "$T/B/host_key" "$T/B/host_key.pub"
sshd_for B
wait_for 30 situation_is halted ||
  { pgha_status; fail "the group did not halt on a changed host key"; }
has "alert: halted" "$LOG" || fail "no alert for the changed host key"
has "host key changed" "$LOG" || fail "the alert does not say why"
pass "changed SSH host key: group halted, alert raised"
echo "pgha e2e: all passed"
