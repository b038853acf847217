#!/usr/bin/env bash
# Deploying integrator services from outside the node: `curl --data-binary`
# with an API token against /api/v1/integrator/services/FILE (as an
# editor's on-save hook would), a broken file refused with its traceback
# while the old version keeps answering, a viewer token and no token
# refused, source/versions/rollback/undeploy/invoke through the API, ctl --node
# from "another machine" (no state dir, the token in ALPHAREN_TOKEN), and a deploy
# through ssh's stdin. Every deploy is recorded under the user who made it.
. "$(dirname "$0")/../lib.sh"
for tool in curl jq ssh ssh-keygen; do command -v $tool >/dev/null || fail "needs $tool (scripts/deps.sh)"; done
STATE=$(mktemp -d /tmp/alpharen-deploy.XXXXXX)
on_exit "rm -rf $STATE"
ssh-keygen -q -t ed25519 -N '' -f "$STATE/id" -C deployer
cat >"$STATE/seed.toml" <<'TOML'
[integrator]
# Plain HTTP on purpose: this test is about deploying, not TLS.
tls = "off"
workers = 1
[[integrator.channels]]
name = "hello"
url_path = "/hello"
service = "hello.world"
TOML
web_node

json() { printf '%s' "$BODY" | jq -e "$@" >/dev/null; }

setup_code=$(cat "$STATE/setup-code")
req POST /api/v1/setup -H 'content-type: application/json' --data-binary \
  "$(jq -nc --arg c "$setup_code" --arg k "$(cat "$STATE/id.pub")" \
    '{code: $c, admin_password: "correct horse", hostname: "dev1", ssh_authorized_keys: [$k]}')"
expect 200 "setup"
req POST /api/v1/session -H 'content-type: application/json' --data-binary '{"username":"admin","password":"correct horse"}' -c "$STATE/jar"
expect 200 "login"
CSRF=$(jq -r .csrf <<<"$BODY")
req POST /api/v1/tokens -b "$STATE/jar" -H "x-csrf-token: $CSRF" -H 'content-type: application/json' --data-binary '{"name":"editor","role":"admin"}'
expect 200 "admin token"
TOKEN=$(jq -r .secret <<<"$BODY")
req POST /api/v1/tokens -b "$STATE/jar" -H "x-csrf-token: $CSRF" -H 'content-type: application/json' --data-binary '{"name":"watcher"}'
expect 200 "viewer token"
RO=$(jq -r .secret <<<"$BODY")
pass "setup, an admin token and a viewer token"

svc() { # svc GREETING: a service file answering {"hi": GREETING}
  printf 'from alpharen.integrator import Service\n\nclass Hello(Service):\n    name = "hello.world"\n\n    def handle(self):\n        self.response.payload = {"hi": "%s"}\n' "$1"
}
svc one >"$STATE/hello.py"
# What an editor's on-save hook runs: no Content-Type of ours, curl's default.
req POST /api/v1/integrator/services/hello.py -H "authorization: Bearer $TOKEN" --data-binary @"$STATE/hello.py"
expect 200 "deploy with curl --data-binary and a token"
json '.version == 1 and .services[0].name == "hello.world"' || fail "deploy answer: $BODY"
wait_for 10 bash -o pipefail -c "curl -sf '$LB/hello' | jq -e '.hi == \"one\"'" || fail "deployed service does not answer on $LB/hello"
pass "curl --data-binary @hello.py with a token deploys; the channel answers"

req POST /api/v1/integrator/services/hello.py --data-binary @"$STATE/hello.py"
expect 401 "deploy without a token"
req POST /api/v1/integrator/services/hello.py -H "authorization: Bearer $RO" --data-binary @"$STATE/hello.py"
expect 403 "deploy with a viewer token"
req POST /api/v1/integrator/services/hello.txt -H "authorization: Bearer $TOKEN" --data-binary @"$STATE/hello.py"
expect 400 "deploy under a name that is not .py"
printf '\xff\xfe' >"$STATE/binary.py"
req POST /api/v1/integrator/services/binary.py -H "authorization: Bearer $TOKEN" --data-binary @"$STATE/binary.py"
expect 400 "deploy of bytes that are not UTF-8"
pass "no token 401, viewer token 403, a non-.py name and non-UTF-8 bytes 400"

