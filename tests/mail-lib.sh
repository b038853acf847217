# Helpers shared by the mail tests. Source after tests/lib.sh.
# The service runs alone (`alpharen serve mail`, no supervisor, so tests can
# kill -9 it freely); the `mail-dev` example seeds its config and secrets,
# answers on control.sock what the service asks the supervisor (its view,
# the login check) and calls the service's control socket. The smarthost is a real aiosmtpd server.
MAILDEV=${MAIL_DEV_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/examples/mail-dev}
if [ -x "$ALPHAREN" ]; then SERVE=("$ALPHAREN" serve mail); SENDMAIL_BIN=$ALPHAREN
else SERVE=("$MAILDEV" serve); SENDMAIL_BIN=$MAILDEV; fi
SYSPY=/usr/bin/python3   # Debian's python, which has python3-aiosmtpd
SINK_PY="$ROOT/tests/e2e/smtp_sink.py"
[ -x "$MAILDEV" ] || fail "build it first: cargo build -p alpharen-mail --example mail-dev ($MAILDEV)"
command -v swaks >/dev/null || fail "swaks missing (scripts/deps.sh)"
$SYSPY -c 'import aiosmtpd' 2>/dev/null || fail "python3-aiosmtpd missing (scripts/deps.sh)"


# write_config DIR SMTP_PORT SINK_PORT [EXTRA_TOML]
write_config() {
  cat >"$1/cfg.toml" <<EOT
[node]
hostname = "n1"
[mail]
admin_recipients = ["ops@example.net"]
notify_interval = 300
[mail.listen]
port = $2
${4:-}
[mail.relay]
mode = "smarthost"
host = "127.0.0.1"
port = $3
tls = "none"
EOT
  "$MAILDEV" apply-config --state-dir "$1" "$1/cfg.toml"
}

# start_sink DIR PORT [--delay S]: sets SINK_PID.
start_sink() {
  local dir=$1 port=$2; shift 2
  $SYSPY "$SINK_PY" --port "$port" --dir "$dir/sink" "$@" >>"$dir/sink.log" 2>&1 &
  SINK_PID=$!
  on_exit "kill $SINK_PID 2>/dev/null || true"
  wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" || fail "sink did not start"
}
stop_sink() { kill "$SINK_PID" 2>/dev/null || true; wait "$SINK_PID" 2>/dev/null || true; }

# stand_in DIR: mail-dev's stand-in for the supervisor on DIR's
# control.sock, once per state directory.
stand_in() {
  [ -S "$1/run/control.sock" ] && return 0
  "$MAILDEV" supervisor --state-dir "$1" >>"$1/supervisor.log" 2>&1 &
  on_exit "kill $! 2>/dev/null || true"
  wait_for 10 test -S "$1/run/control.sock" || { cat "$1/supervisor.log"; fail "mail-dev supervisor did not start"; }
}

# start_mail DIR PORT: sets MAIL_PID; starts the stand-in first.
start_mail() {
  stand_in "$1"
  "${SERVE[@]}" --state-dir "$1" --dev >>"$1/mail.log" 2>&1 &
  MAIL_PID=$!
  on_exit "kill $MAIL_PID 2>/dev/null || true"
  wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$2" || { cat "$1/mail.log"; fail "mail service did not start"; }
}
stop_mail() { kill "$MAIL_PID" 2>/dev/null || true; wait "$MAIL_PID" 2>/dev/null || true; }

mrpc() { "$MAILDEV" rpc --state-dir "$STATE" "$@"; }
# queued [dead]: number of messages in the queue (or dead letters).
queued() {
  local p='{}'; [ "${1:-}" = dead ] && p='{"dead":true}'
  local out; out=$(mrpc mail.queue "$p") || fail "mail.queue $p: $out"
  grep -o '"id"' <<<"$out" | wc -l
}
sink_count() { find "$STATE/sink" -name '*.eml' 2>/dev/null | wc -l; }

# smtp_raw PORT: sends stdin to the port byte for byte (bare LFs stay
# bare), prints the replies until the server closes (5 s at most).
_SMTP_RAW='
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(sys.stdin.buffer.read())
out = b""
try:
    while True:
        d = s.recv(65536)
        if not d: break
        out += d
except socket.timeout:
    pass
sys.stdout.write(out.decode("utf-8", "replace"))
'
smtp_raw() { $SYSPY -c "$_SMTP_RAW" "$1"; }
sink_ge() { [ "$(sink_count)" -ge "$1" ]; }
queue_empty() { [ "$(queued)" -eq 0 ]; }
