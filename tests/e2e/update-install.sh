#!/usr/bin/env bash
# Installing update bundles on a running node (docs/update.md), in
# development mode on a stand-in disk (ALPHAREN_UPDATE_TARGET: files for
# the rootfs partitions, a directory for the ESP): `ctl system update FILE`
# writes the inactive slot and arms its trial entry, `ctl system slots`
# shows it; a flipped byte and a truncated upload leave the slot invalid
# and the booted slot's entry untouched; a bundle signed by another key
# touches nothing; `ssh admin@node system update - < bundle` works. The
# same on a real disk under QEMU: tests/e2e/qemu-update.sh.
. "$(dirname "$0")/../lib.sh"
for tool in curl jq ssh ssh-keygen minisign; do command -v $tool >/dev/null || fail "needs $tool (scripts/deps.sh)"; done
STATE=$(mktemp -d /tmp/alpharen-install.XXXXXX)
T=$STATE/t
on_exit "rm -rf $STATE"
mkdir -p "$T/out/slot-qemu-x86_64" "$T/disk/esp/loader/entries" "$T/disk/esp/a" "$T/disk/esp/b" "$T/keys"

# The bundle: stand-in slot files of version 0.2.0.
slot=$T/out/slot-qemu-x86_64
head -c $((20 * 1024 * 1024 + 321)) /dev/urandom >"$slot/rootfs.squashfs"
head -c 300000 /dev/urandom >"$slot/vmlinuz"
head -c 70000 /dev/urandom >"$slot/initrd.img"
printf 'VERSION=0.2.0\nBUILD_ID=e2e-v2\nPARTS="rootfs=rootfs.squashfs vmlinuz=vmlinuz initrd.img=initrd.img"\n' >"$slot/slot.env"
IMAGES_OUT=$T/out ALPHAREN_BIN=$ALPHAREN "$ROOT/images/bundle.sh" qemu-x86_64 >"$T/bundle.out" 2>&1 || { cat "$T/bundle.out"; fail "images/bundle.sh"; }
aru=$T/out/alpharen-qemu-x86_64-0.2.0.aru
cp "$T/out/update-dev.pub" "$T/keys/"

# The stand-in disk: slot a booted and good, slot b as flashed.
disk=$T/disk
for s in a b; do
  truncate -s 32M "$disk/rootfs-$s"
  echo "old kernel $s" >"$disk/esp/$s/vmlinuz"
  v=$([ $s = a ] && echo 2 || echo 1)
  printf 'title ALPHA-REN slot %s\nsort-key alpharen\nversion %s\nlinux /%s/vmlinuz\ninitrd /%s/initrd.img\noptions console=ttyS0 alpharen.slot=%s\n' $s $v $s $s $s >"$T/entry-$s.conf"
done
cp "$T/entry-a.conf" "$disk/esp/loader/entries/alpharen-a.conf"
cp "$T/entry-b.conf" "$disk/esp/loader/entries/alpharen-b+3.conf"
echo a >"$disk/booted"
printf 'NAME="ALPHA-REN"\nVERSION_ID=0.1.0\nBUILD_ID=e2e-v1\nALPHAREN_BOARD=qemu-x86_64\n' >"$T/os-release"
entries() { (cd "$disk/esp/loader/entries" && ls | tr '\n' ' '); }

ssh-keygen -q -t ed25519 -N '' -f "$STATE/id" -C admin
seed_ports "$STATE/seed.toml"
ALPHAREN_UPDATE_TARGET=$disk ALPHAREN_UPDATE_KEYS=$T/keys ALPHAREN_OS_RELEASE=$T/os-release \
  start_node "$STATE" --config "$STATE/seed.toml"

ctl --json system slots >"$T/slots.json" || fail "system slots"
jq -e '.[0] == {slot:"a",state:"good",booted:true,version:"0.1.0",build_id:"e2e-v1"} and .[1].state == "trial" and .[1].booted == false' "$T/slots.json" >/dev/null \
  || fail "slots before: $(cat "$T/slots.json")"
pass "system slots: a good and booted (0.1.0), b as flashed"

ctl system update "$aru" >"$T/update.out" 2>&1 || { cat "$T/update.out"; fail "system update"; }
has "installed version 0.2.0 (build e2e-v2) into slot b" "$T/update.out" || fail "update said: $(cat "$T/update.out")"
cmp -n "$(stat -c %s "$slot/rootfs.squashfs")" "$slot/rootfs.squashfs" "$disk/rootfs-b" || fail "rootfs-b does not hold the rootfs part"
cmp "$slot/vmlinuz" "$disk/esp/b/vmlinuz" && cmp "$slot/initrd.img" "$disk/esp/b/initrd.img" || fail "boot files of b"
[ "$(cat "$disk/esp/a/vmlinuz")" = "old kernel a" ] || fail "slot a's kernel was touched"
[ "$(entries)" = "alpharen-a.conf alpharen-b+3.conf " ] || fail "entries after install: $(entries)"
cmp "$T/entry-a.conf" "$disk/esp/loader/entries/alpharen-a.conf" || fail "slot a's entry changed"
has -x "version 3" "$disk/esp/loader/entries/alpharen-b+3.conf" || fail "b's entry does not sort first"
has -x "options console=ttyS0 alpharen.slot=b" "$disk/esp/loader/entries/alpharen-b+3.conf" || fail "b's entry options"
ctl --json system slots >"$T/slots.json"
jq -e '.[1] | .state == "trial" and .tries_left == 3 and .version == "0.2.0" and .build_id == "e2e-v2" and (.installed_at > 0)' "$T/slots.json" >/dev/null \
  || fail "slots after: $(cat "$T/slots.json")"
