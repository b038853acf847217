#!/usr/bin/env bash
# pgha settings that would reach a shell: a host or user value holding
# shell syntax (`;`, `$()`, spaces, quotes) is refused by `config apply`
# and `config set` with the field named, and nothing is applied. Needs no
# PostgreSQL: only the configuration path is exercised.
. "$(dirname "$0")/../lib.sh"
STATE=$(mktemp -d /tmp/alpharen-pgha-config.XXXXXX)
on_exit "rm -rf $STATE"
seed_ports "$STATE/seed.toml"
start_node "$STATE" --config "$STATE/seed.toml"
revision() { ctl --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)["revision"])'; }

# group FILE SSH_HOST: the node's configuration (JSON) with one pgha
# group whose second server has ssh_host SSH_HOST.
group() {
  ctl config export | python3 -c '
import json, sys, tomllib
doc = tomllib.loads(sys.stdin.read())
server = lambda host: {"pg_host": host, "ssh_user": "postgres", "pg_replica_user": "replica", "pg_data_folder": "/srv/pg"}
doc["pgha"]["pg_controller"] = [{"key": "g1", "servers": [server("10.0.0.1"), dict(server("10.0.0.2"), ssh_host=sys.argv[1])]}]
print(json.dumps(doc))' "$2" >"$1"
}
before=$(revision)
for bad in 'a;b' '$(touch /tmp/pwned)' 'db 2' "it's" '`id`'; do
  group "$STATE/bad.json" "$bad"
  if out=$(ctl config apply -f "$STATE/bad.json" 2>&1); then fail "config apply took ssh_host = $bad"; fi
  has -F "pgha.pg_controller[0].servers[1].ssh_host: \"$bad\" is not a host name or IP address" <<<"$out" ||
    fail "config apply with ssh_host = $bad: $out"
done
[ "$(revision)" = "$before" ] || fail "a refused apply made a revision"
pass "config apply refuses ssh_host with ; \$() spaces quotes or backticks, naming the field"

group "$STATE/good.json" db2.example
ctl config apply -f "$STATE/good.json" >/dev/null || fail "config apply of a good group"
after=$(revision)
for key in pg_controller[0].servers[0].ssh_host pg_controller[0].servers[1].pg_host backup_controller.storage_ssh_host; do
  if out=$(ctl config set "pgha.$key" 'st;reboot' 2>&1); then fail "config set pgha.$key took a value with ;"; fi
  has -F "pgha.$key: \"st;reboot\" is not a host name or IP address" <<<"$out" || fail "config set pgha.$key: $out"
done
if out=$(ctl config set pgha.pg_controller[0].servers[0].ssh_user 'u $(id)' 2>&1); then fail "config set took a user with \$()"; fi
has -F 'pgha.pg_controller[0].servers[0].ssh_user: "u $(id)" is not a user name' <<<"$out" || fail "config set ssh_user: $out"
[ "$(revision)" = "$after" ] || fail "a refused config set made a revision"
ctl config set pgha.pg_controller[0].servers[1].ssh_host 192.0.2.7 >/dev/null || fail "config set of an address"
pass "config set refuses such host and user values with the field named; addresses and names pass"
echo "pgha-config e2e: all passed"
