#!/usr/bin/env bash
# pg_controller as a cluster singleton (root): PostgreSQL 15 servers A
# and B streaming with sshd (tests/pgha-lib.sh), an HTTP referee R, and a
# cluster of three nodes C, D, E (tests/cluster-lib.sh) on the same
# bridge, each with a dpx zone; [pgha] (a group, its replication
# password) is set on C only. Checks:
#  0. D and E have C's [pgha] and its password from the cluster's
#     configuration log, and no revision or answer holds the password;
#  1. exactly one member holds the pg_controller lease, all agree where,
#     and every member's DNS names A as main.pg.lab.test;
#  2. the holder's whole process tree and A's postgres are killed: a
#     surviving member takes the lease over, promotes B, and every
#     surviving member's DNS names B;
#  3. no sample of the members' pgha status ever shows two holders;
#  4. the killed member back, the new holder killed: the next holder
#     resumes from the state in JetStream (B master, the failover kept).
# e2e-timeout: 900
. "$(dirname "$0")/../lib.sh"
. "$ROOT/tests/cluster-lib.sh"
. "$ROOT/tests/pgha-lib.sh"
needs dig
pgha_user
T=$(mktemp -d /tmp/cluster-pg.XXXXXX); chmod 755 "$T"
on_exit "rm -rf $T"
GRACE=4
ZONE=lab.test
NODES=(C D E)
pg_net D E
sshd_for A; sshd_for B
pg_pair
referee
sql A "CREATE TABLE t (i int PRIMARY KEY)" >/dev/null
sql A "INSERT INTO t SELECT generate_series(1, 100)" >/dev/null

start_members "${NODES[@]}" <<TOML
[dpx]
zone = "$ZONE."
TOML
cluster_form C D E
pass "cluster of C, D and E formed"

# The controller only once the nodes are members: a node outside a
# cluster runs it on its own.
pgha_conf $GRACE >"$T/pgha.toml"
: >"$T/authorized_keys"; chmod 644 "$T/authorized_keys"
# Until C has applied the cluster's revision of [pgha] (its configuration
# log is followed a moment after the members agree), the apply answers
# "conflict" and changes nothing: try again.
wait_for 60 c C config apply -f "$T/pgha.toml" || { c C config apply -f "$T/pgha.toml"; fail "[pgha] not applied on C"; }
# has_group N: N's [pgha] is C's (group main, C's grace); its replication
# password is a stored secret there, or the revision would not apply.
has_group() {
  c $1 --json config show pgha |
    jq -e --argjson g $GRACE '.config.pg_controller[0].key == "main" and .config.grace == $g' >/dev/null
}
for n in D E; do
  wait_for 30 has_group $n || { c $n --json config show pgha; c $n logs supervisor | tail -5; fail "C's [pgha] did not reach $n"; }
  c $n --json config show pgha | has "$REPL_PWD" && fail "$n's answer holds the replication password"
  for id in $(c $n --json config history | jq '.revisions[].id'); do
    c $n --json config show --revision "$id" | has "$REPL_PWD" && fail "$n's revision $id holds the replication password"
  done
done
pass "C's [pgha] reached D and E through the cluster's configuration log, the password in no answer or revision"
for n in "${NODES[@]}"; do
  key() { c $1 --json pgha status | jq -re .client_key; }
  wait_for 30 key $n || fail "no pgha client key on $n"
  key $n >>"$T/authorized_keys"
done

ps_of() { c "$1" --json pgha status; }
# holder_on N: who N's cluster status says holds pg_controller.
holder_on() { st "$1" | jq -r '.singletons.pg_controller.holder // empty'; }
# here_count N...: how many of N... say pg_controller runs on them.
here_count() {
  local n k=0
  for n in "$@"; do
    [ "$(ps_of $n 2>/dev/null | jq -r '.singletons.pg_controller.here')" = true ] && k=$((k + 1))
  done
  echo $k
}
one_holder() {
  local n h; h=$(holder_on "$1") || return 1
  [ -n "$h" ] || return 1
  shift
  for n in "$@"; do [ "$(holder_on $n)" = "$h" ] || return 1; done
  [ "$(here_count "${NODES[@]}")" = 1 ]
}
wait_for 60 one_holder C D E || { for n in C D E; do st $n | jq .singletons; done; fail "no single pg_controller holder that all members agree on"; }
H=$(holder_on C) || fail "no cluster status from C"; H=${H^^}
group_on() { ps_of "$1" | jq -r ".groups[0].$2"; }
healthy_on() { [ "$(group_on "$1" situation)" = healthy ] && [ "$(group_on "$1" master)" = "$2" ]; }
wait_for 60 healthy_on $H 0 || { ps_of $H; fail "group not healthy with A as master on the holder $H"; }
# A lease read during an election answers "cannot be read just now".
says_holder() { c $1 pgha status | has "pg_controller runs on cluster member ${H,,}"; }
for n in "${NODES[@]}"; do
  [ $n = $H ] && continue
  [ "$(ps_of $n | jq '.groups | length')" = 0 ] || fail "$n runs the group though $H holds the lease"
  wait_for 30 says_holder $n || { c $n pgha status; fail "$n's pgha status does not say where the controller runs"; }
