#!/usr/bin/env bash
# The reaction engine: how soon a log line starts a command, and how many
# incidents one engine takes per second. The node (release build) runs
# the engine; two agents on loopback, a reader (host1, --poll-ms POLL_MS)
# and an executor (host2), as separate processes.
# Latency: LINES lines written one at a time (a random pause of 0 to
# POLL_MS ms between them, so a write falls anywhere in the reader's poll
# cycle); each makes an incident whose flow's first command writes the
# time it started (`date +%s%N`). Reported: line written → command
# started, p50/p99, and the engine's part of it (the incident made on the
# event's arrival → command started), next to the reader's poll interval
# and the executor's long-poll window (30 s): the executor is not polled,
# it is answered the moment the command is ready.
# Throughput: BURST lines appended at once, RUNS times: incidents/s (the
# line appended → every incident stored) and runs/s (→ every one-command
# run done). Every count is checked: a line without its one incident, or
# a run not done, stops the bench. No peer: absolute figures.
#   RUNS=3 LINES=200 BURST=2000 POLL_MS=200 tests/bench/reaction.sh
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/reaction-lib.sh"
LINES=${LINES:-200}
BURST=${BURST:-2000}
POLL_MS=${POLL_MS:-200}
needs jq python3
W=$(mktemp -d /tmp/reaction-bench.XXXXXX)
on_exit "rm -rf $W"
chmod 755 "$W"
RPORT=$(free_ports 1)
LOG=$W/app.log; : >"$LOG"
STATE=$W/node
mkdir -p "$STATE"
seed_ports "$STATE/seed.toml"
cat >>"$STATE/seed.toml" <<TOML
$(reaction_agents_toml "$RPORT" "$LOG" lat burst)
[[reaction.patterns]]
name = "lat"
regex = "BENCH-LAT"
[[reaction.patterns]]
name = "burst"
regex = "BENCH-BURST"
[[reaction.rules]]
name = "lat"
pattern = "lat"
flow = "stamp"
[[reaction.rules]]
name = "burst"
pattern = "burst"
flow = "noop"
[[reaction.flows]]
name = "stamp"
[[reaction.flows.tasks]]
name = "stamp"
kind = "command"
host = "host2"
command = "date +%s%N >>$W/started"
[[reaction.flows]]
name = "noop"
[[reaction.flows.tasks]]
name = "noop"
kind = "command"
host = "host2"
command = "true"
TOML
start_node "$STATE" --config "$STATE/seed.toml"
reaction_secrets
reaction_loopback_agents "$RPORT" --poll-ms "$POLL_MS"
sleep 1

# --- latency: one line at a time; the command's start stamp is the end.
python3 - "$LOG" "$W/started" "$LINES" "$POLL_MS" >"$W/written" <<'PY' || fail "latency: a line did not start its command within 30 s"
import os, random, sys, time
log, started, n, poll = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rnd = random.Random(23)
def count():
    try:
        with open(started) as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0
for i in range(n):
    time.sleep(rnd.uniform(0, poll / 1000))
    t0 = time.time_ns()
    with open(log, "a") as f:
        f.write(f"{time.strftime('%F %T')} app BENCH-LAT {i}\n")
    deadline = time.monotonic() + 30
    while count() < i + 1:
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.0005)
    print(i, t0)
PY
[ "$(wc -l <"$W/started")" = "$LINES" ] || fail "latency: $(wc -l <"$W/started") commands for $LINES lines"
ctl --json reaction incidents --limit "$LINES" | jq -r '.[] | select(.rule == "lat") | "\(.line | split(" ") | last) \(.at_ms)"' >"$W/incidents"
[ "$(wc -l <"$W/incidents")" = "$LINES" ] || fail "latency: $(wc -l <"$W/incidents") incidents for $LINES lines"
python3 - "$W/written" "$W/started" "$W/incidents" "$POLL_MS" <<'PY' || fail "latency figures"
import sys
written = dict(map(int, l.split()) for l in open(sys.argv[1]))
started = [int(l) for l in open(sys.argv[2])]
at = dict(map(int, l.split()) for l in open(sys.argv[3]))
poll = int(sys.argv[4])
assert len(started) == len(written) == len(at)
total = sorted((started[i] - written[i]) / 1e6 for i in range(len(started)))
engine = sorted(started[i] / 1e6 - at[i] for i in range(len(started)))
def pct(v, p):
    return v[min(len(v) - 1, round(p / 100 * (len(v) - 1)))]
def show(name, v):
    print(f"{name}: p50 {pct(v, 50):.1f} ms, p99 {pct(v, 99):.1f} ms, max {v[-1]:.1f} ms "
          f"(p50 = {pct(v, 50) / poll:.2f} of the reader's poll, {pct(v, 50) / 30000:.5f} of the executor's 30 s long-poll)")
print(f"lines: {len(total)}, one at a time; reader --poll-ms {poll}")
show("line written -> command started", total)
show("event at the engine -> command started", engine)
PY

# --- throughput: BURST lines at once, RUNS times.
counts() { ctl --json reaction stats | jq -r '"\([.rules[] | select(.rule == "burst") | .incidents][0] // 0) \([.flows[] | select(.flow == "noop") | .done][0] // 0) \([.flows[] | select(.flow == "noop") | .failed][0] // 0)"'; }
now() { date +%s.%N; }
inc=(); runs=()
for run in $(seq 1 "$RUNS"); do
  read -r i0 d0 f0 < <(counts)
  python3 - "$LOG" "$run" "$BURST" <<'PY'
import sys, time
stamp = time.strftime("%F %T")
with open(sys.argv[1], "a") as f:
    f.write("".join(f"{stamp} app BENCH-BURST {sys.argv[2]} {i}\n" for i in range(int(sys.argv[3]))))
PY
  start=$(now); t_inc=""
  for _ in $(seq 1 3000); do
    read -r i d f < <(counts)
    [ -z "$t_inc" ] && [ "$((i - i0))" -ge "$BURST" ] && t_inc=$(now)
    [ "$((d + f - d0 - f0))" -ge "$BURST" ] && break
    sleep 0.1
  done
  end=$(now)
  read -r i d f < <(counts)
  [ "$((i - i0))" = "$BURST" ] && [ "$((d - d0))" = "$BURST" ] && [ "$((f - f0))" = 0 ] \
    || fail "run $run: $((i - i0)) incidents, $((d - d0)) runs done, $((f - f0)) failed for $BURST lines"
  inc+=("$(python3 -c "print($BURST / ($t_inc - $start))")")
  runs+=("$(python3 -c "print($BURST / ($end - $start))")")
done
echo "burst: $BURST lines at once, RUNS=$RUNS"
echo "incidents/s (line appended -> every incident stored): $(stats "${inc[@]}")"
echo "runs/s (line appended -> every one-command run done):  $(stats "${runs[@]}")"
echo "reaction RSS after the runs: $(ps -o rss= -p "$(ctl --json services | jq -r '.[] | select(.name == "reaction") | .pid')") KiB"
