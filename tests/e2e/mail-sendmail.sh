#!/usr/bin/env bash
# `sendmail` compatibility: -t with To/Cc/Bcc, -f, -F, -i, recipients on
# the command line, dot handling, sysexits codes; works while the mail
# service is down (spooled) and is delivered when it comes up.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../mail-lib.sh"
STATE=$(mktemp -d /tmp/mail-sendmail.XXXXXX); on_exit "rm -rf $STATE"
P=$(free_ports 1); SP=$(free_ports 1)
write_config "$STATE" "$P" "$SP"
# argv[0] dispatch: run the binary under the name `sendmail`.
ln -s "$SENDMAIL_BIN" "$STATE/sendmail"
SM=("$STATE/sendmail" --state-dir "$STATE")
start_sink "$STATE" "$SP"

# Service down: sendmail still queues durably and exits 0.
printf 'To: Ann <ann@example.net>, bob@example.net\nCc: cc@example.net\nBcc: secret@example.net\nSubject: via -t\n\nline one\n.\nnot cut with -i\n' \
  | "${SM[@]}" -t -i -f cron@example.org -F "Cron Daemon" || fail "sendmail -t exited $?"
printf 'Subject: args\n\nhello\n.\nafter the dot is dropped\n' | "${SM[@]}" -f cron@example.org x@example.net y@example.net || fail "sendmail with recipients exited $?"
[ "$(find "$STATE/spool/mail/queue" -name '*.msg' | wc -l)" -eq 2 ] || fail "sendmail did not spool while the service is down"
pass "service down: sendmail -t and sendmail RCPT... spooled, exit 0"

set +e
printf 'Subject: x\n\n' | "${SM[@]}" >/dev/null 2>&1; rc1=$?
printf 'Subject: x\n\n' | "${SM[@]}" -Q >/dev/null 2>&1; rc2=$?
printf 'Subject: x\n\n' | "${SM[@]}" 'bad address@' >/dev/null 2>&1; rc3=$?
printf 'Subject: x\n\n' | "$STATE/sendmail" --state-dir /proc/nonexistent x@example.net >/dev/null 2>&1; rc4=$?
set -e
[ "$rc1" -eq 64 ] || fail "no recipients: exit $rc1, want 64 (EX_USAGE)"
[ "$rc2" -eq 64 ] || fail "unknown option: exit $rc2, want 64 (EX_USAGE)"
[ "$rc3" -eq 65 ] || fail "bad address: exit $rc3, want 65 (EX_DATAERR)"
[ "$rc4" -eq 75 ] || fail "unwritable state: exit $rc4, want 75 (EX_TEMPFAIL)"
pass "exit codes: 64 usage, 65 bad address, 75 cannot spool"

start_mail "$STATE" "$P"
wait_for 20 sink_ge 2 || fail "spooled sendmail mail not delivered after start"
t=$(grep -l 'Subject: via -t' "$STATE"/sink/*.eml)
grep -q 'X-Sink-To: ann@example.net,bob@example.net,cc@example.net,secret@example.net' "$t" || fail "-t recipients wrong: $(head -2 "$t")"
grep -q 'X-Sink-From: cron@example.org' "$t" || fail "-f not used as envelope sender"
grep -qi '^bcc:' "$t" && fail "Bcc header leaked"
grep -q 'From: "Cron Daemon" <cron@example.org>' "$t" || fail "-F full name not used"
grep -q 'not cut with -i' "$t" || fail "-i: a lone dot ended the message"
a=$(grep -l 'Subject: args' "$STATE"/sink/*.eml)
grep -q 'X-Sink-To: x@example.net,y@example.net' "$a" || fail "command-line recipients wrong"
grep -q 'after the dot' "$a" && fail "without -i a lone dot must end the message"
grep -q 'Message-ID:' "$a" && grep -q '^Date:' "$a" || fail "Date/Message-ID not added"
pass "delivered after start: -t To/Cc/Bcc, Bcc stripped, -f, -F, -i, dot handling, Date/Message-ID added"

# While running, sendmail pokes the service: delivered without waiting.
echo "Subject: live" | "${SM[@]}" live@example.net
wait_for 5 sink_ge 3 || fail "sendmail while running: not delivered within 5 s"
pass "service up: sendmail mail delivered at once"
echo "mail-sendmail: all passed"
