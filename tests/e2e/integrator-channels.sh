#!/usr/bin/env bash
# Integrator channels end to end: templated paths (/user/{user_id}) whose
# path and query parameters reach self.request.input with SimpleIO types,
# the most specific route winning, a conflicting pair of channels refused
# at `ctl config apply` (both named, the previous revision still serving),
# GET /api/v1/integrator/openapi.json checked by openapi-spec-validator,
# and JWT bearer channels (HS256 with the stored secret, RS256 with a JWKS
# file): valid, expired, wrong signature, wrong audience. Loopback only.
#
# PyJWT (with cryptography, for RS256) and openapi-spec-validator come
# from PyPI into tests/out/.venv-channels (kept between runs).
. "$(dirname "$0")/../lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
command -v curl >/dev/null && command -v jq >/dev/null || fail "needs curl and jq (scripts/deps.sh)"
export ALPHAREN; export -f has

VENV=$ROOT/tests/out/.venv-channels
VPY=$VENV/bin/python
py_venv "$VENV" "jwt, cryptography, openapi_spec_validator" 'PyJWT[crypto]>=2.8,<3' 'openapi-spec-validator>=0.7,<1'
pass "PyJWT $("$VPY" -c 'import jwt; print(jwt.__version__)') and openapi-spec-validator in $VENV"

STATE=$(mktemp -d /tmp/alpharen-ch.XXXXXX)
on_exit "rm -rf $STATE"
chmod 755 "$STATE"

# The issuer's RS256 key pair; the node gets only the public JWKS.
"$VPY" - "$STATE" <<'PY'
import json, sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
d = sys.argv[1]
for name in ('issuer', 'stranger'):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    open(f'{d}/{name}.pem', 'wb').write(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    if name == 'issuer':
        jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
        jwk.update(kid='k1', alg='RS256', use='sig')
        open(f'{d}/jwks.json', 'w').write(json.dumps({'keys': [jwk]}))
PY
chmod 644 "$STATE/jwks.json"

cat >"$STATE/seed.toml" <<TOML
[integrator]
tls = "off"
workers = 2
timeout = 5
worker_memory_limit = 256
[[integrator.security]]
name = "jwt.hs"
kind = "jwt"
password = "hs256-shared-secret-0123456789abcdef"
issuer = "https://idp.test"
audience = "orders"
[[integrator.security]]
name = "jwt.rs"
kind = "jwt"
jwks_file = "$STATE/jwks.json"
issuer = "https://idp.test"
audience = "orders"
[[integrator.channels]]
name = "user.by-id"
url_path = "/user/{user_id}"
methods = ["GET"]
service = "chan.user.get"
[[integrator.channels]]
name = "user.me"
url_path = "/user/me"
service = "chan.user.me"
[[integrator.channels]]
name = "user.orders"
url_path = "/user/{user_id}/orders/{n}"
service = "chan.orders"
[[integrator.channels]]
name = "user.put"
url_path = "/user/{user_id}"
methods = ["PUT"]
service = "chan.user.get"
[[integrator.channels]]
name = "jwt.hs.user"
url_path = "/hs/user/{user_id}"
service = "chan.user.get"
security = "jwt.hs"
[[integrator.channels]]
name = "jwt.rs.user"
url_path = "/rs/user/{user_id}"
service = "chan.user.get"
security = "jwt.rs"
TOML
seed_ports "$STATE/seed.toml"
LB=http://127.0.0.1:$LB_PORT
console_node "$STATE" ch1
ctl() { "$ALPHAREN" ctl --state-dir "$STATE" "$@"; }
wait_for 20 ctl integrator status >/dev/null || fail "integrator control socket not reachable"
ctl integrator deploy "$HERE/integrator/channels.py" >/dev/null || fail "deploy channels.py"
wait_for 20 bash -c "'$ALPHAREN' ctl --state-dir '$STATE' --json integrator status | has '\"idle_workers\": 2'" \
  || fail "the deploy did not start the integrator workers"
pass "node up, channels.py deployed"

# --- templated paths, typed input, most specific wins ------------------------
body=$(curl -sS -f "$LB/user/42?verbose=yes&lang=de")
echo "$body" | jq -e '.user_id == 42 and .verbose == true and .lang == "de" and .channel == "user.by-id"' >/dev/null \
  || fail "GET /user/42?verbose=yes&lang=de: $body"
pass "GET /user/42?verbose=yes&lang=de -> $body (Int and Bool from SimpleIO)"
body=$(curl -sS -f -X PUT -H 'content-type: application/json' -d '{"user_id": 1, "lang": "fr", "verbose": "1"}' "$LB/user/42?lang=de")
echo "$body" | jq -e '.user_id == 42 and .lang == "de" and .verbose == true and .channel == "user.put"' >/dev/null \
  || fail "PUT /user/42?lang=de with user_id 1 and lang fr in the body: $body"
pass "PUT /user/42?lang=de {user_id: 1, lang: fr, verbose: \"1\"} -> $body (path and query before the body, as Zato)"
body=$(curl -sS -f "$LB/user/me")
echo "$body" | jq -e '.me == true and .channel == "user.me"' >/dev/null || fail "literal /user/me did not win: $body"
body=$(curl -sS -f "$LB/user/j%C3%BCrgen%20x/orders/7?x=1")
echo "$body" | jq -e '.input == {"user_id": "jürgen x", "n": "7", "x": "1"} and .path_params == {"user_id": "jürgen x", "n": "7"}' >/dev/null \
  || fail "path and query parameters without SimpleIO: $body"
pass "/user/me beats /user/{user_id}; without SimpleIO input = decoded path + query parameters: $body"
code=$(curl -s -o "$STATE/bad.json" -w '%{http_code}' "$LB/user/abc")
[ "$code" = 400 ] && jq -e '.error | test("user_id")' "$STATE/bad.json" >/dev/null || fail "/user/abc gave $code $(cat "$STATE/bad.json")"
code=$(curl -s -o /dev/null -D "$STATE/h405" -w '%{http_code}' -X DELETE "$LB/user/42")
[ "$code" = 405 ] && has -i '^allow: GET, PUT' "$STATE/h405" || fail "DELETE /user/42 gave $code"
for p in /user/42/ /user /user/42/orders; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "$LB$p")
  [ "$code" = 404 ] || fail "$p gave $code"
