#!/usr/bin/env bash
# Message-level encryption between the reaction engine and an agent, on
# top of TLS: host2 has `encrypt = true` and runs with --encrypt; a line
# on host1 (plain) starts a flow whose command runs on host2 and whose
# output comes back through sealed messages. The engine refuses host2's
# plaintext calls (signed correctly, logged, nothing leased) and answers
# it only sealed; host1 run with --encrypt while its encryption is off
# refuses the engine's plaintext answers, and the engine refuses a sealed
# body from it. Agents are separate processes on loopback.
. "$(dirname "$0")/../lib.sh"
. "$ROOT/tests/reaction-lib.sh"
needs jq /usr/bin/python3
STATE=$(mktemp -d /tmp/alpharen-rxenc.XXXXXX)
[ -n "${KEEP:-}" ] || on_exit "rm -rf $STATE"
W=$STATE/work; mkdir -p "$W"; chmod 755 "$STATE" "$W"
RPORT=$(free_ports 1)
LOG=$W/app.log; : >"$LOG"
cat >"$STATE/seed.toml" <<EOT
[node]
hostname = "n1"
$(reaction_agents_toml "$RPORT" "$LOG" disk)
encrypt = true
[[reaction.patterns]]
name = "disk"
regex = "ERROR disk"
[[reaction.rules]]
name = "disk-error"
pattern = "disk"
flow = "check"
[[reaction.flows]]
name = "check"
[[reaction.flows.tasks]]
name = "usage"
kind = "command"
host = "host2"
command = "echo secret-output-\$((6 * 7))"
EOT
# reaction_agents_toml ends with host2's table: `encrypt = true` is host2's.
grep -A2 'name = "host2"' "$STATE/seed.toml" | has 'encrypt = true' || fail "the seed's encrypt line is not host2's"
seed_ports "$STATE/seed.toml"
start_node "$STATE" --config "$STATE/seed.toml"
reaction_secrets
wait_for 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$RPORT" || fail "agent API not listening on $RPORT"
agent() { # NAME ROLE [ARGS...]: an agent process, its log $W/NAME.log
  local name=$1; shift
  "$ALPHAREN" agent --engine "https://127.0.0.1:$RPORT" --name "$name" --secret-file "$W/s${name#host}" \
    --engine-cert "$STATE/tls/cert.pem" --state-dir "$W/$name" "$@" >>"$W/$name.log" 2>&1 &
  AGENT_PID=$!; on_exit "kill $AGENT_PID 2>/dev/null"
}
agent host1 --reader
agent host2 --executor --encrypt
wait_for 30 bash -o pipefail -c "$(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json reaction status | jq -e '[.agents[] | select(.online)] | length == 2'" \
  || fail "agents not online: $(ctl reaction status; cat "$W"/host*.log)"
wait_for 20 grep -q "watching" "$W/host1.log" || fail "the reader did not get its watch list: $(cat "$W/host1.log")"

echo "ERROR disk full" >>"$LOG"
wait_for 30 bash -o pipefail -c "$(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json reaction runs | jq -e '.[0].state == \"done\"'" \
  || fail "the run did not finish: $(ctl reaction runs; cat "$W/host2.log")"
ctl --json reaction runs | jq -e '.[0].steps[0].output == "secret-output-42\n" and .[0].steps[0].host == "host2"' >/dev/null \
  || fail "the command's output: $(ctl --json reaction runs | jq -c '.[0].steps')"
pass "an encrypting executor (--encrypt, encrypt = true) ran the command; its output came back through sealed messages"

A=(/usr/bin/python3 "$ROOT/tests/e2e/reaction_auth.py" 127.0.0.1 "$RPORT")
[ "$("${A[@]}" host2 "$S2" config-body | xargs)" = "200 sealed" ] || fail "host2's config answer is not sealed"
[ "$("${A[@]}" host1 "$S1" config-body | xargs)" = "200 plain" ] || fail "host1's config answer is not plain"
[ "$("${A[@]}" host2 "$S2" plain-lease)" = 401 ] || fail "a plaintext lease call of host2 was not refused"
ctl logs reaction | grep "agent call refused" | has "in plaintext, but this agent's messages must be encrypted" || fail "the plaintext refusal is not logged"
pass "host2 gets only sealed answers; its signed plaintext call is refused and logged (host1, not encrypting, gets plaintext)"

# The same executor without --encrypt: refused, nothing leased to it.
kill "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null
agent host2 --executor
R=$(ctl --json reaction start check | jq -r .run)
wait_for 20 grep -q 'lease refused' "$W/host2.log" || fail "the plaintext executor was not refused: $(tail -5 "$W/host2.log")"
ctl --json reaction run "$R" | jq -e '.steps[0].state == "ready" and .steps[0].leases == 0' >/dev/null || fail "a command went to the plaintext executor: $(ctl --json reaction run "$R" | jq -c .steps)"
kill "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null
agent host2 --executor --encrypt
wait_for 30 bash -c "[ \"\$($(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json reaction run $R | jq -r .state)\" = done ]" || fail "the run after --encrypt came back: $(ctl reaction run "$R")"
pass "the executor without --encrypt is refused and gets no command; back with --encrypt it runs it"

# host1 run with --encrypt while its encryption is off: the agent refuses
# the engine's plaintext answer; a sealed body from it is refused by the
# engine.
agent host1 --reader --encrypt
wait_for 20 grep -q "the engine's answer: the body is in plaintext" "$W/host1.log" \
  || fail "the encrypting host1 took a plaintext answer: $(tail -5 "$W/host1.log")"
[ "$("${A[@]}" host1 "$S1" sealed-events)" = 401 ] || fail "a sealed events call of host1 was not refused"
ctl logs reaction | grep "agent call refused" | has "encrypted, but encryption is not on for this agent" || fail "the sealed-body refusal is not logged"
pass "an agent with --encrypt refuses the engine's plaintext answer; a sealed body from an agent without encrypt = true is refused and logged"
