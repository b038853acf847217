#!/usr/bin/env bash
# Limits on the node's doors (issue 26): the web reads no body before
# authentication (a stranger's 64 MiB POST is refused without the web's
# RSS growing), wrong setup codes lock out one client only, one login
# limiter is shared by the web login, SMTP AUTH and ssh, and the
# integrator's :11223 speaks TLS and limits failed authentications.
. "$(dirname "$0")/../lib.sh"
command -v curl >/dev/null && command -v jq >/dev/null && command -v swaks >/dev/null \
  && command -v sshpass >/dev/null || fail "needs curl, jq, swaks and sshpass (scripts/deps.sh)"
STATE=$(mktemp -d /tmp/alpharen-limits.XXXXXX)
on_exit "rm -rf $STATE"
seed_ports "$STATE/seed.toml"
SUB=$(free_ports 1)
sed -i 's/^\[ssh\]$/[ssh]\npassword_auth = true/' "$STATE/seed.toml"
cat >>"$STATE/seed.toml" <<TOML
[mail.submission]
ports = [$SUB]
[[integrator.security]]
name = "cust.basic"
kind = "basic"
username = "cust"
password = "right-password"
[[integrator.channels]]
name = "cust.get"
url_path = "/cust"
service = "cust.get"
security = "cust.basic"
TOML
# SMTP AUTH is offered only outside loopback: a client in its own netns.
NS=lim$$
ip netns add "$NS"; on_exit "ip netns del $NS"
ip link add "ls$$" type veth peer name "lc$$"; on_exit "ip link del ls$$ 2>/dev/null"
ip link set "lc$$" netns "$NS"
ip addr add 10.232.0.1/30 dev "ls$$"; ip link set "ls$$" up
ip -n "$NS" addr add 10.232.0.2/30 dev "lc$$"; ip -n "$NS" link set "lc$$" up; ip -n "$NS" link set lo up

start_node "$STATE" --config "$STATE/seed.toml"
BASE=https://127.0.0.1:$HTTPS_PORT
wait_for 20 curl -skf "$BASE/api/v1/health" || { cat "$STATE/console.log"; fail "web did not come up"; }
# post FROM PATH BODY: sets CODE and BODY; FROM is a loopback source address.
post() {
  CODE=$(curl -sk --interface "$1" -o "$STATE/body" -w '%{http_code}' -H 'content-type: application/json' \
    --data-binary "$3" "$BASE$2") || CODE=000
  BODY=$(cat "$STATE/body" 2>/dev/null || true)
}

# --- setup-code lockout is per client
setup() { post "$1" /api/v1/setup "{\"code\":\"$2\",\"admin_password\":\"correct horse\",\"hostname\":\"lim1\"}"; }
for i in 1 2 3 4 5; do
  setup 127.0.0.2 WRONG-CODE-000$i
  [ "$CODE" = 403 ] || fail "wrong setup code $i from 127.0.0.2: HTTP $CODE $BODY"
done
setup 127.0.0.2 "$(cat "$STATE/setup-code")"
[ "$CODE" = 429 ] || fail "127.0.0.2 not locked out after 5 wrong codes: HTTP $CODE $BODY"
pass "5 wrong setup codes lock out 127.0.0.2 (429), even with the right code"
setup 127.0.0.3 WRONG-CODE-0009
[ "$CODE" = 403 ] || fail "127.0.0.3 was locked out by 127.0.0.2's guesses: HTTP $CODE $BODY"
setup 127.0.0.3 "$(cat "$STATE/setup-code")"
[ "$CODE" = 200 ] || fail "setup from 127.0.0.3: HTTP $CODE $BODY"
pass "127.0.0.3 is not locked out: its setup succeeds"

# --- bodies: nothing is read before authentication
WEB_PID=$(pgrep -f "serve web --state-dir $STATE" | head -1)
[ -n "$WEB_PID" ] || fail "no web process"
# VmHWM: the peak, since a freed 64 MiB buffer leaves VmRSS at once.
rss() { awk '/^VmHWM/ {print $2}' "/proc/$WEB_PID/status"; }
head -c $((64 << 20)) /dev/zero >"$STATE/big"
before=$(rss)
start=$(date +%s%N)
for path in /api/v1/config /api/v1/backup/restore; do
  # HTTP/1.1: over HTTP/2 the answer arrives too, but the stream is then
  # reset (the rest of the body is never read), which curl reports as 000.
  CODE=$(timeout 30 curl -sk --http1.1 -o "$STATE/body" -w '%{http_code}' -X PUT -H 'content-type: application/json' \
    --data-binary @"$STATE/big" "$BASE$path") || true
  [ "$CODE" = 401 ] || [ "$CODE" = 413 ] || fail "unauthenticated 64 MiB to $path: HTTP $CODE $(cat "$STATE/body")"
