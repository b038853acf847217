#!/usr/bin/env bash
# Rules that start their flow on a schedule, cancelling a waiting start,
# the statistics, and definitions refused with their line. Agents are
# separate processes on loopback (host1 reads, host2 executes).
# - A `start = "scheduled"` rule with a cron of every 20 s: a line makes
#   an incident kept `scheduled` with its planned start (a 20 s boundary);
#   the engine is kill -9ed while it waits; the flow starts once, not
#   before its time.
# - A second scheduled incident cancelled with `ctl reaction cancel`
#   never starts (its time passes); its incident is `cancelled`.
# - A rule with `at = "HH:MM"` (the node's time zone, UTC here): the
#   planned start is the next such time; an operator cancels it with
#   DELETE /api/v1/reaction/starts/{id} (again: 409; unknown: 404; a
#   viewer: 403).
# - A flow with `schedule = "cron */5 * * * * *"` runs on its own, once
#   per 5 s time at most.
# - `ctl reaction stats` and /api/v1/reaction/stats count what ran.
# - A [reaction] with an `if` without branches, a command on an unknown
#   host and a rule naming an unknown flow is refused, each problem with
#   its path and line, and nothing is stored.
. "$(dirname "$0")/../lib.sh"
. "$ROOT/tests/reaction-lib.sh"
needs jq curl /usr/bin/python3
STATE=$(mktemp -d /tmp/alpharen-rxsched.XXXXXX)
[ -n "${KEEP:-}" ] || on_exit "rm -rf $STATE"
W=$STATE/work; mkdir -p "$W"; chmod 755 "$STATE" "$W"
RPORT=$(free_ports 1)
LOG=$W/app.log; : >"$LOG"
# An hour ago (UTC): the `at` rule's next start is tomorrow at that time.
AT=$(date -u -d '1 hour ago' +%H:%M)
flow() { # NAME: one command appending NAME to $W/NAME.out
  printf '[[reaction.flows]]\nname = "%s"\n[[reaction.flows.tasks]]\nname = "mark"\nkind = "command"\nhost = "host2"\ncommand = "echo ran >>%s/%s.out"\n' "$1" "$W" "$1"
}
cat >"$STATE/seed.toml" <<EOT
[node]
hostname = "n1"
timezone = "UTC"
$(reaction_agents_toml "$RPORT" "$LOG" later drop nightly)
[[reaction.patterns]]
name = "later"
regex = "LATER"
[[reaction.patterns]]
name = "drop"
regex = "DROPME"
[[reaction.patterns]]
name = "nightly"
regex = "NIGHTLY"
[[reaction.rules]]
name = "later"
pattern = "later"
flow = "later"
start = "scheduled"
cron = "*/20 * * * * *"
[[reaction.rules]]
name = "dropped"
pattern = "drop"
flow = "dropped"
start = "scheduled"
cron = "*/20 * * * * *"
[[reaction.rules]]
name = "nightly"
pattern = "nightly"
flow = "nightly"
start = "scheduled"
at = "$AT"
$(flow later)
$(flow dropped)
$(flow nightly)
$(flow ticker | sed 's|^name = "ticker"$|&\nschedule = "cron */5 * * * * *"|')
EOT
seed_ports "$STATE/seed.toml"
console_node "$STATE" n1
reaction_secrets
reaction_loopback_agents "$RPORT"

starts() { ctl --json reaction schedules | jq '.starts'; }
start_of() { starts | jq -r --argjson i "$1" '.[] | select(.incident_id == $i) | .id'; }
incident_of() { # RULE: the id of its newest incident (waits for one)
  wait_for 30 bash -o pipefail -c "$(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json reaction incidents | jq -e '.[] | select(.rule == \"$1\")'" \
    || fail "no incident of rule $1: $(ctl reaction incidents; tail -5 "$W/host1.log")"
  ctl --json reaction incidents | jq -r --arg r "$1" '[.[] | select(.rule == $r)][0].id'
}
runs_of() { ctl --json reaction runs --limit 1000 | jq --arg f "$1" '[.[] | select(.flow == $f)]'; }

