#!/usr/bin/env bash
# Syslog lines/s received and matched: the node's receiver ([syslog.
# receiver], logfwd) vs Debian's rsyslogd, the same stream of LINES
# realistic RFC 3164 lines (sshd, kernel, cron, nginx, postfix from 20
# hosts; one in 10 an sshd "Failed password" at warning) sent over one
# loopback TCP connection, RFC 6587 octet counting. Both sides apply the
# same rule (program sshd, severity warning or above, regex "Failed
# password for"): ours sends an SNMPv2c trap per match to a UDP sink,
# rsyslog writes the line to a file (omfile). Time: from the first byte
# sent to the receiver having taken the last line (ours: `ctl syslog
# status` counts every line; rsyslog: the last line, a match, is in its
# file). Every run checks the counts on both sides (received and matched
# equal to what was sent): a difference stops the bench.
# TCP, not UDP: over UDP a receiver slower than the sender loses
# datagrams, so the count check could not hold at full speed.
# RUNS runs each, alternating: medians, spread, ratio of the medians.
#   RUNS=3 LINES=200000 tests/bench/syslog.sh
. "$(dirname "$0")/lib.sh"
LINES=${LINES:-200000}
needs rsyslogd jq python3
W=$(mktemp -d /tmp/syslog-bench.XXXXXX)
on_exit "rm -rf $W"
chmod 755 "$W"
read -r OUR_PORT RS_PORT SINK_PORT < <(free_ports 3)

# --- the stream: octet-counted frames; the last line is a match.
python3 - "$W/stream" "$LINES" <<'PY'
import random, sys
path, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(22)
hosts = [f"host{i:02d}" for i in range(20)]
def line(i):
    h = rnd.choice(hosts); pid = rnd.randrange(100, 65000)
    ts = f"Dec  2 19:{(i // 60) % 60:02d}:{i % 60:02d}"
    k = i % 10
    if k == 0 or i == n - 1:
        return f"<36>{ts} {h} sshd[{pid}]: Failed password for invalid user admin{i} from 203.0.113.{i % 250} port {1024 + i % 60000} ssh2"
    if k == 1:
        return f"<38>{ts} {h} sshd[{pid}]: Accepted publickey for deploy from 198.51.100.{i % 250} port {2000 + i % 50000} ssh2: ED25519 SHA256:abc{i}"
    if k in (2, 3):
        return f"<4>{ts} {h} kernel: [ {i}.123456] IN=eth0 OUT= MAC=52:54:00:12:34:56 SRC=192.0.2.{i % 250} DST=10.0.0.1 LEN=60 PROTO=TCP SPT={i % 65000} DPT=22"
    if k == 4:
        return f"<78>{ts} {h} CRON[{pid}]: (root) CMD (run-parts /etc/cron.hourly)"
    if k in (5, 6, 7):
        return f"<190>{ts} {h} nginx[{pid}]: 203.0.113.{i % 250} - - \"GET /api/v1/items/{i} HTTP/1.1\" 200 {i % 5000} \"-\" \"curl/8.5.0\""
    return f"<22>{ts} {h} postfix/smtpd[{pid}]: connect from unknown[192.0.2.{i % 250}]"
with open(path, "wb") as f:
    for i in range(n):
        b = line(i).encode()
        f.write(b"%d " % len(b) + b)
PY
MATCHES=$(( (LINES + 9) / 10 ))
(( (LINES - 1) % 10 == 0 )) || MATCHES=$((MATCHES + 1))   # the last line is one too
# send PORT: the whole stream over one TCP connection.
send() {
  python3 - "$1" "$W/stream" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
with open(sys.argv[2], "rb") as f:
    s.sendall(f.read())
s.close()
PY
}
now() { date +%s.%N; }

# --- a UDP sink for our traps (read and thrown away)
python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", int(sys.argv[1])))
while True: s.recv(65536)' "$SINK_PORT" &
SINK_PID=$!
on_exit "kill $SINK_PID 2>/dev/null"

# --- ours
STATE=$W/node
mkdir -p "$STATE"
seed_ports "$STATE/seed.toml"
cat >>"$STATE/seed.toml" <<TOML
[[snmp.trap_targets]]
host = "127.0.0.1"
port = $SINK_PORT
[syslog.receiver]
enabled = true
udp = false
port = $OUR_PORT
[[syslog.receiver.rules]]
name = "ssh-fail"
program = "sshd"
severity = "warning"
message = "Failed password for"
TOML
start_node "$STATE" --config "$STATE/seed.toml"
printf '[secrets]\n"snmp.community" = "bench"\n' >"$STATE/secret.toml"
ctl config apply -f "$STATE/secret.toml" -m community >/dev/null || fail "config apply [secrets]"
wait_for 20 bash -c "'$ALPHAREN' ctl --state-dir '$STATE' --json syslog status | jq -e '.receiver.listeners | length == 1'" \
  || fail "the receiver does not listen"
