#!/usr/bin/env bash
# ACME's other challenges against one Debian pebble on loopback that can
# validate only over TLS-ALPN-01 (its tlsPort is the node's HTTPS port)
# and DNS-01 (-dnsserver is the node's own dpx zone); its HTTP-01 port is
# closed. The mail service's STARTTLS follows the ACME certificate.
# 1. TLS-ALPN-01 (`acme.challenge = "tls-alpn-01"`): pebble's validator
#    gets the acmeIdentifier certificate (HTTP-01 could not have passed:
#    pebble's httpPort is closed), the node a certificate curl
#    trusts with pebble's root. Outside an order the listener refuses
#    `acme-tls/1` and still speaks h2. STARTTLS for mx.acme.test
#    (`mail.tls_name`), not named by it, keeps the self-signed pair.
# 2. DNS-01 (`acme.challenge = "dns-01"`) for `*.acme.test` and
#    `acme.test`: the web service has dpx publish both answers at
#    `_acme-challenge.acme.test` and withdraw them after; curl trusts the
#    wildcard certificate for any name in the zone; STARTTLS now serves
#    it (no restart), and the next renewal's too.
#    dpx.acme_txt is refused to another service's user (ar-integrator,
#    with the services' token) and answered for ar-web.
# 3. Config checks: a wildcard with tls-alpn-01 and a dns-01 name outside
#    the zone are refused with the key path and the reason.
# KEEP=1 leaves the state and CA directories in /tmp.
. "$(dirname "$0")/../lib.sh"
. "$ROOT/tests/acme-lib.sh"
needs pebble openssl curl jq dig ip
acme_dirs acmech
ZONE=acme.test
NAME=console.$ZONE
MX=mx.$ZONE
read -r DNS_PORT PEBBLE_PORT PEBBLE_MGMT CLOSED_PORT SUB_PORT < <(free_ports 5)

# --- pebble's own HTTPS certificate, from a CA made here (acme.ca).
pebble_ca

# --- the node: HTTPS and SMTP submission ports fixed first (pebble
# validates TLS-ALPN-01 on the HTTPS port).
cat >"$STATE/seed.toml" <<TOML
[node]
hostname = "node1"
[dpx]
zone = "$ZONE."
port = $DNS_PORT
[[dpx.records]]
name = "console"
type = "A"
value = "127.0.0.1"
[mail]
tls_name = "$MX"
[mail.submission]
ports = [$SUB_PORT]
[acme]
enabled = true
accept_terms = true
challenge = "tls-alpn-01"
directory = "https://127.0.0.1:$PEBBLE_PORT/dir"
contact = "ops@example.net"
domains = ["$NAME"]
ca = "$CA/ca.pem"
TOML
seed_ports "$STATE/seed.toml"

start_pebble pebble "$PEBBLE_PORT" "$PEBBLE_MGMT" "$CLOSED_PORT" "$HTTPS_PORT" "127.0.0.1:$DNS_PORT"
curl -sf --cacert "$CA/ca.pem" "https://127.0.0.1:$PEBBLE_MGMT/roots/0" >"$CA/root.pem" || fail "pebble's root"

# A mail client on the "LAN": a namespace of the test's own behind a veth.
NS=acmech$$
ip netns add "$NS" || fail "ip netns add (needs root)"
on_exit "ip netns del $NS"
ip link add "va$$" type veth peer name "vb$$"; on_exit "ip link del va$$ 2>/dev/null"
ip link set "vb$$" netns "$NS"
ip addr add 10.237.0.1/30 dev "va$$"; ip link set "va$$" up
ip -n "$NS" addr add 10.237.0.2/30 dev "vb$$"; ip -n "$NS" link set "vb$$" up

start_node "$STATE" --config "$STATE/seed.toml"
wait_for 20 curl -skf "https://127.0.0.1:$HTTPS_PORT/api/v1/health" \
  || { cat "$STATE/console.log"; fail "web did not come up"; }

