#!/usr/bin/env bash
# Zato compatibility end to end: service modules written as Zato users
# write them (tests/e2e/integrator-zato/) deploy unchanged and answer
# through REST channels as they would in Zato: per-verb handlers (405 for
# a verb without one), wsgi_environ and request.http, an abstract base
# that is not a service, bunch, log_input, named and default caches,
# SimpleIO types, names derived as Zato derives them and invoked by them;
# a deploy lists every problem of a module at once, Python 2 is named as
# such, and an unsupported call names the Zato API.
. "$(dirname "$0")/../lib.sh"
HERE=$(cd "$(dirname "$0")/integrator-zato" && pwd)
for tool in curl jq; do command -v $tool >/dev/null || fail "needs $tool (scripts/deps.sh)"; done
STATE=$(mktemp -d "$OUT/zato.XXXXXX")
on_exit "rm -rf $STATE"
export ALPHAREN STATE; export -f ctl
cat >"$STATE/seed.toml" <<'TOML'
[integrator]
tls = "off"
workers = 1
timeout = 10
[[integrator.channels]]
name = "users"
url_path = "/api/users"
service = "users-api.user-resource"
[[integrator.channels]]
name = "cors"
url_path = "/api/cors"
service = "users-api.configuring-cors"
[[integrator.channels]]
name = "orders"
url_path = "/api/orders"
service = "orders.create-order"
[[integrator.channels]]
name = "counter"
url_path = "/api/counter"
service = "kvdb-hash.counter"
TOML
start_integrator "$STATE/seed.toml"

# --- deploy unchanged; names as Zato derives them; the base is no service --
for f in users-api.py orders.py kvdb-hash.py; do
  ctl integrator deploy "$HERE/$f" >"$STATE/deploy.out" 2>&1 || { cat "$STATE/deploy.out"; fail "deploy of $f refused"; }
done
ctl --json integrator list >"$STATE/list.json"
jq -e '[.[] | .name] | sort == ["kvdb-hash.counter", "orders.create-order", "orders.get-price", "users-api.configuring-cors", "users-api.user-resource"]' "$STATE/list.json" >/dev/null \
  || fail "deployed names: $(jq -c '[.[] | .name]' "$STATE/list.json")"
pass "Zato modules deploy unchanged; names as Zato's (users-api.configuring-cors); the base class is not a service"

# req METHOD PATH [CURL ARGS...]: sets CODE and BODY.
req() {
  local m=$1 p=$2; shift 2
  CODE=$(curl -sS -o "$STATE/body" -D "$STATE/headers" -w '%{http_code}' -X "$m" "$LB$p" "$@") || CODE=000
  BODY=$(cat "$STATE/body")
}
wait_for 10 curl -sf -X OPTIONS "$LB/api/cors" || fail "channels do not answer"

# --- per-verb handlers, wsgi_environ, request.http, bunch, named cache ------
req POST /api/users -H 'content-type: application/json' -H 'x-client: e2e' -d '{"id": "7", "name": "Ann"}'
[ "$CODE" = 201 ] || fail "handle_POST: HTTP $CODE $BODY"
jq -e '.created == "7" and .agent == "e2e"' <<<"$BODY" >/dev/null || fail "handle_POST answer: $BODY"
req GET '/api/users?id=7'
[ "$CODE" = 200 ] || fail "handle_GET: HTTP $CODE $BODY"
jq -e '.name == "Ann" and .method == "GET" and .path == "/api/users" and .format == "json"' <<<"$BODY" >/dev/null || fail "handle_GET answer: $BODY"
req GET '/api/users?id=8'
[ "$CODE" = 404 ] || fail "unknown user: HTTP $CODE $BODY"
req DELETE '/api/users?id=7'
[ "$CODE" = 405 ] || fail "a verb without handle_VERB: HTTP $CODE, want 405 as in Zato"
req OPTIONS /api/cors -H 'origin: https://app.example'
[ "$CODE" = 200 ] || fail "handle_OPTIONS: HTTP $CODE $BODY"
has -i '^access-control-allow-origin: https://app.example' "$STATE/headers" || fail "CORS header from HTTP_ORIGIN: $(cat "$STATE/headers")"
wait_for 5 bash -c 'ctl logs integrator -n 1000 | has "service=users-api.user-resource level=INFO .*request.payload"' \
  || fail "log_input wrote nothing: $(ctl logs integrator -n 20)"
