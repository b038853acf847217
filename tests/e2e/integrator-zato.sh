#!/usr/bin/env bash
# Zato compatibility end to end: service modules written as Zato users
# write them (tests/e2e/integrator-zato/) deploy unchanged and answer
# through REST channels as they would in Zato: per-verb handlers (405 for
# a verb without one), wsgi_environ and request.http, an abstract base
# deployed as Zato deploys it (calling it says it has no handle method), bunch, log_input, named and default caches,
# SimpleIO types, names derived as Zato derives them and invoked by them;
# kvdb hashes and lists shared by two workers, self.crypto's Fernet tokens
# and hashes read by Debian's cryptography and passlib, self.user_config
# with a value from the secret store; Zato 3.2's dataclass Models as
# SimpleIO and self.commands; genesisng's shapes (cache details=True with
# dates, a missing optional List, an object payload through SimpleIO output);
# a deploy lists every problem of a module at once, Python 2 is named as
# such, and an unsupported call names the Zato API.
. "$(dirname "$0")/../lib.sh"
HERE=$(cd "$(dirname "$0")/integrator-zato" && pwd)
for tool in curl jq /usr/bin/python3; do command -v $tool >/dev/null || fail "needs $tool (scripts/deps.sh)"; done
STATE=$(mktemp -d "$OUT/zato.XXXXXX")
on_exit "rm -rf $STATE"
export ALPHAREN STATE; export -f ctl
cat >"$STATE/seed.toml" <<'TOML'
[integrator]
tls = "off"
workers = 2
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
[[integrator.channels]]
name = "enqueue"
url_path = "/api/jobs"
service = "kvdb-hash.enqueue"
[[integrator.channels]]
name = "dequeue"
url_path = "/api/jobs/next"
service = "kvdb-hash.dequeue"
[[integrator.channels]]
name = "scores"
url_path = "/api/scores"
service = "kvdb-hash.leaderboard"
[[integrator.channels]]
name = "encrypt"
url_path = "/api/encrypt"
service = "vault.encrypt"
[[integrator.channels]]
name = "decrypt"
url_path = "/api/decrypt"
service = "vault.decrypt"
[[integrator.channels]]
name = "hash"
url_path = "/api/hash"
service = "vault.hash-password"
[[integrator.channels]]
name = "settings"
url_path = "/api/settings"
service = "settings.crm-settings"
[[integrator.channels]]
name = "clients"
url_path = "/api/clients"
service = "clients.get-client"
[[integrator.channels]]
name = "command"
url_path = "/api/command"
service = "clients.run-command"
[[integrator.channels]]
name = "bookings"
url_path = "/api/bookings"
service = "bookings.get-booking"
[[integrator.channels]]
name = "store-object"
url_path = "/api/store-object"
service = "bookings.store-object"
[integrator.user_config.crm.api]
url = "https://crm.example"
retries = 3
token = "secret:integrator.user_config.crm_token"
TOML
start_integrator "$STATE/seed.toml"

# --- deploy unchanged; names as Zato derives them; the base deploys too ----
for f in users-api.py orders.py kvdb-hash.py vault.py settings.py clients.py bookings.py; do
  ctl integrator deploy "$HERE/$f" >"$STATE/deploy.out" 2>&1 || { cat "$STATE/deploy.out"; fail "deploy of $f refused"; }
done
ctl --json integrator list >"$STATE/list.json"
jq -e '[.[] | .name] | sort == ["bookings.get-booking", "bookings.store-object", "clients.get-client", "clients.run-command", "kvdb-hash.counter", "kvdb-hash.dequeue", "kvdb-hash.enqueue", "kvdb-hash.leaderboard",
  "orders.create-order", "orders.get-price", "settings.crm-settings", "users-api.base-user-service", "users-api.configuring-cors", "users-api.user-resource",
  "vault.decrypt", "vault.encrypt", "vault.hash-password"]' "$STATE/list.json" >/dev/null \
  || fail "deployed names: $(jq -c '[.[] | .name]' "$STATE/list.json")"
pass "Zato modules deploy unchanged; names as Zato's (users-api.configuring-cors); the base class deploys, as in Zato"

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

# --- Zato 3.2: dataclass Models as SimpleIO, self.commands -----------------
req POST /api/clients -H 'content-type: application/json' -d '{"client_id": "12"}'
[ "$CODE" = 200 ] || fail "Model SimpleIO service: HTTP $CODE $BODY"
jq -e '. == {"name": "Jane Doe", "email": "client12@example.com", "segment": "RNZ"}' <<<"$BODY" >/dev/null || fail "Model answer: $BODY"
req POST /api/clients -H 'content-type: application/json' -d '{}'
[ "$CODE" = 400 ] && jq -e '.error | contains("Missing required input element: client_id")' <<<"$BODY" >/dev/null \
  || fail "a Model's missing field: HTTP $CODE $BODY"