# Lines written 1-8 s past a 20 s boundary, so the next one is 12 s away
# at least (bounded: a boundary comes every 20 s).
for _ in $(seq 1 250); do s=$(( $(date +%s) % 20 )); [ "$s" -ge 1 ] && [ "$s" -le 8 ] && break; sleep 0.1; done
echo "$(date) LATER one" >>"$LOG"
echo "$(date) DROPME two" >>"$LOG"
I1=$(incident_of later); I2=$(incident_of dropped)
ctl --json reaction incidents | jq -e --argjson a "$I1" --argjson b "$I2" \
  '[.[] | select(.id == $a or .id == $b) | select(.state == "scheduled" and .run_id == null)] | length == 2' >/dev/null \
  || fail "the incidents are not scheduled: $(ctl reaction incidents)"
S1=$(start_of "$I1"); S2=$(start_of "$I2")
[[ $S1 =~ ^[0-9]+$ && $S2 =~ ^[0-9]+$ ]] || fail "no waiting starts for incidents $I1 $I2: $(starts)"
DUE=$(starts | jq -r --argjson s "$S1" '.[] | select(.id == $s) | .at_ms')
SEEN=$(ctl --json reaction incidents | jq -r --argjson a "$I1" '.[] | select(.id == $a) | .at_ms')
[ $((DUE % 20000)) = 0 ] && [ "$DUE" -gt "$SEEN" ] && [ $((DUE - SEEN)) -le 20000 ] \
  || fail "planned start $DUE is not the 20 s boundary after the incident at $SEEN"
pass "a scheduled rule's incident is kept 'scheduled' with its planned start (the next 20 s boundary of its cron)"

ctl reaction cancel "$S2" >"$W/cancel.out" || fail "ctl reaction cancel $S2: $(cat "$W/cancel.out")"
EPID=$(ctl --json services | jq -r '.[] | select(.name=="reaction") | .pid')
kill -9 "$EPID"
wait_for 30 bash -o pipefail -c "$(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json services | jq -e '.[] | select(.name==\"reaction\" and .state==\"running\" and .pid != $EPID)'" \
  || fail "engine not restarted"
wait_for 30 ctl reaction schedules || fail "the restarted engine does not answer"
NOW=$(( $(date +%s%3N) ))
if [ "$NOW" -lt "$DUE" ]; then
  [ "$(runs_of later | jq length)" = 0 ] || fail "the scheduled flow started before its time"
  starts | jq -e --argjson s "$S1" '.[] | select(.id == $s) | .state == "waiting"' >/dev/null || fail "the start is not waiting after the restart: $(starts)"
fi
wait_for 40 bash -o pipefail -c "$(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json reaction schedules | jq -e '.starts[] | select(.id == $S1) | .state == \"started\"'" \
  || fail "the scheduled start did not happen after the engine restart: $(starts)"
R=$(starts | jq -r --argjson s "$S1" '.[] | select(.id == $s) | .run_id')
wait_for 30 bash -c "[ \"\$($(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json reaction run $R | jq -r .state)\" = done ]" \
  || fail "the scheduled run: $(ctl reaction run "$R")"
ctl --json reaction run "$R" | jq -e --argjson due "$DUE" --argjson i "$I1" '.started_ms >= $due and .incident_id == $i' >/dev/null \
  || fail "run $R started before $DUE or not for incident $I1: $(ctl --json reaction run "$R")"
ctl --json reaction incidents | jq -e --argjson a "$I1" --argjson r "$R" '.[] | select(.id == $a) | .state == "started" and .run_id == $r' >/dev/null \
  || fail "incident $I1 after its start: $(ctl reaction incidents)"
[ "$(runs_of later | jq length)" = 1 ] && [ "$(cat "$W/later.out")" = ran ] || fail "the scheduled flow ran $(runs_of later | jq length) times"
pass "engine kill -9ed while the start waited: the flow started once, at its time ($DUE), for its incident"

