#!/usr/bin/env bash
# The reaction engine's `service` task end to end: a Python service is
# hot-deployed to the node's integrator; a flow invokes it with a payload
# (through the control socket, as `ctl integrator invoke` does), records
# its answer as the task's output, and an `if` on that output picks the
# branch: the true branch with one payload, the false branch with another.
# A service that answers 500 fails the task (and the run); an unknown
# service fails it with the integrator's reason. Scheduled starts: a flow
# with `schedule = "every 3s"` starts on its own; a one-off start at a
# time (ctl and the web API) survives the engine being kill -9ed before
# it is due, and runs exactly once.
. "$(dirname "$0")/../lib.sh"
needs jq /usr/bin/python3
STATE=$(mktemp -d /tmp/alpharen-rxsvc.XXXXXX)
[ -n "${KEEP:-}" ] || on_exit "rm -rf $STATE"
W=$STATE/work; mkdir -p "$W"; chmod 755 "$STATE" "$W"

# disk_flow NAME USED: call rx.disk with {disk, used}; `if` its answer
# says level high → the high task, else the low one (each a service call).
disk_flow() {
  cat <<TOML
[[reaction.flows]]
name = "$1"
[[reaction.flows.tasks]]
name = "call"
kind = "service"
service = "rx.disk"
payload = { disk = "/data", used = $2 }
[[reaction.flows.tasks]]
name = "full"
kind = "if"
op = "contains"
value = '"level":"high"'
then = "high"
else = "low"
[[reaction.flows.tasks]]
name = "high"
kind = "service"
service = "rx.disk"
payload = { disk = "/data", used = 0, note = "cleanup" }
next = "end"
[[reaction.flows.tasks]]
name = "low"
kind = "service"
service = "rx.disk"
payload = { disk = "/data", used = 1, note = "nothing to do" }
TOML
}
cat >"$STATE/seed.toml" <<EOT
[node]
hostname = "n1"
[integrator]
tls = "off"
workers = 1
timeout = 10
$(disk_flow svc 95)
$(disk_flow svc-low 40)
[[reaction.flows]]
name = "tick"
schedule = "every 3s"
[[reaction.flows.tasks]]
name = "call"
kind = "service"
service = "rx.disk"
payload = { disk = "/tick", used = 5 }
[[reaction.flows]]
name = "broken"
[[reaction.flows.tasks]]
name = "fail"
kind = "service"
service = "rx.fail"
[[reaction.flows]]
name = "missing"
[[reaction.flows.tasks]]
name = "nobody"
kind = "service"
service = "rx.nosuchservice"
EOT
seed_ports "$STATE/seed.toml"
start_node "$STATE" --config "$STATE/seed.toml"
wait_for 30 ctl integrator status || fail "integrator control socket not reachable"
wait_for 30 bash -c "$(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json reaction status" || fail "reaction service not answering"

cat >"$W/rx_disk.py" <<'PY'
# -*- coding: utf-8 -*-
from zato.server.service import Service

class Disk(Service):
    name = 'rx.disk'

    def handle(self):
        p = self.request.payload or {}
        used = int(p.get('used', 0))
        self.response.payload = {'disk': p.get('disk'), 'used': used,
                                 'level': 'high' if used > 90 else 'ok', 'note': p.get('note', '')}

class Fail(Service):
    name = 'rx.fail'

    def handle(self):
        self.response.status_code = 500
        self.response.payload = {'error': 'disk service broken'}
PY
ctl integrator deploy "$W/rx_disk.py" >"$W/deploy.out" 2>&1 || fail "deploy rx_disk.py: $(cat "$W/deploy.out")"
wait_for 20 bash -c "$(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json integrator list | has rx.disk" || fail "rx.disk not deployed"
pass "rx.disk hot-deployed to the integrator"

run_end() { # RUN: waits until it is no longer running, prints its JSON
  wait_for 60 bash -c "[ \"\$($(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json reaction run $1 | jq -r .state)\" != running ]" \
    || fail "run $1 still running: $(ctl reaction run "$1")"
  ctl --json reaction run "$1"
}

R=$(ctl --json reaction start svc | jq -r .run)
run_end "$R" >"$W/run1.json"
jq -e '.state == "done" and ([.steps[] | .name + ":" + .state] == ["call:done", "full:done", "high:done"])' "$W/run1.json" >/dev/null \
  || fail "true branch: $(jq -c '[.steps[] | [.name, .state, .exit_code, .output]]' "$W/run1.json")"
jq -e '.steps[0] | .exit_code == 200 and (.output | fromjson | .used == 95 and .level == "high" and .disk == "/data")' "$W/run1.json" >/dev/null \
  || fail "the service's answer is not the call's output: $(jq -c '.steps[0]' "$W/run1.json")"
