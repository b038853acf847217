#!/usr/bin/env bash
# Benchmark of pub/sub across a cluster (issue 17): three members (`alpharen
# run` in network namespaces on one bridge, like tests/e2e/cluster-pubsub.sh,
# each with its own nats-server, queues at three replicas) vs raw NATS
# JetStream: three plain nats-servers in the same namespaces (routes over
# TLS like ours, same JetStream limits), a nats-py publisher and one pull
# consumer on A on a stream set like AR_QUEUES (work queue, R3, file
# storage, 120 s duplicate window, a message id per publish, explicit
# acks; tests/bench/nats_jetstream.py RUN).
# Ours: a service on A publishes N messages to a topic (one after another,
# each answered once JetStream stored it, the topic's default max_depth
# checked); the subscriber runs on every member (2 workers each) and
# records each delivery's publish → handler latency: RECORD=log (the
# default) in its member's log, so like the reference's consumer it stores
# nothing; RECORD=kv in the cluster's KV, a replicated write per delivery
# on top (about half the publish rate on 2 cores: the nats-servers' CPU).
# Publish rate (timed inside the publisher), end to end (first publish →
# last handler start), latency p50/p99; RUNS runs of each side,
# interleaved; medians, spread, ratios. Not pass/fail; errors are fatal.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../cluster-lib.sh"
HERE=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || fail "run as root: the members run in network namespaces"
command -v openssl >/dev/null || fail "openssl missing"
trap "exit 1" TERM INT
N=${BENCH_MESSAGES:-2000}
RECORD=${RECORD:-log}
case $RECORD in log) SUB=cb.note ;; kv) SUB=cb.record ;; *) fail "RECORD is log or kv, not '$RECORD'" ;; esac
load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "load average at start: $(load)"
venv=$OUT/nats-venv
py_venv "$venv" nats nats-py

cluster_net A B C
start_members A B C <<TOML
[integrator]
tls = "off"
workers = 2
timeout = 300
[[integrator.topics]]
name = "orders"
subscribers = ["$SUB"]
TOML
cluster_form A B C
wait_for 45 all_r3 A AR_QUEUES KV_ar_kv || fail "the queue stream and the KV did not go to three replicas"
# The integrator reaches the cluster's KV a little after the streams
# are up (until then a deploy is refused as unavailable).
wait_for 60 c A integrator deploy "$HERE/bench/cluster/pubsub_bench.py" || { c A integrator deploy "$HERE/bench/cluster/pubsub_bench.py"; fail "deploy the bench services on A"; }
live() { c "$1" --json integrator list | jq -e --arg s "$SUB" 'any(.[]; .name == $s)' >/dev/null; }
for n in B C; do wait_for 20 live $n || fail "the services deployed on A are not live on $n"; done

nats_reference A B C
echo "cluster of 3 formed, queues at R3; reference: 3 nats-servers ($(nats-server --version), sync_interval: always like the members'); load average $(load)"

# records RUN: one RUN.ID.LATENCY_MS.AT_MS.TAIL line per delivery so far.
records() {
  if [ "$RECORD" = kv ]; then
    c A --json integrator kv list "$1." --ns cb | jq -r '.keys[]'
  else
    cat "$W"/{a,b,c}/log/integrator.log* | { grep -o "cbrec $1[.][^ ]*" || true; } | cut -d' ' -f2
  fi
}
# ours RUN: sets o_pub o_e2e o_p50 o_p99.
ours() {
  local run=$1 out keys got
  out=$(c A --json integrator invoke cb.publish "{\"topic\": \"orders\", \"n\": $N, \"run\": \"$run\"}") || fail "publish on A: $out"
  out=$(jq -ce '.. | objects | select(.published == '"$N"')' <<<"$out") || fail "publish on A: $out"
  for ((i = 0; i < 600; i++)); do
    keys=$(records "$run") || fail "$run: cannot read the deliveries' records"
    got=$(cut -d. -f2 <<<"$keys" | sort -u | sed '/^$/d' | wc -l)
    [ "$got" = "$N" ] && break
    sleep 0.5
  done
  [ "$got" = "$N" ] || { c A integrator topics; fail "$run: $got of $N delivered within 300 s"; }
  printf '%s\n' "$keys" >"$W/$run.keys"
  read -r o_pub o_e2e o_p50 o_p99 < <(python3 - "$N" "$out" "$W/$run.keys" <<'PY'
import json, sys
n, out = int(sys.argv[1]), json.loads(sys.argv[2])
first = {}
for line in open(sys.argv[3]).read().split():
    parts = line.split('.')  # RUN.ID.LAT.LATFRAC.AT_MS.TAIL (the latency has a dot)
    i, lat, at = int(parts[1]), float(parts[2] + '.' + parts[3]), int(parts[4]) / 1000
    if i not in first or at < first[i][1]:
        first[i] = (lat, at)
lats = sorted(v[0] for v in first.values())
last = max(v[1] for v in first.values())
print(n / out['seconds'], n / (last - out['started']), lats[len(lats) // 2], lats[min(len(lats) - 1, int(len(lats) * 0.99))])
PY
  ) || fail "$run: could not read the deliveries back"
}
# theirs RUN: sets t_pub t_e2e t_p50 t_p99.
theirs() {
  local res
  res=$(ip netns exec "${NS[A]}" "$venv/bin/python" "$HERE/bench/nats_jetstream.py" $CP "$N" "$1") || fail "nats_jetstream.py: $res"
  read -r t_pub t_e2e t_p50 t_p99 < <(jq -r '"\(.publish_per_s) \(.end_to_end_per_s) \(.p50_ms) \(.p99_ms)"' <<<"$res") || fail "nats_jetstream.py: $res"
}
declare -A v
for r in $(seq 1 "$RUNS"); do
  ours "r$r-$SFX"; theirs "r$r-$SFX"
  for k in pub e2e p50 p99; do o=o_$k t=t_$k; v[o_$k]+=" ${!o}"; v[t_$k]+=" ${!t}"; done
  printf "run %s: ours publish %.0f/s, end to end %.0f/s, p50 %.1f ms; jetstream %.0f/s, %.0f/s, p50 %.1f ms; load %s\n" "$r" "$o_pub" "$o_e2e" "$o_p50" "$t_pub" "$t_e2e" "$t_p50" "$(load)"
done
echo "== $N messages, 3 members, $RUNS runs each, interleaved; load average at the end: $(load)"
# shellcheck disable=SC2086 # the lists split into values on purpose
{
  echo "alpharen  published msg/s $(stats ${v[o_pub]}); end to end msg/s $(stats ${v[o_e2e]})"
  echo "alpharen  publish->handler ms p50 $(stats ${v[o_p50]}); p99 $(stats ${v[o_p99]})"
  echo "jetstream published msg/s $(stats ${v[t_pub]}); end to end msg/s $(stats ${v[t_e2e]})"
  echo "jetstream publish->consumer ms p50 $(stats ${v[t_p50]}); p99 $(stats ${v[t_p99]})"
  echo "ratio alpharen/jetstream (medians): publish $(ratio "$(median ${v[o_pub]})" "$(median ${v[t_pub]})"), end to end $(ratio "$(median ${v[o_e2e]})" "$(median ${v[t_e2e]})"), p50 latency $(ratio "$(median ${v[o_p50]})" "$(median ${v[t_p50]})")"
}
echo "(ours: publisher and subscriber are Python workers, the subscriber records each message $([ "$RECORD" = kv ] && echo "in the cluster's KV (R3)" || echo "in its member's log"); theirs: one asyncio process on A)"