done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
after=$(rss)
grow=$(( (after - before) / 1024 ))
echo "web peak RSS (VmHWM) ${before} kB -> ${after} kB after two unauthenticated 64 MiB uploads (${ms} ms)"
[ "$grow" -le 4 ] || fail "the web's peak RSS grew by $grow MiB"
[ "$ms" -le 10000 ] || fail "refusing took $ms ms"
pass "unauthenticated 64 MiB uploads: 401/413 in $ms ms, web peak RSS +$grow MiB"
post 127.0.0.1 /api/v1/session "{\"username\":\"admin\",\"password\":\"$(head -c 20000 /dev/zero | tr '\0' a)\"}"
[ "$CODE" = 413 ] || fail "20 kB login body: HTTP $CODE"
pass "login bodies over 16 KiB: 413"

# --- one login limiter for web, SMTP AUTH and ssh
smtp() { ip netns exec "$NS" swaks --server "10.232.0.1:$SUB" --timeout 20 --from a@example.org --to b@example.net \
  --tls --auth PLAIN --auth-user "$1" --auth-password "$2" --quit-after AUTH 2>&1 || true; }
nssh() { timeout 30 sshpass -p "$1" ssh -p "$SSH_PORT" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
  -o PubkeyAuthentication=no -o PreferredAuthentications=password -o NumberOfPasswordPrompts=1 -o LogLevel=ERROR \
  admin@127.0.0.1 status 2>&1; }
wait_for 20 bash -c "exec 3<>/dev/tcp/10.232.0.1/$SUB" || fail "submission port not open"
smtp admin 'correct horse' | has '^<~  235 2.7.0' || fail "SMTP AUTH with the right password failed: $(smtp admin 'correct horse')"
nssh 'correct horse' >/dev/null || fail "ssh with the right password failed: $(nssh 'correct horse')"
pass "right passwords work at SMTP AUTH and ssh"
for i in 1 2 3 4 5; do
  post 127.0.0.2 /api/v1/session '{"username":"admin","password":"wrong horse"}'
  [ "$CODE" = 401 ] || fail "wrong web login $i: HTTP $CODE $BODY"
done
out=$(smtp admin 'correct horse')
grep -q '^<~\* 454 4.7.0 Too many failed logins' <<<"$out" || { echo "$out"; fail "SMTP AUTH for admin not rate-limited after 5 failed web logins"; }
pass "5 failed web logins for admin: SMTP AUTH for admin refused (454, rate limited)"
if nssh 'correct horse' >/dev/null; then fail "ssh password login for admin not rate-limited"; fi
pass "ssh password login for admin refused too"
post 127.0.0.3 /api/v1/session '{"username":"admin","password":"correct horse"}'
[ "$CODE" = 429 ] || fail "web login from another address not limited: HTTP $CODE"
pass "web login for admin from another address: 429"
ctl logs supervisor 2>/dev/null | has 'login refused (rate limited): user="admin"' || fail "supervisor did not log the refusals"
pass "the supervisor logs each refusal with user, client and door"

# --- :11223: TLS by default, failed authentications limited
LB=https://127.0.0.1:$LB_PORT
wait_for 20 curl -sk -o /dev/null "$LB/" || fail ":11223 does not answer over TLS"
curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$LB_PORT/" && fail ":11223 answers plain HTTP"
pass ":11223 speaks TLS (node certificate) and not plain HTTP"
lb() { curl -sk --interface "$1" -o /dev/null -w '%{http_code}' -u "cust:$2" "$LB/cust" || echo 000; }
for i in $(seq 20); do
  c=$(lb 127.0.0.2 wrong); [ "$c" = 401 ] || fail "wrong :11223 password $i: HTTP $c"
done
c=$(lb 127.0.0.2 right-password); [ "$c" = 429 ] || fail "127.0.0.2 not limited on :11223 after 20 failures: HTTP $c"
c=$(lb 127.0.0.3 wrong); [ "$c" = 401 ] || fail "127.0.0.3 limited by 127.0.0.2's failures: HTTP $c"
pass ":11223: 20 failed authentications lock out 127.0.0.2 (429), not 127.0.0.3"
