#!/usr/bin/env bash
# Secrets never leave the secret store: every kind of secret is set through
# every door (config apply TOML, seed JSON, config set, ctl integrator
# password, the API's PATCH, [secrets]), then every GET of the OpenAPI
# document (as viewer and as admin), config history/diff/export, logs,
# the log files and the revisions in the database are searched for the
# values. Only an admin's `export --with-secrets` (and the backup download,
# the node's whole state, admin only, left out of the walk) may carry them.
. "$(dirname "$0")/../lib.sh"
command -v curl >/dev/null && command -v jq >/dev/null || fail "needs curl and jq (scripts/deps.sh)"
STATE=$(mktemp -d /tmp/alpharen-secrets.XXXXXX)
on_exit "rm -rf $STATE"
seed_ports "$STATE/seed.toml"
# The pgha servers' ssh port: closed, so the controller fails and logs.
DEAD_PORT=$(free_ports 1)
start_node "$STATE" --config "$STATE/seed.toml"
BASE=https://127.0.0.1:$HTTPS_PORT
wait_for 20 curl -skf "$BASE/api/v1/health" || { cat "$STATE/console.log"; fail "web did not come up"; }

# req AS METHOD PATH [BODY]: sets CODE and BODY; AS is a bearer token.
req() {
  local tok=$1 m=$2 p=$3 d=${4-}
  local args=(-sk -o "$STATE/body" -w '%{http_code}' -X "$m" "$BASE$p" -H "authorization: Bearer $tok")
  [ -n "$d" ] && args+=(-H 'content-type: application/json' --data-binary "$d")
  CODE=$(curl "${args[@]}") || CODE=000
  BODY=$(cat "$STATE/body" 2>/dev/null || true)
}
CODE_TEXT=$(cat "$STATE/setup-code")
curl -skf -o /dev/null -H 'content-type: application/json' \
  --data "{\"code\":\"$CODE_TEXT\",\"admin_password\":\"admin pass 1\",\"hostname\":\"node1\"}" "$BASE/api/v1/setup" \
  || fail "setup"
printf 'viewer pass 1\n' | ctl user add viewer1 --role viewer >/dev/null || fail "viewer not added"
# Tokens through a session: log in, then create one per role.
JAR=$STATE/jar
curl -sk -c "$JAR" -o /dev/null -H 'content-type: application/json' \
  --data '{"username":"admin","password":"admin pass 1"}' "$BASE/api/v1/session" || fail "admin login"
CSRF=$(awk '$6 == "alpharen_csrf" {print $7}' "$JAR")
token() {
  curl -skf -b "$JAR" -H "x-csrf-token: $CSRF" -H 'content-type: application/json' \
    --data "{\"name\":\"$1\",\"role\":\"$2\"}" "$BASE/api/v1/tokens" | jq -r .secret
}
ADMIN=$(token t-admin admin) VIEWER=$(token t-viewer viewer)
[ -n "$ADMIN" ] && [ "$ADMIN" != null ] && [ -n "$VIEWER" ] || fail "tokens not created"

# --- every kind of secret, through every door
S_APPLY=apply-Secret-7f3a S_SET=set-Secret-91bc S_CTL=ctl-Secret-44de S_API=api-Secret-c0d2
S_SEED=seed-Secret-5e61 S_REPL=replica-Secret-8a07 S_MAIL=mail-Secret-2b9f S_TSIG=$(head -c 32 /dev/urandom | base64)
S_DYN=dyndns-Secret-6c15
cat >"$STATE/cfg.toml" <<TOML
[[integrator.security]]
name = "cust.basic"
kind = "basic"
username = "cust"
password = "$S_APPLY"

[[integrator.security]]
name = "other.key"
kind = "apikey"

[mail.relay]
mode = "smarthost"
host = "127.0.0.1"
port = $DEAD_PORT
username = "relayuser"

[secrets]
"mail.relay.password" = "$S_MAIL"
"dpx.tsig.k1" = "$S_TSIG"
"dpx.dyndns.alice" = "$S_DYN"
TOML
ctl config apply -f "$STATE/cfg.toml" -m "secrets by file" >"$STATE/apply.out" || { cat "$STATE/apply.out"; fail "config apply"; }
ctl config set 'integrator.security[0].password' "$S_SET" >/dev/null || fail "config set of a password"
ctl integrator password other.key --set "$S_CTL" >"$STATE/ctl-pw.out" || fail "ctl integrator password --set"
# The seed's JSON keys, as 004_* writes them.
cat >"$STATE/seed.json" <<JSON
{"pgha": {"pg_controller": [{"key": "g1", "servers": [
  {"ssh_host": "127.0.0.1", "ssh_port": $DEAD_PORT, "ssh_user": "postgres", "ssh_pwd": "$S_SEED",
   "pg_replica_user": "replicator", "pg_replica_pwd": "$S_REPL", "pg_data_folder": "/var/lib/postgresql/15/main"},
  {"ssh_host": "127.0.0.2", "ssh_port": $DEAD_PORT, "ssh_user": "postgres", "ssh_pwd": "$S_SEED",
   "pg_replica_user": "replicator", "pg_replica_pwd": "$S_REPL", "pg_data_folder": "/var/lib/postgresql/15/main"}]}]}}
