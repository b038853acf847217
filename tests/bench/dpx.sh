#!/usr/bin/env bash
# Authoritative DNS queries per second of the dpx service vs NSD and Knot,
# same run, same zone, same client (dnsperf), each server on 127.0.0.1
# with WORKERS UDP workers, default 1 (ours: udp_workers; NSD
# server-count; Knot udp-workers, and one TCP worker). For each zone size in SIZES (names
# hN with an A record, plus SOA, NS, the node's A, the discovery SRV, a
# CNAME, MX and TXT), three query mixes:
#   mixed:    80% existing A, 10% other types, 10% NXDOMAIN (a file of
#             100,000 queries, repeated while the run lasts);
#   distinct: every name of the zone once, shuffled (repeated; on a large
#             zone more than our answer cache holds);
#   nx-half:  half existing A, half NXDOMAIN names that never repeat (the
#             file is longer than a run, and read once);
#   nx:       only NXDOMAIN names that never repeat (a random-subdomain
#             flood; read once), not in the default MIXES.
# RUNS runs of each server per mix, interleaved: medians, spread, ratios
# of the medians. Not a pass/fail test, but a failed dnsperf or command
# stops it.
#   RUNS=3 SECS=10 SIZES="1000 100000" MIXES="mixed distinct nx-half" WORKERS=1 tests/bench/dpx.sh
#   RUNS=3 SECS=8 MIXES=nx tests/bench/dpx.sh   # NXDOMAIN alone, per zone size
. "$(dirname "$0")/lib.sh"
SECS=${SECS:-10}; SIZES=${SIZES:-1000 100000}; MIXES=${MIXES:-mixed distinct nx-half}; WORKERS=${WORKERS:-1}
[[ $WORKERS =~ ^[1-9][0-9]*$ ]] || fail "WORKERS must be a positive number, not '$WORKERS'"
for t in dnsperf nsd knotd dig; do
  command -v $t >/dev/null || fail "$t missing (scripts/deps.d/dpx.list; scripts/deps.sh)"
done
for m in $MIXES; do
  case $m in mixed | distinct | nx-half | nx) ;; *) fail "unknown mix $m (mixed, distinct, nx-half, nx)" ;; esac
done
W=$(mktemp -d /tmp/dpx-bench.XXXXXX); chmod 755 "$W"  # the services run as their own users
on_exit "rm -rf $W"
# bg CMD...: CMD in the background, stopped at exit or by stop_servers.
SERVERS=()
bg() { "$@" & SERVERS+=($!); on_exit "kill $! 2>/dev/null; wait $! 2>/dev/null"; }
stop_servers() {
  local p
  for p in "${SERVERS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null || true; done
  SERVERS=()
}
ZONE=bench.test.

# perf PORT QUERIES LOG [DNSPERF-ARGS...]: one dnsperf run; sets QPS and LOST.
perf() {
  local port=$1 queries=$2 log=$3; shift 3
  dnsperf -s 127.0.0.1 -p "$port" -d "$queries" -l "$SECS" -c 4 -q 200 -t 2 "$@" >"$log" 2>&1 \
    || { cat "$log"; fail "dnsperf on port $port exited $?"; }
  QPS=$(awk '/Queries per second/ {print $4}' "$log"); LOST=$(awk '/Queries lost/ {print $3}' "$log")
  [ -n "$QPS" ] && [ -n "$LOST" ] || { cat "$log"; fail "dnsperf on port $port: no result"; }
}
up() { dig @127.0.0.1 -p "$1" +short +time=1 +tries=1 "h1.$ZONE" A | has .; }

for RECORDS in $SIZES; do
[[ $RECORDS =~ ^[1-9][0-9]*$ ]] || fail "SIZES must be positive numbers, not '$RECORDS'"
D=$W/$RECORDS; mkdir -p "$D"
read -r OUR NSD KNOT HTTPS HTTP SSH SMTP LB < <(free_ports 8)

