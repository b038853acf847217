#!/usr/bin/env bash
# ARPuSuB across a cluster (issue 17): three members A, B, C (`alpharen
# run` in namespaces, each with its own nats-server). 2,000 messages
# published through A to a topic whose subscriber runs on every member,
# while C's whole process tree is kill -9'd mid-delivery and restarted:
# every message is delivered at least once, none is lost, duplicates are
# counted. A subscriber that always fails: its messages are in the
# cluster's DLQ after max attempts, seen from every member. A lock taken
# on A blocks B until released; a holder killed loses it after its
# expiry. invoke_async on A runs once in the cluster.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../cluster-lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
trap "exit 1" TERM INT
N=2000

cluster_net A B C
start_members A B C <<TOML
[integrator]
tls = "off"
workers = 2
timeout = 60
async_attempts = 3
async_backoff_ms = 200
[[integrator.topics]]
name = "orders"
subscribers = ["ps.record"]
max_depth = 100000
max_attempts = 10
backoff_ms = 500
[[integrator.topics]]
name = "capped"
subscribers = ["ps.fail"]
max_depth = 5
max_attempts = 100
backoff_ms = 600000
[[integrator.topics]]
name = "bad"
subscribers = ["ps.fail"]
max_attempts = 3
backoff_ms = 100
TOML
cluster_form A B C
pass "cluster of a, b, c formed"

# Wait for R3 on the queues, the dead letters and the locks before
# anything is published (a member killed must not hold their only copy).
replicas() { ip netns exec "${NS[A]}" curl -sf "http://127.0.0.1:8222/jsz?streams=true&config=true" | jq -r '[.account_details[].stream_detail[] | select(.name == "AR_QUEUES" or .name == "AR_DLQ" or .name == "KV_ar_locks" or .name == "KV_ar_kv") | .config.num_replicas] | if length == 4 then min else 0 end'; }
for _ in $(seq 90); do [ "$(replicas)" = 3 ] && break; sleep 0.5; done
[ "$(replicas)" = 3 ] || { replicas; c A logs integrator | tail -5; fail "the queue streams and lock bucket did not go to three replicas"; }
wait_for 60 c A integrator deploy "$HERE/cluster/pubsub_services.py" >/dev/null || { c A integrator deploy "$HERE/cluster/pubsub_services.py"; fail "deploy the services on A"; }
live() { "$ALPHAREN" ctl --state-dir "$W/${1,,}" --json integrator list | jq -e 'any(.[]; .name == "ps.record")' >/dev/null; }
for n in B C; do wait_for 20 live $n || fail "the services deployed on A are not live on $n"; done
pass "queues, dead letters and locks at three replicas; services live on every member"

# --- 2,000 messages through A; C killed mid-delivery and restarted
keys() { "$ALPHAREN" ctl --state-dir "$W/$1" --json integrator kv list --ns "$2" | jq -r '.keys[]'; }
# Every delivery's key as listed by the three members together: a listing
# is read from replicas (direct gets), one that lags may miss a fresh key.
all_keys() { { keys a "$1"; keys b "$1"; keys c "$1"; } | sort -u; }
ids() { cut -d. -f1 <<<"$1" | sort -u | wc -l; }
t0=$(date +%s.%N)
out=$(c A --json integrator invoke ps.publish "{\"topic\": \"orders\", \"n\": $N, \"sleep\": 0.05}") || fail "publish on A: $out"
jq -e ".. | objects | select(.published == $N)" >/dev/null <<<"$out" || fail "publish on A: $out"
echo "  $N published on A in $(echo "$(date +%s.%N) - $t0" | bc) s"
wait_for 60 bash -c "[ \$('$ALPHAREN' ctl --state-dir '$W/a' --json integrator kv list --ns seen | jq '.keys | length') -ge 300 ]" \
  || { c A integrator topics; c A logs integrator | tail -8; fail "delivery did not start"; }
