#!/usr/bin/env bash
# Outgoing SQL and e-mail of the integrator against real servers: Debian's
# PostgreSQL 15 (a cluster of its own on a free port, password auth) and an
# aiosmtpd smarthost behind the node's mail service. A Zato-style service
# (tests/e2e/integrator-sql/crm.py) inserts and selects through the named
# connection "crm" over REST channels; a SQL injection attempt through a
# parameter stays a parameter; PostgreSQL stopped and started under load:
# calls fail naming the connection, then succeed again without a restart
# of the integrator; the password never shows in revisions, logs or
# answers; TLS verify-full (with a CA file) and require. Mail: a service's message reaches the smarthost through ARMAIL,
# and one sent while the smarthost is down arrives when it is back.
. "$(dirname "$0")/../lib.sh"
HERE=$(cd "$(dirname "$0")/integrator-sql" && pwd)
SYSPY=/usr/bin/python3
$SYSPY -c 'import aiosmtpd' 2>/dev/null || fail "python3-aiosmtpd missing (scripts/deps.sh)"
for tool in curl jq; do command -v $tool >/dev/null || fail "needs $tool (scripts/deps.sh)"; done
STATE=$(mktemp -d "$OUT/integrator-sql.XXXXXX")
on_exit "rm -rf $STATE"
export ALPHAREN STATE; export -f ctl
PGPW="pw-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
read -r PGPORT SINKPORT < <(free_ports 2)

# --- PostgreSQL: its own cluster, as postgres when we are root ---------------
pg_cluster "$PGPORT" "$PGPW"
pg_cluster_sql -c "CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, balance numeric(12,2) DEFAULT 0,
  tags text[] DEFAULT '{}', meta jsonb DEFAULT '{}', photo bytea DEFAULT '', active boolean DEFAULT true,
  created_at timestamptz DEFAULT now(), ref uuid DEFAULT '6f1c2a9e-0b3d-4e5f-8a7b-1c2d3e4f5a6b')" >/dev/null \
  || fail "create table"

# TLS on the same server: a CA of the test's and a certificate for 127.0.0.1.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$STATE/ca.key" -out "$STATE/ca.pem" \
  -days 2 -subj /CN=integrator-sql-ca 2>/dev/null || fail "openssl: CA"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$STATE/pg.key" -out "$STATE/pg.csr" \
  -subj /CN=127.0.0.1 2>/dev/null || fail "openssl: server key"
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$STATE/pg.ext"
openssl x509 -req -in "$STATE/pg.csr" -CA "$STATE/ca.pem" -CAkey "$STATE/ca.key" -CAcreateserial -days 2 \
  -extfile "$STATE/pg.ext" -out "$STATE/pg.pem" 2>/dev/null || fail "openssl: server certificate"
chmod 644 "$STATE/ca.pem"
install -m 600 -o "$(stat -c %U "$PGDIR")" "$STATE/pg.pem" "$STATE/pg.key" "$PGDIR/"
pg_cluster_sql -c "ALTER SYSTEM SET ssl = on" -c "ALTER SYSTEM SET ssl_cert_file = '$PGDIR/pg.pem'" \
  -c "ALTER SYSTEM SET ssl_key_file = '$PGDIR/pg.key'" -c "SELECT pg_reload_conf()" >/dev/null || fail "ssl = on"

