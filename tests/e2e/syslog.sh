#!/usr/bin/env bash
# Remote syslog end to end: Debian's rsyslogd, run as nobody on loopback
# high ports, receives the node's lines over UDP, TCP (octet counting) and
# TLS (gtls, a CA and certificate made here). A supervisor event and a
# service line arrive on all three with the right APP-NAME and RFC 5424
# shape. Then the TCP collector is stopped for about 20 s while the node
# logs numbered lines (`ctl syslog mark`); `ctl syslog status` shows them
# queued, and after the collector is back every one arrives, in order.
# KEEP=1 leaves the state and collector directories in /tmp to look at.
. "$(dirname "$0")/../lib.sh"
needs rsyslogd openssl setpriv jq python3
STATE=$(mktemp -d /tmp/alpharen-syslog.XXXXXX)
[ -n "${KEEP:-}" ] || on_exit "rm -rf $STATE"
# The collectors' directory: rsyslogd (nobody) writes there and the
# node's logfwd user reads the CA from it.
COL=$(mktemp -d /tmp/alpharen-syslog-col.XXXXXX)
[ -n "${KEEP:-}" ] || on_exit "rm -rf $COL"
chmod 755 "$COL"

read -r UDP_PORT TCP_PORT TLS_PORT < <(free_ports 3)

# --- a CA and the TLS collector's certificate (for the name syslog.test)
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=alpharen-test-ca \
  -keyout "$COL/ca.key" -out "$COL/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=syslog.test \
  -keyout "$COL/server.key" -out "$COL/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:syslog.test\nextendedKeyUsage=serverAuth\n' >"$COL/ext"
openssl x509 -req -in "$COL/server.csr" -CA "$COL/ca.pem" -CAkey "$COL/ca.key" \
  -CAcreateserial -days 2 -extfile "$COL/ext" -out "$COL/server.pem" 2>/dev/null
