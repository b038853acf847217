#!/usr/bin/env bash
# Benchmark of the integrator's async features, same run, loopback only:
#  - KV set/get ops/s from a service (self.kv: worker → integrator → SQLite)
#    vs Redis through redis-py from the same worker process (Debian
#    redis-server + python3-redis);
#  - pub/sub publish → deliver: publish rate, end-to-end throughput and
#    latency (publish → handler) for N messages through 2 workers.
# NATS JetStream / Node-RED comparisons are skipped (not installed here).
# Not pass/fail.
. "$(dirname "$0")/../lib.sh"
HERE=$(cd "$(dirname "$0")/.." && pwd)
STATE=$OUT/bench-async
N_KV=${BENCH_KV_OPS:-5000}
N_MSG=${BENCH_MESSAGES:-2000}
REDIS_PORT=18637
rm -rf "$STATE"; mkdir -p "$STATE"
LB=http://127.0.0.1:11223
export ALPHAREN STATE; export -f ctl
command -v jq >/dev/null || fail "jq missing (scripts/deps.sh)"
post() { curl -sS -m 300 -H 'content-type: application/json' -d "$2" "$LB$1"; }

REDIS=""
if command -v redis-server >/dev/null && /usr/bin/python3 -c 'import redis' 2>/dev/null; then
  redis-server --port $REDIS_PORT --bind 127.0.0.1 --save '' --appendonly no --daemonize no >"$OUT/redis.log" 2>&1 &
  RPID=$!
  on_exit "kill $RPID 2>/dev/null"
  wait_for 10 bash -c "echo PING | timeout 1 bash -c 'cat >/dev/tcp/127.0.0.1/$REDIS_PORT'" || fail "redis-server did not start"
  REDIS=$REDIS_PORT
else
  echo "redis-server / python3-redis missing: Redis comparison skipped"
fi

cat >"$OUT/bench-async.toml" <<'TOML'
[node]
hostname = "bench"
[integrator]
# Plain HTTP on purpose: these tests exercise the channels, not TLS.
tls = "off"
workers = 2
timeout = 300
[[integrator.topics]]
name = "orders"
subscribers = ["sub.record"]
max_depth = 100000
[[integrator.channels]]
name = "bench.kv"
url_path = "/bench.kv"
service = "bench.kv"
[[integrator.channels]]
name = "t.publish"
url_path = "/t.publish"
service = "t.publish"
TOML
start_node "$STATE" --config "$OUT/bench-async.toml"
wait_for 30 bash -c "ctl --json integrator status | grep -q '\"idle_workers\": 2'" || fail "workers did not start"
ctl integrator deploy "$HERE/e2e/integrator/async_services.py" >/dev/null

echo "== KV from a service, $N_KV ops each (same worker process) =="
out=$(post /bench.kv "{\"n\": $N_KV, \"redis_port\": ${REDIS:-null}}")
echo "$out" | jq -r 'to_entries[] | "\(.key): set \(.value.set_ops|floor) ops/s, get \(.value.get_ops|floor) ops/s"'
if [ -n "$REDIS" ]; then
  echo "$out" | jq -r '"ratio alpharen/redis: set \((.alpharen.set_ops/.redis.set_ops*100)|floor)%, get \((.alpharen.get_ops/.redis.get_ops*100)|floor)%"'
fi

echo "== pub/sub: $N_MSG messages to 1 subscriber, 2 workers =="
t0=$(date +%s.%N)
pub=$(post /t.publish "{\"topic\": \"orders\", \"n\": $N_MSG}")
t1=$(date +%s.%N)
for ((i = 0; i < 3000; i++)); do
  [ "$(ctl --json integrator kv list --ns seen | jq '.keys | length')" = "$N_MSG" ] && break
  sleep 0.1
done
t2=$(date +%s.%N)
seen=$(ctl --json integrator kv list --ns seen | jq '.keys | length')
echo "published $(echo "$pub" | jq .published) in $(echo "$t1 - $t0" | bc -l | cut -c1-6) s: $(echo "$N_MSG / ($t1 - $t0)" | bc -l | cut -d. -f1) msg/s"
echo "delivered $seen in $(echo "$t2 - $t0" | bc -l | cut -c1-6) s from first publish: $(echo "$seen / ($t2 - $t0)" | bc -l | cut -d. -f1) msg/s end to end"
# Latencies the handler recorded (publish → handler start, ms).
/usr/bin/python3 - "$STATE" <<'PY'
import sqlite3, sys, json
db = sqlite3.connect(sys.argv[1] + '/alpharen.db')
v = sorted(json.loads(r[0]) for r in db.execute("SELECT value FROM integrator_kv WHERE ns = 'seen'"))
if v:
    pick = lambda q: v[min(len(v) - 1, int(q * len(v)))]
    print('latency publish->handler (ms, includes queueing behind the burst): p50 %.1f p99 %.1f max %.1f' % (pick(0.5), pick(0.99), v[-1]))
PY
# Single-message latency with an idle queue.
ctl integrator purge orders >/dev/null
lat=()
for i in $(seq 1 20); do
  post /t.publish "{\"topic\": \"orders\", \"n\": 1, \"start\": $((100000 + i))}" >/dev/null
  sleep 0.05
done
sleep 0.5
/usr/bin/python3 - "$STATE" <<'PY'
import sqlite3, sys, json
db = sqlite3.connect(sys.argv[1] + '/alpharen.db')
v = sorted(json.loads(r[0]) for r in db.execute("SELECT value FROM integrator_kv WHERE ns = 'seen' AND CAST(key AS INTEGER) > 100000"))
if v:
    print('latency publish->handler, one message at a time (ms): p50 %.2f max %.2f (n=%d)' % (v[len(v) // 2], v[-1], len(v)))
PY
echo "== NATS JetStream, same $N_MSG messages, file storage, one pull consumer acking each =="
if command -v nats-server >/dev/null; then
  venv=$OUT/nats-venv
  [ -x "$venv/bin/python" ] || { /usr/bin/python3 -m venv "$venv" && "$venv/bin/pip" install -q nats-py; } >/dev/null 2>&1 || true
  if "$venv/bin/python" -c 'import nats' 2>/dev/null; then
    NATS_PORT=14222; rm -rf "$OUT/nats"
    nats-server -js -a 127.0.0.1 -p $NATS_PORT -sd "$OUT/nats" >"$OUT/nats.log" 2>&1 &
    NPID=$!; on_exit "kill $NPID 2>/dev/null"
    wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$NATS_PORT" || fail "nats-server did not start"
    "$venv/bin/python" "$HERE/bench/nats_jetstream.py" $NATS_PORT "$N_MSG" \
      | jq -r '"jetstream: published \(.publish_per_s|floor) msg/s, \(.end_to_end_per_s|floor) msg/s end to end, latency p50 \(.p50_ms*10|floor/10) ms p99 \(.p99_ms*10|floor/10) ms"'
    echo "(JetStream acks a publish once the message is in its file store, fsync every 2 min by default; ours fsyncs every publish, and our subscriber is a Python worker that also writes a KV entry per message)"
  else
    echo "nats-py could not be installed: NATS comparison skipped"
  fi
else
  echo "nats-server missing (scripts/deps.sh): NATS comparison skipped"
fi
