#!/usr/bin/env bash
# LAN submission (`mail.submission.ports`): a client in another network
# namespace must STARTTLS and AUTH (PLAIN or LOGIN) as a node user before
# MAIL; wrong passwords get 535; the accepted message carries an ESMTPSA
# trace and reaches the smarthost; loopback clients still need neither.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../mail-lib.sh"
STATE=$(mktemp -d /tmp/mail-sub.XXXXXX); on_exit "rm -rf $STATE"
P=$(free_ports 1); SP=$(free_ports 1); SUB=$(free_ports 1)
write_config "$STATE" "$P" "$SP" "[mail.submission]
ports = [$SUB]"
"$MAILDEV" add-user --state-dir "$STATE" alice 'correct horse' || fail "cannot add the user"
# The node's certificate, as the web service would have made it.
mkdir -p "$STATE/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=n1 \
  -keyout "$STATE/tls/key.pem" -out "$STATE/tls/cert.pem" 2>/dev/null || fail "openssl"

NS=msub$$
ip netns add "$NS"; on_exit "ip netns del $NS"
ip link add "vs$$" type veth peer name "vc$$"; on_exit "ip link del vs$$ 2>/dev/null"
ip link set "vc$$" netns "$NS"
ip addr add 10.231.0.1/30 dev "vs$$"; ip link set "vs$$" up
ip -n "$NS" addr add 10.231.0.2/30 dev "vc$$"; ip -n "$NS" link set "vc$$" up; ip -n "$NS" link set lo up

start_sink "$STATE" "$SP"
# SMTP AUTH asks the supervisor (`users.authenticate`); mail-dev stands in
# for it (started by start_mail).
start_mail "$STATE" "$P"
wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$SUB" || { cat "$STATE/mail.log"; fail "submission port not open"; }
lan() { ip netns exec "$NS" swaks --server "10.231.0.1:$SUB" --timeout 10 --from a@example.org --to b@example.net "$@" 2>&1 || true; }

out=$(lan --h-Subject plain)
grep -q '^<[*~]\* 530 5.7.0' <<<"$out" || { echo "$out"; fail "MAIL without TLS and AUTH was not refused with 530"; }
grep -q '250-STARTTLS' <<<"$out" || { echo "$out"; fail "EHLO on the LAN does not offer STARTTLS"; }
grep -q '250-AUTH' <<<"$out" && fail "AUTH offered before TLS"
pass "LAN without TLS: STARTTLS offered, no AUTH, MAIL refused 530"

out=$(lan --tls --h-Subject tls-only)
grep -q '^<[*~]\* 530 5.7.0' <<<"$out" || { echo "$out"; fail "MAIL after TLS without AUTH was not refused"; }
grep -q '250-AUTH PLAIN LOGIN' <<<"$out" || { echo "$out"; fail "AUTH not offered after STARTTLS"; }
pass "TLS without AUTH: AUTH PLAIN LOGIN offered, MAIL refused 530"

out=$(lan --tls --auth PLAIN --auth-user alice --auth-password wrong)
grep -q '^<[*~]\* 535 5.7.8' <<<"$out" || { echo "$out"; fail "wrong password not refused with 535"; }
out=$(lan --tls --auth PLAIN --auth-user nobody --auth-password 'correct horse')
grep -q '^<[*~]\* 535 5.7.8' <<<"$out" || { echo "$out"; fail "unknown user not refused with 535"; }
pass "wrong password and unknown user: 535"
[ "$(queued)" -eq 0 ] && [ "$(sink_count)" -eq 0 ] || fail "a refused session queued something"

for mech in PLAIN LOGIN; do
  out=$(lan --tls --auth "$mech" --auth-user alice --auth-password 'correct horse' --h-Subject "sub-$mech")
  grep -q '^<~  235 2.7.0' <<<"$out" || { echo "$out"; fail "AUTH $mech with the right password failed"; }
  grep -q '^<~  250 2.0.0 Ok: queued as' <<<"$out" || { echo "$out"; fail "AUTH $mech message not accepted"; }
done
pass "STARTTLS + AUTH PLAIN and LOGIN: accepted"

# STARTTLS command injection: a command pipelined in the clear after
# STARTTLS must not run inside the TLS session.
out=$(printf 'EHLO t\r\nSTARTTLS\r\nRSET\r\n' | ip netns exec "$NS" /usr/bin/python3 -c '
import socket, sys
s = socket.create_connection(("10.231.0.1", int(sys.argv[1])), timeout=5)
s.recv(1000); s.sendall(sys.stdin.buffer.read())
import time; time.sleep(1); print(s.recv(4000).decode())' "$SUB")
grep -q '^220 2.0.0 Ready to start TLS' <<<"$out" || { echo "$out"; fail "STARTTLS not answered 220"; }
grep -q '^250 2.0.0 Ok' <<<"$out" && { echo "$out"; fail "plaintext RSET after STARTTLS was answered"; }
pass "commands pipelined after STARTTLS are dropped"

out=$(swaks --server "127.0.0.1:$P" --timeout 10 --from a@example.org --to b@example.net --h-Subject loopback 2>&1 || true)
grep -q 'queued as' <<<"$out" || { echo "$out"; fail "loopback needs no AUTH but was refused"; }
pass "loopback: no TLS or AUTH needed"

wait_for 20 sink_ge 3 || fail "messages did not reach the smarthost ($(sink_count))"
grep -l 'Subject: sub-PLAIN' "$STATE"/sink/*.eml | xargs grep -q 'authenticated as alice' || fail "no AUTH trace"
grep -l 'Subject: sub-LOGIN' "$STATE"/sink/*.eml | xargs grep -q 'with ESMTPSA' || fail "no ESMTPSA trace"
pass "submitted mail delivered with an ESMTPSA trace naming the user"
