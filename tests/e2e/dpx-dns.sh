#!/usr/bin/env bash
# ARDPX DNS end to end with real peers: `dig` for every record type, the
# node's own and discovery records, REFUSED outside the zone, SOA serial
# bumps; `nsupdate` with hmac-sha256 and hmac-sha512 TSIG keys: add and
# delete, wrong secret → NOTAUTH, name outside the key's policy and
# unsigned updates → REFUSED; UDP answers (encoded with the zone or
# cached) change with the zone and echo the question's case; dynamic records survive a service restart.
. "$(dirname "$0")/../lib.sh"
. "$ROOT/tests/dpx-lib.sh"

STATE=$(mktemp -d /tmp/dpx-dns.XXXXXX); on_exit "rm -rf $STATE"
ZONE=dpx.test.
DNS_PORT=$(free_ports 1)
K256=$(head -c 32 /dev/urandom | base64 -w0)
K512=$(head -c 64 /dev/urandom | base64 -w0)
seed_ports "$STATE/seed.toml"
cat >>"$STATE/seed.toml" <<TOML
[node]
hostname = "ns1"
[dpx]
zone = "$ZONE"
port = $DNS_PORT
[[dpx.records]]
name = "www"
type = "A"
value = "192.0.2.10"
[[dpx.records]]
name = "www"
type = "AAAA"
value = "2001:db8::10"
[[dpx.records]]
name = "web"
type = "CNAME"
value = "www"
[[dpx.records]]
name = "@"
type = "TXT"
value = "v=spf1 -all"
[[dpx.records]]
name = "@"
type = "MX"
value = "10 mail"
[[dpx.records]]
name = "_https._tcp"
type = "SRV"
value = "0 5 443 www"
TOML
start_node "$STATE" --config "$STATE/seed.toml"
wait_for 20 bash -c "dig @127.0.0.1 -p $DNS_PORT +short +time=1 +tries=1 $ZONE SOA | grep -q ." \
  || { ctl logs dpx | tail -20; fail "dpx does not answer on $DNS_PORT"; }

# The first answer after start: on a failure, what came back and why.
[ "$(q www.$ZONE A)" = 192.0.2.10 ] || {
  dig @127.0.0.1 -p "$DNS_PORT" +time=2 +tries=1 www.$ZONE A; ctl dpx; ctl logs dpx | tail -20
  ss -lunp "sport = :$DNS_PORT"; fail "A www"; }
[ "$(q www.$ZONE AAAA)" = 2001:db8::10 ] || fail "AAAA www"
q web.$ZONE CNAME | has "^www.$ZONE\$" || fail "CNAME web"
q web.$ZONE A | has '^192.0.2.10$' || fail "A through the CNAME"
[ "$(q $ZONE TXT)" = '"v=spf1 -all"' ] || fail "TXT apex"
[ "$(q $ZONE MX)" = "10 mail.$ZONE" ] || fail "MX apex"
[ "$(q _https._tcp.$ZONE SRV)" = "0 5 443 www.$ZONE" ] || fail "SRV"
[ "$(q $ZONE NS)" = "ns1.$ZONE" ] || fail "NS apex is the node"
[ "$(q ns1.$ZONE A)" = 127.0.0.1 ] || fail "the node's own name"
q _arsrv._tcp.$ZONE SRV | has " ns1.$ZONE\$" || fail "_arsrv._tcp discovery SRV"
[ "$(q +tcp www.$ZONE A)" = 192.0.2.10 ] || fail "A over TCP"
dig @127.0.0.1 -p "$DNS_PORT" www.$ZONE A | has 'flags: qr aa' || fail "answer not authoritative"
[ "$(rcode nope.$ZONE A)" = NXDOMAIN ] || fail "missing name is not NXDOMAIN"
# Misses come from the zone's names: NODATA for a name without the type
# and for an empty non-terminal (_tcp, above _https._tcp), the SOA in
# authority, the same over TCP.
for t in "" +tcp; do
  [ "$(rcode ${t:+"$t"} www.$ZONE TXT)" = NOERROR ] || fail "NODATA $t is not NOERROR"
  [ "$(rcode ${t:+"$t"} _tcp.$ZONE A)" = NOERROR ] || fail "empty non-terminal $t is not NOERROR"
  [ "$(rcode ${t:+"$t"} nope.$ZONE A)" = NXDOMAIN ] || fail "missing name $t is not NXDOMAIN"
  dig @127.0.0.1 -p "$DNS_PORT" ${t:+"$t"} +noall +authority nope.$ZONE A | has "SOA.*ns1.$ZONE" || fail "no SOA with NXDOMAIN $t"
  dig @127.0.0.1 -p "$DNS_PORT" ${t:+"$t"} +noall +authority www.$ZONE TXT | has "SOA.*ns1.$ZONE" || fail "no SOA with NODATA $t"
