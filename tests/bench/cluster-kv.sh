#!/usr/bin/env bash
# Benchmark of listing a namespace of the cluster's KV: three members
# (`alpharen run` in network namespaces on one bridge, the KV bucket at
# three replicas) vs a JetStream KV bucket at three replicas on three
# plain nats-servers in the same namespaces (tests/cluster-lib.sh
# nats_reference), both filled with the same keys (k000000...) and values
# (about 120 bytes of JSON). Ours: a service on A lists the namespace's
# keys (`self.kv.ns(ns).keys()`: live keys only, so every value is read
# for its expiry), timed inside the worker; theirs: on A, what nats-py's
# `keys()` does (names only: headers, no values), timed inside its
# process (tests/bench/nats_kv_keys.py says why not `keys()` itself). At each
# size of SIZES (filled in turn, so each size holds the previous), RUNS
# listings of each side, interleaved; medians, spread, ratios. Not
# pass/fail; errors (a listing that fails or misses keys) are fatal.
#   RUNS=5 SIZES="1000 10000" tests/bench/cluster-kv.sh
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../cluster-lib.sh"
HERE=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || fail "run as root: the members run in network namespaces"
command -v openssl >/dev/null || fail "openssl missing"
trap "exit 1" TERM INT
SIZES=${SIZES:-1000 10000}
for s in $SIZES; do
  [[ $s =~ ^[1-9][0-9]*$ ]] && [ "$s" -le 10000 ] || fail "SIZES are numbers of keys up to 10000 (a listing's limit), not '$s'"
done
load() { cut -d' ' -f1-3 /proc/loadavg; }
venv=$OUT/nats-venv
py_venv "$venv" nats nats-py

cluster_net A B C
start_members A B C <<TOML
[integrator]
tls = "off"
timeout = 600
TOML
cluster_form A B C
wait_for 45 all_r3 A KV_ar_kv || fail "the KV did not go to three replicas"
wait_for 60 c A integrator deploy "$HERE/bench/cluster/kv_bench.py" || { c A integrator deploy "$HERE/bench/cluster/kv_bench.py"; fail "deploy the bench services on A"; }
nats_reference A B C
echo "cluster of 3 formed, KV at R3; reference: 3 nats-servers ($(nats-server --version)); load average $(load)"

# invoke SERVICE JSON: the service's answer on A.
invoke() {
  local out
  out=$(c A --json integrator invoke "$1" "$2") || fail "$1 on A: $out"
  jq -ce '.. | objects | select(has("keys") or has("set"))' <<<"$out" || fail "$1 on A answered: $out"
}
ref() { ip netns exec "${NS[A]}" "$venv/bin/python" "$HERE/bench/nats_kv_keys.py" $CP "$@" || fail "nats_kv_keys.py $*"; }
ms() { python3 -c 'import sys; print(" ".join("%.1f" % (float(x) * 1000) for x in sys.argv[1:]))' "$@"; }
# seconds ANSWER N: the listing's time, once it is sure it listed N keys.
seconds() { jq -e --argjson n "$2" 'select(.keys == $n) | .seconds' <<<"$1" || fail "a listing of $2 keys answered $1"; }

have=0
for size in $SIZES; do
  [ "$size" -gt "$have" ] || fail "SIZES must grow, not $SIZES"
  invoke kvb.fill "{\"ns\": \"bulk\", \"start\": $have, \"end\": $size}" >/dev/null
  ref fill "$have" "$size" >/dev/null
  have=$size
  ours=() theirs=()
  # Assigned one by one, so that a failed helper stops the bench (set -e).
  for _ in $(seq 1 "$RUNS"); do
    a=$(invoke kvb.list '{"ns": "bulk"}'); a=$(seconds "$a" "$size"); ours+=("$a")
    a=$(ref list); a=$(seconds "$a" "$size"); theirs+=("$a")
  done
  # shellcheck disable=SC2046 # the lists split into values on purpose
  a=$(stats $(ms "${ours[@]}")); b=$(stats $(ms "${theirs[@]}"))
  c=$(ratio "$(median "${ours[@]}")" "$(median "${theirs[@]}")")
  echo "== $size keys, $RUNS listings each, interleaved; load average $(load)"
  echo "alpharen  self.kv.ns('bulk').keys() ms $a"
  echo "nats-py   keys() as kv.keys() does  ms $b"
  echo "ratio alpharen/nats-py (medians, lower is faster): $c"
done
