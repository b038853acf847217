#!/usr/bin/env bash
# The console's Reaction page with the engine and two agents (a reader and
# an executor, separate processes): two lines make two incidents that
# wait for approval; an operator logs in, approves the first from the
# inbox and watches its run finish with the command's output, denies the
# second (its command never runs), skips a failed task (the run goes
# on), and gets 403 on a config write (in the browser and with curl),
# sets a flow to start in an hour from the form (listed as waiting);
# with curl, the operator retries a failed task; a viewer may read but
# not approve.
. "$(dirname "$0")/../lib.sh"
. "$ROOT/tests/reaction-lib.sh"
browser_deps
STATE=$(mktemp -d /tmp/alpharen-rxui.XXXXXX); on_exit "rm -rf $STATE"
W=$STATE/work; mkdir -p "$W"; chmod 755 "$STATE" "$W"
RPORT=$(free_ports 1)
MARK=mark-$RANDOM$RANDOM
LOG=$W/app.log; : >"$LOG"
cat >"$STATE/seed.toml" <<EOT
[node]
hostname = "n1"
$(reaction_agents_toml "$RPORT" "$LOG" approve)
[[reaction.patterns]]
name = "approve"
regex = "NEEDS-APPROVAL"
[[reaction.rules]]
name = "gated"
pattern = "approve"
flow = "gated"
start = "approval"
[[reaction.flows]]
name = "gated"
[[reaction.flows.tasks]]
name = "mark"
kind = "command"
host = "host2"
command = "echo ran >>$W/gated.out; echo output $MARK"
$(reaction_flaky_flow)
EOT
seed_ports "$STATE/seed.toml"
console_node "$STATE" n1
reaction_secrets
reaction_loopback_agents "$RPORT"
printf 'operator pass 1\n' | ctl user add op --role operator >/dev/null || fail "add an operator"
printf 'viewer pass 1\n' | ctl user add watcher --role viewer >/dev/null || fail "add a viewer"

echo "NEEDS-APPROVAL one" >>"$LOG"; echo "NEEDS-APPROVAL two" >>"$LOG"
pending() { ctl --json reaction incidents --pending | jq -e 'length == 2'; }
wait_for 30 pending || fail "no two pending incidents: $(ctl reaction incidents)"
read -r I1 I2 < <(ctl --json reaction incidents --pending | jq -r 'map(.id) | sort | "\(.[0]) \(.[1])"')

run_state() { ctl --json reaction run "$1" | jq -r .state; }
FLAKY=$(ctl --json reaction start flaky | jq -r .run)
wait_for 30 bash -c "[ \"\$($(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json reaction run $FLAKY | jq -r .state)\" = failed ]" \
  || fail "the flaky run did not fail: $(ctl reaction run "$FLAKY")"

# A viewer reads the inbox but may not approve.
jar=$STATE/viewer.jar
curl -skf -c "$jar" -H 'content-type: application/json' --data '{"username":"watcher","password":"viewer pass 1"}' "$BASE/api/v1/session" >/dev/null || fail "viewer login"
csrf=$(awk '$6 == "alpharen_csrf" {print $7}' "$jar")
curl -skf -b "$jar" "$BASE/api/v1/reaction/incidents?pending=true" | jq -e 'length == 2' >/dev/null || fail "the viewer cannot read the inbox"
code=$(curl -sk -o /dev/null -w '%{http_code}' -b "$jar" -H "x-csrf-token: $csrf" -X POST "$BASE/api/v1/reaction/incidents/$I1/approve")
[ "$code" = 403 ] || fail "a viewer's approve answered $code"
pass "a viewer reads the approvals inbox; approving answers 403"

TEST_OUT=$OUT timeout 120 node "$DIR/reaction.mjs" "$BASE" op "operator pass 1" "$MARK" "$FLAKY" || fail "Reaction page (screenshots in $OUT)"
ctl --json reaction incidents | jq -e --argjson a "$I1" --argjson d "$I2" \
  '(.[] | select(.id == $a) | .state == "started") and (.[] | select(.id == $d) | .state == "denied" and .run_id == null)' >/dev/null \
  || fail "incidents after the page: $(ctl reaction incidents)"
sleep 1
[ "$(cat "$W/gated.out")" = ran ] || fail "the gated command ran $(wc -l <"$W/gated.out") times"
ctl --json reaction run "$FLAKY" | jq -e '.state == "done" and ([.steps[] | .name + ":" + .state] == ["check:skipped", "after:done"])' >/dev/null \
  || fail "the skipped run: $(ctl --json reaction run "$FLAKY" | jq -c '[.steps[] | .name + ":" + .state]')"
pass "the operator approved one incident from the inbox (its run finished, output shown), denied the other (never ran), skipped a failed task"

