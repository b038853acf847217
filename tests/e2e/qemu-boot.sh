#!/usr/bin/env bash
# The node image boots under QEMU (TCG is fine): systemd-boot picks slot A,
# the initramfs mounts its squashfs, `alpharen init` mounts the data
# partition and the supervisor reports ready with a setup code on the serial
# console. A second boot of the same disk keeps the data partition: no new
# setup code file is made, the same one is shown.
. "$(dirname "$0")/../lib.sh"
cd "$ROOT"
IMG=$ROOT/images/out/alpharen-qemu-x86_64.img
[ -x target/release/alpharen ] || cargo build --release -q
images/build.sh qemu-x86_64 >"$OUT/build.log" 2>&1 || { cat "$OUT/build.log"; fail "image build"; }
disk=$OUT/disk.img
cp --sparse=always "$IMG" "$disk"
boot() {  # boot LOG: start QEMU in the background with its serial in LOG
  SERIAL_LOG=$1 WEB_PORT=$((20000 + RANDOM % 20000)) SSH_PORT=$((20000 + RANDOM % 20000)) \
    setsid images/run-qemu.sh "$disk" </dev/null >"$1.stdout" 2>&1 &
  QEMU=$!
  on_exit "kill -- -$QEMU 2>/dev/null"
}
boot "$OUT/serial1.log"
wait_for 400 grep -q "alpharen: ready" "$OUT/serial1.log" || { tail -30 "$OUT/serial1.log"; fail "first boot did not reach ready"; }
grep -q "slot a from /dev/vda2" "$OUT/serial1.log" || fail "did not boot slot A"
code1=$(sed -n 's/.*setup code \([A-Z0-9-]*\).*/\1/p' "$OUT/serial1.log" | head -n 1)
[ -n "$code1" ] || fail "no setup code on the console"
grep -q "cannot mount the data partition" "$OUT/serial1.log" && fail "data partition not mounted"
pass "first boot ready, setup code $code1"
kill -- -"$QEMU"; wait "$QEMU" 2>/dev/null || true
boot "$OUT/serial2.log"
wait_for 400 grep -q "alpharen: ready" "$OUT/serial2.log" || { tail -30 "$OUT/serial2.log"; fail "second boot did not reach ready"; }
code2=$(sed -n 's/.*setup code \([A-Z0-9-]*\).*/\1/p' "$OUT/serial2.log" | head -n 1)
[ "$code2" = "$code1" ] || fail "second boot shows setup code '$code2', not '$code1': data partition not kept"
pass "second boot ready on the same data partition"
