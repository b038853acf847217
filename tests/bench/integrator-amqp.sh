#!/usr/bin/env bash
# Benchmark: AMQP consume throughput. Ours: a [[integrator.channel_amqp]]
# whose service parses the JSON body and sums its numbers (the channel
# acknowledges each message after the service returned). Reference: a
# plain pika consumer (Debian's /usr/bin/python3) doing the same work and
# acknowledging each message. Same RabbitMQ node (its own, on loopback),
# same queue contents (MESSAGES persistent JSON messages, published and
# confirmed before the consumer starts), same prefetch (20), RUNS runs
# each. A run's time is from starting the consumer (ours: the config
# change that adds the channel; the reference: starting its process)
# until the queue holds no ready message, so both include their start-up;
# the at most 20 still unacknowledged at that moment are left out for
# both. Prints medians, spread and the ratio of the medians.
. "$(dirname "$0")/lib.sh"
SYSPY=/usr/bin/python3
MESSAGES=${BENCH_MESSAGES:-5000}
$SYSPY -c 'import pika' 2>/dev/null || fail "python3-pika missing (scripts/deps.sh)"
STATE=$OUT/bench-integrator-amqp
rm -rf "$STATE"; mkdir -p "$STATE"
export ALPHAREN STATE; export -f ctl
read -r MQPORT DISTPORT EPMDPORT < <(free_ports 3)
rmq_node "$STATE/rabbitmq" "$MQPORT" "$DISTPORT" "$EPMDPORT"

cat >"$STATE/tool.py" <<'PY'
"""fill QUEUE N | drain-time QUEUE T0 | consume QUEUE N (the reference)."""
import json, sys, time

import pika

port, cmd, queue = int(sys.argv[1]), sys.argv[2], sys.argv[3]
conn = pika.BlockingConnection(pika.ConnectionParameters('127.0.0.1', port))
ch = conn.channel()


def work(body):
    msg = json.loads(body)
    return sum(msg['values']) + msg['id']


if cmd == 'fill':
    ch.queue_declare(queue, durable=True)
    ch.queue_purge(queue)
    ch.confirm_delivery()
    props = pika.BasicProperties(delivery_mode=2, content_type='application/json')
    for i in range(int(sys.argv[4])):
        ch.basic_publish('', queue, json.dumps({'id': i, 'values': list(range(20)), 'text': 'x' * 200}), props)
elif cmd == 'drain-time':
    # Seconds from T0 (time.time()) until QUEUE has no ready message.
    t0 = float(sys.argv[4])
    while ch.queue_declare(queue, passive=True).method.message_count:
        time.sleep(0.005)
    print('%.3f' % (time.time() - t0))
elif cmd == 'consume':
    left = [int(sys.argv[4])]
    ch.basic_qos(prefetch_count=20)

    def on(chan, method, props, body):
        work(body)
        chan.basic_ack(method.delivery_tag)
        left[0] -= 1
        if not left[0]:
            chan.stop_consuming()
    ch.basic_consume(queue, on)
    ch.start_consuming()
conn.close()
PY
tool() { $SYSPY "$STATE/tool.py" "$MQPORT" "$@"; }

cat >"$STATE/seed.toml" <<TOML
[node]
hostname = "bench"
[integrator]
tls = "off"
workers = 2
[[integrator.outgoing_amqp]]
name = "mq"
host = "127.0.0.1"
port = $MQPORT
password = "guest"
TOML
cat >"$STATE/bench.py" <<'PY'
from zato.server.service import Service


class Work(Service):
    name = 'bench.work'

    def handle(self):
        msg = self.request.payload
        self.response.payload = {'sum': sum(msg['values']) + msg['id']}
PY
start_integrator "$STATE/seed.toml"
ctl integrator deploy "$STATE/bench.py" >/dev/null || fail "deploy"
# A TOML value, as `config set` takes it.
CHANNEL='[{name = "bench-in", connection = "mq", queue = "bench", service = "bench.work", prefetch = 20}]'

ours=() ref=()
for run in $(seq 1 "$RUNS"); do
  tool fill bench "$MESSAGES" || fail "fill"
  t0=$($SYSPY -c 'import time; print(time.time())')
  ctl config set integrator.channel_amqp "$CHANNEL" >/dev/null || fail "config set channel_amqp"
  s=$(tool drain-time bench "$t0") || fail "drain-time"
  ours+=("$(python3 -c "print($MESSAGES / $s)")")
  ctl config set integrator.channel_amqp '[]' >/dev/null || fail "config set channel_amqp []"
  wait_for 20 bash -c "counts bench | has -x '0 0'" || fail "queue bench not settled: $(counts bench)"
  wait_for 20 bash -c "! rmqctl list_consumers | has alpharen-bench-in" || fail "the channel did not stop"

  tool fill bench "$MESSAGES" || fail "fill"
  t0=$($SYSPY -c 'import time; print(time.time())')
  tool consume bench "$MESSAGES" &
  REF=$!
  s=$(tool drain-time bench "$t0") || fail "drain-time"
  wait "$REF" || fail "the pika consumer failed"
  ref+=("$(python3 -c "print($MESSAGES / $s)")")
  echo "run $run: integrator ${ours[-1]} msg/s, pika ${ref[-1]} msg/s"
done
echo "integrator channel (service per message, ack after it): msg/s $(stats "${ours[@]}")"
echo "pika consumer (same work, ack per message):            msg/s $(stats "${ref[@]}")"
echo "ratio msg/s integrator/pika: $(ratio "$(median "${ours[@]}")" "$(median "${ref[@]}")")x"
