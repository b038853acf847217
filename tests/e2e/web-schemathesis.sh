#!/usr/bin/env bash
# Property-based run of schemathesis against the API of a `alpharen run
# --dev` node: every operation in /api/v1/openapi.json with generated
# valid and invalid input, as an admin API token. Fails on any 5xx (and
# on status codes the document does not list). Bounded: a fixed number of
# examples per operation and a time limit on the whole run. Last, the
# document itself must pass openapi-spec-validator.
#
# schemathesis and openapi-spec-validator come from PyPI into
# tests/out/.venv (kept between runs);
# nothing else needs the network. SCHEMATHESIS_EXAMPLES (default 20) and
# SCHEMATHESIS_TIME (seconds, default 420) bound the run.
. "$(dirname "$0")/../lib.sh"
command -v curl >/dev/null && command -v jq >/dev/null || fail "needs curl and jq (scripts/deps.sh)"
EXAMPLES=${SCHEMATHESIS_EXAMPLES:-20}
LIMIT=${SCHEMATHESIS_TIME:-420}

# --- schemathesis in a cached venv
VENV=${SCHEMATHESIS_VENV:-$ROOT/tests/out/.venv}
ST=$VENV/bin/schemathesis
OSV=$VENV/bin/openapi-spec-validator
py_venv "$VENV" "schemathesis, openapi_spec_validator" 'schemathesis>=4,<5' 'openapi-spec-validator>=0.7,<1'
pass "$("$ST" --version)"

# --- a node on free ports, set up, with an admin API token
STATE=$(mktemp -d /tmp/alpharen-st.XXXXXX)
on_exit "rm -rf $STATE"
seed_ports "$STATE/seed.toml"
start_node "$STATE" --config "$STATE/seed.toml"
BASE=https://127.0.0.1:$HTTPS_PORT
wait_for 20 curl -skf "$BASE/api/v1/health" || { cat "$STATE/console.log"; fail "web did not come up"; }
post() { curl -sk --max-time 30 -H 'content-type: application/json' "$@"; }
post --data "{\"code\":\"$(cat "$STATE/setup-code")\",\"admin_password\":\"correct horse\",\"hostname\":\"node1\"}" \
  "$BASE/api/v1/setup" | has '"revision"\|"ok"\|"admin"' || fail "setup"
post -c "$STATE/jar" --data '{"username":"admin","password":"correct horse"}' "$BASE/api/v1/session" >"$STATE/login.json"
CSRF=$(jq -r .csrf "$STATE/login.json")
TOKEN=$(post -b "$STATE/jar" -H "x-csrf-token: $CSRF" --data '{"name":"schemathesis","role":"admin"}' \
  "$BASE/api/v1/tokens" | jq -r .secret)
[ -n "$TOKEN" ] && [ "$TOKEN" != null ] || fail "no API token"
curl -skf -H "authorization: Bearer $TOKEN" "$BASE/api/v1/openapi.json" >"$STATE/openapi.json" || fail "openapi.json"
pass "node on $BASE set up, admin token made"

# st NAME ARGS...: one bounded schemathesis run; its output in $OUT/NAME.txt.
st() {
  local name=$1; shift
  set +e
  # In $OUT: schemathesis keeps a .schemathesis cache in its working dir.
  (cd "$OUT" && timeout --kill-after=10 "$LIMIT" "$ST" run "$BASE/api/v1/openapi.json" \
    --tls-verify false -H "Authorization: Bearer $TOKEN" \
    --checks "${SCHEMATHESIS_CHECKS:-not_a_server_error,status_code_conformance}" \
    --phases examples,coverage,fuzzing --max-examples "$EXAMPLES" --workers 1 \
    --request-timeout 20 --generation-database none --seed 1 --no-color \
    --report junit --report-junit-path "$OUT/$name.xml" "$@") >"$OUT/$name.txt" 2>&1
  local rc=$?
  set -e
  tail -n 25 "$OUT/$name.txt"
  [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] || fail "schemathesis $name ran out of its ${LIMIT}s"
  [ "$rc" -eq 0 ] || fail "schemathesis $name found failures (rc $rc): $OUT/$name.txt"
  grep -E '^ *[0-9]+ passed' "$OUT/$name.txt" >/dev/null || has -i 'passed' "$OUT/$name.txt" || fail "schemathesis $name: no summary"
  pass "schemathesis $name"
}

# Left out: what stops the node or the run (reboot, a scheduled reboot
# (a development node answers it 501, not supported), poweroff, logout),
# streams without end (logs, whose follow=true is an SSE stream),
# restarts services (restarting web drops the run's connections), and
# config apply: `{"config": {}}` is a valid whole document, all defaults,
# which moves web to the default port until the risky change reverts.
# Cluster init and join-with-token come last: they make the node a
# cluster member, and until its nats-server is up the cluster's KV and
# package log answer 503 (documented), which would fail other operations.
st main \
  --exclude-operation-id cluster_init --exclude-operation-id cluster_join_with_token \
  --exclude-operation-id reboot --exclude-operation-id reboot_schedule \
  --exclude-operation-id poweroff --exclude-operation-id logout \
  --exclude-operation-id logs --exclude-operation-id service_restart --exclude-operation-id config_apply \
  --exclude-operation-id tokens_revoke --exclude-operation-id users_del

# What was left out, by hand: no 5xx, and the answers they should give.
code() { curl -sk --max-time 10 -o "$STATE/body" -w '%{http_code}' -H "authorization: Bearer $TOKEN" "$@" || echo 000; }
for q in lines=0 lines=-1 lines=99999999999999999999 service=nope service=%00 follow=maybe bogus=1; do
  c=$(code "$BASE/api/v1/logs?$q")
  case "$c" in 200|400) ;; *) fail "GET /api/v1/logs?$q: HTTP $c $(cat "$STATE/body")" ;; esac
done
curl -sk -N --max-time 3 -H "authorization: Bearer $TOKEN" "$BASE/api/v1/logs?follow=true&lines=1" >"$STATE/sse" || true
has '^event: line' "$STATE/sse" || fail "logs follow: $(head -c 300 "$STATE/sse")"
for n in nope %00 web%2F..; do
  c=$(code -X POST "$BASE/api/v1/services/$n/restart")
  [ "$c" = 404 ] || fail "restart of service $n: HTTP $c $(cat "$STATE/body")"
done
for body in '{}' '{"config":[]}' '{"config":{"web":[]}}' '{"config":"x"}' '{"text":"[web"}' '{"text":"[web]\nhttps_port = 0"}'; do
  c=$(code -X PUT -H 'content-type: application/json' --data "$body" "$BASE/api/v1/config")
  case "$c" in 400|422) ;; *) fail "PUT /api/v1/config $body: HTTP $c $(cat "$STATE/body")" ;; esac
done
pass "logs, service restart and config apply refuse bad input without 5xx"

# Last, what makes the node a cluster member, may revoke the run's own
# token or delete its user.
st last --include-operation-id cluster_init --include-operation-id cluster_join_with_token \
  --include-operation-id tokens_revoke --include-operation-id users_del

ctl status >/dev/null || fail "node gone after the run"
curl -skf "$BASE/api/v1/health" >/dev/null || fail "web gone after the run"
pass "node still up"

"$OSV" "$STATE/openapi.json" >"$OUT/openapi-spec-validator.txt" 2>&1 \
  || { tail -n 30 "$OUT/openapi-spec-validator.txt"; fail "openapi-spec-validator rejects /api/v1/openapi.json"; }
pass "openapi-spec-validator accepts /api/v1/openapi.json"
echo "web-schemathesis e2e: all passed"
