#!/usr/bin/env bash
# The console's Integrator page in headless Chromium (tests/browser/
# integrator.mjs): deploy by the file chooser, invoke with a payload, a
# refused file's traceback while the old version answers, source,
# versions, rollback, undeploy; the Jobs, Queues and KV tabs: run a job
# now, re-drive a dead letter, set and read keys; the Packages tab: upload
# a pure wheel, a Windows one refused, the package set rolled back; drag and drop on the services
# table, an invoke showing the service's log lines, the Channels,
# Security and Outgoing forms (a field error, ping), a job disabled from
# its row. The channel the form made is then called with curl.
. "$(dirname "$0")/../lib.sh"
browser_deps
STATE=$(mktemp -d /tmp/alpharen-intui.XXXXXX)
export ALPHAREN STATE; export -f ctl   # for the `bash -c` waits
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
[[integrator.jobs]]
name = "tick"
service = "kv.note"
kind = "interval"
seconds = 1
payload = { key = "tick", value = "t" }
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
# Not `svc two | head -n 7`: printf writes line by line, and under load head
# can exit before the last write, which then kills the test by SIGPIPE.
svc two >"$FILES/broken.py"
sed -i '$d' "$FILES/broken.py"
printf '        self.response.payload = {"hi": "two"\n' >>"$FILES/broken.py"
printf 'import redis\nimport xmltodict\n' >"$FILES/needs.py"
svc two >"$FILES/hello2/hello.py"
cat >"$FILES/logs.py" <<'PY'
from alpharen.integrator import Service

class Logs(Service):
    name = "logs.demo"

    def handle(self):
        order = (self.request.payload or {}).get("order")
        self.logger.info("handling order %s", order)
        print("printed for order", order)
        self.response.payload = {"done": True}
PY
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
wait_for 15 bash -o pipefail -c "ctl --json integrator topics | jq -e '.[] | select(.topic == \"orders\") | .dead == 1'" ||
  { ctl integrator topics; fail "the order did not become a dead letter"; }

TEST_OUT=$OUT timeout 180 node "$DIR/integrator.mjs" "$BASE" "$PASSWORD" "http://127.0.0.1:$LB_PORT" "$FILES" ||
  fail "integrator console test (screenshots in $OUT)"
pass "integrator page walk-through; screenshots in $OUT"
# The package set rollback the page made, as ctl lists it.
ctl --json integrator packages sets | jq -e '.sets[0] | .change == "rollback to 1" and .current and .packages == ["demo==1.0"]' >/dev/null ||
  fail "package sets after the rollback: $(ctl integrator packages sets)"
pass "ctl integrator packages sets: the current set is \"rollback to 1\" with demo==1.0"
# The channel made with the form, called as a client would.
out=$(curl -sf "http://127.0.0.1:$LB_PORT/logs-demo" -X POST -H 'content-type: application/json' -d '{"order": 9}') ||
  fail "curl of the channel made with the form failed"
[ "$(jq -r .done <<<"$out")" = true ] || fail "the channel answered $out"
ctl --json config history | jq -e '[.revisions[] | select(.comment == "channel logsch added")] | length == 1' >/dev/null ||
  fail "the channel form's change is not a config revision: $(ctl config history)"
pass "curl POST /logs-demo answers {\"done\": true}; the form's change is revision \"channel logsch added\""
ctl integrator kv get made | has -F "by the form's job" || fail "the job added in the form did not write its key: $(ctl integrator kv get made)"
ctl config show | has -F sql-secret-from-the-form && fail "the SQL password from the form is in the configuration"
ctl config export --with-secrets | has -F sql-secret-from-the-form || fail "the SQL password from the form is not in the secret store"
pass "the job added in the form wrote its key; the SQL connection's password went to the secret store, not the configuration"

