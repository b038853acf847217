#!/usr/bin/env bash
# A field update under QEMU (docs/update.md): image v1 and a signed bundle
# of v2 (another version string, same development key), boot v1, setup
# over HTTPS, v2 uploaded with curl to POST /api/v1/system/update (its
# progress in GET /api/v1/system/update), reboot: slot B
# runs v2 with config and ssh host key kept and is committed (good) by the
# health gate. Then a bundle with a flipped byte, one for another board,
# one with a bad signature and a truncated upload are each refused with
# their reason, the other slot is
# left invalid (these over ssh's stdin), v2 keeps running and still boots.
# Last, a v3 whose alpharen exits at start is installed: three tries,
# then v2 boots again and reports the failed slot with v3's version; and
# QEMU killed while v2 is written into slot A: v2 boots from B, slot A is
# invalid, a new install succeeds. Then v2 in slot A on trial meets a
# failing [update.health_check] with a store of configuration schema 0:
# A boots once, migrates the store keeping a copy, the gate fails it and
# reboots the node, B boots, restores the copy (a change made on A is
# gone) and reports the check's reason and output.
# e2e-lock: image (builds images/out/ and its cache)
. "$(dirname "$0")/../lib.sh"
cd "$ROOT"
command -v minisign >/dev/null || fail "needs minisign (scripts/deps.sh)"
build_image
bin=${CARGO_TARGET_DIR:-$ROOT/target}/release/alpharen
V1=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
V2=$V1.1
v2out=$OUT/v2
aru=$v2out/alpharen-qemu-x86_64-$V2.aru
# v2: built into its own directory and signed with the key v1 trusts.
key=$ROOT/images/out/update-dev.key
if [ ! -f "$aru" ] || [ -n "$(find "$IMG" -newer "$aru" -print -quit)" ]; then
  echo "building v2 ($V2) and its bundle (log in $OUT/build-v2.log)"
  rm -rf "$v2out"
  { IMAGES_OUT=$v2out ALPHAREN_VERSION=$V2 UPDATE_KEY=$key ALPHAREN_BIN=$bin online images/build.sh qemu-x86_64 &&
    IMAGES_OUT=$v2out UPDATE_KEY=$key ALPHAREN_BIN=$bin images/bundle.sh qemu-x86_64; } >"$OUT/build-v2.log" 2>&1 \
    || { tail -30 "$OUT/build-v2.log"; fail "building v2"; }
  rm -f "$v2out"/alpharen-qemu-x86_64.img "$v2out"/esp.vfat
  rm -rf "$v2out"/work-qemu-x86_64
  # The same slot as a bundle for another board.
  ln -s slot-qemu-x86_64 "$v2out/slot-pc-x86_64"
  IMAGES_OUT=$v2out UPDATE_KEY=$key ALPHAREN_BIN=$bin images/bundle.sh pc-x86_64 >>"$OUT/build-v2.log" 2>&1 \
    || { tail -30 "$OUT/build-v2.log"; fail "building the pc-x86_64 bundle"; }
fi
# v3: a system whose alpharen exits at start (/bin/false as the binary),
# bundled with the real tools.
V3=$V1.2
v3out=$OUT/v3
aru3=$v3out/alpharen-qemu-x86_64-$V3.aru
if [ ! -f "$aru3" ] || [ -n "$(find "$IMG" -newer "$aru3" -print -quit)" ]; then
  echo "building the broken v3 ($V3) and its bundle (log in $OUT/build-v3.log)"
  rm -rf "$v3out"
  { IMAGES_OUT=$v3out ALPHAREN_VERSION=$V3 UPDATE_KEY=$key ALPHAREN_BIN=/bin/false online images/build.sh qemu-x86_64 &&
    IMAGES_OUT=$v3out UPDATE_KEY=$key ALPHAREN_BIN=$bin images/bundle.sh qemu-x86_64; } >"$OUT/build-v3.log" 2>&1 \
    || { tail -30 "$OUT/build-v3.log"; fail "building v3"; }
  rm -rf "$v3out"/alpharen-qemu-x86_64.img "$v3out"/esp.vfat "$v3out"/work-qemu-x86_64
