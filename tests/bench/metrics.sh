#!/usr/bin/env bash
# `GET /metrics` with every service up and holding content
# (tests/console-seed.sh: a DNS zone, a mail queue, a PostgreSQL group,
# a deployed service with a job and a topic, a reaction run): RUNS runs
# of SCRAPES scrapes each by an admin session over HTTPS keep-alive, the
# way Prometheus scrapes: time per scrape (median and spread of the runs'
# medians), body size and number of samples. No peer: absolute figures.
# Not pass/fail, but a failed scrape stops it.
#   RUNS=3 SCRAPES=50 tests/bench/metrics.sh
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/console-seed.sh"
SCRAPES=${SCRAPES:-50}
[[ $SCRAPES =~ ^[1-9][0-9]*$ ]] || fail "SCRAPES must be a positive number, not '$SCRAPES'"
browser_deps   # the seed's console node is the same as the browser tests'
STATE=$(mktemp -d /tmp/metrics-bench.XXXXXX); on_exit "rm -rf $STATE"
seeded_console "$STATE"
curl -skf -c "$STATE/jar" -H 'content-type: application/json' \
  --data "{\"username\":\"admin\",\"password\":\"$PASSWORD\"}" "$BASE/api/v1/session" >/dev/null || fail "login"
# Every service answers its status before measuring.
all_ok() {
  curl -skf -b "$STATE/jar" "$BASE/metrics" >"$STATE/first" || return 1
  grep -q '^alpharen_service_status_ok{' "$STATE/first" && ! grep -q '^alpharen_service_status_ok{.*} 0$' "$STATE/first"
}
wait_for 30 all_ok || fail "a service does not answer in /metrics: $(grep '^alpharen_service_status_ok' "$STATE/first")"
medians=()
for r in $(seq "$RUNS"); do
  urls=(); for _ in $(seq "$SCRAPES"); do urls+=("$BASE/metrics" -o /dev/null); done
  times=$(curl -sk -b "$STATE/jar" --fail -w '%{time_total}\n' "${urls[@]}") || fail "a scrape failed in run $r"
  [ "$(wc -l <<<"$times")" = "$SCRAPES" ] || fail "run $r: $(wc -l <<<"$times") of $SCRAPES scrapes answered"
  m=$(median $(awk '{print $1 * 1000}' <<<"$times")); medians+=("$m")
  echo "run $r: median $m ms per scrape over $SCRAPES scrapes"
done
curl -skf -b "$STATE/jar" "$BASE/metrics" -o "$STATE/body" || fail "last scrape"
bytes=$(wc -c <"$STATE/body"); samples=$(grep -cv '^#' "$STATE/body")
echo "scrape time (ms): $(stats "${medians[@]}")"
echo "body: $bytes bytes, $samples samples, $(grep -c '^# TYPE' "$STATE/body") series"