# --- the zone, once as our config and once as a zone file; the queries ------
# nx-half: long enough that no name repeats within a run at 300 k qps.
/usr/bin/python3 - "$D" "$ZONE" "$RECORDS" "$((SECS * 300000))" "$WORKERS" "$OUR" "$HTTPS" "$HTTP" "$SSH" "$SMTP" "$LB" "$MIXES" <<'PY'
import random, sys
w, zone, n, nx_lines, workers, our, https, http, ssh, smtp, lb, mixes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), *sys.argv[5:]
mixes = mixes.split()
recs = [(f"h{i}", "A", f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}") for i in range(n)]
recs += [("www", "CNAME", "h0"), ("@", "MX", "10 h1"), ("@", "TXT", "v=spf1 -all")]
with open(f"{w}/seed.toml", "w") as f:
    f.write(f'[node]\nhostname = "ns1"\n[web]\nhttps_port = {https}\nhttp_port = {http}\n[ssh]\nport = {ssh}\n'
            f'[mail.listen]\nport = {smtp}\n[integrator]\nport = {lb}\n[dpx]\nzone = "{zone}"\nport = {our}\n'
            f'udp_workers = {workers}\n')
    for name, t, v in recs:
        f.write(f'[[dpx.records]]\nname = "{name}"\ntype = "{t}"\nvalue = "{v}"\n')
with open(f"{w}/zone", "w") as f:
    f.write(f"$ORIGIN {zone}\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 60\n@ NS ns1\nns1 A 127.0.0.1\n"
            f"_arsrv._tcp SRV 0 0 {lb} ns1\n")
    for name, t, v in recs:
        f.write(f'{name} {t} {chr(34) + v + chr(34) if t == "TXT" else v}\n')
rnd = random.Random(1)
with open(f"{w}/mixed", "w") as f:
    for _ in range(100000):
        r = rnd.random()
        if r < 0.8:
            f.write(f"h{rnd.randrange(n)}.{zone} A\n")
        elif r < 0.85:
            f.write(f"www.{zone} A\n")
        elif r < 0.9:
            f.write(f"{zone} {rnd.choice(['MX', 'TXT', 'NS', 'SOA'])}\n")
        else:
            f.write(f"nx{rnd.randrange(10**6)}.{zone} A\n")
order = list(range(n))
rnd.shuffle(order)
with open(f"{w}/distinct", "w") as f:
    f.writelines(f"h{i}.{zone} A\n" for i in order)
with open(f"{w}/nx-half", "w") as f:
    f.writelines(f"h{rnd.randrange(n)}.{zone} A\n" if i % 2 else f"nx{i}-{rnd.randrange(10**9)}.{zone} A\n"
                 for i in range(nx_lines))
if "nx" in mixes:
    with open(f"{w}/nx", "w") as f:
        f.writelines(f"nx{i}-{rnd.randrange(10**9)}.{zone} A\n" for i in range(nx_lines))
PY
# --- ours ------------------------------------------------------------------
bg "$ALPHAREN" run --state-dir "$D/node" --dev --config "$D/seed.toml" >"$D/node.log" 2>&1
# --- NSD -------------------------------------------------------------------
mkdir -p "$D/nsd"
cat >"$D/nsd/nsd.conf" <<CONF
server:
  ip-address: 127.0.0.1@$NSD
  server-count: $WORKERS
  username: ""
  chroot: ""
  zonesdir: "$D"
  database: ""
  zonelistfile: "$D/nsd/zone.list"
  xfrdfile: "$D/nsd/xfrd.state"
  xfrdir: "$D/nsd"
  pidfile: "$D/nsd/nsd.pid"
  hide-version: yes
  verbosity: 0
  # Debian builds NSD with response rate limiting on; nothing else has it.
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: "$ZONE"
  zonefile: "$D/zone"
CONF
bg nsd -d -c "$D/nsd/nsd.conf" >"$D/nsd.log" 2>&1
# --- Knot ------------------------------------------------------------------
mkdir -p "$D/knot"
cat >"$D/knot/knot.conf" <<CONF
server:
  listen: 127.0.0.1@$KNOT
  rundir: "$D/knot"
  udp-workers: $WORKERS
  tcp-workers: 1
  background-workers: 1
database:
  storage: "$D/knot"
log:
  - target: stderr
    any: error
zone:
  - domain: $ZONE
    file: "$D/zone"
    journal-content: none
    zonefile-load: whole
CONF
bg knotd -c "$D/knot/knot.conf" >"$D/knot.log" 2>&1

# A large zone takes a while to load (ours: config validation, the store).
wait_for 300 up "$OUR" || { cat "$D/node.log"; fail "dpx did not come up"; }
wait_for 300 up "$NSD" || { cat "$D/nsd.log"; fail "nsd did not come up"; }
wait_for 300 up "$KNOT" || { cat "$D/knot.log"; fail "knot did not come up"; }
# Same answers from all three for a few names, and the same NXDOMAIN.
for q in "h7.$ZONE A" "www.$ZONE A" "$ZONE MX" "_arsrv._tcp.$ZONE SRV"; do
  a=$(dig @127.0.0.1 -p "$OUR" +short $q | sort); b=$(dig @127.0.0.1 -p "$NSD" +short $q | sort); c=$(dig @127.0.0.1 -p "$KNOT" +short $q | sort)
  [ "$a" = "$b" ] && [ "$a" = "$c" ] || fail "answers differ for $q: ours=[$a] nsd=[$b] knot=[$c]"
done
for p in "$OUR" "$NSD" "$KNOT"; do
  dig @127.0.0.1 -p "$p" "nx-check.$ZONE" A | has 'status: NXDOMAIN' || fail "no NXDOMAIN from port $p"
done

for MIX in $MIXES; do
  args=(); case $MIX in nx-half | nx) args=(-n 1) ;; esac
  declare -A qps=() lost=()
  for i in $(seq 1 "$RUNS"); do
    for s in OUR NSD KNOT; do
      perf "${!s}" "$D/$MIX" "$D/perf-$MIX-$s-$i.log" "${args[@]}"; qps[$s]+=" $QPS"; lost[$s]+=" $LOST"
    done
  done
  echo "== zone of $((RECORDS + 7)) records, mix $MIX: dnsperf ${SECS}s, 4 clients x 200 outstanding, $WORKERS UDP worker(s) each, $RUNS runs"
  for s in OUR NSD KNOT; do
    # shellcheck disable=SC2086 # the lists split into values on purpose
    a=$(stats ${qps[$s]}); printf '%-5s qps %s; lost per run:%s\n' "${s,,}" "$a" "${lost[$s]}"
  done
  # shellcheck disable=SC2086
  a=$(ratio "$(median ${qps[OUR]})" "$(median ${qps[NSD]})"); b=$(ratio "$(median ${qps[OUR]})" "$(median ${qps[KNOT]})")
  echo "ratio ours / nsd (medians):  $a"
  echo "ratio ours / knot (medians): $b"
done
stop_servers
rm -rf "$D"
done
