# shellcheck shell=bash
# Debian's pebble for the ACME tests (acme.sh, acme-challenges.sh,
# acme-rfc2136.sh). Source after tests/lib.sh.

# acme_dirs TAG: STATE (the node's) and CA (pebble's and the CA's) as new
# directories in /tmp, removed at exit unless KEEP=1.
acme_dirs() {
  STATE=$(mktemp -d "/tmp/alpharen-$1.XXXXXX")
  CA=$(mktemp -d "/tmp/alpharen-$1-ca.XXXXXX")
  [ -n "${KEEP:-}" ] || on_exit "rm -rf $STATE $CA"
}

# pebble_ca: a CA made here ($CA/ca.pem, readable by the web service's
# user: the node trusts pebble through acme.ca) and pebble's HTTPS
# certificate from it ($CA/pebble.pem and .key, for localhost and
# 127.0.0.1).
pebble_ca() {
  chmod 755 "$CA"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=pebble-test-ca -keyout "$CA/ca.key" -out "$CA/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
    -keyout "$CA/pebble.key" -out "$CA/pebble.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$CA/ext"
  openssl x509 -req -in "$CA/pebble.csr" -CA "$CA/ca.pem" -CAkey "$CA/ca.key" \
    -CAcreateserial -days 2 -extfile "$CA/ext" -out "$CA/pebble.pem" 2>/dev/null
  chmod 644 "$CA/ca.pem"
  [ -s "$CA/pebble.pem" ] || fail "openssl made no certificate for pebble"
}

# start_pebble NAME PORT MGMT HTTP01_PORT TLS01_PORT DNS: pebble on
# 127.0.0.1:PORT (management on MGMT) with pebble_ca's certificate,
# validating HTTP-01 on HTTP01_PORT and TLS-ALPN-01 on TLS01_PORT and
# resolving through DNS (ADDRESS:PORT), without its random sleeps and nonce
# refusals; sets ${NAME^^}_PID, logs to $CA/NAME.log, waits for its
# directory.
start_pebble() {
  local name=$1
  cat >"$CA/$name.json" <<JSON
{"pebble": {"listenAddress": "127.0.0.1:$2", "managementListenAddress": "127.0.0.1:$3",
  "certificate": "$CA/pebble.pem", "privateKey": "$CA/pebble.key",
  "httpPort": $4, "tlsPort": $5, "ocspResponderURL": "",
  "externalAccountBindingRequired": false}}
JSON
  PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 \
    pebble -config "$CA/$name.json" -dnsserver "$6" >"$CA/$name.log" 2>&1 &
  local pid=$!
  printf -v "${name^^}_PID" '%s' "$pid"
  on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
  wait_for 10 curl -sf --cacert "$CA/ca.pem" "https://127.0.0.1:$2/dir" \
    || { cat "$CA/$name.log"; fail "pebble $name did not start"; }
}