done
pass "a non-integer user_id is 400 naming it; DELETE is 405 with Allow: GET, PUT; /user/42/, /user, /user/42/orders are 404"

# --- a conflicting pair is refused at apply; the old revision serves ---------
REV=$(ctl --json config history -n 1 | jq -r '.revisions[0].id')
ctl --json config show integrator | jq '{integrator: (.config | .channels += [{"name": "user.by-name", "url_path": "/user/{name}", "service": "chan.user.me"}])}' \
  >"$STATE/conflict.json"
if ctl config apply -f "$STATE/conflict.json" >"$STATE/conflict.out" 2>&1; then fail "conflicting channels applied"; fi
has 'integrator.channels\[6\].url_path' "$STATE/conflict.out" && has '"user.by-id"' "$STATE/conflict.out" \
  && has '"user.by-name"' "$STATE/conflict.out" || { cat "$STATE/conflict.out"; fail "refusal does not name both channels"; }
[ "$(ctl --json config history -n 1 | jq -r '.revisions[0].id')" = "$REV" ] || fail "a refused apply made a revision"
curl -sS -f "$LB/user/42" | jq -e '.channel == "user.by-id"' >/dev/null || fail "previous revision stopped serving"
pass "/user/{name} beside /user/{user_id} refused: $(grep -m1 'user.by-name' "$STATE/conflict.out" | sed 's/^ *//')"
jq '.integrator.channels[6].methods = ["DELETE"]' "$STATE/conflict.json" >"$STATE/split.json"
ctl config apply -f "$STATE/split.json" >/dev/null || fail "same path shape with another method refused"
wait_for 10 bash -o pipefail -c "curl -s -X DELETE '$LB/user/ann' | jq -e '.me == true and .channel == \"user.by-name\"'" \
  || fail "DELETE /user/ann did not reach user.by-name"
curl -sS -f "$LB/user/42" | jq -e '.channel == "user.by-id"' >/dev/null || fail "GET /user/42 moved"
pass "the same shape with another method (DELETE) is accepted and split by method"

# --- OpenAPI of the channels --------------------------------------------------
post() { curl -sk --max-time 30 -H 'content-type: application/json' "$@"; }
post -c "$STATE/jar" --data "{\"username\":\"admin\",\"password\":\"$PASSWORD\"}" "$BASE/api/v1/session" >"$STATE/login.json"
CSRF=$(jq -r .csrf "$STATE/login.json")
TOKEN=$(post -b "$STATE/jar" -H "x-csrf-token: $CSRF" --data '{"name":"channels","role":"viewer"}' "$BASE/api/v1/tokens" | jq -r .secret)
[ -n "$TOKEN" ] && [ "$TOKEN" != null ] || fail "no API token"
code=$(curl -sk -o /dev/null -w '%{http_code}' "$BASE/api/v1/integrator/openapi.json")
[ "$code" = 401 ] || fail "openapi.json without a token gave $code"
curl -skf -H "authorization: Bearer $TOKEN" "$BASE/api/v1/integrator/openapi.json" >"$STATE/channels-openapi.json" \
  || fail "GET /api/v1/integrator/openapi.json"