acme() { ctl --json acme status; }
# fp_of HOST: SHA-256 fingerprint of the certificate served for HOST.
fp_of() {
  openssl s_client -connect "127.0.0.1:$HTTPS_PORT" -servername "$1" </dev/null 2>/dev/null \
    | openssl x509 -noout -fingerprint -sha256 | cut -d= -f2
}
# mail_fp: the same for the STARTTLS of the submission port, asking for
# $MX, from the test's namespace (loopback clients get no STARTTLS).
mail_fp() {
  ip netns exec "$NS" openssl s_client -starttls smtp -connect "10.237.0.1:$SUB_PORT" -servername "$MX" </dev/null 2>/dev/null \
    | openssl x509 -noout -fingerprint -sha256 | cut -d= -f2
}
file_fp() { openssl x509 -in "$1" -noout -fingerprint -sha256 | cut -d= -f2; }
# trusted HOST: curl reaches the API as HOST trusting only pebble's root.
trusted() {
  curl -sf --cacert "$CA/root.pem" --resolve "$1:$HTTPS_PORT:127.0.0.1" \
    "https://$1:$HTTPS_PORT/api/v1/health" >/dev/null
}
export ALPHAREN STATE HTTPS_PORT SUB_PORT MX NS
export -f ctl acme fp_of mail_fp
SELF_FP=$(file_fp "$STATE/tls/cert.pem")

# --- 1. TLS-ALPN-01.
wait_for 60 bash -o pipefail -c "acme | jq -e '.state == \"waiting\" and .serving'" \
  || { acme; ctl logs web | tail -20; tail -20 "$CA/pebble.log"; fail "no certificate over TLS-ALPN-01"; }
trusted "$NAME" || fail "curl does not trust the TLS-ALPN-01 certificate with pebble's root"
ctl logs web -n 2000 | has "ACME: answered a TLS-ALPN-01 validation" || fail "no TLS-ALPN-01 validation in the log"
has "set VALID by completed challenge" "$CA/pebble.log" || fail "pebble validated nothing"
ALPN_FP=$(fp_of "$NAME")
[ "$ALPN_FP" != "$SELF_FP" ] || fail "still the self-signed certificate"
openssl x509 -in "$STATE/tls/acme.pem" -noout -ext subjectAltName | has "DNS:$NAME" || fail "acme.pem does not name $NAME"
# No order in flight: acme-tls/1 is refused; ordinary clients still get h2.
if openssl s_client -connect "127.0.0.1:$HTTPS_PORT" -servername "$NAME" -alpn acme-tls/1 </dev/null 2>&1 \
  | has -E "ALPN protocol: acme-tls/1|acmeIdentifier"; then
  fail "acme-tls/1 is negotiated outside an order"
