#!/usr/bin/env bash
# Benchmark: one SQL round trip per HTTP request. Ours: a REST channel of
# the integrator whose service runs `SELECT ... WHERE id = :id` in a
# session of [[integrator.outgoing_sql]] (the statement goes through the
# worker pipe to the integrator's pool). Reference: a plain Python HTTP
# server (Debian's /usr/bin/python3, ThreadingHTTPServer) doing the same
# query with psycopg2 from a pool of the same size. Both begin a
# transaction and end it (the session's rollback at close; psycopg2's
# rollback), both answer the same JSON. Same PostgreSQL 15 cluster, same
# load: `wrk -t2 -c8 -d10s --latency`, then one client (`-t1 -c1`, the
# round trip alone), RUNS runs of each. Prints medians,
# spread and the ratios of the medians; a wrk error or failed command
# stops it; loopback only.
. "$(dirname "$0")/lib.sh"
SYSPY=/usr/bin/python3
DURATION=${BENCH_DURATION:-10s}
$SYSPY -c 'import psycopg2' 2>/dev/null || fail "python3-psycopg2 missing (scripts/deps.sh)"
command -v wrk >/dev/null || fail "wrk missing (scripts/deps.sh)"
STATE=$OUT/bench-integrator-sql
rm -rf "$STATE"; mkdir -p "$STATE"
export ALPHAREN STATE; export -f ctl
read -r PGPORT PYPORT < <(free_ports 2)

pg_cluster "$PGPORT" bench-pw
pg_cluster_sql -q -c \
  "CREATE TABLE customers (id int PRIMARY KEY, name text, balance numeric(12,2));
   INSERT INTO customers SELECT g, 'customer ' || g, g * 1.25 FROM generate_series(1, 1000) g" \
  || fail "create table"

cat >"$STATE/seed.toml" <<TOML
[node]
hostname = "bench"
[integrator]
tls = "off"
workers = 2
[[integrator.outgoing_sql]]
name = "crm"
host = "127.0.0.1"
port = $PGPORT
database = "postgres"
user = "postgres"
password = "bench-pw"
pool_size = 4
[[integrator.channels]]
name = "customer"
url_path = "/customer"
service = "bench.customer"
TOML
cat >"$STATE/bench.py" <<'PY'
from contextlib import closing

from sqlalchemy import text
from zato.server.service import Service


class Customer(Service):
    name = 'bench.customer'

    def handle(self):
        with closing(self.outgoing.sql.get('crm').session()) as session:
            row = session.execute(text('SELECT id, name, balance FROM customers WHERE id = :id'),
                                  {'id': int(self.request.http.GET.get('id', 1))}).first()
        self.response.payload = {'id': row.id, 'name': row.name, 'balance': str(row.balance)}
PY
start_integrator "$STATE/seed.toml"
ctl integrator deploy "$STATE/bench.py" >/dev/null || fail "deploy"
wait_for 20 curl -sf "$LB/customer?id=7" || fail "integrator does not answer: $(curl -s "$LB/customer?id=7")"
echo "integrator answers: $(curl -s "$LB/customer?id=7")"

cat >"$STATE/ref.py" <<'PY'
import json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from psycopg2.pool import ThreadedConnectionPool

# minconn = maxconn: psycopg2's pool closes a returned connection when it
# already keeps minconn idle ones, and a new connection per request would
# measure the login, not the query.
pool = ThreadedConnectionPool(4, 4, host='127.0.0.1', port=int(sys.argv[2]), dbname='postgres',
                              user='postgres', password='bench-pw')
# psycopg2's pool refuses when all its connections are out; wait instead,
# as the integrator's pool does.
free = threading.BoundedSemaphore(4)


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    # One write per answer, without Nagle: headers and body in one segment.
    wbufsize = 65536
    disable_nagle_algorithm = True

    def do_GET(self):
        cid = int(parse_qs(urlparse(self.path).query).get('id', ['1'])[0])
        with free:
            conn = pool.getconn()
            try:
                with conn.cursor() as cur:
                    cur.execute('SELECT id, name, balance FROM customers WHERE id = %(id)s', {'id': cid})
                    row = cur.fetchone()
                conn.rollback()
            finally:
                pool.putconn(conn)
        body = json.dumps({'id': row[0], 'name': row[1], 'balance': str(row[2])}).encode()
        self.send_response(200)
        self.send_header('content-type', 'application/json')
        self.send_header('content-length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    request_queue_size = 128


Server(('127.0.0.1', int(sys.argv[1])), Handler).serve_forever()
PY
$SYSPY "$STATE/ref.py" "$PYPORT" "$PGPORT" >"$STATE/ref.log" 2>&1 &
REF_PID=$!
on_exit "kill $REF_PID 2>/dev/null"
wait_for 20 curl -sf "http://127.0.0.1:$PYPORT/customer?id=7" || { cat "$STATE/ref.log"; fail "the psycopg2 server did not start"; }
echo "psycopg2 server answers: $(curl -s "http://127.0.0.1:$PYPORT/customer?id=7")"
[ "$(curl -s "$LB/customer?id=7")" = "$(curl -s "http://127.0.0.1:$PYPORT/customer?id=7")" ] || fail "the two answers differ"

wrk_runs ours -t2 -c8 -d"$DURATION" "$LB/customer?id=7"
wrk_runs ref -t2 -c8 -d"$DURATION" "http://127.0.0.1:$PYPORT/customer?id=7"
# One client: the round trip of one request alone (1 / req/s).
wrk_runs ours1 -t1 -c1 -d"$DURATION" "$LB/customer?id=7"
wrk_runs ref1 -t1 -c1 -d"$DURATION" "http://127.0.0.1:$PYPORT/customer?id=7"
echo "8 clients: integrator (service, outgoing_sql): $ours_line"
echo "8 clients: python3 + psycopg2:                 $ref_line"
echo "1 client:  integrator (service, outgoing_sql): $ours1_line"
echo "1 client:  python3 + psycopg2:                 $ref1_line"
echo "ratio req/s integrator/psycopg2: 8 clients $(ratio "$ours_rps" "$ref_rps")x, 1 client $(ratio "$ours1_rps" "$ref1_rps")x"
echo "ratio p99   integrator/psycopg2: 8 clients $(ratio "$ours_p99" "$ref_p99")x, 1 client $(ratio "$ours1_p99" "$ref1_p99")x (lower is better)"
