#!/usr/bin/env bash
# AMQP of the integrator against Debian's RabbitMQ (a node of its own on
# loopback ports, with its own directories, node name and epmd port):
# a channel consumes 1,000 messages while the integrator is killed with
# SIGKILL mid-way (the supervisor restarts it) and every message is
# processed at least once; a service publishes through the outgoing
# connection while RabbitMQ is stopped and started, and every send that
# answered OK is in the queue afterwards; a message whose service always
# fails ends in the dead-letter queue after max_attempts calls, both
# through dead_letter_queue and through the queue's own dead-letter
# exchange; the broker password lives in the secret store only.
# e2e-timeout: 600
. "$(dirname "$0")/../lib.sh"
HERE=$(cd "$(dirname "$0")/integrator-amqp" && pwd)
SYSPY=/usr/bin/python3
$SYSPY -c 'import pika' 2>/dev/null || fail "python3-pika missing (scripts/deps.sh)"
needs curl jq
STATE=$(mktemp -d "$OUT/integrator-amqp.XXXXXX")
on_exit "rm -rf $STATE"
export ALPHAREN STATE; export -f ctl
MQPW="pw-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
read -r MQPORT DISTPORT EPMDPORT < <(free_ports 3)

# --- RabbitMQ: a node of the test's own --------------------------------------------
rmq_node "$STATE/rabbitmq" "$MQPORT" "$DISTPORT" "$EPMDPORT"
rmqctl add_user ar "$MQPW" >/dev/null || fail "add_user"
rmqctl set_permissions -p / ar '.*' '.*' '.*' >/dev/null || fail "set_permissions"
tool() { $SYSPY "$HERE/amqp_tool.py" "$MQPORT" ar "$MQPW" "$@"; }
for q in work poison poison.dead sent dlx.dead; do tool declare "$q" || fail "declare $q"; done
tool declare poison.dlx dlx.dead || fail "declare poison.dlx"

# --- the node ---------------------------------------------------------------
cat >"$STATE/seed.toml" <<TOML
[node]
hostname = "n1"
[integrator]
tls = "off"
workers = 2
timeout = 10
[[integrator.outgoing_amqp]]
name = "mq"
host = "127.0.0.1"
port = $MQPORT
user = "ar"
password = "$MQPW"
timeout = 2
[[integrator.channel_amqp]]
name = "work-in"
connection = "mq"
queue = "work"
service = "amqp-test.record"
prefetch = 20
[[integrator.channel_amqp]]
name = "poison-in"
connection = "mq"
queue = "poison"
service = "amqp-test.fail"
max_attempts = 3
dead_letter_queue = "poison.dead"
[[integrator.channel_amqp]]
name = "poison-dlx-in"
connection = "mq"
queue = "poison.dlx"
service = "amqp-test.fail"
max_attempts = 2
[[integrator.channels]]
name = "seen"
url_path = "/seen"
service = "amqp-test.seen"
[[integrator.channels]]
name = "send"
url_path = "/send"
service = "amqp-test.send"
TOML
start_integrator "$STATE/seed.toml"
ctl integrator deploy "$HERE/amqp_test.py" >"$STATE/deploy.out" 2>&1 || { cat "$STATE/deploy.out"; fail "deploy of amqp_test.py refused"; }
seen() { curl -sS "$LB/seen"; }
wait_for 20 bash -o pipefail -c "curl -sf '$LB/seen' | jq -e .distinct" || fail "the seen channel does not answer: $(seen)"
wait_for 20 bash -c "rmqctl list_consumers | grep -c alpharen- | has -x 3" \
  || fail "the three AMQP channels are not consuming: $(rmqctl list_consumers)"
pass "three AMQP channels consume their queues"

# --- 1,000 messages, the integrator killed with SIGKILL mid-way -------------------
ipid() { ctl --json services | jq -r '.[] | select(.name=="integrator") | .pid'; }
IPID=$(ipid)
tool publish work 0 1000 0.01 || fail "publish 1000"
wait_for 30 bash -o pipefail -c "curl -sf '$LB/seen' | jq -e '.distinct >= 100'" || fail "the channel does not process: $(seen)"
AT_KILL=$(seen | jq -r .distinct)
kill -9 "$IPID"
wait_for 30 bash -c "p=\$(ctl --json services | jq -r '.[] | select(.name==\"integrator\") | .pid'); [ -n \"\$p\" ] && [ \"\$p\" != null ] && [ \"\$p\" != $IPID ]" \
  || fail "the supervisor did not restart the integrator"
[ "$AT_KILL" -lt 1000 ] || fail "every message was processed before the kill; the test did not kill mid-way"
wait_for 120 bash -o pipefail -c "curl -sf '$LB/seen' | jq -e '.distinct == 1000'" || fail "messages lost: $(seen), queue work: $(counts work)"
wait_for 20 bash -c "counts work | has -x '0 0'" || fail "queue work not empty: $(counts work)"
pass "1,000 messages through a channel with the integrator killed (SIGKILL) mid-way (after $AT_KILL): all 1,000 processed ($(seen | jq -r .record) calls), queue empty"