# The operator's session: config writes and user changes refused, reactions allowed.
jar=$STATE/op.jar
curl -skf -c "$jar" -H 'content-type: application/json' --data '{"username":"op","password":"operator pass 1"}' "$BASE/api/v1/session" >/dev/null || fail "operator login"
csrf=$(awk '$6 == "alpharen_csrf" {print $7}' "$jar")
op() { curl -sk -o "$STATE/op.out" -w '%{http_code}' -b "$jar" -H "x-csrf-token: $csrf" -H 'content-type: application/json' "$@"; }
[ "$(op -X POST --data '{"path":"node.hostname","value":"x"}' "$BASE/api/v1/config/set")" = 403 ] || fail "operator config/set: $(cat "$STATE/op.out")"
[ "$(op -X POST --data '{"name":"eve","password":"eve pass 12"}' "$BASE/api/v1/users")" = 403 ] || fail "operator users add: $(cat "$STATE/op.out")"
[ "$(op -X POST "$BASE/api/v1/reaction/flows/gated/start")" = 200 ] || fail "operator start: $(cat "$STATE/op.out")"
[ "$(op -X POST "$BASE/api/v1/reaction/incidents/$I2/approve")" = 409 ] || fail "approving a denied incident: $(cat "$STATE/op.out")"
[ "$(ctl --json config show node | jq -r .config.hostname)" = n1 ] || fail "the hostname changed"
R=$(op -X POST "$BASE/api/v1/reaction/flows/flaky/start")
[ "$R" = 200 ] || fail "operator start flaky: $(cat "$STATE/op.out")"
R=$(jq -r .run "$STATE/op.out")
wait_for 30 bash -c "[ \"\$($(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json reaction run $R | jq -r .state)\" = failed ]" || fail "run $R did not fail"
touch "$W/flag"
[ "$(op -X POST "$BASE/api/v1/reaction/runs/$R/tasks/check/retry")" = 200 ] || fail "operator retry: $(cat "$STATE/op.out")"
wait_for 30 bash -c "[ \"\$($(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json reaction run $R | jq -r .state)\" = done ]" || fail "the retried run: $(ctl reaction run "$R")"
[ "$(op -X POST "$BASE/api/v1/reaction/runs/$R/tasks/check/skip")" = 409 ] || fail "skipping a task that is not current: $(cat "$STATE/op.out")"
pass "operator: config write and user add 403; start a flow 200; approving a denied incident 409; retry of a failed task 200 (the run finished)"

# Unknown objects: 404 with a message naming them (not 409).
nf() { # EXPECTED-TEXT CURL-ARGS...: 404 and the message names the object
  local want=$1; shift
  [ "$(op "$@")" = 404 ] || fail "$* answered $(cat "$STATE/op.out"), not 404"
  jq -e --arg w "$want" '.code == "not_found" and (.message | contains($w))' "$STATE/op.out" >/dev/null || fail "$*: $(cat "$STATE/op.out")"
}
nf "no incident 987654" -X POST "$BASE/api/v1/reaction/incidents/987654/approve"
nf "no incident 987654" -X POST "$BASE/api/v1/reaction/incidents/987654/deny"
nf 'no flow "nosuchflow"' -X POST "$BASE/api/v1/reaction/flows/nosuchflow/start"
nf "no run 987654" "$BASE/api/v1/reaction/runs/987654"
nf "no run 987654" -X POST "$BASE/api/v1/reaction/runs/987654/tasks/check/retry"
nf 'has no task "nosuchtask"' -X POST "$BASE/api/v1/reaction/runs/$R/tasks/nosuchtask/skip"
ctl reaction approve 987654 2>"$STATE/ctl.err" && fail "ctl approve of an unknown incident succeeded"
grep -q "no incident 987654" "$STATE/ctl.err" || fail "ctl approve of an unknown incident: $(cat "$STATE/ctl.err")"
pass "unknown incident, flow, run and task: 404 naming it (web and ctl)"

# A start at a time, from the web API: kept waiting until then.
AT=$(( $(date +%s) * 1000 + 3600000 ))
[ "$(op -X POST "$BASE/api/v1/reaction/flows/gated/start?at_ms=$AT")" = 200 ] || fail "operator start at: $(cat "$STATE/op.out")"
SID=$(jq -r .start "$STATE/op.out")
jq -e --argjson at "$AT" '.at_ms == $at' "$STATE/op.out" >/dev/null || fail "start at answer: $(cat "$STATE/op.out")"
[ "$(op "$BASE/api/v1/reaction/schedules")" = 200 ] || fail "schedules: $(cat "$STATE/op.out")"
jq -e --argjson s "$SID" --argjson at "$AT" '.starts[] | select(.id == $s) | .state == "waiting" and .flow == "gated" and .at_ms == $at' "$STATE/op.out" >/dev/null \
  || fail "the start is not listed as waiting: $(cat "$STATE/op.out")"
nf 'no flow "nosuchflow"' -X POST "$BASE/api/v1/reaction/flows/nosuchflow/start?at_ms=$AT"
pass "operator: a flow to start in an hour is kept waiting and listed in /reaction/schedules; an unknown flow 404"
