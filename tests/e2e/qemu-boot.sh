#!/usr/bin/env bash
# The node image end to end under QEMU (TCG is fine): boot to ready with a
# setup code on the serial console, first-boot setup over HTTPS through the
# forwarded port, `ssh admin@node status` with every service running, a
# every service as its own user with only its capabilities and Python
# workers under Landlock, a reboot over ssh keeping config and host key, a
# power cut (kill -9 of QEMU) during a config apply after which the node
# boots healthy with the old or the new revision, and a power cut right
# after KV writes and publishes were acknowledged, which loses none of them.
# e2e-lock: image (builds images/out/ and its cache)
. "$(dirname "$0")/../lib.sh"
cd "$ROOT"
build_image
disk=$OUT/disk.img
cp --sparse=always "$IMG" "$disk"
truncate -s +256M "$disk"   # a bigger disk than the image, as when flashed
read -r WEB SSHP < <(free_ports 2)
# The second NIC's frames travel in UDP datagrams between QEMU (VQEMU) and
# tests/e2e/vlan_peer.py (VPEER).
read -r VPEER VQEMU < <(free_ports 2)
NIC2="-netdev socket,id=n1,udp=127.0.0.1:$VPEER,localaddr=127.0.0.1:$VQEMU -device virtio-net-pci,netdev=n1"
ssh-keygen -q -t ed25519 -N "" -f "$OUT/id" <<<y >/dev/null
KNOWN=$OUT/known_hosts; : > "$KNOWN"
SSH=(ssh -p "$SSHP" -i "$OUT/id" -o IdentitiesOnly=yes -o UserKnownHostsFile="$KNOWN" -o StrictHostKeyChecking=accept-new -o BatchMode=yes -o ConnectTimeout=10 admin@127.0.0.1)
boot=0
start() {
  boot=$((boot + 1)); LOG=$OUT/serial$boot.log; : >"$LOG"
  QEMU_EXTRA=$NIC2 FRESH_VARS=$((boot == 1)) SERIAL_LOG=$LOG WEB_PORT=$WEB SSH_PORT=$SSHP setsid images/run-qemu.sh "$disk" </dev/null >"$LOG.stdout" 2>&1 &
  QEMU=$!
  on_exit "kill -- -$QEMU 2>/dev/null"
  wait_for 500 grep -q "alpharen: ready" "$LOG" || { tail -40 "$LOG"; fail "boot $boot did not reach ready"; }
}
stop_hard() { kill -9 -- -"$QEMU" 2>/dev/null; wait "$QEMU" 2>/dev/null || true; }

start
grep -q "slot a from /dev/vda2" "$LOG" || fail "did not boot slot A"
grep -q "cannot mount the data partition" "$LOG" && fail "data partition not mounted"
grep -Eq "data partition .* grown to (2[89][0-9]|3[0-9][0-9]) MiB" "$LOG" || { grep init: "$LOG"; fail "data partition not grown to the disk"; }
grep -q "was blank: formatted ext4" "$LOG" || fail "blank data partition not formatted"
code=$(sed -n 's/.*setup code \([A-Z0-9-]*\).*/\1/p' "$LOG" | head -n 1)
[ -n "$code" ] || fail "no setup code on the console"
pass "boot 1 ready (slot A), setup code $code"

api() { curl -sk --max-time 20 "https://127.0.0.1:$WEB/api/v1/$1" "${@:2}"; }
wait_for 300 api health || { tail -40 "$LOG"; fail "web console not reachable through the forwarded port"; }
body=$(printf '{"code":"%s","admin_password":"correct horse battery","hostname":"qnode","ssh_authorized_keys":["%s"]}' "$code" "$(cat "$OUT/id.pub")")
out=$(api setup -H 'content-type: application/json' -d "$body")
echo "$out" | has '"revision"' || fail "setup failed: $out"
api setup | has '"required":false' || fail "setup still required"
pass "setup over HTTPS"

wait_for 200 "${SSH[@]}" status || fail "ssh status did not answer"
# all_running: the services reload after setup; each must settle running.
all_running() {
  status=$("${SSH[@]}" status) || return 1
  local svc
  for svc in net web ssh mail integrator; do
    echo "$status" | grep -E "^$svc +running" >/dev/null || return 1
  done
}
wait_for 60 all_running || fail "not every service running: $status"
echo "$status" > "$OUT/status1.txt"
echo "$status" | has "qnode" || fail "hostname not applied: $status"
pass "ssh status: every service running"

# Privilege separation on the image's kernel: each service as its own
# user with only its capabilities; workers confined by Landlock (6.1).
"${SSH[@]}" services --json >"$OUT/services1.json" || fail "services --json over ssh failed"
python3 - "$OUT/services1.json" <<'PY' || fail "privileges not separated on the node"
import json, sys
want = {"net": (901, "0000000002003400"), "vpn": (902, "0000000000001000"),
        "dpx": (903, "0000000000000400"), "web": (904, "0000000000000400"),
        "ssh": (905, "0000000000000400"), "mail": (906, "0000000000000400"),
        "pgha": (907, "0000000000000000"), "integrator": (908, "0000000000000000")}
got = {s["name"]: s.get("runs_as") for s in json.load(open(sys.argv[1]))}
bad = [f"{n}: {got.get(n)}, want uid {u} caps {c}" for n, (u, c) in want.items()
       if got.get(n) != {"uid": u, "cap_eff": c, "no_new_privs": True}]
if bad:
    sys.exit("\n".join(bad))
