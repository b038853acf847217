#!/usr/bin/env bash
# axe-core (WCAG 2.x level A) on every console page at desktop and phone
# width, with each page holding content: a DNS zone with a record, a
# mail stuck in the queue, a deployed service, a job and a topic.
. "$(dirname "$0")/../lib.sh"
. "$ROOT/tests/dpx-lib.sh"
browser_deps
STATE=$(mktemp -d /tmp/alpharen-a11y.XXXXXX); on_exit "rm -rf $STATE"
DNS_PORT=$(free_ports 1)
cat >"$STATE/seed.toml" <<TOML
[dpx]
zone = "a11y.test."
port = $DNS_PORT
[[dpx.records]]
name = "www"
type = "A"
value = "192.0.2.10"
[mail.relay]
mode = "smarthost"
host = "127.0.0.1"
port = 9
tls = "none"
[integrator]
tls = "off"
workers = 1
[[integrator.jobs]]
name = "nightly"
service = "hello.world"
kind = "cron"
cron = "0 3 * * *"
[[integrator.topics]]
name = "orders"
subscribers = ["hello.world"]
TOML
seed_ports "$STATE/seed.toml"
console_node "$STATE" a11y
printf 'from alpharen.integrator import Service\n\nclass Hello(Service):\n    """Says hello."""\n    name = "hello.world"\n\n    def handle(self):\n        self.response.payload = {"hi": 1}\n' >"$STATE/hello.py"
ctl integrator deploy "$STATE/hello.py" >/dev/null || fail "deploy"
ctl mail test ops@example.net | has queued || fail "ctl mail test"
TEST_OUT=$OUT timeout 300 node "$DIR/a11y.mjs" "$BASE" "$PASSWORD" || fail "accessibility check (screenshots in $OUT)"
pass "axe-core: no WCAG level A violation on any console page, desktop or phone"
