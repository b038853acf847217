#!/usr/bin/env bash
# A/B fallback under QEMU (TCG is fine). Slot B gets a corrupt root and
# becomes the preferred loader entry, as a failed update would leave it:
# systemd-boot spends B's three tries, boots slot A again, and the node
# reports the failed slot. The same boot covers the data partition policy:
# unreadable data with `alpharen.data=reformat` on A's command line is
# formatted afresh instead of stopping the boot.
# e2e-lock: image (builds images/out/ and its cache)
. "$(dirname "$0")/../lib.sh"
cd "$ROOT"
build_image
disk=$OUT/ab-disk.img
cp --sparse=always "$IMG" "$disk"
on_exit "rm -f '$disk'"
read -r b_start _ < <(partition "$disk" rootfs-b) || fail "no partition rootfs-b in $disk"
read -r data_start _ < <(partition "$disk" data) || fail "no partition data in $disk"
read -r esp_start _ < <(partition "$disk" esp) || fail "no partition esp in $disk"
dd if=/dev/zero of="$disk" bs=512 seek="$b_start" count=2048 conv=notrunc status=none
dd if=/dev/urandom of="$disk" bs=512 seek="$data_start" count=2048 conv=notrunc status=none
esp="$disk@@$((esp_start * 512))"
entry() { mtype -i "$esp" "::loader/entries/$1"; }
entry alpharen-b+3.conf | sed 's/^version .*/version 3/' >"$OUT/entry-b.conf"
entry alpharen-a+3.conf | sed 's/^options .*/& alpharen.data=reformat/' >"$OUT/entry-a.conf"
mcopy -o -i "$esp" "$OUT/entry-b.conf" ::loader/entries/alpharen-b+3.conf
mcopy -o -i "$esp" "$OUT/entry-a.conf" ::loader/entries/alpharen-a+3.conf

LOG=$OUT/serial-ab.log
read -r WEB SSHP < <(free_ports 2)
FRESH_VARS=1 SERIAL_LOG=$LOG WEB_PORT=$WEB SSH_PORT=$SSHP \
  setsid images/run-qemu.sh "$disk" </dev/null >"$LOG.stdout" 2>&1 &
QEMU=$!
on_exit "kill -- -$QEMU 2>/dev/null"
echo "booting the doctored disk (serial console in $LOG)"
wait_for 600 grep -q "alpharen: ready" "$LOG" || { tail -40 "$LOG"; fail "the node never came up"; }
tries=$(grep -c "cannot mount the root of slot b" "$LOG" || true)
[ "$tries" -eq 3 ] || fail "slot B was tried $tries times, not 3"
grep -q "slot a from" "$LOG" || fail "did not fall back to slot A"
pass "corrupt slot B tried 3 times, then slot A booted"
grep -q "was unreadable and alpharen.data=reformat is set" "$LOG" || { grep init: "$LOG"; fail "unreadable data partition not reformatted"; }
grep -q "cannot mount the data partition" "$LOG" && fail "node runs without its data partition"
pass "unreadable data partition reformatted by policy"
wait_for 300 grep -q "slot b failed all its boot tries" "$LOG" || { tail -20 "$LOG"; fail "the failed slot was not reported"; }
pass "failed slot B reported"
kill -- -"$QEMU" 2>/dev/null; wait "$QEMU" 2>/dev/null || true
entries=$(mdir -b -i "$esp" ::loader/entries)
echo "$entries" | has "alpharen-a.conf" || fail "slot A not marked good: $entries"
echo "$entries" | has "alpharen-b+0-3.conf" || fail "slot B not marked as out of tries: $entries"
pass "loader entries: A good, B out of tries"
