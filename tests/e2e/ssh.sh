#!/usr/bin/env bash
# SSH service end to end with the real OpenSSH client: key accepted, wrong
# key refused, only enabled methods advertised, a password refused while
# password authentication is off and accepted once it is on, only
# algorithms ssh-audit does not flag, exit codes propagate, backup to
# stdout, no secret in the logged command lines, forwarding refused,
# interactive prompt, failed logins limited per address, host key stable
# across restarts, changes recorded under the ssh user.
. "$(dirname "$0")/../lib.sh"
for tool in ssh ssh-keygen sshpass ssh-audit; do
  command -v $tool >/dev/null || fail "needs $tool (scripts/deps.sh)"
done
/usr/bin/python3 -c 'import paramiko' || fail "needs python3-paramiko (scripts/deps.sh)"
STATE=$(mktemp -d /tmp/alpharen-ssh.XXXXXX)
on_exit "rm -rf $STATE"
ssh-keygen -q -t ed25519 -N '' -f "$STATE/id_good" -C good
ssh-keygen -q -t ed25519 -N '' -f "$STATE/id_bad" -C bad
seed_ports "$STATE/seed.toml"
start_node "$STATE" --config "$STATE/seed.toml"
SSHOPTS=(-p "$SSH_PORT" -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile="$STATE/known_hosts"
  -o ConnectTimeout=10 -o LogLevel=ERROR -o IdentitiesOnly=yes)
nssh() { timeout 30 ssh "${SSHOPTS[@]}" -i "$STATE/id_good" admin@127.0.0.1 "$@"; }

# First-boot setup with the key, over the control socket.
KEY=$(cat "$STATE/id_good.pub")
ctl_json() { "$ALPHAREN" ctl --state-dir "$STATE" --json "$@"; }
python3 - "$STATE" "$KEY" <<'PY' || fail "setup.complete"
import json, socket, sys
state, key = sys.argv[1], sys.argv[2]
code = open(f"{state}/setup-code").read().strip()
s = socket.socket(socket.AF_UNIX); s.connect(f"{state}/run/control.sock")
req = {"jsonrpc": "2.0", "id": 1, "method": "setup.complete", "params": {
    "code": code, "admin_password": "correct horse", "hostname": "node1", "ssh_authorized_keys": [key]}}
s.sendall((json.dumps(req) + "\n").encode())
resp = json.loads(s.makefile().readline())
sys.exit(0 if "result" in resp else print(resp) or 1)
PY
pass "setup with an SSH key"
wait_for 20 bash -c "exec 3<>/dev/tcp/127.0.0.1/$SSH_PORT" || fail "ssh did not listen"
wait_for 10 nssh version || fail "no key login within 10 s"

out=$(nssh status) || fail "ssh status failed"
grep -q node1 <<<"$out" || fail "status output: $out"
# Same text as ctl status but for what changes by the second (uptime,
# memory, ages and sizes of the services).
steady() { sed -E '/^(uptime|memory) /d; s/[0-9]+(\.[0-9]+)? ?(s|m|h|d|KiB|MiB|GiB)( ago)?/N/g; s/ +/ /g'; }
local_out=$(ctl status)
[ "$(steady <<<"$out")" = "$(steady <<<"$local_out")" ] ||
  fail "ssh status differs from ctl status:$(diff <(steady <<<"$out") <(steady <<<"$local_out"))"
pass "key accepted; 'ssh admin@node status' prints what ctl status prints"

if timeout 30 ssh "${SSHOPTS[@]}" -i "$STATE/id_bad" admin@127.0.0.1 status 2>/dev/null; then fail "wrong key accepted"; fi
pass "wrong key refused"
if timeout 30 ssh "${SSHOPTS[@]}" -i "$STATE/id_good" root@127.0.0.1 status 2>/dev/null; then fail "key accepted for another user"; fi
pass "key not accepted for another user"
# Password logins: OpenSSH with sshpass, and paramiko, which sends the
# password even when the server does not offer the method.
PWOPTS=(-p "$SSH_PORT" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=10
  -o LogLevel=ERROR -o PubkeyAuthentication=no -o PreferredAuthentications=password -o NumberOfPasswordPrompts=1)
