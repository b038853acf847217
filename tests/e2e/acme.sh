#!/usr/bin/env bash
# ACME end to end against Debian's pebble on loopback: two pebbles, one
# validating HTTP-01 on the node's HTTP port and one on a closed port,
# both resolving names through the node's own dpx zone (-dnsserver).
# 1. Against the wrong-port pebble the order fails: `ctl acme status`
#    reports it, the supervisor raises an alert for the admin, the
#    self-signed certificate keeps serving.
# 2. Against the right one the node gets a certificate that curl trusts
#    with pebble's root (from its management endpoint); the keys are in
#    the secret store, never in `ctl config show`, an export without
#    secrets, the certificate file or any log.
# 3. A forced renewal swaps the certificate for new connections while a
#    connection opened before goes on being served; a restarted web
#    service serves it again from acme.pem and the secret store.
# 4. A forced renewal against the wrong-port pebble fails, is reported
#    (a second alert), and the certificate from 2 keeps serving.
# Pebble 2.4.0 has no ARI: the status and the log say the lifetime
# schedule is used.
# KEEP=1 leaves the state and CA directories in /tmp.
. "$(dirname "$0")/../lib.sh"
. "$ROOT/tests/acme-lib.sh"
needs pebble openssl curl jq python3 dig
acme_dirs acme
ZONE=acme.test
NAME=console.$ZONE
read -r DNS_PORT GOOD_PORT GOOD_MGMT BAD_PORT BAD_MGMT CLOSED_PORT TLS01_PORT < <(free_ports 7)

# --- pebble's own HTTPS certificate, from a CA made here: the node trusts
# it through acme.ca (readable by the web service's user).
pebble_ca


# --- the node: its zone names console.acme.test (127.0.0.1), [acme]
# points at the wrong-port pebble first.
seed_ports "$STATE/seed.toml"
cat >>"$STATE/seed.toml" <<TOML
[node]
hostname = "node1"
[dpx]
zone = "$ZONE."
port = $DNS_PORT
[[dpx.records]]
name = "console"
type = "A"
value = "127.0.0.1"
[acme]
enabled = true
accept_terms = true
directory = "https://127.0.0.1:$BAD_PORT/dir"
contact = "ops@example.net"
domains = ["$NAME"]
ca = "$CA/ca.pem"
TOML
start_pebble good "$GOOD_PORT" "$GOOD_MGMT" "$HTTP_PORT" "$TLS01_PORT" "127.0.0.1:$DNS_PORT"
start_pebble bad "$BAD_PORT" "$BAD_MGMT" "$CLOSED_PORT" "$TLS01_PORT" "127.0.0.1:$DNS_PORT"
start_node "$STATE" --config "$STATE/seed.toml"
wait_for 20 curl -skf "https://127.0.0.1:$HTTPS_PORT/api/v1/health" \
  || { cat "$STATE/console.log"; fail "web did not come up"; }
[ "$(dig @127.0.0.1 -p "$DNS_PORT" +short "$NAME" A)" = 127.0.0.1 ] || fail "the zone does not name $NAME"

acme() { ctl --json acme status; }
# served_fp: SHA-256 fingerprint of the certificate the node serves for $NAME.
served_fp() {
  openssl s_client -connect "127.0.0.1:$HTTPS_PORT" -servername "$NAME" </dev/null 2>/dev/null \
    | openssl x509 -noout -fingerprint -sha256 | cut -d= -f2
}
file_fp() { openssl x509 -in "$1" -noout -fingerprint -sha256 | cut -d= -f2; }
export ALPHAREN STATE NAME HTTPS_PORT
export -f ctl acme served_fp
SELF_FP=$(file_fp "$STATE/tls/cert.pem")

# --- 1. a failed order: reported, the self-signed certificate serves.
wait_for 60 bash -o pipefail -c "acme | jq -e '.state == \"failed\" and .failures >= 1'" \
  || { acme; ctl logs web | tail -20; fail "the failed order is not reported"; }