done
[ "$(rcode example.com A)" = REFUSED ] || fail "name outside the zone is not REFUSED"
[ "$(rcode +tcp example.com A)" = REFUSED ] || fail "TCP: name outside the zone is not REFUSED"
pass "dig: A AAAA CNAME TXT MX SRV NS, node name, discovery SRV, UDP+TCP, NXDOMAIN and NODATA with the SOA, REFUSED outside"

S0=$(serial)
# Keys arrive with a config change; their secrets in the same apply.
cp "$STATE/seed.toml" "$STATE/cfg.toml"
cat >>"$STATE/cfg.toml" <<TOML
[[dpx.records]]
name = "ftp"
type = "A"
value = "192.0.2.21"
[[dpx.tsig_keys]]
name = "ddns-key"
algorithm = "hmac-sha256"
names = ["*.dyn", "host"]
types = ["A", "AAAA", "TXT"]
[[dpx.tsig_keys]]
name = "big-key"
algorithm = "hmac-sha512"
names = ["app"]
[secrets]
"dpx.tsig.ddns-key" = "$K256"
"dpx.tsig.big-key" = "$K512"
TOML
ctl config apply --file "$STATE/cfg.toml" >/dev/null || fail "config with TSIG keys refused"
wait_for 10 bash -c "'$ALPHAREN' ctl --state-dir '$STATE' dpx | grep -q big-key" || { ctl dpx; fail "keys not loaded after SIGHUP"; }
S1=$(serial)
[ "$S1" -gt "$S0" ] || fail "serial $S0 -> $S1 after a config change"
[ "$(q ftp.$ZONE A)" = 192.0.2.21 ] || fail "record added by a config change not served"

nsu() { # nsu KEYSPEC COMMANDS...: nsupdate against the node, output on stdout
  local key=$1; shift
  { echo "server 127.0.0.1 $DNS_PORT"; echo "zone $ZONE"; printf '%s\n' "$@"; echo send; } \
    | timeout 20 nsupdate ${key:+-y "$key"} 2>&1
}
# Asked before the update: the (cached) NXDOMAIN must not outlive it.
[ "$(rcode pc1.dyn.$ZONE A)" = NXDOMAIN ] && [ "$(rcode pc1.dyn.$ZONE A)" = NXDOMAIN ] || fail "pc1 exists before the update"
out=$(nsu "hmac-sha256:ddns-key:$K256" "update add pc1.dyn.$ZONE 60 A 192.0.2.77" "update add pc1.dyn.$ZONE 60 TXT hello") \
  || fail "signed add failed: $out"
[ "$(q pc1.dyn.$ZONE A)" = 192.0.2.77 ] || fail "added A not served"
[ "$(q pc1.dyn.$ZONE TXT)" = '"hello"' ] || fail "added TXT not served"
S2=$(serial); [ "$S2" -gt "$S1" ] || fail "serial $S1 -> $S2 after an update"
out=$(nsu "hmac-sha512:big-key:$K512" "update add app.$ZONE 60 AAAA 2001:db8::77") || fail "hmac-sha512 add failed: $out"
[ "$(q app.$ZONE AAAA)" = 2001:db8::77 ] || fail "hmac-sha512 record not served"
pass "nsupdate add with hmac-sha256 and hmac-sha512; serial $S1 -> $S2"
# UDP answers encoded with the zone (A, TXT) or cached: a changed value is
# served at once, and the question comes back in the case it was asked
# (0x20).
out=$(nsu "hmac-sha256:ddns-key:$K256" "update delete pc1.dyn.$ZONE A" "update add pc1.dyn.$ZONE 60 A 192.0.2.78") || fail "replace failed: $out"
[ "$(q pc1.dyn.$ZONE A)" = 192.0.2.78 ] || fail "cached answer outlived an update: $(q pc1.dyn.$ZONE A)"
out=$(nsu "hmac-sha256:ddns-key:$K256" "update delete pc1.dyn.$ZONE A" "update add pc1.dyn.$ZONE 60 A 192.0.2.77") || fail "replace back failed: $out"
[ "$(q pc1.dyn.$ZONE A)" = 192.0.2.77 ] || fail "cached answer outlived the second update"
MIXED=$(echo "pc1.dyn.$ZONE" | sed 's/p/P/; s/d/D/; s/t/T/')
for i in 1 2; do
  dig @127.0.0.1 -p "$DNS_PORT" +time=2 +tries=2 +noall +question +answer "$MIXED" A >"$STATE/mixed.txt"
  grep -q "^;$MIXED" "$STATE/mixed.txt" || { cat "$STATE/mixed.txt"; fail "question case not echoed ($i)"; }
  grep -q "192.0.2.77" "$STATE/mixed.txt" || { cat "$STATE/mixed.txt"; fail "mixed-case query not answered ($i)"; }
