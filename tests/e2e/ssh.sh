#!/usr/bin/env bash
# SSH service end to end with the real OpenSSH client: key accepted, wrong
# key refused, password refused by default, exit codes propagate, backup to
# stdout, forwarding refused, interactive prompt, host key stable across
# restarts, changes recorded under the ssh user.
. "$(dirname "$0")/../lib.sh"
command -v ssh >/dev/null && command -v ssh-keygen >/dev/null || fail "needs openssh-client"
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
wait_for 10 nssh version 2>/dev/null || true

out=$(nssh status) || fail "ssh status failed"
grep -q node1 <<<"$out" || fail "status output: $out"
pass "key accepted; 'ssh admin@node status' runs ctl status"
[ "$out" = "$(ctl status)" ] || echo "note: output differs from ctl status only in uptime"

if timeout 30 ssh "${SSHOPTS[@]}" -i "$STATE/id_bad" admin@127.0.0.1 status 2>/dev/null; then fail "wrong key accepted"; fi
pass "wrong key refused"
if timeout 30 ssh "${SSHOPTS[@]}" -i "$STATE/id_good" root@127.0.0.1 status 2>/dev/null; then fail "key accepted for another user"; fi
pass "key not accepted for another user"
if timeout 30 ssh -p "$SSH_PORT" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o PubkeyAuthentication=no \
    -o PreferredAuthentications=password -o NumberOfPasswordPrompts=0 -o LogLevel=ERROR admin@127.0.0.1 status 2>/dev/null; then
  fail "password login allowed"
fi
pass "password authentication off"

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

if timeout 20 ssh "${SSHOPTS[@]}" -i "$STATE/id_good" -o ExitOnForwardFailure=yes -N -L 127.0.0.1:18999:127.0.0.1:$HTTPS_PORT admin@127.0.0.1 2>/dev/null & then
  FPID=$!
  sleep 2
  if curl -sk --max-time 3 https://127.0.0.1:18999/api/v1/health >/dev/null 2>&1; then kill $FPID; fail "port forwarding works"; fi
  kill $FPID 2>/dev/null || true; wait $FPID 2>/dev/null || true
fi
pass "port forwarding refused"

out=$(printf 'help\nstatus\nexit\n' | timeout 30 ssh "${SSHOPTS[@]}" -tt -i "$STATE/id_good" admin@127.0.0.1 2>&1 || true)
grep -q "alpharen>" <<<"$out" && grep -q "backup create" <<<"$out" && grep -q node1 <<<"$out" || fail "interactive prompt: $out"
pass "interactive prompt with help"

FP1=$(ssh-keygen -lf "$STATE/ssh/host_ed25519.pub" | awk '{print $2}')
ctl restart ssh >/dev/null
sleep 1
wait_for 20 nssh version || fail "ssh did not come back after restart"
FP2=$(ssh-keygen -lf "$STATE/ssh/host_ed25519.pub" | awk '{print $2}')
[ "$FP1" = "$FP2" ] || fail "host key changed"
nssh status >/dev/null || fail "known host key no longer matches"
pass "host key stable across restarts ($FP1)"
echo "ssh e2e: all passed"