# --- the smarthost and the node ----------------------------------------------
start_sink() {
  $SYSPY "$ROOT/tests/e2e/smtp_sink.py" --port "$SINKPORT" --dir "$STATE/sink" >>"$STATE/sink.log" 2>&1 &
  SINK_PID=$!
  on_exit "kill $SINK_PID 2>/dev/null"
  wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$SINKPORT" || fail "smarthost did not start"
}
start_sink
cat >"$STATE/seed.toml" <<TOML
[node]
hostname = "n1"
[mail.relay]
mode = "smarthost"
host = "127.0.0.1"
port = $SINKPORT
tls = "none"
[integrator]
tls = "off"
workers = 2
timeout = 10
[[integrator.outgoing_sql]]
name = "crm"
host = "127.0.0.1"
port = $PGPORT
database = "postgres"
user = "postgres"
password = "$PGPW"
pool_size = 4
timeout = 5
[[integrator.outgoing_sql]]
name = "crm_verified"
host = "127.0.0.1"
port = $PGPORT
database = "postgres"
user = "postgres"
password = "$PGPW"
tls = "verify-full"
ca_file = "$STATE/ca.pem"
[[integrator.outgoing_sql]]
name = "crm_encrypted"
host = "127.0.0.1"
port = $PGPORT
database = "postgres"
user = "postgres"
password = "$PGPW"
tls = "require"
[[integrator.outgoing_sql]]
name = "crm_public_roots"
host = "127.0.0.1"
port = $PGPORT
database = "postgres"
user = "postgres"
password = "$PGPW"
tls = "verify-full"
[[integrator.outgoing_smtp]]
name = "alerts"
from = "alerts@n1.example"
[[integrator.channels]]
name = "customers"
url_path = "/customers"
service = "crm.customers"
[[integrator.channels]]
name = "count"
url_path = "/count"
service = "crm.count"
[[integrator.channels]]
name = "tls"
url_path = "/tls"
service = "crm.tls"
[[integrator.channels]]
name = "notify"
url_path = "/notify"
service = "crm.notify"
TOML
start_integrator "$STATE/seed.toml"
ctl integrator deploy "$HERE/crm.py" >"$STATE/deploy.out" 2>&1 || { cat "$STATE/deploy.out"; fail "deploy of crm.py refused"; }
# req METHOD PATH [CURL ARGS...]: sets CODE and BODY.
req() {
  local m=$1 p=$2; shift 2
  CODE=$(curl -sS -o "$STATE/body" -w '%{http_code}' -X "$m" "$LB$p" "$@") || CODE=000
  BODY=$(cat "$STATE/body")
}
post() { req POST /customers -H 'content-type: application/json' -d "$1"; }

# --- insert and select through the named connection ----------------------------
wait_for 20 bash -c "curl -s -o /dev/null -w '%{http_code}' '$LB/count' | has -x 200" || fail "the count channel does not answer: $(curl -s "$LB/count")"
post '{"name": "Ann", "balance": "12.50", "tags": ["a", "b"], "meta": {"tier": 2}, "photo": "jpeg"}'
[ "$CODE" = 201 ] || fail "insert: HTTP $CODE $BODY"
jq -e '(.id | type) == "number" and (.created_at | startswith("20"))' <<<"$BODY" >/dev/null || fail "insert answer: $BODY"
req GET '/customers?name=Ann'
[ "$CODE" = 200 ] || fail "select: HTTP $CODE $BODY"
jq -e 'length == 1 and .[0].balance == "12.50" and .[0].balance_type == "Decimal" and .[0].tags == ["a","b"]
  and .[0].meta == {"tier": 2} and .[0].photo == "jpeg" and .[0].active == true
  and .[0].created_at_type == "datetime" and .[0].ref_type == "UUID"' <<<"$BODY" >/dev/null || fail "select answer: $BODY"
req GET /count
jq -e '.count == 1' <<<"$BODY" >/dev/null || fail "count: $BODY"
req GET /count
jq -e '.count == 1' <<<"$BODY" >/dev/null || fail "an insert not committed was kept when its session closed: $BODY"
pass "a service inserts and selects through [[integrator.outgoing_sql]] crm (numeric, text[], jsonb, bytea, bool, timestamptz, uuid); closing without commit rolls back"

for c in crm_verified crm_encrypted; do
  req GET "/tls?conn=$c"
  [ "$CODE" = 200 ] && jq -e '.ssl == true' <<<"$BODY" >/dev/null || fail "$c: HTTP $CODE $BODY"