done
pass "UDP answers: new values after updates, 0x20 case echoed"
S2=$(serial)

WRONG=$(head -c 32 /dev/urandom | base64 -w0)
out=$(nsu "hmac-sha256:ddns-key:$WRONG" "update add bad.dyn.$ZONE 60 A 192.0.2.66") && fail "wrong secret accepted"
grep -qi 'NOTAUTH\|tsig' <<<"$out" || fail "wrong secret: unexpected answer: $out"
out=$(nsu "hmac-sha256:nokey:$WRONG" "update add bad.dyn.$ZONE 60 A 192.0.2.66") && fail "unknown key accepted"
out=$(nsu "hmac-sha256:ddns-key:$K256" "update add other.$ZONE 60 A 192.0.2.66") && fail "name outside the policy accepted"
grep -q REFUSED <<<"$out" || fail "disallowed name: expected REFUSED: $out"
out=$(nsu "hmac-sha256:ddns-key:$K256" "update add host.$ZONE 60 MX 10 www") && fail "type outside the policy accepted"
grep -q REFUSED <<<"$out" || fail "disallowed type: expected REFUSED: $out"
out=$(nsu "" "update add pc2.dyn.$ZONE 60 A 192.0.2.66") && fail "unsigned update accepted"
grep -q REFUSED <<<"$out" || fail "unsigned: expected REFUSED: $out"
[ -z "$(q bad.dyn.$ZONE A)$(q other.$ZONE A)$(q pc2.dyn.$ZONE A)" ] || fail "a refused update changed the zone"
[ "$(serial)" = "$S2" ] || fail "a refused update bumped the serial"
pass "wrong key NOTAUTH, unknown key, disallowed name/type and unsigned REFUSED; zone unchanged"

out=$(nsu "hmac-sha256:ddns-key:$K256" "prereq nxdomain pc1.dyn.$ZONE" "update add pc1.dyn.$ZONE 60 A 192.0.2.88") && fail "failed prerequisite accepted"
grep -q YXDOMAIN <<<"$out" || fail "prerequisite: expected YXDOMAIN: $out"
out=$(nsu "hmac-sha256:ddns-key:$K256" "update delete pc1.dyn.$ZONE TXT") || fail "delete failed: $out"
[ -z "$(q pc1.dyn.$ZONE TXT)" ] || fail "deleted TXT still served"
pass "prerequisites and delete"

S3=$(serial)
ctl restart dpx >/dev/null
wait_for 20 bash -c "dig @127.0.0.1 -p $DNS_PORT +short +time=1 +tries=1 pc1.dyn.$ZONE A | grep -q 192.0.2.77" \
  || { ctl logs dpx | tail; fail "dynamic record lost across a restart"; }
[ "$(serial)" = "$S3" ] || fail "serial changed across a restart ($S3 -> $(serial))"
ctl dpx records | has "pc1.dyn.$ZONE.*192.0.2.77.*dynamic" || { ctl dpx records; fail "ctl dpx records"; }
ctl dpx | has "serial    $S3" || { ctl dpx; fail "ctl dpx status"; }
pass "records and serial survive a restart; ctl dpx status/records"

# The port moves with a config change (new one bound before the old closes).
OLD_PORT=$DNS_PORT; DNS_PORT=$(free_ports 1)
ctl config set dpx.port "$DNS_PORT" >/dev/null
wait_for 10 bash -c "dig @127.0.0.1 -p $DNS_PORT +short +time=1 +tries=1 www.$ZONE A | grep -q 192.0.2.10" || fail "DNS did not move to port $DNS_PORT"
dig @127.0.0.1 -p "$OLD_PORT" +time=1 +tries=1 www.$ZONE A >/dev/null 2>&1 && fail "old port $OLD_PORT still answers"
ctl dpx | has "port      $DNS_PORT" || fail "ctl dpx does not show the new port"
pass "dpx.port change rebinds"

# Queries are not logged one by one (the log would grow with traffic).
log=$(ctl logs dpx -n 1000) || fail "ctl logs dpx: $log"
[ -n "$log" ] || fail "ctl logs dpx is empty, so the check below would prove nothing"
has 'request:\|request_id' <<<"$log" && fail "the dpx log has a line per query"
pass "no per-query log lines"
