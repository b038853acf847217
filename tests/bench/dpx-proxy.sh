#!/usr/bin/env bash
# Reverse-proxy throughput of the web service's `[[dpx.routes]]` vs nginx
# proxying to the same backend, same run: wrk GET / with Host
# proxy.bench over HTTPS keep-alive, both fronts with the node's
# certificate, both keeping backend connections alive. The backend is a
# separate one-worker nginx returning a small static body. RUNS runs each,
# interleaved: medians, spread and the ratio of the medians. Not pass/fail,
# but a wrk error or failed command stops it.
# Both fronts run WORKERS workers (one per CPU by default).
#   RUNS=3 DURATION=10 CONNS=32 THREADS=2 WORKERS=2 tests/bench/dpx-proxy.sh
. "$(dirname "$0")/lib.sh"
command -v wrk >/dev/null && command -v nginx >/dev/null || fail "needs wrk and nginx (scripts/deps.sh)"
DURATION=${DURATION:-10} CONNS=${CONNS:-32} THREADS=${THREADS:-2}
# Both fronts run WORKERS workers (web.workers, nginx worker_processes).
WORKERS=${WORKERS:-$(nproc)}
[[ $WORKERS =~ ^[1-9][0-9]*$ ]] || fail "WORKERS must be a positive number, not '$WORKERS'"
W=$(mktemp -d /tmp/dpx-proxy-bench.XXXXXX); on_exit "rm -rf $W"
chmod 711 "$W"   # the services run as their own users and reach the node's state dir in it
read -r BP NP < <(free_ports 2)
nginx_conf() { # nginx_conf DIR WORKERS SERVER-BLOCK
  mkdir -p "$1/logs"
  cat >"$1/nginx.conf" <<NGINX
worker_processes $2;
pid $1/nginx.pid;
error_log $1/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $1; proxy_temp_path $1; fastcgi_temp_path $1; uwsgi_temp_path $1; scgi_temp_path $1;
  keepalive_requests 100000;
  $3
}
NGINX
  nginx -p "$1" -c "$1/nginx.conf" -g 'daemon off;' &
  on_exit "kill $! 2>/dev/null; wait $! 2>/dev/null"
}
nginx_conf "$W/backend" 1 "server { listen 127.0.0.1:$BP; location / { default_type text/plain; return 200 'hello from the backend'; } }"
wait_for 10 curl -sf "http://127.0.0.1:$BP/" || fail "backend nginx did not come up"

printf '[web]\nworkers = %s\n' "$WORKERS" >"$W/seed.toml"
seed_ports "$W/seed.toml"
cat >>"$W/seed.toml" <<TOML
[[dpx.routes]]
host = "proxy.bench"
backend = "http://127.0.0.1:$BP"
TOML
start_node "$W/node" --config "$W/seed.toml"
OURS=https://127.0.0.1:$HTTPS_PORT/
wait_for 20 curl -skf -H 'Host: proxy.bench' "$OURS" || fail "our proxy did not come up"

nginx_conf "$W/front" "$WORKERS" "upstream be { server 127.0.0.1:$BP; keepalive 64; }
  server {
    listen 127.0.0.1:$NP ssl;
    ssl_certificate $W/node/tls/cert.pem;
    ssl_certificate_key $W/node/tls/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://be;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto https;
      proxy_set_header X-Forwarded-Host \$host;
    }
  }"
THEIRS=https://127.0.0.1:$NP/
wait_for 10 curl -skf -H 'Host: proxy.bench' "$THEIRS" || fail "nginx front did not come up"
[ "$(curl -sk -H 'Host: proxy.bench' "$OURS")" = "$(curl -sk -H 'Host: proxy.bench' "$THEIRS")" ] || fail "bodies differ"

echo "wrk -t$THREADS -c$CONNS -d${DURATION}s GET / (Host: proxy.bench) over HTTPS keep-alive, $WORKERS workers each, $RUNS runs each; load average $(cut -d' ' -f1-3 /proc/loadavg)"
# CPU per request: our web service; nginx's front workers (not the
# backend, which both share).
ours_pids=$(service_pid "$W/node" web)
ng_pids=$(pgrep -P "$(cat "$W/front/nginx.pid")" | tr '\n' ' ')
[ -n "$ours_pids" ] && [ -n "$ng_pids" ] || fail "no web or nginx worker pids"
ours_rps=() ours_p99=() ours_cpu=() ng_rps=() ng_p99=() ng_cpu=()
for i in $(seq 1 "$RUNS"); do
  WRK_CPU_PIDS=$ours_pids wrk_run "$W/wrk-ours-$i.out" -t"$THREADS" -c"$CONNS" -d"${DURATION}s" -H 'Host: proxy.bench' "$OURS"
  ours_rps+=("$WRK_RPS"); ours_p99+=("$WRK_P99_MS"); ours_cpu+=("$WRK_CPU_US")
  WRK_CPU_PIDS=$ng_pids wrk_run "$W/wrk-nginx-$i.out" -t"$THREADS" -c"$CONNS" -d"${DURATION}s" -H 'Host: proxy.bench' "$THEIRS"
  ng_rps+=("$WRK_RPS"); ng_p99+=("$WRK_P99_MS"); ng_cpu+=("$WRK_CPU_US")
done
# Assigned first, so that a failed helper stops the bench (set -e).
a=$(stats "${ours_rps[@]}"); b=$(stats "${ours_p99[@]}"); c=$(stats "${ours_cpu[@]}")
echo "ours (web + dpx.routes): req/s $a; p99 ms $b; CPU µs/request $c"
a=$(stats "${ng_rps[@]}"); b=$(stats "${ng_p99[@]}"); c=$(stats "${ng_cpu[@]}")
echo "nginx proxy_pass:        req/s $a; p99 ms $b; CPU µs/request $c"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
a=$(ratio "$(median "${ours_rps[@]}")" "$(median "${ng_rps[@]}")"); b=$(ratio "$(median "${ours_p99[@]}")" "$(median "${ng_p99[@]}")")
c=$(ratio "$(median "${ours_cpu[@]}")" "$(median "${ng_cpu[@]}")")
echo "ratio ours/nginx (medians): req/s $a, p99 $b, CPU per request $c (lower is better for both)"
