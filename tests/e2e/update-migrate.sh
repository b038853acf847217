#!/usr/bin/env bash
# A configuration schema migration rolled back with its slot
# (docs/update.md, "Configuration schema"), in development mode on a
# stand-in disk (ALPHAREN_UPDATE_TARGET). The store starts as firmware
# before the schema row left it (configuration schema 0; the row removed
# with sqlite3). Slot b's first boot on trial keeps a copy for slot a,
# migrates, and a change is made; its health check fails. Slot a boots
# next and gets the store back as it left it (schema 0, the old
# hostname), with an event and a notification. A store of a newer schema
# with no copy kept is refused with a clear error. Then b on trial again
# with a passing check: committed, the copy dropped, its change kept.
. "$(dirname "$0")/../lib.sh"
needs jq sqlite3
STATE=$(mktemp -d /tmp/alpharen-migrate.XXXXXX)
T=$(mktemp -d /tmp/alpharen-migrate-t.XXXXXX)
on_exit "rm -rf $STATE $T"
# The check runs as nobody when the supervisor runs as root.
chmod 755 "$T"
disk=$T/disk
mkdir -p "$disk/esp/loader/entries" "$disk/esp/a" "$disk/esp/b"
for s in a b; do
  truncate -s 1M "$disk/rootfs-$s"
  printf 'title ALPHA-REN slot %s\nlinux /%s/vmlinuz\noptions alpharen.slot=%s\n' $s $s $s >"$T/entry-$s.conf"
done
entries=$disk/esp/loader/entries
cp "$T/entry-a.conf" "$entries/alpharen-a.conf"
printf '{"version":"0.2.0","build_id":"e2e-v2","board":"qemu-x86_64","installed_at":1,"signer":"k"}\n' >"$disk/esp/b/slot.json"
printf 'VERSION_ID=0.2.0\nBUILD_ID=e2e-v2\nALPHAREN_BOARD=qemu-x86_64\n' >"$T/os-release"
export ALPHAREN_UPDATE_TARGET=$disk ALPHAREN_OS_RELEASE=$T/os-release
db=$STATE/alpharen.db
row() { sqlite3 "$db" "SELECT coalesce((SELECT version FROM component_schema WHERE name = 'config-document'), 'none')"; }
host() { ctl --json config show node | jq -r .config.hostname; }
stop() {
  ctl poweroff >/dev/null 2>&1 || fail "poweroff"
  wait_for 30 bash -c "! kill -0 $NODE_PID" || fail "the node did not stop"
}
trial_b() { rm -f "$entries"/alpharen-b*; cp "$T/entry-b.conf" "$entries/alpharen-b+2-1.conf"; echo b >"$disk/booted"; }

# Slot a, and a store as older firmware leaves it.
cat >"$STATE/seed.toml" <<EOF
[node]
hostname = "before"
[update.health_check]
command = "/bin/sh"
args = ["-c", "test -e $T/healthy || { echo not yet >&2; exit 3; }"]
timeout = 30
EOF
seed_ports "$STATE/seed.toml"
echo a >"$disk/booted"
start_node "$STATE" --config "$STATE/seed.toml"
[ "$(row)" = 1 ] || fail "a new store's configuration schema: $(row)"
stop
# The tables' schema (PRAGMA user_version) is whatever this firmware makes.
T_V=$(sqlite3 "$db" "PRAGMA user_version")
[ -n "$T_V" ] && [ "$T_V" -gt 0 ] || fail "the store's tables schema: '$T_V'"
sqlite3 "$db" "DELETE FROM component_schema WHERE name = 'config-document'"
[ "$(row)" = none ] || fail "row not removed"

# b's first boot on trial: copy kept for a, store migrated; a change.
trial_b
start_node "$STATE"
has "update: the configuration store (schema tables $T_V, configuration 0) is migrated to schema tables $T_V, configuration 1; a copy from before is kept for slot a in $STATE/update/pre-migration.db until slot b is committed" "$STATE/console.log" \
  || fail "no copy announced: $(grep -E 'update|schema' "$STATE/console.log" | head -5)"
