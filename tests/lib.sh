# Helpers for end-to-end tests. Source it: `. "$(dirname "$0")/../lib.sh"`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ALPHAREN=${ALPHAREN_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/alpharen}
OUT=${TEST_OUT:-$ROOT/tests/out}
mkdir -p "$OUT"
# Run as root, the node starts its services as their own users (ar-*),
# which must be able to pass through every directory above a state
# directory kept under $OUT: a checkout below a private home (/root is
# 0700) would lock them out. Give such parents search permission only.
if [ "$(id -u)" = 0 ]; then
  _d=$OUT
  while [ "$_d" != / ]; do
    [ -n "$(find "$_d" -maxdepth 0 -perm -o+x)" ] || { chmod o+x "$_d"; echo "note: gave others search permission on $_d (service users reach state directories below it)"; }
    _d=$(dirname "$_d")
  done
fi
# A command failing outside a condition ends the test (set -e) without a
# word; the ERR trap keeps which one (set -E: also inside functions), and
# the exit reports it as a failure. Only kept, not printed: a command
# substitution runs the trap too, where a failure ends nothing.
set -E
_err='' _failed=''
trap '_err="\`$BASH_COMMAND\` exited $? (line $LINENO of ${BASH_SOURCE[0]##*/})"' ERR
_cleanups=()
cleanup() {
  local rc=$? i
  [ "$rc" != 0 ] && [ -z "$_failed" ] && [ -n "$_err" ] && report "$_err"
  for ((i=${#_cleanups[@]}-1; i>=0; i--)); do eval "${_cleanups[i]}" || true; done
}
trap cleanup EXIT
on_exit() { _cleanups+=("$*"); }
# The state directories of the nodes this test started (start_node,
# start_node_in): a failure ends with their web service's last warnings
# and the supervisor's last events, the evidence CI's summary shows.
_node_dirs=()
fail() { _failed=1; report "$@"; exit 1; }
report() {
  echo "FAIL: $*" >&2
  set +e  # the evidence below may be missing; the test ends either way
  local d
  for d in "${_node_dirs[@]}"; do
    [ -d "$d/log" ] || continue
    echo "-- the node in $d: web and integrator warnings, then supervisor events (last 4 each)" >&2
    grep -hE " (WARN|ERROR) " "$d/log/web.log" 2>/dev/null | tail -n 4 | cut -c1-300 >&2
    grep -hE " (WARN|ERROR) " "$d/log/integrator.log" 2>/dev/null | tail -n 4 | cut -c1-300 >&2
    grep -h " event " "$d/log/supervisor.log" 2>/dev/null | tail -n 4 | cut -c1-300 >&2
  done
}
pass() { echo "ok: $*"; }
# wait_for SECONDS CMD...: run CMD every 0.1 s until it succeeds or time runs out.
wait_for() {
  local limit=$1; shift
  local tries=$((limit * 10))
  for ((i = 0; i < tries; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}
# start_node DIR [ARGS...]: `alpharen run --dev` in the background; waits for the socket.
start_node() {
  local dir=$1; shift
  mkdir -p "$dir"
  "$ALPHAREN" run --state-dir "$dir" --dev "$@" >"$dir/console.log" 2>&1 &
  NODE_PID=$!
  _node_dirs+=("$dir")
  on_exit "kill $NODE_PID 2>/dev/null; wait $NODE_PID 2>/dev/null"
  wait_for 20 "$ALPHAREN" ctl --state-dir "$dir" status || { cat "$dir/console.log"; fail "node in $dir did not start"; }
}
ctl() { "$ALPHAREN" ctl --state-dir "$STATE" "$@"; }
# start_integrator SEED: free ports into the seed (seed_ports), a node on
# $STATE started with it, LB set to its integrator's address; waits for
# the integrator's control socket.
start_integrator() {
  seed_ports "$1"
  LB=http://127.0.0.1:$LB_PORT
  start_node "$STATE" --config "$1"
  wait_for 20 ctl integrator status || fail "integrator control socket not reachable"
}
# web_node: the node of $STATE from $STATE/seed.toml (its ports seeded),
# waits for its web; sets BASE (the API) and LB (the integrator's port).
web_node() {
  seed_ports "$STATE/seed.toml"
  start_node "$STATE" --config "$STATE/seed.toml"
  BASE=https://127.0.0.1:$HTTPS_PORT
  LB=http://127.0.0.1:$LB_PORT
  wait_for 20 curl -skf "$BASE/api/v1/health" || { cat "$STATE/console.log"; fail "web did not come up"; }
}
# req METHOD PATH [CURL ARGS...]: a request to $BASE; sets CODE and BODY.
# expect CODE WHAT: fails unless the last req answered CODE.
req() {
  local m=$1 p=$2; shift 2
  CODE=$(curl -sk -o "$STATE/body" -w '%{http_code}' -X "$m" "$BASE$p" "$@") || CODE=000
  BODY=$(cat "$STATE/body" 2>/dev/null || true)
}
expect() { [ "$CODE" = "$1" ] || fail "$2: got HTTP $CODE, want $1: $BODY"; }
# has PATTERN...: like `grep -q`, but reads all its input, so the writer of
# a pipe is never cut off by SIGPIPE (which `set -o pipefail` would report).
has() { grep "$@" >/dev/null; }
# needs CMD...: fails naming the first command (or path) this machine lacks.
needs() { local c; for c in "$@"; do command -v "$c" >/dev/null || fail "needs $c (scripts/deps.sh)"; done; }
export -f has   # also inside `bash -c` waits
# free_ports N: N loopback ports free for TCP and UDP that no other test
# of this machine got in the last hour (tests/free-ports.py says why).
free_ports() { python3 "$ROOT/tests/free-ports.py" "$1"; }
# snmptrapd_start DIR NAME PORT...: Debian's snmptrapd with DIR/NAME.conf
# on the loopback UDP PORTs, numeric OIDs (-On) and no MIBs, logging to
# DIR/NAME.log (its own output in DIR/NAME.out); stopped at exit. Waits
# until every port listens.
snmptrapd_start() {
  local dir=$1 name=$2; shift 2
  local listen; listen=$(printf 'udp:127.0.0.1:%s,' "$@")
  MIBS= MIBDIRS=/nonexistent snmptrapd -f -C -c "$dir/$name.conf" -On -n -Lf "$dir/$name.log" \
    -p "$dir/$name.pid" "${listen%,}" >"$dir/$name.out" 2>&1 &
  local pid=$!
  on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
  local port
  for port in "$@"; do
    wait_for 10 bash -c "ss -Hlun 'sport = :$port' | has ." || { cat "$dir/$name.out"; fail "snmptrapd $name did not start"; }
  done
}
# seed_ports FILE: adds to the `run --config` seed FILE (created if
# missing) the node's listeners on free loopback ports instead of the dev
# defaults (8443, 8080, 2222, 2525, 11223), so a test can run beside other
# nodes on this machine. A key FILE already sets is kept; a table FILE
# already has gets the key under its header. Sets HTTPS_PORT HTTP_PORT
# SSH_PORT SMTP_PORT LB_PORT to the ports the seed holds.
seed_ports() {
  local free; free=$(free_ports 5)
  read -r HTTPS_PORT HTTP_PORT SSH_PORT SMTP_PORT LB_PORT < <(python3 - "$1" $free <<'PY'
import os, re, sys
path = sys.argv[1]
lines = open(path).read().splitlines() if os.path.exists(path) else []
wanted = [("web", "https_port"), ("web", "http_port"), ("ssh", "port"),
          ("mail.listen", "port"), ("integrator", "port")]
ports = []
for (table, key), free in zip(wanted, sys.argv[2:]):
    header = next((i for i, l in enumerate(lines) if l.strip() == f"[{table}]"), None)
    if header is None:
        lines += [f"[{table}]", f"{key} = {free}"]
        ports.append(free); continue
    end = next((i for i in range(header + 1, len(lines)) if lines[i].lstrip().startswith("[")), len(lines))
    set_ = next((m for l in lines[header + 1:end] if (m := re.match(rf"\s*{key}\s*=\s*(\d+)", l))), None)
    if set_:
        ports.append(set_.group(1))
    else:
        lines.insert(header + 1, f"{key} = {free}")
        ports.append(free)
open(path, "w").write("\n".join(lines) + "\n")
print(*ports)
PY
)
  [ -n "$LB_PORT" ] || fail "seed_ports $1: no free ports"
}
# py_venv DIR MODULES PACKAGE...: a venv at DIR with PACKAGEs from PyPI,
# kept between runs and made again when `import MODULES` fails in it.
# online CMD...: CMD in the machine's own network namespace when the
# script runs in one of its own (tests/run-e2e.sh sets E2E_HOSTNET), for
# what it fetches from the registries; else CMD as it is.
online() {
  if [ -n "${E2E_HOSTNET:-}" ]; then nsenter --net="$E2E_HOSTNET" -- "$@"; else "$@"; fi
}
py_venv() {
  local dir=$1 modules=$2; shift 2
  "$dir/bin/python" -c "import $modules" 2>/dev/null && return 0
  rm -rf "$dir"
  python3 -m venv "$dir" || fail "python3 -m venv $dir"
  online timeout 300 "$dir/bin/pip" install -q "$@" || fail "pip install $* (needs PyPI)"
}
# partition DISK NAME: "START SIZE" (512-byte sectors) of the GPT
# partition NAME of the disk image DISK.
partition() { sfdisk -J "$1" | jq -r --arg n "$2" '.partitiontable.partitions[] | select(.name == $n) | "\(.start) \(.size)"'; }
# build_image: the release binary and the QEMU image from it, rebuilt only
# when one of their inputs is newer than the image. Sets IMG.
build_image() { # [BOARD], default qemu-x86_64
  local board=${1:-qemu-x86_64}
  IMG=$ROOT/images/out/alpharen-$board.img
  local bin=${CARGO_TARGET_DIR:-$ROOT/target}/release/alpharen
  (cd "$ROOT" && online cargo build --release -q)
  if [ -f "$IMG" ] && [ -z "$(find "$bin" "$ROOT/images/build.sh" "$ROOT/images/initramfs-init" \
      "$ROOT/board" "$ROOT/overlays" -newer "$IMG" -print -quit)" ]; then
    return 0
  fi
  echo "building the $board image (make test builds it before the e2e step; log in $OUT/build.log)"
  ALPHAREN_BIN=$bin online "$ROOT/images/build.sh" "$board" >"$OUT/build.log" 2>&1 || { cat "$OUT/build.log"; fail "image build ($board)"; }
}

# browser_deps: Playwright and axe-core under tests/browser (npm, once;
# the lock keeps browser tests that start together from installing over
# each other). Sets DIR to tests/browser.
browser_deps() {
  [ -x /usr/bin/chromium ] || fail "needs /usr/bin/chromium (scripts/deps.sh)"
  command -v npm >/dev/null || fail "needs node and npm"
  DIR=$ROOT/tests/browser
  (
    flock 9
    [ -d "$DIR/node_modules/playwright-core" ] && [ -d "$DIR/node_modules/axe-core" ] && exit 0
    cd "$DIR" && online timeout 300 npm install --no-audit --no-fund --silent
  ) 9>"$DIR/.npm-install.lock" || fail "npm install in tests/browser"
}

# pgha_down_group SSH_PORT PG_PORT: a seed's [pgha] with group "main" of
# two servers (127.0.0.1 and 127.0.0.2) on ports where nothing listens,
# for console pages that show a group without PostgreSQL.
pgha_down_group() {
  cat <<TOML
[pgha]
poll_interval = 1
[[pgha.groups]]
key = "main"
[pgha.groups.defaults]
ssh_user = "postgres"
ssh_port = $1
pg_port = $2
pg_replica_user = "replicator"
pg_replica_pwd = "not-used"
pg_data_folder = "/srv/pg"
[[pgha.groups.servers]]
ssh_host = "127.0.0.1"
[[pgha.groups.servers]]
ssh_host = "127.0.0.2"
TOML
}

# console_node STATE HOSTNAME: starts the node of STATE from STATE/seed.toml
# (its ports seeded), waits for the web and completes setup over the API
# with the admin password in PASSWORD. Sets BASE.
console_node() {
  start_node "$1" --config "$1/seed.toml"
  BASE=https://127.0.0.1:$HTTPS_PORT
  wait_for 20 curl -skf "$BASE/api/v1/health" || fail "web did not come up"
  PASSWORD="correct horse battery"
  curl -skf -H 'content-type: application/json' \
    --data "{\"code\":\"$(cat "$1/setup-code")\",\"admin_password\":\"$PASSWORD\",\"hostname\":\"$2\"}" \
    "$BASE/api/v1/setup" >/dev/null || fail "setup"
}

# pg_cluster PORT PASSWORD: Debian's PostgreSQL 15 in a cluster of its own
# (PGDIR, below /tmp where the postgres user reaches it) on
# 127.0.0.1:PORT, with password (scram) authentication over TCP for the
# user postgres and trust on its socket in PGDIR; stopped at exit. Run as
# root, it runs as postgres. pg_cluster_ctl ARGS...: its pg_ctl (start,
# stop, ...); pg_cluster_sql ARGS...: psql on it, unaligned, as postgres.
PG15=/usr/lib/postgresql/15/bin
_pg_as() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_cluster() {
  [ -x $PG15/postgres ] || fail "PostgreSQL 15 missing (scripts/deps.sh)"
  PGPORT=$1
  PGDIR=$(mktemp -d /tmp/pg-cluster.XXXXXX)
  on_exit "rm -rf $PGDIR"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$PGDIR"; fi
  echo "$2" >"$PGDIR/pw"
  _pg_as $PG15/initdb -D "$PGDIR/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    --pwfile="$PGDIR/pw" >"$PGDIR/initdb.log" || { cat "$PGDIR/initdb.log"; fail "initdb"; }
  pg_cluster_ctl start || { cat "$PGDIR/pg.log"; fail "PostgreSQL did not start"; }
  on_exit "_pg_as $PG15/pg_ctl -D $PGDIR/data stop -m immediate >/dev/null 2>&1"
}
pg_cluster_ctl() {
  _pg_as $PG15/pg_ctl -D "$PGDIR/data" -l "$PGDIR/pg.log" -w -t 30 \
    -o "-p $PGPORT -k $PGDIR -c listen_addresses=127.0.0.1" "$@" >/dev/null
}
pg_cluster_sql() { _pg_as $PG15/psql -X -At -h "$PGDIR" -p "$PGPORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }

# rmq_node DIR PORT DIST_PORT EPMD_PORT: Debian's RabbitMQ as a node of
# its own (node name, cookie, data, logs and config below DIR; AMQP on
# 127.0.0.1:PORT; Erlang distribution and epmd on the other two ports),
# started and stopped at exit with its epmd. rmq_start / rmq_stop: start
# it again, stop it (bounded); rmqctl ARGS...: its rabbitmqctl; counts
# QUEUE: the queue's ready and unacknowledged messages, "R U".
RMQBIN=/usr/lib/rabbitmq/bin
rmq_node() {
  [ -x $RMQBIN/rabbitmq-server ] || fail "rabbitmq-server missing (scripts/deps.sh)"
  RMQ=$1
  mkdir -p "$RMQ"
  echo '[].' >"$RMQ/enabled_plugins"
  printf 'listeners.tcp.default = 127.0.0.1:%s\nloopback_users = none\n' "$2" >"$RMQ/rabbitmq.conf"
  : >"$RMQ/rabbitmq-env.conf"
  cat >"$RMQ/env.sh" <<ENV
export HOME=$RMQ RABBITMQ_NODENAME=ar-test-$2@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT=$2 RABBITMQ_DIST_PORT=$3 ERL_EPMD_PORT=$4
export RABBITMQ_MNESIA_BASE=$RMQ/mnesia RABBITMQ_LOG_BASE=$RMQ/log RABBITMQ_CONFIG_FILE=$RMQ/rabbitmq
export RABBITMQ_ENABLED_PLUGINS_FILE=$RMQ/enabled_plugins RABBITMQ_PID_FILE=$RMQ/pid
export RABBITMQ_CONF_ENV_FILE=$RMQ/rabbitmq-env.conf RABBITMQ_ADVANCED_CONFIG_FILE=$RMQ/advanced.config
ENV
  export RMQ RMQBIN
  on_exit "rmqctl stop >/dev/null 2>&1; ERL_EPMD_PORT=$4 epmd -kill >/dev/null 2>&1"
  rmq_start
}
rmqctl() { ( . "$RMQ/env.sh"; timeout 60 "$RMQBIN/rabbitmqctl" -q "$@" ); }
counts() { rmqctl list_queues name messages_ready messages_unacknowledged | awk -v q="$1" '$1 == q {print $2, $3}'; }
export -f rmqctl counts
rmq_start() {
  ( . "$RMQ/env.sh"; exec setsid "$RMQBIN/rabbitmq-server" ) >>"$RMQ/server.log" 2>&1 &
  RMQ_PID=$!
  wait_for 60 rmqctl await_startup --timeout 2 || { tail -20 "$RMQ/server.log"; fail "RabbitMQ did not start"; }
}
rmq_stop() { rmqctl stop "$RMQ/pid" >/dev/null || fail "rabbitmqctl stop"; wait "$RMQ_PID" 2>/dev/null || true; }
