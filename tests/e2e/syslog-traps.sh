#!/usr/bin/env bash
# Syslog from other hosts → SNMP traps end to end: the node receives
# syslog on a loopback high port ([syslog.receiver], UDP and TCP) and
# Debian's snmptrapd logs the SNMPv2c arSyslogMatch traps it sends. util-
# linux `logger --server` sends matching lines over UDP (RFC 5424), TCP
# with octet counting (RFC 5424) and TCP one line per message (RFC 3164);
# each arrives as a trap that names the rule, host, severity, program and
# message. A second snmptrapd knows two SNMPv3 users (createUser with the
# node's engine ID: SHA + AES and SHA-256 + AES) and accepts only
# authenticated, encrypted traps from them: the same traps arrive there as
# v3, with the passphrases from the node's secret store. A line with too low a severity and one whose text the rule's
# regex does not find send nothing. `ctl syslog status` counts lines
# received, parse errors, lines each rule matched and traps sent; a bad
# rule is refused with the field it is about.
# KEEP=1 leaves the state and trap directories in /tmp.
. "$(dirname "$0")/../lib.sh"
needs snmptrapd logger jq ss
STATE=$(mktemp -d /tmp/alpharen-sltrap.XXXXXX)
[ -n "${KEEP:-}" ] || on_exit "rm -rf $STATE"
TRAPS=$(mktemp -d /tmp/alpharen-sltrap-traps.XXXXXX)
[ -n "${KEEP:-}" ] || on_exit "rm -rf $TRAPS"
read -r TRAP_PORT RX_PORT V3_PORT V3B_PORT < <(free_ports 4)
COMMUNITY="c0mm-$$-$RANDOM"
AUTH1="auth-$$-$RANDOM"; PRIV1="priv-$$-$RANDOM"
AUTH2="auth2-$$-$RANDOM"; PRIV2="priv2-$$-$RANDOM"
# The node's default engine ID: 80007ed9 04 (text) and its host name.
ENGINE=0x80007ed904$(printf trapnode | od -An -tx1 | tr -d ' \n')
BASE=.1.3.6.1.4.1.32473.1

# One line per trap: its variable bindings, numeric OIDs (-On), no MIBs.
printf 'authCommunity log %s\nformat2 TRAP %%v\\n\n' "$COMMUNITY" >"$TRAPS/traps.conf"
snmptrapd_start "$TRAPS" traps "$TRAP_PORT"
# v3: only these users, authenticated and encrypted (authUser ... priv).
cat >"$TRAPS/v3.conf" <<CONF
createUser -e $ENGINE ops1 SHA "$AUTH1" AES "$PRIV1"
createUser -e $ENGINE ops2 SHA-256 "$AUTH2" AES "$PRIV2"
authUser log ops1 priv
authUser log ops2 priv
format2 TRAP %b %v\n
CONF
snmptrapd_start "$TRAPS" v3 "$V3_PORT" "$V3B_PORT"

seed_ports "$STATE/seed.toml"
cat >>"$STATE/seed.toml" <<TOML
[node]
hostname = "trapnode"
[[snmp.trap_targets]]
host = "127.0.0.1"
port = $TRAP_PORT
[[snmp.trap_targets]]
host = "127.0.0.1"
port = $V3_PORT
version = "v3"
user = "ops1"
[[snmp.trap_targets]]
host = "127.0.0.1"
port = $V3B_PORT
version = "v3"
user = "ops2"
auth = "sha256"
[syslog.receiver]
enabled = true
port = $RX_PORT
[[syslog.receiver.rules]]
name = "disk"
program = "app"
severity = "err"
message = "disk (full|failing)"
TOML
start_node "$STATE" --config "$STATE/seed.toml"
export ALPHAREN STATE
export -f ctl
printf '[secrets]\n"snmp.community" = "%s"\n"snmp.v3.ops1.auth" = "%s"\n"snmp.v3.ops1.priv" = "%s"\n"snmp.v3.ops2.auth" = "%s"\n"snmp.v3.ops2.priv" = "%s"\n' \
  "$COMMUNITY" "$AUTH1" "$PRIV1" "$AUTH2" "$PRIV2" >"$STATE/secret.toml"
ctl config apply -f "$STATE/secret.toml" -m "snmp community" >/dev/null || fail "config apply [secrets]"
wait_for 20 bash -c "ctl logs logfwd | grep -q 'reloading the syslog and snmp sections'" \
  || fail "logfwd was not told about the community"
for p in "$COMMUNITY" "$AUTH1" "$PRIV2"; do
  if ctl config show | has -- "$p"; then fail "a secret is in ctl config show"; fi
done
ctl --json syslog status | jq -e --arg e "${ENGINE#0x}" '.traps.engine_id == $e' >/dev/null \
  || { ctl --json syslog status | jq .traps; fail "ctl syslog status does not show the engine ID $ENGINE"; }
ctl --json syslog status | jq -e --arg u "udp:127.0.0.1:$RX_PORT" --arg t "tcp:127.0.0.1:$RX_PORT" \
  '.receiver.listeners == [$u, $t] and .receiver.counters.matched == {"disk": 0}' >/dev/null \
  || { ctl --json syslog status; fail "the receiver does not listen on UDP and TCP $RX_PORT"; }

