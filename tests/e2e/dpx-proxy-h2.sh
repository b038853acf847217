#!/usr/bin/env bash
# HTTP/2 to `[[dpx.routes]]` backends, against nginx as the backend (its
# access log shows the protocol each request came in with and the
# connection it came on):
#  - an https:// backend with `http2` on its listener gets HTTP/2 by ALPN,
#    over at most one connection per HTTPS worker (web.workers = 3 here);
#  - an http:// backend with `http2 = "h2c"` gets HTTP/2 with prior knowledge;
#  - `http2 = "h2c"` to an HTTP/1.1-only listener, and an https:// backend
#    without HTTP/2, fall back to HTTP/1.1 with every request answered;
#  - `http2 = "off"` keeps an HTTP/2 backend on HTTP/1.1;
#  - bodies go through (a 4 MB one the backend answers early too), and the
#    backend sees the route's host and X-Forwarded-*.
. "$(dirname "$0")/../lib.sh"
needs nginx openssl curl
STATE=$(mktemp -d /tmp/dpx-proxy-h2.XXXXXX); on_exit "rm -rf $STATE"
chmod 711 "$STATE"
read -r TLS2 H2C H1 TLS1 < <(free_ports 4)

ssl() { openssl "$@" >>"$STATE/openssl.log" 2>&1 || { cat "$STATE/openssl.log"; fail "openssl $1"; }; }
ssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout "$STATE/ca.key" -out "$STATE/ca.pem" -subj /CN=h2-test-ca \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
ssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$STATE/tls.key" -out "$STATE/tls.csr" -subj /CN=backend.internal
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$STATE/tls.ext"
ssl x509 -req -in "$STATE/tls.csr" -CA "$STATE/ca.pem" -CAkey "$STATE/ca.key" -CAcreateserial \
  -days 2 -extfile "$STATE/tls.ext" -out "$STATE/tls.pem"

NG=$STATE/nginx; mkdir -p "$NG/logs"
cat >"$NG/nginx.conf" <<NGINX
worker_processes 1;
pid $NG/nginx.pid;
error_log $NG/logs/error.log;
events { worker_connections 1024; }
http {
  log_format proto '\$server_port \$server_protocol \$connection \$host \$http_x_forwarded_host \$http_x_forwarded_proto \$request_method \$request_length';
  access_log $NG/logs/access.log proto;
  client_max_body_size 8m; client_body_temp_path $NG; proxy_temp_path $NG; fastcgi_temp_path $NG; uwsgi_temp_path $NG; scgi_temp_path $NG;
  ssl_certificate $STATE/tls.pem;
  ssl_certificate_key $STATE/tls.key;
  server { listen 127.0.0.1:$TLS2 ssl http2; location / { default_type text/plain; return 200 'via \$server_protocol'; } }
  server { listen 127.0.0.1:$H2C http2;      location / { default_type text/plain; return 200 'via \$server_protocol'; } }
  server { listen 127.0.0.1:$H1;             location / { default_type text/plain; return 200 'via \$server_protocol'; } }
  server { listen 127.0.0.1:$TLS1 ssl;       location / { default_type text/plain; return 200 'via \$server_protocol'; } }
}
NGINX
nginx -p "$NG" -c "$NG/nginx.conf" -g 'daemon off;' &
NGPID=$!; on_exit "kill $NGPID 2>/dev/null; wait $NGPID 2>/dev/null"
wait_for 10 curl -sf --cacert "$STATE/ca.pem" "https://127.0.0.1:$TLS2/" || { cat "$NG/logs/error.log"; fail "nginx backend did not come up"; }
curl -sf --http2-prior-knowledge "http://127.0.0.1:$H2C/" | has 'via HTTP/2.0' || fail "nginx h2c listener does not speak HTTP/2"