printf 'correct horse\n' >"$STATE/pw_good"; printf 'wrong horse\n' >"$STATE/pw_bad"
pwssh() { timeout 30 sshpass -f "$1" ssh "${PWOPTS[@]}" admin@127.0.0.1 status; }
# methods_offered: the list the server sends after the client's "none".
methods_offered() {
  local log
  set +e
  log=$(timeout 30 ssh -v -p "$SSH_PORT" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o PubkeyAuthentication=no admin@127.0.0.1 true 2>&1)
  set -e
  tr -d '\r' <<<"$log" | sed -n 's/^debug1: Authentications that can continue: //p' | head -1
}
paramiko_password() {
  /usr/bin/python3 - "$SSH_PORT" <<'PY'
import sys, paramiko
t = paramiko.Transport(("127.0.0.1", int(sys.argv[1])))
t.start_client(timeout=10)
try:
    t.auth_password("admin", "correct horse")
    print("accepted" if t.is_authenticated() else "refused")
except paramiko.AuthenticationException as e:
    print(f"refused: {e}")
t.close()
PY
}
[ "$(methods_offered)" = publickey ] || fail "methods offered with password authentication off: '$(methods_offered)'"
pass "only publickey offered while ssh.password_auth is off"
set +e; refused=$(pwssh "$STATE/pw_good" 2>&1); rc=$?; set -e
[ "$rc" -ne 0 ] && has "Permission denied (publickey)" <<<"$refused" || fail "password login (OpenSSH) not refused: rc $rc: $refused"
answer=$(paramiko_password) || fail "paramiko could not talk to the server"
[[ "$answer" == refused* ]] || fail "a sent password was accepted while password authentication is off: $answer"
pass "password authentication off: the right password, sent anyway, is refused ($answer)"

ctl config set ssh.password_auth true >/dev/null
offers_password() { [ "$(methods_offered)" = publickey,password ]; }
wait_for 20 offers_password || fail "password not offered after turning it on: '$(methods_offered)'"
out=$(pwssh "$STATE/pw_good") || fail "password login refused with ssh.password_auth on"
has node1 <<<"$out" || fail "status over a password login: $out"
if pwssh "$STATE/pw_bad" >/dev/null 2>&1; then fail "a wrong password was accepted"; fi
pass "password authentication on: offered, right password accepted, wrong one refused"

# Only algorithms ssh-audit does not flag. ssh-audit 2.5.0 (Debian 12)
# predates the strict key exchange that counters Terrapin
# (CVE-2023-48795) and warns that kex-strict-s-v00@openssh.com is an
# unknown algorithm: that one line is expected; dropping strict kex
# would make the node vulnerable.
set +e; audit=$(timeout 60 ssh-audit -n -p "$SSH_PORT" 127.0.0.1 2>&1); set -e
has "(key) ssh-ed25519" <<<"$audit" || fail "ssh-audit did not get the server's algorithms: $audit"
flagged=$(grep -E '\[(warn|fail)\]' <<<"$audit" | grep -vE '^\(kex\) kex-strict-s-v00@openssh.com +-- \[warn\] unknown algorithm$' || [ $? -eq 1 ])
[ -z "$flagged" ] || fail "ssh-audit flags:"$'\n'"$flagged"
pass "ssh-audit flags no algorithm ($(grep -c '^(\(kex\|enc\|mac\|key\))' <<<"$audit") offered)"

set +e
nssh config rollback 9999 >/dev/null 2>"$STATE/err"; rc=$?
set -e
[ "$rc" -ne 0 ] || fail "failing command exited 0"
set +e; ctl config rollback 9999 >/dev/null 2>&1; want=$?; set -e
[ "$rc" = "$want" ] || fail "exit code $rc, ctl gives $want"
grep -qi "revision" "$STATE/err" || fail "stderr not passed: $(cat "$STATE/err")"
pass "exit code ($rc) and stderr propagate"

nssh backup create - >"$STATE/backup.json" || fail "backup create -"
python3 -c "import json,sys; json.load(open(sys.argv[1]))" "$STATE/backup.json" || fail "backup is not JSON"
pass "backup create - streams a backup ($(wc -c <"$STATE/backup.json") bytes)"