# The cancelled one had the same time: it passed.
starts | jq -e --argjson s "$S2" '.[] | select(.id == $s) | .state == "cancelled" and .run_id == null' >/dev/null || fail "the cancelled start: $(starts)"
ctl --json reaction incidents | jq -e --argjson b "$I2" '.[] | select(.id == $b) | .state == "cancelled"' >/dev/null || fail "the cancelled incident: $(ctl reaction incidents)"
[ "$(runs_of dropped | jq length)" = 0 ] && [ ! -e "$W/dropped.out" ] || fail "a cancelled start ran"
if ctl reaction cancel "$S2" >"$W/cancel2.out" 2>&1; then fail "a cancelled start was cancelled again"; fi
has -i "only a waiting start" "$W/cancel2.out" || fail "cancel again: $(cat "$W/cancel2.out")"
pass "ctl reaction cancel: the start and its incident are cancelled, its time passed and it never ran; cancelling again is refused"

# --- the daily `at` rule, cancelled through the API by an operator
echo "$(date) NIGHTLY three" >>"$LOG"
I3=$(incident_of nightly); S3=$(start_of "$I3")
WANT=$(( $(date -u -d "tomorrow $AT" +%s) * 1000 ))
TODAY=$(( $(date -u -d "today $AT" +%s) * 1000 ))
GOT=$(starts | jq -r --argjson s "$S3" '.[] | select(.id == $s) | .at_ms')
# Near midnight "an hour ago" may still be today's time ahead of now.
[ "$GOT" = "$WANT" ] || { [ "$TODAY" -gt "$(date +%s%3N)" ] && [ "$GOT" = "$TODAY" ]; } \
  || fail "at = $AT planned $GOT, not $WANT (the next $AT UTC)"
printf 'operator pass 1\n' | ctl user add op --role operator >/dev/null || fail "add an operator"
printf 'viewer pass 1\n' | ctl user add watcher --role viewer >/dev/null || fail "add a viewer"
login() { # USER PASSWORD JAR: a session; CSRF its token
  curl -skf -c "$3" -H 'content-type: application/json' --data "{\"username\":\"$1\",\"password\":\"$2\"}" "$BASE/api/v1/session" >/dev/null || fail "$1 login"
  CSRF=$(awk '$6 == "alpharen_csrf" {print $7}' "$3")
}
as() { # JAR METHOD PATH: HTTP code, body in $STATE/as.out
  curl -sk -o "$STATE/as.out" -w '%{http_code}' -b "$1" -H "x-csrf-token: $CSRF" -X "$2" "$BASE$3"
}
login watcher "viewer pass 1" "$STATE/v.jar"
[ "$(as "$STATE/v.jar" DELETE "/api/v1/reaction/starts/$S3")" = 403 ] || fail "a viewer's cancel: $(cat "$STATE/as.out")"
login op "operator pass 1" "$STATE/op.jar"
[ "$(as "$STATE/op.jar" DELETE "/api/v1/reaction/starts/$S3")" = 200 ] || fail "operator cancel: $(cat "$STATE/as.out")"
jq -e --argjson s "$S3" --argjson i "$I3" '.id == $s and .state == "cancelled" and .incident_id == $i' "$STATE/as.out" >/dev/null || fail "cancel answer: $(cat "$STATE/as.out")"
[ "$(as "$STATE/op.jar" DELETE "/api/v1/reaction/starts/$S3")" = 409 ] || fail "cancel again: $(cat "$STATE/as.out")"
[ "$(as "$STATE/op.jar" DELETE "/api/v1/reaction/starts/999999")" = 404 ] || fail "cancel unknown: $(cat "$STATE/as.out")"
[ "$(as "$STATE/op.jar" DELETE "/api/v1/reaction/starts/abc")" = 400 ] || fail "cancel abc: $(cat "$STATE/as.out")"
ctl --json reaction incidents | jq -e --argjson i "$I3" '.[] | select(.id == $i) | .state == "cancelled"' >/dev/null || fail "incident $I3: $(ctl reaction incidents)"
pass "at = \"$AT\": planned for the next $AT UTC; an operator cancelled it (200), again 409, unknown 404, a viewer 403"

