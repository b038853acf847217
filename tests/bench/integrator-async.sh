#!/usr/bin/env bash
# Benchmark of the integrator's async features, same run, loopback only:
#  - KV set/get ops/s from a service (self.kv: worker → integrator → SQLite,
#    every write fsynced before it is acknowledged) vs Redis through
#    redis-py from the same worker process (Debian redis-server +
#    python3-redis) with `appendonly yes` and `appendfsync always`, the
#    same promise;
#  - pub/sub publish → deliver: publish rate, end-to-end throughput and
#    latency (publish → handler) for N messages through 2 workers, vs NATS
#    JetStream (Debian nats-server, file storage, nats-py from PyPI) with
#    the strongest sync it offers: `sync_interval: always` from 2.10; 2.9
#    (Debian 12) has no such setting and fsyncs its file store every 2 min.
# RUNS runs of each side, median and spread. Not pass/fail.
. "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")/.." && pwd)
STATE=$OUT/bench-async
N_KV=${BENCH_KV_OPS:-5000}
N_MSG=${BENCH_MESSAGES:-2000}
read -r REDIS_PORT < <(free_ports 1)
rm -rf "$STATE"; mkdir -p "$STATE"
export ALPHAREN STATE; export -f ctl
command -v jq >/dev/null || fail "jq missing (scripts/deps.sh)"
post() { curl -sS -m 300 -H 'content-type: application/json' -d "$2" "$LB$1"; }

command -v redis-server >/dev/null && /usr/bin/python3 -c 'import redis' 2>/dev/null \
  || fail "redis-server / python3-redis missing (scripts/deps.sh)"
mkdir -p "$OUT/redis"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly yes --appendfsync always \
  --dir "$OUT/redis" --daemonize no >"$OUT/redis.log" 2>&1 &
RPID=$!
on_exit "kill $RPID 2>/dev/null"
wait_for 10 bash -c "echo PING | timeout 1 bash -c 'cat >/dev/tcp/127.0.0.1/$REDIS_PORT'" || fail "redis-server did not start"

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
start_integrator "$OUT/bench-async.toml"
ctl integrator deploy "$HERE/e2e/integrator/async_services.py" >/dev/null || fail "deploy"
wait_for 30 bash -c "ctl --json integrator status | grep -q '\"idle_workers\": 2'" || fail "workers did not start"

echo "== KV from a service, $N_KV ops each (same worker process), $RUNS runs =="
declare -A kv
for i in $(seq 1 "$RUNS"); do
  out=$(post /bench.kv "{\"n\": $N_KV, \"redis_port\": $REDIS_PORT}") || fail "bench.kv: $out"
  for k in alpharen.set_ops alpharen.get_ops redis.set_ops redis.get_ops; do
    v=$(jq -er ".$k" <<<"$out") || fail "bench.kv answer without $k: $out"
    kv[$k]+=" $v"
  done
done
for side in alpharen redis; do
  # shellcheck disable=SC2086 # the lists split into values on purpose
  a=$(stats ${kv[$side.set_ops]}); b=$(stats ${kv[$side.get_ops]})
  printf '%-8s set ops/s %s\n%-8s get ops/s %s\n' "$side" "$a" "$side" "$b"
done
# shellcheck disable=SC2086
a=$(ratio "$(median ${kv[alpharen.set_ops]})" "$(median ${kv[redis.set_ops]})"); b=$(ratio "$(median ${kv[alpharen.get_ops]})" "$(median ${kv[redis.get_ops]})")
echo "ratio alpharen/redis (medians): set $a, get $b"

seen_count() { # FROM N: messages FROM..FROM+N-1 the subscriber recorded
  /usr/bin/python3 - "$STATE/integrator.db" "$1" "$2" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1]); a, n = int(sys.argv[2]), int(sys.argv[3])
