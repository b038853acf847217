#!/usr/bin/env bash
# Integrator async features end to end (issue 10): scheduler (interval,
# misfire after downtime), pub/sub with kill -9 of the integrator during
# delivery (at-least-once, none lost), DLQ, queue depth limit, KV (TTL,
# bytes, Redis-style API, CAS races across two workers), invoke_async,
# locks freed after a killed holder's expiry. Loopback only; every wait bounded.
. "$(dirname "$0")/../lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
STATE=$OUT/state-async
rm -rf "$STATE"; mkdir -p "$STATE"
has() { grep "$@" >/dev/null; }
export ALPHAREN STATE; export -f ctl has
command -v jq >/dev/null || fail "jq is needed"

# post PATH JSON: body of a POST to the load balancer.
post() { curl -sS -m 60 -H 'content-type: application/json' -d "$2" "$LB$1"; }
job() { ctl --json integrator jobs | jq -r ".[] | select(.name==\"$1\") | .$2"; }
seen_count() { ctl --json integrator kv list --ns seen | jq '.keys | length'; }

chan() { printf '[[integrator.channels]]\nname = "%s"\nurl_path = "/%s"\nservice = "%s"\n' "$1" "$1" "$2"; }
{
cat <<TOML
[node]
hostname = "async1"
[integrator]
# Plain HTTP on purpose: these tests exercise the channels, not TLS.
tls = "off"
workers = 2
timeout = 10
async_attempts = 3
async_backoff_ms = 100
[[integrator.calendars]]
name = "holidays"
dates = ["2030-12-25"]
[[integrator.jobs]]
name = "tick"
service = "job.tick"
kind = "interval"
seconds = 1
calendar = "holidays"
[[integrator.jobs]]
name = "nightly"
service = "job.tick"
kind = "cron"
cron = "0 3 * * *"
timezone = "+02:00"
[[integrator.topics]]
name = "orders"
subscribers = ["sub.record"]
max_depth = 5000
max_attempts = 5
backoff_ms = 100
[[integrator.topics]]
name = "bad"
subscribers = ["sub.fail"]
max_attempts = 3
backoff_ms = 100
[[integrator.topics]]
name = "small"
subscribers = ["sub.slow"]
max_depth = 3
expiry = 600
TOML
for c in t.kv t.publish t.async t.lock_hold t.lock_try; do chan "$c" "$c"; done
} >"$OUT/async.toml"

seed_ports "$OUT/async.toml"
LB=http://127.0.0.1:$LB_PORT
start_node "$STATE" --config "$OUT/async.toml"
wait_for 30 bash -c "ctl --json integrator status | has '\"idle_workers\": 2'" || { ctl integrator status; fail "workers did not start"; }
ctl integrator deploy "$HERE/integrator/async_services.py" >/dev/null
pass "integrator up; async services deployed"

# --- bad config is refused with paths --------------------------------------
printf '[[integrator.jobs]]\nname = "x"\nservice = "s"\nkind = "cron"\ncron = "* * *"\nmisfire = "later"\ncalendar = "nope"\n' >"$OUT/bad-jobs.toml"
if ctl config apply --file "$OUT/bad-jobs.toml" >"$OUT/bad-jobs.txt" 2>&1; then fail "bad job accepted"; fi
for p in 'integrator.jobs\[0\].cron' 'integrator.jobs\[0\].misfire' 'integrator.jobs\[0\].calendar'; do
  has "$p" "$OUT/bad-jobs.txt" || { cat "$OUT/bad-jobs.txt"; fail "no problem at $p"; }
done
pass "invalid jobs refused with path-precise problems"

# --- scheduler: interval job runs; ctl shows next/last run; job_run --------
wait_for 20 bash -c '[ "$(ctl integrator kv get tick --ns jobs)" -ge 3 ] 2>/dev/null' || { ctl integrator jobs; fail "interval job did not run 3 times"; }
[ "$(job tick last_result)" = ok ] || fail "tick last_result: $(job tick last_result)"
[ "$(job nightly next_run | cut -c12-19)" = "01:00:00" ] || fail "cron at +02:00 next run: $(job nightly next_run)"
ctl integrator jobs
ctl integrator job-run nightly >/dev/null
wait_for 10 bash -c '[ "$(ctl integrator kv get nightly --ns jobs)" = 1 ]' || fail "job_run did not run nightly"
[ "$(job nightly last_trigger)" = manual ] || fail "nightly trigger"
pass "interval job ran >=3 times; cron next run in +02:00; job_run ran a cron job now"