ctl logs integrator -n 1000 | has "response.status_code': 201" || fail "log_output wrote nothing"
pass "handle_GET/POST/OPTIONS by verb, 405 without one; wsgi_environ, request.http, bunchified(), a named cache, log_input"

# --- SimpleIO types, invoke by Zato's name with as_bunch, default cache -----
req POST '/api/orders?express=yes&tags=a,b' -H 'content-type: application/json' \
  -d '{"customer": "c1", "quantity": "4", "deliver_on": "2024-05-03", "placed_at": "2024-05-01T10:20:30+02:00", "extra": {"k": [1]}}'
[ "$CODE" = 200 ] || fail "SimpleIO service: HTTP $CODE $BODY"
jq -e '.quantity_plus_one == 5 and .weekday == 5 and .deliver_on == "2024-05-03" and .placed_hour == 10
  and .express == true and .tags == ["a", "b"] and .extra == {"k": [1]} and .is_gift == null
  and .total == 20 and .channel_is_http == true and .last_order == "c1"' <<<"$BODY" >/dev/null || fail "SimpleIO answer: $BODY"
req POST /api/orders -H 'content-type: application/json' -d '{"quantity": "many", "deliver_on": "2024-05-03"}'
[ "$CODE" = 400 ] || fail "bad SimpleIO input: HTTP $CODE $BODY"
jq -e '.error | contains("Missing required input element: customer") and contains("quantity (Int expected)")' <<<"$BODY" >/dev/null || fail "bad input answer: $BODY"
pass "SimpleIO Int/Date/DateTime/Bool/List/Opaque parsed as Zato does, every bad element named; invoke('orders.get-price', as_bunch=True)"

# --- an unsupported call names the Zato API --------------------------------
req GET /api/counter
[ "$CODE" = 500 ] || fail "unsupported kvdb call: HTTP $CODE $BODY"
jq -e '.error | contains("`self.kvdb.conn.hset` is not supported yet")' <<<"$BODY" >/dev/null || fail "unsupported call answer: $BODY"
pass "self.kvdb.conn.hset at run time: $(jq -r .error <<<"$BODY")"

# --- refused deploys: every problem at once; Python 2 named -----------------
if ctl integrator deploy "$HERE/needs-more.py" >"$STATE/err" 2>&1; then fail "needs-more.py deployed"; fi
for want in "4 problems" "needs-more.py, line 2: \`import redis\`" "line 3: \`import xmltodict\`" "line 4: \`from zato.common.odb.model import Cluster\`: zato.common.odb.model is not supported yet" "line 10: \`self.email\`"; do
  has -F "$want" "$STATE/err" || { cat "$STATE/err"; fail "refusal lacks: $want"; }
done
if ctl integrator deploy "$HERE/legacy.py" >"$STATE/err" 2>&1; then fail "Python 2 deployed"; fi
has -F "legacy.py, line 7" "$STATE/err" && has -F "this module is Python 2; the node runs Python 3.11" "$STATE/err" \
  || { cat "$STATE/err"; fail "Python 2 not named"; }
if ctl integrator deploy "$HERE/py2-imports.py" >"$STATE/err" 2>&1; then fail "a Python 2 module deployed"; fi
has -F 'py2-imports.py, line 2: `import urllib2`: urllib2 is a Python 2 module' "$STATE/err" && has -F 'urllib.request' "$STATE/err" \
  || { cat "$STATE/err"; fail "Python 2 module import not named"; }
if ctl integrator deploy "$HERE/bases-only.py" >"$STATE/err" 2>&1; then fail "a file of base classes deployed"; fi
has -F 'BaseAPI derives from Service but defines neither handle(self) nor handle_GET(self)' "$STATE/err" \
  || { cat "$STATE/err"; fail "base-only refusal unclear"; }
pass "a refused deploy lists every problem with its line; Python 2 syntax and modules are named as such; a file of base classes names them"
