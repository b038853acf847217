#!/usr/bin/env bash
# Projects and packages of the integrator: a zip of a service with a helper
# module and a helper package deployed as one unit through the API, a second
# version through ctl changing the helper's answer, rollback of the whole
# unit, unsafe or broken units refused (entry, file and line named, every
# problem at once) while the old version answers, a directory deploy, the
# requests wheels (scripts/deps.sh downloads them) uploaded and used against
# a local http.server with no request dropped while the workers restart,
# SQLAlchemy's 3 MiB compiled wheel uploaded in one API request and imported, a
# wheel for another platform refused with its tag, a viewer token 403, and a
# project zip picked up from the pickup directory.
. "$(dirname "$0")/../lib.sh"
for tool in curl jq; do command -v $tool >/dev/null || fail "needs $tool (scripts/deps.sh)"; done
WHEELS=/var/cache/alpharen-test-wheels
ls $WHEELS/requests-*.whl $WHEELS/urllib3-*.whl $WHEELS/idna-*.whl $WHEELS/certifi-*.whl \
  $WHEELS/charset_normalizer-*.whl $WHEELS/sqlalchemy-*.whl $WHEELS/greenlet-*.whl $WHEELS/typing_extensions-*.whl >/dev/null 2>&1 || fail "no test wheels in $WHEELS: run scripts/deps.sh"
STATE=$(mktemp -d /tmp/alpharen-project.XXXXXX)
on_exit "rm -rf $STATE"
read -r FILES_PORT < <(free_ports 1)
cat >"$STATE/seed.toml" <<'TOML'
[integrator]
tls = "off"
workers = 2
[[integrator.channels]]
name = "hello"
url_path = "/hello"
service = "api.hello"
[[integrator.channels]]
name = "fetch"
url_path = "/fetch"
service = "fetcher.fetch"
TOML
web_node
mkdir -p "$STATE/files" && echo "pong from http.server" >"$STATE/files/ping.txt"
(cd "$STATE/files" && exec /usr/bin/python3 -m http.server "$FILES_PORT" --bind 127.0.0.1) >"$STATE/http.log" 2>&1 &
on_exit "kill $! 2>/dev/null"

req POST /api/v1/setup -H 'content-type: application/json' --data-binary \
  "$(jq -nc --arg c "$(cat "$STATE/setup-code")" '{code: $c, admin_password: "correct horse", hostname: "dev1"}')"
expect 200 "setup"
req POST /api/v1/session -H 'content-type: application/json' --data-binary '{"username":"admin","password":"correct horse"}' -c "$STATE/jar"
CSRF=$(jq -r .csrf <<<"$BODY")
token() { req POST /api/v1/tokens -b "$STATE/jar" -H "x-csrf-token: $CSRF" -H 'content-type: application/json' --data-binary "$1"; jq -r .secret <<<"$BODY"; }
TOKEN=$(token '{"name":"editor","role":"admin"}')
RO=$(token '{"name":"watcher"}')

# zipit ZIP NAME=TEXT...: a zip with those entries (any name, "../" too).
zipit() {
  /usr/bin/python3 - "$@" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], 'w') as z:
    for arg in sys.argv[2:]:
        name, _, text = arg.partition('=')
        z.writestr(name, text)
PY
}
API='from zato.server.service import Service
from models import User
from myproj.text import greet

class Hello(Service):
    def handle(self):
        self.response.payload = {"hi": greet(User("ann"))}
'
MODELS='class User:
    def __init__(self, name):
        self.name = name
'
project() { # project ZIP GREETING: the project under a wrapper folder proj/
  zipit "$1" "proj/api.py=$API" "proj/models.py=$MODELS" "proj/myproj/__init__.py=" \
    "proj/myproj/text.py=def greet(user):
    return '$2 ' + user.name
"
}
hello_is() { curl -sf "$LB/hello" | jq -e --arg w "$1" '.hi == $w' >/dev/null; }

project "$STATE/proj.zip" hello
req POST /api/v1/integrator/services/proj.zip -H "authorization: Bearer $TOKEN" --data-binary @"$STATE/proj.zip"
expect 200 "deploy a project zip"
jq -e '.module == "proj" and .version == 1 and (.services | map(.name) == ["api.hello"])
  and .files == ["api.py", "models.py", "myproj/__init__.py", "myproj/text.py"]' <<<"$BODY" >/dev/null \
  || fail "deploy answer: $BODY"
wait_for 10 hello_is "hello ann" || fail "the project's service does not answer through its helpers"
pass "a zip project (helper module, helper package, wrapper folder) deploys as one unit; only api.hello is a service"

