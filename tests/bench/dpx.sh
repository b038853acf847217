#!/usr/bin/env bash
# Authoritative DNS queries per second of the dpx service vs NSD and Knot,
# same run, same zone, same client (dnsperf), each server on 127.0.0.1
# with one UDP worker (ours: the one UDP thread; NSD server-count 1;
# Knot one UDP and one TCP worker). The zone: SOA, NS, the node's A, the
# discovery SRV and RECORDS A records plus a CNAME, MX and TXT; the query
# mix is 80% existing A, 10% other types, 10% NXDOMAIN. RUNS runs of each
# server, interleaved: medians, spread, ratios of the medians. Not a
# pass/fail test, but a failed dnsperf or command stops it.
#   RUNS=3 SECS=10 RECORDS=1000 tests/bench/dpx.sh
. "$(dirname "$0")/lib.sh"
SECS=${SECS:-10}; RECORDS=${RECORDS:-1000}
for t in dnsperf nsd knotd dig; do
  command -v $t >/dev/null || fail "$t missing (scripts/deps.d/dpx.list; scripts/deps.sh)"
done
W=$(mktemp -d /tmp/dpx-bench.XXXXXX)
on_exit "rm -rf $W"
# bg CMD...: CMD in the background, stopped at exit.
bg() { "$@" & on_exit "kill $! 2>/dev/null; wait $! 2>/dev/null"; }
ports() { /usr/bin/python3 -c '
import socket
out = []
while len(out) < '"$1"':
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p)); out.append(p)
    except OSError:
        pass
    u.close(); t.close()
print(*out)'; }
read -r OUR NSD KNOT HTTPS HTTP SSH SMTP LB < <(ports 8)
ZONE=bench.test.

# --- the zone, once as our config and once as a zone file ------------------
/usr/bin/python3 - "$W" "$ZONE" "$RECORDS" "$OUR" "$HTTPS" "$HTTP" "$SSH" "$SMTP" "$LB" <<'PY'
import random, sys
w, zone, n, our, https, http, ssh, smtp, lb = sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:]
recs = [(f"h{i}", "A", f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}") for i in range(n)]
recs += [("www", "CNAME", "h0"), ("@", "MX", "10 h1"), ("@", "TXT", "v=spf1 -all")]
with open(f"{w}/seed.toml", "w") as f:
    f.write(f'[node]\nhostname = "ns1"\n[web]\nhttps_port = {https}\nhttp_port = {http}\n[ssh]\nport = {ssh}\n'
            f'[mail.listen]\nport = {smtp}\n[integrator]\nport = {lb}\n[dpx]\nzone = "{zone}"\nport = {our}\n')
    for name, t, v in recs:
        f.write(f'[[dpx.records]]\nname = "{name}"\ntype = "{t}"\nvalue = "{v}"\n')
with open(f"{w}/zone", "w") as f:
    f.write(f"$ORIGIN {zone}\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 60\n@ NS ns1\nns1 A 127.0.0.1\n"
            f"_arsrv._tcp SRV 0 0 {lb} ns1\n")
    for name, t, v in recs:
        f.write(f'{name} {t} {chr(34) + v + chr(34) if t == "TXT" else v}\n')
rnd = random.Random(1)
with open(f"{w}/queries", "w") as f:
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
PY

# --- ours ------------------------------------------------------------------
bg "$ALPHAREN" run --state-dir "$W/node" --dev --config "$W/seed.toml" >"$W/node.log" 2>&1
# --- NSD -------------------------------------------------------------------
mkdir -p "$W/nsd"
cat >"$W/nsd/nsd.conf" <<CONF
server:
  ip-address: 127.0.0.1@$NSD
  server-count: 1
  username: ""
  chroot: ""
  zonesdir: "$W"
  database: ""
  zonelistfile: "$W/nsd/zone.list"
  xfrdfile: "$W/nsd/xfrd.state"
  xfrdir: "$W/nsd"
  pidfile: "$W/nsd/nsd.pid"
  hide-version: yes
  verbosity: 0
  # Debian builds NSD with response rate limiting on; nothing else has it.
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: "$ZONE"
  zonefile: "$W/zone"
CONF
bg nsd -d -c "$W/nsd/nsd.conf" >"$W/nsd.log" 2>&1
# --- Knot ------------------------------------------------------------------
mkdir -p "$W/knot"
cat >"$W/knot/knot.conf" <<CONF
server:
  listen: 127.0.0.1@$KNOT
  rundir: "$W/knot"
  udp-workers: 1
  tcp-workers: 1
  background-workers: 1
database:
  storage: "$W/knot"
log:
  - target: stderr
    any: error
zone:
  - domain: $ZONE
    file: "$W/zone"
    journal-content: none
    zonefile-load: whole
CONF
bg knotd -c "$W/knot/knot.conf" >"$W/knot.log" 2>&1

up() { dig @127.0.0.1 -p "$1" +short +time=1 +tries=1 "h1.$ZONE" A | grep -q .; }
wait_for 20 up "$OUR" || { cat "$W/node.log"; fail "dpx did not come up"; }
wait_for 20 up "$NSD" || { cat "$W/nsd.log"; fail "nsd did not come up"; }
wait_for 20 up "$KNOT" || { cat "$W/knot.log"; fail "knot did not come up"; }
# Same answers from all three for a few names.
for q in "h7.$ZONE A" "www.$ZONE A" "$ZONE MX" "_arsrv._tcp.$ZONE SRV"; do
  a=$(dig @127.0.0.1 -p "$OUR" +short $q | sort); b=$(dig @127.0.0.1 -p "$NSD" +short $q | sort); c=$(dig @127.0.0.1 -p "$KNOT" +short $q | sort)
  [ "$a" = "$b" ] && [ "$a" = "$c" ] || fail "answers differ for $q: ours=[$a] nsd=[$b] knot=[$c]"
done

# perf PORT LOG: one dnsperf run; sets QPS and LOST.
perf() {
  dnsperf -s 127.0.0.1 -p "$1" -d "$W/queries" -l "$SECS" -c 4 -q 200 -t 2 >"$2" 2>&1 || { cat "$2"; fail "dnsperf on port $1 exited $?"; }
  QPS=$(awk '/Queries per second/ {print $4}' "$2"); LOST=$(awk '/Queries lost/ {print $3}' "$2")
  [ -n "$QPS" ] && [ -n "$LOST" ] || { cat "$2"; fail "dnsperf on port $1: no result"; }
}
declare -A qps lost
for i in $(seq 1 "$RUNS"); do
  for s in OUR NSD KNOT; do perf "${!s}" "$W/perf-$s-$i.log"; qps[$s]+=" $QPS"; lost[$s]+=" $LOST"; done
done
echo "dnsperf ${SECS}s, zone of $((RECORDS + 7)) records, 4 clients x 200 outstanding, one server worker each, $RUNS runs"
for s in OUR NSD KNOT; do
  # shellcheck disable=SC2086 # the lists split into values on purpose
  a=$(stats ${qps[$s]}); printf '%-5s qps %s; lost per run:%s\n' "${s,,}" "$a" "${lost[$s]}"
done
# shellcheck disable=SC2086
a=$(ratio "$(median ${qps[OUR]})" "$(median ${qps[NSD]})"); b=$(ratio "$(median ${qps[OUR]})" "$(median ${qps[KNOT]})")
echo "ratio ours / nsd (medians):  $a"
echo "ratio ours / knot (medians): $b"