done
req GET /tls?conn=crm
jq -e '.ssl == false' <<<"$BODY" >/dev/null || fail "crm (tls disable): $BODY"
req GET /tls?conn=crm_public_roots
[ "$CODE" = 500 ] && has -i 'certificate' <<<"$BODY" || fail "verify-full without our CA: HTTP $CODE $BODY"
pass "tls: verify-full with ca_file and require connect encrypted; verify-full against the public roots refuses the test's CA"

# --- injection through a parameter stays a parameter ------------------------------
EVIL="x'); DROP TABLE customers; --"
post "$(jq -nc --arg n "$EVIL" '{name: $n}')"
[ "$CODE" = 201 ] || fail "insert of the injection attempt: HTTP $CODE $BODY"
req GET "/customers?name=$(jq -rn --arg n "$EVIL" '$n|@uri')"
jq -e --arg n "$EVIL" 'length == 1 and .[0].name == $n' <<<"$BODY" >/dev/null || fail "the injection attempt did not come back as data: $BODY"
req GET "/customers?name=$(jq -rn --arg n "' OR '1'='1" '$n|@uri')"
jq -e 'length == 0' <<<"$BODY" >/dev/null || fail "' OR '1'='1 matched rows: $BODY"
[ "$(pg_cluster_sql -c 'SELECT count(*) FROM customers')" = 2 ] || fail "the table lost rows"
pass "SQL injection attempts through parameters are stored and matched as plain values"

# --- PostgreSQL stopped and started under load -------------------------------------
IPID=$(ctl --json services | jq -r '.[] | select(.name=="integrator") | .pid')
: >"$STATE/codes"
(
  for _ in $(seq 1 3000); do
    [ -e "$STATE/load.stop" ] && break
    code=$(curl -sS -o "$STATE/load.body" -w '%{http_code}' "$LB/count" 2>/dev/null) || code=000
    echo "$code $(head -c 300 "$STATE/load.body" | tr '\n' ' ')" >>"$STATE/codes"
  done
) &
LOAD=$!
on_exit "kill $LOAD 2>/dev/null"
wait_for 10 bash -c "grep -c '^200' '$STATE/codes' | has -E '^([5-9]|[1-9][0-9]+)$'" || fail "no load: $(tail -3 "$STATE/codes")"
pg_cluster_ctl -m fast stop || fail "pg_ctl stop"
req GET /count
[ "$CODE" = 500 ] || fail "with PostgreSQL down: HTTP $CODE $BODY"
has 'OperationalError: outgoing SQL connection \\"crm\\"' <<<"$BODY" || fail "the error does not name the connection: $BODY"
sleep 1
pg_cluster_ctl start || { cat "$PGDIR/pg.log"; fail "postgres did not start again"; }
wait_for 20 bash -c "curl -s -o /dev/null -w '%{http_code}' '$LB/count' | has -x 200" || fail "calls did not recover after PostgreSQL came back: $(curl -s "$LB/count")"
n=$(wc -l <"$STATE/codes")
wait_for 20 bash -c "[ \$(wc -l <'$STATE/codes') -ge $((n + 10)) ]" || fail "the load stopped"
touch "$STATE/load.stop"; wait "$LOAD" 2>/dev/null
cut -d' ' -f1 "$STATE/codes" | sort | uniq -c >"$STATE/codes.sum"
grep -v '^200 ' "$STATE/codes" | grep -v '^500 .*outgoing SQL connection \\"crm\\"' | has . \
  && { head -5 "$STATE/codes.sum"; grep -v '^200 ' "$STATE/codes" | head -3; fail "answers other than 200 or the connection's error under load"; }
