#!/usr/bin/env bash
# The dashboard's charts: with DNS queries and HTTP requests going to the
# node, the web service's sampler (every 10 s) gathers rates into
# GET /api/v1/metrics/history (a viewer's session reads it, no session
# gets 401), and the dashboard in headless Chromium draws them as SVG
# lines with text alternatives, at desktop and phone width, redrawing
# while it is shown and not after leaving it. Messages published to a
# topic whose subscriber is no deployed service wait in its queue: the
# integrator's status, /metrics and the history's queue_depth show them.
. "$(dirname "$0")/../lib.sh"
browser_deps
command -v dig >/dev/null || fail "needs dig (scripts/deps.sh)"
STATE=$(mktemp -d /tmp/alpharen-graphs.XXXXXX)
on_exit "rm -rf $STATE"
read -r DNS_PORT < <(free_ports 1)
seed_ports "$STATE/seed.toml"
cat >>"$STATE/seed.toml" <<TOML
[dpx]
zone = "graphs.test."
port = $DNS_PORT
[[dpx.records]]
name = "www"
type = "A"
value = "192.0.2.10"
[[integrator.topics]]
name = "parked"
subscribers = ["nobody.home"]
max_attempts = 100
backoff_ms = 3600000
TOML
console_node "$STATE" graphs
printf 'viewer pass 1\n' | ctl user add watcher --role viewer >/dev/null || fail "add a viewer"
jar=$STATE/viewer.jar
curl -skf -c "$jar" -H 'content-type: application/json' --data '{"username":"watcher","password":"viewer pass 1"}' "$BASE/api/v1/session" >/dev/null || fail "viewer login"
code=$(curl -sk -o /dev/null -w '%{http_code}' "$BASE/api/v1/metrics/history")
[ "$code" = 401 ] || fail "history without a session: $code"

history() { curl -skf -b "$jar" "$BASE/api/v1/metrics/history"; }
# Some load, then whether the history holds rates of it.
loaded() {
  for _ in 1 2 3 4 5; do
    dig +short +time=1 +tries=1 -p "$DNS_PORT" @127.0.0.1 www.graphs.test A >/dev/null
    curl -skf "$BASE/api/v1/health" >/dev/null
  done
  history | jq -e '(.times | length) >= 3 and .interval_secs == 10
    and ([.series[] | select(.key == "dns_answers" or .key == "web_requests")
          | select([.values[] | select(. != null and . > 0)] | length >= 1)] | length == 2)
    and ([.series[] | select(.key | startswith("rss/")) | select([.values[] | select(. != null)] | length >= 3)] | length >= 3)
    and ([.series[] | select(.key == "cpu/web") | .unit] == ["%"])'
}
# Three samples are 20 s apart; the machine may be busy.
wait_for 60 loaded || fail "no rates in the history after 60 s: $(history | jq -c '{times, series: [.series[] | {key, values: .values[-3:]}]}')"
pass "history: three samples, DNS answers/s and requests/s above 0, memory of each service"

# Queue depth: three messages for a subscriber that is no service wait
# (each failed once, the next try is an hour away).
wait_for 20 ctl integrator status || fail "integrator control socket"
scrape() { curl -skf -b "$STATE/admin.jar" "$BASE/metrics"; }
export -f ctl scrape; export ALPHAREN STATE BASE jar
for i in 1 2 3; do ctl integrator publish parked "{\"n\":$i}" >/dev/null || fail "publish $i"; done
# jq -n with input: no answer at all is a failure, not a vacuous pass.
wait_for 10 bash -o pipefail -c "ctl --json integrator status | jq -en 'input | [.queues[] | select(.topic == \"parked\" and .subscriber == \"nobody.home\") | .ready + .in_flight] == [3]'" \
  || fail "integrator status has no queue depth: $(ctl --json integrator status | jq -c .queues)"
curl -skf -c "$STATE/admin.jar" -H 'content-type: application/json' \
  --data "{\"username\":\"admin\",\"password\":\"$PASSWORD\"}" "$BASE/api/v1/session" >/dev/null || fail "admin login"
wait_for 10 bash -c "scrape | grep -qxF 'alpharen_integrator_queue_messages{topic=\"parked\",subscriber=\"nobody.home\",state=\"ready\"} 3.0'" \
  || fail "/metrics has no queue depth: $(curl -skf -b "$STATE/admin.jar" "$BASE/metrics" | grep queue_messages)"
wait_for 30 bash -o pipefail -c "curl -skf -b '$jar' '$BASE/api/v1/metrics/history' | jq -en 'input | [.series[] | select(.key == \"queue_depth\") | .values[-1]] == [3]'" \
  || fail "no queue depth in the history: $(history | jq -c '[.series[] | select(.key | startswith("queue")) | {key, unit, values: .values[-3:]}]')"
history | jq -en 'input | [.series[] | select(.key == "queue_dead") | .unit] == ["messages"]' >/dev/null || fail "no dead-letter series"
pass "queue depth: 3 waiting messages in the integrator's status, /metrics and the history (queue_depth)"

TEST_OUT=$OUT timeout 150 node "$DIR/graphs.mjs" "$BASE" "$PASSWORD" || fail "dashboard charts (screenshots in $OUT)"
pass "dashboard: charts with text alternatives at desktop and phone width, redrawn every 10 s, stopped after leaving"