# --- KV: set/get, TTL, bytes, prefix, Redis-style, ctl ----------------------
post /t.kv '{"op":"set","key":"k1","value":{"a":[1,2]}}' >/dev/null
[ "$(post /t.kv '{"op":"get","key":"k1"}' | jq -c .result)" = '{"a":[1,2]}' ] || fail "kv get"
post /t.kv '{"op":"set","key":"ttl1","value":1,"ttl":1}' >/dev/null
[ "$(post /t.kv '{"op":"get","key":"ttl1"}' | jq -c .result)" = 1 ] || fail "ttl key missing early"
sleep 1.3
[ "$(post /t.kv '{"op":"get","key":"ttl1"}' | jq -c .result)" = null ] || fail "ttl key did not expire"
[ "$(post /t.kv '{"op":"bytes","key":"b1"}' | jq -c .result)" = true ] || fail "bytes round trip"
[ "$(post /t.kv '{"op":"keys","prefix":"k"}' | jq -c .result)" = '["k1"]' ] || fail "prefix keys"
out=$(post /t.kv '{"op":"redis"}' | jq -c .result)
[ "$out" = '["v1",false,1,null,true,{"a":1}]' ] || fail "redis-style api: $out"
ctl integrator kv set cfg '{"x": 1}' --ns ops >/dev/null
[ "$(ctl integrator kv get cfg --ns ops)" = '{"x":1}' ] || fail "ctl kv get"
ctl integrator kv list --ns ops | has '^cfg$' || fail "ctl kv list"
ctl integrator kv del cfg --ns ops >/dev/null
[ "$(ctl integrator kv get cfg --ns ops)" = '(not found)' ] || fail "ctl kv del"
pass "KV: JSON and bytes values, TTL expiry, prefix listing, self.kvdb.conn / self.cache, ctl kv get/set/del/list"

# --- CAS race across two workers ---------------------------------------------
post /t.kv '{"op":"incr","key":"ctr","n":300}' >"$OUT/cas1.json" &
A=$!
post /t.kv '{"op":"incr","key":"ctr","n":300}' >"$OUT/cas2.json"
wait $A
p1=$(jq .pid "$OUT/cas1.json"); p2=$(jq .pid "$OUT/cas2.json")
[ "$p1" != "$p2" ] || fail "both CAS loops ran in the same worker ($p1)"
[ "$(post /t.kv '{"op":"get","key":"ctr"}' | jq .result)" = 600 ] || fail "CAS race lost updates: $(post /t.kv '{"op":"get","key":"ctr"}')"
pass "CAS counter from two workers ($p1, $p2) concurrently: 600 of 600"

# --- invoke_async -------------------------------------------------------------
for n in 1 2 3; do post /t.async "{\"n\": $n}" >/dev/null; done
wait_for 10 bash -c '[ "$(ctl --json integrator kv list --ns async | jq ".keys | length")" = 3 ]' || fail "invoke_async did not run"
pass "invoke_async runs queued work"

# --- pub/sub: 1000 messages, kill -9 of the integrator during delivery --------
out=$(post /t.publish '{"topic":"orders","n":1000,"sleep":0.003}')
[ "$(echo "$out" | jq .published)" = 1000 ] || fail "publish: $out"
wait_for 10 bash -c '[ "$(ctl --json integrator kv list --ns seen | jq ".keys | length")" -ge 50 ]' || fail "delivery did not start"
IPID=$(ctl --json services | jq -r '.[] | select(.name=="integrator") | .pid')
[ -n "$IPID" ] && [ "$IPID" != null ] || fail "no integrator pid"
before=$(seen_count)
kill -9 "$IPID"
[ "$before" -lt 1000 ] || fail "delivery finished before the kill"
echo "  killed integrator pid $IPID with ~$before of 1000 delivered"
wait_for 30 bash -c "p=\$(ctl --json services | jq -r '.[] | select(.name==\"integrator\") | .pid'); [ -n \"\$p\" ] && [ \"\$p\" != null ] && [ \"\$p\" != $IPID ] && ctl integrator status" || fail "integrator not restarted by the supervisor"
wait_for 60 bash -c '[ "$(ctl --json integrator kv list --ns seen | jq ".keys | length")" = 1000 ]' || fail "lost messages: $(seen_count) of 1000 seen"
wait_for 10 bash -c '[ "$(ctl --json integrator topics | jq "[.[] | select(.topic==\"orders\")][0].ready + [.[] | select(.topic==\"orders\")][0].in_flight")" = 0 ]' || fail "orders queue not drained"
[ "$(seen_count)" = 1000 ] || fail "seen: $(seen_count)"
pass "1000 published; integrator kill -9'd mid-delivery (~$before done), restarted; all 1000 delivered at least once, none lost"