acme | jq -e '.last_error | test("console.acme.test:'"$CLOSED_PORT"'.*connection refused")' >/dev/null \
  || { acme; fail "the error does not say which name failed and why"; }
acme | jq -e '.serving == false and .next_attempt > now' >/dev/null || { acme; fail "a failed order: no retry planned"; }
ctl logs web | has "ACME: order failed" || fail "the failure is not logged"
wait_for 10 bash -c "ctl logs supervisor | grep -q 'notification: alert from web: ACME certificate order for $NAME failed: .*connection refused'" \
  || { ctl logs supervisor | tail; fail "no alert for the admin"; }
[ "$(served_fp)" = "$SELF_FP" ] || fail "the self-signed certificate is not served after a failed order"
curl -s --cacert "$CA/ca.pem" "https://127.0.0.1:$BAD_MGMT/roots/0" >"$CA/bad-root.pem"
pass "a failed order is reported in ctl acme status and the log; the self-signed certificate keeps serving"

# --- 2. the right CA: a certificate curl trusts with pebble's root.
ctl config set acme.directory "https://127.0.0.1:$GOOD_PORT/dir" >/dev/null || fail "config set acme.directory"
wait_for 60 bash -o pipefail -c "acme | jq -e '.state == \"waiting\" and .serving'" \
  || { acme; ctl logs web | tail -20; cat "$CA/good.log" | tail -20; fail "no certificate from pebble"; }
curl -sf --cacert "$CA/ca.pem" "https://127.0.0.1:$GOOD_MGMT/roots/0" >"$CA/root.pem" || fail "pebble's root"
curl -sf --cacert "$CA/root.pem" --resolve "$NAME:$HTTPS_PORT:127.0.0.1" \
  "https://$NAME:$HTTPS_PORT/api/v1/health" >/dev/null || fail "curl does not trust the served certificate with pebble's root"
if curl -sf --cacert "$CA/bad-root.pem" --resolve "$NAME:$HTTPS_PORT:127.0.0.1" \
  "https://$NAME:$HTTPS_PORT/api/v1/health" >/dev/null 2>&1; then fail "the other pebble's root is trusted too (the check proves nothing)"; fi
FIRST_FP=$(served_fp)
[ "$FIRST_FP" != "$SELF_FP" ] || fail "still the self-signed certificate"
[ "$(file_fp "$STATE/tls/acme.pem")" = "$FIRST_FP" ] || fail "tls/acme.pem is not the served certificate"
acme | jq -e '.not_after > now + 86400 and .renew_at < .not_after and .failures == 0 and .last_error == null' >/dev/null \
  || { acme; fail "status after issuance"; }
pass "pebble issued the certificate over HTTP-01 through the node's zone; curl trusts it with pebble's root"

# Debian's pebble 2.4.0 has no ARI (RFC 9773): the lifetime schedule is used.
curl -sf --cacert "$CA/ca.pem" "https://127.0.0.1:$GOOD_PORT/dir" | jq -e 'has("newOrder") and (has("renewalInfo") | not)' >/dev/null \
  || fail "pebble's directory has renewalInfo (or none answered): this check expects a CA without ARI"
wait_for 20 bash -c "acme | jq -e '.schedule == \"lifetime (CA offers no ARI)\"'" \
  || { acme; fail "the status does not say the lifetime schedule is used for lack of ARI"; }
ctl acme status | has "^schedule: *lifetime (CA offers no ARI)" || fail "ctl acme status (text) has no schedule"
ctl logs web | has "ACME: renewal schedule.*lifetime (CA offers no ARI)" || fail "the fallback to the lifetime schedule is not logged"
pass "pebble offers no ARI: ctl acme status and the log say the lifetime schedule is used"

