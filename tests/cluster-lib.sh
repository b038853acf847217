# Cluster test helpers: nodes (`alpharen run`, each supervising its own
# nats-server) in network namespaces on one bridge. Source it after
# tests/lib.sh:
#   cluster_net A B C        namespaces and addresses (10.67.0.1, .2, ...)
#   start A                  A's node, waits for its control socket
#   cluster_form A B C       init on A, join the rest, wait until they agree
#   c A ARGS..., st A        ctl on A; A's `cluster status` as JSON
#   lb_load_start NS N URL.. load on :11223 from namespace NS (lb_* below)
#   nats_reference A B C     the benches' plain nats-servers beside the members'
# Sets W (work dir), IP, NS, PID, TOKEN.
# The members run the nats-server the cluster service finds first:
# scripts/deps.sh puts Debian forky's there.
. "$ROOT/scripts/nats-server.sh"
nats_host_ok || fail "nats-server >= $NATS_MIN_VERSION missing at $NATS_HOST (scripts/deps.sh)"
command -v jq >/dev/null || fail "jq missing (scripts/deps.sh)"

SFX=$$
NS_S=cl-s-$SFX
declare -A IP=() NS=() PID=()
W=$(mktemp -d /tmp/cluster.XXXXXX); on_exit "rm -rf $W"
chmod 711 "$W"   # services run as their own users and reach the state dirs in it

# cluster_net NODE...: a namespace per node, with eth0 on one bridge.
cluster_net() {
  local n i=0
  ip netns add $NS_S; on_exit "ip netns del $NS_S"
  ip netns exec $NS_S ip link add br0 type bridge
  ip netns exec $NS_S ip link set br0 up
  for n in "$@"; do
    i=$((i + 1))
    IP[$n]=10.67.0.$i
    NS[$n]=cl-${n,,}-$SFX
    ip netns add "${NS[$n]}"; on_exit "ip netns del ${NS[$n]}"
    ip link add eth0 netns "${NS[$n]}" type veth peer name "p$n" netns $NS_S
    ip netns exec $NS_S ip link set "p$n" master br0 up
    ip netns exec "${NS[$n]}" ip link set lo up
    ip netns exec "${NS[$n]}" ip addr add "${IP[$n]}/24" dev eth0
    ip netns exec "${NS[$n]}" ip link set eth0 up
  done
}

# start NODE: a node's own ports inside its namespace (not --dev), links left alone.
start() {
  local n=$1 dir=$W/${1,,}
  mkdir -p "$dir"
  [ -e "$W/$n.toml" ] || member_config "$n" </dev/null
  local seen=0
  if [ -e "$dir/console.log" ]; then seen=$(wc -l <"$dir/console.log"); fi
  ip netns exec "${NS[$n]}" "$ALPHAREN" run --state-dir "$dir" --config "$W/$n.toml" >>"$dir/console.log" 2>&1 &
  PID[$n]=$!
  [[ " ${_node_dirs[*]} " == *" $dir "* ]] || _node_dirs+=("$dir")
  on_exit "kill ${PID[$n]} 2>/dev/null; wait ${PID[$n]} 2>/dev/null"
  # The control socket answers before the services do (CI-18 asked a
  # vpn service too early, CI-19 a cluster member): wait for this run's
  # "ready" line, every built-in service serving.
  wait_for 60 bash -c "tail -n +$((seen + 1)) '$dir/console.log' | grep -q '^alpharen: ready: every service is serving'" ||
    { tail -n +$((seen + 1)) "$dir/console.log"; fail "node $n: its services were not all serving after 60 s"; }
}
# member_config NAME: writes $W/NAME.toml: the member's host name, its
# network left alone, then what comes on stdin.
member_config() { { printf '[node]\nhostname = "%s"\n[network]\nmanage = false\n' "${1,,}"; cat; } >"$W/$1.toml"; }
# start_members NODE...: each NODE started (start) with member_config and
# the same TOML, read once from stdin.
start_members() {
  local n toml
  toml=$(cat)
  for n in "$@"; do
    member_config "$n" <<<"$toml"
    start "$n"
  done
}
c() { local n=$1; shift; "$ALPHAREN" ctl --state-dir "$W/${n,,}" "$@"; }
st() { c "$1" --json cluster status; }
nats_of() { pgrep -f "$W/${1,,}/cluster/nats[.]conf"; }

