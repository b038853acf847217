#!/usr/bin/env bash
# net benchmark (not pass/fail), same topology and same run for both:
# the client in a node namespace, dnsmasq in a peer namespace over veth.
#  1. start -> DHCP lease applied (address on eth0), median of N runs:
#     the net service (`alpharen serve net` on a prepared store) vs
#     `busybox udhcpc` with a script that applies the address; ratio
#     net/udhcpc. For information, also the whole node from a cold start
#     (`alpharen run` on an empty state dir: store creation, every service
#     starting at once on the same cores).
#  2. idle RSS/PSS of the net service holding a lease.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${ALPHAREN_BIN:-$ROOT/target/release/alpharen}
RUNS=${RUNS:-7}
[ "$(id -u)" -eq 0 ] || { echo "skipped (needs root for namespaces)"; exit 0; }
command -v dnsmasq >/dev/null && command -v busybox >/dev/null || { echo "skipped (dnsmasq/busybox missing; scripts/deps.sh)"; exit 0; }
W=$(mktemp -d)
N=arb-node-$$; P=arb-peer-$$
cleanup() {
  [ -n "${DPID:-}" ] && kill "$DPID" 2>/dev/null
  ip netns del $N 2>/dev/null; ip netns del $P 2>/dev/null; rm -rf "$W"
}
trap cleanup EXIT
ip netns add $N; ip netns add $P
ip link add eth0 netns $N type veth peer name p0 netns $P
ip -n $P addr add 10.77.0.1/24 dev p0; ip -n $P link set p0 up; ip -n $N link set lo up
ip netns exec $P dnsmasq --no-daemon --no-ping --port=0 --interface=p0 --bind-interfaces \
  --dhcp-range=10.77.0.100,10.77.0.150,2m --dhcp-leasefile="$W/leases" \
  --dhcp-option=option:router,10.77.0.1 >/dev/null 2>&1 &
DPID=$!
cat >"$W/seed.toml" <<EOC
[network]
manage = true
[[network.interfaces]]
name = "eth0"
dhcp4 = true
EOC
cat >"$W/udhcpc.sh" <<'EOS'
#!/bin/sh
case "$1" in bound|renew) ip addr add "$ip/${mask:-24}" dev "$interface" ;; esac
EOS
chmod +x "$W/udhcpc.sh"
sleep 0.5
python3 - "$BIN" "$W" "$N" "$RUNS" <<'PY'
import os, signal, statistics, subprocess, sys, time
bin_, w, ns, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def has_addr():
    out = subprocess.run(["ip", "-n", ns, "-o", "-4", "addr", "show", "dev", "eth0"], capture_output=True, text=True).stdout
    return "inet " in out
def reset():
    subprocess.run(["ip", "-n", ns, "addr", "flush", "dev", "eth0"], check=False)
    subprocess.run(["ip", "-n", ns, "link", "set", "eth0", "up"], check=False)
    time.sleep(0.3)
def measure(cmd):
    reset()
    t0 = time.monotonic()
    p = subprocess.Popen(["ip", "netns", "exec", ns] + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not has_addr():
        if time.monotonic() - t0 > 30:
            p.kill(); raise SystemExit(f"no lease within 30 s: {cmd}")
        time.sleep(0.005)
    dt = time.monotonic() - t0
    return dt, p
def stop(p):
    p.send_signal(signal.SIGTERM); p.wait(timeout=15)
ours, theirs, cold, rss = [], [], [], None
prepared = os.path.join(w, "prepared")
for i in range(runs):
    st = os.path.join(w, f"st{i}") if i else prepared
    dt, p = measure([bin_, "run", "--state-dir", st, "--dev", "--config", os.path.join(w, "seed.toml")])
    cold.append(dt)
    if i == 0:
        time.sleep(3)
        kids = open(f"/proc/{p.pid}/task/{p.pid}/children").read().split()
        for k in kids:
            cmdline = open(f"/proc/{k}/cmdline").read().split("\0")
            if "serve" in cmdline and "net" in cmdline:
                r = [l for l in open(f"/proc/{k}/status") if l.startswith("VmRSS")][0].split()[1]
                s = [l for l in open(f"/proc/{k}/smaps_rollup") if l.startswith("Pss:")][0].split()[1]
                rss = (r, s)
    stop(p)
    dt, p = measure([bin_, "serve", "net", "--state-dir", prepared, "--dev"])
    ours.append(dt)
    stop(p)
    dt, p = measure(["busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-s", os.path.join(w, "udhcpc.sh")])
    theirs.append(dt)
    p.wait(timeout=10)
fmt = lambda xs: ", ".join(f"{x*1000:.0f}" for x in xs)
mo, mt, mc = statistics.median(ours), statistics.median(theirs), statistics.median(cold)
print(f"## start -> DHCP lease applied, median of {runs}")
print(f"alpharen serve net:              {mo*1000:.1f} ms  (runs: {fmt(ours)})")
print(f"busybox udhcpc:                  {mt*1000:.1f} ms  (runs: {fmt(theirs)})")
print(f"ratio net/udhcpc = {mo/mt:.2f}")
print(f"whole node, cold start (alpharen run, empty state): {mc*1000:.1f} ms  (runs: {fmt(cold)}), {mc/mt:.2f} x udhcpc")
if rss:
    print(f"## idle net service holding a lease: RSS {rss[0]} KiB, PSS {rss[1]} KiB")
PY
