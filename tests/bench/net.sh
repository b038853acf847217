#!/usr/bin/env bash
# net benchmark (not pass/fail), same topology and same run for both:
# the client in a node namespace, dnsmasq in a peer namespace over veth.
#  1. start -> DHCP lease applied (address on eth0), RUNS runs of each:
#     the node on a prepared state dir (`alpharen run`: the supervisor,
#     then the net service, which asks it for its configuration) vs
#     `busybox udhcpc` with a script that applies the address; ratio
#     net/udhcpc. For information, also the whole node from a cold start
#     (`alpharen run` on an empty state dir: store creation, every service
#     starting at once on the same cores).
#  2. idle RSS/PSS of the net service holding a lease.
# Medians, spread and the ratio of the medians.
#   RUNS=5 tests/bench/net.sh
. "$(dirname "$0")/lib.sh"
BIN=$ALPHAREN
[ "$(id -u)" -eq 0 ] || fail "needs root for namespaces"
command -v dnsmasq >/dev/null && command -v busybox >/dev/null || fail "dnsmasq/busybox missing (scripts/deps.sh)"
W=$(mktemp -d)
N=arb-node-$$; P=arb-peer-$$
on_exit "rm -rf $W"
on_exit "ip netns del $N 2>/dev/null; ip netns del $P 2>/dev/null"
ip netns add $N; ip netns add $P
ip link add eth0 netns $N type veth peer name p0 netns $P
ip -n $P addr add 10.77.0.1/24 dev p0; ip -n $P link set p0 up; ip -n $N link set lo up
ip netns exec $P dnsmasq --no-daemon --no-ping --port=0 --interface=p0 --bind-interfaces \
  --dhcp-range=10.77.0.100,10.77.0.150,2m --dhcp-leasefile="$W/leases" \
  --dhcp-option=option:router,10.77.0.1 >/dev/null 2>&1 &
on_exit "kill $! 2>/dev/null"
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
python3 - "$BIN" "$W" "$N" "$RUNS" >"$W/results" <<'PY' || fail "measurement failed"
import os, signal, subprocess, sys, time
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
    dt, p = measure([bin_, "run", "--state-dir", prepared, "--dev"])
    ours.append(dt)
    stop(p)
    dt, p = measure(["busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-s", os.path.join(w, "udhcpc.sh")])
    theirs.append(dt)
    p.wait(timeout=10)
ms = lambda xs: " ".join(f"{x*1000:.1f}" for x in xs)
print(ms(ours)); print(ms(theirs)); print(ms(cold))
print(*(rss or ("?", "?")))
PY
{ read -r ours; read -r theirs; read -r cold; read -r rss pss; } <"$W/results"
# shellcheck disable=SC2086 # the lists split into values on purpose
{ a=$(stats $ours); b=$(stats $theirs); c=$(stats $cold); r=$(ratio "$(median $ours)" "$(median $theirs)"); rc=$(ratio "$(median $cold)" "$(median $theirs)"); }
echo "## start -> DHCP lease applied, ms, $RUNS runs each"
echo "alpharen run (prepared): $a"
echo "busybox udhcpc:          $b"
echo "ratio net/udhcpc (medians) = $r"
echo "whole node, cold start (alpharen run, empty state): $c; $rc x udhcpc"
echo "## idle net service holding a lease: RSS $rss KiB, PSS $pss KiB"