# kill_tree NODE: kill -9 of NODE's supervisor and every process of its
# state dir, as a power cut would.
kill_tree() {
  kill -9 "${PID[$1]}"
  # Its services may have died with it already (nothing left: pkill's 1);
  # the wait below checks that none is left.
  pkill -9 -f "$W/${1,,}( |/|\$)" || [ $? = 1 ]
  wait_for 10 bash -c "! pgrep -f '$W/${1,,}( |/|\$)' >/dev/null" || fail "$1's processes survived kill -9"
}

# agree NODE...: every NODE lists exactly NODE... up and the same meta leader.
agree() {
  local n want
  want=$(printf '"%s",' "${@,,}"); want="[${want%,}]"
  for n in "$@"; do
    st $n | jq -e "[.members[] | select(.state == \"up\") | .node] == $want and .jetstream.meta_leader != null and .jetstream.mode == \"cluster\"" >/dev/null || return 1
  done
  [ "$(for n in "$@"; do st $n | jq -r .jetstream.meta_leader; done | sort -u | wc -l)" = 1 ]
}

# cluster_init NODE NAME: init on NODE; sets TOKEN.
cluster_init() {
  local out
  out=$(c "$1" cluster init "$2") || fail "cluster init on $1: $out"
  TOKEN=$(grep -o 'arc1\.[^ ]*' <<<"$out") || fail "no token in: $out"
}

# nats_warnings NODE...: the last warnings and errors of each member's
# nats-server (its lines in the cluster log), for a failure's evidence.
nats_warnings() {
  local n
  for n in "$@"; do echo "--- nats-server on $n"; c "$n" logs cluster | grep -E "\[(WRN|ERR)\]" | tail -12; done
}

# cluster_form FIRST OTHER...: init on FIRST (cluster "lab"), the others
# join, and all agree.
cluster_form() {
  local first=$1 n
  cluster_init "$first" lab
  shift
  for n in "$@"; do c "$n" cluster join "$TOKEN" >/dev/null || fail "$n did not join"; done
  wait_for 90 agree "$first" "$@" || { for n in "$first" "$@"; do st $n; c $n logs cluster | grep -v "INF\]" | tail -8; done; fail "the members do not agree on $first $* and one leader"; }
}

# lan_pair A B: two "LANs" of one node each, A on 10.67.1.1 and B on
# 10.67.2.1 (each on a veth lan0 whose peer stays in its namespace, with
# no route to the other), and a
# veth underlay between them (10.98.0.1 and .2, interface wan0) that is
# meant to carry only their ARVPN. Sets IP, NS.
lan_pair() {
  local n i=0
  for n in "$@"; do
    i=$((i + 1))
    IP[$n]=10.67.$i.1
    NS[$n]=cl-${n,,}-$SFX
    ip netns add "${NS[$n]}"; on_exit "ip netns del ${NS[$n]}"
    ip netns exec "${NS[$n]}" ip link set lo up
    ip netns exec "${NS[$n]}" ip link add lan0 type veth peer name lan0p
    ip netns exec "${NS[$n]}" ip addr add "${IP[$n]}/24" dev lan0
    ip netns exec "${NS[$n]}" ip link set lan0p up
    ip netns exec "${NS[$n]}" ip link set lan0 up
  done
  ip link add wan0 netns "${NS[$1]}" type veth peer name wan0 netns "${NS[$2]}"
  ip -n "${NS[$1]}" addr add 10.98.0.1/24 dev wan0; ip -n "${NS[$2]}" addr add 10.98.0.2/24 dev wan0
  ip -n "${NS[$1]}" link set wan0 up; ip -n "${NS[$2]}" link set wan0 up
}

# all_r3 NODE STREAM...: whether NODE's nats-server has every STREAM at
# three replicas (`wait_for 45 all_r3 A KV_ar_kv`).
all_r3() {
  local n=$1; shift
  ip netns exec "${NS[$n]}" curl -sf "http://127.0.0.1:8222/jsz?streams=true&config=true" \
    | jq -e --args '[.account_details[].stream_detail[] | select(.name | IN($ARGS.positional[])) | .config.num_replicas]
      | length == ($ARGS.positional | length) and all(. == 3)' "$@" >/dev/null
}

