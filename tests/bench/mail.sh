#!/usr/bin/env bash
# Durable accept rate of the mail service vs Postfix, same run, same
# client (Postfix's smtp-source), and the service's idle RSS.
#
# Postfix: a private instance (own config and queue dirs under a temp dir)
# on 127.0.0.1, loopback-only, every message to the discard transport, so
# both sides do the same work per message: receive, write the queue file,
# fsync, answer 250. Ours has no relay configured, so messages stay in the
# spool (no delivery work). RUNS runs each, alternating: medians, spread,
# ratio of the medians. Not a pass/fail test, but a failed smtp-source or
# command stops it.
#   RUNS=3 MSGS=2000 SESSIONS=10 SIZE=2048 tests/bench/mail.sh
. "$(dirname "$0")/lib.sh"
MSGS=${MSGS:-2000}; SESSIONS=${SESSIONS:-10}; SIZE=${SIZE:-2048}
command -v smtp-source >/dev/null || fail "smtp-source missing (postfix package; scripts/deps.sh)"
[ "$(id -u)" -eq 0 ] || fail "run as root (a private Postfix instance needs it)"
W=$(mktemp -d /tmp/mail-bench.XXXXXX)
on_exit "rm -rf $W"
on_exit "[ -f $W/pf/conf/main.cf ] && postfix -c $W/pf/conf stop >/dev/null 2>&1"
read -r PF_PORT OUR_PORT < <(free_ports 2)

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
script -qec "postfix -c $W/pf/conf start" /dev/null >"$W/pf/start.log" 2>&1 || { cat "$W/pf/start.log" "$W/pf/maillog"; fail "postfix did not start"; }
wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PF_PORT" || fail "postfix does not listen on $PF_PORT"

# --- ours ---------------------------------------------------------------
mkdir -p "$W/ours"
printf '[node]\nhostname = "bench"\n[mail.listen]\nport = %s\n[mail.limits]\nmax_connections = 100\nmax_commands_per_minute = 100000\n' "$OUR_PORT" >"$W/ours/cfg.toml"
MAILDEV=${MAIL_DEV_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/examples/mail-dev}
[ -x "$MAILDEV" ] || fail "need the mail-dev example to seed config: cargo build -p alpharen-mail --example mail-dev"
"$MAILDEV" apply-config --state-dir "$W/ours" "$W/ours/cfg.toml"
"$ALPHAREN" serve mail --state-dir "$W/ours" --dev 2>"$W/ours/mail.log" &
OUR_PID=$!; on_exit "kill $OUR_PID 2>/dev/null"
wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$OUR_PORT" || { cat "$W/ours/mail.log"; fail "mail does not listen on $OUR_PORT"; }
sleep 0.5
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
IDLE0=$(rss_kb "$OUR_PID")

# rate PORT: MSGS messages through smtp-source; sets RATE (msg/s).
rate() {
  local t0=$EPOCHREALTIME
  smtp-source -s "$SESSIONS" -m "$MSGS" -l "$SIZE" -f bench@example.org -t sink@example.net "127.0.0.1:$1" >"$W/source-$1.log" 2>&1 \
    || { tail -5 "$W/source-$1.log"; fail "smtp-source against port $1 exited $?"; }
  RATE=$(awk -v m="$MSGS" -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", m / (b - a) }')
}
# Warm-up, then the measured runs (alternating, to share disk noise).
smtp-source -s 2 -m 50 -l "$SIZE" -f b@example.org -t s@example.net "127.0.0.1:$PF_PORT" >/dev/null 2>&1 || fail "postfix warm-up"
smtp-source -s 2 -m 50 -l "$SIZE" -f b@example.org -t s@example.net "127.0.0.1:$OUR_PORT" >/dev/null 2>&1 || fail "alpharen warm-up"
pf=() ours=()
for _ in $(seq 1 "$RUNS"); do rate "$PF_PORT"; pf+=("$RATE"); rate "$OUR_PORT"; ours+=("$RATE"); done
OURS_QUEUED=$(find "$W/ours/spool/mail/queue" -name '*.msg' | wc -l)
sleep 2
IDLE1=$(rss_kb "$OUR_PID")
pf_rss=0
master=$(tr -d ' ' <"$W/pf/spool/pid/master.pid" 2>/dev/null || echo 0)
for p in "$master" $(pgrep -P "$master" 2>/dev/null || true); do
  r=$(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0); pf_rss=$((pf_rss + ${r:-0}))
done
PF_DONE=$(grep -c 'status=sent' "$W/pf/maillog" || [ $? = 1 ])
echo "messages=$MSGS sessions=$SESSIONS size=$SIZE bytes (smtp-source, loopback), $RUNS runs each"
a=$(stats "${pf[@]}"); echo "postfix  msg/s $a (discarded so far: $((PF_DONE - 50)))"
a=$(stats "${ours[@]}"); echo "alpharen msg/s $a (spooled: $((OURS_QUEUED - 50)))"
a=$(ratio "$(median "${ours[@]}")" "$(median "${pf[@]}")"); echo "ratio alpharen/postfix accept rate (medians): $a"
echo "alpharen mail idle RSS: $IDLE0 KiB at start, $IDLE1 KiB after the runs (postfix processes: $pf_rss KiB total)"
