#!/usr/bin/env bash
# The console's Integrator page in headless Chromium (tests/browser/
# integrator.mjs): deploy by the file chooser, invoke with a payload, a
# refused file's traceback while the old version answers, source,
# versions, rollback, undeploy; the Jobs, Queues and KV tabs: run a job
# now, re-drive a dead letter, set and read keys; the Packages tab: upload
# a pure wheel, a Windows one refused.
. "$(dirname "$0")/../lib.sh"
browser_deps
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
[[integrator.jobs]]
name = "nightly"
service = "kv.note"
kind = "cron"
cron = "0 3 * * *"
payload = { key = "ran", value = "nightly" }
[[integrator.topics]]
name = "orders"
subscribers = ["kv.note"]
max_attempts = 1
backoff_ms = 100
TOML
seed_ports "$STATE/seed.toml"
console_node "$STATE" int1

svc() { # svc GREETING: a service file answering {"hi": GREETING}
  printf 'from alpharen.integrator import Service\n\nclass Hello(Service):\n    """Says hello."""\n    name = "hello.world"\n\n    def handle(self):\n        self.response.payload = {"hi": "%s", "to": (self.request.payload or {}).get("name")}\n' "$1"
}
FILES=$STATE/files; mkdir -p "$FILES/hello2"
svc one >"$FILES/hello.py"
{ svc two | head -n 7; printf '        self.response.payload = {"hi": "two"\n'; } >"$FILES/broken.py"
printf 'import redis\nimport xmltodict\n' >"$FILES/needs.py"
svc two >"$FILES/hello2/hello.py"
/usr/bin/python3 - "$FILES" <<'PY'
import sys, zipfile
for name, tag in (('demo', 'py3-none-any'), ('fake', 'cp311-cp311-win_amd64')):
    with zipfile.ZipFile('%s/%s-1.0-%s.whl' % (sys.argv[1], name, tag), 'w') as z:
        z.writestr('%s/__init__.py' % name, '')
        z.writestr('%s-1.0.dist-info/WHEEL' % name, 'Wheel-Version: 1.0\nTag: %s\n' % tag)
PY
# For the Jobs, Queues and KV tabs: a subscriber that fails until the key
# "fixed" is set, and one message that it has already failed for good.
cat >"$STATE/note.py" <<'PY'
from alpharen.integrator import Service

class Note(Service):
    name = "kv.note"

    def handle(self):
        p = self.request.payload
        if p.get("fail") and not self.kv.get("fixed"):
            raise ValueError("not fixed yet")
        self.kv.set(p["key"], p["value"])
PY
ctl integrator deploy "$STATE/note.py" >/dev/null || fail "deploy note.py"
ctl integrator publish orders '{"key": "o1", "value": "redriven", "fail": true}' >/dev/null || fail "publish"
wait_for 15 bash -c "ctl --json integrator topics | jq -e '.[] | select(.topic == \"orders\") | .dead == 1'" ||
  { ctl integrator topics; fail "the order did not become a dead letter"; }

TEST_OUT=$OUT timeout 180 node "$DIR/integrator.mjs" "$BASE" "$PASSWORD" "http://127.0.0.1:$LB_PORT" "$FILES" ||
  fail "integrator console test (screenshots in $OUT)"
pass "integrator page walk-through; screenshots in $OUT"
