#!/usr/bin/env bash
# SQLAlchemy's ORM on outgoing SQL against Debian's PostgreSQL 15: before a
# real SQLAlchemy is uploaded a session is the SDK's text-SQL one; with the
# SQLAlchemy 2.0 wheels uploaded (scripts/deps.sh downloads them), a
# project zip (tests/e2e/integrator-orm/hotel: a models package with a
# declarative Base and a Room model, services written as genesisng's)
# gets a real sqlalchemy.orm.Session from self.outgoing.sql.get(NAME):
# session.query(Model).filter(...).all()/one_or_none()/count(), add and
# commit, an IntegrityError caught and rolled back (nothing of the
# transaction kept), plain SQL strings and text() on the same session;
# enum, float, numeric, jsonb, uuid and timestamps round trip. The
# connection's password comes from the node's secret store, not the module.
. "$(dirname "$0")/../lib.sh"
HERE=$(cd "$(dirname "$0")/integrator-orm" && pwd)
WHEELS=/var/cache/alpharen-test-wheels
for tool in curl jq /usr/bin/python3; do command -v $tool >/dev/null || fail "needs $tool (scripts/deps.sh)"; done
ls $WHEELS/sqlalchemy-*.whl $WHEELS/greenlet-*.whl $WHEELS/typing_extensions-*.whl >/dev/null 2>&1 \
  || fail "no SQLAlchemy test wheels in $WHEELS: run scripts/deps.sh"
STATE=$(mktemp -d "$OUT/integrator-orm.XXXXXX")
on_exit "rm -rf $STATE"
export ALPHAREN STATE; export -f ctl
PGPW="pw-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
read -r PGPORT < <(free_ports 1)

pg_cluster "$PGPORT" "$PGPW"
pg_cluster_sql -c "CREATE TYPE room_kind AS ENUM ('single', 'double', 'suite')" -c "CREATE TABLE room (
  id serial PRIMARY KEY, floor_no integer NOT NULL, room_no integer NOT NULL, name varchar(100),
  kind room_kind NOT NULL, supplement double precision NOT NULL, price numeric(10,2) NOT NULL,
  extras jsonb NOT NULL, uuid uuid NOT NULL DEFAULT gen_random_uuid(), created timestamp DEFAULT now(),
  deleted timestamp, CONSTRAINT uq_room_floor_no_room_no UNIQUE (floor_no, room_no))" >/dev/null || fail "create table"

cat >"$STATE/seed.toml" <<TOML
[integrator]
tls = "off"
workers = 2
timeout = 10
[[integrator.outgoing_sql]]
name = "hotel"
host = "127.0.0.1"
port = $PGPORT
database = "postgres"
user = "postgres"
password = "$PGPW"
pool_size = 4
[integrator.user_config.hotel.database]
connection = "hotel"
[[integrator.channels]]
name = "room-get"
url_path = "/rooms/{id}"
service = "rooms.get"
methods = ["GET"]
[[integrator.channels]]
name = "room-list"
url_path = "/rooms"
service = "rooms.list"
methods = ["GET"]
[[integrator.channels]]
name = "room-create"
url_path = "/rooms"
service = "rooms.create"
methods = ["POST"]
[[integrator.channels]]
name = "room-swap"
url_path = "/swap"
service = "rooms.swap"
[[integrator.channels]]
name = "room-stats"
url_path = "/stats"
service = "rooms.stats"
TOML
start_integrator "$STATE/seed.toml"
# req METHOD PATH [CURL ARGS...]: sets CODE and BODY.
req() {
  local m=$1 p=$2; shift 2
  CODE=$(curl -sS -o "$STATE/body" -w '%{http_code}' -X "$m" "$LB$p" "$@") || CODE=000
  BODY=$(cat "$STATE/body")
}
post() { req POST "$1" -H 'content-type: application/json' -d "$2"; }

# --- without SQLAlchemy: the SDK's text-SQL session --------------------------
ctl integrator deploy "$HERE/kind.py" >"$STATE/out" 2>&1 || { cat "$STATE/out"; fail "deploy of kind.py"; }
out=$(ctl --json integrator invoke orm.session-kind) || fail "invoke: $out"
jq -e '.status == 200 and .body.session == "alpharen.sql.Session" and .body.one == 1' <<<"$out" >/dev/null \
  || fail "without SQLAlchemy: $out"
(cd "$HERE/hotel" && /usr/bin/python3 -m zipfile -c "$STATE/hotel.zip" rooms.py models) || fail "zip"
out=$(ctl integrator deploy "$STATE/hotel.zip" 2>&1) && fail "the ORM project deployed without SQLAlchemy: $out"
has -F '`from sqlalchemy.orm import declarative_base`: only the SDK' <<<"$out" && has -F "upload SQLAlchemy's wheel" <<<"$out" \
  || fail "the refusal does not name the import and the wheel to upload: $out"
pass "without SQLAlchemy uploaded a session is the SDK's text-SQL one; a project importing sqlalchemy.orm is refused naming it"

# --- SQLAlchemy 2.0 uploaded: a real ORM Session -----------------------------
ctl integrator packages add $WHEELS/typing_extensions-*.whl $WHEELS/greenlet-*.whl $WHEELS/sqlalchemy-*.whl >"$STATE/out" 2>&1 \
  || { cat "$STATE/out"; fail "packages add"; }