{ svc two; printf '        raise_here(\n'; } >"$STATE/broken.py"
req POST /api/v1/integrator/services/hello.py -H "authorization: Bearer $TOKEN" --data-binary @"$STATE/broken.py"
expect 422 "deploy of a file with a syntax error"
json '.code == "deploy_failed" and .details.line == 8' || fail "no line in the refusal: $BODY"
json '.details.traceback | type == "string" and length > 0' || fail "no traceback in the refusal: $BODY"
curl -sf "$LB/hello" | jq -e '.hi == "one"' >/dev/null || fail "the old version stopped answering after a failed deploy"
pass "a broken file: 422 with line 8 and the traceback; version 1 still answers"

svc two >"$STATE/hello2.py"
req POST /api/v1/integrator/services/hello.py -H "authorization: Bearer $TOKEN" --data-binary @"$STATE/hello2.py"
expect 200 "deploy version 2"
wait_for 10 bash -o pipefail -c "curl -sf '$LB/hello' | jq -e '.hi == \"two\"'" || fail "version 2 does not answer"
req GET /api/v1/integrator/services -H "authorization: Bearer $RO"
expect 200 "list with a viewer token"
json 'map(select(.file == "hello.py")) | length == 1' || fail "hello.py not listed: $BODY"
req GET /api/v1/integrator/services/hello.py -H "authorization: Bearer $RO"
expect 200 "source"
jq -j .source <<<"$BODY" | cmp - "$STATE/hello2.py" || fail "stored source differs from what was sent"
req GET "/api/v1/integrator/services/hello.py?version=1" -H "authorization: Bearer $RO"
jq -j .source <<<"$BODY" | cmp - "$STATE/hello.py" || fail "version 1's source differs"
req GET /api/v1/integrator/services/hello.py/versions -H "authorization: Bearer $RO"
expect 200 "versions"
json 'length == 2 and all(.[]; .actor == "admin") and (.[1].active == true)' || fail "versions: $BODY"
pass "list, source (byte for byte, any version) and versions, each recorded under admin"

req POST /api/v1/integrator/invoke/hello.world -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' --data-binary '{"x": 1}'
expect 200 "invoke"
json '.status == 200 and .body.hi == "two" and (.ms | type == "number") and (.cid | length > 0)' || fail "invoke answer: $BODY"
req POST /api/v1/integrator/invoke/no.such -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' --data-binary 'null'
expect 200 "invoke of a service that does not exist"
json '.status == 404' || fail "invoke of an unknown service: $BODY"
req POST /api/v1/integrator/invoke/hello.world -H "authorization: Bearer $RO" -H 'content-type: application/json' --data-binary 'null'
expect 403 "invoke with a viewer token"
pass "invoke through the API: the service's answer with its time; an unknown service answers 404 inside; viewer 403"

req POST /api/v1/integrator/services/hello.py/rollback -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' --data-binary '{"version":1}'
expect 200 "rollback"
wait_for 10 bash -o pipefail -c "curl -sf '$LB/hello' | jq -e '.hi == \"one\"'" || fail "rollback not live"
req POST /api/v1/integrator/services/hello.py/rollback -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' --data-binary '{"version":9}'
expect 404 "rollback to a version that does not exist"
pass "rollback through the API; an unknown version 404"

# ssh: the file on stdin, as from a laptop with no copy on the node.
wait_for 20 bash -c "exec 3<>/dev/tcp/127.0.0.1/$SSH_PORT" || fail "ssh did not listen"
SSHOPTS=(-p "$SSH_PORT" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
  -o ConnectTimeout=10 -o LogLevel=ERROR -o IdentitiesOnly=yes -i "$STATE/id")
svc three >"$STATE/hello3.py"
timeout 60 ssh "${SSHOPTS[@]}" admin@127.0.0.1 integrator deploy - --name hello.py <"$STATE/hello3.py" >"$STATE/ssh.out" 2>&1 ||
  { cat "$STATE/ssh.out"; fail "ssh stdin deploy failed"; }
has "deployed hello.py version 3" "$STATE/ssh.out" || fail "ssh deploy output: $(cat "$STATE/ssh.out")"
wait_for 10 bash -o pipefail -c "curl -sf '$LB/hello' | jq -e '.hi == \"three\"'" || fail "the ssh deploy does not answer"
if timeout 60 ssh "${SSHOPTS[@]}" admin@127.0.0.1 integrator deploy - <"$STATE/hello3.py" >"$STATE/ssh-noname.out" 2>&1; then
  fail "a stdin deploy without --name was taken"
