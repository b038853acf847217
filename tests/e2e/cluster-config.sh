#!/usr/bin/env bash
# The cluster-wide [integrator] section (docs/cluster.md, "The
# integrator's configuration across the cluster"): three members A, B, C.
# A channel with basic security (a password) added on A answers through
# C's :11223 with the same password; a change on B is live on A and C
# with the same cluster revision; C, down during a change, catches up
# once restarted; a bad change is refused on the member it was made on
# and changes nothing anywhere; the password is in no configuration
# revision, log, answer or nats-server file on any member; a node-level
# change ([node], integrator.workers) on A does not reach B.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../cluster-lib.sh"
trap "exit 1" TERM INT

SECRET="s3cr3t-$RANDOM-pw"
cluster_net A B C
for n in A B C; do start $n; done
cluster_form A B C

conf() { c "$1" --json config show integrator; }
rev() { conf "$1" | jq -r '.cluster_revision // empty'; }
# same_rev NODE...: every NODE applied the same cluster revision (printed).
same_rev() {
  local r n; r=$(rev "$1"); [ -n "$r" ] || return 1
  for n in "$@"; do [ "$(rev $n)" = "$r" ] || return 1; done
  echo "$r"
}
# code NODE PATH [CURL ARGS]: the HTTP status of PATH at NODE's :11223.
code() {
  local n=$1 p=$2; shift 2
  ip netns exec "${NS[$n]}" curl -sk -o /dev/null -w '%{http_code}' --max-time 20 "$@" "https://${IP[$n]}:11223$p"
}
export -f code
wait_code() { # wait_code NODE PATH WANT [CURL ARGS]
  local n=$1 p=$2 want=$3 got; shift 3
  for _ in $(seq 60); do got=$(code $n "$p" "$@"); [ "$got" = "$want" ] && return 0; sleep 0.5; done
  echo "$n $p: $got, not $want" >&2; return 1
}
has_channel() { conf "$1" | jq -e --arg p "$2" '[.config.channels[].url_path] | index($p) != null' >/dev/null; }

wait_for 30 same_rev A B C >/dev/null || { for n in A B C; do conf $n | jq -c '{cluster_revision}'; c $n logs supervisor | grep -i cluster | tail -5; done; fail "the members do not share a cluster revision of [integrator] after forming"; }
r0=$(same_rev A B C)
pass "formed: a, b, c on cluster revision $r0 of [integrator]"

# --- a channel with security on A answers through C's :11223
cat >"$W/echo.py" <<'PY'
from zato.server.service import Service

class Echo(Service):
    name = 'echo.get'

    def handle(self):
        self.response.payload = {'ok': True}
PY
# The integrator reaches the cluster's KV a moment after the members agree.
wait_for 60 c A integrator deploy "$W/echo.py" >/dev/null || { c A integrator deploy "$W/echo.py"; fail "deploy echo.py on A"; }
c A config set 'integrator.security[0]' "{name = \"cs\", kind = \"basic\", username = \"u\", password = \"$SECRET\"}" >/dev/null \
  || fail "security definition not added on A"
c A config set 'integrator.channels[0]' '{name = "echo", url_path = "/echo", service = "echo.get", security = "cs"}' >/dev/null \
  || fail "channel not added on A"
wait_for 30 has_channel C /echo || { conf C; c C logs supervisor | tail -10; fail "C did not get the channel made on A"; }
wait_code C /echo 200 -u "u:$SECRET" || { c C logs integrator | tail -10; fail "C's :11223 does not answer /echo with the password set on A"; }
[ "$(code C /echo)" = 401 ] || fail "C's :11223 answers /echo without the password"
[ "$(code C /echo -u u:wrong)" = 401 ] || fail "C's :11223 answers /echo with a wrong password"
wait_for 20 same_rev A B C >/dev/null || fail "A, B and C are not on one cluster revision after the change on A"
r1=$(same_rev A B C); [ "$r1" -gt "$r0" ] || fail "the change on A did not make a new cluster revision ($r0 → $r1)"
pass "a channel with basic security added on A: C's :11223 answers with the same password (401 without it); cluster revision $r1 on all"

