#!/usr/bin/env bash
# Installing update bundles on a running node (docs/update.md), in
# development mode on a stand-in disk (ALPHAREN_UPDATE_TARGET: files for
# the rootfs partitions, a directory for the ESP): `ctl system update FILE`
# writes the inactive slot and arms its trial entry, `ctl system slots`
# shows it; a flipped byte and a truncated upload leave the slot invalid
# and the booted slot's entry untouched; a bundle signed by another key
# touches nothing; `ssh admin@node system update - < bundle` works;
# POST /api/v1/system/update streams an upload (admins only), and `ctl
# --node URL system update FILE` through it; `ctl system update URL` resumes a download broken off half-way; the console's
# System update page uploads with progress. The same on a real disk under
# QEMU: tests/e2e/qemu-update.sh.
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
# The same through a pipe (the supervisor reads it until its writer closes).
if head -c 5000000 "$aru" | ctl system update - >"$T/short-pipe.out" 2>&1; then fail "a truncated bundle was installed from a pipe"; fi
has "the bundle is truncated: it ends at byte 5000000" "$T/short-pipe.out" || fail "truncated, piped: $(cat "$T/short-pipe.out")"
# A terminal for standard input: refused before anything is sent.
script -qec "'$ALPHAREN' ctl --state-dir '$STATE' system update -" /dev/null </dev/null >"$T/tty.out" 2>&1 && fail "system update - from a terminal did not fail"
has "standard input is a terminal" "$T/tty.out" || fail "terminal: $(cat "$T/tty.out")"
pass "a truncated upload (redirected or piped) is refused; b stays invalid; a terminal is refused"

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

curl -skf -c "$T/jar" -o "$T/login.json" -X POST "https://127.0.0.1:$HTTPS_PORT/api/v1/session" -H 'content-type: application/json' \
  --data-binary '{"username":"admin","password":"correct horse"}' || fail "login"
curl -skf -b "$T/jar" "https://127.0.0.1:$HTTPS_PORT/api/v1/system/slots" >"$T/api-slots.json" || fail "GET /api/v1/system/slots"
jq -e '.[0].booted and .[1].version == "0.2.0" and .[1].state == "trial"' "$T/api-slots.json" >/dev/null || fail "API slots: $(cat "$T/api-slots.json")"
ctl status | has -x "system    0.1.0 (build e2e-v1)" || fail "status does not show the system release: $(ctl status | head -4)"
pass "GET /api/v1/system/slots; status shows the system release"

# POST /api/v1/system/update: the body streamed to the supervisor.
API=https://127.0.0.1:$HTTPS_PORT/api/v1
CSRF=(-b "$T/jar" -H "x-csrf-token: $(jq -r .csrf "$T/login.json")")
post_update() { curl -sk --max-time 120 -o "$T/api.json" -w '%{http_code}' "${CSRF[@]}" -H 'content-type: application/octet-stream' -X POST "$API/system/update" "$@"; }
c=$(post_update --data-binary @"$T/flipped.aru") || fail "API upload of the flipped bundle: curl exited $? (HTTP $c)"
[ "$c" = 422 ] && jq -e '.code == "update_refused" and (.message | contains("block 3"))' "$T/api.json" >/dev/null \
  || fail "API flipped bundle: HTTP $c $(cat "$T/api.json")"
[ "$(entries)" = "alpharen-a.conf " ] || fail "entries after a refused API upload: $(entries)"
c=$(post_update --data-binary @"$T/short.aru") || fail "API upload of the truncated bundle: curl exited $? (HTTP $c)"
[ "$c" = 422 ] && jq -e '.message | contains("truncated")' "$T/api.json" >/dev/null || fail "API truncated: HTTP $c $(cat "$T/api.json")"
pass "POST /api/v1/system/update: a flipped byte and a truncated bundle are refused (422, with the reason); b left invalid"

# No Content-Length (curl -T - reads standard input), as a browser or a
# script streaming a download would send it.
c=$(post_update -T - <"$aru") || fail "API upload: curl exited $? (HTTP $c)"
[ "$c" = 200 ] && jq -e '.slot == "b" and .version == "0.2.0" and .build_id == "e2e-v2"' "$T/api.json" >/dev/null \
  || fail "API upload: HTTP $c $(cat "$T/api.json")"
[ "$(entries)" = "alpharen-a.conf alpharen-b+3.conf " ] || fail "entries after the API install: $(entries)"
cmp -n "$(stat -c %s "$slot/rootfs.squashfs")" "$slot/rootfs.squashfs" "$disk/rootfs-b" || fail "rootfs-b after the API install"
curl -skf -b "$T/jar" "$API/system/update" | jq -e '.installing == false' >/dev/null || fail "GET /system/update after the install"
pass "POST /api/v1/system/update (no Content-Length): installed into b and armed; GET /system/update: nothing installing"

