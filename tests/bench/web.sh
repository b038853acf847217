#!/usr/bin/env bash
# Web and ssh benchmark, side by side in one run:
#  - wrk GET /api/v1/health over HTTPS keep-alive: alpharen web vs nginx
#    (Debian) serving the same body with the same certificate -> ratio
#  - idle RSS of the web and ssh service processes
#  - console first-load bytes (HTML + JS + CSS + icon)
# Not pass/fail. Tunables: DURATION (s), CONNS, THREADS.
. "$(dirname "$0")/../lib.sh"
command -v wrk >/dev/null && command -v nginx >/dev/null || fail "needs wrk and nginx (scripts/deps.sh)"
DURATION=${DURATION:-10} CONNS=${CONNS:-32} THREADS=${THREADS:-2}
STATE=$(mktemp -d /tmp/alpharen-bench.XXXXXX)
on_exit "rm -rf $STATE"
start_node "$STATE"
BASE=https://127.0.0.1:8443
wait_for 20 curl -skf "$BASE/api/v1/health" || fail "web did not come up"
wait_for 20 bash -c "exec 3<>/dev/tcp/127.0.0.1/2222" || fail "ssh did not come up"

# nginx with the node's own certificate and the same body.
NG=$STATE/nginx; mkdir -p "$NG/logs"
cat >"$NG/nginx.conf" <<NGINX
worker_processes 2;
pid $NG/nginx.pid;
error_log $NG/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $NG; proxy_temp_path $NG; fastcgi_temp_path $NG; uwsgi_temp_path $NG; scgi_temp_path $NG;
  server {
    listen 127.0.0.1:9443 ssl http2;
    ssl_certificate $STATE/tls/cert.pem;
    ssl_certificate_key $STATE/tls/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    keepalive_requests 100000;
    location = /api/v1/health { default_type application/json; return 200 '{"status":"ok"}'; }
  }
}
NGINX
nginx -p "$NG" -c "$NG/nginx.conf" -g 'daemon off;' &
NGPID=$!
on_exit "kill $NGPID 2>/dev/null; wait $NGPID 2>/dev/null"
wait_for 10 curl -skf https://127.0.0.1:9443/api/v1/health || fail "nginx did not come up"
[ "$(curl -sk $BASE/api/v1/health)" = "$(curl -sk https://127.0.0.1:9443/api/v1/health)" ] || fail "bodies differ"

rps() { # rps URL -> requests/s
  timeout $((DURATION + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency "$1" >"$STATE/wrk.out" 2>&1 || true
  awk '/Requests\/sec/ {print $2}' "$STATE/wrk.out"
  grep -E '^\s+99%' "$STATE/wrk.out" | awk '{print "p99=" $2}' >&2
}
echo "wrk -t$THREADS -c$CONNS -d${DURATION}s GET /api/v1/health over HTTPS keep-alive"
curl -sk -o /dev/null "$BASE/api/v1/health"   # warm up
WEB=$(rps "$BASE/api/v1/health")
NGINX=$(rps https://127.0.0.1:9443/api/v1/health)
WEB2=$(rps "$BASE/api/v1/health")
echo "alpharen web: ${WEB} req/s (second run ${WEB2})"
echo "nginx:        ${NGINX} req/s"
awk -v a="$WEB" -v b="$WEB2" -v n="$NGINX" 'BEGIN { m = (a > b ? a : b); if (n > 0) printf "ratio web/nginx: %.2f\n", m / n }'

pid_of() { "$ALPHAREN" ctl --state-dir "$STATE" --json services | python3 -c "import json,sys; print(next(s['pid'] for s in json.load(sys.stdin) if s['name']=='$1'))"; }
rss() { awk '/VmRSS/ {print $2 " kB"}' "/proc/$1/status"; }
sleep 2
echo "idle RSS web (after load): $(rss "$(pid_of web)")"
echo "idle RSS ssh:              $(rss "$(pid_of ssh)")"
echo "nginx RSS (master+workers): $(ps -o rss= --ppid $NGPID | awk -v m="$(ps -o rss= -p $NGPID)" '{s+=$1} END {print s+m " kB"}')"

total=0
for p in / /assets/app.js /assets/style.css /assets/icon.svg; do
  n=$(curl -sk -o /dev/null -w '%{size_download}' "$BASE$p"); total=$((total + n))
done
echo "console first load: $total bytes (uncompressed, 4 requests)"