project "$STATE/proj2.zip" howdy
remote() { ALPHAREN_TOKEN=$TOKEN "$ALPHAREN" ctl --state-dir /nonexistent --node "https://localhost:$HTTPS_PORT" --cacert "$STATE/tls/cert.pem" "$@"; }
remote integrator deploy "$STATE/proj2.zip" --name proj.zip >/dev/null || fail "ctl --node deploy of version 2"
wait_for 10 hello_is "howdy ann" || fail "version 2's helper is not used"
ctl integrator rollback proj 1 >/dev/null || fail "rollback"
wait_for 10 hello_is "hello ann" || fail "rollback did not bring version 1's helper back"
ctl --json integrator versions proj.zip | jq -e 'length == 2 and .[0].active and (.[1].active | not)' >/dev/null \
  || fail "versions of the unit: $(ctl --json integrator versions proj.zip)"
pass "version 2 (ctl --node) changes the helper's answer; rollback to 1 takes the whole unit back"

zipit "$STATE/evil.zip" "api.py=$API" "../evil.py=x = 1"
req POST /api/v1/integrator/services/proj.zip -H "authorization: Bearer $TOKEN" --data-binary @"$STATE/evil.zip"
expect 422 "a zip with a path traversal entry"
jq -e '.message | contains("../evil.py") and contains("outside the archive")' <<<"$BODY" >/dev/null || fail "traversal refusal: $BODY"
zipit "$STATE/notes.zip" "api.py=$API" "notes.txt=hi"
req POST /api/v1/integrator/services/proj.zip -H "authorization: Bearer $TOKEN" --data-binary @"$STATE/notes.zip"
expect 422 "a zip with a non-.py file"
jq -e '.message | contains("notes.txt")' <<<"$BODY" >/dev/null || fail "non-.py refusal: $BODY"
mkdir -p "$STATE/dir/myproj"
printf '%s' "$API" | sed 's/^from myproj.text import greet/import not_installed_anywhere\nfrom myproj.text import greet/' >"$STATE/dir/api.py"
printf 'class User:\n    def __init__(self, name)\n        self.name = name\n' >"$STATE/dir/models.py"
: >"$STATE/dir/myproj/__init__.py"
printf 'def greet(user):\n    return "dir " + user.name\n' >"$STATE/dir/myproj/text.py"
out=$(ctl integrator deploy "$STATE/dir" --name proj 2>&1) && fail "a broken directory deployed: $out"
has -F 'models.py, line 2: SyntaxError' <<<"$out" || fail "the syntax error's file and line are not named: $out"
has -F 'api.py, line 3: `import not_installed_anywhere`' <<<"$out" || fail "the second file's problem is not named too: $out"
has -F 'ctl integrator packages add' <<<"$out" || fail "the missing import does not say how to install it: $out"
hello_is "hello ann" || fail "version 1 stopped answering after refused deploys"
sed -i 's/(self, name)$/(self, name):/; /not_installed_anywhere/d' "$STATE/dir/models.py" "$STATE/dir/api.py"
ctl integrator deploy "$STATE/dir" --name proj >/dev/null || fail "the fixed directory does not deploy"
wait_for 10 hello_is "dir ann" || fail "the directory deploy does not answer"
pass "traversal and non-.py entries refused by name; every problem of every file at once; a directory deploys"

# --- packages -------------------------------------------------------------
printf 'import requests\nfrom zato.server.service import Service\n\nclass Fetch(Service):\n    def handle(self):\n        r = requests.get("http://127.0.0.1:%s/ping.txt", timeout=5)\n        self.response.payload = {"status": r.status_code, "text": r.text.strip(), "requests": requests.__version__}\n' \
  "$FILES_PORT" >"$STATE/fetcher.py"
out=$(ctl integrator deploy "$STATE/fetcher.py" 2>&1) && fail "a service importing requests deployed before its wheel: $out"
has -F '`import requests`: requests is not installed on this node; upload its wheel with `ctl integrator packages add`' <<<"$out" \
  || fail "missing package message: $out"
req_file=$(ls $WHEELS/requests-*.whl)
req POST "/api/v1/integrator/packages/$(basename "$req_file")" -H "authorization: Bearer $RO" --data-binary @"$req_file"
expect 403 "a wheel upload with a viewer token"
# Calls keep coming while the package set changes and the workers restart.
( for i in $(seq 1 40); do curl -s -o /dev/null -w '%{http_code}\n' "$LB/hello"; sleep 0.05; done ) >"$STATE/during.txt" &
LOOP=$!
req POST "/api/v1/integrator/packages/$(basename "$req_file")" -H "authorization: Bearer $TOKEN" --data-binary @"$req_file"
expect 200 "a wheel upload with an admin token"
ctl integrator packages add $WHEELS/urllib3-*.whl $WHEELS/idna-*.whl $WHEELS/charset_normalizer-*.whl >/dev/null \
  || fail "ctl integrator packages add"
