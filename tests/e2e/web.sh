#!/usr/bin/env bash
# Web service end to end: HTTPS API of a `alpharen run --dev` node with curl.
# Setup (wrong code, right code, again), login, CSRF, roles, tokens,
# unauthenticated access on every OpenAPI path, bad bodies, config
# history/diff/rollback, risky change confirm, login rate limit, logs SSE,
# backup, HTTP redirect.
. "$(dirname "$0")/../lib.sh"
command -v curl >/dev/null && command -v jq >/dev/null || fail "needs curl and jq (scripts/deps.sh)"
STATE=$(mktemp -d /tmp/alpharen-web.XXXXXX)
on_exit "rm -rf $STATE"
seed_ports "$STATE/seed.toml"
start_node "$STATE" --config "$STATE/seed.toml"
BASE=https://127.0.0.1:$HTTPS_PORT
wait_for 20 curl -skf "$BASE/api/v1/health" || { cat "$STATE/console.log"; fail "web did not come up"; }
pass "health answers over HTTPS"
# Security headers: on every answer of the node's own; API answers are
# never cached, console pages may be.
heads() { curl -sk -o /dev/null -D - "$BASE$1" | tr -d '\r' | tr 'A-Z' 'a-z'; }
for p in /api/v1/health /api/v1/no-such-route /; do
  h=$(heads "$p")
  for want in "x-content-type-options: nosniff" "x-frame-options: deny" "referrer-policy: no-referrer" \
    "strict-transport-security: max-age=31536000" "content-security-policy: default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"; do
    grep -qxF "$want" <<<"$h" || fail "$p: no '$want' header in: $h"
  done
  case $p in
    /api/*) grep -qxF "cache-control: no-store" <<<"$h" || fail "$p: not marked no-store: $h" ;;
    *) ! grep -q "^cache-control: no-store" <<<"$h" || fail "$p: a console page marked no-store: $h" ;;
  esac
done
grep -qxF "content-type: application/json" <<<"$(heads /api/v1/health)" || fail "health is not JSON"
pass "security headers on API answers (no-store) and console pages"

JAR=$STATE/cookies VJAR=$STATE/vcookies
# req METHOD PATH [BODY [CURL ARGS...]]: sets CODE and BODY.
req() {
  local m=$1 p=$2 d=${3-}
  shift $(($# < 3 ? $# : 3))
  local args=(-sk -o "$STATE/body" -w '%{http_code}' -X "$m" "$BASE$p")
  [ -n "$d" ] && args+=(-H 'content-type: application/json' --data-binary "$d")
  CODE=$(curl "${args[@]}" "$@") || CODE=000
  BODY=$(cat "$STATE/body" 2>/dev/null || true)
}
expect() { # expect CODE what
  [ "$CODE" = "$1" ] || fail "$2: got HTTP $CODE, want $1: $BODY"
  pass "$2 ($CODE)"
}
as_admin() { req "$1" "$2" "${3-}" -b "$JAR" -H "x-csrf-token: $CSRF" "${@:4}"; }
as_viewer() { req "$1" "$2" "${3-}" -b "$VJAR" -H "x-csrf-token: $VCSRF"; }

# --- first boot
req GET /api/v1/setup
expect 200 "setup status"
[ "$(jq -r .required <<<"$BODY")" = true ] || fail "setup should be required"
jq -e --arg f "$STATE/setup-code" '.code_file == $f' <<<"$BODY" >/dev/null || fail "setup status does not name $STATE/setup-code: $BODY"
req GET /api/v1/status
expect 401 "status before setup refused"
req POST /api/v1/setup '{"code":"WRONG-CODE-0000","admin_password":"correct horse","hostname":"node1"}'
expect 403 "wrong setup code"
[ "$(jq -r .code <<<"$BODY")" = wrong_setup_code ] || fail "code field: $BODY"
req POST /api/v1/setup '{"code": "x", '
expect 400 "malformed JSON"
grep -q "malformed_json" <<<"$BODY" || fail "no clear code: $BODY"
CODE=$(curl -sk -o "$STATE/body" -w '%{http_code}' -H 'content-type: text/plain' --data '{"code":"x"}' "$BASE/api/v1/setup"); BODY=$(cat "$STATE/body")
expect 415 "wrong content type"
head -c 2000000 /dev/zero | tr '\0' 'a' | sed 's/^/{"code":"/; s/$/"}/' >"$STATE/big.json"
CODE=$(curl -sk -o "$STATE/body" -w '%{http_code}' -X POST -H 'content-type: application/json' --data-binary @"$STATE/big.json" "$BASE/api/v1/setup"); BODY=$(cat "$STATE/body")
expect 413 "oversized body"
req POST /api/v1/setup '{"code":"x","admin_password":"correct horse","hostname":"node1","bogus":1}'
expect 422 "unknown field in setup"
CODE_TEXT=$(cat "$STATE/setup-code")
req POST /api/v1/setup "{\"code\":\"$CODE_TEXT\",\"admin_password\":\"correct horse\",\"hostname\":\"node1\"}"
expect 200 "setup with the right code"
req POST /api/v1/setup "{\"code\":\"$CODE_TEXT\",\"admin_password\":\"correct horse\",\"hostname\":\"node1\"}"
expect 409 "setup again"
req GET /api/v1/setup
[ "$(jq -r .required <<<"$BODY")" = false ] || fail "setup still required"
jq -e 'has("code_file") | not' <<<"$BODY" >/dev/null || fail "setup status names the code file after setup: $BODY"

# --- login
req POST /api/v1/session '{"username":"admin","password":"wrong horse"}'
expect 401 "wrong password"
req POST /api/v1/session '{"username":"admin","password":"correct horse"}' -c "$JAR"
expect 200 "login"
CSRF=$(jq -r .csrf <<<"$BODY")
grep -q "alpharen_session" "$JAR" || fail "no session cookie"
curl -sk -D - -o /dev/null -H 'content-type: application/json' --data '{"username":"admin","password":"correct horse"}' "$BASE/api/v1/session" \
  | grep -i '^set-cookie: alpharen_session' | has -i 'HttpOnly; Secure; SameSite=Strict' || fail "session cookie flags"
pass "session cookie is HttpOnly, Secure, SameSite=Strict"
as_admin GET /api/v1/status
expect 200 "status as admin"
[ "$(jq -r .hostname <<<"$BODY")" = node1 ] || fail "hostname: $BODY"

# --- every OpenAPI path refuses the unauthenticated
as_admin GET /api/v1/openapi.json
expect 200 "openapi document"
[ "$(jq -r .openapi <<<"$BODY" | cut -c1-3)" = 3.1 ] || fail "not OpenAPI 3.1"
echo "$BODY" >"$STATE/openapi.json"
# The public operations are exactly these (the document marks them with
# an empty security requirement); a new one must be added here on purpose.
# (The cluster's join and link requests carry their own proof: an HMAC
# under the join or link secret.)
public=$(jq -r '.paths | to_entries[] | .key as $p | .value | to_entries[] | select(.value.security == [{}]) | "\(.key) \($p)"' "$STATE/openapi.json" | sort | tr '\n' ,)
[ "$public" = "get /api/v1/health,get /api/v1/setup,post /api/v1/cluster/join,post /api/v1/cluster/link,post /api/v1/session,post /api/v1/setup," ] \
  || fail "public operations: $public"
n=0
while read -r method path; do
  has -x "$method $path" <<<"${public//,/$'\n'}" && continue
  p=${path//\{name\}/nobody}; p=${p//\{id\}/1}
  req "${method^^}" "$p" '{}'
  [ "$CODE" = 401 ] || fail "unauthenticated ${method^^} $p: HTTP $CODE $BODY"
  req "${method^^}" "$p" '{}' -H 'authorization: Bearer art_forged'
  [ "$CODE" = 401 ] || fail "forged token ${method^^} $p: HTTP $CODE"
  n=$((n + 1))
done < <(jq -r '.paths | to_entries[] | .key as $p | .value | keys[] | "\(.) \($p)"' "$STATE/openapi.json")
[ "$n" -ge 20 ] || fail "only $n operations walked"
pass "all $n protected operations refuse no auth and forged tokens (401)"
# The cluster's join door is public, and a node in no cluster admits nobody.
req POST /api/v1/cluster/join '{"request": "{}", "mac": "AA=="}'
[ "$CODE" = 409 ] || fail "cluster join on a node in no cluster: HTTP $CODE $BODY"
pass "POST /api/v1/cluster/join without login: 409 on a node in no cluster"

# --- CSRF
req POST /api/v1/config/set '{"path":"node.confirm_timeout","value":300}' -b "$JAR"
expect 403 "cookie write without CSRF header"
[ "$(jq -r .code <<<"$BODY")" = csrf ] || fail "csrf code: $BODY"
req POST /api/v1/config/set '{"path":"node.confirm_timeout","value":300}' -b "$JAR" -H "x-csrf-token: nope"
expect 403 "cookie write with wrong CSRF header"

# --- config change, history, diff, rollback
as_admin GET /api/v1/config
BEFORE=$(jq -r .revision <<<"$BODY")
as_admin POST /api/v1/config/set '{"path":"node.confirm_timeout","value":300,"comment":"longer"}'
expect 200 "config change"
AFTER=$(jq -r .revision.id <<<"$BODY")
as_admin POST /api/v1/config/set '{"path":"node.confirm_timeout","value":0}'
expect 422 "invalid value"
[ "$(jq -r '.details[0].path' <<<"$BODY")" = node.confirm_timeout ] || fail "problem path: $BODY"
as_admin GET "/api/v1/config/history?limit=5"
expect 200 "history"
jq -e ".revisions[] | select(.id == $AFTER and .author == \"admin\")" <<<"$BODY" >/dev/null || fail "revision $AFTER by admin not in history: $BODY"
as_admin GET "/api/v1/config/diff?a=$BEFORE&b=$AFTER"
expect 200 "diff"
grep -q confirm_timeout <<<"$BODY" || fail "diff lacks the change: $BODY"
as_admin GET "/api/v1/config/diff?a=$BEFORE&b=9999"
expect 404 "diff with unknown revision"
as_admin GET "/api/v1/config/diff?a=x"
expect 400 "diff with bad query"
as_admin POST /api/v1/config/rollback "{\"revision\":$BEFORE}"
expect 200 "rollback"
as_admin GET "/api/v1/config?section=node"
[ "$(jq -r .config.confirm_timeout <<<"$BODY")" = 120 ] || fail "rollback did not restore: $BODY"
as_admin GET /api/v1/config/schema
expect 200 "config JSON schema"
jq -e '.properties.web and .properties.node' <<<"$BODY" >/dev/null || fail "schema lacks sections"

# --- risky change: pending, then confirm
as_admin POST /api/v1/config/set '{"path":"web.session_idle_minutes","value":90}'
expect 200 "risky change"
jq -e '.pending.deadline' <<<"$BODY" >/dev/null || fail "risky change not pending: $BODY"
PENDING=$(jq -r .pending.revision <<<"$BODY")
as_admin GET /api/v1/status
jq -e '.pending' <<<"$BODY" >/dev/null || fail "status does not show pending"
as_admin POST /api/v1/config/confirm "{\"revision\":$((PENDING - 1))}"
expect 409 "confirm of a revision that is not the pending one"
grep -q "revision $PENDING is" <<<"$BODY" || fail "the refusal does not name the pending revision: $BODY"
as_admin POST /api/v1/config/confirm "{\"revision\":$PENDING}"
expect 200 "confirm"
as_admin POST /api/v1/config/confirm "{\"revision\":$PENDING}"
expect 409 "confirm with nothing pending"

# --- PATCH changes only the sections it has; PUT replaces; compare-and-swap
as_admin GET /api/v1/config
REV=$(jq -r .revision <<<"$BODY")
IDLE=$(jq -r .config.web.session_idle_minutes <<<"$BODY")
as_admin PATCH /api/v1/config "{\"config\":{\"node\":{\"hostname\":\"patched\"}},\"expect_revision\":$REV}"
expect 200 "PATCH of one section"
jq -e '.changes[] | select(.path == "node.hostname")' <<<"$BODY" >/dev/null || fail "PATCH answer lacks its changes: $BODY"
as_admin GET /api/v1/config
[ "$(jq -r .config.web.session_idle_minutes <<<"$BODY")" = "$IDLE" ] || fail "PATCH of [node] reset [web]: $BODY"
[ "$(jq -r .config.node.hostname <<<"$BODY")" = patched ] || fail "PATCH not applied: $BODY"
as_admin PATCH /api/v1/config "{\"config\":{\"node\":{\"hostname\":\"stale\"}},\"expect_revision\":$REV}"
expect 409 "PATCH with a stale expect_revision"
jq -e '.code == "conflict"' <<<"$BODY" >/dev/null || fail "conflict code missing: $BODY"

# --- viewer is read-only
as_admin POST /api/v1/users '{"name":"viewer1","password":"viewer pass","role":"viewer"}'
expect 200 "add viewer"
as_admin POST /api/v1/users '{"name":"viewer1","password":"viewer pass"}'
expect 409 "add same user again"
as_admin POST /api/v1/users '{"name":"x","password":"short"}'
expect 422 "short password"
req POST /api/v1/session '{"username":"viewer1","password":"viewer pass"}' -c "$VJAR"
expect 200 "viewer login"
VCSRF=$(jq -r .csrf <<<"$BODY")
as_viewer GET /api/v1/config
expect 200 "viewer reads config"
as_viewer POST /api/v1/config/set '{"path":"node.confirm_timeout","value":300}'
expect 403 "viewer cannot change config"
as_viewer POST /api/v1/config/rollback '{"revision":1}'
expect 403 "viewer cannot roll back"
as_viewer POST /api/v1/tokens '{"name":"v"}'
expect 403 "viewer cannot make tokens"
as_viewer GET /api/v1/backup
expect 403 "viewer cannot download backups"
as_viewer GET /api/v1/services/mail/status
expect 200 "viewer reads a service's own status"
jq -e '.queued != null' <<<"$BODY" >/dev/null || fail "mail status without the queue: $BODY"
as_viewer GET /api/v1/system/slots
expect 409 "slots of a development node (not booted from a slot)"
jq -e '.code == "slots_unavailable"' <<<"$BODY" >/dev/null || fail "slots answer: $BODY"
as_viewer GET /api/v1/services/nosuch/status
expect 404 "status of a service that does not exist"
as_viewer GET /api/v1/services/..%2Fconfig/status
expect 404 "service names are plain words"

# --- API tokens
as_admin POST /api/v1/tokens '{"name":"ci","role":"admin"}'
expect 200 "create token"
TOKEN=$(jq -r .secret <<<"$BODY"); TID=$(jq -r .token.id <<<"$BODY")
as_admin GET /api/v1/tokens
grep -q "$TOKEN" <<<"$BODY" && fail "token secret listed"
req POST /api/v1/config/set '{"path":"node.timezone","value":"Europe/Berlin"}' -H "authorization: Bearer $TOKEN"
expect 200 "bearer token writes without CSRF"
as_admin POST /api/v1/tokens '{"name":"ro"}'
RO=$(jq -r .secret <<<"$BODY")
req POST /api/v1/config/set '{"path":"node.timezone","value":"UTC"}' -H "authorization: Bearer $RO"
expect 403 "viewer token cannot write"
as_admin DELETE "/api/v1/tokens/$TID"
expect 200 "revoke token"
req GET /api/v1/status '' -H "authorization: Bearer $TOKEN"
expect 401 "revoked token refused"

# --- logs, backup
as_admin GET "/api/v1/logs?lines=5"
expect 200 "logs"
curl -sk -N --max-time 3 -b "$JAR" "$BASE/api/v1/logs?follow=true&lines=3" >"$STATE/sse" || true
grep -q '^event: line' "$STATE/sse" || fail "no SSE lines: $(head -c 300 "$STATE/sse")"
pass "logs follow streams server-sent events"
as_admin GET /api/v1/backup
expect 200 "backup download"
cp "$STATE/body" "$STATE/backup.json"
CODE=$(curl -sk -o "$STATE/body" -w '%{http_code}' -b "$JAR" -H "x-csrf-token: $CSRF" -H 'content-type: application/json' --data-binary @"$STATE/backup.json" "$BASE/api/v1/backup/restore"); BODY=$(cat "$STATE/body")
expect 200 "backup restore"
as_admin POST /api/v1/backup/restore '{"nope":1}'
expect 422 "bad backup"

# --- login rate limit (per user)
for i in 1 2 3 4 5; do req POST /api/v1/session '{"username":"viewer1","password":"bad pass 1"}'; done
req POST /api/v1/session '{"username":"viewer1","password":"viewer pass"}'
expect 429 "login rate limited after 5 failures"
curl -sk -D - -o /dev/null -H 'content-type: application/json' --data '{"username":"viewer1","password":"x"}' "$BASE/api/v1/session" | has -i '^retry-after:' || fail "no Retry-After"

# --- logout, unknown route, redirect
as_admin GET /api/v1/nope
expect 404 "unknown API route"
as_admin DELETE /api/v1/session
expect 200 "logout"
as_admin GET /api/v1/status
expect 401 "session gone after logout"
LOC=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "http://127.0.0.1:$HTTP_PORT/api/v1/health?x=1")
[ "$LOC" = "308 https://127.0.0.1:$HTTPS_PORT/api/v1/health?x=1" ] || fail "redirect: $LOC"
pass "HTTP redirects to HTTPS"
curl -sk "$BASE/" | has '<script type="module"' || fail "console not served"
pass "console served"

# --- workers: a thread and a SO_REUSEPORT listener per core; a port change
# on reload moves every listener and the HTTPS answers follow
web_pid() { ctl --json services | python3 -c "import json,sys; print(next(s['pid'] for s in json.load(sys.stdin) if s['name']=='web'))"; }
listeners() { ss -Hltn "sport = :$1" | wc -l; }
CORES=$(nproc)
PID=$(web_pid)
[ "$(grep -c '^web-[0-9]' /proc/"$PID"/task/*/comm | awk -F: '{s+=$NF} END {print s}')" = "$CORES" ] \
  || fail "not one worker thread per core ($CORES): $(cat /proc/"$PID"/task/*/comm | tr '\n' ' ')"
[ "$(listeners "$HTTPS_PORT")" = "$CORES" ] || fail "not one HTTPS listener per core: $(ss -Hltn "sport = :$HTTPS_PORT")"
read -r NEW_PORT < <(free_ports 1)
ctl config set web.https_port "$NEW_PORT" >/dev/null || fail "config set web.https_port"
wait_for 20 curl -skf "https://127.0.0.1:$NEW_PORT/api/v1/health" || fail "HTTPS not on the new port after reload"
[ "$(listeners "$NEW_PORT")" = "$CORES" ] || fail "not one listener per core on the new port"
wait_for 10 bash -c "[ \"\$(ss -Hltn 'sport = :$HTTPS_PORT' | wc -l)\" = 0 ]" || fail "old HTTPS port still listening"
[ "$(web_pid)" = "$PID" ] || fail "the port change restarted the web service instead of reloading it"
pass "one worker and listener per core ($CORES); a port change on reload moves them all"
echo "web e2e: all passed"