"$VENV/bin/openapi-spec-validator" "$STATE/channels-openapi.json" >"$STATE/osv.txt" 2>&1 \
  || { cat "$STATE/osv.txt"; fail "openapi-spec-validator refused the channels document"; }
jq -e '.paths["/user/{user_id}"].get
       | (.parameters[] | select(.name == "user_id" and .in == "path" and .required and .schema.type == "integer"))
         and (.parameters[] | select(.name == "verbose" and .in == "query" and .schema.type == "boolean"))
         and (.responses["200"].content["application/json"].schema.required == ["user_id", "channel"])' \
  "$STATE/channels-openapi.json" >/dev/null || { jq '.paths["/user/{user_id}"]' "$STATE/channels-openapi.json"; fail "/user/{user_id} not described"; }
jq -e '.paths["/user/{user_id}/orders/{n}"] and .paths["/user/{user_id}"].delete and (.paths["/user/{name}"] | not)
       and .paths["/hs/user/{user_id}"].get.security == [{"jwt.hs": []}]
       and .components.securitySchemes["jwt.rs"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}' \
  "$STATE/channels-openapi.json" >/dev/null || fail "channels or security schemes missing from the document"
ctl --json integrator openapi | jq -e --slurpfile api "$STATE/channels-openapi.json" '. == $api[0]' >/dev/null \
  || fail "ctl integrator openapi differs from the API's document"
pass "openapi.json (token required) passes openapi-spec-validator; /user/{user_id} typed from SimpleIO; JWT scheme listed; ctl integrator openapi the same"

# --- JWT bearer tokens ---------------------------------------------------------
# tok ALG KEY [CLAIM=VALUE...]: a token from PyJWT; KEY is a secret or a PEM file.
tok() {
  "$VPY" - "$@" <<'PY'
import sys, time, jwt
alg, key, *claims = sys.argv[1:]
if key.endswith('.pem'):
    key = open(key).read()
now = int(time.time())
c = {'sub': 'ann', 'iss': 'https://idp.test', 'aud': 'orders', 'iat': now, 'exp': now + 300}
for kv in claims:
    k, v = kv.split('=', 1)
    c[k] = now + int(v[1:]) if v.startswith('@') else v
print(jwt.encode(c, key, algorithm=alg, headers={'kid': 'k1'} if alg == 'RS256' else None))
PY
}
# call PATH TOKEN: prints the status; the headers are in $STATE/h.
call() { curl -s -o "$STATE/b" -D "$STATE/h" -w '%{http_code}' -H "authorization: Bearer $2" "$LB$1"; }
HS=hs256-shared-secret-0123456789abcdef
[ "$(call /hs/user/7 "$(tok HS256 $HS)")" = 200 ] && jq -e '.user_id == 7' "$STATE/b" >/dev/null || fail "valid HS256 token refused: $(cat "$STATE/b")"
[ "$(call /rs/user/7 "$(tok RS256 "$STATE/issuer.pem")")" = 200 ] || fail "valid RS256 token refused: $(cat "$STATE/b")"
pass "valid HS256 (stored secret) and RS256 (JWKS file) tokens -> 200"
# refused NAME PATH TOKEN DESCRIPTION
refused() {
  local code; code=$(call "$2" "$3")
  [ "$code" = 401 ] || fail "$1: $code $(cat "$STATE/b")"
  has -i "^www-authenticate: Bearer error=\"invalid_token\", error_description=\"$4\"" "$STATE/h" \
    || { cat "$STATE/h"; fail "$1: challenge lacks '$4'"; }
}
refused "expired HS256" /hs/user/7 "$(tok HS256 $HS exp=@-120)" "the token has expired"
refused "expired RS256" /rs/user/7 "$(tok RS256 "$STATE/issuer.pem" exp=@-120)" "the token has expired"
refused "HS256 wrong secret" /hs/user/7 "$(tok HS256 wrong-secret-0123456789abcdef0123)" "invalid signature"
refused "RS256 other key" /rs/user/7 "$(tok RS256 "$STATE/stranger.pem")" "invalid signature"
refused "wrong audience" /rs/user/7 "$(tok RS256 "$STATE/issuer.pem" aud=billing)" "wrong audience"
refused "wrong issuer" /hs/user/7 "$(tok HS256 $HS iss=https://other)" "wrong issuer"
refused "HS256 on the RS256 channel" /rs/user/7 "$(tok HS256 $HS)" "no key for algorithm HS256"
[ "$(curl -s -o /dev/null -D "$STATE/h" -w '%{http_code}' "$LB/hs/user/7")" = 401 ] && has -i '^www-authenticate: Bearer realm=' "$STATE/h" \
  || fail "no token: not a 401 with a Bearer challenge"
pass "expired, wrong signature (secret and key), wrong audience, wrong issuer, HS256-for-RS256 and no token -> 401 with a Bearer challenge"
echo "integrator-channels: all checks passed"