# Only an admin, checked before the body is read (a small body: a large
# one is not drained, and HTTP/2 then resets the stream after the answer).
head -c 1000000 "$aru" >"$T/head.aru"
started=$(grep -c "update: upload .* started" "$STATE/console.log")
curl -skf -o "$T/token.json" "${CSRF[@]}" -H 'content-type: application/json' --data '{"name":"viewer","role":"viewer"}' "$API/tokens" || fail "a viewer token"
TOKEN=$(jq -r .secret "$T/token.json")
c=$(curl -sk --max-time 60 -o "$T/api.json" -w '%{http_code}' -H "authorization: Bearer $TOKEN" --data-binary @"$T/head.aru" "$API/system/update")
[ "$c" = 403 ] || fail "a reader's upload: HTTP $c $(cat "$T/api.json")"
c=$(curl -sk --max-time 60 -o "$T/api.json" -w '%{http_code}' --data-binary @"$T/head.aru" "$API/system/update")
[ "$c" = 401 ] || fail "an anonymous upload: HTTP $c $(cat "$T/api.json")"
[ "$(grep -c "update: upload .* started" "$STATE/console.log")" = "$started" ] || fail "a refused caller started an upload"
pass "POST /api/v1/system/update: 403 for a reader, 401 without credentials"

# ctl --node URL system update: the same upload through the API, with an
# admin's token, from a ctl that has no control socket.
curl -skf -o "$T/admin-token.json" "${CSRF[@]}" -H 'content-type: application/json' --data '{"name":"deployer","role":"admin"}' "$API/tokens" || fail "an admin token"
remote() { ALPHAREN_TOKEN=$(jq -r .secret "$T/admin-token.json") timeout 120 "$ALPHAREN" ctl --state-dir /nonexistent --node "https://localhost:$HTTPS_PORT" --cacert "$STATE/tls/cert.pem" "$@"; }
if remote system update "$T/flipped.aru" >"$T/remote.out" 2>&1; then fail "ctl --node installed the flipped bundle"; fi
has "block 3" "$T/remote.out" || fail "ctl --node flipped: $(cat "$T/remote.out")"
[ "$(entries)" = "alpharen-a.conf " ] || fail "entries after a refused ctl --node upload: $(entries)"
dd if=/dev/zero of="$disk/rootfs-b" bs=1M count=1 conv=notrunc status=none
remote system update "$aru" >"$T/remote.out" 2>&1 || { cat "$T/remote.out"; fail "ctl --node system update"; }
has "installed version 0.2.0 (build e2e-v2) into slot b" "$T/remote.out" || fail "ctl --node update said: $(cat "$T/remote.out")"
cmp -n "$(stat -c %s "$slot/rootfs.squashfs")" "$slot/rootfs.squashfs" "$disk/rootfs-b" || fail "rootfs-b after the ctl --node install"
[ "$(entries)" = "alpharen-a.conf alpharen-b+3.conf " ] || fail "entries after the ctl --node install: $(entries)"
pass "ctl --node URL system update: a flipped byte refused with its reason, the bundle installed through the API"

# ctl system update URL: a server that breaks the first download off
# half-way; ctl resumes with a Range request and the install completes.
: >"$T/range.log"
/usr/bin/python3 "$ROOT/tests/range-server.py" "$aru" "$T/range.port" "$T/range.log" &
RANGE_PID=$!
on_exit "kill $RANGE_PID 2>/dev/null"
wait_for 10 test -s "$T/range.port" || fail "range server did not start"
url=http://127.0.0.1:$(cat "$T/range.port")/alpharen.aru
dd if=/dev/zero of="$disk/rootfs-b" bs=1M count=1 conv=notrunc status=none
timeout 120 "$ALPHAREN" ctl --state-dir "$STATE" system update "$url" >"$T/url.out" 2>&1 || { cat "$T/url.out" "$T/range.log"; fail "system update URL"; }
has "download broke off at byte" "$T/url.out" || fail "no resume reported: $(cat "$T/url.out")"
has "installed version 0.2.0 (build e2e-v2) into slot b" "$T/url.out" || fail "URL update said: $(cat "$T/url.out")"
half=$(( $(stat -c %s "$aru") / 2 ))
has -x -- "- dropped at $half" "$T/range.log" && has -x -- "bytes=$half- sent $half-$(stat -c %s "$aru")" "$T/range.log" \
  || fail "range server saw: $(cat "$T/range.log")"
cmp -n "$(stat -c %s "$slot/rootfs.squashfs")" "$slot/rootfs.squashfs" "$disk/rootfs-b" || fail "rootfs-b after the URL install"
[ "$(entries)" = "alpharen-a.conf alpharen-b+3.conf " ] || fail "entries after the URL install: $(entries)"
pass "system update URL: the download broken off half-way resumes from byte $half (HTTP Range) and installs"

# The console's System update page: a corrupt bundle refused with its
# reason, the good one uploaded with a progress bar, the reboot button.
browser_deps
TEST_OUT=$OUT timeout 300 node "$DIR/update.mjs" "https://127.0.0.1:$HTTPS_PORT" "correct horse" "$aru" "$T/flipped.aru" \
  || fail "System update page (screenshots in $OUT)"
[ "$(entries)" = "alpharen-a.conf alpharen-b+3.conf " ] || fail "entries after the console install: $(entries); $(grep "update" "$STATE/console.log" | tail -5)"
pass "console System update page: corrupt bundle refused, upload with progress installs, reboot asks first"
