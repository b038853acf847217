#!/usr/bin/env bash
# TLS client certificates on the integrator's port (:11223), security
# kind "tls_client_cert": two CAs made with openssl, each trusted by one
# definition; a valid certificate (allowed by common name, by whole
# subject, by SAN DNS name) gets 200 and the service sees its subject; no
# certificate is 401; a certificate of the other definition's CA is 401 on
# this channel; a certificate of a CA no definition trusts is refused in
# the handshake; a valid certificate whose subject is not allowed is 403;
# an open channel still answers without a certificate (asked for, not
# required). Also: tls_client_cert with integrator.tls = "off" is refused
# at apply. Loopback only.
. "$(dirname "$0")/../lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
needs curl jq openssl

STATE=$(mktemp -d /tmp/alpharen-tls.XXXXXX)
on_exit "rm -rf $STATE"
chmod 755 "$STATE"
P=$STATE/pki
mkdir -p "$P"

# ca NAME: a self-signed P-256 CA.
ca() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$P/$1.key" -out "$P/$1.pem" -subj "/CN=$1" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null \
    || fail "openssl: CA $1"
}
# cert NAME CA SUBJECT EXT: a certificate signed by CA, with the extension lines EXT.
cert() {
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$P/$1.key" -out "$P/$1.csr" -subj "$3" 2>/dev/null || fail "openssl: csr $1"
  printf '%s\n' "$4" >"$P/$1.ext"
  openssl x509 -req -in "$P/$1.csr" -CA "$P/$2.pem" -CAkey "$P/$2.key" -CAcreateserial \
    -days 1 -out "$P/$1.pem" -extfile "$P/$1.ext" 2>/dev/null || fail "openssl: sign $1"
}
CLIENT='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth'
ca ca-a; ca ca-b; ca ca-stranger; ca ca-server
cert server ca-server "/CN=127.0.0.1" "basicConstraints=CA:FALSE
subjectAltName=IP:127.0.0.1
extendedKeyUsage=serverAuth"
cert orders ca-a "/C=DE/O=Acme/CN=orders" "$CLIENT"
cert billing ca-a "/C=DE/O=Acme, Inc./CN=billing" "$CLIENT"
cert svc ca-a "/CN=anything" "$CLIENT
subjectAltName=DNS:svc.example.net"
cert intruder ca-a "/O=Acme/CN=intruder" "$CLIENT"
cert b-orders ca-b "/CN=orders" "$CLIENT"
cert stranger ca-stranger "/CN=orders" "$CLIENT"
chmod 644 "$P"/*
pass "CAs a, b, stranger and server; client certificates made with $(openssl version | cut -d' ' -f1-2)"

cat >"$STATE/seed.toml" <<TOML
[integrator]
workers = 1
timeout = 5
worker_memory_limit = 256
tls = { cert = "$P/server.pem", key = "$P/server.key" }
[[integrator.security]]
name = "partners"
kind = "tls_client_cert"
ca = """
$(cat "$P/ca-a.pem")
"""
common_names = ["orders"]
subjects = ["CN=billing,O=Acme\\\\, Inc.,C=DE"]
dns_names = ["SVC.example.net"]
[[integrator.security]]
name = "b-side"
kind = "tls_client_cert"
ca = """
$(cat "$P/ca-b.pem")
"""
common_names = ["orders"]
[[integrator.channels]]
name = "partners.who"
url_path = "/partners/who"
service = "tls.whoami"
security = "partners"
[[integrator.channels]]
name = "b.who"
url_path = "/b/who"
service = "tls.whoami"
security = "b-side"
[[integrator.channels]]
name = "open.who"
url_path = "/open/who"
service = "tls.whoami"
TOML
seed_ports "$STATE/seed.toml"
start_node "$STATE" --config "$STATE/seed.toml"
wait_for 20 ctl integrator status >/dev/null || fail "integrator control socket not reachable"
ctl integrator deploy "$HERE/integrator/tlscert.py" >/dev/null || fail "deploy tlscert.py"
wait_for 20 bash -c "'$ALPHAREN' ctl --state-dir '$STATE' --json integrator status | grep -q '\"idle_workers\": 1'" \
  || fail "the deploy did not start the integrator workers"
LB=https://127.0.0.1:$LB_PORT
pass "node up with two tls_client_cert definitions, tlscert.py deployed"

# call NAME PATH: curl with client certificate NAME (none: -), sets CODE and BODY.
call() {
  local auth=()
  [ "$1" = - ] || auth=(--cert "$P/$1.pem" --key "$P/$1.key")
  CODE=$(curl -sS -o "$STATE/body" -w '%{http_code}' --cacert "$P/ca-server.pem" "${auth[@]}" "$LB$2" 2>"$STATE/curl.err") || CODE=handshake
  BODY=$(cat "$STATE/body" 2>/dev/null; cat "$STATE/curl.err")
}

call orders /partners/who; expect 200 "orders (allowed by common name)"
echo "$BODY" | jq -e '.client_cert.subject == "CN=orders,O=Acme,C=DE" and .client_cert.common_name == "orders"
  and .client_cert.issuer == "CN=ca-a" and .wsgi_dn == "CN=orders,O=Acme,C=DE" and (.client_cert.serial | length) > 0' >/dev/null \
  || fail "the service did not see the subject: $BODY"
pass "orders' certificate -> 200; the service sees $(echo "$BODY" | jq -c .client_cert)"
call billing /partners/who; expect 200 "billing (allowed by whole subject)"
echo "$BODY" | jq -e '.client_cert.subject == "CN=billing,O=Acme\\, Inc.,C=DE"' >/dev/null || fail "billing: $BODY"
call svc /partners/who; expect 200 "svc (allowed by SAN DNS name)"
echo "$BODY" | jq -e '.client_cert.dns_names == ["svc.example.net"]' >/dev/null || fail "svc: $BODY"
pass "allowed by whole subject (CN=billing,O=Acme\\, Inc.,C=DE) and by SAN DNS name (case ignored) -> 200"

call - /partners/who; expect 401 "no certificate"
echo "$BODY" | jq -e '.error | test("client certificate signed by this channel.s CA is required")' >/dev/null || fail "no certificate: $BODY"
pass "no certificate -> 401: $(echo "$BODY" | jq -r .error)"
call b-orders /partners/who; expect 401 "CN=orders of CA b on CA a's channel"
echo "$BODY" | jq -e '.error | test("not signed by this channel.s CA")' >/dev/null || fail "CA b on a: $BODY"
call b-orders /b/who; expect 200 "CN=orders of CA b on CA b's channel"
pass "CN=orders from CA b: 401 on CA a's channel ($(echo "$BODY" | jq -r .channel) answers it with 200)"
call stranger /partners/who
[ "$CODE" = handshake ] || fail "a certificate of an untrusted CA got HTTP $CODE: $BODY"
pass "a certificate of a CA no definition trusts: handshake refused ($(tr -d '\n' <"$STATE/curl.err" | cut -c1-100))"
call intruder /partners/who; expect 403 "intruder (valid CA, subject not allowed)"
echo "$BODY" | jq -e '.error | test("CN=intruder,O=Acme is not allowed")' >/dev/null || fail "intruder: $BODY"
pass "a valid certificate whose subject is not allowed -> 403: $(echo "$BODY" | jq -r .error)"
call - /open/who; expect 200 "open channel without a certificate"
echo "$BODY" | jq -e '.client_cert == null' >/dev/null || fail "open: $BODY"
call orders /open/who; expect 200 "open channel with a certificate"
echo "$BODY" | jq -e '.client_cert == null' >/dev/null || fail "an open channel passed a certificate on: $BODY"
pass "an open channel answers with and without a certificate (asked for, not required) and passes none on"

# --- the OpenAPI document names it mutualTLS ----------------------------------
ctl --json integrator openapi | jq -e '.components.securitySchemes.partners.type == "mutualTLS"' >/dev/null \
  || fail "openapi: $(ctl --json integrator openapi | jq -c .components)"
pass "OpenAPI: partners is a mutualTLS security scheme"

# --- plain HTTP with tls_client_cert is refused at apply ---------------------
ctl --json config show integrator | jq '{integrator: (.config | .tls = "off")}' >"$STATE/off.json"
if ctl config apply -f "$STATE/off.json" >"$STATE/off.out" 2>&1; then fail "tls = off with tls_client_cert applied"; fi
has 'integrator.security\[0\].kind' "$STATE/off.out" && has 'integrator.tls is "off"' "$STATE/off.out" \
  || fail "refusal does not say why: $(cat "$STATE/off.out")"
call orders /partners/who; expect 200 "the revision in force still serves"
pass "tls = \"off\" with a tls_client_cert definition refused: $(grep -m1 'security\[0\].kind' "$STATE/off.out")"
