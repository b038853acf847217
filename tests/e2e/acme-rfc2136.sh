#!/usr/bin/env bash
# ACME DNS-01 through an external DNS server: Debian's BIND 9 on loopback
# is the primary of ext.test and takes RFC 2136 updates of TXT records
# signed with the TSIG key acme-key (`update-policy { grant acme-key
# zonesub TXT; }`); Debian's pebble resolves through it (-dnsserver) and
# can validate nothing else (its HTTP-01 and TLS-ALPN-01 ports are closed).
# The node has `[acme.rfc2136]` and the key's secret only in the secret
# store (`[secrets] "web.acme.tsig"`).
# 1. No secret yet: the order fails before the CA is asked, and
#    `ctl acme status` says the secret is not set.
# 2. A wrong secret: BIND refuses the update (BADSIG); the order fails,
#    `ctl acme status` names the TSIG error and the key, the self-signed
#    certificate keeps serving, the zone is unchanged.
# 3. The right secret: a certificate for *.ext.test and ext.test, trusted
#    by curl with pebble's root for any name in the zone; BIND logged the
#    signed add and delete; the TXT records are gone after.
# 4. The secret is in `config export --with-secrets` only: not in `config
#    show`, an export without secrets, any revision, the API's config or
#    web status, or the logs.
# 5. Config checks name the field: a server that is no address, names
#    outside rfc2136.zone, rfc2136 without dns-01.
# KEEP=1 leaves the state and CA directories in /tmp.
. "$(dirname "$0")/../lib.sh"
. "$ROOT/tests/acme-lib.sh"
needs pebble named tsig-keygen openssl curl jq dig
acme_dirs acme2136
ZONE=ext.test
NAME=console.$ZONE
read -r BIND_PORT PEBBLE_PORT PEBBLE_MGMT CLOSED_PORT CLOSED_TLS < <(free_ports 5)

# --- BIND: the zone's primary, updates only with acme-key, only TXT.
SECRET=$(tsig-keygen -a hmac-sha256 acme-key | sed -n 's/.*secret "\(.*\)";/\1/p')
WRONG=$(tsig-keygen -a hmac-sha256 acme-key | sed -n 's/.*secret "\(.*\)";/\1/p')
[ -n "$SECRET" ] && [ -n "$WRONG" ] && [ "$SECRET" != "$WRONG" ] || fail "tsig-keygen made no secrets"
mkdir -p "$CA/bind"
cat >"$CA/bind/named.conf" <<EOF
options {
  directory "$CA/bind";
  pid-file "$CA/bind/named.pid";
  listen-on port $BIND_PORT { 127.0.0.1; };
  listen-on-v6 { none; };
  recursion no;
  dnssec-validation no;
};
controls { };
key "acme-key" { algorithm hmac-sha256; secret "$SECRET"; };
zone "$ZONE" { type primary; file "$CA/bind/$ZONE.db"; update-policy { grant acme-key zonesub TXT; }; };
EOF
cat >"$CA/bind/$ZONE.db" <<EOF
\$TTL 60
@ IN SOA ns.$ZONE. hostmaster.$ZONE. 1 60 60 600 10
@ IN NS ns.$ZONE.
ns IN A 127.0.0.1
console IN A 127.0.0.1
EOF
named -g -c "$CA/bind/named.conf" >"$CA/bind.log" 2>&1 &
BIND_PID=$!
on_exit "kill $BIND_PID 2>/dev/null; wait $BIND_PID 2>/dev/null"
wait_for 20 bash -c "dig @127.0.0.1 -p $BIND_PORT +short $ZONE SOA | grep -q hostmaster" \
  || { cat "$CA/bind.log"; fail "named did not start"; }
txt() { dig @127.0.0.1 -p "$BIND_PORT" +short "_acme-challenge.$ZONE" TXT; }

# --- pebble's own HTTPS certificate, from a CA made here (acme.ca).
pebble_ca
start_pebble pebble "$PEBBLE_PORT" "$PEBBLE_MGMT" "$CLOSED_PORT" "$CLOSED_TLS" "127.0.0.1:$BIND_PORT"
curl -sf --cacert "$CA/ca.pem" "https://127.0.0.1:$PEBBLE_MGMT/roots/0" >"$CA/root.pem" || fail "pebble's root"