before=$(ids "$(keys a seen)")
kill_tree C
[ "$before" -lt $N ] || fail "delivery finished before C was killed"
echo "  killed C's process tree with $before of $N delivered"
sleep 3
start C
wait_for 90 agree A B C || { st A; fail "C did not come back into the cluster"; }
wait_for 60 "$ALPHAREN" ctl --state-dir "$W/c" integrator kv list --ns seen >/dev/null || fail "C's integrator does not reach the cluster again"
# (a deadline, not a count: each look lists every key three times)
end=$((SECONDS + 240))
while list=$(all_keys seen); got=$(ids "$list"); [ "$got" != $N ] && [ $SECONDS -lt $end ]; do sleep 1; done
[ "$got" = $N ] || { c A integrator topics; c A logs integrator | tail -10; nats_warnings A B C; fail "lost messages: $got of $N delivered"; }
drained() { bash -o pipefail -c "'$ALPHAREN' ctl --state-dir '$W/$1' --json integrator topics | jq -e '[.[] | select(.topic == \"orders\")][0] | .ready + .in_flight + .dead == 0'" >/dev/null; }
wait_for 60 drained a || { c A integrator topics; fail "the orders queue did not drain"; }
drained b || { c B integrator topics; fail "B sees messages left on orders"; }
# The deliveries: the most keys of three listings (each may miss one).
total=$(wc -l <<<"$list")
for _ in 1 2 3; do t=$(all_keys seen | wc -l); [ "$t" -gt "$total" ] && total=$t; done
dups=$((total - N))
pass "$N published on A, C kill -9'd at $before delivered and restarted: all $N delivered, none lost, $dups duplicates ($total deliveries)"

# --- dead letters after max attempts, cluster-wide
c A --json integrator invoke ps.publish '{"topic": "bad", "n": 2}' >/dev/null || fail "publish to bad"
dlq() { "$ALPHAREN" ctl --state-dir "$W/$1" --json integrator queue bad --dlq; }
wait_for 30 bash -o pipefail -c "'$ALPHAREN' ctl --state-dir '$W/c' --json integrator queue bad --dlq | jq -e 'length == 2'" >/dev/null \
  || { dlq c; c A integrator topics; fail "the failing subscriber's messages are not dead-lettered"; }
dlq b | jq -e 'length == 2 and all(.[]; .attempts == 3 and (.last_error | test("always fails")))' >/dev/null || { dlq b; fail "DLQ attempts or error"; }
c B --json integrator topics | jq -e '[.[] | select(.topic == "bad")][0] | .dead == 2 and .ready == 0' >/dev/null || { c B integrator topics; fail "B's topic counts"; }
c C integrator redrive bad >/dev/null || fail "redrive on C"
wait_for 30 bash -o pipefail -c "'$ALPHAREN' ctl --state-dir '$W/a' --json integrator queue bad --dlq | jq -e 'length == 2 and all(.[]; .attempts == 3)'" >/dev/null \
  || { dlq a; fail "redriven messages did not come back to the DLQ after 3 more attempts"; }
c A integrator purge bad --dlq >/dev/null || fail "purge on A"
[ "$(dlq b | jq length)" = 0 ] || fail "purge on A: B still lists dead letters"
pass "failing subscriber: 2 messages in the cluster's DLQ after 3 attempts (seen on B and C); redrive on C, purge on A"

# --- max_depth across members: each member reads the depth once its
# count reaches half of it, so a member alone stops exactly at the limit
fill() { c "$1" --json integrator invoke ps.fill "{\"topic\": \"capped\", \"n\": $2}"; }
out=$(fill A 8) || fail "fill on A: $out"
jq -e '.. | objects | select(.published == 5 and .full == true)' >/dev/null <<<"$out" || fail "A filled capped past or short of max_depth 5: $out"
out=$(fill B 3) || fail "fill on B: $out"
jq -e '.. | objects | select(.published == 0 and .full == true)' >/dev/null <<<"$out" || fail "B published to the full queue: $out"
# (C's list of consumers is read again after 2 s: capped's may be new to it)
wait_for 10 bash -o pipefail -c "'$ALPHAREN' ctl --state-dir '$W/c' --json integrator topics | jq -e '[.[] | select(.topic == \"capped\")][0] | .ready + .in_flight == 5'" >/dev/null \
  || { c C integrator topics; fail "C does not count 5 messages on capped"; }
