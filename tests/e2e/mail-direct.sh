#!/usr/bin/env bash
# Direct delivery (`mail.relay.mode = "direct"`) with real MX lookups: the
# mail service runs in its own network namespace whose resolv.conf points
# at dnsmasq in a second namespace, where an aiosmtpd sink listens on port
# 25. The better MX refuses connections, so the backup takes the mail; a
# domain without MX gets it at its own address; a null MX (RFC 7505) and a
# domain that does not exist bounce at once.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../mail-lib.sh"
STATE=$(mktemp -d /tmp/mail-direct.XXXXXX); on_exit "rm -rf $STATE"
C=mdc$$; S=mds$$
ip netns add "$C"; on_exit "ip netns del $C"
ip netns add "$S"; on_exit "ip netns del $S"
ip link add "vc$$" netns "$C" type veth peer name "vs$$" netns "$S"
ip -n "$C" addr add 10.233.0.1/24 dev "vc$$"
ip -n "$S" addr add 10.233.0.2/24 dev "vs$$"
ip -n "$S" addr add 10.233.0.3/24 dev "vs$$"   # mx0: nothing listens on 25
for ns in "$C" "$S"; do ip -n "$ns" link set lo up; done
ip -n "$C" link set "vc$$" up; ip -n "$S" link set "vs$$" up
mkdir -p "/etc/netns/$C"; on_exit "rm -rf /etc/netns/$C"
echo "nameserver 10.233.0.2" >"/etc/netns/$C/resolv.conf"

ip netns exec "$S" dnsmasq --no-daemon --no-resolv --no-hosts --listen-address=10.233.0.2 --bind-interfaces \
  --local=/test/ \
  --mx-host=example.test,mx0.example.test,5 --mx-host=example.test,mx1.example.test,10 \
  --host-record=mx0.example.test,10.233.0.3 --host-record=mx1.example.test,10.233.0.2 \
  --host-record=plain.test,10.233.0.2 \
  --mx-host=sender.test,mx1.example.test,10 \
  --dns-rr=nullmx.test,15,000000 --host-record=nullmx.test,10.233.0.2 \
  >"$STATE/dnsmasq.log" 2>&1 &
DNS_PID=$!; on_exit "kill $DNS_PID 2>/dev/null"
ip netns exec "$S" $SYSPY "$SINK_PY" --host 10.233.0.2 --port 25 --dir "$STATE/sink" >"$STATE/sink.log" 2>&1 &
SINK_PID=$!; on_exit "kill $SINK_PID 2>/dev/null"
wait_for 10 ip netns exec "$C" bash -c "exec 3<>/dev/tcp/10.233.0.2/25" || fail "sink did not start"
ip netns exec "$C" dig +short +time=2 MX example.test @10.233.0.2 | has mx1.example.test || fail "dnsmasq does not answer MX"

P=$(free_ports 1)
cat >"$STATE/cfg.toml" <<EOT
[node]
hostname = "n1"
[mail]
admin_recipients = ["ops@sender.test"]
[mail.listen]
port = $P
[mail.relay]
mode = "direct"
EOT
"$MAILDEV" apply-config --state-dir "$STATE" "$STATE/cfg.toml"
stand_in "$STATE"
ip netns exec "$C" "${SERVE[@]}" --state-dir "$STATE" --dev >>"$STATE/mail.log" 2>&1 &
MAIL_PID=$!; on_exit "kill $MAIL_PID 2>/dev/null"
wait_for 10 ip netns exec "$C" bash -c "exec 3<>/dev/tcp/127.0.0.1/$P" || { cat "$STATE/mail.log"; fail "mail service did not start"; }

send() { ip netns exec "$C" swaks --server "127.0.0.1:$P" --timeout 10 --from a@sender.test --to "$1" --h-Subject "to-$1" 2>&1 | has 'queued as' || fail "message to $1 not accepted"; }
for rcpt in u@example.test u@plain.test u@nullmx.test u@nosuch.test; do send "$rcpt"; done

wait_for 60 sink_ge 4 || { cat "$STATE/mail.log"; fail "expected 2 deliveries and 2 bounces at the sink, got $(sink_count)"; }
grep -l 'X-Sink-To: u@example.test' "$STATE"/sink/*.eml | has . || fail "example.test mail not delivered through its backup MX"
grep -q 'mail exchanger failed; trying the next' "$STATE/mail.log" || fail "the refused first MX was not tried"
grep -l 'X-Sink-To: u@plain.test' "$STATE"/sink/*.eml | has . || fail "plain.test (no MX) not delivered to its address"
pass "MX order with fallback to the backup MX; implicit MX for a domain without one"
bounces=$(grep -l 'X-Sink-To: a@sender.test' "$STATE"/sink/*.eml | wc -l)
[ "$bounces" -eq 2 ] || fail "expected 2 bounces to the sender, got $bounces"
grep -h -A200 'X-Sink-To: a@sender.test' "$STATE"/sink/*.eml | has 'null MX' || fail "null MX bounce does not say why"
grep -h -A200 'X-Sink-To: a@sender.test' "$STATE"/sink/*.eml | has 'nosuch.test does not exist' || fail "NXDOMAIN bounce does not say why"
[ "$(queued dead)" -eq 2 ] || fail "expected 2 dead letters"
pass "null MX and NXDOMAIN bounced at once with the reason, kept as dead letters"
