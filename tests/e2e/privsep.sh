#!/usr/bin/env bash
# Privilege separation end to end: a node started as root runs every
# built-in service as its own user (uid = gid, supplementary group
# alpharen) with exactly its declared capabilities in every set and
# NoNewPrivs; the state directory's shared files belong to root:alpharen
# and each service's own directory to its user.
. "$(dirname "$0")/../lib.sh"
[ "$(id -u)" = 0 ] || fail "run as root: only root can start services as their users"
STATE=$(mktemp -d /tmp/alpharen-privsep.XXXXXX)
on_exit "rm -rf $STATE"
seed_ports "$STATE/seed.toml"
start_node "$STATE" --config "$STATE/seed.toml"

# name uid capability-mask (as /proc/PID/status prints it), from
# appliance/supervisor/src/builtin.rs.
EXPECTED="net 901 0000000002003400
vpn 902 0000000000001000
dpx 903 0000000000000400
web 904 0000000000000400
ssh 905 0000000000000400
mail 906 0000000000000400
pgha 907 0000000000000000
integrator 908 0000000000000000"

field() { sed -n "s/^$1:[[:space:]]*//p" "/proc/$2/status"; }
while read -r name uid caps; do
  wait_for 20 bash -c "$(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json services | jq -e '.[] | select(.name==\"$name\" and .state==\"running\")'" \
    || fail "$name is not running: $(ctl services)"
  pid=$(ctl --json services | jq -r ".[] | select(.name==\"$name\") | .pid")
  [ "$(field Uid "$pid")" = "$uid	$uid	$uid	$uid" ] || fail "$name (pid $pid) Uid: $(field Uid "$pid"), want $uid"
  [ "$(field Gid "$pid")" = "$uid	$uid	$uid	$uid" ] || fail "$name (pid $pid) Gid: $(field Gid "$pid"), want $uid"
  [ "$(field Groups "$pid" | xargs)" = "900" ] || fail "$name (pid $pid) Groups: $(field Groups "$pid"), want 900"
  for set in CapInh CapPrm CapEff CapAmb CapBnd; do
    [ "$(field $set "$pid")" = "$caps" ] || fail "$name (pid $pid) $set: $(field $set "$pid"), want $caps"
  done
  [ "$(field NoNewPrivs "$pid")" = 1 ] || fail "$name (pid $pid) NoNewPrivs: $(field NoNewPrivs "$pid")"
done <<<"$EXPECTED"
pass "every built-in runs as its own user with exactly its capabilities and NoNewPrivs"

owner() { stat -c '%u:%g %a' "$1"; }
[ "$(owner "$STATE")" = "0:900 2770" ] || fail "state dir: $(owner "$STATE")"
[ "$(owner "$STATE/alpharen.db")" = "0:900 660" ] || fail "alpharen.db: $(owner "$STATE/alpharen.db")"
[ "$(owner "$STATE/run/control.sock")" = "0:900 660" ] || fail "control.sock: $(owner "$STATE/run/control.sock")"
[ "$(owner "$STATE/ssh")" = "905:900 700" ] || fail "ssh dir: $(owner "$STATE/ssh")"
[ "$(owner "$STATE/integrator")" = "908:900 700" ] || fail "integrator dir: $(owner "$STATE/integrator")"
wait_for 20 test -f "$STATE/tls/key.pem" || fail "web made no key"
[ "$(owner "$STATE/tls/key.pem")" = "904:900 640" ] || fail "tls key: $(owner "$STATE/tls/key.pem")"
pass "state directory: shared files root:alpharen, own directories per service user"