c A integrator purge capped >/dev/null || fail "purge capped on A"
out=$(fill B 1) || fail "fill on B: $out"
jq -e '.. | objects | select(.published == 1 and .full == false)' >/dev/null <<<"$out" || fail "B could not publish to the purged queue: $out"
pass "max_depth 5: A publishes 5 of 8, B none while full; after a purge B publishes again"

# --- locks: A holds, B waits; a killed holder loses it after its expiry
c A --json integrator invoke ps.lock_hold '{"expires": 30, "hold": 6}' >"$W/hold.json" 2>&1 &
hold=$!
wait_for 10 bash -c "'$ALPHAREN' ctl --state-dir '$W/a' integrator kv get lock_holder | grep -qv 'not found'" || fail "the lock holder on A did not start"
c C --json integrator locks | jq -e 'any(.[]; .name == "L")' >/dev/null || { c C integrator locks; fail "C does not list A's lock"; }
out=$(c B --json integrator invoke ps.lock_try '{"timeout": 1}') || fail "lock try on B: $out"
jq -e '.. | objects | select(.got == false)' >/dev/null <<<"$out" || fail "B took the lock A holds: $out"
wait $hold || fail "the holder on A: $(cat "$W/hold.json")"
out=$(c B --json integrator invoke ps.lock_try '{"timeout": 5}') || fail "lock try on B: $out"
jq -e '.. | objects | select(.got == true)' >/dev/null <<<"$out" || fail "B did not get the lock A released: $out"
c A integrator kv del lock_holder >/dev/null
c A --json integrator invoke ps.lock_hold '{"expires": 8, "hold": 120}' >/dev/null 2>&1 &
hold=$!
wait_for 10 bash -c "'$ALPHAREN' ctl --state-dir '$W/a' integrator kv get lock_holder | grep -qv 'not found'" || fail "the second holder on A did not start"
holder=$(c A integrator kv get lock_holder)
kill -9 "$holder"
wait $hold 2>/dev/null
out=$(c B --json integrator invoke ps.lock_try '{"timeout": 0.5}') || fail "lock try on B: $out"
jq -e '.. | objects | select(.got == false)' >/dev/null <<<"$out" || fail "B took the lock right after its holder died (before its expiry): $out"
out=$(c B --json integrator invoke ps.lock_try '{"timeout": 20}') || fail "lock try on B: $out"
jq -e '.. | objects | select(.got == true)' >/dev/null <<<"$out" || fail "B did not get the lock of a killed holder after its expiry: $out"
pass "lock held on A blocks B until released; holder on A killed: B gets it after its 8 s expiry ($(jq -r '.. | .waited? // empty' <<<"$out") s)"

# --- invoke_async on A runs once in the cluster
for i in 1 2 3 4 5; do c A integrator invoke ps.async_start "{\"n\": $i}" >/dev/null || fail "invoke_async on A"; done
wait_for 30 bash -c "[ \$('$ALPHAREN' ctl --state-dir '$W/c' --json integrator kv list --ns async | jq '.keys | length') -ge 5 ]" || { keys c async; fail "the async invocations did not run"; }
sleep 3
runs=$(all_keys async | cut -d. -f1 | sort | uniq -c | awk '{print $1}' | sort -u | paste -sd,)
[ "$(all_keys async | wc -l)" = 5 ] && [ "$runs" = 1 ] || { all_keys async; fail "invoke_async did not run exactly once each"; }
pass "5 invoke_async calls on A: each ran exactly once in the cluster"
