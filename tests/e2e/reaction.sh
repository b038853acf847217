#!/usr/bin/env bash
# The reaction engine end to end: a node runs the engine; two agents run
# as separate processes in their own network namespaces (host1: reader,
# host2: executor) and reach the engine's agent API over veth links.
# A line appended to host1's log → incident → command on host2 → `if` on
# its output → the true branch's mail arrives at an aiosmtpd sink (the
# node's smarthost) with the output in it; with other output the false
# branch's mail. Rotation (rename + new file), truncation and a reader
# restart: every line reported exactly once. An approval rule: deny → the
# command never runs; approve → it runs once. A failed task retried, one
# skipped. The executor kill -9ed mid-command: the task is leased again
# after its lease and done; the engine kill -9ed mid-command: the run goes
# on after the supervisor restarts it. Forged, stale, replayed and
# unknown-agent calls are refused, logged, and start nothing.
. "$(dirname "$0")/../lib.sh"
. "$ROOT/tests/reaction-lib.sh"
needs jq ip /usr/bin/python3
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || fail "python3-aiosmtpd missing (scripts/deps.sh)"
STATE=$(mktemp -d /tmp/alpharen-reaction.XXXXXX)
[ -n "${KEEP:-}" ] || on_exit "rm -rf $STATE"
W=$STATE/work; mkdir -p "$W"; chmod 755 "$STATE" "$W"

# --- two hosts: namespaces with a veth link each to this namespace
N=$(( $$ % 200 + 20 ))
for i in 1 2; do
  ns=rx$i$$; ip netns add "$ns"; on_exit "ip netns del $ns"
  ip link add "rxh$i$$" type veth peer name "rxa$i$$" netns "$ns"; on_exit "ip link del rxh$i$$ 2>/dev/null"
  ip addr add "10.$N.$i.1/24" dev "rxh$i$$"; ip link set "rxh$i$$" up
  ip -n "$ns" addr add "10.$N.$i.2/24" dev "rxa$i$$"; ip -n "$ns" link set "rxa$i$$" up; ip -n "$ns" link set lo up
done

read -r SINK_PORT RPORT < <(free_ports 2)
/usr/bin/python3 "$ROOT/tests/e2e/smtp_sink.py" --port "$SINK_PORT" --dir "$W/sink" >"$W/sink.log" 2>&1 &
SINK_PID=$!; on_exit "kill $SINK_PID 2>/dev/null"
LOG=$W/app.log; : >"$LOG"
cat >"$STATE/seed.toml" <<EOT
[node]
hostname = "n1"
[mail.relay]
mode = "smarthost"
host = "127.0.0.1"
port = $SINK_PORT
tls = "none"
[reaction]
port = $RPORT
address = "0.0.0.0"
lease_grace = 2
[[reaction.agents]]
name = "host1"
[[reaction.agents.watch]]
path = "$LOG"
patterns = ["disk", "rot", "approve"]
[[reaction.agents]]
name = "host2"
[[reaction.patterns]]
name = "disk"
regex = "ERROR disk"
[[reaction.patterns]]
name = "rot"
regex = "ROT-[0-9]+"
[[reaction.patterns]]
name = "approve"
regex = "NEEDS-APPROVAL"
[[reaction.rules]]
name = "disk-error"
pattern = "disk"
host = "host1"
flow = "check-disk"
[[reaction.rules]]
name = "rotation"
pattern = "rot"
flow = "noop"
start = "approval"
[[reaction.rules]]
name = "gated"
pattern = "approve"
flow = "gated"
start = "approval"
[[reaction.flows]]
name = "check-disk"
[[reaction.flows.tasks]]
name = "probe"
kind = "command"
host = "host2"
command = "cat $W/status"
timeout = 10
[[reaction.flows.tasks]]
name = "full"
kind = "if"
op = "contains"
value = "FULL"
else = "fine"
[[reaction.flows.tasks]]
name = "alert"
kind = "mail"
to = ["ops@example.net"]
subject = "disk full"
next = "end"
[[reaction.flows.tasks]]
name = "fine"
kind = "mail"
to = ["ops@example.net"]
subject = "disk fine"
[[reaction.flows]]
name = "noop"
[[reaction.flows.tasks]]
name = "nothing"
kind = "command"
host = "host2"
command = "true"
[[reaction.flows]]
name = "gated"
[[reaction.flows.tasks]]
name = "mark"
kind = "command"
host = "host2"
command = "echo ran >>$W/gated.out"
$(reaction_flaky_flow)
[[reaction.flows]]
name = "slow"
[[reaction.flows.tasks]]
name = "work"
kind = "command"
host = "host2"
command = "touch $W/slow.started; sleep 2; echo slow-\$\$ >>$W/slow.out; echo done"
timeout = 4
[[reaction.flows.tasks]]
name = "tell"
kind = "mail"
to = ["ops@example.net"]
subject = "slow done"
EOT
seed_ports "$STATE/seed.toml"
start_node "$STATE" --config "$STATE/seed.toml"
wait_for 30 ctl reaction status || fail "reaction service not reachable: $(tail -20 "$STATE/console.log")"
reaction_secrets
wait_for 20 bash -o pipefail -c "$(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json reaction status | jq -e '[.agents[] | select(.has_secret)] | length == 2'" \
  || fail "the engine did not take the agent secrets: $(ctl reaction status)"