# --- statistics match what ran
ctl --json reaction stats >"$W/stats.json"
jq -e '(.rules[] | select(.rule == "later") | .incidents == 1 and .resolved == 1 and (.mean_resolve_ms | type == "number"))
  and (.rules[] | select(.rule == "dropped") | .incidents == 1 and .resolved == 0)
  and (.rules[] | select(.rule == "nightly") | .incidents == 1 and .resolved == 0)
  and ([.flows[].flow] - ["ticker"] == ["later"]) and (.flows[] | select(.flow == "later") | .runs == 1 and .done == 1 and .failed == 0 and .success_rate == 1)' "$W/stats.json" >/dev/null \
  || fail "stats: $(cat "$W/stats.json")"
# Mean time to resolve: from the incident to the end of its run.
END=$(ctl --json reaction run "$R" | jq -r .ended_ms)
jq -e --argjson m $((END - SEEN)) '.rules[] | select(.rule == "later") | .mean_resolve_ms == $m' "$W/stats.json" >/dev/null \
  || fail "mean time to resolve is not $((END - SEEN)) ms: $(cat "$W/stats.json")"
[ "$(as "$STATE/op.jar" GET /api/v1/reaction/stats)" = 200 ] && jq -e --slurpfile c "$W/stats.json" '. == $c[0]' "$STATE/as.out" >/dev/null \
  || fail "API stats differ from ctl's: $(cat "$STATE/as.out")"
pass "stats: incidents per rule, resolved and mean time to resolve (incident → run end), flow success rate 100% over 1 run"

# --- a flow on a cron schedule
wait_for 30 bash -c "[ \"\$($(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json reaction runs --limit 1000 | jq '[.[] | select(.flow == \"ticker\" and .state == \"done\")] | length')\" -ge 2 ]" \
  || fail "the cron flow did not run twice: $(ctl reaction runs; ctl reaction schedules)"
runs_of ticker | jq -e 'length == ([.[].started_ms / 5000 | floor] | unique | length)' >/dev/null \
  || fail "two runs of the cron flow in one 5 s period: $(runs_of ticker | jq -c '[.[].started_ms]')"
ctl --json reaction schedules | jq -e '.flows[] | select(.flow == "ticker") | .schedule == "cron */5 * * * * *" and .next_ms % 5000 == 0' >/dev/null \
  || fail "schedules: $(ctl --json reaction schedules)"
pass "a flow with schedule = \"cron */5 * * * * *\" ran on its own, once per 5 s time; schedules shows its next time"

# --- a bad [reaction] names the path and line of each problem
REV=$(ctl --json config history -n 1 | jq -r '.revisions[0].id')
cat >"$W/bad.toml" <<'EOT'
[reaction]
[[reaction.agents]]
name = "host2"
[[reaction.rules]]
name = "r"
pattern = "p"
flow = "nosuchflow"
[[reaction.patterns]]
name = "p"
regex = "x"
[[reaction.flows]]
name = "f"
[[reaction.flows.tasks]]
name = "run"
kind = "command"
host = "nosuchhost"
command = "true"
[[reaction.flows.tasks]]
name = "check"
kind = "if"
op = "equals"
value = "ok"
EOT
if ctl config apply -f "$W/bad.toml" >"$W/bad.out" 2>&1; then fail "a bad [reaction] was applied"; fi
for want in 'reaction.rules\[0\].flow: no \[\[reaction.flows\]\] is named "nosuchflow" (line 7)' \
  'reaction.flows\[0\].tasks\[0\].host: no \[\[reaction.agents\]\] is named "nosuchhost" (line 16)' \
  'reaction.flows\[0\].tasks\[1\].then: an if task needs then or else.* (line 18)'; do
  has -e "$want" "$W/bad.out" || fail "not refused with its line: $want in $(cat "$W/bad.out")"
done
[ "$(ctl --json config history -n 1 | jq -r '.revisions[0].id')" = "$REV" ] || fail "a refused [reaction] made a revision"
pass "a bad flow is refused: unknown flow, unknown executor host, an if without branches, each with its path and line; nothing stored"