jq -e '.slot == "a" and .by == "b" and .from.config == 0 and .to.config == 1' "$STATE/update/pre-migration.json" >/dev/null \
  || fail "the copy's record: $(cat "$STATE/update/pre-migration.json")"
[ "$(sqlite3 "$STATE/update/pre-migration.db" "SELECT count(*) FROM component_schema WHERE name = 'config-document'")" = 0 ] \
  || fail "the copy is not the store from before the migration"
[ "$(row)" = 1 ] || fail "not migrated: $(row)"
ctl config set node.hostname '"during"' >/dev/null || fail "config set during the trial"
wait_for 120 has "update: the trial of slot b failed" "$STATE/console.log" \
  || fail "no verdict: $(grep -E 'update|settle' "$STATE/console.log" | tail -5)"
[ -f "$STATE/update/pre-migration.db" ] || fail "the copy went with the failed trial"
pass "b's first boot keeps a copy of the store (schema 0) for slot a, then migrates it to schema 1"

# a boots: the store as a left it.
stop
echo a >"$disk/booted"
start_node "$STATE"
has "slot b migrated the configuration to schema tables $T_V, configuration 1 and was not committed; slot a runs again with the configuration as it was before (schema tables $T_V, configuration 0); changes made while slot b ran are gone" "$STATE/console.log" \
  || fail "no restore reported: $(grep -E 'update|schema|slot' "$STATE/console.log" | head -5)"
has "notification: update configuration restored: slot b migrated" "$STATE/console.log" || fail "no notification"
[ "$(host)" = before ] || fail "hostname after the fall-back: $(host)"
[ ! -e "$STATE/update/pre-migration.json" ] || [ "$(jq -r .by "$STATE/update/pre-migration.json")" = a ] \
  || fail "b's copy still kept: $(cat "$STATE/update/pre-migration.json")"
pass "slot a gets the store back as it was before b's migration (event, notification); b's change is gone"
stop

# A store of a newer schema, no copy: refused, not misread.
rm -f "$STATE/update/pre-migration."*
sqlite3 "$db" "INSERT OR REPLACE INTO component_schema (name, version) VALUES ('config-document', 99)"
if timeout 30 "$ALPHAREN" run --state-dir "$STATE" --dev >"$T/newer.log" 2>&1; then fail "a newer store was opened"; fi
has "alpharen.db was written by a newer firmware (schema: tables $T_V, configuration 99; this firmware reads up to tables $T_V, configuration 1); it is not read rather than misread. Boot the slot that wrote it, or restore a backup" "$T/newer.log" \
  || fail "refusal: $(tail -3 "$T/newer.log")"
[ "$(row)" = 99 ] || fail "the newer store was changed"
pass "a store of a newer configuration schema with no copy kept is refused with a clear error, and left as it is"

# b on trial again, passing: committed, copy dropped, its change kept.
sqlite3 "$db" "DELETE FROM component_schema WHERE name = 'config-document'"
trial_b
touch "$T/healthy"
start_node "$STATE"
[ -f "$STATE/update/pre-migration.db" ] || fail "no copy kept on b's trial"
ctl config set node.hostname '"after"' >/dev/null || fail "config set during the trial"
wait_for 120 has "update: slot b (version 0.2.0, build e2e-v2) passed its trial boot and is committed" "$STATE/console.log" \
  || fail "not committed: $(grep -E 'update|slot' "$STATE/console.log" | tail -5)"
has "update: slot b is committed; the configuration store kept from before its migration (for slot a) is dropped" "$STATE/console.log" \
  || fail "copy not dropped: $(grep -E 'update' "$STATE/console.log" | tail -5)"
[ ! -e "$STATE/update/pre-migration.db" ] && [ ! -e "$STATE/update/pre-migration.json" ] || fail "copy files left"
[ "$(host)" = after ] && [ "$(row)" = 1 ] || fail "after the commit: $(host), schema $(row)"
pass "b committed: the copy is dropped, the migrated store and the trial's change stay"
