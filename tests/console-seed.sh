# A console node whose every page holds content, for the accessibility
# check and the console benchmark: a DNS zone with a record, a dyndns
# host and a proxy route, a mail stuck in the queue, a PostgreSQL group
# whose servers are down, a deployed service, a job and a topic, A/B
# slots on a stand-in disk, and a reaction flow run waiting for its
# (absent) executor. Source after tests/lib.sh.

# seeded_console STATE: sets BASE and PASSWORD (console_node).
seeded_console() {
  local STATE=$1 DNS_PORT RX_PORT D
  read -r DNS_PORT RX_PORT < <(free_ports 2)
  cat >"$STATE/seed.toml" <<TOML
[dpx]
zone = "a11y.test."
port = $DNS_PORT
[[dpx.records]]
name = "www"
type = "A"
value = "192.0.2.10"
[[dpx.dyndns.users]]
name = "alice"
hostnames = ["home.a11y.test"]
[[dpx.routes]]
host = "app.a11y.test"
backend = "http://127.0.0.1:9"
[mail.relay]
mode = "smarthost"
host = "127.0.0.1"
port = 9
tls = "none"
$(pgha_down_group 9 9)
[integrator]
tls = "off"
workers = 1
[[integrator.security]]
name = "partner"
kind = "apikey"
[[integrator.channels]]
name = "hello"
url_path = "/hello"
service = "hello.world"
security = "partner"
[[integrator.outgoing]]
name = "crm"
host = "http://127.0.0.1:9"
[[integrator.jobs]]
name = "nightly"
service = "hello.world"
kind = "cron"
cron = "0 3 * * *"
[[integrator.topics]]
name = "orders"
subscribers = ["hello.world"]
[reaction]
port = $RX_PORT
[[reaction.agents]]
name = "app1"
[[reaction.patterns]]
name = "disk"
regex = "No space left"
[[reaction.rules]]
name = "disk-full"
pattern = "disk"
flow = "clean"
start = "approval"
[[reaction.flows]]
name = "clean"
[[reaction.flows.tasks]]
name = "usage"
kind = "command"
host = "app1"
command = "df /"
TOML
  seed_ports "$STATE/seed.toml"
  # A stand-in A/B disk, so the System update page shows both slots.
  D=$STATE/disk; mkdir -p "$D/esp/loader/entries"; echo a >"$D/booted"
  printf 'title ALPHA-REN slot a\nlinux /a/vmlinuz\noptions alpharen.slot=a\n' >"$D/esp/loader/entries/alpharen-a.conf"
  printf 'title ALPHA-REN slot b\nlinux /b/vmlinuz\noptions alpharen.slot=b\n' >"$D/esp/loader/entries/alpharen-b+3.conf"
  printf 'VERSION_ID=0.1.0\nBUILD_ID=a11y\nALPHAREN_BOARD=qemu-x86_64\n' >"$D/os-release"
  export ALPHAREN_UPDATE_TARGET=$D ALPHAREN_OS_RELEASE=$D/os-release
  console_node "$STATE" a11y
  printf 'from alpharen.integrator import Service\n\nclass Hello(Service):\n    """Says hello."""\n    name = "hello.world"\n\n    def handle(self):\n        self.response.payload = {"hi": 1}\n' >"$STATE/hello.py"
  ctl integrator deploy "$STATE/hello.py" >/dev/null || fail "deploy"
  ctl mail test ops@example.net | has queued || fail "ctl mail test"
  wait_for 20 ctl reaction status || fail "reaction service not reachable"
  ctl reaction start clean >/dev/null || fail "ctl reaction start"
}
