#!/usr/bin/env bash
# Privilege separation end to end: a node started as root runs every
# built-in service as its own user (uid = gid, supplementary group
# alpharen) with exactly its declared capabilities in every set and
# NoNewPrivs; the state directory belongs to root:alpharen, the node
# database to root alone, and each service's own directory and database
# to its user. A service's view holds only its secrets, and a service's
# user may ask only for its own. A deployed Python service cannot open the
# node database, /proc/1/environ (root's) or the integrator's environ
# (non-dumpable), sees only the worker's clean environment, and gets no
# answer on the control socket (it has no service token).
. "$(dirname "$0")/../lib.sh"
[ "$(id -u)" = 0 ] || fail "run as root: only root can start services as their users"
STATE=$(mktemp -d /tmp/alpharen-privsep.XXXXXX)
on_exit "rm -rf $STATE"
cat >"$STATE/seed.toml" <<TOML
[[integrator.channels]]
name = "t.probe"
url_path = "/t/probe"
service = "test.probe"
TOML
seed_ports "$STATE/seed.toml"
start_node "$STATE" --config "$STATE/seed.toml"

# "ready" means serving: once the node says so, the console, SMTP and the
# load balancer answer at the first try.
wait_for 120 grep -q "alpharen: ready: every service is serving" "$STATE/console.log" \
  || { tail -20 "$STATE/console.log"; fail "the node never said every service is serving"; }
curl -sfk --max-time 5 "https://127.0.0.1:$HTTPS_PORT/api/v1/health" >/dev/null || fail "ready, but the console does not answer"
exec 3<>"/dev/tcp/127.0.0.1/$SMTP_PORT" && read -r -t 5 banner <&3 && exec 3<&- || fail "ready, but SMTP does not answer"
[[ $banner == 220* ]] || fail "ready, but the SMTP banner is $banner"
exec 3<>"/dev/tcp/127.0.0.1/$LB_PORT" && exec 3<&- || fail "ready, but the load balancer does not accept"
pass "ready means serving: console, SMTP banner and load balancer answer at the first try"

# name uid capability-mask (as /proc/PID/status prints it), from
# appliance/supervisor/src/builtin.rs.
EXPECTED="net 901 0000000002003400
vpn 902 0000000000001000
dpx 903 0000000000000400
web 904 0000000000000400
ssh 905 0000000000000400
mail 906 0000000000000400
pgha 907 0000000000000000
integrator 908 0000000000000000
logfwd 910 0000000000000400
reaction 913 0000000000000000"

field() { sed -n "s/^$1:[[:space:]]*//p" "/proc/$2/status"; }
while read -r name uid caps; do
  wait_for 20 bash -o pipefail -c "$(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json services | jq -e '.[] | select(.name==\"$name\" and .state==\"running\")'" \
    || fail "$name is not running: $(ctl services)"
  pid=$(ctl --json services | jq -r ".[] | select(.name==\"$name\") | .pid")
  [ "$(field Uid "$pid")" = "$uid	$uid	$uid	$uid" ] || fail "$name (pid $pid) Uid: $(field Uid "$pid"), want $uid"
  [ "$(field Gid "$pid")" = "$uid	$uid	$uid	$uid" ] || fail "$name (pid $pid) Gid: $(field Gid "$pid"), want $uid"
  [ "$(field Groups "$pid" | xargs)" = "900" ] || fail "$name (pid $pid) Groups: $(field Groups "$pid"), want 900"
  for set in CapInh CapPrm CapEff CapAmb CapBnd; do
    [ "$(field $set "$pid")" = "$caps" ] || fail "$name (pid $pid) $set: $(field $set "$pid"), want $caps"
  done
  [ "$(field NoNewPrivs "$pid")" = 1 ] || fail "$name (pid $pid) NoNewPrivs: $(field NoNewPrivs "$pid")"
done <<<"$EXPECTED"
pass "every built-in runs as its own user with exactly its capabilities and NoNewPrivs"
[ "$(ctl --json services | jq -cS '.[] | select(.name=="web") | .runs_as')" = '{"cap_eff":"0000000000000400","no_new_privs":true,"uid":904}' ] \
  || fail "ctl --json services does not show web's user: $(ctl --json services | jq -c '.[] | select(.name=="web")')"
pass "ctl --json services shows who each service runs as"

owner() { stat -c '%u:%g %a' "$1"; }
[ "$(owner "$STATE")" = "0:900 2770" ] || fail "state dir: $(owner "$STATE")"
[ "$(owner "$STATE/alpharen.db" | cut -d' ' -f1 | cut -d: -f1) $(owner "$STATE/alpharen.db" | cut -d' ' -f2)" = "0 600" ] || fail "alpharen.db: $(owner "$STATE/alpharen.db")"
wait_for 20 test -f "$STATE/web.db" || fail "web made no web.db"
[ "$(owner "$STATE/web.db")" = "904:900 600" ] || fail "web.db: $(owner "$STATE/web.db")"
[ "$(owner "$STATE/run/control.sock")" = "0:900 660" ] || fail "control.sock: $(owner "$STATE/run/control.sock")"
[ "$(owner "$STATE/ssh")" = "905:900 700" ] || fail "ssh dir: $(owner "$STATE/ssh")"
[ "$(owner "$STATE/integrator")" = "908:900 700" ] || fail "integrator dir: $(owner "$STATE/integrator")"
wait_for 20 test -f "$STATE/tls/key.pem" || fail "web made no key"
[ "$(owner "$STATE/tls/key.pem")" = "904:900 640" ] || fail "tls key: $(owner "$STATE/tls/key.pem")"
pass "state directory: root:alpharen; alpharen.db root's alone (0600); own directories and databases per service user"

