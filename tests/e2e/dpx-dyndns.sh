#!/usr/bin/env bash
# ARDPX dyndns2 end to end: `/nic/update` on the web service's HTTPS
# listener with curl for every answer code (good, nochg, badauth, nohost,
# notfqdn, abuse), then the real clients ddclient and inadyn from Debian
# updating their names; `dig` sees every change, and the records survive a
# dpx restart.
. "$(dirname "$0")/../lib.sh"
. "$ROOT/tests/dpx-lib.sh"

STATE=$(mktemp -d /tmp/dpx-dyndns.XXXXXX); on_exit "rm -rf $STATE"
ZONE=dpx.test.
DNS_PORT=$(free_ports 1)
seed_ports "$STATE/seed.toml"
cat >>"$STATE/seed.toml" <<TOML
[node]
hostname = "ns1"
[dpx]
zone = "$ZONE"
port = $DNS_PORT
[dpx.dyndns]
min_interval = 0
TOML
start_node "$STATE" --config "$STATE/seed.toml"
wait_for 20 bash -c "dig @127.0.0.1 -p $DNS_PORT +short +time=1 +tries=1 $ZONE SOA | grep -q ." \
  || { ctl logs dpx | tail -20; fail "dpx does not answer on $DNS_PORT"; }
wait_for 20 curl -sfk "https://127.0.0.1:$HTTPS_PORT/api/v1/health" || fail "web not up"

# Users arrive with a config change (web is signalled for [dpx] too).
cat "$STATE/seed.toml" >"$STATE/cfg.toml"
cat >>"$STATE/cfg.toml" <<TOML
[[dpx.dyndns.users]]
name = "alice"
hostnames = ["home.dpx.test", "lab.dpx.test"]
[[dpx.dyndns.users]]
name = "carol"
hostnames = ["ddc.dpx.test"]
[[dpx.dyndns.users]]
name = "dave"
hostnames = ["ina.dpx.test"]
[secrets]
"dpx.dyndns.alice" = "alice-pass-1"
"dpx.dyndns.carol" = "carol-pass-1"
"dpx.dyndns.dave" = "dave-pass-1"
TOML
ctl config apply --file "$STATE/cfg.toml" >/dev/null || fail "config with dyndns users refused"

URL="https://127.0.0.1:$HTTPS_PORT/nic/update"
nic() { curl -sk --max-time 10 "$@"; }
wait_for 10 bash -c "curl -sk -u alice:alice-pass-1 '$URL?hostname=home.dpx.test&myip=192.0.2.50' | grep -q '^good 192.0.2.50$'" \
  || { nic -u alice:alice-pass-1 "$URL?hostname=home.dpx.test&myip=192.0.2.50"; fail "first update not good"; }
[ "$(q home.$ZONE A)" = 192.0.2.50 ] || fail "updated A not served"
[ "$(nic -u alice:alice-pass-1 "$URL?hostname=home.dpx.test&myip=192.0.2.50")" = "nochg 192.0.2.50" ] || fail "same address is not nochg"
[ "$(nic -u alice:alice-pass-1 "$URL?hostname=home.dpx.test&myip=2001:db8::50")" = "good 2001:db8::50" ] || fail "IPv6 update"
[ "$(q home.$ZONE AAAA)" = 2001:db8::50 ] || fail "updated AAAA not served"
[ "$(q home.$ZONE A)" = 192.0.2.50 ] || fail "IPv6 update removed the A record"
[ "$(nic -u alice:alice-pass-1 "$URL?hostname=lab.dpx.test")" = "good 127.0.0.1" ] || fail "myip does not default to the client address"
[ "$(q lab.$ZONE A)" = 127.0.0.1 ] || fail "default address not served"
pass "good, nochg, IPv4 and IPv6, myip defaults to the client address"

[ "$(nic -u alice:wrong "$URL?hostname=home.dpx.test&myip=192.0.2.51")" = badauth ] || fail "wrong password is not badauth"
[ "$(nic -u mallory:x "$URL?hostname=home.dpx.test&myip=192.0.2.51")" = badauth ] || fail "unknown user is not badauth"
[ "$(nic -o /dev/null -w '%{http_code}' "$URL?hostname=home.dpx.test")" = 401 ] || fail "no credentials is not 401"
[ "$(nic -u alice:alice-pass-1 "$URL?hostname=ddc.dpx.test&myip=192.0.2.51")" = nohost ] || fail "other user's name is not nohost"
[ "$(nic -u alice:alice-pass-1 "$URL?hostname=home&myip=192.0.2.51")" = notfqdn ] || fail "bare name is not notfqdn"
[ "$(q home.$ZONE A)" = 192.0.2.50 ] || fail "a refused update changed the zone"
pass "badauth, 401 without credentials, nohost, notfqdn; zone unchanged"