has "update: version 0.2.0 (e2e-v2) installed into slot b" "$STATE/console.log" || fail "no install event in the log"
pass "system update FILE: slot b written, verified, armed for a trial (+3, sorted first); a untouched"

# A flipped byte in block 3 of the rootfs part.
m=$(stat -c %s "$T/out/bundle-qemu-x86_64/manifest.json")
s=$(stat -c %s "$T/out/bundle-qemu-x86_64/manifest.json.minisig")
at=$((16 + m + 4 + s + 8192 + 3 * 4096 + 17))
cp "$aru" "$T/flipped.aru"
printf "$(printf '\\%03o' $(( $(od -An -tu1 -j $at -N1 "$aru") ^ 1 )))" | dd of="$T/flipped.aru" bs=1 seek=$at conv=notrunc status=none
if ctl system update "$T/flipped.aru" >"$T/flip.out" 2>&1; then fail "a flipped byte was installed"; fi
has "part rootfs: block 3 (part bytes 12288..16384, bundle byte $((at - 17))) is corrupt" "$T/flip.out" || fail "flipped: $(cat "$T/flip.out")"
[ "$(entries)" = "alpharen-a.conf " ] || fail "entries after a corrupt bundle: $(entries)"
cmp "$T/entry-a.conf" "$disk/esp/loader/entries/alpharen-a.conf" || fail "slot a's entry changed"
ctl --json system slots | jq -e '.[1].state == "invalid" and .[0].state == "good"' >/dev/null || fail "b not invalid"
pass "a flipped byte is refused naming its block; b left invalid, a untouched"

# Truncated, through stdin.
head -c 5000000 "$aru" >"$T/short.aru"
if ctl system update - <"$T/short.aru" >"$T/short.out" 2>&1; then fail "a truncated bundle was installed"; fi
has "the bundle is truncated: it ends at byte 5000000" "$T/short.out" || fail "truncated: $(cat "$T/short.out")"
[ "$(entries)" = "alpharen-a.conf " ] || fail "entries after a truncated bundle: $(entries)"
pass "a truncated upload is refused; b stays invalid"

# Another key: refused before anything is written.
minisign -G -W -p "$T/other.pub" -s "$T/other.key" >/dev/null
cp -r "$T/out" "$T/out2"
UPDATE_KEY=$T/other.key IMAGES_OUT=$T/out2 ALPHAREN_BIN=$ALPHAREN "$ROOT/images/bundle.sh" qemu-x86_64 >/dev/null 2>&1 || fail "bundle with another key"
if ctl system update "$T/out2/alpharen-qemu-x86_64-0.2.0.aru" >"$T/key.out" 2>&1; then fail "a bundle of another key was installed"; fi
has "which this node does not trust" "$T/key.out" || fail "other key: $(cat "$T/key.out")"
pass "a bundle signed by another key is refused"

# Over ssh's stdin, after setup: repairs slot b.
setup_code=$(cat "$STATE/setup-code")
wait_for 20 curl -skf "https://127.0.0.1:$HTTPS_PORT/api/v1/health" || fail "web did not come up"
curl -skf -o /dev/null -X POST "https://127.0.0.1:$HTTPS_PORT/api/v1/setup" -H 'content-type: application/json' --data-binary \
  "$(jq -nc --arg c "$setup_code" --arg k "$(cat "$STATE/id.pub")" \
    '{code: $c, admin_password: "correct horse", hostname: "dev1", ssh_authorized_keys: [$k]}')" || fail "setup"
wait_for 20 bash -c "exec 3<>/dev/tcp/127.0.0.1/$SSH_PORT" || fail "ssh did not listen"
SSHOPTS=(-p "$SSH_PORT" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
  -o ConnectTimeout=10 -o LogLevel=ERROR -o IdentitiesOnly=yes -i "$STATE/id")
timeout 120 ssh "${SSHOPTS[@]}" admin@127.0.0.1 system update - <"$aru" >"$T/ssh.out" 2>&1 || { cat "$T/ssh.out"; fail "ssh stdin update"; }
has "installed version 0.2.0 (build e2e-v2) into slot b" "$T/ssh.out" || fail "ssh update said: $(cat "$T/ssh.out")"
[ "$(entries)" = "alpharen-a.conf alpharen-b+3.conf " ] || fail "entries after the ssh install: $(entries)"
timeout 30 ssh "${SSHOPTS[@]}" admin@127.0.0.1 system slots >"$T/ssh-slots.out" 2>&1 || fail "ssh system slots"
has -E "^b +trial \(3 tries left\) +0.2.0 +e2e-v2" "$T/ssh-slots.out" || fail "ssh slots: $(cat "$T/ssh-slots.out")"
pass "ssh admin@node system update - < bundle installs; system slots over ssh"

curl -skf -c "$T/jar" -o /dev/null -X POST "https://127.0.0.1:$HTTPS_PORT/api/v1/session" -H 'content-type: application/json' \
  --data-binary '{"username":"admin","password":"correct horse"}' || fail "login"
curl -skf -b "$T/jar" "https://127.0.0.1:$HTTPS_PORT/api/v1/system/slots" >"$T/api-slots.json" || fail "GET /api/v1/system/slots"
jq -e '.[0].booted and .[1].version == "0.2.0" and .[1].state == "trial"' "$T/api-slots.json" >/dev/null || fail "API slots: $(cat "$T/api-slots.json")"
ctl status | has -x "system    0.1.0 (build e2e-v1)" || fail "status does not show the system release: $(ctl status | head -4)"
pass "GET /api/v1/system/slots; status shows the system release"
