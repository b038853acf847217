#!/usr/bin/env bash
# Benchmark: idle memory of a cluster member (issue 17). The same node
# config run as a single node (no cluster: SQLite data plane, no
# nats-server) and as member A of a three-member cluster (`alpharen run`
# in network namespaces, like tests/e2e/cluster.sh; each member runs its
# nats-server with JetStream, buckets and queues at three replicas),
# alternating, RUNS times. After SETTLE seconds idle, SAMPLES samples 2 s
# apart of the PSS summed over the node's whole process tree (alpharen,
# its services, the integrator's workers and, clustered, nats-server),
# and nats-server's own share. Each node runs its own copies of alpharen
# and nats-server, as on a machine of its own: PSS splits a file's pages
# between every process that maps it, so members running the same files
# would each count a third of them. Medians, spread and the ratio. Not
# pass/fail; errors are fatal.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../cluster-lib.sh"
[ "$(id -u)" = 0 ] || fail "run as root: the members run in network namespaces"
trap "exit 1" TERM INT
SETTLE=${SETTLE:-30}
SAMPLES=${SAMPLES:-3}
load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "load average at start: $(load)"

# pss PID...: the PSS (KiB) of the processes and all their descendants.
pss() {
  python3 - "$@" <<'PY'
import os, sys
kids = {}
for p in os.listdir('/proc'):
    if p.isdigit():
        try:
            ppid = int(open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[1])
        except OSError:
            continue
        kids.setdefault(ppid, []).append(int(p))
todo, total = [int(a) for a in sys.argv[1:]], 0
while todo:
    p = todo.pop()
    todo += kids.get(p, [])
    try:
        total += int(next(l for l in open(f'/proc/{p}/smaps_rollup') if l.startswith('Pss:')).split()[1])
    except (OSError, StopIteration):
        pass  # gone or a kernel thread
print(total)
PY
}
# stop NODE...: the nodes' trees, then their state.
stop() {
  local n
  for n in "$@"; do kill "${PID[$n]}"; done
  for n in "$@"; do
    wait "${PID[$n]}" 2>/dev/null
    wait_for 20 bash -c "! pgrep -f '$W/${n,,}( |/|\$)' >/dev/null" || kill_tree "$n"
    rm -rf "${W:?}/${n,,}"
  done
}
# sample LABEL: SAMPLES samples of A's tree into $OUT/cluster-idle.txt.
sample() {
  local nats
  sleep "$SETTLE"
  for _ in $(seq 1 "$SAMPLES"); do
    nats=$(nats_of A || true)
    if [ "$1" = clustered ]; then
      [ -n "$nats" ] || fail "A runs no nats-server"
      [ "$(readlink "/proc/$nats/exe")" = "$W/bin-a/nats-server" ] || fail "A's nats-server is not its own copy"
    else
      [ -z "$nats" ] || fail "the single node runs nats-server"
    fi
    echo "$1 tree $(pss "${PID[A]}")" >>"$OUT/cluster-idle.txt"
    [ -z "$nats" ] || echo "$1 nats $(pss "$nats")" >>"$OUT/cluster-idle.txt"
    sleep 2
  done
}

cluster_net A B C
for n in A B C; do
  mkdir -p "$W/bin-${n,,}"
  { cp "$ALPHAREN" "$W/bin-${n,,}/alpharen" && cp "$(command -v nats-server)" "$W/bin-${n,,}/nats-server"; } || fail "copy the binaries for $n"
done
# node NODE: start NODE on its own copies.
node() { ALPHAREN=$W/bin-${1,,}/alpharen ALPHAREN_NATS_SERVER=$W/bin-${1,,}/nats-server start "$1"; }
for n in A B C; do
  member_config $n <<'TOML'
[integrator]
tls = "off"
workers = 2
TOML
done
: >"$OUT/cluster-idle.txt"
for r in $(seq 1 "$RUNS"); do
  node A
  sample single
  stop A
  node A; node B; node C
  cluster_form A B C
  sample clustered
  stop A B C
  echo "run $r done; load average $(load)"
done
values() { awk -v l="$1" -v k="$2" '$1 == l && $2 == k {print $3}' "$OUT/cluster-idle.txt"; }
# shellcheck disable=SC2046 # the lists split into values on purpose
{
  echo "== idle PSS of the whole tree, KiB, $RUNS runs × $SAMPLES samples each, alternating; load average at the end: $(load)"
  echo "single node:          $(stats $(values single tree))"
  echo "cluster member (of 3): $(stats $(values clustered tree)); of which nats-server $(stats $(values clustered nats))"
  echo "ratio clustered/single (medians): $(ratio "$(median $(values clustered tree))" "$(median $(values single tree))")"
}