fi
[ -f "$aru" ] && [ -f "$aru3" ] || fail "no bundle $aru or $aru3"
pass "image v1 ($V1) and bundle v2 ($V2, $(du -h "$aru" | cut -f1))"

disk=$OUT/update-disk.img
cp --sparse=always "$IMG" "$disk"
truncate -s +256M "$disk"
on_exit "rm -f '$disk'"
read -r WEB SSHP < <(free_ports 2)
ssh-keygen -q -t ed25519 -N "" -f "$OUT/id" <<<y >/dev/null
KNOWN=$OUT/known_hosts; : > "$KNOWN"
SSH=(ssh -p "$SSHP" -i "$OUT/id" -o IdentitiesOnly=yes -o UserKnownHostsFile="$KNOWN" -o StrictHostKeyChecking=accept-new -o BatchMode=yes -o ConnectTimeout=10 admin@127.0.0.1)
boot=0
start() {
  boot=$((boot + 1)); LOG=$OUT/serial-update$boot.log; : >"$LOG"
  FRESH_VARS=$((boot == 1)) SERIAL_LOG=$LOG WEB_PORT=$WEB SSH_PORT=$SSHP setsid images/run-qemu.sh "$disk" </dev/null >"$LOG.stdout" 2>&1 &
  QEMU=$!
  on_exit "kill -- -$QEMU 2>/dev/null"
  wait_for 500 grep -q "alpharen: ready" "$LOG" || { tail -40 "$LOG"; fail "boot $boot did not reach ready"; }
}
stop_hard() { kill -9 -- -"$QEMU" 2>/dev/null; wait "$QEMU" 2>/dev/null || true; }

start
grep -q "slot a from" "$LOG" || fail "did not boot slot A"
code=$(sed -n 's/.*setup code \([A-Z0-9-]*\).*/\1/p' "$LOG" | head -n 1)
api() { curl -sk --max-time 20 "https://127.0.0.1:$WEB/api/v1/$1" "${@:2}"; }
wait_for 300 api health || { tail -40 "$LOG"; fail "web console not reachable"; }
body=$(printf '{"code":"%s","admin_password":"correct horse battery","hostname":"unode","ssh_authorized_keys":["%s"]}' "$code" "$(cat "$OUT/id.pub")")
api setup -H 'content-type: application/json' -d "$body" | has '"revision"' || fail "setup failed"
wait_for 200 "${SSH[@]}" status || fail "ssh status did not answer"
"${SSH[@]}" status | has -x "system    $V1 (build .*)" || fail "v1 status: $("${SSH[@]}" status | head -4)"
wait_for 200 grep -q "boot of slot a marked good" "$LOG" || { tail -20 "$LOG"; fail "slot A was not marked good"; }
pass "v1 booted from slot A, set up, marked good"

# v2 through the API (curl, streamed), its progress visible in GET
# /api/v1/system/update while it goes (4 MB/s, so there is time to look).
api session -c "$OUT/jar" -H 'content-type: application/json' -d '{"username":"admin","password":"correct horse battery"}' >"$OUT/login.json" \
  || fail "login"
t0=$(date +%s)
curl -sk --max-time 600 -o "$OUT/update-api.json" -w '%{http_code}' -b "$OUT/jar" -H "x-csrf-token: $(jq -r .csrf "$OUT/login.json")" \
  --limit-rate 4M -H 'content-type: application/octet-stream' --data-binary @"$aru" "https://127.0.0.1:$WEB/api/v1/system/update" >"$OUT/update-api.code" &
UPLOAD=$!
wait_for 120 bash -o pipefail -c "curl -sk --max-time 5 -b '$OUT/jar' 'https://127.0.0.1:$WEB/api/v1/system/update' | jq -e '.installing and .received > 0' >'$OUT/progress.json'" \
  || fail "no install in progress seen in GET /api/v1/system/update"
