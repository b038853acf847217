#!/usr/bin/env bash
# An outgoing SQL connection with pgha_group = "main" learns the group's
# state from pgha.status over the control socket: with a group whose two
# servers answer nothing (no master), a statement fails at once with an
# OperationalError naming the group and its situation. Following a real
# failover is not covered here (tests/e2e/pgha.sh's namespaces would be
# needed); the switch itself is unit-tested in integrator/src/sqlha.rs.
# Loopback only.
. "$(dirname "$0")/../lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
needs jq

STATE=$(mktemp -d /tmp/alpharen-pgsql.XXXXXX)
on_exit "rm -rf $STATE"
chmod 755 "$STATE"
read -r SSH_PORT PG_PORT < <(free_ports 2 | xargs)
{
  pgha_down_group "$SSH_PORT" "$PG_PORT"
  cat <<TOML
[integrator]
tls = "off"
workers = 1
[[integrator.outgoing_sql]]
name = "main_db"
pgha_group = "main"
database = "postgres"
user = "postgres"
timeout = 5
TOML
} >"$STATE/seed.toml"
seed_ports "$STATE/seed.toml"
start_node "$STATE" --config "$STATE/seed.toml"
wait_for 20 ctl integrator status || fail "integrator control socket not reachable"
ctl integrator deploy "$HERE/integrator/pgha_sql.py" >/dev/null || fail "deploy pgha_sql.py"
pass "node up with pgha group main (nothing listening) and main_db following it"

probe() { ctl integrator invoke pgha.sql.probe >"$STATE/probe.out" 2>&1; has 'pgha group \\"main\\" has no master now\|pgha group "main" has no master now' "$STATE/probe.out"; }
wait_for 30 probe || fail "no clear error from main_db: $(cat "$STATE/probe.out")"
pass "a statement on main_db fails at once: $(grep -o 'outgoing SQL[^}]*' "$STATE/probe.out" | head -1)"