grep -q '^500 ' "$STATE/codes" || fail "no call of the load saw the outage: $(cat "$STATE/codes.sum")"
tail -10 "$STATE/codes" | cut -d' ' -f1 | grep -vx 200 | has . && fail "the last calls of the load failed: $(tail -3 "$STATE/codes")"
[ "$(ctl --json services | jq -r '.[] | select(.name=="integrator") | .pid')" = "$IPID" ] || fail "the integrator was restarted"
ctl --json integrator status | jq -e '.workers_replaced == 0' >/dev/null || fail "workers were replaced: $(ctl --json integrator status)"
pass "PostgreSQL stopped under load: calls fail naming the connection, then recover without a restart ($(tr -s ' \n' ' ' <"$STATE/codes.sum"))"

# --- the password is in no revision, log or answer ----------------------------------
ctl config set integrator.workers 3 >/dev/null || fail "ctl config set"
: >"$STATE/everything.txt"
for cmd in "config show" "--json config show" "config export" "config history" "--json config history" \
    "config diff 1 2" "--json integrator status" "integrator openapi" "logs integrator -n 5000" "logs -n 5000"; do
  # shellcheck disable=SC2086 # the words of the command
  ctl $cmd >>"$STATE/everything.txt" 2>&1 || fail "ctl $cmd: $(tail -3 "$STATE/everything.txt")"
done
cat "$STATE/console.log" >>"$STATE/everything.txt"
has 'secret:integrator.outgoing_sql.crm' "$STATE/everything.txt" || fail "the config does not refer to the stored secret"
has -F "$PGPW" "$STATE/everything.txt" && fail "the SQL password shows in a revision, log or answer"
grep -rlF "$PGPW" "$STATE" --exclude='alpharen.db*' --exclude=everything.txt --exclude=seed.toml | has . \
  && fail "the SQL password is in a file of the state directory: $(grep -rlF "$PGPW" "$STATE" --exclude='alpharen.db*' --exclude=everything.txt --exclude=seed.toml)"
pass "the SQL password lives in the secret store only (config refers to secret:integrator.outgoing_sql.crm)"

# --- mail through ARMAIL ---------------------------------------------------------------
sink_has() { grep -l "Subject: $1" "$STATE"/sink/*.eml 2>/dev/null | has .; }
req POST /notify -H 'content-type: application/json' -d '{"to": "ops@example.net", "bcc": "audit@example.net", "subject": "report-1"}'
[ "$CODE" = 200 ] || fail "notify: HTTP $CODE $BODY"
wait_for 20 sink_has report-1 || { ctl mail queue; fail "the message did not reach the smarthost"; }
M=$(grep -l 'Subject: report-1' "$STATE"/sink/*.eml)
has 'X-Sink-From: alerts@n1.example' "$M" || fail "envelope sender: $(head -3 "$M")"
has 'X-Sink-To: ops@example.net,audit@example.net' "$M" || fail "envelope recipients: $(head -3 "$M")"
has -i '^bcc:' "$M" && fail "the Bcc header was sent"
has 'filename="report.csv"' "$M" || fail "the attachment is missing"
pass "a service's message reaches the smarthost through ARMAIL (Bcc in the envelope only, attachment)"
kill "$SINK_PID"; wait "$SINK_PID" 2>/dev/null || [ $? = 143 ] || fail "the smarthost did not stop on SIGTERM"
req POST /notify -H 'content-type: application/json' -d '{"to": "ops@example.net", "subject": "report-2"}'
[ "$CODE" = 200 ] || fail "notify with the smarthost down: HTTP $CODE $BODY"
wait_for 10 bash -o pipefail -c "ctl --json mail queue | jq -e 'length == 1' >/dev/null" || fail "the message is not in the queue: $(ctl mail queue)"
start_sink
ctl mail flush >/dev/null || fail "ctl mail flush"
wait_for 20 sink_has report-2 || { ctl mail queue; fail "the queued message was not delivered when the smarthost came back"; }
pass "a message sent while the smarthost is down is delivered when it is back"
echo "integrator-sql: all passed"
