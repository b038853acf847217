#!/usr/bin/env bash
# The Raspberry Pi's update path (docs/update.md, "Raspberry Pi 4") in
# development mode on a Pi stand-in disk (ALPHAREN_UPDATE_TARGET with
# autoboot/, boot-a/, boot-b/, rootfs-a, rootfs-b, laid out as
# buildroot/board/post-image.sh makes the card): a rpi4-64 bundle made by
# images/bundle.sh from a stand-in slot is installed with `ctl system
# update`: b's boot partition gets the parts (overlays/ included) and a
# cmdline.txt naming its root, its old files are gone, autoboot.txt arms
# b under [tryboot], `ctl system slots` shows b on trial with 1 try. A
# corrupt bundle leaves b disarmed and invalid. Then the node starts as
# the firmware's trial boot of b ("b tryboot", the record marked tried as
# the reboot does) and the health gate commits b: autoboot.txt's default
# becomes partition 3. No Pi here: the firmware, the mounts and reboot(2)
# are not exercised.
. "$(dirname "$0")/../lib.sh"
for tool in jq minisign; do command -v $tool >/dev/null || fail "needs $tool (scripts/deps.sh)"; done
STATE=$(mktemp -d /tmp/alpharen-pi.XXXXXX)
T=$STATE/t
on_exit "rm -rf $STATE"
slot=$T/out/slot-rpi4-64
disk=$T/disk
mkdir -p "$slot" "$disk/autoboot" "$T/keys"

# The bundle: version 0.2.0 of a stand-in slot, parts as post-image.sh names them.
cp "$ROOT/buildroot/board/rpi4-64/config.txt" "$slot/config.txt"
head -c $((3 * 1024 * 1024 + 77)) /dev/urandom >"$slot/rootfs.squashfs"
parts="rootfs=rootfs.squashfs"
for f in bcm2711-rpi-4-b.dtb config.txt fixup4.dat kernel8.img overlays..disable-bt.dtbo start4.elf; do
  [ -e "$slot/$f" ] || head -c 20000 /dev/urandom >"$slot/$f"
  parts="$parts $f=$f"
done
printf 'VERSION=0.2.0\nBUILD_ID=e2e-pi2\nPARTS="%s"\n' "$parts" >"$slot/slot.env"
IMAGES_OUT=$T/out SLOT_DIR=$slot ALPHAREN_BIN=$ALPHAREN "$ROOT/images/bundle.sh" rpi4-64 >"$T/bundle.out" 2>&1 \
  || { cat "$T/bundle.out"; fail "images/bundle.sh rpi4-64"; }
aru=$T/out/alpharen-rpi4-64-0.2.0.aru
cp "$T/out/update-dev.pub" "$T/keys/"

# The card as flashed, booted from slot a.
printf '[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n' >"$disk/autoboot/autoboot.txt"
for s in a b; do
  n=$([ $s = a ] && echo 05 || echo 06)
  mkdir -p "$disk/boot-$s/overlays"
  cp "$ROOT/buildroot/board/rpi4-64/config.txt" "$disk/boot-$s/"
  echo "old kernel $s" >"$disk/boot-$s/kernel8.img"
  echo old >"$disk/boot-$s/overlays/old.dtbo"
  printf 'console=serial0,115200 console=tty1 panic=10 loglevel=4 root=PARTUUID=41524e34-%s rootfstype=squashfs ro rootwait alpharen.slot=%s\n' $n $s >"$disk/boot-$s/cmdline.txt"
  truncate -s 8M "$disk/rootfs-$s"
done
cp "$disk/boot-a/cmdline.txt" "$T/cmdline-a"
echo a >"$disk/booted"
printf 'NAME="ALPHA-REN"\nVERSION_ID=0.1.0\nBUILD_ID=e2e-pi1\nALPHAREN_BOARD=rpi4-64\n' >"$T/os-release"
export ALPHAREN_UPDATE_TARGET=$disk ALPHAREN_UPDATE_KEYS=$T/keys ALPHAREN_OS_RELEASE=$T/os-release
seed_ports "$STATE/seed.toml"
start_node "$STATE" --config "$STATE/seed.toml"

ctl --json system slots >"$T/slots.json" || fail "system slots"
jq -e '.[0] == {slot:"a",state:"good",booted:true,version:"0.1.0",build_id:"e2e-pi1"} and .[1].state == "invalid" and .[1].booted == false' "$T/slots.json" >/dev/null \
  || fail "slots before: $(cat "$T/slots.json")"
pass "system slots on a Pi stand-in: a good and booted (0.1.0), b invalid (no record)"

