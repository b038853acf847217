#!/usr/bin/env bash
# ARCLST forming: three nodes (`alpharen run`, each supervising its own
# nats-server from Debian) in namespaces A, B, C on one bridge. `cluster
# init` on A prints a join token; a token with a wrong secret or a wrong
# CA fingerprint is refused and changes nothing; B and C join with the
# right one; every member's `cluster status` lists the same three members
# up and one JetStream meta leader; the membership bucket goes to three
# replicas; the integrator's KV is cluster-wide; deploys and rollbacks on
# any member are live on all (and on a member that was down, once it is
# back); a job scheduled on every
# member runs once per fire time; [integrator] set on A reaches B and C; no key or secret is in the configuration; a member killed
# with its process tree is marked down and, restarted, comes back; every
# member's :11223 balances over the members (under load from a client
# namespace, a fourth node D joins and gets requests with nothing
# restarted, then B leaves and is drained without a failed request and
# joins again); a member that leaves stops its nats-server.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../cluster-lib.sh"
browser_deps
trap "exit 1" TERM INT

cluster_net A B C D X   # D joins later; X is a client
for n in A B C; do start $n; done

# --- init on A
cluster_init A lab
[ "$(c A cluster token)" = "$TOKEN" ] || fail "cluster token differs from init's"
has "@${IP[A]}:443\$" <<<"$TOKEN" || fail "the token does not name A's web API: $TOKEN"
wait_for 20 bash -o pipefail -c "'$ALPHAREN' ctl --state-dir '$W/a' --json cluster status | jq -e '.members | length == 1 and .[0].state == \"up\"'" \
  || { st A; c A logs cluster | tail -20; fail "A's own heartbeat did not appear"; }
out=$(c A cluster init again 2>&1) && fail "a second init was taken: $out"
has "already in cluster" <<<"$out" || fail "second init: $out"
pass "init: a token for A's web API, A's heartbeat in the bucket, a second init refused"