cat >"$STATE/seed.toml" <<TOML
[web]
workers = 3
[[dpx.routes]]
host = "tls2.h2.test"
backend = "https://127.0.0.1:$TLS2"
ca_file = "$STATE/ca.pem"
[[dpx.routes]]
host = "h2c.h2.test"
backend = "http://127.0.0.1:$H2C"
http2 = "h2c"
[[dpx.routes]]
host = "refused.h2.test"
backend = "http://127.0.0.1:$H1"
http2 = "h2c"
[[dpx.routes]]
host = "tls1.h2.test"
backend = "https://127.0.0.1:$TLS1"
ca_file = "$STATE/ca.pem"
[[dpx.routes]]
host = "off.h2.test"
backend = "https://127.0.0.1:$TLS2"
ca_file = "$STATE/ca.pem"
http2 = "off"
TOML
seed_ports "$STATE/seed.toml"
start_node "$STATE/node" --config "$STATE/seed.toml"
wait_for 20 curl -sfk "https://127.0.0.1:$HTTPS_PORT/api/v1/health" || fail "web not up"

# The web service runs the configured number of HTTPS workers.
web_pid=$("$ALPHAREN" ctl --state-dir "$STATE/node" --json services | python3 -c "import json,sys; print(next(s['pid'] for s in json.load(sys.stdin) if s['name']=='web'))")
[ "$(cat /proc/"$web_pid"/task/*/comm | grep -c '^web-[0-9]')" = 3 ] || fail "web.workers = 3 did not give 3 HTTPS workers: $(cat /proc/"$web_pid"/task/*/comm | tr '\n' ' ')"
pass "web.workers = 3 runs 3 HTTPS workers"

# burst HOST: 60 requests (4 GETs and a POST with a body each) from 12
# parallel clients, each answered 200. Each request prints its status,
# curl's exit code and error message (000 = no HTTP answer at all), and
# a failed burst shows the web service's log.
burst() {
  local host=$1 i p pids=()
  for i in $(seq 1 12); do
    for p in a b c d e; do
      curl -sSk --max-time 30 --resolve "$host:$HTTPS_PORT:127.0.0.1" -o /dev/null \
        -w "%{http_code} exit=%{exitcode} $p?i=$i %{errormsg}\n" \
        $([ "$p" = e ] && echo -d "body-$i-0123456789") "https://$host:$HTTPS_PORT/$p?i=$i"
    done >"$STATE/burst-$host-$i" 2>&1 &
    pids+=($!)
  done
  wait "${pids[@]}"
  [ "$(cat "$STATE/burst-$host"-* | grep -c '^200 exit=0 ')" = 60 ] || {
    cat "$STATE/burst-$host"-*
    "$ALPHAREN" ctl --state-dir "$STATE/node" logs web 2>&1 | tail -40
    fail "$host: not every request answered 200"
  }
}
# seen PORT HOST: "PROTOCOL COUNT" for each protocol of the requests the
# backend logged on PORT for HOST (not this script's own checks).
seen() { awk -v p="$1" -v h="$2" '$1 == p && $4 == h {n[$2]++} END {for (k in n) print k, n[k]}' "$NG/logs/access.log" | sort; }
conns() { awk -v p="$1" -v h="$2" '$1 == p && $4 == h {print $3}' "$NG/logs/access.log" | sort -u | wc -l; }
body() { curl -sk --max-time 30 --resolve "$1:$HTTPS_PORT:127.0.0.1" "https://$1:$HTTPS_PORT/"; }

[ "$(body tls2.h2.test)" = 'via HTTP/2.0' ] || fail "https backend with http2 not reached over HTTP/2"
[ "$(body h2c.h2.test)" = 'via HTTP/2.0' ] || fail "h2c backend not reached over HTTP/2"
[ "$(body refused.h2.test)" = 'via HTTP/1.1' ] || fail "h2c route to an HTTP/1.1 backend not served over HTTP/1.1"
[ "$(body tls1.h2.test)" = 'via HTTP/1.1' ] || fail "https backend without http2 not served over HTTP/1.1"
[ "$(body off.h2.test)" = 'via HTTP/1.1' ] || fail "http2 = \"off\" still used HTTP/2"
for h in tls2 h2c refused tls1 off; do burst "$h.h2.test"; done