fi
[ "$(curl -s --cacert "$CA/root.pem" --resolve "$NAME:$HTTPS_PORT:127.0.0.1" -o /dev/null -w '%{http_version}' \
  "https://$NAME:$HTTPS_PORT/api/v1/health")" = 2 ] || fail "HTTPS no longer speaks h2"
[ "$(mail_fp)" = "$SELF_FP" ] || fail "STARTTLS for $MX does not serve the self-signed pair while the ACME certificate does not name it"
pass "pebble issued over TLS-ALPN-01 on the HTTPS port; curl trusts it; acme-tls/1 refused outside an order; STARTTLS keeps the self-signed pair"

# --- 3. config checks (before the switch, so they cannot race an order).
out=$(ctl config set acme.domains "['*.$ZONE']" 2>&1) && fail "a wildcard with tls-alpn-01 was accepted"
echo "$out" | has 'acme.domains\[0\].*only acme.challenge = "dns-01"' || fail "the wildcard refusal does not say why: $out"
ctl config set acme.challenge '"dns-01"' >/dev/null || fail "config set acme.challenge dns-01"
out=$(ctl config set acme.domains "['www.example.net']" 2>&1) && fail "a dns-01 name outside the zone was accepted"
echo "$out" | has 'acme.domains\[0\].*not inside dpx.zone' || fail "the out-of-zone refusal does not say why: $out"
out=$(ctl config set acme.challenge '"dns-02"' 2>&1) && fail "an unknown challenge was accepted"
echo "$out" | has 'dns-02' || fail "the unknown challenge refusal does not name it: $out"
pass "config refuses a wildcard without dns-01, a dns-01 name outside the zone and an unknown challenge"

# --- 2. DNS-01 for the wildcard and the apex.
ctl config set acme.domains "['*.$ZONE', '$ZONE']" >/dev/null || fail "config set acme.domains (wildcard)"
wait_for 90 bash -c "openssl x509 -in $STATE/tls/acme.pem -noout -ext subjectAltName 2>/dev/null | grep -q 'DNS:\*\.$ZONE'" \
  || { acme; ctl logs web | tail -20; tail -20 "$CA/pebble.log"; fail "no wildcard certificate over DNS-01"; }
wait_for 20 bash -o pipefail -c "acme | jq -e '.state == \"waiting\" and .serving'" || { acme; fail "status after the wildcard order"; }
for host in "$NAME" "anything.$ZONE"; do
  trusted "$host" || fail "curl does not trust the wildcard certificate for $host"
done
WILD_FP=$(file_fp "$STATE/tls/acme.pem")
[ "$(fp_of "anything.$ZONE")" = "$WILD_FP" ] || fail "the wildcard certificate is not served"
[ -z "$(dig @127.0.0.1 -p "$DNS_PORT" +short "_acme-challenge.$ZONE" TXT)" ] \
  || fail "the DNS-01 answers stayed in the zone"
ctl logs dpx -n 2000 | has "by=acme\|by=\"acme\"" || fail "the dpx log does not say who changed the zone"
pass "pebble issued *.$ZONE over DNS-01 through the dpx zone; curl trusts it for any name; the TXT answers were withdrawn"

# --- dpx.acme_txt answers only the web service's user (and root).
WPID=$(ctl --json services | jq -r '.[] | select(.name=="web") | .pid')
TOKEN=$(tr '\0' '\n' <"/proc/$WPID/environ" | sed -n 's/^ALPHAREN_RPC_TOKEN=//p')
[ -n "$TOKEN" ] || fail "the web service has no service token in its environment"
# acme_txt_as UID [True|False]: dpx.acme_txt (publish, or withdraw, a
# made-up value) as that user with the services' token; the answer's JSON.
acme_txt_as() {
  setpriv --reuid="$1" --regid="$1" --groups=900 --no-new-privs /usr/bin/python3 -c '
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
req = {"jsonrpc": "2.0", "id": 1, "method": "dpx.acme_txt", "token": sys.argv[2],
       "params": {"name": "_acme-challenge.'"$ZONE"'", "value": "probe-value-from-the-test-0000000000000000", "present": sys.argv[3] == "True"}}
try:
    s.sendall(json.dumps(req).encode() + b"\n")
except BrokenPipeError:
    pass  # the socket answered before reading (a refusal): print that answer
print(s.makefile().readline())' "$STATE/run/dpx.sock" "$TOKEN" "${2:-True}"
}
out=$(acme_txt_as 908) || fail "dpx.acme_txt as ar-integrator failed to run"
echo "$out" | jq -en 'input | .error.data.code == "forbidden"' >/dev/null || fail "ar-integrator changed an _acme-challenge record: $out"
echo "$out" | has "not the web service's user" || fail "the refusal does not say why: $out"
[ -z "$(dig @127.0.0.1 -p "$DNS_PORT" +short "_acme-challenge.$ZONE" TXT)" ] || fail "the refused value is in the zone"
out=$(acme_txt_as 904) || fail "dpx.acme_txt as ar-web failed to run"
echo "$out" | jq -en 'input | .result != null' >/dev/null || fail "ar-web may not publish an answer: $out"
dig @127.0.0.1 -p "$DNS_PORT" +short "_acme-challenge.$ZONE" TXT | has probe-value-from-the-test || fail "ar-web's value is not in the zone"
out=$(acme_txt_as 904 False) || fail "dpx.acme_txt as ar-web (withdraw) failed to run"
echo "$out" | jq -en 'input | .result != null' >/dev/null || fail "ar-web may not withdraw its value: $out"
pass "dpx.acme_txt: ar-integrator (with the services' token) is refused, ar-web publishes"

# --- STARTTLS follows the ACME certificate without a restart.
wait_for 10 bash -c "[ \"\$(mail_fp)\" = \"$WILD_FP\" ]" \
  || fail "STARTTLS for $MX does not serve the wildcard ACME certificate"
ip netns exec "$NS" openssl s_client -starttls smtp -connect "10.237.0.1:$SUB_PORT" -servername "$MX" \
  -CAfile "$CA/root.pem" -verify_hostname "$MX" -verify_return_error </dev/null >"$STATE/smtp.out" 2>&1 \
  || { cat "$STATE/smtp.out"; fail "openssl does not verify the STARTTLS certificate for $MX with pebble's root"; }
ctl acme renew >/dev/null || fail "ctl acme renew"
wait_for 60 bash -c "[ \"\$(openssl x509 -in $STATE/tls/acme.pem -noout -fingerprint -sha256 | cut -d= -f2)\" != \"$WILD_FP\" ]" \
  || { acme; fail "the renewal wrote no new certificate"; }
RENEWED_FP=$(file_fp "$STATE/tls/acme.pem")
wait_for 10 bash -c "[ \"\$(mail_fp)\" = \"$RENEWED_FP\" ]" || fail "STARTTLS did not pick up the renewed certificate"
pass "STARTTLS for $MX serves the ACME certificate, verified with pebble's root, and the renewed one without a restart"