PY
pass "on the node every service runs as its own user with only its capabilities"
# The workers start with the first deployed service: deployed over ssh.
"${SSH[@]}" integrator deploy - --name get_user_details.py <"$ROOT/tests/e2e/integrator/get_user_details.py" >"$OUT/deploy.txt" 2>&1 \
  || fail "integrator deploy over ssh: $(cat "$OUT/deploy.txt")"
wait_for 60 bash -c "${SSH[*]} logs integrator | grep -q 'confined by Landlock'" \
  || fail "python workers not confined by Landlock on the node: $("${SSH[@]}" logs integrator | tail -5)"
pass "a service deployed over ssh; on the node python workers are confined by Landlock"
mem=$(echo "$status" | sed -n 's/^memory *//p')
[ -n "$mem" ] || fail "status does not report memory: $status"
pass "idle after boot, read over ssh: $mem"
wait_for 120 grep -q "boot of slot a marked good" "$LOG" || { tail -20 "$LOG"; fail "slot A was not marked good"; }
pass "slot A marked good for the boot loader"

# A VLAN on a real kernel (this host's may lack 802.1Q): VLAN 10 on the
# second NIC with 10.99.0.5/24, applied over ssh and confirmed; a peer on
# the other end of the NIC gets tagged ARP and ICMP answers from it.
"${SSH[@]}" config export >"$OUT/config.toml" || fail "config export over ssh failed"
python3 - "$OUT/config.toml" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
assert "vlans = []" in s and "[network.dns]" in s, s
s = s.replace("vlans = []", 'vlans = [{ id = 10, link = "eth1" }]', 1)
s = s.replace("[network.dns]", '[[network.interfaces]]\nname = "eth1"\n\n'
              '[[network.interfaces]]\nname = "eth1.10"\naddresses = ["10.99.0.5/24"]\n\n[network.dns]', 1)
open(p, "w").write(s)
PY
"${SSH[@]}" config apply -f - -m "'VLAN 10 on eth1'" <"$OUT/config.toml" >"$OUT/vlan-apply.txt" 2>&1 \
  || fail "VLAN config not applied: $(cat "$OUT/vlan-apply.txt")"
"${SSH[@]}" config confirm >/dev/null || fail "config confirm over ssh failed"
wait_for 30 bash -c "${SSH[*]} net | grep -q 10.99.0.5/24" || fail "eth1.10 has no address: $("${SSH[@]}" net)"
python3 tests/e2e/vlan_peer.py "$VPEER" "$VQEMU" 10.99.0.5 10.99.0.1 60 || fail "no answer on VLAN 10 from the node"
pass "VLAN 10 created by the net service on the guest kernel; tagged ARP and ping answered"

"${SSH[@]}" reboot >/dev/null 2>&1 || true
wait_for 120 grep -q "SIGTERM received" "$LOG" || fail "reboot over ssh did not reach init"
stop_hard   # QEMU reboots the guest in place; a fresh start keeps the test simple
start
wait_for 300 "${SSH[@]}" status || fail "ssh after reboot failed (host key changed or service down)"
"${SSH[@]}" config show node | has 'hostname = "qnode"' || fail "config lost across reboot"
grep -q "was blank" "$LOG" && fail "data partition formatted again on the second boot"
pass "reboot over ssh: config and host key kept"

# Power cut while a config apply is in flight.
( for i in $(seq 1 20); do "${SSH[@]}" config set node.timezone "Etc/GMT-$((i % 12))" >/dev/null 2>&1 || true; done ) &
writer=$!
sleep 3
stop_hard
kill "$writer" 2>/dev/null; wait "$writer" 2>/dev/null || true
start
wait_for 300 "${SSH[@]}" status || fail "node not healthy after the power cut"
"${SSH[@]}" config history >"$OUT/history.txt" || fail "history unreadable after the power cut"
"${SSH[@]}" config show node | has 'hostname = "qnode"' || fail "config damaged by the power cut"
pass "power cut during apply: node healthy, revision intact"

# Power cut right after acknowledged KV writes and publishes: every one
# the node acknowledged is there after the next boot.
"${SSH[@]}" config set integrator.topics "'[{name = \"cut\", subscribers = [\"nobody.home\"], max_attempts = 100, backoff_ms = 60000}]'" >"$OUT/topic.txt" 2>&1 \
  || fail "topic not configured: $(cat "$OUT/topic.txt")"
wait_for 30 bash -c "${SSH[*]} integrator topics | grep -q cut" || fail "topic cut not known to the integrator"
acked=()
for i in $(seq 1 15); do
  "${SSH[@]}" integrator kv set "cut$i" "value$i" >/dev/null 2>&1 && acked+=("$i")
done
published=0
for i in $(seq 1 10); do
  "${SSH[@]}" integrator publish cut "m$i" >/dev/null 2>&1 && published=$((published + 1))
done
stop_hard
[ "${#acked[@]}" -ge 10 ] && [ "$published" -ge 5 ] || fail "too few writes were acknowledged before the cut (${#acked[@]} KV, $published published)"
start
wait_for 300 "${SSH[@]}" status || fail "node not healthy after the power cut"
for i in "${acked[@]}"; do
  "${SSH[@]}" integrator kv get "cut$i" 2>/dev/null | has "value$i" || fail "acknowledged KV write cut$i lost in the power cut"
done
held=$("${SSH[@]}" integrator topics --json | python3 -c '
import json, sys
print(sum(r["ready"] + r["in_flight"] + r["dead"] for r in json.load(sys.stdin) if r["topic"] == "cut"))')
[ "$held" -ge "$published" ] || fail "acknowledged publishes lost in the power cut: $published acknowledged, $held kept"
pass "power cut after acknowledgement: ${#acked[@]} KV writes and $published publishes all kept"