# ddclient (dyndns2 over HTTPS, trusting the node's self-signed certificate).
printf '#!/bin/sh\necho 192.0.2.61\n' >"$STATE/myip.sh"; chmod +x "$STATE/myip.sh"
cat >"$STATE/ddclient.conf" <<CONF
daemon=0
ssl=yes
ssl_ca_file=$STATE/tls/cert.pem
usev4=cmdv4, cmdv4=$STATE/myip.sh
protocol=dyndns2
server=127.0.0.1:$HTTPS_PORT
login=carol
password='carol-pass-1'
ddc.dpx.test
CONF
chmod 600 "$STATE/ddclient.conf"
# Its exit status also counts warnings about the legacy `use=` default.
timeout 60 ddclient -foreground -file "$STATE/ddclient.conf" -cache "$STATE/ddclient.cache" -verbose >"$STATE/ddclient.log" 2>&1 || true
grep -q 'SUCCESS' "$STATE/ddclient.log" || { cat "$STATE/ddclient.log"; fail "ddclient did not report SUCCESS"; }
[ "$(q ddc.$ZONE A)" = 192.0.2.61 ] || { cat "$STATE/ddclient.log"; fail "ddclient's update not served"; }
pass "ddclient updated ddc.$ZONE"

# inadyn (custom dyndns2 provider over HTTPS).
cat >"$STATE/inadyn.conf" <<CONF
period = 300
ca-trust-file = "$STATE/tls/cert.pem"
custom node {
    username = "dave"
    password = "dave-pass-1"
    ddns-server = "localhost:$HTTPS_PORT"
    ddns-path = "/nic/update?hostname=%h&myip=%i"
    ssl = true
    checkip-command = "echo 192.0.2.71"
    hostname = "ina.dpx.test"
}
CONF
chmod 600 "$STATE/inadyn.conf"
mkdir -p "$STATE/inadyn-cache"
timeout 60 inadyn --once --foreground -f "$STATE/inadyn.conf" --cache-dir "$STATE/inadyn-cache" -P "$STATE/inadyn.pid" -l debug >"$STATE/inadyn.log" 2>&1 \
  || { cat "$STATE/inadyn.log"; fail "inadyn exited $?"; }
[ "$(q ina.$ZONE A)" = 192.0.2.71 ] || { cat "$STATE/inadyn.log"; fail "inadyn's update not served"; }
pass "inadyn updated ina.$ZONE"

# `ctl restart` returns once the new dpx says it serves: no waiting here.
old=$(ctl services | awk '$1 == "dpx" { print $3 }')
said=$(ctl restart dpx)
case "$said" in
  "dpx restarted (pid "*") and serving") ;;
  *) fail "ctl restart dpx said: $said" ;;
esac
new=${said#*pid }; new=${new%%)*}
[ -n "$old" ] && [ "$new" != "$old" ] || fail "ctl restart dpx: new pid $new, before it $old"
[ "$(q ddc.$ZONE A)" = 192.0.2.61 ] && [ "$(q ina.$ZONE A)" = 192.0.2.71 ] && [ "$(q home.$ZONE AAAA)" = 2001:db8::50 ] \
  || fail "dyndns records lost across a restart"
pass "dyndns records survive a dpx restart, served when ctl restart returns"

# Rate limit: with a one-hour interval the second update is abuse.
ctl config set dpx.dyndns.min_interval 3600 >/dev/null
wait_for 10 bash -c "curl -sk -u alice:alice-pass-1 '$URL?hostname=home.dpx.test&myip=192.0.2.52' | grep -q '^abuse$'" \
  || fail "updates inside min_interval are not answered abuse"
[ "$(nic -u alice:alice-pass-1 "$URL?hostname=home.dpx.test&myip=192.0.2.53")" = abuse ] || fail "abuse not sticky inside the interval"
# The first update of the wait above may still have been good (before the reload).
case "$(q home.$ZONE A)" in 192.0.2.50|192.0.2.52) ;; *) fail "an abusive update changed the zone: $(q home.$ZONE A)" ;; esac
pass "abuse inside dpx.dyndns.min_interval"