JSON
ctl config apply -f "$STATE/seed.json" -m "seed JSON" >/dev/null || fail "seed JSON apply"
req "$ADMIN" PATCH /api/v1/config "{\"config\":{\"pgha\":$(ctl --json config show pgha | jq -c --arg p "$S_API" '.config | .backup_controller = {"storage_ssh_host":"127.0.0.1","storage_ssh_user":"backup","storage_ssh_pwd":$p}')}}"
[ "$CODE" = 200 ] || fail "PATCH with a password: $CODE $BODY"
pass "secrets set by config apply, seed JSON, config set, ctl integrator password, API PATCH and [secrets]"

# The integrator uses what was set, so the values did reach the store.
[ "$(ctl --json integrator password cust.basic | jq -r .password)" = "$S_SET" ] || fail "config set password not in effect"
[ "$(ctl --json integrator password other.key | jq -r .password)" = "$S_CTL" ] || fail "ctl --set password not in effect"
ALL=("$S_APPLY" "$S_SET" "$S_CTL" "$S_API" "$S_SEED" "$S_REPL" "$S_MAIL" "$S_TSIG" "$S_DYN")
# Current values; S_APPLY was replaced by S_SET and is history.
NOW=("$S_SET" "$S_CTL" "$S_API" "$S_SEED" "$S_REPL" "$S_MAIL" "$S_TSIG" "$S_DYN")

# --- collect everything a reader can get
COL=$STATE/collected
mkdir -p "$COL"
paths=$(req "$ADMIN" GET /api/v1/openapi.json && jq -r '.paths | to_entries[] | select(.value.get) | .key' <<<"$BODY")
n=0
for p in $paths; do
  case $p in
    */backup) continue ;;           # the whole state, secrets included (admin only)
    */logs) q='?lines=1000' ;;
    */config/diff) q='?a=1&b=100' ;;
    */config/export) q='' ;;
    *) q='' ;;
  esac
  p=${p//\{name\}/admin}; p=${p//\{id\}/1}
  for who in VIEWER ADMIN; do
    req "${!who}" GET "$p$q"
    n=$((n + 1))
    printf '%s\n' "$BODY" >"$COL/$who-$n.txt"
  done
done
[ "$n" -ge 20 ] || fail "only $n GETs were made; the OpenAPI walk is broken"
last=$(ctl --json config history -n 100 | jq -r '.revisions[0].id')
for ((r = 1; r <= last; r++)); do
  ctl --json config show --revision "$r" >"$COL/rev-$r.json"
  req "$VIEWER" GET "/api/v1/config?revision=$r"; printf '%s\n' "$BODY" >"$COL/api-rev-$r.json"
  [ "$r" -gt 1 ] && ctl config diff $((r - 1)) "$r" >"$COL/diff-$r.txt"
done
ctl config history -n 100 >"$COL/history.txt"
ctl config export >"$COL/export.toml"
req "$VIEWER" GET /api/v1/config/export; printf '%s\n' "$BODY" >"$COL/viewer-export.json"
req "$VIEWER" GET "/api/v1/config/export?with_secrets=true"
[ "$CODE" = 403 ] || fail "viewer export with secrets: $CODE"
for svc in $(ctl --json services | jq -r '.[].name'); do ctl logs "$svc" -n 1000 >"$COL/logs-$svc.txt" 2>&1; done
cp -r "$STATE/log" "$COL/logfiles"
/usr/bin/python3 - "$STATE/alpharen.db" >"$COL/db-revisions.txt" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
for row in c.execute("SELECT document, comment FROM revisions"): print(*row)
for row in c.execute("SELECT detail FROM audit"): print(*row)
PY
[ "$(find "$COL" -type f | wc -l)" -gt 40 ] || fail "too little was collected"

leaks=0
for s in "${ALL[@]}"; do
  if hits=$(grep -rlF -- "$s" "$COL"); then
    echo "secret $s found in:"; sed 's/^/  /' <<<"$hits"; leaks=$((leaks + 1))
  fi
done
[ "$leaks" -eq 0 ] || fail "$leaks secret value(s) leaked"
pass "no secret in $n API answers (viewer and admin), $last revisions, diffs, history, export, logs or the database's revisions"

# --- the admin's export with secrets, and the backup, do carry them
ctl config export --with-secrets >"$STATE/with.toml"
for s in "${NOW[@]}"; do
  grep -qF -- "$s" "$STATE/with.toml" || fail "export --with-secrets lacks $s"
done
pass "export --with-secrets carries every current secret"
# Round trip: a node restored from that export has the same passwords.
ctl config apply --replace -f "$STATE/with.toml" >/dev/null || fail "re-apply of the export"
[ "$(ctl --json integrator password cust.basic | jq -r .password)" = "$S_SET" ] || fail "password lost in the round trip"
pass "export --with-secrets applies back unchanged"
