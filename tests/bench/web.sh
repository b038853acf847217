#!/usr/bin/env bash
# Web and ssh benchmark, side by side in one run:
#  - wrk GET /api/v1/health over HTTPS keep-alive: alpharen web vs nginx
#    (Debian) serving the same answer (body and security headers) with
#    the same certificate, RUNS runs
#    each, interleaved -> medians, spread and the ratio of the medians
#  - idle RSS of the web and ssh service processes
# Not pass/fail, but a wrk error or failed command stops it.
# Tunables: RUNS, DURATION (s), CONNS, THREADS, WORKERS (both sides; one per CPU).
. "$(dirname "$0")/lib.sh"
command -v wrk >/dev/null && command -v nginx >/dev/null || fail "needs wrk and nginx (scripts/deps.sh)"
DURATION=${DURATION:-10} CONNS=${CONNS:-32} THREADS=${THREADS:-2}
# Both fronts run WORKERS workers (web.workers, nginx worker_processes).
WORKERS=${WORKERS:-$(nproc)}
[[ $WORKERS =~ ^[1-9][0-9]*$ ]] || fail "WORKERS must be a positive number, not '$WORKERS'"
STATE=$(mktemp -d /tmp/alpharen-bench.XXXXXX)
on_exit "rm -rf $STATE"
printf '[web]\nworkers = %s\n' "$WORKERS" >"$STATE/seed.toml"
seed_ports "$STATE/seed.toml"
read -r NGINX_PORT < <(free_ports 1)
start_node "$STATE" --config "$STATE/seed.toml"
BASE=https://127.0.0.1:$HTTPS_PORT
wait_for 20 curl -skf "$BASE/api/v1/health" || fail "web did not come up"
wait_for 20 bash -c "exec 3<>/dev/tcp/127.0.0.1/$SSH_PORT" || fail "ssh did not come up"

# nginx with the node's own certificate and the same body.
NG=$STATE/nginx; mkdir -p "$NG/logs"
cat >"$NG/nginx.conf" <<NGINX
worker_processes $WORKERS;
pid $NG/nginx.pid;
error_log $NG/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $NG; proxy_temp_path $NG; fastcgi_temp_path $NG; uwsgi_temp_path $NG; scgi_temp_path $NG;
  server {
    listen 127.0.0.1:$NGINX_PORT ssl http2;
    ssl_certificate $STATE/tls/cert.pem;
    ssl_certificate_key $STATE/tls/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    keepalive_requests 100000;
    # The same answer as ours: body and the security headers every API
    # answer of the node carries (src/api/middleware.rs), checked below.
    location = /api/v1/health {
      default_type application/json;
      add_header X-Content-Type-Options nosniff always;
      add_header X-Frame-Options DENY always;
      add_header Referrer-Policy no-referrer always;
      add_header Strict-Transport-Security max-age=31536000 always;
      add_header Content-Security-Policy "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'" always;
      add_header Cache-Control no-store always;
      return 200 '{"status":"ok"}';
    }
  }
}
NGINX
nginx -p "$NG" -c "$NG/nginx.conf" -g 'daemon off;' &
NGPID=$!
on_exit "kill $NGPID 2>/dev/null; wait $NGPID 2>/dev/null"
NGINX_URL=https://127.0.0.1:$NGINX_PORT/api/v1/health
wait_for 10 curl -skf "$NGINX_URL" || fail "nginx did not come up"
[ "$(curl -sk "$BASE/api/v1/health")" = "$(curl -sk "$NGINX_URL")" ] || fail "bodies differ"
# Header lines (lower-case names) of ours that nginx's answer lacks; the
# date and nginx's own (server, connection) aside.
heads() { curl -sk -o /dev/null -D - "$1" | tr -d '\r' | sed -n 's/^\([^:]*\): /\L\1\E: /p' | grep -v '^date: ' | sort; }
missing=$(comm -23 <(heads "$BASE/api/v1/health") <(heads "$NGINX_URL"))
[ -z "$missing" ] || fail "nginx's answer lacks these headers of ours: $missing"

echo "wrk -t$THREADS -c$CONNS -d${DURATION}s GET /api/v1/health over HTTPS keep-alive, $WORKERS workers each, $RUNS runs each; load average $(cut -d' ' -f1-3 /proc/loadavg)"
curl -skf -o /dev/null "$BASE/api/v1/health" || fail "warm-up request"
# CPU per request: the web service; nginx's workers.
web_pids=$(service_pid "$STATE" web)
ng_pids=$(pgrep -P "$NGPID" | tr '\n' ' ')
[ -n "$web_pids" ] && [ -n "$ng_pids" ] || fail "no web or nginx worker pids"
web_rps=() web_p99=() web_cpu=() ng_rps=() ng_p99=() ng_cpu=()
for i in $(seq 1 "$RUNS"); do
  WRK_CPU_PIDS=$web_pids wrk_run "$STATE/wrk-web-$i.out" -t"$THREADS" -c"$CONNS" -d"${DURATION}s" "$BASE/api/v1/health"
  web_rps+=("$WRK_RPS"); web_p99+=("$WRK_P99_MS"); web_cpu+=("$WRK_CPU_US")
  WRK_CPU_PIDS=$ng_pids wrk_run "$STATE/wrk-nginx-$i.out" -t"$THREADS" -c"$CONNS" -d"${DURATION}s" "$NGINX_URL"
  ng_rps+=("$WRK_RPS"); ng_p99+=("$WRK_P99_MS"); ng_cpu+=("$WRK_CPU_US")
done
# Assigned first, so that a failed helper stops the bench (set -e).
a=$(stats "${web_rps[@]}"); b=$(stats "${web_p99[@]}"); c=$(stats "${web_cpu[@]}")
echo "alpharen web: req/s $a; p99 ms $b; CPU µs/request $c"
a=$(stats "${ng_rps[@]}"); b=$(stats "${ng_p99[@]}"); c=$(stats "${ng_cpu[@]}")
echo "nginx:        req/s $a; p99 ms $b; CPU µs/request $c"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
a=$(ratio "$(median "${web_rps[@]}")" "$(median "${ng_rps[@]}")"); b=$(ratio "$(median "${web_p99[@]}")" "$(median "${ng_p99[@]}")")
c=$(ratio "$(median "${web_cpu[@]}")" "$(median "${ng_cpu[@]}")")
echo "ratio web/nginx (medians): req/s $a, p99 $b, CPU per request $c (lower is better for both)"

rss() { awk '/VmRSS/ {print $2 " kB"}' "/proc/$1/status"; }
sleep 2
p=$(service_pid "$STATE" web); a=$(rss "$p"); echo "idle RSS web (after load): $a"
p=$(service_pid "$STATE" ssh); a=$(rss "$p"); echo "idle RSS ssh:              $a"
m=$(ps -o rss= -p "$NGPID"); a=$(ps -o rss= --ppid "$NGPID" | awk -v m="$m" '{s+=$1} END {print s+m " kB"}')
echo "nginx RSS (master+workers): $a"