# A backend that answers before reading the whole body (nginx's `return`
# does, and resets its HTTP/2 stream) still gets the client its answer:
# the proxy takes the rest of the upload before answering.
head -c 4000000 /dev/zero >"$STATE/big"
for h in tls2 h2c refused tls1 off; do
  r=$(curl -sSk --max-time 30 --resolve "$h.h2.test:$HTTPS_PORT:127.0.0.1" -o /dev/null \
    -w '%{http_code} exit=%{exitcode} %{errormsg}' --data-binary @"$STATE/big" "https://$h.h2.test:$HTTPS_PORT/big" 2>&1) \
    || fail "$h: a 4 MB POST answered early by the backend: $r"
  [ "$r" = "200 exit=0 " ] || fail "$h: a 4 MB POST answered early by the backend: $r"
done
pass "a 4 MB POST the backend answers before reading it gets its 200 over every route"
sleep 1   # nginx writes its log lines as requests end

[ "$(seen "$TLS2" tls2.h2.test)" = "HTTP/2.0 62" ] || { seen "$TLS2" tls2.h2.test; fail "tls2: want 62 HTTP/2.0 requests"; }
n=$(conns "$TLS2" tls2.h2.test)
[ "$n" -ge 1 ] && [ "$n" -le 3 ] || fail "tls2: $n HTTP/2 connections for 62 requests, want one per worker at most (3)"
awk -v p="$TLS2" '$1 == p && $4 == "tls2.h2.test"' "$NG/logs/access.log" | has -v ' tls2.h2.test tls2.h2.test https ' \
  && { cat "$NG/logs/access.log"; fail "tls2: the backend did not see the route's host (:authority) and X-Forwarded-Host/-Proto"; }
awk -v p="$TLS2" '$1 == p && $4 == "tls2.h2.test" && $2 == "HTTP/2.0" && $7 == "POST"' "$NG/logs/access.log" | has . || fail "tls2: no POST over HTTP/2"
pass "https backend: HTTP/2 by ALPN, 62 requests (GET and POST) over $n connection(s) for 3 workers, host and X-Forwarded-* kept"

[ "$(seen "$H2C" h2c.h2.test)" = "HTTP/2.0 62" ] || { seen "$H2C" h2c.h2.test; fail "h2c: want 62 HTTP/2.0 requests"; }
n=$(conns "$H2C" h2c.h2.test)
[ "$n" -le 3 ] || fail "h2c: $n connections, want at most 3"
pass "http backend with http2 = \"h2c\": HTTP/2 with prior knowledge over $n connection(s)"

[ "$(seen "$H1" refused.h2.test)" = "HTTP/1.1 62" ] || { seen "$H1" refused.h2.test; fail "refused: want 62 HTTP/1.1 requests"; }
"$ALPHAREN" ctl --state-dir "$STATE/node" logs web 2>&1 | has 'does not speak HTTP/2' || fail "the fallback to HTTP/1.1 is not logged"
[ "$(seen "$TLS1" tls1.h2.test)" = "HTTP/1.1 62" ] || { seen "$TLS1" tls1.h2.test; fail "tls1: want 62 HTTP/1.1 requests"; }
pass "backends without HTTP/2 (h2c refused, no h2 in ALPN) are served over HTTP/1.1, every request answered"

[ "$(seen "$TLS2" off.h2.test)" = "HTTP/1.1 62" ] || { seen "$TLS2" off.h2.test; fail "off: want 62 HTTP/1.1 requests on the h2 TLS listener"; }
pass "http2 = \"off\" keeps an HTTP/2-capable backend on HTTP/1.1"