sleep 1   # the [secrets] reload
# counters: "received matched traps_sent" since the node started.
counters() { ctl --json syslog status | jq -r '.receiver.counters | "\(.received) \(.matched["ssh-fail"]) \(.traps_sent)"'; }

# --- rsyslog: the same rule, matches to a file; impstats counts the rest.
RS=$W/rsyslog
mkdir -p "$RS/work"
rs_conf() { # run number
  cat >"$RS/rsyslog.conf" <<EOF
global(workDirectory="$RS/work")
module(load="impstats" interval="1" format="json" log.syslog="off" log.file="$RS/stats-$1.json" resetCounters="off")
module(load="imtcp")
input(type="imtcp" port="$RS_PORT" ruleset="r")
template(name="line" type="string" string="%hostname% %syslogseverity-text% %programname% %msg%\n")
ruleset(name="r") {
  if \$programname == "sshd" and \$syslogseverity <= 4 and re_match(\$msg, "Failed password for") then
    action(type="omfile" file="$RS/matched-$1.log" template="line")
}
EOF
}
rs_start() {
  rs_conf "$1"
  rsyslogd -n -f "$RS/rsyslog.conf" -i "$RS/pid" >"$RS/out" 2>&1 &
  RS_PID=$!
  on_exit "kill $RS_PID 2>/dev/null"   # also when a check fails
  wait_for 10 bash -c "ss -Hltn 'sport = :$RS_PORT' | has ." || { cat "$RS/out"; fail "rsyslogd did not start"; }
}
rs_stop() { kill "$RS_PID" 2>/dev/null; wait "$RS_PID" 2>/dev/null || true; }

ours=(); theirs=()
last="admin$((LINES - 1)) "
# `run`, not `i`: wait_for counts with i.
for run in $(seq 1 "$RUNS"); do
  read -r r0 m0 t0 < <(counters)
  start=$(now); send "$OUR_PORT"
  want=$((r0 + LINES))
  for _ in $(seq 1 6000); do read -r r m t < <(counters); [ "$r" -ge "$want" ] && break; sleep 0.1; done
  end=$(now)
  read -r r m t < <(counters)
  [ "$((r - r0))" = "$LINES" ] && [ "$((m - m0))" = "$MATCHES" ] && [ "$((t - t0))" = "$MATCHES" ] \
    || { ctl syslog status; fail "ours, run $run: received $((r - r0)), matched $((m - m0)), traps $((t - t0)); sent $LINES lines, $MATCHES matching"; }
  [ "$(ctl --json syslog status | jq '.receiver.counters.parse_errors')" = 0 ] || fail "ours: parse errors"
  ours+=("$(python3 -c "print($LINES / ($end - $start))")")

  rs_start "$run"
  start=$(now); send "$RS_PORT"
  wait_for 600 has -F "$last" "$RS/matched-$run.log" || { cat "$RS/out"; fail "rsyslog, run $run: the last line never arrived"; }
  end=$(now)
  got=$(wc -l <"$RS/matched-$run.log")
  # impstats (a time stamp, then JSON): wait for a report that counts every line.
  wait_for 10 bash -c "grep '\"imtcp($RS_PORT)\"' '$RS/stats-$run.json' | tail -1 | sed 's/^[^{]*//' | jq -e '.submitted == $LINES'" \
    || { grep imtcp "$RS/stats-$run.json" | tail -1; fail "rsyslog, run $run: imtcp did not count $LINES lines"; }
  rs_stop
  [ "$got" = "$MATCHES" ] || fail "rsyslog, run $run: $got lines matched, want $MATCHES"
  theirs+=("$(python3 -c "print($LINES / ($end - $start))")")
done
echo "lines: $LINES per run, $MATCHES matching; TCP, octet counting, one connection"
echo "ours (logfwd, a trap per match), lines/s:    $(stats "${ours[@]}")"
echo "rsyslogd (imtcp, omfile per match), lines/s: $(stats "${theirs[@]}")"
echo "ratio ours/rsyslog (medians): $(ratio "$(median "${ours[@]}")" "$(median "${theirs[@]}")")"
echo "logfwd RSS after the runs: $(ps -o rss= -p "$(ctl --json services | jq -r '.[] | select(.name == "logfwd") | .pid')") KiB"