wait_for 30 bash -c "exec 3<>/dev/tcp/10.$N.1.1/$RPORT" || fail "agent API not listening on $RPORT"

agent() { # NAME NS ROLE...: starts an agent, sets AGENT_PID
  local name=$1 ns=$2 key=$W/s${1#host}; shift 2
  ip netns exec "$ns" "$ALPHAREN" agent --engine "https://10.$N.${name#host}.1:$RPORT" --name "$name" \
    --secret-file "$key" --engine-cert "$STATE/tls/cert.pem" --state-dir "$W/$name" "$@" >>"$W/$name.log" 2>&1 &
  AGENT_PID=$!; on_exit "kill $AGENT_PID 2>/dev/null"
}
agent host1 "rx1$$" --reader; A1=$AGENT_PID
agent host2 "rx2$$" --executor; A2=$AGENT_PID
wait_for 20 grep -q "watching" "$W/host1.log" || fail "reader did not get its watch list: $(cat "$W/host1.log")"
wait_for 20 bash -o pipefail -c "$(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json reaction status | jq -e '[.agents[] | select(.online)] | length == 2'" \
  || fail "agents not online: $(ctl reaction status; cat "$W"/host*.log)"
pass "engine listening; reader and executor online from their namespaces"

incidents() { ctl --json reaction incidents --limit 200; }
run_state() { ctl --json reaction run "$1" | jq -r .state; }
sink_has() { grep -l "$1" "$W"/sink/*.eml 2>/dev/null | xargs -r grep -l "$2" | has .; }

# --- line → incident → command → if → mail (true branch, then false)
echo "status: FULL 98%" >"$W/status"
echo "$(date) ERROR disk /var is full" >>"$LOG"
wait_for 30 bash -c "$(declare -f sink_has); W=$W; sink_has 'Subject: disk full' 'status: FULL 98%'" \
  || fail "no 'disk full' mail with the command's output: $(ctl reaction runs; ls "$W/sink" 2>&1)"
R1=$(incidents | jq -r '[.[] | select(.rule=="disk-error")][0].run_id')
[ "$(run_state "$R1")" = done ] || fail "run $R1 is $(run_state "$R1")"
ctl --json reaction run "$R1" | jq -e '[.steps[].name] == ["probe","full","alert"] and .steps[1].output == "true"' >/dev/null \
  || fail "run $R1 did not take the true branch: $(ctl reaction run "$R1")"
echo "status: ok 41%" >"$W/status"
echo "$(date) ERROR disk /var check" >>"$LOG"
wait_for 30 bash -c "$(declare -f sink_has); W=$W; sink_has 'Subject: disk fine' 'status: ok 41%'" \
  || fail "no 'disk fine' mail for the false branch: $(ctl reaction runs)"
R2=$(incidents | jq -r '[.[] | select(.rule=="disk-error")][0].run_id')
ctl --json reaction run "$R2" | jq -e '[.steps[].name] == ["probe","full","fine"] and .state == "done"' >/dev/null \
  || fail "run $R2 did not take the false branch: $(ctl reaction run "$R2")"
grep -h 'Subject: disk f' "$W"/sink/*.eml | sort | uniq -c | awk '$1 != 1 {exit 1}' || fail "a flow mail arrived twice"
pass "log line → incident → command on host2 → if → mail with the output (true branch, then false branch)"

# --- rotation, truncation, reader restart: each line exactly once
echo "ROT-1" >>"$LOG"; echo "ROT-2" >>"$LOG"
wait_for 20 bash -o pipefail -c "$(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json reaction incidents | jq -e '[.[] | select(.rule==\"rotation\")] | length == 2'" || fail "ROT-1/2 not reported"
echo "ROT-3" >>"$LOG"; mv "$LOG" "$LOG.1"; printf 'ROT-4\n%s\n' "a long line that is not a pattern match, so the file is longer than after its truncation" >"$LOG"
wait_for 20 bash -o pipefail -c "$(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json reaction incidents | jq -e '[.[] | select(.rule==\"rotation\")] | length == 4'" || fail "lines around the rotation not reported: $(incidents | jq -c '[.[] | select(.rule=="rotation") | .line]')"
: >"$LOG"; echo "ROT-5" >>"$LOG"
wait_for 20 bash -o pipefail -c "$(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json reaction incidents | jq -e '[.[] | select(.rule==\"rotation\")] | length == 5'" || fail "line after truncation not reported"
kill "$A1"; wait "$A1" 2>/dev/null || true   # the reader stops (TERM)
echo "ROT-6" >>"$LOG"
agent host1 "rx1$$" --reader; A1=$AGENT_PID
wait_for 20 bash -o pipefail -c "$(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json reaction incidents | jq -e '[.[] | select(.rule==\"rotation\")] | length >= 6'" || fail "line written while the reader was down not reported"
sleep 1
lines=$(incidents | jq -r '[.[] | select(.rule=="rotation") | .line] | sort | join(",")')
[ "$lines" = "ROT-1,ROT-2,ROT-3,ROT-4,ROT-5,ROT-6" ] || fail "rotation lines: $lines"
pass "rotation (rename + new file), truncation and a reader restart: every line reported once"

# --- approval: deny → nothing runs; approve → runs once
echo "NEEDS-APPROVAL one" >>"$LOG"
wait_for 20 bash -o pipefail -c "$(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json reaction incidents | jq -e '[.[] | select(.rule==\"gated\" and .state==\"pending\")] | length == 1'" || fail "no pending incident"
I1=$(incidents | jq -r '[.[] | select(.rule=="gated")][0].id')
ctl reaction deny "$I1" >/dev/null
echo "NEEDS-APPROVAL two" >>"$LOG"
wait_for 20 bash -o pipefail -c "$(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json reaction incidents | jq -e '[.[] | select(.rule==\"gated\" and .state==\"pending\")] | length == 1'" || fail "no second pending incident"
I2=$(incidents | jq -r '[.[] | select(.rule=="gated" and .state=="pending")][0].id')
sleep 1
[ ! -e "$W/gated.out" ] || fail "the gated command ran before approval"
ctl reaction approve "$I2" >/dev/null
wait_for 20 test -s "$W/gated.out" || fail "approved flow did not run"
incidents | jq -e --argjson i "$I1" '.[] | select(.id==$i) | .state == "denied" and .run_id == null' >/dev/null || fail "denied incident: $(incidents | jq -c ".[] | select(.id==$I1)")"
ctl reaction approve "$I1" >/dev/null 2>&1 && fail "a denied incident was approved"
sleep 1
[ "$(cat "$W/gated.out")" = ran ] || fail "gated command ran $(wc -l <"$W/gated.out") times"
pass "approval: the flow waits; deny → not run (and cannot be approved later); approve → runs once"

# --- retry a failed task; skip a failed task
RUN=$(ctl --json reaction start flaky | jq -r .run)
wait_for 20 bash -c "[ \"\$($(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json reaction run $RUN | jq -r .state)\" = failed ]" || fail "flaky run did not fail: $(ctl reaction run "$RUN")"
touch "$W/flag"
ctl reaction retry "$RUN" check >/dev/null
wait_for 20 bash -c "[ \"\$($(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json reaction run $RUN | jq -r .state)\" = done ]" || fail "retried run not done: $(ctl reaction run "$RUN")"
rm "$W/flag"
RUN2=$(ctl --json reaction start flaky | jq -r .run)
wait_for 20 bash -c "[ \"\$($(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json reaction run $RUN2 | jq -r .state)\" = failed ]" || fail "second flaky run did not fail"
ctl reaction skip "$RUN2" check >/dev/null
wait_for 20 bash -c "[ \"\$($(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json reaction run $RUN2 | jq -r .state)\" = done ]" || fail "skipped run not done: $(ctl reaction run "$RUN2")"
ctl --json reaction run "$RUN2" | jq -e '[.steps[] | .name + ":" + .state] == ["check:failed","check:skipped","after:done"] // ([.steps[] | .name + ":" + .state] == ["check:skipped","after:done"])' >/dev/null \
  || fail "skip steps: $(ctl --json reaction run "$RUN2" | jq -c '[.steps[] | .name + ":" + .state]')"
[ "$(wc -l <"$W/flaky.out")" = 2 ] || fail "the task after check ran $(wc -l <"$W/flaky.out") times"
pass "a failed task retried; a failed task skipped and the run went on"

# --- executor kill -9 mid-command: leased again after its lease
RUN=$(ctl --json reaction start slow | jq -r .run)
wait_for 20 test -e "$W/slow.started" || fail "slow command did not start"
kill -9 "$A2"; wait "$A2" 2>/dev/null || true
rm -f "$W/slow.started"
agent host2 "rx2$$" --executor; A2=$AGENT_PID
wait_for 40 bash -c "[ \"\$($(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json reaction run $RUN | jq -r .state)\" = done ]" || fail "run after executor kill not done: $(ctl reaction run "$RUN")"
ctl --json reaction run "$RUN" | jq -e '.steps[0].leases == 2 and .steps[0].state == "done"' >/dev/null || fail "task not leased twice: $(ctl --json reaction run "$RUN" | jq -c .steps[0])"
pass "executor killed mid-command: the task was leased again after its lease and completed"

# --- engine kill -9 mid-command: the run resumes
rm -f "$W/slow.started"
RUN=$(ctl --json reaction start slow | jq -r .run)
wait_for 20 test -e "$W/slow.started" || fail "slow command did not start (2)"
EPID=$(ctl --json services | jq -r '.[] | select(.name=="reaction") | .pid')
kill -9 "$EPID"
wait_for 30 bash -o pipefail -c "$(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json services | jq -e '.[] | select(.name==\"reaction\" and .state==\"running\" and .pid != $EPID)'" || fail "engine not restarted"
wait_for 40 bash -c "[ \"\$($(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json reaction run $RUN | jq -r .state)\" = done ]" || fail "run after engine kill not done: $(ctl reaction run "$RUN")"
grep -q "resuming run.*run=$RUN" "$STATE/log/reaction.log" 2>/dev/null || ctl logs reaction | has "resuming run" || fail "the engine did not say it resumed run $RUN"
wait_for 30 bash -c "[ \$(grep -l 'Subject: slow done' $W/sink/*.eml 2>/dev/null | wc -l) -eq 2 ]" || fail "mails of the slow runs: $(grep -l 'Subject: slow done' "$W"/sink/*.eml | wc -l)"
pass "engine killed mid-command: the run resumed and finished"

# --- refused calls: nothing acted on, each logged
before=$(incidents | jq length)
A=(/usr/bin/python3 "$ROOT/tests/e2e/reaction_auth.py" "10.$N.1.1" "$RPORT" host1 "$S1")
[ "$(ip netns exec "rx1$$" "${A[@]}" good)" = 200 ] || fail "a good signed call was refused"
[ "$(ip netns exec "rx1$$" "${A[@]}" replay | xargs)" = "200 401" ] || fail "a replayed call was not refused"
for c in badkey stale unknown events-badkey; do
  [ "$(ip netns exec "rx1$$" "${A[@]}" "$c")" = 401 ] || fail "$c call not refused"
done
sleep 1
[ "$(incidents | jq length)" = "$before" ] || fail "a refused call made an incident"
logs=$(ctl logs reaction)
for why in "signature already used" "invalid credentials" "away from the server clock" "unknown agent"; do
  grep "agent call refused" <<<"$logs" | has "$why" || fail "no refusal logged for: $why"
done
pass "wrong key, stale date, replay and unknown agent refused and logged; nothing started"