req GET /api/command
[ "$CODE" = 200 ] && jq -e '.Response == "Linux" and .["Is OK?"] == true' <<<"$BODY" >/dev/null || fail "self.commands: HTTP $CODE $BODY"
wait_for 5 bash -c 'ctl logs integrator -n 1000 | has "Received result: exit code 0"' || fail "the command's callback did not run"
pass "Model input/output as Zato 3.2 (a missing field named, 400); self.commands.invoke with a callback"

# --- genesisng's shapes: cache details=True with dates, a missing optional List, an object payload
req GET '/api/bookings?id=5'
[ "$CODE" = 200 ] || fail "booking service: HTTP $CODE $BODY"
WANT='{"id": 5, "check_in": "2019-05-01", "created": "2019-04-02T10:20:30", "price": "120.50", "expiry": 3600.0,
  "types": ["date", "datetime", "Decimal"], "page_is_none": true'
jq -e ". == ($WANT, \"hits\": 1})" <<<"$BODY" >/dev/null || fail "booking answer: $BODY"
req GET '/api/bookings?id=5'
jq -e ". == ($WANT, \"hits\": 2})" <<<"$BODY" >/dev/null || fail "booking answer from the cache: $BODY"
ctl --json integrator kv get booking.5 --ns cache.bookings | jq -e '.value.json.value.check_in == {"$zato": "date", "v": "2019-05-01"}' >/dev/null \
  || fail "the cache entry in the KV: $(ctl --json integrator kv get booking.5 --ns cache.bookings)"
req GET /api/store-object
[ "$CODE" = 500 ] && jq -e '.error | contains("cache key '"'an-object'"': a value of type object cannot be stored in the cache")' <<<"$BODY" >/dev/null \
  || fail "storing an object: HTTP $CODE $BODY"
pass "cache get(details=True) entries with hits and expiry, dates and Decimal unchanged through the cache; a missing optional List is None; an object payload answered through SimpleIO output"

# --- kvdb hashes and lists, shared by every worker --------------------------
for n in 1 2 3; do req GET '/api/counter?page=home'; done
[ "$CODE" = 200 ] || fail "kvdb hash service: HTTP $CODE $BODY"
jq -e '.visits == 3 and .all == {"home": "3"} and .last == "3" and .ttl > 3500 and .type == "hash"' <<<"$BODY" >/dev/null \
  || fail "kvdb hash answer: $BODY"
req POST /api/jobs -H 'content-type: application/json' -d '{"jobs": ["a", "b", "c"]}'
jq -e '.length == 3' <<<"$BODY" >/dev/null || fail "lpush: HTTP $CODE $BODY"
req GET /api/jobs/next
jq -e '.job == "a" and .left == ["c", "b"] and .length == 2' <<<"$BODY" >/dev/null || fail "rpop: HTTP $CODE $BODY"
ctl --json integrator kv get visits --ns kvdb | jq -e '.value.json == {"home": "3"}' >/dev/null \
  || fail "the hash is not in the node's KV: $(ctl --json integrator kv get visits --ns kvdb)"
req GET /api/scores
[ "$CODE" = 500 ] || fail "unsupported kvdb call: HTTP $CODE $BODY"
jq -e '.error | contains("`self.kvdb.conn.zadd` is not supported yet; supported: get, set")' <<<"$BODY" >/dev/null || fail "unsupported call answer: $BODY"
pass "kvdb hincrby/hset(mapping=)/hgetall/expire/ttl and lpush/rpop/lrange/llen across calls and workers; zadd: $(jq -r .error <<<"$BODY" | cut -c1-60)..."

# --- self.crypto: Fernet tokens and pbkdf2_sha512 hashes that Debian's cryptography and passlib read
req POST /api/encrypt -H 'content-type: application/json' -d '{"text": "zażółć gęślą"}'
[ "$CODE" = 200 ] || fail "encrypt: HTTP $CODE $BODY"
TOKEN=$(jq -r .token <<<"$BODY")
ctl config export --with-secrets >"$STATE/export.toml" || fail "config export --with-secrets"
KEY=$(/usr/bin/python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["secrets"]["integrator.crypto.fernet_key"])' "$STATE/export.toml") \
  || fail "the node's Fernet key is not in the secret store"
PLAIN=$(/usr/bin/python3 -c 'import sys; from cryptography.fernet import Fernet; print(Fernet(sys.argv[1]).decrypt(sys.argv[2].encode()).decode())' "$KEY" "$TOKEN") \
  || fail "cryptography's Fernet cannot decrypt the service's token"
