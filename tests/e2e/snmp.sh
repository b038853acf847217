#!/usr/bin/env bash
# SNMP traps end to end: Debian's snmptrapd on a loopback high port, with
# only the node's community allowed to log, receives SNMPv2c traps for the
# supervisor's events: a service killed (serviceDown with the signal) and
# restarted (serviceUp), and web's alert for a failed ACME order
# (serviceAlert). The community is a secret ([secrets]
# "snmp.community"), not in `ctl config show`; a trap with another
# community is not logged (snmptrapd checks it). `ctl syslog status`
# counts the traps sent.
# KEEP=1 leaves the state and trap directories in /tmp.
. "$(dirname "$0")/../lib.sh"
needs snmptrapd jq python3 ss
STATE=$(mktemp -d /tmp/alpharen-snmp.XXXXXX)
[ -n "${KEEP:-}" ] || on_exit "rm -rf $STATE"
TRAPS=$(mktemp -d /tmp/alpharen-snmp-traps.XXXXXX)
[ -n "${KEEP:-}" ] || on_exit "rm -rf $TRAPS"
TRAP_PORT=$(free_ports 1)
COMMUNITY="c0mm-$$-$RANDOM"
BASE=.1.3.6.1.4.1.32473.1

# One line per trap: its variable bindings, numeric OIDs (-On), no MIBs.
printf 'authCommunity log %s\nformat2 TRAP %%v\\n\n' "$COMMUNITY" >"$TRAPS/traps.conf"
snmptrapd_start "$TRAPS" traps "$TRAP_PORT"

seed_ports "$STATE/seed.toml"
cat >>"$STATE/seed.toml" <<TOML
[node]
hostname = "trapnode"
[[snmp.trap_targets]]
host = "127.0.0.1"
port = $TRAP_PORT
TOML
start_node "$STATE" --config "$STATE/seed.toml"
export ALPHAREN STATE
export -f ctl
printf '[secrets]\n"snmp.community" = "%s"\n' "$COMMUNITY" >"$STATE/secret.toml"
ctl config apply -f "$STATE/secret.toml" -m "snmp community" >/dev/null || fail "config apply [secrets]"
if ctl config show | has "$COMMUNITY"; then fail "the community is in ctl config show"; fi
wait_for 20 bash -o pipefail -c "ctl --json syslog status | jq -e '.traps.targets == [\"127.0.0.1:$TRAP_PORT\"]'" \
  || fail "logfwd does not list the trap target"
# The [secrets] apply reaches logfwd as SIGHUP; give it that reload.
wait_for 20 bash -c "ctl logs logfwd | grep -q 'reloading the syslog and snmp sections'" \
  || fail "logfwd was not told about the community"

# --- a killed service: serviceDown, then serviceUp when it is back.
MAIL_PID=$(ctl --json services | jq -r '.[] | select(.name == "mail") | .pid')
[ -n "$MAIL_PID" ] && [ "$MAIL_PID" != null ] || fail "no mail pid"
kill -KILL "$MAIL_PID"
wait_for 20 has "$BASE.0.1" "$TRAPS/traps.log" || { cat "$TRAPS/traps.log" "$TRAPS/traps.out"; ctl logs logfwd | tail; fail "no serviceDown trap"; }
wait_for 20 has "$BASE.0.2" "$TRAPS/traps.log" || { cat "$TRAPS/traps.log"; fail "no serviceUp trap"; }
DOWN=$(grep "$BASE.0.1" "$TRAPS/traps.log" | head -1)
has "$BASE.1.2 = STRING: \"mail\"" <<<"$DOWN" || fail "serviceDown does not name mail: $DOWN"
has "killed by signal SIGKILL" <<<"$DOWN" || fail "serviceDown does not say how: $DOWN"
has "$BASE.1.1 = STRING: \"trapnode\"" <<<"$DOWN" || fail "the trap does not name the node: $DOWN"
has "^TRAP .1.3.6.1.2.1.1.3.0 = Timeticks" <<<"$DOWN" || fail "sysUpTime.0 is not first: $DOWN"
UP=$(grep "$BASE.0.2" "$TRAPS/traps.log" | head -1)
has "$BASE.1.2 = STRING: \"mail\"" <<<"$UP" || fail "serviceUp does not name mail: $UP"
pass "snmptrapd logged serviceDown (mail, killed by signal SIGKILL) and serviceUp with the node's community"

# --- a service's alert: web's ACME order against a closed port fails.
printf '[acme]\nenabled = true\naccept_terms = true\ndirectory = "https://127.0.0.1:1/dir"\ndomains = ["node.example.net"]\n' >"$STATE/acme.toml"
ctl config apply -f "$STATE/acme.toml" -m "acme to nowhere" >/dev/null || fail "config apply [acme]"
wait_for 30 has "$BASE.0.6" "$TRAPS/traps.log" || { tail -3 "$TRAPS/traps.log"; fail "no serviceAlert trap for the failed ACME order"; }
ALERT=$(grep "$BASE.0.6" "$TRAPS/traps.log" | head -1)
has "$BASE.1.2 = STRING: \"web\"" <<<"$ALERT" || fail "serviceAlert does not name web: $ALERT"
has "ACME certificate order for node.example.net failed" <<<"$ALERT" || fail "serviceAlert does not say what: $ALERT"
pass "web's failed ACME order arrived as serviceAlert"

ctl --json syslog status | jq -e '.traps.sent >= 3 and .traps.failed == 0' >/dev/null \
  || { ctl --json syslog status; fail "ctl syslog status does not count the traps"; }
ctl syslog status | has "SNMP traps to 127.0.0.1:$TRAP_PORT" || fail "ctl syslog status (text)"

# --- snmptrapd drops another community (and logs the same trap with the
# node's): so the logged traps prove the node sent the secret's value.
# send_trap COMMUNITY: the serviceUp trap of logfwd's BER unit test.
send_trap() {
  python3 - "$TRAP_PORT" "$1" <<'PY'
import socket, sys
c = sys.argv[2].encode()
body = bytes([0x02, 0x01, 0x01, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x30, 0x3e,
  0x30, 0x0d, 0x06, 0x08, 0x2b, 6, 1, 2, 1, 1, 3, 0, 0x43, 0x01, 100,
  0x30, 0x19, 0x06, 0x0a, 0x2b, 6, 1, 6, 3, 1, 1, 4, 1, 0,
  0x06, 0x0b, 0x2b, 6, 1, 4, 1, 0x81, 0xfd, 0x59, 1, 0, 2,
  0x30, 0x12, 0x06, 0x0b, 0x2b, 6, 1, 4, 1, 0x81, 0xfd, 0x59, 1, 1, 1, 0x04, 0x03]) + b"net"
msg = bytes([0x02, 0x01, 0x01, 0x04, len(c)]) + c + bytes([0xa7, len(body)]) + body
msg = bytes([0x30, len(msg)]) + msg
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(msg, ("127.0.0.1", int(sys.argv[1])))
PY
}
before=$(wc -l <"$TRAPS/traps.log")
send_trap public
sleep 1
[ "$(wc -l <"$TRAPS/traps.log")" = "$before" ] || { tail -3 "$TRAPS/traps.log"; fail "snmptrapd logged a trap with another community"; }
send_trap "$COMMUNITY"
wait_for 5 has 'STRING: "net"' "$TRAPS/traps.log" || fail "the same trap with the node's community is not logged"
pass "a trap with another community is not logged, with the node's it is; ctl syslog status counts the traps"
