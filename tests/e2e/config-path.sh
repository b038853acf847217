#!/usr/bin/env bash
# The one config write path, end to end on a `run --dev` node: a [node]
# change reloads every service that reads [node]; a VPN peer added while an
# admin's risky change is pending leaves that change pending (and it still
# reverts by itself, keeping the peer); two concurrent peer adds both
# survive; `config apply` of a file with only [network] leaves [vpn] as it
# was; a stale expect_revision is refused with a clear error.
. "$(dirname "$0")/../lib.sh"
command -v jq >/dev/null || fail "needs jq (scripts/deps.sh)"
STATE=$(mktemp -d /tmp/alpharen-cfgpath.XXXXXX)
on_exit "rm -rf $STATE"
seed_ports "$STATE/seed.toml"
cat >>"$STATE/seed.toml" <<'TOML'
[node]
confirm_timeout = 8
[vpn]
pool = "10.8.0.0/24"
endpoint = "vpn.example.net:51820"
TOML
start_node "$STATE" --config "$STATE/seed.toml"
# reloads SVC: how many reload lines SVC logged (grep -c prints 0 and
# exits 1 when there are none; a failing ctl also counts 0, which the
# "more than before" wait below never accepts).
reloads() { ctl logs "$1" -n 1000 2>/dev/null | grep -ci reload || true; }
export ALPHAREN STATE; export -f ctl reloads

# --- a [node] change reaches net, mail, web and dpx
declare -A before
for s in net mail web dpx; do
  wait_for 20 bash -o pipefail -c "'$ALPHAREN' ctl --state-dir '$STATE' services --json | jq -e '.[] | select(.name == \"$s\" and .state == \"running\")'" \
    || fail "$s is not running"
  before[$s]=$(reloads "$s")
done
ctl config set node.hostname renamed >/dev/null || fail "config set node.hostname"
for s in net mail web dpx; do
  wait_for 10 bash -c "[ \$(reloads $s) -gt ${before[$s]} ]" \
    || fail "$s did not reload after a [node] change (reload lines stayed at ${before[$s]})"
done
pass "a [node] change reloaded net, mail, web and dpx"

# --- a peer added while a risky change is pending does not confirm it
ctl config set network.dns.servers '["192.0.2.53"]' >"$STATE/risky.out" || fail "risky change refused"
PENDING=$(ctl --json config history -n 1 | jq -r .pending.revision)
[ "$PENDING" != null ] || fail "the [network] change is not pending: $(cat "$STATE/risky.out")"
ctl vpn peer add phone >"$STATE/phone.out" || fail "peer add: $(cat "$STATE/phone.out")"
P2=$(ctl --json config history -n 1 | jq -r .pending.revision)
[ "$P2" != null ] || fail "vpn peer add confirmed the admin's pending [network] change"
pass "vpn peer add left the pending [network] change pending (now revision $P2)"
wait_for 20 bash -o pipefail -c "'$ALPHAREN' ctl --state-dir '$STATE' --json config history -n 1 | jq -e '.pending == null'" \
  || fail "the pending change never reverted"
ctl --json config show network | jq -e '.config.dns.servers | index("192.0.2.53") | not' >/dev/null \
  || fail "the unconfirmed [network] change is still in effect after its deadline"
ctl --json config show vpn | jq -e '.config.peers[] | select(.name == "phone")' >/dev/null \
  || fail "the revert dropped the peer added meanwhile"
pass "the unconfirmed change reverted by itself and the peer stayed"

# --- two concurrent peer adds both survive
ctl vpn peer add laptop >"$STATE/a.out" 2>&1 &
A=$!
ctl vpn peer add tablet >"$STATE/b.out" 2>&1 &
B=$!
wait $A || fail "peer add laptop: $(cat "$STATE/a.out")"
wait $B || fail "peer add tablet: $(cat "$STATE/b.out")"
PEERS=$(ctl --json config show vpn | jq -r '[.config.peers[].name] | sort | join(",")')
[ "$PEERS" = laptop,phone,tablet ] || fail "concurrent peer adds: peers are $PEERS"
ADDRS=$(ctl --json config show vpn | jq -r '[.config.peers[].allowed_ips[0]] | unique | length')
[ "$ADDRS" = 3 ] || fail "concurrent peer adds got the same address"
pass "two concurrent peer adds both survived with their own addresses"

# --- apply touches only the sections in the file
cat >"$STATE/net-only.toml" <<'TOML'
[network]
manage = false
TOML
ctl config apply -f "$STATE/net-only.toml" >"$STATE/apply.out" || fail "apply of [network] only"
grep -q '^~ network.manage\|^+ network.manage' "$STATE/apply.out" || fail "apply did not print its changes: $(cat "$STATE/apply.out")"
ctl --json config show vpn | jq -e '.config.pool == "10.8.0.0/24" and (.config.peers | length) == 3' >/dev/null \
  || fail "applying a file with only [network] changed [vpn]"
ctl config confirm >/dev/null || fail "confirm"
pass "a file with only [network] left [vpn] as it was"
ctl config apply --dry-run --replace -f "$STATE/net-only.toml" >"$STATE/dry.out" || fail "dry run"
grep -q '^- vpn.peers' "$STATE/dry.out" || fail "--replace dry run does not show [vpn] going: $(cat "$STATE/dry.out")"
ctl --json config show vpn | jq -e '(.config.peers | length) == 3' >/dev/null || fail "a dry run changed something"
pass "--replace --dry-run shows the whole-document change and makes none"

# --- compare-and-swap
REV=$(ctl --json config history -n 1 | jq -r '.revisions[0].id')
if ctl config set node.timezone Europe/Berlin --expect-revision $((REV - 1)) >"$STATE/cas.out" 2>&1; then
  fail "a stale --expect-revision was accepted"
fi
grep -q "current one is $REV" "$STATE/cas.out" || fail "conflict message unclear: $(cat "$STATE/cas.out")"
ctl config set node.timezone Europe/Berlin --expect-revision "$REV" >/dev/null || fail "a current --expect-revision was refused"
pass "a stale expect_revision is refused and names the current revision"

# --- a refused file names the line of each problem, and nothing is stored
REV=$(ctl --json config history -n 1 | jq -r '.revisions[0].id')
printf '# a comment\n[node]\ntimezone = "Europe/Berlin"\n\n[vpn]\nlisten_port = 0\n' >"$STATE/bad.toml"
if ctl config apply -f "$STATE/bad.toml" >"$STATE/bad.out" 2>&1; then fail "a file with listen_port = 0 was applied"; fi
grep -q "vpn.listen_port: .*(line 6)" "$STATE/bad.out" || fail "the problem does not name its line: $(cat "$STATE/bad.out")"
[ "$(ctl --json config history -n 1 | jq -r '.revisions[0].id')" = "$REV" ] || fail "a refused file made a revision"
pass "a refused file names the path and line of its problem and stores nothing"