wait "$UPLOAD" || fail "curl upload exited $?"
[ "$(cat "$OUT/update-api.code")" = 200 ] && jq -e --arg v "$V2" '.slot == "b" and .version == $v' "$OUT/update-api.json" >/dev/null \
  || { tail -20 "$LOG"; fail "API upload: HTTP $(cat "$OUT/update-api.code") $(cat "$OUT/update-api.json")"; }
"${SSH[@]}" system slots --json >"$OUT/slots1.json"
jq -e --arg v "$V2" '.[0].booted and .[0].state == "good" and .[1].state == "trial" and .[1].version == $v' "$OUT/slots1.json" >/dev/null \
  || fail "slots after install: $(cat "$OUT/slots1.json")"
pass "v2 uploaded through POST /api/v1/system/update and installed into slot B in $(( $(date +%s) - t0 )) s (progress seen in GET /api/v1/system/update), armed for a trial"

"${SSH[@]}" reboot >/dev/null 2>&1 || true
wait_for 120 grep -q "SIGTERM received" "$LOG" || fail "reboot over ssh did not reach init"
stop_hard
start
grep -q "slot b from" "$LOG" || { grep -i "slot" "$LOG" | head; fail "did not boot slot B"; }
wait_for 300 "${SSH[@]}" status || fail "ssh after the update failed (host key changed or service down)"
"${SSH[@]}" status | has -x "system    $V2 (build .*)" || fail "v2 does not run: $("${SSH[@]}" status | head -4)"
"${SSH[@]}" config show node | has 'hostname = "unode"' || fail "config lost across the update"
pass "slot B runs v2; config and ssh host key kept"
wait_for 300 grep -q "boot of slot b marked good" "$LOG" || { tail -20 "$LOG"; fail "slot B was not committed"; }
"${SSH[@]}" system slots --json >"$OUT/slots2.json"
jq -e --arg v "$V2" '.[1].booted and .[1].state == "good" and .[1].version == $v and .[0].state == "good"' "$OUT/slots2.json" >/dev/null \
  || fail "slots after commit: $(cat "$OUT/slots2.json")"
pass "slot B committed (good) by the health gate"

# A flipped byte in block 3 of the rootfs part (bundle layout: docs/update.md).
m=$(stat -c %s "$v2out/bundle-qemu-x86_64/manifest.json")
s=$(stat -c %s "$v2out/bundle-qemu-x86_64/manifest.json.minisig")
at=$((16 + m + 4 + s + 8192 + 3 * 4096 + 17))
cp "$aru" "$OUT/flipped.aru"
printf "$(printf '\\%03o' $(( $(od -An -tu1 -j $at -N1 "$aru") ^ 1 )))" | dd of="$OUT/flipped.aru" bs=1 seek=$at conv=notrunc status=none
if timeout 300 "${SSH[@]}" system update - <"$OUT/flipped.aru" >"$OUT/flipped.out" 2>&1; then fail "a flipped byte was installed"; fi
rm -f "$OUT/flipped.aru"
has "part rootfs: block 3 (part bytes 12288..16384, bundle byte $((at - 17))) is corrupt" "$OUT/flipped.out" || fail "flipped: $(cat "$OUT/flipped.out")"
"${SSH[@]}" system slots --json >"$OUT/slots3.json"
jq -e '.[0].state == "invalid" and .[1].booted and .[1].state == "good"' "$OUT/slots3.json" >/dev/null || fail "slots after refusal: $(cat "$OUT/slots3.json")"
"${SSH[@]}" status | has -x "system    $V2 (build .*)" || fail "v2 no longer runs"
pass "a flipped byte refused naming its block; slot A left invalid, v2 keeps running"