# --- views: only a service's own secrets, only for its own user -----------
printf '[secrets]\n"pgha.probe" = "pgha-secret-9f2"\n"dpx.dyndns.probe" = "web-secret-4c1"\n' >"$STATE/secrets.toml"
ctl config apply -f "$STATE/secrets.toml" >"$STATE/secrets.out" 2>&1 || fail "secrets not applied: $(cat "$STATE/secrets.out")"
WPID=$(ctl --json services | jq -r '.[] | select(.name=="web") | .pid')
TOKEN=$(tr '\0' '\n' <"/proc/$WPID/environ" | sed -n 's/^ALPHAREN_RPC_TOKEN=//p')
[ -n "$TOKEN" ] || fail "the web service has no service token in its environment"
# ask UID SERVICE [TOKEN]: services.view as that user, the answer's JSON.
ask() {
  setpriv --reuid="$1" --regid="$1" --groups=900 --no-new-privs /usr/bin/python3 -c '
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
req = {"jsonrpc": "2.0", "id": 1, "method": "services.view", "params": {"service": sys.argv[2]}}
if sys.argv[3]:
    req["token"] = sys.argv[3]
s.sendall(json.dumps(req).encode() + b"\n")
print(s.makefile().readline())' "$STATE/run/control.sock" "$2" "${3:-}"
}
out=$(ask 904 web "$TOKEN") || fail "services.view as ar-web failed to run"
echo "$out" | jq -e '.result.config.node and .result.secrets["dpx.dyndns.probe"] == "web-secret-4c1"' >/dev/null || fail "web did not get its view with its secret: $out"
echo "$out" | has "pgha-secret-9f2" && fail "web's view holds a pgha secret"
pass "a service gets its view, without other services' secrets"
out=$(ask 904 pgha "$TOKEN")
echo "$out" | jq -e '.error.data.code == "forbidden"' >/dev/null || fail "ar-web got pgha's view: $out"
pass "a service's user may not ask for another service's view ($(echo "$out" | jq -r .error.message))"
out=$(ask 908 integrator)
echo "$out" | jq -e '.error.data.code == "forbidden"' >/dev/null || fail "a process of ar-integrator without the token got an answer: $out"
pass "the integrator's user without the service token gets no answer ($(echo "$out" | jq -r .error.message))"

# --- a Python worker's reach ----------------------------------------------
IPID=$(ctl --json services | jq -r '.[] | select(.name=="integrator") | .pid')
[ "$(field Uid "$IPID" | cut -f1)" = 908 ] || fail "integrator not ar-integrator"
cat >"$STATE/probe.py" <<PY
import os, socket
from zato.server.service import Service

class Probe(Service):
    name = 'test.probe'

    def handle(self):
        out = {'env': sorted(os.environ)}
        for key, path in (('db', '$STATE/alpharen.db'), ('init_environ', '/proc/1/environ'),
                          ('integrator_environ', '/proc/$IPID/environ')):
            try:
                with open(path, 'rb') as f:
                    f.read(1)
                out[key] = 'opened'
            except OSError as e:
                out[key] = '%s: %s' % (type(e).__name__, e.strerror)
        try:
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(5)
            s.connect('$STATE/run/control.sock')
            s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"services.view","params":{"service":"integrator"}}\n')
            out['control'] = s.makefile().readline()
        except OSError as e:
            out['control'] = '%s: %s' % (type(e).__name__, e.strerror)
        self.response.payload = out
PY
chmod 644 "$STATE/probe.py"
ctl integrator deploy "$STATE/probe.py" >/dev/null || fail "probe not deployed"
out=$(curl -sSk --max-time 20 "https://127.0.0.1:$LB_PORT/t/probe") || fail "probe did not answer"
echo "$out" >"$OUT/privsep-probe.json"
field_of() { echo "$out" | jq -r ".$1"; }
[ "$(echo "$out" | jq -c .env)" = '["LANG","LC_ALL","PATH"]' ] || fail "worker environment: $(echo "$out" | jq -c .env)"
pass "worker environment is only PATH, LANG, LC_ALL"
field_of init_environ | has "PermissionError" || fail "a worker opened /proc/1/environ: $(field_of init_environ)"
pass "worker cannot read /proc/1/environ ($(field_of init_environ))"
field_of integrator_environ | has "PermissionError" || fail "a worker read the integrator's environ: $(field_of integrator_environ)"
pass "worker cannot read the integrator's /proc/$IPID/environ ($(field_of integrator_environ))"
field_of db | has "PermissionError" || fail "a worker opened alpharen.db: $(field_of db)"
pass "worker cannot open alpharen.db ($(field_of db))"
field_of control | has -E 'PermissionError|"forbidden"' || fail "a worker got an answer on the control socket: $(field_of control)"
pass "worker gets no answer on the control socket ($(field_of control | cut -c1-120))"