# The API's field: the web service's status, for a logged-in user.
PASSWORD="correct horse"
curl -skf -H 'content-type: application/json' \
  --data "{\"code\":\"$(cat "$STATE/setup-code")\",\"admin_password\":\"$PASSWORD\",\"hostname\":\"node1\"}" \
  "https://127.0.0.1:$HTTPS_PORT/api/v1/setup" >/dev/null || fail "setup"
curl -skf -c "$STATE/jar" -H 'content-type: application/json' \
  --data "{\"username\":\"admin\",\"password\":\"$PASSWORD\"}" \
  "https://127.0.0.1:$HTTPS_PORT/api/v1/session" >/dev/null || fail "login"
curl -skf -b "$STATE/jar" "https://127.0.0.1:$HTTPS_PORT/api/v1/services/web/status" \
  | jq -e --arg n "$NAME" '.acme.serving and .acme.domains == [$n]' >/dev/null || fail "GET /api/v1/services/web/status has no acme field"
[ "$(curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:$HTTPS_PORT/api/v1/services/web/status")" = 401 ] \
  || fail "the web status answers a stranger"
# Plain HTTP: unknown challenge tokens are 404, everything else still redirects.
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/.well-known/acme-challenge/nope")" = 404 ] \
  || fail "an unknown challenge token is not 404"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/api/v1/health")" = 308 ] \
  || fail "the HTTP redirect changed"
pass "the API's web status has the acme field (401 without login); plain HTTP still redirects"

# The keys: in the secret store, nowhere else.
ctl config export --with-secrets | has "BEGIN PRIVATE KEY" || fail "the certificate key is not in the secret store"
ctl config export --with-secrets | has "web.acme.account." || fail "the account is not in the secret store"
KEYLINE=$(ctl config export --with-secrets | grep -A1 "BEGIN PRIVATE KEY" | tail -1 | tr -d '" ' | cut -c1-40)
[ -n "$KEYLINE" ] || fail "no key line to look for"
for what in "config show" "config export"; do
  # shellcheck disable=SC2086
  if ctl $what | has -e "PRIVATE KEY" -e "web.acme" -e "$KEYLINE"; then fail "a key in ctl $what"; fi
done
ctl --json config history -n 100 | jq -r '.revisions[].id' | while read -r r; do
  if ctl --json config show --revision "$r" | has -e "PRIVATE KEY" -e "$KEYLINE"; then fail "a key in revision $r"; fi
done
if grep -rq -e "PRIVATE KEY" -e "$KEYLINE" -e "key_pkcs8" "$STATE/tls/acme.pem" "$STATE/log" "$STATE/console.log"; then
  fail "a key in the certificate file or a log"
fi
for svc in web supervisor; do
  if ctl logs "$svc" -n 2000 | has -e "PRIVATE KEY" -e "$KEYLINE" -e "key_pkcs8"; then fail "a key in ctl logs $svc"; fi
done
pass "the certificate key and the account are in the secret store only (not in config, revisions, files or logs)"

# --- 3. a forced renewal: new connections get a new certificate, an
# open one is not dropped.
python3 - "$NAME" "$HTTPS_PORT" "$CA/root.pem" "$STATE/go" >"$STATE/conn.out" 2>&1 <<'PY' &
import hashlib, http.client, os, socket, ssl, sys, time
name, port, root, go = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=root)
sock = socket.create_connection(("127.0.0.1", port))
tls = ctx.wrap_socket(sock, server_hostname=name)
c = http.client.HTTPSConnection(name, port, context=ctx)
c.sock = tls
fp = lambda: hashlib.sha256(c.sock.getpeercert(binary_form=True)).hexdigest()
c.request("GET", "/api/v1/health"); r = c.getresponse(); r.read()
print("first", r.status, fp(), flush=True)
for _ in range(600):
    if os.path.exists(go): break
    time.sleep(0.1)