print(db.execute("SELECT count(*) FROM integrator_kv WHERE ns = 'seen' AND CAST(key AS INTEGER) BETWEEN ? AND ?", (a, a + n - 1)).fetchone()[0])
PY
}
echo "== pub/sub: $N_MSG messages to 1 subscriber, 2 workers, $RUNS runs =="
pubs=() e2es=()
for r in $(seq 1 "$RUNS"); do
  start=$((r * 1000000))
  t0=$(date +%s.%N)
  pub=$(post /t.publish "{\"topic\": \"orders\", \"n\": $N_MSG, \"start\": $start}") || fail "publish: $pub"
  t1=$(date +%s.%N)
  [ "$(jq -r .published <<<"$pub")" = "$N_MSG" ] || fail "published only: $pub"
  for ((i = 0; i < 3000; i++)); do
    [ "$(seen_count "$start" "$N_MSG")" = "$N_MSG" ] && break
    sleep 0.1
  done
  t2=$(date +%s.%N)
  [ "$(seen_count "$start" "$N_MSG")" = "$N_MSG" ] || fail "run $r: not every message was delivered within 300 s"
  pubs+=("$(echo "$N_MSG / ($t1 - $t0)" | bc -l)") e2es+=("$(echo "$N_MSG / ($t2 - $t0)" | bc -l)")
done
echo "alpharen published msg/s $(stats "${pubs[@]}"); end to end msg/s $(stats "${e2es[@]}")"
# Latencies the handler recorded (publish → handler start, ms).
/usr/bin/python3 - "$STATE" <<'PY'
import sqlite3, sys, json
db = sqlite3.connect(sys.argv[1] + '/integrator.db')
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
db = sqlite3.connect(sys.argv[1] + '/integrator.db')
v = sorted(json.loads(r[0]) for r in db.execute("SELECT value FROM integrator_kv WHERE ns = 'seen' AND CAST(key AS INTEGER) BETWEEN 100001 AND 100020"))
if v:
    print('latency publish->handler, one message at a time (ms): p50 %.2f max %.2f (n=%d)' % (v[len(v) // 2], v[-1], len(v)))
PY
echo "== NATS JetStream, same $N_MSG messages, file storage, one pull consumer acking each, $RUNS runs =="
command -v nats-server >/dev/null || fail "nats-server missing (scripts/deps.sh)"
venv=$OUT/nats-venv
if [ ! -x "$venv/bin/python" ]; then
  /usr/bin/python3 -m venv "$venv" >/dev/null && "$venv/bin/pip" install -q nats-py >"$OUT/nats-pip.log" 2>&1 \
    || { cat "$OUT/nats-pip.log"; fail "nats-py could not be installed from PyPI"; }
fi
read -r NATS_PORT < <(free_ports 1)
# The strongest sync the installed server offers.
SYNC=""
case "$(nats-server --version)" in
  *v2.[0-9].*) note="nats-server $(nats-server --version | grep -o 'v[0-9][0-9.]*') has no sync_interval: its file store fsyncs every 2 min" ;;
  *) SYNC="sync_interval: always"; note="sync_interval: always (fsync before each ack)" ;;
esac
npubs=() ne2es=()
for r in $(seq 1 "$RUNS"); do
  rm -rf "$OUT/nats"; mkdir -p "$OUT/nats"
  printf 'listen: 127.0.0.1:%s\njetstream { store_dir: "%s"\n%s }\n' "$NATS_PORT" "$OUT/nats" "$SYNC" >"$OUT/nats.conf"
  nats-server -c "$OUT/nats.conf" >"$OUT/nats.log" 2>&1 &
  NPID=$!
  wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$NATS_PORT" || { cat "$OUT/nats.log"; fail "nats-server did not start"; }
  res=$("$venv/bin/python" "$HERE/bench/nats_jetstream.py" "$NATS_PORT" "$N_MSG") || fail "nats_jetstream.py: $res"
  kill "$NPID"; wait "$NPID" 2>/dev/null || true
  npubs+=("$(jq -r .publish_per_s <<<"$res")") ne2es+=("$(jq -r .end_to_end_per_s <<<"$res")")
done
echo "jetstream published msg/s $(stats "${npubs[@]}"); end to end msg/s $(stats "${ne2es[@]}") ($note)"
echo "ratio alpharen/jetstream (medians): publish $(ratio "$(median "${pubs[@]}")" "$(median "${npubs[@]}")"), end to end $(ratio "$(median "${e2es[@]}")" "$(median "${ne2es[@]}")")"
echo "(ours: every publish fsynced before it is acknowledged; our subscriber is a Python worker that also writes a fsynced KV entry per message)"