done
c $H cluster status | has "singleton pg_controller on ${H,,}" || fail "cluster status does not show the singleton"
master_in_dns() { [ "$(in_ns "$1" dig +short +time=1 +tries=1 @"${IP[$1]}" "main.pg.$ZONE" A)" = "$2" ]; }
for n in "${NODES[@]}"; do
  wait_for 30 master_in_dns $n "${IP[A]}" || { c $n logs pgha | tail -5; fail "$n's DNS does not name A as main.pg.$ZONE"; }
done
pass "pg_controller runs on $H alone; every member's DNS names A (${IP[A]}) as main.pg.$ZONE"

# 3. a sampler of where the controller runs, for the rest of the test.
( while [ ! -e "$T/stop" ]; do echo "$(date +%s.%N) $(here_count "${NODES[@]}")"; sleep 0.3; done ) >"$T/holders" 2>/dev/null &
SAMPLER=$!
on_exit "kill $SAMPLER 2>/dev/null"

# 2. the holder and the master die
SURV=()
for n in "${NODES[@]}"; do [ $n = $H ] || SURV+=($n); done
kill_tree $H
kill -9 "$(postmaster_pid A)"
# Sets NEW to the holder both survivors name, when it is not OLD. (The
# holder is kept from the wait: a status read after it can fail while
# JetStream elects, which would end the script under `set -e`.)
taken_over_from() {
  local old=$1 h; shift
  h=$(holder_on $1) || return 1
  [ -n "$h" ] && [ "${h^^}" != "$old" ] && [ "$(holder_on $2)" = "$h" ] && NEW=${h^^}
}
wait_for 90 taken_over_from $H "${SURV[@]}" || { for n in "${SURV[@]}"; do st $n | jq .singletons; c $n logs pgha | tail -8; done; fail "no surviving member took pg_controller over from $H"; }
N=$NEW
pass "$N took pg_controller over from the killed $H"
wait_for 90 is_primary B || { ps_of $N; c $N logs pgha | tail -20; fail "B was not promoted by $N"; }
[ "$(sql B 'SELECT count(*) FROM t')" = 100 ] || fail "committed rows missing on the new master"
wait_for 30 eval '[ "$(group_on $N master)" = 1 ]' || fail "$N does not hold B for master"
# The promotion is recorded when its action returns, which can be after
# the new master shows.
promoted_on() { ps_of "$1" | jq -r '.groups[0].last_failover.action' | has "promote ${IP[B]}"; }
wait_for 30 promoted_on $N || { ps_of $N | jq .groups[0]; fail "$N's status has no promotion of B"; }
pass "$N promoted B with every committed row"
for n in "${SURV[@]}"; do
  wait_for 30 master_in_dns $n "${IP[B]}" || { c $n logs pgha | tail -5; c $n dpx records; fail "$n's DNS does not name B as main.pg.$ZONE"; }
done
in_ns ${SURV[0]} dig +noall +answer @"${IP[${SURV[0]}]}" "main.pg.$ZONE" A | awk '{print $2}' | has -x 5 || fail "main.pg.$ZONE does not have the short TTL (5 s)"
pass "every surviving member's DNS names B (${IP[B]}) as main.pg.$ZONE, TTL 5 s"

# 4. C back, then the new holder killed too: the third member (or the
# returning one) takes over and resumes from the state in JetStream: B
# is master, nothing promoted again.
wait_for 120 healthy_on $N 1 || { ps_of $N; fail "$N did not rebuild A as B's replica"; }
start $H
wait_for 90 agree C D E || fail "$H did not rejoin"
# The returning member's dpx starts from the zone it kept (A); its pgha
# publishes the master from the cluster's state once its link is up.
wait_for 30 master_in_dns $H "${IP[B]}" || { c $H logs pgha | tail -5; fail "the returning $H's DNS does not name B as main.pg.$ZONE"; }
pass "the returning $H's DNS names B, the master from the cluster's state"
kill_tree $N
SURV2=()
for n in "${NODES[@]}"; do [ $n = $N ] || SURV2+=($n); done
wait_for 90 taken_over_from $N "${SURV2[@]}" || { for n in "${SURV2[@]}"; do st $n | jq .singletons; done; fail "nobody took pg_controller over from $N"; }
M=$NEW
wait_for 60 healthy_on $M 1 || { ps_of $M; fail "$M does not resume with B as master"; }
ps_of $M | jq -r '.groups[0].last_failover.action' | has "promote ${IP[B]}" || fail "$M did not resume the failover journal from the cluster"
has "resumed from the cluster" "$W/${M,,}/log/pgctrl_main.log" || fail "$M's log does not say it resumed from the cluster"
is_primary B && ! is_primary A || fail "the roles changed when $M took over"
for n in "${SURV2[@]}"; do master_in_dns $n "${IP[B]}" || fail "$n's DNS changed after $M took over"; done
pass "$M took over from the killed $N and resumed from the cluster's state: B master, last failover kept"

touch "$T/stop"; wait $SAMPLER
[ "$(wc -l <"$T/holders")" -gt 10 ] || fail "too few samples of the holders"
if awk '$2 > 1' "$T/holders" | has .; then
  awk '$2 > 1' "$T/holders" | head; fail "two members ran pg_controller at once"
fi
pass "no sample of $(wc -l <"$T/holders") showed two members running pg_controller"
echo "cluster-pg e2e: all passed"
