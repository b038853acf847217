#!/usr/bin/env bash
# Integrator end to end: the seed's service via the pickup directory behind
# basic auth, failed deploys, misbehaving services, outgoing REST, HMAC,
# API keys and reserved names. Real processes, loopback only.
. "$(dirname "$0")/../lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
STATE=$OUT/state
rm -rf "$STATE"; mkdir -p "$STATE"
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
export ALPHAREN STATE; export -f ctl has
FILES_PORT=$(free_ports 1)

# A local peer for outgoing REST.
mkdir -p "$OUT/files"
echo '{"hello": "world"}' > "$OUT/files/data.json"
(cd "$OUT/files" && exec "$PY" -m http.server --bind 127.0.0.1 $FILES_PORT) >"$OUT/http-server.log" 2>&1 &
HTTP_PID=$!
on_exit "kill $HTTP_PID 2>/dev/null"

cat >"$OUT/config.toml" <<TOML
[node]
hostname = "int1"
[integrator]
# Plain HTTP on purpose: these tests exercise the channels, not TLS.
tls = "off"
workers = 2
timeout = 5
worker_memory_limit = 256
[[integrator.security]]
name = "cust.basic"
kind = "basic"
username = "cust"
[[integrator.security]]
name = "partner.hmac"
kind = "hmac"
password = "hmac-secret-key"
skew = 60
[[integrator.security]]
name = "partner.key"
kind = "apikey"
password = "key-123"
[[integrator.channels]]
name = "cust.user.get"
url_path = "/api/user/get-details"
data_format = "json"
service = "api.user.get-details"
security = "cust.basic"
[[integrator.channels]]
name = "hmac.user.get"
url_path = "/hmac/user"
service = "api.user.get-details"
security = "partner.hmac"
[[integrator.channels]]
name = "key.user.get"
url_path = "/key/user"
service = "api.user.get-details"
security = "partner.key"
[[integrator.channels]]
name = "t.sleep"
url_path = "/t/sleep"
service = "test.sleep"
timeout = 2
[[integrator.channels]]
name = "t.exit"
url_path = "/t/exit"
service = "test.exit"
[[integrator.channels]]
name = "t.alloc"
url_path = "/t/alloc"
service = "test.alloc"
[[integrator.channels]]
name = "t.ok"
url_path = "/t/ok"
methods = ["GET", "POST"]
service = "test.ok"
[[integrator.channels]]
name = "t.echo"
url_path = "/t/echo"
service = "test.echo"
[[integrator.channels]]
name = "t.form"
url_path = "/t/form"
data_format = "form"
service = "test.echo"
[[integrator.channels]]
name = "t.out"
url_path = "/t/out"
service = "test.out"
[[integrator.outgoing]]
name = "local.files"
host = "http://127.0.0.1:$FILES_PORT"
url_path = "/{name}"
TOML

start_integrator "$OUT/config.toml"
ctl --json integrator status | jq -e '.workers == 0' >/dev/null || { ctl integrator status; fail "Python workers run with nothing deployed"; }
pass "integrator up; nothing deployed, so no Python worker runs"

# --- the seed's service, byte for byte, through the pickup directory ------
PICKUP=$STATE/integrator/pickup/incoming/services
cp "$HERE/integrator/get_user_details.py" "$PICKUP/"
wait_for 15 bash -c "ctl --json integrator list | has api.user.get-details" || fail "pickup deploy did not happen"
wait_for 20 bash -c "ctl --json integrator status | has '\"idle_workers\": 2'" || { ctl integrator status; fail "the first deploy did not start the 2 workers"; }
ctl integrator source api.user.get-details >"$OUT/source.py"
cmp "$OUT/source.py" "$HERE/integrator/get_user_details.py" || fail "stored source differs from the file"
pass "pickup deploy, which started the 2 workers; stored source is byte-for-byte the file"

PW=$(ctl integrator password cust.basic)
[[ $PW =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]] || fail "generated password is not a uuid4: $PW"
body=$(curl -sS -f "http://cust:$PW@127.0.0.1:$LB_PORT/api/user/get-details")
[ "$body" = '{"user_name": "John Doe", "user_type": "SRT"}' ] || fail "unexpected body: $body"
pass "curl http://cust:PW@127.0.0.1:$LB_PORT/api/user/get-details -> $body"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://cust:wrong@127.0.0.1:$LB_PORT/api/user/get-details")
[ "$code" = 401 ] || fail "wrong password gave $code"
code=$(curl -s -o /dev/null -w '%{http_code}' "$LB/api/user/get-details")
[ "$code" = 401 ] || fail "no credentials gave $code"
pass "wrong or missing password -> 401"