# --- a message whose service always fails -----------------------------------------
tool publish poison 5000 1 || fail "publish poison"
tool publish poison.dlx 6000 1 || fail "publish poison.dlx"
wait_for 30 bash -c "[ \"\$($SYSPY $HERE/amqp_tool.py $MQPORT ar $MQPW count poison.dead)\" = 1 ]" || fail "nothing in poison.dead: $(seen)"
wait_for 30 bash -c "[ \"\$($SYSPY $HERE/amqp_tool.py $MQPORT ar $MQPW count dlx.dead)\" = 1 ]" || fail "nothing in dlx.dead: $(seen)"
DEAD=$(tool drain poison.dead)
jq -e '.body.id == 5000 and .headers["x-alpharen-attempts"] == 3 and (.headers["x-alpharen-error"] | contains("poisoned message"))' <<<"$DEAD" >/dev/null \
  || fail "poison.dead holds: $DEAD"
DLX=$(tool drain dlx.dead)
jq -e '.body.id == 6000 and .headers["x-alpharen-attempts"] == 1 and .headers["x-death"][0].reason == "rejected"' <<<"$DLX" >/dev/null \
  || fail "dlx.dead holds: $DLX"
seen | jq -e '.fail_poison == 3 and .fail_poison_dlx == 2' >/dev/null || fail "calls of the failing service: $(seen)"
for q in poison poison.dlx; do counts "$q" | has -x '0 0' || fail "queue $q not empty: $(counts "$q")"; done
pass "a message whose service always fails: 3 calls then dead_letter_queue (x-alpharen-attempts 3, the error in x-alpharen-error); 2 calls then the queue's DLX (x-death reason rejected)"

# --- outgoing: sends while RabbitMQ stops and starts again -------------------------
: >"$STATE/sends"
(
  for i in $(seq 1 100000); do
    [ -e "$STATE/load.stop" ] && break
    code=$(curl -sS -o "$STATE/send.body" -w '%{http_code}' -H 'content-type: application/json' -d "{\"id\": $i}" "$LB/send" 2>/dev/null) || code=000
    echo "$i $code $(head -c 300 "$STATE/send.body" | tr '\n' ' ')" >>"$STATE/sends"
  done
) &
LOAD=$!
on_exit "kill $LOAD 2>/dev/null"
wait_for 20 bash -c "grep -c ' 200 ' '$STATE/sends' | has -E '^([2-9][0-9]|[1-9][0-9]{2,})$'" || fail "no sends: $(tail -3 "$STATE/sends")"
rmq_stop
# Longer than the connection's timeout (2 s): sends in between must fail.
sleep 4
rmq_start
n=$(wc -l <"$STATE/sends")
wait_for 30 bash -c "tail -n 20 '$STATE/sends' | grep -c ' 200 ' | has -x 20 && [ \$(wc -l <'$STATE/sends') -ge $((n + 20)) ]" \
  || fail "sends did not recover after RabbitMQ came back: $(tail -3 "$STATE/sends")"
touch "$STATE/load.stop"; wait "$LOAD" 2>/dev/null || true
awk '{print $2}' "$STATE/sends" | sort | uniq -c >"$STATE/sends.sum"
grep -v ' 200 ' "$STATE/sends" | grep -v ' 500 .*outgoing AMQP \\"mq\\"' | has . \
  && { cat "$STATE/sends.sum"; grep -v ' 200 ' "$STATE/sends" | head -3; fail "answers other than 200 or the connection's error"; }
grep -q ' 500 ' "$STATE/sends" || fail "no send saw the outage: $(cat "$STATE/sends.sum")"
awk '$2 == 200 {print $1}' "$STATE/sends" | sort -n >"$STATE/ok.ids"
tool drain sent | jq -r .message_id | sort -n | uniq >"$STATE/queued.ids"
MISSING=$(comm -23 "$STATE/ok.ids" "$STATE/queued.ids" | wc -l)
[ "$MISSING" = 0 ] || fail "$MISSING sends answered OK but are not in the queue: $(comm -23 "$STATE/ok.ids" "$STATE/queued.ids" | head -5 | tr '\n' ' ')"
pass "sends while RabbitMQ stopped and started: every one of $(wc -l <"$STATE/ok.ids") confirmed sends is in the queue; the others failed naming the connection ($(tr -s ' \n' ' ' <"$STATE/sends.sum"))"

# --- the password is in no revision, log or answer -----------------------------------
: >"$STATE/everything.txt"
for cmd in "config show" "--json config show" "config export" "config history" "--json integrator status" \
    "logs integrator -n 5000" "logs -n 5000"; do
  # shellcheck disable=SC2086 # the words of the command
  ctl $cmd >>"$STATE/everything.txt" 2>&1 || fail "ctl $cmd: $(tail -3 "$STATE/everything.txt")"
done
cat "$STATE/console.log" >>"$STATE/everything.txt"
has 'secret:integrator.outgoing_amqp.mq' "$STATE/everything.txt" || fail "the config does not refer to the stored secret"
has -F "$MQPW" "$STATE/everything.txt" && fail "the AMQP password shows in a revision, log or answer"
pass "the AMQP password lives in the secret store only (config refers to secret:integrator.outgoing_amqp.mq)"
echo "integrator-amqp: all passed"