# --- the node: no dpx zone; [acme.rfc2136] and no secret yet.
cat >"$STATE/seed.toml" <<TOML
[node]
hostname = "node1"
[acme]
enabled = true
accept_terms = true
challenge = "dns-01"
directory = "https://127.0.0.1:$PEBBLE_PORT/dir"
domains = ["*.$ZONE", "$ZONE"]
ca = "$CA/ca.pem"
[acme.rfc2136]
server = "127.0.0.1:$BIND_PORT"
zone = "$ZONE"
key_name = "acme-key"
algorithm = "hmac-sha256"
TOML
seed_ports "$STATE/seed.toml"
start_node "$STATE" --config "$STATE/seed.toml"
wait_for 20 curl -skf "https://127.0.0.1:$HTTPS_PORT/api/v1/health" \
  || { cat "$STATE/console.log"; fail "web did not come up"; }

acme() { ctl --json acme status; }
fp_of() {
  openssl s_client -connect "127.0.0.1:$HTTPS_PORT" -servername "$1" </dev/null 2>/dev/null \
    | openssl x509 -noout -fingerprint -sha256 | cut -d= -f2
}
file_fp() { openssl x509 -in "$1" -noout -fingerprint -sha256 | cut -d= -f2; }
trusted() {
  curl -sf --cacert "$CA/root.pem" --resolve "$1:$HTTPS_PORT:127.0.0.1" \
    "https://$1:$HTTPS_PORT/api/v1/health" >/dev/null
}
# with_secret VALUE: the seed document applied with the TSIG secret.
with_secret() {
  { cat "$STATE/seed.toml"; printf '[secrets]\n"web.acme.tsig" = "%s"\n' "$1"; } >"$STATE/cfg.toml"
  ctl config apply -f "$STATE/cfg.toml" >/dev/null || fail "config apply with the secret"
  rm -f "$STATE/cfg.toml"
}
export ALPHAREN STATE
export -f ctl acme
SELF_FP=$(file_fp "$STATE/tls/cert.pem")

# --- 1. no secret.
wait_for 30 bash -o pipefail -c "acme | jq -en 'input | .state == \"failed\"'" || { acme; fail "an order without the secret did not fail"; }
acme | jq -en 'input | .last_error | test("web.acme.tsig is not set")' >/dev/null || { acme; fail "the error does not say the secret is missing"; }
has -c "new-order" "$CA/pebble.log" && fail "pebble got an order without a TSIG key"
pass "without the secret the order fails before the CA is asked, and ctl acme status says web.acme.tsig is not set"

# --- 2. a wrong secret.
with_secret "$WRONG"
wait_for 60 bash -o pipefail -c "acme | jq -en 'input | .last_error | test(\"BadSig\")'" \
  || { acme; ctl logs web | tail -20; tail -20 "$CA/bind.log"; fail "the wrong TSIG secret is not reported"; }
acme | jq -en 'input | .state == "failed" and .serving == false and (.last_error | test("acme-key") and test("127.0.0.1:'"$BIND_PORT"'") and test("_acme-challenge.'"$ZONE"'"))' >/dev/null \
  || { acme; fail "the error does not name the key, the server and the record"; }
has "request has invalid signature" "$CA/bind.log" || { tail -20 "$CA/bind.log"; fail "BIND did not see a bad signature"; }
[ -z "$(txt)" ] || fail "a TXT record was added with the wrong key"
[ "$(fp_of "$NAME")" = "$SELF_FP" ] || fail "the self-signed certificate is not served after the failed order"
curl -skf "https://127.0.0.1:$HTTPS_PORT/api/v1/health" >/dev/null || fail "web is broken after the failed order"
ctl status >/dev/null || fail "ctl status after the failed order"
pass "a wrong TSIG secret: BIND refused the update (BADSIG), ctl acme status names the key, the server and the record; the self-signed certificate keeps serving"

# --- 3. the right secret: the failures do not delay the new key's order.
with_secret "$SECRET"
wait_for 90 bash -o pipefail -c "acme | jq -en 'input | .state == \"waiting\" and .serving'" \
  || { acme; ctl logs web | tail -20; tail -20 "$CA/pebble.log"; tail -20 "$CA/bind.log"; fail "no certificate over DNS-01 through BIND"; }
openssl x509 -in "$STATE/tls/acme.pem" -noout -ext subjectAltName | has "DNS:\*\.$ZONE" || fail "acme.pem does not name *.$ZONE"
for host in "$NAME" "anything.$ZONE" "$ZONE"; do
  trusted "$host" || fail "curl does not trust the certificate for $host with pebble's root"