if timeout 120 "${SSH[@]}" system update - <"$v2out/alpharen-pc-x86_64-$V2.aru" >"$OUT/board.out" 2>&1; then fail "a bundle for another board was installed"; fi
has "the bundle is for board pc-x86_64, this node is a qemu-x86_64" "$OUT/board.out" || fail "board: $(cat "$OUT/board.out")"
# A bad signature: one character of the signed manifest changed (its
# build id's first), so the signature of the manifest no longer verifies.
python3 - "$aru" "$OUT/badsig.aru" <<'PY' || fail "making the bundle with a bad signature"
import re, sys
b = bytearray(open(sys.argv[1], 'rb').read())
m = int.from_bytes(b[12:16], 'big')
at = 16 + re.search(rb'"build_id"\s*:\s*"', bytes(b[16:16 + m])).end()
b[at] = ord('0') if b[at] != ord('0') else ord('1')
open(sys.argv[2], 'wb').write(b)
PY
if timeout 120 "${SSH[@]}" system update - <"$OUT/badsig.aru" >"$OUT/badsig.out" 2>&1; then fail "a bundle with a bad signature was installed"; fi
rm -f "$OUT/badsig.aru"
has "bad signature: the manifest does not verify with" "$OUT/badsig.out" || fail "bad signature: $(cat "$OUT/badsig.out")"
if head -c 9000000 "$aru" | timeout 120 "${SSH[@]}" system update - >"$OUT/short.out" 2>&1; then fail "a truncated upload was installed"; fi
has "the bundle is truncated: it ends at byte 9000000" "$OUT/short.out" || fail "truncated: $(cat "$OUT/short.out")"
"${SSH[@]}" system slots --json | jq -e '.[0].state == "invalid" and .[1].booted and .[1].state == "good"' >/dev/null || fail "slots after the refusals"
pass "a bundle for another board, one with a bad signature and a truncated upload refused with their reasons"
"${SSH[@]}" reboot >/dev/null 2>&1 || true
wait_for 120 grep -q "SIGTERM received" "$LOG" || fail "reboot over ssh did not reach init"
stop_hard
start
grep -q "slot b from" "$LOG" || fail "did not boot slot B after the refused updates"
wait_for 300 "${SSH[@]}" status || fail "ssh after the refused updates"
"${SSH[@]}" status | has -x "system    $V2 (build .*)" || fail "v2 does not boot any more"
pass "after the refused updates v2 still boots (slot A invalid is skipped)"

# v3, whose alpharen exits at start, into slot A: three tries (each a
# kernel panic, rebooted after 10 s), then v2 in slot B boots again and
# reports the failed update.
timeout 600 "${SSH[@]}" system update - <"$aru3" >"$OUT/v3.out" 2>&1 || { cat "$OUT/v3.out"; fail "installing v3"; }
has "installed version $V3 (build .*) into slot a" "$OUT/v3.out" || fail "v3 update said: $(cat "$OUT/v3.out")"
"${SSH[@]}" reboot >/dev/null 2>&1 || true
wait_for 120 grep -q "SIGTERM received" "$LOG" || fail "reboot over ssh did not reach init"
stop_hard
start
tries=$(grep -c "alpharen: slot a from" "$LOG" || true)
[ "$tries" -eq 3 ] || fail "slot A (v3) was tried $tries times, not 3"
grep -q "slot b from" "$LOG" || fail "did not fall back to slot B"
wait_for 300 "${SSH[@]}" status || fail "ssh after the fallback"
"${SSH[@]}" status | has -x "system    $V2 (build .*)" || fail "v2 does not run after the fallback"
wait_for 300 grep -q "slot a failed all its boot tries" "$LOG" || { tail -20 "$LOG"; fail "the failed update was not reported"; }
"${SSH[@]}" system slots --json >"$OUT/slots4.json"
jq -e --arg v "$V3" '.[0].state == "failed" and .[0].version == $v and .[1].booted and .[1].state == "good"' "$OUT/slots4.json" >/dev/null \
  || fail "slots after the fallback: $(cat "$OUT/slots4.json")"
pass "v3 whose alpharen exits at start: slot A tried 3 times, v2 boots again and reports slot A ($V3) failed"