c.request("GET", "/api/v1/health"); r = c.getresponse(); r.read()
print("second", r.status, fp(), flush=True)
PY
CONN_PID=$!
on_exit "kill $CONN_PID 2>/dev/null"
wait_for 10 has '^first 200' "$STATE/conn.out" || { cat "$STATE/conn.out"; fail "the long connection did not start"; }
ctl acme renew >/dev/null || fail "ctl acme renew"
wait_for 60 bash -c "[ \"\$(served_fp)\" != \"$FIRST_FP\" ]" \
  || { acme; ctl logs web | tail -20; fail "a forced renewal did not swap the certificate"; }
SECOND_FP=$(served_fp)
touch "$STATE/go"
wait $CONN_PID || { cat "$STATE/conn.out"; fail "the connection opened before the renewal failed"; }
has '^second 200' "$STATE/conn.out" || { cat "$STATE/conn.out"; fail "the open connection was not served after the swap"; }
[ "$(awk '/^first/ {print $3}' "$STATE/conn.out")" = "$(awk '/^second/ {print $3}' "$STATE/conn.out")" ] \
  || fail "the open connection's certificate changed (it was re-established)"
curl -sf --cacert "$CA/root.pem" --resolve "$NAME:$HTTPS_PORT:127.0.0.1" \
  "https://$NAME:$HTTPS_PORT/api/v1/health" >/dev/null || fail "the renewed certificate is not trusted"
pass "a forced renewal swapped the certificate; a connection opened before it kept being served"

# A restarted web service serves the stored certificate with the key from
# the secret store, and orders nothing.
orders=$(ctl logs web -n 2000 | grep -c 'ACME: ordering')
ctl restart web >/dev/null || fail "restart web"
wait_for 20 bash -o pipefail -c "acme | jq -e '.serving and .state == \"waiting\"'" || { acme; fail "web after a restart"; }
wait_for 20 curl -skf "https://127.0.0.1:$HTTPS_PORT/api/v1/health" || fail "web did not come back"
[ "$(served_fp)" = "$SECOND_FP" ] || fail "a restarted web does not serve the stored certificate"
sleep 2
[ "$(ctl logs web -n 2000 | grep -c 'ACME: ordering')" = "$orders" ] || { ctl logs web | grep ACME; fail "a restarted web ordered again"; }
pass "a restarted web service serves the stored certificate without a new order"

# --- 4. renewal against the wrong-port pebble fails; the certificate stays.
ctl config set acme.directory "https://127.0.0.1:$BAD_PORT/dir" >/dev/null || fail "config set acme.directory (bad)"
wait_for 10 bash -o pipefail -c "acme | jq -e '.directory | test(\"$BAD_PORT\")'" \
  || fail "the new directory is not in the status"
ctl acme renew >/dev/null || fail "ctl acme renew (bad)"
wait_for 60 bash -o pipefail -c "acme | jq -e '.state == \"failed\"'" \
  || { acme; fail "the failed renewal is not reported"; }
acme | jq -e '.serving and (.last_error | test("console.acme.test:'"$CLOSED_PORT"'.*connection refused"))' >/dev/null || { acme; fail "status after a failed renewal"; }
[ "$(served_fp)" = "$SECOND_FP" ] || fail "the certificate changed after a failed renewal"
curl -sf --cacert "$CA/root.pem" --resolve "$NAME:$HTTPS_PORT:127.0.0.1" \
  "https://$NAME:$HTTPS_PORT/api/v1/health" >/dev/null || fail "the old certificate is not served after a failed renewal"
ctl acme status | has "^state: *failed" || fail "ctl acme status (text) does not say failed"
wait_for 10 bash -c "[ \$(ctl logs supervisor | grep -c 'notification: alert from web: ACME') = 2 ]" \
  || { ctl logs supervisor | grep alert; fail "the failed renewal raised no second alert (one per run of failures)"; }
pass "a failed renewal is reported; the certificate from pebble keeps serving"