fi
has "needs --name" "$STATE/ssh-noname.out" || fail "stdin without --name: $(cat "$STATE/ssh-noname.out")"
req GET /api/v1/integrator/services/hello.py/versions -H "authorization: Bearer $RO"
json '.[2].actor == "admin"' || fail "ssh deploy not recorded under the ssh user: $BODY"
pass "ssh admin@node integrator deploy - --name hello.py < file deploys version 3, recorded under admin"

# ctl on the developer's machine: no state dir, no socket, only the URL,
# the node's certificate and a token in the environment.
remote() { ALPHAREN_TOKEN=$1 "$ALPHAREN" ctl --state-dir /nonexistent --node "https://localhost:$HTTPS_PORT" --cacert "$STATE/tls/cert.pem" "${@:2}"; }
svc four >"$STATE/hello4.py"
remote "$TOKEN" integrator deploy "$STATE/hello4.py" --name hello.py >"$STATE/remote.out" 2>&1 ||
  { cat "$STATE/remote.out"; fail "ctl --node deploy failed"; }
has "deployed hello.py version 4" "$STATE/remote.out" || fail "ctl --node deploy output: $(cat "$STATE/remote.out")"
wait_for 10 bash -o pipefail -c "curl -sf '$LB/hello' | jq -e '.hi == \"four\"'" || fail "the ctl --node deploy does not answer"
remote "$TOKEN" integrator invoke hello.world '{"x": 1}' >"$STATE/remote-invoke.out" 2>&1 || fail "ctl --node invoke: $(cat "$STATE/remote-invoke.out")"
has '^HTTP 200 in' "$STATE/remote-invoke.out" && has '"hi": "four"' "$STATE/remote-invoke.out" || fail "ctl --node invoke printed: $(cat "$STATE/remote-invoke.out")"
remote "$RO" --json integrator versions hello.py | jq -e 'length == 4 and .[3].actor == "admin"' >/dev/null ||
  fail "ctl --node versions with a viewer token"
if remote "$RO" integrator deploy "$STATE/hello4.py" --name hello.py >"$STATE/remote-ro.out" 2>&1; then
  fail "ctl --node deploy with a viewer token was taken"
fi
has "\[forbidden\]" "$STATE/remote-ro.out" || fail "viewer token refusal: $(cat "$STATE/remote-ro.out")"
remote "$TOKEN" integrator deploy "$STATE/broken.py" --name hello.py >"$STATE/remote-broken.out" 2>&1 && fail "broken file deployed via --node"
has "line 8" "$STATE/remote-broken.out" || fail "ctl --node refusal lacks the line: $(cat "$STATE/remote-broken.out")"
if "$ALPHAREN" ctl --state-dir /nonexistent --node "https://localhost:$HTTPS_PORT" integrator list >"$STATE/remote-ca.out" 2>&1 </dev/null; then
  fail "ctl --node trusted a self-signed certificate without --cacert"
fi
remote "$TOKEN" config apply -f /dev/null >"$STATE/remote-cfg.out" 2>&1 && fail "config apply went through --node"
has "no API route for --node" "$STATE/remote-cfg.out" || fail "unsupported --node command: $(cat "$STATE/remote-cfg.out")"
timeout 60 ssh "${SSHOPTS[@]}" admin@127.0.0.1 integrator list --node "https://localhost:$HTTPS_PORT" >"$STATE/ssh-node.out" 2>&1 &&
  fail "the node's ssh ran ctl --node"
has "not in the node's ssh" "$STATE/ssh-node.out" || fail "ssh --node: $(cat "$STATE/ssh-node.out")"
pass "ctl --node URL --cacert with ALPHAREN_TOKEN: deploy, versions; viewer 403, broken file names line 8, untrusted certificate and unrouted command refused"

req DELETE /api/v1/integrator/services/hello.py -H "authorization: Bearer $TOKEN"
expect 200 "undeploy"
wait_for 10 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' '$LB/hello')\" = 404 ]" || fail "undeployed service still answers"
pass "undeploy through the API; the channel answers 404"