# QEMU killed while v2 is being written into slot A (the upload slowed to
# 1 MB/s so it is surely under way): v2 in slot B boots, slot A is
# invalid, and a new install succeeds.
curl -sk --max-time 600 -o /dev/null -b "$OUT/jar" -H "x-csrf-token: $(jq -r .csrf "$OUT/login.json")" --limit-rate 1M \
  -H 'content-type: application/octet-stream' --data-binary @"$aru" "https://127.0.0.1:$WEB/api/v1/system/update" &
wait_for 120 grep -q "update: slot a marked invalid" "$LOG" || { tail -20 "$LOG"; fail "the install into slot A did not start"; }
wait_for 60 bash -o pipefail -c "curl -sk --max-time 5 -b '$OUT/jar' 'https://127.0.0.1:$WEB/api/v1/system/update' | jq -e '.received > 4000000'" \
  || fail "the upload did not get under way"
stop_hard
start
grep -q "slot b from" "$LOG" || fail "did not boot slot B after the kill"
wait_for 300 "${SSH[@]}" status || fail "ssh after the kill"
"${SSH[@]}" system slots --json >"$OUT/slots5.json"
jq -e '.[0].state == "invalid" and .[1].booted and .[1].state == "good"' "$OUT/slots5.json" >/dev/null \
  || fail "slots after the kill: $(cat "$OUT/slots5.json")"
timeout 600 "${SSH[@]}" system update - <"$aru" >"$OUT/again.out" 2>&1 || { cat "$OUT/again.out"; fail "install after the kill"; }
"${SSH[@]}" system slots --json | jq -e --arg v "$V2" '.[0].state == "trial" and .[0].version == $v' >/dev/null || fail "slot A after the new install"
pass "QEMU killed while writing slot A: v2 boots from B, A invalid, a new install into A succeeds"

# The health gate under QEMU: slot A now holds v2 on trial, and the node's
# [update.health_check] fails. A boots once, the gate runs the check (as
# nobody), marks A failed and reboots the node by itself; B boots again
# and reports the failed update with the check's reason and output.
# The configuration store is made one of a firmware from before the
# schema row (schema 0, as `store/src/schema_tests.rs` makes it) while
# the node is off, so A migrates it on its first boot, keeping a copy for
# B; a change made while A runs is gone when B restores the copy.
hc='{ command = "/bin/sh", args = ["-c", "echo checking $ALPHAREN_VERSION in slot $ALPHAREN_SLOT as uid $(id -u); sleep 30; exit 3"], timeout = 60 }'
"${SSH[@]}" "config set update.health_check '$hc'" >"$OUT/hc.out" 2>&1 || fail "config set update.health_check: $(cat "$OUT/hc.out")"
"${SSH[@]}" config show node | has 'confirm_timeout = 120' || fail "node.confirm_timeout is not 120 before the trial: $("${SSH[@]}" config show node)"
"${SSH[@]}" reboot >/dev/null 2>&1 || true
wait_for 120 grep -q "SIGTERM received" "$LOG" || fail "reboot over ssh did not reach init"
stop_hard
# schema_zero: deletes the store's schema row on the data partition of the
# stopped disk, edited in a copy (e2fsck replays the journal the hard stop
# left; sqlite3 replays the WAL) that is written back.
schema_zero() {
  local start size fs=$OUT/data.img d=$OUT/store rc=0 f
  read -r start size < <(partition "$disk" data) || fail "no data partition in $disk"
  start=$((start * 512)); size=$((size * 512))
  dd if="$disk" of="$fs" bs=1M iflag=skip_bytes,count_bytes skip="$start" count="$size" conv=sparse status=none || fail "copying the data partition out"
  e2fsck -fy "$fs" >"$OUT/e2fsck.log" 2>&1 || rc=$?
  [ "$rc" -le 1 ] || { cat "$OUT/e2fsck.log"; fail "e2fsck of the data partition: exit $rc"; }
  rm -rf "$d" "$OUT/debugfs.log"; mkdir -p "$d"
  for f in alpharen.db alpharen.db-wal; do debugfs -R "dump -p /$f $d/$f" "$fs" >>"$OUT/debugfs.log" 2>&1; done
  [ -s "$d/alpharen.db" ] || { cat "$OUT/debugfs.log"; fail "cannot read alpharen.db from the data partition"; }
  [ "$(sqlite3 "$d/alpharen.db" "DELETE FROM component_schema WHERE name = 'config-document'; SELECT changes();")" = 1 ] \
    || fail "the store had no schema row to delete"
  [ ! -e "$d/alpharen.db-wal" ] || fail "sqlite3 left a WAL beside the store"
  debugfs -w -f - "$fs" >>"$OUT/debugfs.log" 2>&1 <<CMDS
rm /alpharen.db-wal
rm /alpharen.db-shm
rm /alpharen.db
write $d/alpharen.db alpharen.db
CMDS
  debugfs -R "stat /alpharen.db" "$fs" 2>/dev/null | has "Size: $(stat -c %s "$d/alpharen.db")" \
    || { cat "$OUT/debugfs.log"; fail "the edited store was not written back"; }
  dd if="$fs" of="$disk" bs=1M oflag=seek_bytes seek="$start" conv=notrunc status=none || fail "copying the data partition back"
  rm -f "$fs"
}
schema_zero
start
grep -q "slot a from" "$LOG" || fail "did not boot slot A (v2 on trial)"
kept="update: the configuration store (schema tables [0-9]*, configuration 0) is migrated to schema tables [0-9]*, configuration [1-9][0-9]*; a copy from before is kept for slot b in /data/update/pre-migration.db until slot a is committed"
grep -q "$kept" "$LOG" || { grep "update:\|configuration" "$LOG" | tail; fail "slot A did not keep a copy of the store before migrating it"; }
wait_for 120 "${SSH[@]}" config set node.confirm_timeout 300 || fail "config set over ssh on slot A (on trial)"
wait_for 300 grep -q "update: the trial of slot a failed, it is not committed: the health check exited with status 3" "$LOG" \
  || { tail -20 "$LOG"; fail "the failing health check did not fail the trial of slot A"; }