# --- wrong tokens change nothing
secret=${TOKEN#arc1.*.}; secret=${secret%@*}
bad_secret=${TOKEN/"$secret"/"AAAA${secret:4}"}
out=$(c B cluster join "$bad_secret" 2>&1) && fail "a wrong secret joined: $out"
has "not signed with this cluster's join secret" <<<"$out" || fail "wrong secret: $out"
fp=${TOKEN#arc1.}; fp=${fp%%.*}
bad_fp=${TOKEN/"$fp"/"$(printf '%064d' 0)"}
out=$(c B cluster join "$bad_fp" 2>&1) && fail "a wrong CA fingerprint joined: $out"
has "does not match the token's fingerprint" <<<"$out" || fail "wrong fingerprint: $out"
out=$(c B cluster join "arc1.nonsense" 2>&1) && fail "a damaged token joined: $out"
has "join token" <<<"$out" || fail "damaged token: $out"
st B | jq -e '.name == null' >/dev/null || { st B; fail "B is in a cluster after refused joins"; }
nats_of B >/dev/null && fail "B runs nats-server after refused joins"
pass "join refused for a wrong secret, a wrong CA fingerprint and a damaged token; B unchanged"

# --- B and C join; everyone agrees
c B cluster join "$TOKEN" >/dev/null || fail "B did not join"
c C cluster join "$TOKEN" >/dev/null || fail "C did not join"
wait_for 90 agree A B C || { for n in A B C; do st $n; c $n logs cluster | grep -v "INF\]" | tail -8; done; fail "the members do not agree on three members and one leader"; }
pass "B and C joined: every member lists a, b, c up and the same JetStream meta leader"

# The membership bucket is replicated on all three.
# The buckets (membership, the integrator's KV) and the deploy log: the lowest replica count.
replicas() { ip netns exec "${NS[A]}" curl -sf "http://127.0.0.1:8222/jsz?streams=true&config=true" | jq -r '[.account_details[].stream_detail[] | select(.name == "KV_ar_members" or .name == "KV_ar_kv" or .name == "AR_DEPLOYS") | .config.num_replicas] | if length == 3 then min else 0 end'; }
for _ in $(seq 60); do [ "$(replicas)" = 3 ] && break; sleep 0.5; done
[ "$(replicas)" = 3 ] || { replicas; fail "the buckets and the deploy log did not go to three replicas"; }
# (a member's heartbeat may pause while its nats-server restarts with new seeds)
for _ in $(seq 40); do st A | jq -e ".replicas == 3" >/dev/null && break; sleep 0.5; done
st A | jq -e ".replicas == 3" >/dev/null || { st A; fail "status does not say R3"; }
pass "membership and KV buckets and the deploy log at three replicas"

# --- the integrator's KV is the cluster's: written on A, read on C;
# a compare-and-set race between A and C has exactly one winner per key.
c A integrator kv set --ns orders o1 '{"qty": 3}' >/dev/null || fail "kv set on A"
kvget() { "$ALPHAREN" ctl --state-dir "$W/$1" --json integrator kv get --ns orders o1; }
for _ in $(seq 40); do kvget c 2>/dev/null | jq -e '.. | objects | select(.qty == 3)' >/dev/null && break; sleep 0.5; done
kvget c | jq -e '.. | objects | select(.qty == 3)' >/dev/null || { kvget c; c C logs integrator | tail -5; fail "C does not read the key A wrote"; }
# A listing reads each key's last message in one pass over its namespace:
# a deleted key, an expired one and another namespace's keys are not in
# it, and the namespaces count live keys only.
{ c A integrator kv set --ns orders o2 gone && c A integrator kv del --ns orders o2 \
  && c A integrator kv set --ns orders --ttl 1 o3 brief && c A integrator kv set --ns orders-x x1 other; } >/dev/null \
  || fail "kv set and del of o2, o3 and x1 on A"
sleep 1.5   # o3's second
listing=$(c C --json integrator kv list --ns orders) || fail "kv list on C: $listing"
echo "$listing" | jq -e '.keys == ["o1"] and ([.namespaces[] | select(.ns | startswith("orders"))] == [{ns: "orders", keys: 1}, {ns: "orders-x", keys: 1}])' >/dev/null \
  || fail "kv list of orders on C, after o2 was deleted and o3 expired, beside orders-x: $listing"
cat >"$W/race.py" <<'PY'
from zato.server.service import Service

class Claim(Service):
    name = 'race.claim'

    def handle(self):
        p = self.request.payload
        won = self.kv.ns('race').cas(p['key'], None, p['who'])
        self.response.payload = {'won': bool(won)}

class Tally(Service):
    name = 'race.tally'

    def handle(self):
        self.response.payload = {'n': self.kvdb.conn.hincrby('tally', 'hits', 1)}
PY
for n in A C; do c $n integrator deploy "$W/race.py" >/dev/null || fail "deploy race.py on $n"; done
racers=()
for i in $(seq 1 20); do
  for n in A C; do
    c $n --json integrator invoke race.claim "{\"key\": \"k$i\", \"who\": \"$n\"}" >"$W/race-$n-$i.json" 2>&1 &
    racers+=($!)
    if [ "$i" -le 10 ]; then
      c $n --json integrator invoke race.tally '{}' >"$W/tally-$n-$i.json" 2>&1 &
      racers+=($!)
    fi
  done
done
for j in "${racers[@]}"; do wait "$j" || fail "an invoke of race.claim or race.tally failed: $(cat "$W"/race-*.json "$W"/tally-*.json)"; done
for i in $(seq 1 20); do
  won=$(cat "$W/race-A-$i.json" "$W/race-C-$i.json" | jq -s '[.[] | .. | objects | select(has("won")) | .won] | map(select(.)) | length')
  [ "$won" = 1 ] || { cat "$W/race-A-$i.json" "$W/race-C-$i.json"; fail "key k$i: $won winners of the CAS race"; }
done
winner=$(c A --json integrator kv get --ns race k7 | jq -r '.. | strings | select(. == "A" or . == "C")' | sed -n 1p)
[ -n "$winner" ] || fail "the race's winner is not stored"
cat "$W"/tally-*.json | jq -s -e '[.[] | .. | objects | select(has("n")) | .n] | sort == [range(1; 21)]' >/dev/null \
  || fail "20 concurrent kvdb hincrby on A and C did not count 1..20: $(cat "$W"/tally-*.json | jq -s -c '[.[] | .. | objects | select(has("status")) | [.status, .body.n // .body.error]]')"
pass "integrator KV cluster-wide: A's key read on C; 20 CAS races between A and C, one winner each; 20 concurrent kvdb hincrby count 1..20"

# --- deployed code is cluster-wide: a deploy on A is live on C with the
# same version; rollback on B brings the old version back on A and C;
# deploys on A and C at once get distinct versions and every member ends
# on the same one.
hello() {
  mkdir -p "$W/$1"   # one module, hello: the file's name is the same
  printf 'from zato.server.service import Service\n\nclass Hello(Service):\n    name = "hello.get"\n\n    def handle(self):\n        self.response.payload = {"v": "%s"}\n' "$1" >"$W/$1/hello.py"
  echo "$W/$1/hello.py"
}
# answers NODE WANT VERSION: hello.get on NODE answers WANT, VERSION active there
answers() {
  local out
  out=$("$ALPHAREN" ctl --state-dir "$W/${1,,}" --json integrator invoke hello.get '{}') || return 1
  jq -e --arg w "$2" '[.. | objects | select(has("v")) | .v] | index($w) != null' <<<"$out" >/dev/null || return 1
  out=$("$ALPHAREN" ctl --state-dir "$W/${1,,}" --json integrator list) || return 1
  jq -e --argjson v "$3" '.[] | select(.name == "hello.get") | .version == $v' <<<"$out" >/dev/null
}
export -f answers
# live NODE SERVICE: SERVICE is deployed on NODE.
live() { "$ALPHAREN" ctl --state-dir "$W/${1,,}" --json integrator list | jq -e --arg s "$2" 'any(.[]; .name == $s)' >/dev/null; }
export -f live
# deploy_once FILE SERVICE: one deploy on A (deploys are cluster-wide), then
# live on B and C before anything uses it, so no member reloads it later.
deploy_once() {
  c A integrator deploy "$1" >/dev/null || fail "deploy $1 on A"
  for n in B C; do wait_for 20 live $n "$2" || fail "$2 deployed on A is not live on $n"; done
}
deployed() { jq -r '.. | objects | select(has("version")) | .version' <<<"$1" | sed -n 1p; }
out=$(c A --json integrator deploy "$(hello one)") || fail "deploy hello one on A: $out"
v1=$(deployed "$out"); [ -n "$v1" ] || fail "no version in: $out"
wait_for 20 answers C one "$v1" || { c C integrator list; c C logs integrator | tail -8; fail "hello v$v1 deployed on A is not live on C"; }
wait_for 20 answers B one "$v1" || fail "hello v$v1 deployed on A is not live on B"
out=$(c A --json integrator deploy "$(hello two)") || fail "deploy hello two on A: $out"
v2=$(deployed "$out"); [ "$v2" -gt "$v1" ] || fail "the second deploy got version $v2 after $v1"
wait_for 20 answers C two "$v2" || fail "hello v$v2 is not live on C"
c B integrator rollback hello.get "$v1" >/dev/null || fail "rollback to v$v1 on B"
for n in A C; do
  wait_for 20 answers $n one "$v1" || { c $n integrator list; fail "rollback on B: $n does not answer v$v1"; }
done
pass "deploy on A live on B and C as v$v1 and v$v2; rollback on B: A and C answer v$v1"
c A --json integrator deploy "$(hello ra)" >"$W/dep-a.json" 2>&1 & ja=$!
c C --json integrator deploy "$(hello rc)" >"$W/dep-c.json" 2>&1 & jc=$!
wait $ja || fail "deploy on A during a deploy on C: $(cat "$W/dep-a.json")"
wait $jc || fail "deploy on C during a deploy on A: $(cat "$W/dep-c.json")"
va=$(deployed "$(cat "$W/dep-a.json")"); vc=$(deployed "$(cat "$W/dep-c.json")")
[ -n "$va" ] && [ -n "$vc" ] && [ "$va" != "$vc" ] || fail "deploys at once on A and C got versions '$va' and '$vc'"
if [ "$va" -gt "$vc" ]; then last=ra; vl=$va; else last=rc; vl=$vc; fi
for n in A B C; do
  wait_for 20 answers $n $last "$vl" || { c $n integrator versions hello.get; fail "$n does not end on v$vl after deploys at once"; }
done
pass "deploys at once on A and C: versions $va and $vc; every member ends on v$vl"

# --- jobs run once: the same every-second job on A, B and C; each member
# claims a fire time before it runs it, so each second runs exactly once
# in the cluster (a second run of one fire time lands in "dups").
cat >"$W/tick.py" <<'PY'
from zato.server.service import Service

class Fire(Service):
    name = 'tick.fire'

    def handle(self):
        at = str(self.request.meta.fire_time)
        who = self.request.payload['who']
        if not self.kv.ns('ticks').cas(at, None, who):
            self.kv.ns('dups').set(at, who)
PY
deploy_once "$W/tick.py" tick.fire
# [integrator] is cluster-wide: the job added on A is every member's.
c A config set 'integrator.jobs[0]' '{name = "tick", service = "tick.fire", kind = "interval", seconds = 1, payload = {who = "a"}}' >/dev/null \
  || fail "the tick job not added on A"
for n in b c; do
  wait_for 30 bash -o pipefail -c "'$ALPHAREN' ctl --state-dir '$W/$n' --json config show integrator | jq -e '.config.jobs[0].name == \"tick\"'" \
    || fail "the tick job added on A did not reach $n"
done
ticks() { c A --json integrator kv list --ns "$1" | jq '[.keys[] | tonumber] | sort'; }
wait_for 30 bash -c "[ \"\$('$ALPHAREN' ctl --state-dir '$W/a' --json integrator kv list --ns ticks | jq '.keys | length')\" -ge 8 ]" \
  || { c A integrator jobs; c A logs integrator | tail -10; fail "the tick job did not fire 8 times in the cluster"; }
sleep 2   # the fires started before this read have finished
got=$(ticks ticks)
jq -e 'length >= 8 and (.[-1] - .[0] + 1) == length' <<<"$got" >/dev/null \
  || fail "fire times not each run once from the first to the last: $got"
dups=$(ticks dups)
[ "$dups" = "[]" ] || fail "fire times run twice: $dups"
skipped=0
for n in A B C; do c $n --json integrator jobs | jq -e '.[] | select(.name == "tick") | .last_result | test("ran on another member")' >/dev/null && skipped=$((skipped + 1)); done
[ $skipped -ge 1 ] || { for n in A B C; do c $n integrator jobs; done; fail "no member says it left a fire to another"; }
pass "an every-second job on A, B and C: fire times $(jq '.[0]' <<<"$got")..$(jq '.[-1]' <<<"$got") each ran once in the cluster"

# No key or secret in any configuration or log.
for n in A B C; do
  conf=$(c $n config show)
  has "PRIVATE KEY\|$secret" <<<"$conf" && fail "$n's configuration holds a cluster secret"
  has "$secret" "$W/${n,,}/console.log" && fail "$n's log holds the join secret"
  c $n logs cluster -n 2000 | has "$secret" && fail "$n's cluster log holds the join secret"
  stat -c %a "$W/${n,,}/cluster/node.key" | has '^600$' || fail "$n's node key is not 0600"
done
pass "keys and the join secret only in the secret store and the service's own 0700 directory"

# --- nats-server dies with the service that runs it (PR_SET_PDEATHSIG)
old_nats=$(nats_of C) || fail "C runs no nats-server"
kill -9 "$(pgrep -f "serve cluster --state-dir $W/c\$")" || fail "no cluster service on C"
wait_for 10 bash -c "! kill -0 $old_nats 2>/dev/null" || fail "C's nats-server outlived its cluster service"
pass "nats-server died with its cluster service"

# --- C dies with its whole process tree: marked down, A and B stay up
kill_tree C
wait_for 30 bash -o pipefail -c "'$ALPHAREN' ctl --state-dir '$W/a' --json cluster status | jq -e '[.members[] | {(.node): .state}] | add == {\"a\":\"up\",\"b\":\"up\",\"c\":\"down\"}'" \
  || { st A; fail "C was not marked down on A"; }
pass "C killed: A sees a, b up and c down"

# The console's Cluster page on A, as it is now (c down, R1 warning).
PASSWORD="correct horse battery"
ip netns exec "${NS[A]}" curl -skf -H 'content-type: application/json' \
  --data "{\"code\":\"$(cat "$W/a/setup-code")\",\"admin_password\":\"$PASSWORD\",\"hostname\":\"a\"}" \
  "https://${IP[A]}/api/v1/setup" >/dev/null || fail "console setup on A"
ip netns exec "${NS[A]}" env TEST_OUT="$OUT" timeout 120 node "$DIR/cluster.mjs" "https://${IP[A]}" "$PASSWORD" "$TOKEN" \
  || fail "the console's Cluster page (screenshots in $OUT)"
pass "the console's Cluster page on A: a, b up, c down, the meta leader, the R1 warning, the join token on request"

# --- a member that was down catches up: deployed while C is down, live
# on C with the same version once it is back.
out=$(c A --json integrator deploy "$(hello late)") || fail "deploy while C is down: $out"
vlate=$(deployed "$out")
start C
wait_for 60 answers C late "$vlate" || { c C integrator list; c C logs integrator | tail -8; fail "C did not catch up with v$vlate after its restart"; }
pass "C restarted: it caught up with v$vlate, deployed on A while it was down"

# --- the balancer: every member's :11223 balances over the members that
# are up, from their heartbeats, with no list configured and no restart.
# C is back; under load from a client namespace (X) at A's and C's
# :11223 (two clients each), D, a new node outside the cluster, joins
# and both balancers send it requests with nothing restarted; then B
# leaves: it drains (announces it, the others stop sending, its requests
# finish) so no request fails and B serves nothing after `leave`
# returns; B joins again and is sent requests. Each answer names its
# server (x-alpharen-served-by).
wait_for 60 bash -o pipefail -c "'$ALPHAREN' ctl --state-dir '$W/a' --json cluster status | jq -e '[.members[] | {(.node): .state}] | add == {\"a\":\"up\",\"b\":\"up\",\"c\":\"up\"}'" \
  || { st A; fail "C did not come back up"; }
cat >"$W/who.py" <<'PY'
from zato.server.service import Service

class Who(Service):
    name = 'who.get'

    def handle(self):
        self.response.payload = {'ok': True}
PY
deploy_once "$W/who.py" who.get
c A config set 'integrator.channels[0]' '{name = "who", url_path = "/who", service = "who.get"}' >/dev/null || fail "the who channel not added on A"
for n in b c; do
  wait_for 30 bash -o pipefail -c "'$ALPHAREN' ctl --state-dir '$W/$n' --json config show integrator | jq -e '.config.channels[0].name == \"who\"'" \
    || fail "the who channel added on A did not reach $n"
done
peers_of() { c "$1" --json integrator status | jq -c '[.servers[] | select(.healthy and (.draining | not)) | .node] | sort'; }
peers_are() { [ "$(peers_of "$1")" = "$2" ]; }
wait_for 30 peers_are A '["b","c"]' || { c A --json integrator status | jq .servers; c A logs integrator | tail -10; fail "A's balancer does not take b and c from the member list"; }
wait_for 30 peers_are C '["a","b"]' || { c C --json integrator status | jq .servers; fail "C's balancer does not take a and b from the member list"; }
pass "A's and C's balancers found the others in the member list (TLS pinned to their heartbeats' certificates): A $(peers_of A), C $(peers_of C)"

start D
st D | jq -e '.name == null' >/dev/null || { st D; fail "D is in a cluster before it joined"; }
nats_of D >/dev/null && fail "D runs nats-server before it joined"
# seen PHASE SERVER NODE...: the clients of some NODE's :11223 got an
# answer from SERVER in PHASE. (Not every balancer: least-loaded×RTT
# keeps most calls local under this light load, so a given balancer
# forwards to a given member only now and then.)
seen() { local p=$1 s=$2 n; shift 2; for n in "$@"; do [ "$(lb_served "$p" "$s" "$n*")" -gt 0 ] && return 0; done; return 1; }
integrators() { for n in a c; do pgrep -f "serve integrator --state-dir $W/$n\$"; done | tr '\n' ' '; }
running=$(integrators)
lb_load_start "${NS[X]}" a1 "https://${IP[A]}:11223/who" a2 "https://${IP[A]}:11223/who" \
  c1 "https://${IP[C]}:11223/who" c2 "https://${IP[C]}:11223/who"
wait_for 60 seen before b a c || { lb_summary; fail "neither A nor C sent requests to B under load"; }

# D joins: the balancers send it requests, nothing restarted.
lb_phase joining
c D cluster join "$TOKEN" >/dev/null || fail "D did not join"
lb_phase joined
wait_for 90 seen joined d a c \
  || { c A --json integrator status | jq .servers; st A; lb_summary; fail "D joined but neither A nor C sends it requests"; }
[ "$(integrators)" = "$running" ] || fail "an integrator restarted while D joined: $running then $(integrators)"
pass "D joined under load: the balancers sent it $(lb_served joined d) requests with no integrator restarted"

lb_phase leaving
out=$(c B --json cluster leave) || fail "B did not leave: $out"
lb_phase after
jq -e '.drain.announced' <<<"$out" >/dev/null || fail "B left without announcing the drain: $out"
# after_b: the load went on without B, D answering some of it.
after_b() { [ "$(cat "$W"/load.* | grep -c '^after ')" -ge 200 ] && [ "$(lb_served after d)" -gt 0 ]; }
wait_for 60 after_b || fail "the load stalled or left D out after B left: $(lb_summary)"
pass "B left under load: $(jq -c .drain <<<"$out")"

# B joins again: the balancers send it requests without a restart.
c B cluster join "$TOKEN" >/dev/null || fail "B did not join again"
lb_phase rejoined
wait_for 90 seen rejoined b a c || { c A --json integrator status | jq .servers; st A; fail "B joined again but neither A nor C sends it anything"; }
lb_load_stop
total=$(cat "$W"/load.* | wc -l)
failed=$(lb_failed | wc -l)
summary=$(lb_summary)
[ "$failed" = 0 ] || { lb_failed | sort | uniq -c; for n in A B C D; do echo "$n:"; c $n logs integrator -n 5000 | grep -i 'unhealthy\|health changed\|servers' | tail -8; done; fail "$failed of $total requests failed while D joined and B left and joined"; }
[ "$(lb_served after b)" = 0 ] || fail "B served $(lb_served after b) requests after it drained and left: $summary"
pass "$total requests from X at A's and C's :11223, none failed: $summary D's share once joined: $(lb_served joined d); B's after it drained: 0; after it joined again: $(lb_served rejoined b)"

# --- B leaves for good: its nats-server stops, its status says so
c B cluster leave >/dev/null || fail "B did not leave"
wait_for 15 bash -c "! pgrep -f '$W/b/cluster/nats[.]conf' >/dev/null" || { c B logs cluster | grep -v 'nats: ' | tail -15; pgrep -af '$W/b/cluster'; fail "B's nats-server still runs after leave"; }
st B | jq -e '.name == null' >/dev/null || fail "B still reports a cluster"
pass "B left: nats-server stopped"

# --- A listing of the KV while the member's nats-server does not answer
# (stopped, not gone, so nothing restarts it): an error, not an empty list.
nats_a=$(nats_of A) || fail "A runs no nats-server"
kvlist() { timeout 90 "$ALPHAREN" ctl --state-dir "$W/a" --json integrator kv list --ns orders; }
export -f kvlist; export ALPHAREN W   # also inside the `bash -c` wait below
kill -STOP "$nats_a"
if out=$(kvlist 2>&1); then
  kill -CONT "$nats_a"
  fail "kv list on A answered while its nats-server was stopped: $out"
fi
kill -CONT "$nats_a"
# The integrator answered: the error is the cluster's, not "not answering".
has 'cluster KV' <<<"$out" && ! has 'integrator service is not answering' <<<"$out" \
  || fail "kv list on A with its nats-server stopped said: $out"
wait_for 60 bash -c "kvlist | jq -e '.keys | index(\"o1\")' >/dev/null" \
  || fail "kv list on A after its nats-server went on: $(kvlist 2>&1)"
pass "kv list on A while its nats-server is stopped fails ($(tail -n 1 <<<"$out")); o1 listed again once it goes on"