# --- a broken deploy reports the line; the old version keeps serving ------
sed 's/^class GetUserDetails(Service):$/class GetUserDetails(Service/' "$HERE/integrator/get_user_details.py" >"$OUT/get_user_details.py"
if ctl integrator deploy "$OUT/get_user_details.py" >"$OUT/deploy-err.txt" 2>&1; then fail "syntax error deployed"; fi
has "get_user_details.py, line 6" "$OUT/deploy-err.txt" || { cat "$OUT/deploy-err.txt"; fail "error does not name file and line"; }
cp "$OUT/get_user_details.py" "$PICKUP/"
wait_for 10 test -f "$STATE/integrator/pickup/failed/get_user_details.py.error" || fail "pickup failure not reported"
has "line 6" "$STATE/integrator/pickup/failed/get_user_details.py.error" || fail "pickup error lacks the line"
body=$(curl -sS -f "http://cust:$PW@127.0.0.1:$LB_PORT/api/user/get-details")
[ "$body" = '{"user_name": "John Doe", "user_type": "SRT"}' ] || fail "old version stopped serving: $body"
pass "syntax error refused with file and line; previous version still serves"

# --- deploy, hot redeploy, versions, rollback ------------------------------
ctl integrator deploy "$HERE/integrator/misbehave.py" >/dev/null
ctl integrator deploy "$HERE/integrator/zato_surface.py" >/dev/null
mkdir -p "$OUT/v2"
sed "s/'John Doe'/'Jane Doe'/" "$HERE/integrator/get_user_details.py" >"$OUT/v2/get_user_details.py"
ctl integrator deploy "$OUT/v2/get_user_details.py" >/dev/null
curl -sS "http://cust:$PW@127.0.0.1:$LB_PORT/api/user/get-details" | has "Jane Doe" || fail "redeploy not live"
ctl --json integrator versions api.user.get-details | has '"version": 2' || fail "versions missing"
ctl integrator rollback api.user.get-details 1 >/dev/null
curl -sS "http://cust:$PW@127.0.0.1:$LB_PORT/api/user/get-details" | has "John Doe" || fail "rollback not live"
pass "hot redeploy, versions and rollback"

# --- Zato surface: SimpleIO, payload by field, invoke, status, headers ----
out=$(curl -sS -i -X POST -H 'content-type: application/json' -d '{"user": "ann", "count": "41"}' "$LB/t/echo?x=1")
echo "$out" | has "^HTTP/1.1 201" || fail "status_code not applied: $out"
echo "$out" | has -i "^x-echo: yes" || fail "headers not applied"
echo "$out" | has '"next": 42' || fail "SimpleIO Int conversion: $out"
echo "$out" | has '"query": {"x": "1"}' || fail "query: $out"
echo "$out" | has '"details": {"user_name": "John Doe"' || fail "invoke: $out"
out=$(curl -sS -w ' %{http_code}' -X POST -d '{"count": 1}' "$LB/t/echo")
[[ $out == *"Missing required input element: user"*" 400" ]] || fail "missing input: $out"
out=$(curl -sS -d 'user=bob&count=2' "$LB/t/form")
echo "$out" | has '"user": "bob", "next": 3' || fail "form channel: $out"
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$LB/t/ok")
[ "$code" = 405 ] || fail "method not allowed gave $code"
pass "SimpleIO, payload by field, invoke, status, headers, form, 400, 405"

# --- misbehaving services: only that request fails, workers replaced ------
pids_before=$(for i in 1 2 3 4; do curl -sS "$LB/t/ok"; done)
code=$(curl -s -o "$OUT/sleep.json" -w '%{http_code}' "$LB/t/sleep")
[ "$code" = 504 ] || fail "sleep past timeout gave $code"
code=$(curl -s -o "$OUT/exit.json" -w '%{http_code}' "$LB/t/exit")
[ "$code" = 502 ] || fail "os._exit gave $code"
code=$(curl -s -o "$OUT/alloc.json" -w '%{http_code}' "$LB/t/alloc")
[ "$code" = 502 ] || fail "unbounded alloc gave $code: $(cat "$OUT/alloc.json")"
has "memory" "$OUT/alloc.json" || fail "alloc error does not mention memory"
# A slow request in flight does not block others on the second worker.
curl -s -o /dev/null "$LB/t/sleep" &
SLOW=$!
sleep 0.3
code=$(curl -s -o /dev/null -w '%{http_code}' "$LB/t/ok")
[ "$code" = 200 ] || fail "healthy request failed while another hung: $code"
wait $SLOW || true
wait_for 15 bash -c "ctl --json integrator status | has '\"idle_workers\": 2'" || fail "workers were not replaced"
replaced=$(ctl --json integrator status | sed -n 's/.*"workers_replaced": \([0-9]*\).*/\1/p')
[ "$replaced" -ge 4 ] || fail "expected >=4 replacements, got $replaced"
pids_after=$(for i in 1 2 3 4; do curl -sS "$LB/t/ok"; done)
[ "$pids_before" != "$pids_after" ] || fail "worker pids unchanged"
body=$(curl -sS -f "http://cust:$PW@127.0.0.1:$LB_PORT/api/user/get-details")
[ "$body" = '{"user_name": "John Doe", "user_type": "SRT"}' ] || fail "service broken after replacements"
pass "timeout->504, os._exit->502, memory->502; $replaced workers replaced; others unaffected"

