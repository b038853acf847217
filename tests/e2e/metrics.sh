#!/usr/bin/env bash
# /metrics end to end: a `alpharen run --dev` node scraped by curl, checked
# by `promtool check metrics`, then by a real Debian `prometheus` over
# HTTPS (self-signed, so insecure_skip_verify) with a viewer API token.
# Access: no credentials 401, a viewer's session 403, an admin's session
# and a token 200. A stopped service (mail, SIGSTOP) costs only its own
# series: the scrape still answers and says so in alpharen_service_status_ok.
. "$(dirname "$0")/../lib.sh"
needs curl jq promtool prometheus python3
STATE=$(mktemp -d /tmp/alpharen-metrics.XXXXXX)
on_exit "rm -rf $STATE"
seed_ports "$STATE/seed.toml"
start_node "$STATE" --config "$STATE/seed.toml"
BASE=https://127.0.0.1:$HTTPS_PORT
wait_for 20 curl -skf "$BASE/api/v1/health" || { cat "$STATE/console.log"; fail "web did not come up"; }

# req METHOD PATH [BODY [CURL ARGS...]]: sets CODE, BODY and CTYPE.
req() {
  local m=$1 p=$2 d=${3-}
  shift $(($# < 3 ? $# : 3))
  local args=(-sk -o "$STATE/body" -w '%{http_code} %{content_type}' -X "$m" "$BASE$p")
  [ -n "$d" ] && args+=(-H 'content-type: application/json' --data-binary "$d")
  local out
  out=$(curl "${args[@]}" "$@") || out=000
  CODE=${out%% *}; CTYPE=${out#* }
  BODY=$(cat "$STATE/body" 2>/dev/null || true)
}
expect() { # expect CODE what
  [ "$CODE" = "$1" ] || fail "$2: got HTTP $CODE, want $1: $(head -c 400 <<<"$BODY")"
  pass "$2 ($CODE)"
}

# --- setup, an admin session, a viewer user, a viewer token
req POST /api/v1/setup "{\"code\":\"$(cat "$STATE/setup-code")\",\"admin_password\":\"correct horse\",\"hostname\":\"node1\"}"
expect 200 "setup"
JAR=$STATE/cookies VJAR=$STATE/vcookies
req POST /api/v1/session '{"username":"admin","password":"correct horse"}' -c "$JAR"
expect 200 "admin login"
CSRF=$(jq -er .csrf <<<"$BODY") || fail "no csrf in $BODY"
req POST /api/v1/users '{"name":"viewer1","password":"viewer pass","role":"viewer"}' -b "$JAR" -H "x-csrf-token: $CSRF"
expect 200 "viewer user added"
req POST /api/v1/session '{"username":"viewer1","password":"viewer pass"}' -c "$VJAR"
expect 200 "viewer login"
req POST /api/v1/tokens '{"name":"prometheus","role":"viewer"}' -b "$JAR" -H "x-csrf-token: $CSRF"
expect 200 "viewer token for the scraper"
TOKEN=$(jq -er .secret <<<"$BODY") || fail "no token secret in $BODY"
printf '%s' "$TOKEN" >"$STATE/token"

# --- access
req GET /metrics
expect 401 "unauthenticated scrape refused"
jq -e '.code == "unauthorized"' <<<"$BODY" >/dev/null || fail "401 body: $BODY"
req GET /metrics '' -H "authorization: Bearer art_forged"
expect 401 "forged token refused"
req GET /metrics '' -b "$VJAR"
expect 403 "a viewer's session is refused"
req GET /metrics '' -b "$JAR"
expect 200 "an admin's session scrapes"
req GET /metrics '' -H "authorization: Bearer $TOKEN"
expect 200 "a viewer token scrapes"
[ "$CTYPE" = "text/plain; version=0.0.4; charset=utf-8" ] || fail "Content-Type is '$CTYPE'"
pass "Content-Type is the Prometheus text format 0.0.4"

# --- the text
# Every built-in is up once the node is ready; wait for that, then check.
scrape() { curl -skf -H "authorization: Bearer $TOKEN" "$BASE/metrics" >"$STATE/metrics.txt"; }
all_up() { scrape && ! grep -E '^alpharen_service_up\{.*\} 0(\.0)?$' "$STATE/metrics.txt" && has '^alpharen_mail_queued_messages ' "$STATE/metrics.txt"; }
wait_for 60 all_up || { cat "$STATE/metrics.txt"; fail "services not all up in /metrics"; }
promtool check metrics <"$STATE/metrics.txt" >"$STATE/promtool.txt" 2>&1 \
  || { cat "$STATE/promtool.txt"; fail "promtool check metrics"; }
cp "$STATE/metrics.txt" "$STATE/promtool.txt" "$OUT/"
pass "promtool check metrics passes ($(wc -l <"$STATE/metrics.txt") lines)"
for s in 'alpharen_service_up{service="web",kind="builtin"} 1.0' \
         'alpharen_service_up{service="mail",kind="builtin"} 1.0' \
         'alpharen_service_status_ok{service="mail"} 1.0' \
         'alpharen_mail_queued_messages 0.0'; do
  grep -qxF "$s" "$STATE/metrics.txt" || fail "missing line: $s"
done
for s in alpharen_service_restarts_total alpharen_service_cpu_seconds_total \
         alpharen_service_resident_memory_bytes alpharen_http_requests_total \
         alpharen_http_request_duration_seconds_bucket alpharen_vpn_running \
         alpharen_integrator_workers alpharen_net_link_up; do
  has "^$s[{ ]" "$STATE/metrics.txt" || fail "no $s series"
done
has '^alpharen_http_requests_total{route="metrics",status="401"} [1-9]' "$STATE/metrics.txt" \
  || fail "the refused scrapes are not counted"
awk '$1 ~ /^alpharen_service_resident_memory_bytes\{service="web"\}$/ && $2 > 1000000 { ok = 1 } END { exit !ok }' "$STATE/metrics.txt" \
  || fail "web's resident memory is not a plausible number"
pass "named series present, web RSS plausible, refused scrapes counted"

# --- a stopped service costs only its own series
MAILPID=$("$ALPHAREN" ctl --state-dir "$STATE" --json services | jq -er '.[] | select(.name=="mail") | .pid') || fail "no mail pid"
kill -STOP "$MAILPID"
on_exit "kill -CONT $MAILPID 2>/dev/null"
t0=$EPOCHREALTIME
req GET /metrics '' -H "authorization: Bearer $TOKEN"
kill -CONT "$MAILPID"
expect 200 "scrape with mail stopped"
awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { exit !(b - a < 8) }' || fail "scrape waited too long for the stopped service"
grep -qxF 'alpharen_service_status_ok{service="mail"} 0.0' <<<"$BODY" || fail "mail's status_ok is not 0: $BODY"
has '^alpharen_mail_' <<<"$BODY" && fail "mail series present while it did not answer"
has '^alpharen_vpn_running ' <<<"$BODY" || fail "other services' series lost"
pass "a service that does not answer only loses its own series"

# --- a real Prometheus
PROM_PORT=$(free_ports 1)
cat >"$STATE/prometheus.yml" <<EOF
global:
  scrape_interval: 2s
  scrape_timeout: 2s
scrape_configs:
  - job_name: alpharen
    scheme: https
    metrics_path: /metrics
    tls_config:
      insecure_skip_verify: true
    authorization:
      type: Bearer
      credentials_file: $STATE/token
    static_configs:
      - targets: ['127.0.0.1:$HTTPS_PORT']
EOF
promtool check config "$STATE/prometheus.yml" >/dev/null || fail "promtool check config"
prometheus --config.file="$STATE/prometheus.yml" --storage.tsdb.path="$STATE/prom" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$STATE/prometheus.log" 2>&1 &
PROM=$!
on_exit "kill $PROM 2>/dev/null; wait $PROM 2>/dev/null"
PAPI=http://127.0.0.1:$PROM_PORT/api/v1
# q QUERY: the query's result vector, in $STATE/q.json.
q() { curl -sf --get --data-urlencode "query=$1" "$PAPI/query" >"$STATE/q.json"; }
prom_up() { q 'up{job="alpharen"}' && jq -e '.data.result[0].value[1] == "1"' "$STATE/q.json"; }
wait_for 60 prom_up || { cat "$STATE/q.json"; tail -20 "$STATE/prometheus.log"; curl -s "$PAPI/targets" | head -c 2000; fail "prometheus: up is not 1"; }
pass "prometheus scrapes the node: up == 1"
q 'alpharen_service_up{service="web"}' && jq -e '.data.result | length == 1 and .[0].value[1] == "1"' "$STATE/q.json" >/dev/null \
  || fail "alpharen_service_up{service=web} in prometheus: $(cat "$STATE/q.json")"
q 'count(alpharen_service_up == 1)' && jq -e '(.data.result[0].value[1] | tonumber) >= 8' "$STATE/q.json" >/dev/null \
  || fail "fewer than 8 services up in prometheus: $(cat "$STATE/q.json")"
q 'alpharen_http_requests_total{route="metrics",status="200"}' && jq -e '(.data.result[0].value[1] | tonumber) >= 1' "$STATE/q.json" >/dev/null \
  || fail "request counts in prometheus: $(cat "$STATE/q.json")"
q 'histogram_quantile(0.9, sum by (le) (alpharen_http_request_duration_seconds_bucket{route="metrics"}))' \
  && jq -e '.data.result | length == 1' "$STATE/q.json" >/dev/null || fail "latency histogram in prometheus: $(cat "$STATE/q.json")"
q 'alpharen_service_cpu_seconds_total{service="web"}' && jq -e '(.data.result[0].value[1] | tonumber) > 0' "$STATE/q.json" >/dev/null \
  || fail "web CPU seconds in prometheus: $(cat "$STATE/q.json")"
pass "prometheus has alpharen_service_up, request counts, the latency histogram and CPU seconds"