# --- DLQ after max attempts; queue full -----------------------------------------
post /t.publish '{"topic":"bad","n":2}' >/dev/null
wait_for 15 bash -c '[ "$(ctl --json integrator queue bad --dlq | jq length)" = 2 ]' || { ctl integrator topics; fail "failing messages not dead-lettered"; }
ctl --json integrator queue bad --dlq | jq -e 'all(.[]; .attempts == 3 and (.last_error | test("always fails")))' >/dev/null || fail "DLQ attempts/error"
ctl integrator purge bad --dlq >/dev/null
[ "$(ctl --json integrator queue bad --dlq | jq length)" = 0 ] || fail "purge"
out=$(post /t.publish '{"topic":"small","n":10}')
[ "$(echo "$out" | jq .published)" -le 5 ] && echo "$out" | has 'is full' || fail "depth limit: $out"
ctl integrator purge small >/dev/null
pass "failing subscriber: 2 messages in DLQ after 3 attempts; purge; full queue refused: $(echo "$out" | jq -r .full)"

# --- lock held by a killed worker is freed after expiry ---------------------------
curl -s -m 30 -o /dev/null "$LB/t.lock_hold" &
HOLD=$!
wait_for 10 bash -c '[ "$(ctl integrator kv get lock_holder)" != "(not found)" ]' || fail "lock holder did not start"
holder=$(ctl integrator kv get lock_holder)
ctl --json integrator locks | jq -e '.[] | select(.name=="L")' >/dev/null || fail "lock not listed"
out=$(post /t.lock_try '{"timeout":0.5}')
echo "$out" | has 'not obtained' || fail "lock not exclusive: $out"
kill -9 "$holder"
wait $HOLD 2>/dev/null || true
out=$(post /t.lock_try '{"timeout":10}')
w=$(echo "$out" | jq .waited)
[ "$w" != null ] || fail "lock not obtained after holder died: $out"
pass "lock exclusive; holder worker $holder killed -> lock obtained after ${w}s (expiry 3 s)"

# --- misfire after downtime: one_time jobs due while the node is down --------------
# Two one-time jobs due in a few seconds, added now (so nothing before
# depends on how long the steps above took), then the node goes down.
AT=$(($(date +%s) + 6))
AT_S=$(date -u -d "@$AT" +%Y-%m-%dT%H:%M:%S)
for m in run_once:once.run skip:once.skip; do
  ctl config set "integrator.jobs[$(ctl --json config show integrator | jq '.config.jobs | length')]" \
    "{name = \"${m#*:}\", service = \"job.tick\", kind = \"one_time\", at = \"$AT_S\", misfire = \"${m%%:*}\"}" >/dev/null \
    || fail "one-time job ${m#*:} not added"
done
wait_for 10 bash -o pipefail -c "ctl --json integrator jobs | jq -e '[.[] | select(.name == \"once.run\" or .name == \"once.skip\") | .next_run | select(. != null)] | length == 2'" \
  || { ctl integrator jobs; fail "the one-time jobs were not scheduled"; }
[ "$(date +%s)" -lt $((AT - 1)) ] || fail "the one-time jobs fell due before the node went down (adding them took over 5 s)"
kill "$NODE_PID"; wait "$NODE_PID" 2>/dev/null || true
while [ "$(date +%s)" -le $((AT + 2)) ]; do sleep 0.5; done
start_node "$STATE"
wait_for 30 bash -c '[ "$(ctl integrator kv get once.run --ns jobs)" = 1 ]' || { ctl integrator jobs; fail "run_once misfire did not run"; }
[ "$(job once.run last_trigger)" = misfire ] || fail "once.run trigger $(job once.run last_trigger)"
[ "$(job once.skip last_result)" = "skipped (misfire)" ] || fail "once.skip: $(job once.skip last_result)"
[ "$(ctl integrator kv get once.skip --ns jobs)" = "(not found)" ] || fail "skip job ran"
[ "$(job once.run next_run)" = null ] || fail "one-time job still scheduled"
runs=$(ctl integrator kv get tick --ns jobs)
wait_for 10 bash -c "[ \$(ctl integrator kv get tick --ns jobs) -gt $runs ]" || fail "interval job did not resume"
ctl integrator jobs
pass "after downtime: misfire=run_once ran once, misfire=skip skipped; interval job resumed"
echo "all integrator-async tests passed"