ctl system update "$aru" >"$T/update.out" 2>&1 || { cat "$T/update.out"; fail "system update"; }
has "installed version 0.2.0 (build e2e-pi2) into slot b" "$T/update.out" || fail "update said: $(cat "$T/update.out")"
cmp -n "$(stat -c %s "$slot/rootfs.squashfs")" "$slot/rootfs.squashfs" "$disk/rootfs-b" || fail "rootfs-b does not hold the rootfs part"
for f in bcm2711-rpi-4-b.dtb config.txt fixup4.dat kernel8.img start4.elf; do cmp "$slot/$f" "$disk/boot-b/$f" || fail "boot-b/$f"; done
cmp "$slot/overlays..disable-bt.dtbo" "$disk/boot-b/overlays/disable-bt.dtbo" || fail "boot-b/overlays/disable-bt.dtbo"
[ ! -e "$disk/boot-b/overlays/old.dtbo" ] || fail "b's old overlay is still there"
[ "$(cat "$disk/boot-b/cmdline.txt")" = "$(sed 's/-05 /-06 /; s/alpharen.slot=a/alpharen.slot=b/' "$T/cmdline-a")" ] \
  || fail "b's cmdline.txt: $(cat "$disk/boot-b/cmdline.txt")"
[ "$(cat "$disk/boot-a/kernel8.img")" = "old kernel a" ] && cmp "$T/cmdline-a" "$disk/boot-a/cmdline.txt" || fail "slot a was touched"
grep -qx 'boot_partition=3' <(sed -n '/^\[tryboot\]/,$p' "$disk/autoboot/autoboot.txt") || fail "b not armed: $(cat "$disk/autoboot/autoboot.txt")"
jq -e '.version == "0.2.0" and .tried == false' "$disk/autoboot/slot-b.json" >/dev/null || fail "b's record: $(cat "$disk/autoboot/slot-b.json")"
ctl --json system slots | jq -e '.[1] | .state == "trial" and .tries_left == 1 and .version == "0.2.0"' >/dev/null \
  || fail "slots after install: $(ctl --json system slots)"
pass "installed into b: parts on boot-b (overlays/ too) and rootfs-b, b's cmdline.txt, old files gone, a untouched, b armed ([tryboot] 3), trial with 1 try"

# A flipped byte near the end: refused, b disarmed and invalid.
cp "$aru" "$T/flipped.aru"
size=$(stat -c %s "$aru")
printf '\xff' | dd of="$T/flipped.aru" bs=1 seek=$((size - 5000)) conv=notrunc status=none
if ctl system update "$T/flipped.aru" >"$T/flipped.out" 2>&1; then fail "a flipped byte was installed"; fi
has "is corrupt" "$T/flipped.out" || fail "flipped: $(cat "$T/flipped.out")"
grep -qx 'boot_partition=2' <(sed -n '/^\[tryboot\]/,$p' "$disk/autoboot/autoboot.txt") || fail "b still armed: $(cat "$disk/autoboot/autoboot.txt")"
[ ! -e "$disk/autoboot/slot-b.json" ] || fail "b's record kept after a failed install"
ctl --json system slots | jq -e '.[1].state == "invalid"' >/dev/null || fail "b not invalid: $(ctl --json system slots)"
pass "a flipped byte: refused ($(grep -o 'block [0-9]* .*corrupt' "$T/flipped.out" | head -1)), b disarmed and invalid"
ctl system update "$aru" >"$T/update.out" 2>&1 || { cat "$T/update.out"; fail "system update again"; }

# The trial boot: what the reboot and the firmware leave (record tried,
# the tryboot flag); the gate commits b.
ctl poweroff >/dev/null 2>&1 || fail "poweroff"
wait_for 30 bash -c "! kill -0 $NODE_PID" || fail "the node did not stop"
jq '.tried = true' "$disk/autoboot/slot-b.json" >"$T/rec" && mv "$T/rec" "$disk/autoboot/slot-b.json"
echo "b tryboot" >"$disk/booted"
printf 'NAME="ALPHA-REN"\nVERSION_ID=0.2.0\nBUILD_ID=e2e-pi2\nALPHAREN_BOARD=rpi4-64\n' >"$T/os-release"
start_node "$STATE" --config "$STATE/seed.toml"
ctl --json system slots | jq -e '.[1] | .state == "trial" and .booted and .tries_left == 0' >/dev/null \
  || fail "b not on its trial boot: $(ctl --json system slots)"
wait_for 120 has "passed its trial boot and is committed" "$STATE/console.log" \
  || fail "b not committed: $(grep -E 'update|boot|settle' "$STATE/console.log" | tail -5)"
grep -qx 'boot_partition=3' <(sed -n '1,/^\[tryboot\]/p' "$disk/autoboot/autoboot.txt") || fail "default not b: $(cat "$disk/autoboot/autoboot.txt")"
jq -e '.tried == false' "$disk/autoboot/slot-b.json" >/dev/null || fail "b's record after commit: $(cat "$disk/autoboot/slot-b.json")"
ctl --json system slots | jq -e '.[0].state == "good" and .[1].state == "good"' >/dev/null || fail "slots after commit: $(ctl --json system slots)"
pass "b's trial boot passes the gate: autoboot.txt's default is partition 3, b good"