chmod 644 "$COL"/*.pem

# collector NAME INPUTS: an rsyslogd config writing what it receives to
# $COL/out/<ruleset>.log as "APP-NAME SEVERITY MSGID RAWMSG".
collector_conf() {
  local name=$1 inputs=$2
  mkdir -p "$COL/$name" "$COL/out"
  cat >"$COL/$name.conf" <<EOF
global(workDirectory="$COL/$name" maxMessageSize="64k"
       defaultNetstreamDriverCAFile="$COL/ca.pem"
       defaultNetstreamDriverCertFile="$COL/server.pem"
       defaultNetstreamDriverKeyFile="$COL/server.key")
template(name="seen" type="string" string="%app-name% %syslogseverity-text% %msgid% %rawmsg%\n")
$inputs
EOF
}
collector_conf main "
module(load=\"imudp\")
module(load=\"imtcp\")
input(type=\"imudp\" address=\"127.0.0.1\" port=\"$UDP_PORT\" ruleset=\"udp\")
input(type=\"imtcp\" address=\"127.0.0.1\" port=\"$TLS_PORT\" ruleset=\"tls\"
      streamDriver.name=\"gtls\" streamDriver.mode=\"1\" streamDriver.authMode=\"anon\")
ruleset(name=\"udp\") { action(type=\"omfile\" file=\"$COL/out/udp.log\" template=\"seen\") }
ruleset(name=\"tls\") { action(type=\"omfile\" file=\"$COL/out/tls.log\" template=\"seen\") }"
collector_conf tcp "
module(load=\"imtcp\")
input(type=\"imtcp\" address=\"127.0.0.1\" port=\"$TCP_PORT\" ruleset=\"tcp\")
ruleset(name=\"tcp\") { action(type=\"omfile\" file=\"$COL/out/tcp.log\" template=\"seen\") }"
chown -R nobody:nogroup "$COL"
chown root:root "$COL"

# start_collector NAME: rsyslogd as nobody in the foreground; sets ${NAME}_PID.
start_collector() {
  local name=$1
  setpriv --reuid=nobody --regid=nogroup --clear-groups \
    rsyslogd -n -f "$COL/$name.conf" -i "$COL/$name/pid" >>"$COL/$name.out" 2>&1 &
  local pid=$!
  printf -v "${name^^}_PID" '%s' "$pid"
  on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
}
listening() { ss -Hltn "sport = :$1" | has LISTEN; }
start_collector main
start_collector tcp
wait_for 10 listening "$TLS_PORT" || { cat "$COL/main.out"; fail "rsyslogd (UDP, TLS) did not start"; }
wait_for 10 listening "$TCP_PORT" || { cat "$COL/tcp.out"; fail "rsyslogd (TCP) did not start"; }
pass "rsyslogd collectors up as nobody (udp $UDP_PORT, tcp $TCP_PORT, tls $TLS_PORT)"

cat >"$STATE/seed.toml" <<EOF
[node]
hostname = "sysnode"

[syslog]
buffer_mb = 4

[[syslog.collectors]]
host = "127.0.0.1"
port = $UDP_PORT
transport = "udp"

[[syslog.collectors]]
host = "127.0.0.1"
port = $TCP_PORT
transport = "tcp"

[[syslog.collectors]]
host = "127.0.0.1"
port = $TLS_PORT
transport = "tls"
ca = "$COL/ca.pem"
server_name = "syslog.test"
EOF
seed_ports "$STATE/seed.toml"
start_node "$STATE" --config "$STATE/seed.toml"

state_of() { ctl --json syslog status | jq -e --arg c "$1" --arg s "$2" '.collectors[] | select(.collector == $c) | .state == $s' >/dev/null; }
wait_for 30 state_of "tcp:127.0.0.1:$TCP_PORT" connected || { ctl syslog status || true; cat "$STATE/console.log"; fail "logfwd did not connect to the TCP collector"; }
wait_for 10 state_of "tls:127.0.0.1:$TLS_PORT" connected || { ctl syslog status || true; fail "logfwd did not connect to the TLS collector"; }
pass "logfwd connected to the TCP and TLS collectors"
if [ "$(id -u)" = 0 ]; then
  [ "$(stat -c '%u:%g %a' "$STATE/logfwd.db")" = "910:900 600" ] || fail "logfwd.db: $(stat -c '%u:%g %a' "$STATE/logfwd.db"), want ar-logfwd's alone"
  pass "the queue, logfwd.db, is ar-logfwd's alone"
fi

# --- a supervisor event and a service line, on all three transports
ctl restart dpx >/dev/null
ctl syslog mark "hello-$$" >/dev/null
TS='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z'
for t in udp tcp tls; do
  wait_for 15 grep -Eq "^logfwd info err <134>1 $TS sysnode logfwd - err - INFO alpharen_logfwd::control: mark: hello-$$\$" "$COL/out/$t.log" \
    || { tail -5 "$COL/out/$t.log" 2>/dev/null || true; fail "$t: the marked line did not arrive as RFC 5424 from app logfwd"; }
  wait_for 15 grep -Eq "^supervisor info event <134>1 $TS sysnode supervisor - event - dpx started \(pid [0-9]+\)\$" "$COL/out/$t.log" \
    || { grep supervisor "$COL/out/$t.log" | tail -5 || true; fail "$t: the supervisor's event did not arrive"; }
  grep -Eq "^dpx [a-z]+ err <13[0-9]>1 $TS sysnode dpx - err - " "$COL/out/$t.log" \
    || fail "$t: no line of the dpx service"
  pass "$t: supervisor event, dpx and logfwd lines arrived as RFC 5424 with their app-name"
done

# --- the TCP collector down for about 20 s, numbered lines meanwhile
N=40
kill "$TCP_PID"; wait "$TCP_PID" 2>/dev/null || true
down_at=$SECONDS
wait_for 15 state_of "tcp:127.0.0.1:$TCP_PORT" down || { ctl syslog status; fail "logfwd did not notice the TCP collector went away"; }
for i in $(seq 1 $N); do
  ctl syslog mark "seq-$$-$i" >/dev/null
  sleep 0.3
done
queued() {
  ctl --json syslog status | jq -e --arg c "tcp:127.0.0.1:$TCP_PORT" --argjson n "$N" \
    '.collectors[] | select(.collector == $c) | .buffered_lines >= $n and .dropped == 0' >/dev/null
}
queued || { ctl syslog status; fail "the $N lines are not queued for the TCP collector"; }
pass "$N lines queued on disk while the TCP collector is down"
while [ $((SECONDS - down_at)) -lt 20 ]; do sleep 1; done
start_collector tcp
wait_for 10 listening "$TCP_PORT" || { cat "$COL/tcp.out"; fail "rsyslogd (TCP) did not restart"; }
seqs() { grep -Eo "mark: seq-$$-[0-9]+\$" "$COL/out/$1.log" | sed 's/.*-//' | tr '\n' ' '; }
want=$(seq 1 $N | tr '\n' ' ')
all_arrived() { [ "$(seqs tcp)" = "$want" ]; }
wait_for 30 all_arrived || fail "after the TCP collector came back: got [$(seqs tcp)], want [$want]"
pass "all $N lines reached the TCP collector after it came back, in order"
[ "$(seqs tls)" = "$want" ] || fail "tls: got [$(seqs tls)], want [$want]"
pass "the TLS collector got the same $N lines in order"
drained() {
  ctl --json syslog status | jq -e --arg c "tcp:127.0.0.1:$TCP_PORT" \
    '.collectors[] | select(.collector == $c) | .state == "connected" and .buffered_lines == 0' >/dev/null
}
wait_for 10 drained || { ctl syslog status; fail "the TCP queue did not drain"; }
pass "the TCP queue drained and the collector shows connected"

# --- a full queue drops its oldest lines: buffer_mb = 1 and the TCP
# collector down while ~1.3 MB of lines are logged
ctl config set syslog.buffer_mb 1 >/dev/null
wait_for 10 bash -c "grep -q 'SIGHUP: reloading the syslog and snmp sections' '$STATE/log/logfwd.log'" || fail "logfwd was not told about the new buffer_mb"
kill "$TCP_PID"; wait "$TCP_PID" 2>/dev/null || true
wait_for 15 state_of "tcp:127.0.0.1:$TCP_PORT" down || { ctl syslog status; fail "logfwd did not notice the TCP collector went away again"; }
BIG=1300
python3 - "$STATE/run/control.sock" "$$" "$BIG" <<'PY' || fail "could not log the big lines"
import json, socket, sys, time
path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_UNIX); s.connect(path); f = s.makefile("rwb")
for i in range(1, n + 1):
    text = f"big-{tag}-{i} " + "x" * 900
    f.write(json.dumps({"jsonrpc": "2.0", "id": i, "method": "logfwd.mark", "params": {"text": text}}).encode() + b"\n"); f.flush()
    if "error" in json.loads(f.readline()): sys.exit(f"mark {i} refused")
    time.sleep(0.002)
PY
dropped_some() {
  ctl --json syslog status | jq -e --arg c "tcp:127.0.0.1:$TCP_PORT" \
    '.collectors[] | select(.collector == $c) | .dropped > 0 and .buffered_bytes <= 1048576' >/dev/null
}
wait_for 10 dropped_some || { ctl syslog status; fail "a 1 MB queue did not drop lines past 1 MB"; }
pass "the 1 MB queue dropped lines and holds at most 1 MB: $(ctl --json syslog status | jq -c --arg c "tcp:127.0.0.1:$TCP_PORT" '.collectors[] | select(.collector == $c) | {buffered_lines, dropped}')"
start_collector tcp
wait_for 10 listening "$TCP_PORT" || { cat "$COL/tcp.out"; fail "rsyslogd (TCP) did not restart"; }
bigs() { grep -Eo "mark: big-$$-[0-9]+ " "$COL/out/$1.log" | sed 's/.*-//' | tr -d ' '; }
wait_for 30 bash -c "grep -q 'mark: big-$$-$BIG ' '$COL/out/tcp.log'" || fail "the newest big line did not reach the TCP collector"
first=$(bigs tcp | sed -n 1p); count=$(bigs tcp | wc -l)   # sed reads all: head would cut the writer off (SIGPIPE)
[ "$first" -gt 1 ] || fail "the oldest big lines were kept (first to arrive: $first)"
[ "$(bigs tcp | tr '\n' ' ')" = "$(seq "$first" "$BIG" | tr '\n' ' ')" ] || fail "the big lines that reached the TCP collector are not the newest ones, in order"
[ "$(bigs tls | wc -l)" = "$BIG" ] || fail "the TLS collector (up all along) did not get all $BIG big lines: $(bigs tls | wc -l)"
pass "the oldest went: lines $first..$BIG ($count) reached the TCP collector in order, the TLS one got all $BIG"
# (the big lines rotated logfwd.log: read every file of it)
[ "$(cat "$STATE"/log/logfwd.log* | grep -c 'syslog buffer full; dropping its oldest lines')" = 1 ] || fail "the start of the drops is not logged exactly once"
wait_for 10 bash -c "cat '$STATE'/log/logfwd.log* | grep -q 'syslog buffer drained; lines were dropped'" || fail "the end of the drops is not logged"
pass "the drops were logged once when they began and once when the queue drained"
