#!/usr/bin/env bash
# Benchmark: deploy → first successful call of the new version, on one
# node: through the web API (`curl --data-binary @svc.py` with a token, as
# an editor's on-save hook does) vs the pickup directory (the file renamed
# into `<state>/integrator/pickup/incoming/services/`, Zato's hot-deploy
# path). Each run deploys a new version of one service and times from the
# moment the deploy starts (the request is sent; the file is renamed in) to
# the first answer of the channel that carries the new version's payload,
# polled over one keep-alive connection. RUNS runs each, alternating;
# medians, spread and the ratio. The release build; loopback only; a failed
# deploy or a call that never shows the new version stops the bench.
#   RUNS=5 tests/bench/integrator-deploy.sh
. "$(dirname "$0")/lib.sh"
STATE=$(mktemp -d /tmp/alpharen-deploy-bench.XXXXXX)
on_exit "rm -rf $STATE"
cat >"$STATE/seed.toml" <<'TOML'
[integrator]
# Plain HTTP: the deploy path is measured, not TLS on :11223.
tls = "off"
[[integrator.channels]]
name = "hello"
url_path = "/hello"
service = "hello.world"
TOML
seed_ports "$STATE/seed.toml"
console_node "$STATE" bench
LB=http://127.0.0.1:$LB_PORT
req POST /api/v1/session -H 'content-type: application/json' -c "$STATE/jar" \
  --data-binary "$(jq -nc --arg p "$PASSWORD" '{username: "admin", password: $p}')"
expect 200 "login"
CSRF=$(jq -r .csrf <<<"$BODY")
req POST /api/v1/tokens -b "$STATE/jar" -H "x-csrf-token: $CSRF" -H 'content-type: application/json' --data-binary '{"name":"deployer","role":"admin"}'
expect 200 "admin token"
TOKEN=$(jq -r .secret <<<"$BODY")
PICKUP=$STATE/integrator/pickup/incoming/services
wait_for 20 test -d "$PICKUP" || fail "no pickup directory $PICKUP"

# one_run WAY N: deploys version N through WAY (api or pickup); prints the
# milliseconds from the deploy's start to the first call answering it.
one_run() {
  python3 - "$1" "$2" "$BASE" "$LB" "$TOKEN" "$PICKUP" "$STATE" <<'PY'
import http.client, json, os, ssl, sys, time, urllib.parse
way, n, base, lb, token, pickup, state = sys.argv[1:]
src = ("from alpharen.integrator import Service\n\n"
       "class Hello(Service):\n    name = \"hello.world\"\n\n"
       "    def handle(self):\n        self.response.payload = {\"version\": \"%s\"}\n" % n).encode()
lbu = urllib.parse.urlsplit(lb)
conn = http.client.HTTPConnection(lbu.hostname, lbu.port, timeout=5)
def answer():
    conn.request("GET", "/hello")
    r = conn.getresponse()
    body = r.read()
    return r.status == 200 and json.loads(body).get("version") == n
start = time.monotonic()
if way == "api":
    bu = urllib.parse.urlsplit(base)
    ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    c = http.client.HTTPSConnection(bu.hostname, bu.port, context=ctx, timeout=60)
    c.request("POST", "/api/v1/integrator/services/hello.py", body=src,
              headers={"authorization": "Bearer " + token})
    r = c.getresponse(); body = r.read()
    if r.status != 200:
        sys.exit(f"API deploy of version {n}: HTTP {r.status}: {body[:300]!r}")
else:
    tmp = os.path.join(state, "hello.py.tmp")
    with open(tmp, "wb") as f:
        f.write(src)
    os.rename(tmp, os.path.join(pickup, "hello.py"))
deadline = start + 60
while not answer():
    if time.monotonic() > deadline:
        sys.exit(f"{way}: version {n} not answering after 60 s")
    time.sleep(0.002)
print(f"{(time.monotonic() - start) * 1000:.1f}")
PY
}

api=() pickup=()
for i in $(seq 1 "$RUNS"); do
  ms=$(one_run api "a$i") || fail "API deploy run $i"
  api+=("$ms")
  ms=$(one_run pickup "p$i") || fail "pickup deploy run $i"
  pickup+=("$ms")
done
[ -z "$(ls -A "$STATE/integrator/pickup/failed" 2>/dev/null)" ] || fail "a pickup deploy failed: $(ls "$STATE/integrator/pickup/failed")"
echo "deploy → first call, web API (curl --data-binary): $(stats "${api[@]}") ms"
echo "deploy → first call, pickup directory:            $(stats "${pickup[@]}") ms"
echo "pickup / API (medians): $(ratio "$(median "${pickup[@]}")" "$(median "${api[@]}")")"