[ "$PLAIN" = "zażółć gęślą" ] || fail "decrypted by cryptography: $PLAIN"
THEIRS=$(/usr/bin/python3 -c 'import sys; from cryptography.fernet import Fernet; print(Fernet(sys.argv[1]).encrypt("from cryptography".encode()).decode())' "$KEY")
req POST /api/decrypt -H 'content-type: application/json' -d "{\"token\": \"$THEIRS\"}"
jq -e '.text == "from cryptography"' <<<"$BODY" >/dev/null || fail "decrypt of cryptography's token: HTTP $CODE $BODY"
PASSLIB=$(/usr/bin/python3 -c 'from passlib.hash import pbkdf2_sha512; print(pbkdf2_sha512.using(rounds=2000).hash("pw 1"))')
req POST /api/hash -H 'content-type: application/json' -d "{\"password\": \"pw 1\", \"hashed\": \"$PASSLIB\"}"
jq -e '.verified and .given_verified and (.hash | startswith("$pbkdf2-sha512$120000$"))' <<<"$BODY" >/dev/null || fail "hash: HTTP $CODE $BODY"
/usr/bin/python3 -c 'import sys; from passlib.hash import pbkdf2_sha512; sys.exit(0 if pbkdf2_sha512.verify("pw 1", sys.argv[1]) else 1)' "$(jq -r .hash <<<"$BODY")" \
  || fail "passlib does not verify the service's hash"
pass "self.crypto: tokens both ways with cryptography's Fernet and the node's key; hash_secret/verify_hash as passlib's pbkdf2_sha512"

# --- self.user_config, a secret from the secret store ------------------------
{ cat "$STATE/seed.toml"; printf '[secrets]\n"integrator.user_config.crm_token" = "tok-123456"\n'; } >"$STATE/cfg.toml"
ctl config apply --file "$STATE/cfg.toml" >/dev/null || fail "config with the user config secret refused"
wait_for 20 bash -o pipefail -c "curl -sf '$LB/api/settings' | jq -e '.token_start == \"tok-\"' >/dev/null" || fail "user_config: $(curl -sS "$LB/api/settings")"
req GET /api/settings
jq -e '.url == "https://crm.example" and .retries == 3' <<<"$BODY" >/dev/null || fail "user_config answer: $BODY"
! ctl config export | has -F tok-123456 || fail "the user config secret is in a revision"
pass "self.user_config.crm.api from [integrator.user_config], its token from the secret store"

# --- refused deploys: every problem at once; Python 2 named -----------------
if ctl integrator deploy "$HERE/needs-more.py" >"$STATE/err" 2>&1; then fail "needs-more.py deployed"; fi
for want in "4 problems" "needs-more.py, line 2: \`import redis\`" "line 3: \`import xmltodict\`" "line 4: \`from zato.common.odb.model import Cluster\`: zato.common.odb.model is not supported yet" "line 10: \`self.sso\`"; do
  has -F "$want" "$STATE/err" || { cat "$STATE/err"; fail "refusal lacks: $want"; }
done
if ctl integrator deploy "$HERE/legacy.py" >"$STATE/err" 2>&1; then fail "Python 2 deployed"; fi
has -F "legacy.py, line 7" "$STATE/err" && has -F "this module is Python 2; the node runs Python 3.11" "$STATE/err" \
  || { cat "$STATE/err"; fail "Python 2 not named"; }
if ctl integrator deploy "$HERE/py2-imports.py" >"$STATE/err" 2>&1; then fail "a Python 2 module deployed"; fi
has -F 'py2-imports.py, line 2: `import urllib2`: urllib2 is a Python 2 module' "$STATE/err" && has -F 'urllib.request' "$STATE/err" \
  || { cat "$STATE/err"; fail "Python 2 module import not named"; }
pass "a refused deploy lists every problem with its line; Python 2 syntax and modules are named as such"

# --- a module of base classes only deploys (as in Zato); a call says why it cannot run
ctl integrator deploy "$HERE/bases-only.py" >"$STATE/err" 2>&1 || { cat "$STATE/err"; fail "a file of base classes refused"; }
out=$(ctl --json integrator invoke bases-only.base-api) || fail "invoke of the base class: $out"
jq -e '.status == 500 and (.body.error == "service bases-only.base-api (class BaseAPI) defines no handle method: it is a base class for other services and cannot be called")' \
  <<<"$out" >/dev/null || fail "calling a base class: $out"
out=$(ctl --json integrator invoke users-api.base-user-service) || fail "invoke of users-api's base: $out"
jq -e '.status == 500 and (.body.error | contains("BaseUserService) defines no handle method"))' <<<"$out" >/dev/null \
  || fail "calling users-api's base class: $out"
pass "a module of base classes deploys, as in Zato; calling a base class answers 500 naming it and its missing handle method"