# nats_reference NODE...: the benches' reference, plain nats-servers in the
# members' namespaces beside theirs (client port CP=14222 on loopback,
# routes on RP with mutual TLS like the members', `sync_interval: always`
# like theirs), one cluster; waits until it has a meta leader.
nats_reference() {
  local n m d routes
  CP=14222 RP=16222 MP=18222
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=ref-ca \
    -keyout "$W/ref-ca.key" -out "$W/ref-ca.pem" 2>/dev/null || fail "reference CA"
  for n in "$@"; do
    d=$W/ref-${n,,}; mkdir -p "$d"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=ref-${n,,}" \
      -keyout "$d/node.key" -out "$d/node.csr" 2>/dev/null || fail "reference key $n"
    openssl x509 -req -in "$d/node.csr" -CA "$W/ref-ca.pem" -CAkey "$W/ref-ca.key" -CAcreateserial -days 1 \
      -extfile <(printf 'subjectAltName=IP:%s\nextendedKeyUsage=serverAuth,clientAuth\n' "${IP[$n]}") \
      -out "$d/node.pem" 2>/dev/null || fail "reference certificate $n"
    routes=$(for m in "$@"; do [ "$m" = "$n" ] || printf '"nats-route://%s:%s", ' "${IP[$m]}" $RP; done)
    cat >"$d/nats.conf" <<CONF
server_name: ref-${n,,}
listen: 127.0.0.1:$CP
http: 127.0.0.1:$MP
jetstream { store_dir: "$d/js", max_memory_store: 64MB, max_file_store: 2GB, sync_interval: always }
cluster {
  name: ref
  listen: ${IP[$n]}:$RP
  routes: [${routes%, }]
  tls { cert_file: "$d/node.pem", key_file: "$d/node.key", ca_file: "$W/ref-ca.pem", verify: true, timeout: 5 }
}
CONF
    ip netns exec "${NS[$n]}" nats-server -c "$d/nats.conf" >"$d/nats.log" 2>&1 &
    on_exit "kill $! 2>/dev/null"
  done
  _ref_size=$# _ref_first=$1
  wait_for 60 _ref_ready || { cat "$W/ref-${1,,}/nats.log"; fail "the reference nats-servers did not form a cluster"; }
}
_ref_ready() { ip netns exec "${NS[$_ref_first]}" curl -sf "http://127.0.0.1:$MP/jsz" | jq -e --argjson n "$_ref_size" '.meta_cluster.leader != null and (.meta_cluster.cluster_size // 0) == $n' >/dev/null; }

# Load through the balancers, for draining and joining under load.
# lb_load_start NS NAME URL [NAME URL]...: one client per NAME in the
# namespace NS, each sending GET URL one after the other until
# lb_load_stop; every answer is a line "PHASE CODE SERVER" in
# $W/load.NAME (PHASE as lb_phase set it when the request started,
# SERVER from x-alpharen-served-by); a request curl could not complete
# adds its exit code and error.
lb_load_start() {
  local ns=$1 name url; shift
  lb_phase before
  LB_LOADERS=()
  while [ $# -ge 2 ]; do
    name=$1 url=$2; shift 2
    ip netns exec "$ns" bash -c "for _ in \$(seq 20000); do [ -e '$W/stop' ] && break; p=\$(cat '$W/phase'); r=\$(curl -sSk -o /dev/null --max-time 40 -w '%{http_code} %header{x-alpharen-served-by}' '$url' 2>'$W/err.$name'); rc=\$?; if [ \$rc = 0 ]; then echo \"\$p \$r\"; else echo \"\$p \$r curl-exit=\$rc \$(tr '\\n' ' ' <'$W/err.$name')\"; fi; done" >"$W/load.$name" 2>&1 &
    LB_LOADERS+=($!)
    on_exit "kill $! 2>/dev/null"
  done
}
# lb_phase PHASE: the phase the next requests are counted in (renamed
# into place: a client never reads a half-written file).
lb_phase() { echo "$1" >"$W/phase.new" && mv "$W/phase.new" "$W/phase"; }
# lb_served PHASE SERVER [NAME]: answers 200 from SERVER in PHASE (to the
# client NAME, else to all).
lb_served() { cat "$W"/load.${3:-*} | grep -c "^$1 200 $2\$" || [ $? = 1 ]; }
# lb_load_stop: stops the clients and waits for them.
lb_load_stop() { local j; touch "$W/stop"; for j in "${LB_LOADERS[@]}"; do wait "$j"; done; }
# lb_failed: the lines of requests that did not answer 200 from a member.
lb_failed() { cat "$W"/load.* | awk '!/^[a-z]+ 200 [a-z]+$/'; }
# lb_summary: "PHASE SERVER×COUNT; " for every phase and server.
lb_summary() { cat "$W"/load.* | sort | uniq -c | awk '{printf "%s %s×%s; ", $2, $4, $1}'; }