wait_for 300 grep -q "slot b from" "$LOG" || { tail -20 "$LOG"; fail "the node did not reboot into slot B after the failed check"; }
[ "$(grep -c "alpharen: slot a from" "$LOG")" -eq 1 ] || fail "slot A was booted more than once after its check failed"
wait_for 300 "${SSH[@]}" status || fail "ssh after the health-check fallback"
report="slot a failed its health check and was skipped (version $V2, build .*); slot b runs again: the health check exited with status 3; its output ended with:"
wait_for 300 grep -q "$report" "$LOG" || { tail -20 "$LOG"; fail "the failed health check was not reported"; }
grep -A1 "$report" "$LOG" | has "checking $V2 in slot a as uid 65534" || fail "the report lacks the check's output: $(grep -A1 "$report" "$LOG")"
restored="slot a migrated the configuration to schema tables [0-9]*, configuration [1-9][0-9]* and was not committed; slot b runs again with the configuration as it was before (schema tables [0-9]*, configuration 0); changes made while slot a ran are gone"
grep -q "$restored" "$LOG" || { grep "update\|configuration" "$LOG" | tail; fail "slot B did not restore the store kept from before slot A's migration"; }
"${SSH[@]}" config show node | has 'confirm_timeout = 120' || fail "the change made on slot A survived the fallback: $("${SSH[@]}" config show node)"
"${SSH[@]}" system slots --json >"$OUT/slots6.json"
jq -e --arg v "$V2" '.[0].state == "failed" and .[0].version == $v and .[1].booted and .[1].state == "good"' "$OUT/slots6.json" >/dev/null \
  || fail "slots after the health-check fallback: $(cat "$OUT/slots6.json")"
pass "a trial whose [update.health_check] fails: slot A booted once and migrated the store (schema 0) keeping a copy, the node rebooted itself into B, which restored the copy (the change made on A is gone) and reports the check's reason and output"
