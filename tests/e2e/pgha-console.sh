#!/usr/bin/env bash
# The console's PostgreSQL HA page against a group whose two servers
# answer neither SQL nor SSH (ports nobody listens on): the page shows the
# group, both servers down with the reason, and the backup controller's
# next run; "Back up now" (after a confirm) runs the backup, whose failure
# then shows as the last run. A viewer sees the page without the buttons.
# The page after a real failover is checked in pgha.sh.
. "$(dirname "$0")/../lib.sh"
browser_deps
STATE=$(mktemp -d /tmp/alpharen-pghaui.XXXXXX); on_exit "rm -rf $STATE"
read -r PG SSH STORE < <(free_ports 3 | xargs)
cat >"$STATE/seed.toml" <<TOML
$(pgha_down_group "$SSH" "$PG")
[pgha.backup]
hours_interval = [2, 3]
storage_ssh_host = "127.0.0.1"
storage_ssh_port = $STORE
storage_ssh_user = "backup"
storage_ssh_path = "/srv/backups"
[[pgha.backup.pgdb]]
ssh_user = "postgres"
ssh_port = $SSH
pg_replica_user = "replicator"
pg_replica_pwd = "not-used"
[[pgha.backup.pgdb.servers]]
ssh_host = "127.0.0.1"
TOML
seed_ports "$STATE/seed.toml"
console_node "$STATE" pg1
down() { ctl --json pgha status | jq -e '.groups[0].servers | length == 2 and all(.[]; .role == "down" and .error != null)' >/dev/null; }
wait_for 30 down || { ctl pgha status; fail "pgha did not report both servers down"; }
ctl --json pgha status | jq -e '.backup_next > now' >/dev/null || fail "no next backup run in the status: $(ctl --json pgha status)"
pass "pgha status: both servers down with the reason, the next backup run"

printf 'watcher password 1\n' | ctl user add watcher --role viewer >/dev/null || fail "add a viewer"
TEST_OUT=$OUT timeout 180 node "$DIR/pgha.mjs" "$BASE" "$PASSWORD" || { cat "$STATE/log/bkp_controller.log"; fail "PostgreSQL HA page (screenshots in $OUT)"; }
pass "PostgreSQL HA page: the group with both servers unreachable, Back up now → its failure shown; a viewer gets no buttons"