nssh config set node.timezone Europe/Berlin >/dev/null || fail "config set over ssh"
[ "$(ctl --json config show node | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("config",d).get("timezone"))')" = Europe/Berlin ] || fail "config set did not apply"
pass "config change over ssh"
who=$(ctl --json config history | python3 -c 'import json,sys; d=json.load(sys.stdin); r=d.get("revisions",d); print(r[0]["author"], r[0]["comment"])')
[ "$who" = 'admin set node.timezone = "Europe/Berlin"' ] || fail "newest revision should be admin's config set: $who"
pass "change over ssh recorded with the ssh user as author"

# Secret-bearing arguments never reach the log (the command fails: no
# such security definition; it is logged before it runs).
if nssh integrator password nosuch --set 'S3cret-value' >/dev/null 2>&1; then
  fail "integrator password for an unknown security definition succeeded"
fi
nssh config set pgha.grace 31 >/dev/null || fail "config set over ssh"
logged() { has -r "$1" "$STATE/log"; }
wait_for 10 logged "integrator password nosuch --set <hidden>" || fail "the secret command was not logged redacted: $(grep -rh 'ssh exec' "$STATE/log" | tail -3)"
wait_for 10 logged "config set pgha.grace <hidden>" || fail "config set was not logged redacted"
if grep -rq "S3cret-value" "$STATE/log" "$STATE/console.log"; then fail "a secret argument reached the logs"; fi
pass "secret-bearing arguments logged as <hidden>"

# Forwarding: the session logs in and stays up, the channel is refused.
FWD_PORT=$(free_ports 1)
timeout 30 ssh -p "$SSH_PORT" -o BatchMode=yes -o UserKnownHostsFile="$STATE/known_hosts" -o IdentitiesOnly=yes \
  -o LogLevel=VERBOSE -i "$STATE/id_good" -N -L "127.0.0.1:$FWD_PORT:127.0.0.1:$HTTPS_PORT" admin@127.0.0.1 2>"$STATE/fwd.log" &
FPID=$!
on_exit "kill $FPID 2>/dev/null"
wait_for 10 has "Authenticated to" "$STATE/fwd.log" || fail "the forwarding session did not log in: $(cat "$STATE/fwd.log")"
wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$FWD_PORT" || fail "the local end of the forward did not listen"
if curl -sk --max-time 3 "https://127.0.0.1:$FWD_PORT/api/v1/health" >/dev/null 2>&1; then fail "port forwarding works"; fi
wait_for 5 has "open failed: administratively prohibited" "$STATE/fwd.log" || fail "no refusal of the channel: $(cat "$STATE/fwd.log")"
kill -0 $FPID 2>/dev/null || fail "the forwarding session ended instead of refusing the channel"
kill $FPID; wait $FPID 2>/dev/null || echo "(ssh -L stopped: status $?)"
pass "port forwarding refused (the session stays logged in)"

out=$(printf 'help\nstatus\nexit\n' | timeout 30 ssh "${SSHOPTS[@]}" -tt -i "$STATE/id_good" admin@127.0.0.1 2>&1) || fail "interactive session failed: $out"
grep -q "alpharen>" <<<"$out" && grep -q "backup create" <<<"$out" && grep -q node1 <<<"$out" || fail "interactive prompt: $out"
pass "interactive prompt with help"

# Failed logins per address: after 10 wrong passwords even the right one
# is refused (the limit is in memory: the restart below ends it).
for i in $(seq 1 10); do
  if pwssh "$STATE/pw_bad" >/dev/null 2>&1; then fail "wrong password $i accepted"; fi
done
if pwssh "$STATE/pw_good" >/dev/null 2>&1; then fail "the right password was accepted after 10 failures"; fi
if nssh version >/dev/null 2>&1; then fail "a key login was accepted after 10 failures from this address"; fi
logged "too many failed logins from this address" || fail "the refusal was not logged"
pass "10 failed logins from an address: further logins from it refused"

FP1=$(ssh-keygen -lf "$STATE/ssh/host_ed25519.pub" | awk '{print $2}')
ctl restart ssh >/dev/null
sleep 1
wait_for 20 nssh version || fail "ssh did not come back after restart"
FP2=$(ssh-keygen -lf "$STATE/ssh/host_ed25519.pub" | awk '{print $2}')
[ "$FP1" = "$FP2" ] || fail "host key changed"
nssh status >/dev/null || fail "known host key no longer matches"
pass "host key stable across restarts ($FP1)"
echo "ssh e2e: all passed"
