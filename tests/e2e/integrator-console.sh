#!/usr/bin/env bash
# The console's Integrator page in headless Chromium (tests/browser/
# integrator.mjs): deploy by the file chooser, invoke with a payload, a
# refused file's traceback while the old version answers, source,
# versions, rollback, undeploy.
. "$(dirname "$0")/../lib.sh"
[ -x /usr/bin/chromium ] || fail "needs /usr/bin/chromium (scripts/deps.sh)"
command -v npm >/dev/null || fail "needs node and npm"
DIR=$ROOT/tests/browser
if [ ! -d "$DIR/node_modules/playwright-core" ]; then
  (cd "$DIR" && timeout 300 npm install --no-audit --no-fund --silent) || fail "npm install playwright-core"
fi
STATE=$(mktemp -d /tmp/alpharen-intui.XXXXXX)
on_exit "rm -rf $STATE"
cat >"$STATE/seed.toml" <<'TOML'
[integrator]
# Plain HTTP on purpose: the page is under test, not the channel's TLS.
tls = "off"
workers = 1
[[integrator.channels]]
name = "hello"
url_path = "/hello"
service = "hello.world"
TOML
seed_ports "$STATE/seed.toml"
start_node "$STATE" --config "$STATE/seed.toml"
BASE=https://127.0.0.1:$HTTPS_PORT
wait_for 20 curl -skf "$BASE/api/v1/health" || fail "web did not come up"
PASSWORD="correct horse battery"
curl -skf -H 'content-type: application/json' \
  --data "{\"code\":\"$(cat "$STATE/setup-code")\",\"admin_password\":\"$PASSWORD\",\"hostname\":\"int1\"}" \
  "$BASE/api/v1/setup" >/dev/null || fail "setup"

svc() { # svc GREETING: a service file answering {"hi": GREETING}
  printf 'from alpharen.integrator import Service\n\nclass Hello(Service):\n    """Says hello."""\n    name = "hello.world"\n\n    def handle(self):\n        self.response.payload = {"hi": "%s", "to": (self.request.payload or {}).get("name")}\n' "$1"
}
FILES=$STATE/files; mkdir -p "$FILES/hello2"
svc one >"$FILES/hello.py"
{ svc two | head -n 7; printf '        self.response.payload = {"hi": "two"\n'; } >"$FILES/broken.py"
svc two >"$FILES/hello2/hello.py"
TEST_OUT=$OUT timeout 180 node "$DIR/integrator.mjs" "$BASE" "$PASSWORD" "http://127.0.0.1:$LB_PORT" "$FILES" ||
  fail "integrator console test (screenshots in $OUT)"
pass "integrator page walk-through; screenshots in $OUT"
