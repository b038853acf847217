#!/usr/bin/env bash
# Benchmark: the integrator through :11223 (ARLDB) on a cluster of one
# member against a cluster of three, and against Node-RED, on
# tests/bench/integrator.sh's work (GetUserDetails, no auth, plain HTTP;
# Node-RED with the same flow). Every side in its own network namespaces
# on one bridge, `wrk -t2 -c32 -d15s --latency` from a client namespace:
# O (a cluster of one), A of A+B+C (A balances over the three), Node-RED
# (one process). RUNS rounds, each round one run of every side in turn.
# Prints medians, spread, the scale factor (three / one), ratios to
# Node-RED, how the three members shared the calls, CPU per request and
# the load average. All members share this machine's cores: three
# members cannot be faster than the cores they share. Not pass/fail, but
# a wrk error or failed command stops it. Root (network namespaces).
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/cluster-lib.sh"
DURATION=${BENCH_DURATION:-15s}
command -v wrk >/dev/null || fail "wrk missing (scripts/deps.sh installs it)"
node_red_install

# O alone; A, B, C together; R runs Node-RED; X runs wrk.
cluster_net O A B C R X
start_members O A B C <<TOML
[integrator]
# Plain HTTP, as Node-RED is measured: the channel, not TLS.
tls = "off"
[[integrator.channels]]
name = "open.user.get"
url_path = "/open/user/get-details"
service = "api.user.get-details"
TOML
cluster_init O one
cluster_form A B C
for n in O A; do c $n integrator deploy "$ROOT/tests/e2e/integrator/get_user_details.py" >/dev/null || fail "deploy on $n"; done
# balancing NODE WANT: NODE's balancer has the healthy servers WANT.
balancing() { [ "$(c "$1" --json integrator status | jq -c '[.servers[] | select(.healthy) | .node] | sort')" = "$2" ]; }
wait_for 60 balancing A '["b","c"]' || { c A --json integrator status | jq .servers; fail "A's balancer does not have b and c"; }
wait_for 10 balancing O '[]' || fail "O balances over other servers"
URL_S=http://${IP[O]}:11223/open/user/get-details
URL_A=http://${IP[A]}:11223/open/user/get-details
for n in B C; do
  wait_for 30 ip netns exec "${NS[X]}" curl -sf "http://${IP[$n]}:11223/open/user/get-details" \
    || fail "$n does not answer GetUserDetails (deployed on A)"
done

NR_DIR=$W/node-red
node_red_flow "$NR_DIR" "${IP[R]}" 1880
ip netns exec "${NS[R]}" "$NODE_RED" --settings "$NR_DIR/settings.js" --userDir "$NR_DIR" >"$OUT/node-red-cluster.log" 2>&1 &
NR_PID=$!
on_exit "kill $NR_PID 2>/dev/null; wait $NR_PID 2>/dev/null"
URL_R=http://${IP[R]}:1880/api/user/get-details
wait_for 60 ip netns exec "${NS[X]}" curl -sf "$URL_R" || { tail "$OUT/node-red-cluster.log"; fail "Node-RED did not start"; }
for u in "$URL_S" "$URL_A" "$URL_R"; do
  ip netns exec "${NS[X]}" curl -sf "$u" | jq -e '.user_name == "John Doe"' >/dev/null || fail "$u does not answer GetUserDetails"
done

# cpu_ticks PID...: user + system clock ticks of PIDs and their threads so far.
cpu_ticks() { local p t=0; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $t; }
# tree PID...: PIDs and all their descendants.
tree() { local p; for p in "$@"; do echo "$p"; tree $(pgrep -P "$p"); done; }
# pids_of SIDE: the processes doing a side's work (nodes with every
# service, worker and nats-server; Node-RED).
pids_of() {
  case $1 in
    solo) tree "${PID[O]}" ;;
    trio) tree "${PID[A]}" "${PID[B]}" "${PID[C]}" ;;
    nr) tree "$NR_PID" ;;
  esac
}
# calls NODE: GetUserDetails calls NODE's integrator served itself.
calls() { c "$1" --json integrator stats | jq '[.. | objects | select(.service? == "api.user.get-details") | .calls] | add // 0'; }
calls_before=$(for n in A B C; do calls $n; done | tr '\n' ' ')
WRK_NETNS=${NS[X]}
declare -A rps=() p99=() cpu=()
loads=()
sleep 2
for i in $(seq 1 "$RUNS"); do
  for side in solo trio nr; do
    case $side in solo) url=$URL_S ;; trio) url=$URL_A ;; nr) url=$URL_R ;; esac
    loads+=("$(cut -d' ' -f1 /proc/loadavg)")
    mapfile -t pids < <(pids_of $side)
    t0=$(cpu_ticks "${pids[@]}")
    wrk_run "$OUT/wrk-cluster-$side-$i.txt" -t2 -c32 -d"$DURATION" "$url"
    t1=$(cpu_ticks "${pids[@]}")
    reqs=$(awk '/requests in/ {print $1}' "$OUT/wrk-cluster-$side-$i.txt")
    rps[$side]+="$WRK_RPS "; p99[$side]+="$WRK_P99_MS "
    cpu[$side]+="$(python3 -c "import os, sys; print(f'{(int(sys.argv[2]) - int(sys.argv[1])) / os.sysconf(\"SC_CLK_TCK\") / int(sys.argv[3]) * 1e6:.1f}')" "$t0" "$t1" "$reqs") "
    echo "round $i $side: $WRK_RPS req/s, p99 $WRK_P99_MS ms (load average ${loads[-1]})"
  done
done
calls_after=$(for n in A B C; do calls $n; done | tr '\n' ' ')
share=$(python3 -c '
import sys
b = [int(x) for x in sys.argv[1].split()]; a = [int(x) for x in sys.argv[2].split()]
d = [y - x for x, y in zip(b, a)]; t = sum(d) or 1
print(", ".join(f"{n} {100 * v / t:.0f}%" for n, v in zip("abc", d)))' "$calls_before" "$calls_after")

echo "load average (1 min) over the runs: $(stats "${loads[@]}")"
for side in solo trio nr; do
  case $side in solo) what="1 member (O)        " ;; trio) what="3 members (A of A+B+C)" ;; nr) what="Node-RED            " ;; esac
  # shellcheck disable=SC2086
  echo "$what req/s $(stats ${rps[$side]}); p99 ms $(stats ${p99[$side]}); µs CPU per request $(stats ${cpu[$side]})"
done
# shellcheck disable=SC2086
{ m1=$(median ${rps[solo]}); m3=$(median ${rps[trio]}); mn=$(median ${rps[nr]}); }
echo "calls served on the three members: $share"
echo "scale factor req/s 3 members / 1 member: $(ratio "$m3" "$m1")x ($(nproc) cores shared by all members and wrk)"
echo "ratio req/s vs Node-RED: 1 member $(ratio "$m1" "$mn")x, 3 members $(ratio "$m3" "$mn")x"