done
[ "$(fp_of "anything.$ZONE")" = "$(file_fp "$STATE/tls/acme.pem")" ] || fail "the wildcard certificate is not served"
# Two values (the wildcard's and the apex's) added and deleted, each by
# a request signed with acme-key.
[ "$(grep -c "/key acme-key: updating zone '$ZONE/IN': adding an RR at '_acme-challenge.$ZONE' TXT" "$CA/bind.log")" = 2 ] \
  || { cat "$CA/bind.log"; fail "BIND did not log two signed adds"; }
[ "$(grep -c "/key acme-key: updating zone '$ZONE/IN': deleting an RR at _acme-challenge.$ZONE TXT" "$CA/bind.log")" = 2 ] \
  || { cat "$CA/bind.log"; fail "BIND did not log two signed deletes"; }
[ -z "$(txt)" ] || fail "the DNS-01 answers stayed in the zone: $(txt)"
pass "the right secret: pebble issued *.$ZONE and $ZONE over DNS-01 through BIND's RFC 2136 updates; curl trusts it; the TXT records were deleted"

# --- 4. the secret is in the secret store only.
ctl config export --with-secrets | has -F "$SECRET" || fail "the TSIG secret is not in the secret store"
for what in "config show" "config export"; do
  # shellcheck disable=SC2086
  if ctl $what | has -F -e "$SECRET" -e "$WRONG"; then fail "the TSIG secret in ctl $what"; fi
done
ctl --json config history -n 100 | jq -r '.revisions[].id' | while read -r r; do
  if ctl --json config show --revision "$r" | has -F -e "$SECRET" -e "$WRONG"; then fail "the TSIG secret in revision $r"; fi
done
PASSWORD="correct horse"
curl -skf -H 'content-type: application/json' \
  --data "{\"code\":\"$(cat "$STATE/setup-code")\",\"admin_password\":\"$PASSWORD\",\"hostname\":\"node1\"}" \
  "https://127.0.0.1:$HTTPS_PORT/api/v1/setup" >/dev/null || fail "setup"
curl -skf -c "$STATE/jar" -H 'content-type: application/json' \
  --data "{\"username\":\"admin\",\"password\":\"$PASSWORD\"}" \
  "https://127.0.0.1:$HTTPS_PORT/api/v1/session" >/dev/null || fail "login"
for path in /api/v1/config /api/v1/config/export /api/v1/config/history /api/v1/services/web/status /api/v1/services; do
  CODE=$(curl -sk -b "$STATE/jar" -o "$STATE/body" -w '%{http_code}' "https://127.0.0.1:$HTTPS_PORT$path")
  [ "$CODE" = 200 ] || fail "GET $path: HTTP $CODE"
  if grep -q -F -e "$SECRET" -e "$WRONG" "$STATE/body"; then fail "the TSIG secret in GET $path"; fi
done
curl -skf -b "$STATE/jar" "https://127.0.0.1:$HTTPS_PORT/api/v1/config" | jq -en 'input | .config.acme.rfc2136.key_name == "acme-key"' >/dev/null \
  || fail "GET /api/v1/config does not show [acme.rfc2136]"
if grep -rq -F -e "$SECRET" -e "$WRONG" "$STATE/log" "$STATE/console.log"; then fail "the TSIG secret in a log file"; fi
for svc in web supervisor; do
  if ctl logs "$svc" -n 2000 | has -F -e "$SECRET" -e "$WRONG"; then fail "the TSIG secret in ctl logs $svc"; fi
done
pass "the TSIG secret is in the secret store only (not in config show/export, revisions, API answers or logs)"

# --- 5. config checks.
out=$(ctl config set acme.rfc2136.server '"ns.example:53"' 2>&1) && fail "a server name instead of an address was accepted"
echo "$out" | has 'acme.rfc2136.server' || fail "the server refusal does not name the field: $out"
out=$(ctl config set acme.domains "['www.example.net']" 2>&1) && fail "a name outside rfc2136.zone was accepted"
echo "$out" | has 'acme.domains\[0\].*not inside acme.rfc2136.zone' || fail "the out-of-zone refusal does not say why: $out"
out=$(ctl config set acme.challenge '"http-01"' 2>&1) && fail "rfc2136 with http-01 was accepted"
echo "$out" | has 'acme.rfc2136.*only with acme.challenge = "dns-01"' || fail "the challenge refusal does not say why: $out"
pass "config refuses a server that is no address, names outside rfc2136.zone and rfc2136 without dns-01, naming the field"
