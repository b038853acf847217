#!/usr/bin/env bash
# Durable accept rate of the mail service vs Postfix, same run, same
# client (Postfix's smtp-source), and the service's idle RSS.
#
# Postfix: a private instance (own config and queue dirs under a temp dir)
# on 127.0.0.1, loopback-only, every message to the discard transport, so
# both sides do the same work per message: receive, write the queue file,
# fsync, answer 250. Ours has no relay configured, so messages stay in the
# spool (no delivery work). Not a pass/fail test.
#   MSGS=2000 SESSIONS=10 SIZE=2048 tests/bench/mail.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ALPHAREN=${ALPHAREN_BIN:-$ROOT/target/release/alpharen}
MSGS=${MSGS:-2000}; SESSIONS=${SESSIONS:-10}; SIZE=${SIZE:-2048}
[ -x "$ALPHAREN" ] || { echo "build first: cargo build --release ($ALPHAREN)"; exit 1; }
command -v smtp-source >/dev/null || { echo "smtp-source missing (postfix package; scripts/deps.sh)"; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "run as root (a private Postfix instance needs it)"; exit 1; }
W=$(mktemp -d /tmp/mail-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$W/pf/conf/main.cf" ] && postfix -c "$W/pf/conf" stop >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PF_PORT=$(port); OUR_PORT=$(port)

# --- Postfix, private instance -------------------------------------------
mkdir -p "$W/pf/conf" "$W/pf/spool" "$W/pf/data"
chmod 755 "$W" "$W/pf"; chown postfix "$W/pf/data"
cat >"$W/pf/conf/main.cf" <<EOT
compatibility_level = 3.6
queue_directory = $W/pf/spool
data_directory = $W/pf/data
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.localdomain
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
relay_domains =
default_transport = discard:bench
local_transport = discard:bench
relay_transport = discard:bench
smtpd_recipient_restrictions = permit_mynetworks, reject
smtpd_client_connection_count_limit = 0
default_process_limit = 100
maillog_file = $W/pf/maillog
maillog_file_prefixes = $W
EOT
# master.cf: the stock one with smtpd moved to our loopback port.
sed -e "s/^smtp \+inet .*/127.0.0.1:$PF_PORT inet n - y - - smtpd/" \
    -e 's/^\(smtp \+inet\)/#\1/' /etc/postfix/master.cf >"$W/pf/conf/master.cf"
grep -q '^postlog' "$W/pf/conf/master.cf" || echo 'postlog   unix-dgram n  -       n       -       1       postlogd' >>"$W/pf/conf/master.cf"
postfix -c "$W/pf/conf" set-permissions >/dev/null 2>&1 || true
postfix -c "$W/pf/conf" check >/dev/null 2>&1 || true
script -qec "postfix -c $W/pf/conf start" /dev/null >"$W/pf/start.log" 2>&1 || { cat "$W/pf/start.log"; echo "postfix did not start:"; cat "$W/pf/maillog" 2>/dev/null; exit 1; }
for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PF_PORT) 2>/dev/null && break; sleep 0.1; done

# --- ours ---------------------------------------------------------------
mkdir -p "$W/ours"
printf '[node]\nhostname = "bench"\n[mail.listen]\nport = %s\n[mail.limits]\nmax_connections = 100\nmax_commands_per_minute = 100000\n' "$OUR_PORT" >"$W/ours/cfg.toml"
MAILDEV=${MAIL_DEV_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/examples/mail-dev}
if [ -x "$MAILDEV" ]; then
  "$MAILDEV" apply-config --state-dir "$W/ours" "$W/ours/cfg.toml"
else
  echo "need the mail-dev example to seed config: cargo build -p alpharen-mail --example mail-dev"; exit 1
fi
"$ALPHAREN" serve mail --state-dir "$W/ours" --dev 2>"$W/ours/mail.log" &
OUR_PID=$!; pids+=("$OUR_PID")
for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$OUR_PORT) 2>/dev/null && break; sleep 0.1; done
sleep 0.5
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
IDLE0=$(rss_kb "$OUR_PID")

run() { # PORT → seconds for MSGS messages
  local t0 t1
  t0=$(date +%s.%N)
  smtp-source -s "$SESSIONS" -m "$MSGS" -l "$SIZE" -f bench@example.org -t sink@example.net "127.0.0.1:$1" >"$W/source-$1.log" 2>&1 \
    || { echo "smtp-source against port $1 failed:" >&2; tail -5 "$W/source-$1.log" >&2; }
  t1=$(date +%s.%N)
  echo "$t0 $t1" | awk '{printf "%.3f\n", $2-$1}'
}
# Warm-up, then the measured runs (alternating, to share disk noise).
smtp-source -s 2 -m 50 -l "$SIZE" -f b@example.org -t s@example.net "127.0.0.1:$PF_PORT" >/dev/null 2>&1
smtp-source -s 2 -m 50 -l "$SIZE" -f b@example.org -t s@example.net "127.0.0.1:$OUR_PORT" >/dev/null 2>&1
PF_T=$(run "$PF_PORT" | tail -1)
OUR_T=$(run "$OUR_PORT" | tail -1)
OURS_QUEUED=$(find "$W/ours/spool/mail/queue" -name '*.msg' | wc -l)
sleep 2
IDLE1=$(rss_kb "$OUR_PID")
pf_rss=0
master=$(tr -d ' ' <"$W/pf/spool/pid/master.pid" 2>/dev/null || echo 0)
for p in "$master" $(pgrep -P "$master" 2>/dev/null || true); do
  r=$(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0); pf_rss=$((pf_rss + ${r:-0}))
done
PF_DONE=$(grep -c 'status=sent' "$W/pf/maillog" 2>/dev/null || true)
awk -v m="$MSGS" -v pf="$PF_T" -v ours="$OUR_T" -v s="$SESSIONS" -v z="$SIZE" \
    -v q="$OURS_QUEUED" -v pd="$PF_DONE" -v i0="$IDLE0" -v i1="$IDLE1" -v prss="$pf_rss" 'BEGIN {
  printf "messages=%d sessions=%d size=%d bytes (smtp-source, loopback)\n", m, s, z
  printf "postfix  %.3f s  %8.1f msg/s  (discarded so far: %d)\n", pf, m/pf, pd - 50
  printf "alpharen %.3f s  %8.1f msg/s  (spooled: %d)\n", ours, m/ours, q - 50
  printf "ratio alpharen/postfix accept rate: %.2f\n", (m/ours)/(m/pf)
  printf "alpharen mail idle RSS: %d KiB at start, %d KiB after the run (postfix processes: %d KiB total)\n", i0, i1, prss
}'