# trap_for TOKEN: the logged trap whose message carries TOKEN.
trap_for() { grep -- "$1" "$TRAPS/traps.log" | head -1; }
check_trap() { # TOKEN SEVERITY MESSAGE
  local t; t=$(trap_for "$1")
  has "$BASE.0.7" <<<"$t" || fail "not an arSyslogMatch trap: $t"
  for want in "$BASE.1.1 = STRING: \"trapnode\"" "$BASE.1.8 = STRING: \"disk\"" \
    "$BASE.1.4 = STRING: \"$(hostname)\"" "$BASE.1.5 = STRING: \"$2\"" \
    "$BASE.1.6 = STRING: \"app\"" "$BASE.1.7 = STRING: \"$3\""; do
    has -F "$want" <<<"$t" || fail "trap for $1 lacks $want: $t"
  done
}
send() { logger --server 127.0.0.1 --port "$RX_PORT" -t app "$@"; }

# --- matching lines: UDP (RFC 5424), TCP octet counted, TCP as lines (RFC 3164)
send -p user.err "disk full on /srv udp-$$"
wait_for 20 has "udp-$$" "$TRAPS/traps.log" || { cat "$TRAPS/traps.out"; ctl syslog status; fail "no trap for the UDP line"; }
check_trap "udp-$$" err "disk full on /srv udp-$$"
send --tcp --octet-count -p local0.crit "disk failing tcp-$$"
wait_for 20 has "tcp-$$" "$TRAPS/traps.log" || { ctl syslog status; fail "no trap for the octet-counted TCP line"; }
check_trap "tcp-$$" crit "disk failing tcp-$$"
send --tcp --rfc3164 -p daemon.alert "disk full bsd-$$"
wait_for 20 has "bsd-$$" "$TRAPS/traps.log" || { ctl syslog status; fail "no trap for the RFC 3164 TCP line"; }
check_trap "bsd-$$" alert "disk full bsd-$$"
pass "matching lines over UDP, TCP (octet counting) and TCP (RFC 3164 lines) arrived as arSyslogMatch traps"
# The same three as v3, on both users' ports.
for port in "$V3_PORT" "$V3B_PORT"; do
  for t in "udp-$$" "tcp-$$" "bsd-$$"; do
    wait_for 10 bash -c "grep -- '->\[127.0.0.1\]:$port' '$TRAPS/v3.log' | has -- '$t'" \
      || { cat "$TRAPS/v3.log" "$TRAPS/v3.out"; fail "no v3 trap for $t on port $port"; }
  done
done
V3=$(grep -- "udp-$$" "$TRAPS/v3.log" | head -1)
has -F "$BASE.1.7 = STRING: \"disk full on /srv udp-$$\"" <<<"$V3" || fail "the v3 trap lacks the message: $V3"
pass "the same traps arrived as SNMPv3 (SHA + AES-128 and SHA-256 + AES-128) at a snmptrapd that accepts only authenticated, encrypted traps"

# --- lines the rule does not match: too low a severity, another text,
# another program. A matching line after them over the same UDP path
# arrives last: once its trap is logged, the others were handled.
send -p user.warning "disk full low-$$"
send -p user.err "disk fine text-$$"
logger --server 127.0.0.1 --port "$RX_PORT" -t other -p user.err "disk full prog-$$"
send -p user.err "disk full after-$$"
wait_for 20 has "after-$$" "$TRAPS/traps.log" || fail "no trap for the line after the non-matching ones"
wait_for 10 has "after-$$" "$TRAPS/v3.log" || fail "no v3 trap for the line after the non-matching ones"
for t in "low-$$" "text-$$" "prog-$$"; do
  if has -- "$t" "$TRAPS/traps.log" "$TRAPS/v3.log"; then fail "a trap for a non-matching line ($t)"; fi
done
pass "non-matching lines (severity, text, program) sent no trap"

# --- a datagram that is not syslog is counted as a parse error
printf 'not syslog' >"/dev/udp/127.0.0.1/$RX_PORT"
wait_for 10 bash -o pipefail -c "ctl --json syslog status | jq -e '.receiver.counters.parse_errors == 1'" \
  || { ctl --json syslog status; fail "the parse error is not counted"; }
ctl --json syslog status | jq -e '.receiver.counters | .received == 8 and .matched.disk == 4 and .traps_sent == 12' >/dev/null \
  || { ctl --json syslog status; fail "ctl syslog status counts"; }
ctl syslog status | has "rule disk: 4 matched" || { ctl syslog status; fail "ctl syslog status (text)"; }
pass "ctl syslog status: 8 received, 1 parse error, 4 matched by rule disk, 12 traps sent (3 managers)"

# --- a bad rule is refused, naming the field
printf '[[syslog.receiver.rules]]\nname = "bad"\nmessage = "(unclosed"\n' >"$STATE/bad.toml"
if err=$(ctl config apply -f "$STATE/bad.toml" -m "bad rule" 2>&1); then fail "a rule with a bad regex was accepted"; fi
has -F 'syslog.receiver.rules[0].message' <<<"$err" || fail "the error does not name the field: $err"
pass "a bad regex is refused at syslog.receiver.rules[0].message"