# --- outgoing REST to a local http.server ---------------------------------
wait_for 10 curl -sf "http://127.0.0.1:$FILES_PORT/data.json" || fail "http.server did not start"
out=$(curl -sS "$LB/t/out")
echo "$out" | has '"status": 200, "data": {"hello": "world"}, "json": {"hello": "world"}' || fail "outgoing: $out"
ctl --json integrator ping local.files | has '"ok": true' || fail "ping failed"
pass "outgoing REST via self.out.rest and self.outgoing.plain_http; HEAD ping"

# --- API key ---------------------------------------------------------------
[ "$(curl -s -o /dev/null -w '%{http_code}' -H 'X-API-Key: key-123' "$LB/key/user")" = 200 ] || fail "api key refused"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H 'X-API-Key: nope' "$LB/key/user")" = 401 ] || fail "bad api key accepted"
pass "API key header"

# --- HMAC ------------------------------------------------------------------
# hmac_req KEY BODY AGE [SENT_BODY]: prints the status of a signed POST.
hmac_req() {
  LB=$LB "$PY" - "$@" <<'PYEOF'
import base64, email.utils, hashlib, hmac, os, sys, time, urllib.request, urllib.error
key, body, age = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
sent = sys.argv[4].encode() if len(sys.argv) > 4 else body
date = email.utils.formatdate(time.time() - age, usegmt=True)
digest = 'sha-256=:%s:' % base64.b64encode(hashlib.sha256(body).digest()).decode()
params = '("@method" "@path" "date" "content-digest");created=%d;keyid="partner.hmac";alg="hmac-sha256"' % int(time.time() - age)
base = '"@method": POST\n"@path": /hmac/user\n"date": %s\n"content-digest": %s\n"@signature-params": %s' % (date, digest, params)
sig = base64.b64encode(hmac.new(key.encode(), base.encode(), hashlib.sha256).digest()).decode()
headers = {'Date': date, 'Content-Digest': digest, 'Signature-Input': 'sig1=' + params, 'Signature': 'sig1=:%s:' % sig, 'Content-Type': 'application/json'}
def send():
    req = urllib.request.Request(os.environ['LB'] + '/hmac/user', data=sent, headers=headers, method='POST')
    try:
        return urllib.request.urlopen(req, timeout=5).status
    except urllib.error.HTTPError as e:
        return e.code
first = send()
print(first, send() if len(sys.argv) > 5 else '')
PYEOF
}
[ "$(hmac_req hmac-secret-key '{}' 0 | cut -d' ' -f1)" = 200 ] || fail "valid HMAC refused"
[ "$(hmac_req wrong-key '{}' 0 | cut -d' ' -f1)" = 401 ] || fail "wrong HMAC key accepted"
[ "$(hmac_req hmac-secret-key '{}' 0 '{"a":1}' | cut -d' ' -f1)" = 401 ] || fail "changed body accepted"
[ "$(hmac_req hmac-secret-key '{}' 600 | cut -d' ' -f1)" = 401 ] || fail "stale signature accepted"
[ "$(hmac_req hmac-secret-key '{"r":1}' 0 '{"r":1}' replay)" = "200 401" ] || fail "replay accepted"
pass "HMAC: valid 200; wrong key, changed body, stale, replay 401"

# --- reserved names --------------------------------------------------------
printf "from alpharen.integrator import Service\nclass X(Service):\n    name = 'ARsecret'\n    def handle(self):\n        pass\n" >"$OUT/ar_service.py"
if ctl integrator deploy "$OUT/ar_service.py" >"$OUT/ar.txt" 2>&1; then fail "AR name deployed"; fi
has 'reserved' "$OUT/ar.txt" || { cat "$OUT/ar.txt"; fail "AR refusal unclear"; }
printf '[[integrator.channels]]\nname = "ARchan"\nurl_path = "/x"\nservice = "s"\n' >"$OUT/ar.toml"
if ctl config apply --file "$OUT/ar.toml" >"$OUT/ar-config.txt" 2>&1; then fail "AR channel accepted"; fi
has 'integrator.channels\[0\].name' "$OUT/ar-config.txt" || { cat "$OUT/ar-config.txt"; fail "AR channel problem lacks path"; }
# Unsupported Zato API is refused at deploy time.
printf "from zato.server.service import Service\nclass K(Service):\n    name = 'kv.user'\n    def handle(self):\n        self.sso.user.get('x')\n" >"$OUT/kv.py"
if ctl integrator deploy "$OUT/kv.py" >"$OUT/kv.txt" 2>&1; then fail "sso use deployed"; fi
has -F 'kv.py, line 5: `self.sso`' "$OUT/kv.txt" || { cat "$OUT/kv.txt"; fail "unsupported API message unclear"; }
pass "AR names refused (service and channel); unsupported Zato API refused at deploy"

ctl integrator stats
ctl --json integrator stats | has '"service": "api.user.get-details"' || fail "stats missing"
ctl integrator undeploy test.exit >/dev/null
[ "$(curl -s -o /dev/null -w '%{http_code}' "$LB/t/exit")" = 404 ] || fail "undeployed service still answers"
pass "stats and undeploy"
echo "integrator: all checks passed"