ctl integrator deploy "$STATE/hotel.zip" >"$STATE/out" 2>&1 || { cat "$STATE/out"; fail "deploy of the ORM project"; }
wait_for 20 bash -o pipefail -c "ctl --json integrator invoke orm.session-kind | jq -e '.body.session == \"alpharen.sqlorm.Session\" and .body.one == 1' >/dev/null" \
  || fail "with SQLAlchemy: $(ctl --json integrator invoke orm.session-kind)"
wait_for 20 bash -c "curl -s -o /dev/null -w '%{http_code}' '$LB/stats' | has -x 200" || fail "stats: $(curl -s "$LB/stats")"
post /rooms '{"floor_no": 1, "room_no": 1, "supplement": 10.5, "name": "Sea view", "kind": "suite", "price": "99.90", "extras": {"tv": true, "beds": [1, 2]}}'
[ "$CODE" = 201 ] || fail "create: HTTP $CODE $BODY"
jq -e '(.id | type) == "number" and .number == "101" and .kind == "suite" and .price == "99.90" and .supplement == 10.5
  and .extras == {"tv": true, "beds": [1, 2]} and (.uuid | test("^[0-9a-f-]{36}$"))
  and .types == {"price": "Decimal", "uuid": "UUID", "kind": "RoomKind", "created": "datetime"}' <<<"$BODY" >/dev/null \
  || fail "create answer: $BODY"
A=$(jq -r .id <<<"$BODY")
post /rooms '{"floor_no": 1, "room_no": 2, "supplement": 0, "name": "Garden"}'
[ "$CODE" = 201 ] || fail "create 2: HTTP $CODE $BODY"
B=$(jq -r .id <<<"$BODY")
post /rooms '{"floor_no": 2, "room_no": 1, "supplement": 5, "name": "Sea breeze"}'
[ "$CODE" = 201 ] || fail "create 3: HTTP $CODE $BODY"
req GET "/rooms/$A"
[ "$CODE" = 200 ] && jq -e --argjson a "$A" '.id == $a and .name == "Sea view"' <<<"$BODY" >/dev/null || fail "get: HTTP $CODE $BODY"
req GET /rooms/999999
[ "$CODE" = 404 ] || fail "get of a missing room: HTTP $CODE $BODY"
req GET '/rooms?floor=1&name=Sea%25'
[ "$CODE" = 200 ] && jq -e 'map(.number) == ["101", "201"]' <<<"$BODY" >/dev/null || fail "list with filters: HTTP $CODE $BODY"
req GET '/rooms?floor=2'
jq -e 'map(.name) == ["Sea breeze"]' <<<"$BODY" >/dev/null || fail "list floor 2: $BODY"
[ "$(pg_cluster_sql -c "SELECT kind || ' ' || price || ' ' || (extras->>'tv') FROM room WHERE id = $A")" = "suite 99.90 true" ] \
  || fail "the row in PostgreSQL: $(pg_cluster_sql -c "SELECT * FROM room WHERE id = $A")"
pass "SQLAlchemy uploaded: a project's declarative model; query().filter().all()/one_or_none(), add+commit; enum, float, numeric, jsonb, uuid, timestamp round trip"

post /rooms '{"floor_no": 1, "room_no": 1, "supplement": 0}'
[ "$CODE" = 409 ] && jq -e '.error == "IntegrityError" and .sqlstate == "23505"' <<<"$BODY" >/dev/null \
  || fail "duplicate room: HTTP $CODE $BODY"
post /swap "{\"a\": $A, \"b\": $B}"
[ "$CODE" = 409 ] && jq -e '.rolled_back and .sqlstate == "23505"' <<<"$BODY" >/dev/null || fail "swap: HTTP $CODE $BODY"
[ "$(pg_cluster_sql -c "SELECT name FROM room WHERE id = $A")" = "Sea view" ] \
  || fail "the flushed change of the rolled-back transaction stayed: $(pg_cluster_sql -c "SELECT name FROM room WHERE id = $A")"
req GET /stats
[ "$CODE" = 200 ] && jq -e '.count == 3 and .suites == 1 and .sea == 2 and .floor1 == 2 and .named == 2
  and .session == "alpharen.sqlorm.Session" and .is_orm' <<<"$BODY" >/dev/null || fail "stats: HTTP $CODE $BODY"
[ "$(pg_cluster_sql -c "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'")" = 0 ] \
  || fail "a connection was left inside a transaction: $(pg_cluster_sql -c "SELECT query FROM pg_stat_activity WHERE state LIKE 'idle in%'")"
pass "IntegrityError caught as sqlalchemy.exc.IntegrityError and rolled back (a flushed change not kept); count(), text(), plain SQL on the ORM session; no connection left in a transaction"

for f in "$HERE/hotel/rooms.py" "$HERE"/hotel/models/*.py "$HERE/kind.py"; do has -F "$PGPW" "$f" && fail "the password is in $f"; done
ctl config export | has -F "$PGPW" && fail "the password is in a revision"
ctl logs integrator -n 2000 | has -F "$PGPW" && fail "the password is in the integrator's log"
pass "the connection's password is in neither the modules, the revisions nor the log"