# --- a change on B is live on A and C with the same revision
c B config set 'integrator.channels[0].url_path' '"/echo2"' >/dev/null || fail "the change on B was refused"
for n in A C; do
  wait_for 30 has_channel $n /echo2 || fail "$n did not get B's change"
  wait_code $n /echo2 200 -u "u:$SECRET" || fail "$n's :11223 does not answer B's new path"
done
wait_for 20 same_rev A B C >/dev/null || fail "A, B and C are not on one cluster revision after the change on B"
r2=$(same_rev A B C); [ "$r2" -gt "$r1" ] || fail "B's change did not make a new revision ($r1 → $r2)"
c A config history | has "cluster revision $r2 from b" || { c A config history; fail "A's history does not name B's change"; }
pass "a change on B: live on A and C, cluster revision $r2 on all; A's history names it"

# --- C down during a change catches up when it returns
kill_tree C
c A config set 'integrator.channels[1]' '{name = "late", url_path = "/late", service = "echo.get"}' >/dev/null \
  || fail "the change on A while C is down was refused"
wait_for 20 same_rev A B >/dev/null || fail "A and B differ after a change with C down"
r3=$(same_rev A B)
start C
wait_for 60 has_channel C /late || { conf C; c C logs supervisor | tail -10; fail "C did not catch up after its restart"; }
wait_for 20 same_rev A B C >/dev/null || fail "C is not on A's revision after catching up"
[ "$(same_rev A B C)" = "$r3" ] || fail "C caught up to another revision than $r3"
wait_code C /late 200 || fail "C's :11223 does not answer /late"
pass "C down during a change on A: once restarted it caught up to cluster revision $r3"

# --- a bad change is refused where it is made and changes nothing elsewhere
hist_b=$(c B --json config history | jq '.revisions | length')
out=$(c B config set 'integrator.channels[0].security' '"no-such-definition"' 2>&1) && fail "an invalid change was taken on B: $out"
has "integrator.channels\[0\]" <<<"$out" || fail "the refusal does not say where: $out"
sleep 3
[ "$(c B --json config history | jq '.revisions | length')" = "$hist_b" ] || fail "the refused change left a revision on B"
[ "$(same_rev A B C)" = "$r3" ] || fail "the refused change moved the cluster revision"
for n in A C; do conf $n | jq -e '.config.channels[0].security == "cs"' >/dev/null || fail "the refused change reached $n"; done
pass "an invalid change on B refused with its path; no revision anywhere, all still on $r3"

# --- a node-level change on A stays on A
c A config set node.timezone '"Europe/Berlin"' >/dev/null || fail "timezone on A"
c A config set integrator.workers 3 >/dev/null || fail "integrator.workers on A"
sleep 3
c B --json config show node | jq -e '.config.timezone != "Europe/Berlin"' >/dev/null || fail "A's [node] change reached B"
conf B | jq -e '.config.workers != 3' >/dev/null || fail "A's integrator.workers reached B"
[ "$(same_rev A B C)" = "$r3" ] || fail "a node-level change made a cluster revision"
pass "[node] and integrator.workers changed on A: B keeps its own, no cluster revision"

# --- the password is nowhere but the secret stores (and sealed in the log)
for n in A B C; do
  d=$W/${n,,}
  for id in $(c $n --json config history | jq '.revisions[].id'); do
    c $n --json config show --revision "$id" | has "$SECRET" && fail "$n's revision $id holds the password"
  done
  c $n config history | has "$SECRET" && fail "$n's history holds the password"
  c $n --json config show integrator | has "$SECRET" && fail "$n's answer holds the password"
  for s in supervisor integrator cluster; do c $n logs $s -n 5000 | has "$SECRET" && fail "$n's $s log holds the password"; done
  grep -rqa -- "$SECRET" "$d/log" "$d/console.log" && fail "$n's log files hold the password"
  grep -rqa -- "$SECRET" "$d/cluster" && fail "$n's nats-server files hold the password in clear"
done
pass "the password is in no revision, history, answer, log or nats-server file of a, b or c"