remote integrator packages add $WHEELS/certifi-*.whl >/dev/null || fail "ctl --node integrator packages add"
wait $LOOP
[ "$(sort -u "$STATE/during.txt")" = 200 ] || fail "calls failed while the workers restarted: $(sort "$STATE/during.txt" | uniq -c)"
remote --json integrator packages | jq -e '.set_version == 5 and (.packages | map(.name) | sort ==
  ["certifi", "charset_normalizer", "idna", "requests", "urllib3"]) and all(.packages[]; .size > 0 and .added_by != "")' >/dev/null \
  || fail "package list (ctl --node): $(ctl --json integrator packages)"
ctl integrator deploy "$STATE/fetcher.py" >/dev/null || fail "the requests service does not deploy once its wheels are installed"
wait_for 10 bash -o pipefail -c "curl -sf '$LB/fetch' | jq -e '.status == 200 and .text == \"pong from http.server\"'" \
  || fail "the requests service does not answer: $(curl -s "$LB/fetch")"
pass "5 wheels (one manylinux) uploaded by API, ctl and ctl --node, listed; requests fetches from http.server; no call dropped meanwhile; viewer 403"

# A compiled wheel of more than 3 MiB (SQLAlchemy for cp311 manylinux) goes
# up through the API in one request, and the real package wins over the
# SDK's sqlalchemy stand-in.
for w in $WHEELS/typing_extensions-*.whl $WHEELS/greenlet-*.whl $WHEELS/sqlalchemy-*.whl; do
  req POST "/api/v1/integrator/packages/$(basename "$w")" -H "authorization: Bearer $TOKEN" --data-binary @"$w"
  expect 200 "upload of $(basename "$w") ($(($(stat -c %s "$w") >> 10)) KiB)"
done
printf 'import sqlalchemy\nfrom sqlalchemy import text\nfrom zato.server.service import Service\n\nclass Version(Service):\n    def handle(self):\n        self.response.payload = {"version": sqlalchemy.__version__, "clause": type(text("SELECT 1")).__module__}\n' >"$STATE/sa.py"
ctl integrator deploy "$STATE/sa.py" >/dev/null || fail "a service importing the uploaded SQLAlchemy does not deploy"
out=$(ctl --json integrator invoke sa.version) || fail "invoking sa.version: $out"
jq -e '.body | (.version | startswith("2.0.")) and (.clause | startswith("sqlalchemy.sql"))' <<<"$out" >/dev/null \
  || fail "the service did not run the uploaded SQLAlchemy: $out"
pass "SQLAlchemy's 3 MiB wheel uploaded by the API; the service imports the real package"

zipit "$STATE/fake-1.0-cp311-cp311-win_amd64.whl" "fake/__init__.py=" "fake-1.0.dist-info/WHEEL=Wheel-Version: 1.0
Tag: cp311-cp311-win_amd64
"
req POST /api/v1/integrator/packages/fake-1.0-cp311-cp311-win_amd64.whl -H "authorization: Bearer $TOKEN" \
  --data-binary @"$STATE/fake-1.0-cp311-cp311-win_amd64.whl"
expect 422 "a wheel for Windows"
jq -e '.code == "package_refused" and (.message | contains("tag cp311-cp311-win_amd64 is not for this node"))' <<<"$BODY" >/dev/null \
  || fail "platform refusal: $BODY"
pass "a wheel for another platform is refused naming its tag"

ctl integrator undeploy proj >/dev/null || fail "undeploy"
wait_for 10 bash -c "! curl -sf '$LB/hello'" || fail "the unit still answers after undeploy"
ctl --json integrator list | jq -e 'map(select(.module == "proj")) | length == 0' >/dev/null || fail "unit still listed"
pass "undeploy removes the whole unit"

cp "$STATE/proj2.zip" "$STATE/integrator/pickup/incoming/services/proj.zip"
wait_for 15 hello_is "howdy ann" || fail "a project zip dropped into the pickup directory is not deployed"
[ -f "$STATE/integrator/pickup/processed/proj.zip" ] || fail "the picked-up zip is not in processed/"
pass "a project zip in the pickup directory deploys as the unit's next version"