jq -e '.steps[2].output | fromjson | .note == "cleanup"' "$W/run1.json" >/dev/null || fail "the high branch's payload: $(jq -c '.steps[2]' "$W/run1.json")"
pass "service task: payload in, answer recorded as the output (status 200), if on the output took the true branch"

# The same flow with another payload: the false branch.
R=$(ctl --json reaction start svc-low | jq -r .run)
run_end "$R" >"$W/run2.json"
jq -e '.state == "done" and ([.steps[] | .name + ":" + .state] == ["call:done", "full:done", "low:done"]) and (.steps[1].output == "false")' "$W/run2.json" >/dev/null \
  || fail "false branch: $(jq -c '[.steps[] | [.name, .state, .exit_code, .output]]' "$W/run2.json")"
jq -e '.steps[2].output | fromjson | .note == "nothing to do"' "$W/run2.json" >/dev/null || fail "the low branch's payload: $(jq -c '.steps[2]' "$W/run2.json")"
pass "with another payload the if took the false branch"

R=$(ctl --json reaction start broken | jq -r .run)
run_end "$R" >"$W/run3.json"
jq -e '.state == "failed" and .steps[0].state == "failed" and .steps[0].exit_code == 500 and (.steps[0].output | contains("disk service broken"))' "$W/run3.json" >/dev/null \
  || fail "a 500 answer: $(jq -c . "$W/run3.json")"
R=$(ctl --json reaction start missing | jq -r .run)
run_end "$R" >"$W/run4.json"
jq -e '.state == "failed" and .steps[0].state == "failed" and (.steps[0].output | contains("rx.nosuchservice"))' "$W/run4.json" >/dev/null \
  || fail "an unknown service: $(jq -c . "$W/run4.json")"
pass "a 500 answer fails the task with the body as output; an unknown service fails it with the reason"

# --- scheduled starts
runs_of() { ctl --json reaction runs --limit 1000 | jq --arg f "$1" '[.[] | select(.flow == $f)]'; }
wait_for 30 bash -c "[ \"\$($(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json reaction runs --limit 1000 | jq '[.[] | select(.flow == \"tick\" and .state == \"done\")] | length')\" -ge 2 ]" \
  || fail "the flow on a schedule did not run twice: $(ctl reaction runs; ctl reaction schedules)"
ctl --json reaction schedules | jq -e '.flows[0].flow == "tick" and .flows[0].schedule == "every 3s" and (.flows[0].next_ms | type == "number")' >/dev/null \
  || fail "schedules: $(ctl --json reaction schedules)"
first=$(runs_of tick | jq '[.[].started_ms] | min'); second=$(runs_of tick | jq '[.[].started_ms] | sort | .[1]')
[ $((second - first)) -ge 2900 ] || fail "scheduled runs $((second - first)) ms apart, not every 3 s"
pass "a flow with schedule = \"every 3s\" started on its own, 3 s apart; ctl reaction schedules shows its next start"

before=$(runs_of svc-low | jq length)
S=$(ctl --json reaction start svc-low --in 6 | jq -r .start)
[[ $S =~ ^[0-9]+$ ]] || fail "start --in did not answer a start id"
ctl --json reaction schedules | jq -e --argjson s "$S" '.starts[] | select(.id == $s) | .state == "waiting"' >/dev/null || fail "the start is not waiting: $(ctl --json reaction schedules)"
EPID=$(ctl --json services | jq -r '.[] | select(.name=="reaction") | .pid')
kill -9 "$EPID"
wait_for 30 bash -o pipefail -c "$(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json services | jq -e '.[] | select(.name==\"reaction\" and .state==\"running\" and .pid != $EPID)'" || fail "engine not restarted"
[ "$(runs_of svc-low | jq length)" = "$before" ] || fail "the timed start ran before its time"
wait_for 30 bash -o pipefail -c "$(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json reaction schedules | jq -e '.starts[] | select(.id == $S) | .state == \"started\"'" \
  || fail "the timed start did not run after the engine restart: $(ctl --json reaction schedules)"
R=$(ctl --json reaction schedules | jq -r --argjson s "$S" '.starts[] | select(.id == $s) | .run_id')
run_end "$R" | jq -e '.flow == "svc-low" and .state == "done"' >/dev/null || fail "the timed run: $(ctl reaction run "$R")"
sleep 2
[ "$(runs_of svc-low | jq length)" = $((before + 1)) ] || fail "the timed start ran $(( $(runs_of svc-low | jq length) - before )) times"
pass "ctl reaction start --in 6: kept across an engine kill -9, ran once at its time"
