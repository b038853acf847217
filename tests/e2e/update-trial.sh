#!/usr/bin/env bash
# The health gate of a trial boot and the scheduled reboot (docs/update.md),
# in development mode on a stand-in disk (ALPHAREN_UPDATE_TARGET): slot b
# holds version 0.2.0 on trial (alpharen-b+2-1.conf, as systemd-boot leaves
# it while booting it). The user's health check ([update] health_check)
# fails: b is marked failed (+0) and the reason kept; the node started
# again from slot a reports which version failed and why (event and admin
# notification), once. Then b on trial again with a check that passes: b
# is committed (alpharen-b.conf). `ctl reboot --at HH:MM`, `ctl system
# slots` showing it, `reboot --cancel`, bad times refused before any
# upload; the same through PUT/GET/DELETE /api/v1/system/reboot/schedule.
# The reboot itself needs a real node, and is not tested here.
. "$(dirname "$0")/../lib.sh"
needs jq
STATE=$(mktemp -d /tmp/alpharen-trial.XXXXXX)
T=$(mktemp -d /tmp/alpharen-trial-t.XXXXXX)
on_exit "rm -rf $STATE $T"
disk=$T/disk
mkdir -p "$disk/esp/loader/entries" "$disk/esp/a" "$disk/esp/b"
for s in a b; do
  truncate -s 1M "$disk/rootfs-$s"
  printf 'title ALPHA-REN slot %s\nsort-key alpharen\nlinux /%s/vmlinuz\noptions alpharen.slot=%s\n' $s $s $s >"$T/entry-$s.conf"
done
cp "$T/entry-a.conf" "$disk/esp/loader/entries/alpharen-a.conf"
cp "$T/entry-b.conf" "$disk/esp/loader/entries/alpharen-b+2-1.conf"
printf '{"version":"0.2.0","build_id":"e2e-v2","board":"qemu-x86_64","installed_at":1,"signer":"k"}\n' >"$disk/esp/b/slot.json"
echo b >"$disk/booted"
printf 'VERSION_ID=0.2.0\nBUILD_ID=e2e-v2\nALPHAREN_BOARD=qemu-x86_64\n' >"$T/os-release"
entries() { (cd "$disk/esp/loader/entries" && ls | tr '\n' ' '); }

# The check passes once $T/healthy exists. A supervisor running as root
# separates privileges, so it runs as nobody (uid 65534), as on a node;
# otherwise as this user.
chmod 755 "$T"
uid=$(id -u); [ "$uid" = 0 ] && uid=65534
cat >"$STATE/seed.toml" <<EOF
[update.health_check]
command = "/bin/sh"
args = ["-c", "echo checking slot \$ALPHAREN_SLOT as uid \$(id -u); if [ -e $T/healthy ]; then exit 0; fi; echo database unreachable >&2; exit 3"]
timeout = 30
EOF
seed_ports "$STATE/seed.toml"
export ALPHAREN_UPDATE_TARGET=$disk ALPHAREN_OS_RELEASE=$T/os-release
stop() {
  ctl poweroff >/dev/null 2>&1 || fail "poweroff"
  wait_for 30 bash -c "! kill -0 $NODE_PID" || fail "the node did not stop"
}

start_node "$STATE" --config "$STATE/seed.toml"
ctl --json system slots | jq -e '.[1] | .state == "trial" and .booted' >/dev/null || fail "b not booted on trial"
wait_for 120 has "update: the trial of slot b failed" "$STATE/console.log" \
  || fail "no verdict on the trial: $(grep -E 'update|boot|settle' "$STATE/console.log" | tail -5)"
has "update: running the health check /bin/sh (timeout 30 s)" "$STATE/console.log" || fail "the check was not announced"
has "it is not committed: the health check exited with status 3; its output ended with:" "$STATE/console.log" \
  || fail "the reason: $(grep -A2 'trial of slot b failed' "$STATE/console.log")"
[ "$(entries)" = "alpharen-a.conf alpharen-b+0-3.conf " ] || fail "entries after the failed check: $(entries)"
jq -e '.slot == "b" and .version == "0.2.0" and (.reason | startswith("the health check exited with status 3; its output ended with:\n") and endswith("checking slot b as uid '"$uid"'\ndatabase unreachable")) and .reported == false' \
  "$STATE/update/trial-failure.json" >/dev/null || fail "the failure record: $(cat "$STATE/update/trial-failure.json")"
has "development mode, not rebooting" "$STATE/console.log" || fail "no word on the reboot"
ctl --json system slots | jq -e '.[1].state == "failed" and .[1].version == "0.2.0"' >/dev/null || fail "b not failed in system slots"
pass "a failing health check (run as uid $uid): b marked failed (+0-3), the reason and the output's tail kept on the data partition"

# Scheduled reboot: set, shown, replaced, cancelled; bad times refused.
ctl reboot --at 03:00 >"$T/at.out" 2>&1 || fail "reboot --at: $(cat "$T/at.out")"
has "reboot scheduled for 20[0-9-]* 03:00:00 UTC" "$T/at.out" || fail "reboot --at said: $(cat "$T/at.out")"
at=$(ctl --json reboot --at 4:30 | jq -e .at) || fail "reboot --at 4:30"
now=$(date +%s)
[ "$at" -gt "$now" ] && [ "$at" -le $((now + 86400)) ] && [ $(( at % 86400 )) = $(( (4 * 60 + 30) * 60 )) ] || fail "scheduled at $at (now $now)"
ctl system slots >"$T/slots.out" || fail "system slots"
has "reboot scheduled for .* 04:30:00 UTC" "$T/slots.out" || fail "slots do not show the pending reboot: $(cat "$T/slots.out")"
has "reboot scheduled for .* 03:00 UTC cancelled" "$STATE/console.log" || fail "replacing a schedule is not logged"
ctl reboot --cancel >"$T/cancel.out" 2>&1 || fail "reboot --cancel"
has "no reboot scheduled" "$T/cancel.out" || fail "cancel said: $(cat "$T/cancel.out")"
ctl system slots >"$T/slots.out"
has "reboot scheduled" "$T/slots.out" && fail "still pending after cancel: $(cat "$T/slots.out")"
if ctl reboot --at 24:00 >"$T/bad.out" 2>&1; then fail "reboot --at 24:00 accepted"; fi
has '"24:00" is not a time of day HH:MM' "$T/bad.out" || fail "bad time: $(cat "$T/bad.out")"
if ctl system update "$T/os-release" --reboot 25:00 >"$T/bad.out" 2>&1; then fail "--reboot 25:00 accepted"; fi
has '"25:00" is not now, never or a time of day HH:MM' "$T/bad.out" || fail "bad --reboot: $(cat "$T/bad.out")"
has "update: upload" "$STATE/console.log" && fail "an upload started despite a bad --reboot"
pass "ctl reboot --at HH:MM schedules (shown by system slots, replaced, cancelled); bad times refused before any upload"

# The same through the API, as an admin after setup.
API=https://127.0.0.1:$HTTPS_PORT/api/v1
curl -skf -o /dev/null -X POST "$API/setup" -H 'content-type: application/json' --data-binary \
  "$(jq -nc --arg c "$(cat "$STATE/setup-code")" '{code: $c, admin_password: "correct horse", hostname: "dev1"}')" || fail "setup"
curl -skf -c "$T/jar" -o "$T/login.json" -X POST "$API/session" -H 'content-type: application/json' \
  --data-binary '{"username":"admin","password":"correct horse"}' || fail "login"
CSRF=(-b "$T/jar" -H "x-csrf-token: $(jq -r .csrf "$T/login.json")")
schedule() { curl -sk -o "$T/api.json" -w '%{http_code}' "${CSRF[@]}" -H 'content-type: application/json' "$@" "$API/system/reboot/schedule"; }
c=$(schedule -X PUT --data '{"at":"05:15"}')
[ "$c" = 200 ] && jq -e '.at % 86400 == 18900' "$T/api.json" >/dev/null || fail "PUT schedule: HTTP $c $(cat "$T/api.json")"
c=$(schedule -X GET)
[ "$c" = 200 ] && jq -e '.at % 86400 == 18900' "$T/api.json" >/dev/null || fail "GET schedule: HTTP $c $(cat "$T/api.json")"
c=$(schedule -X PUT --data '{"at":"5pm"}')
[ "$c" = 400 ] && jq -e '.message | contains("\"5pm\" is not a time of day HH:MM")' "$T/api.json" >/dev/null || fail "PUT 5pm: HTTP $c $(cat "$T/api.json")"
c=$(schedule -X DELETE)
[ "$c" = 200 ] && jq -e '.at == null' "$T/api.json" >/dev/null || fail "DELETE schedule: HTTP $c $(cat "$T/api.json")"
ctl --json system slots >/dev/null && ctl system slots | has "reboot scheduled" && fail "still scheduled after DELETE"
pass "PUT/GET/DELETE /api/v1/system/reboot/schedule; a bad time is a 400 naming it"

# The old slot boots next and reports which version failed, and why.
stop
echo a >"$disk/booted"
start_node "$STATE"
wait_for 120 has "slot b failed its health check and was skipped (version 0.2.0, build e2e-v2); slot a runs again: the health check exited with status 3" "$STATE/console.log" \
  || fail "no report from slot a: $(grep -E 'slot|update' "$STATE/console.log" | tail -5)"
has "notification: boot slot failed: slot b failed its health check" "$STATE/console.log" || fail "no admin notification"
jq -e '.reported == true' "$STATE/update/trial-failure.json" >/dev/null || fail "not recorded as reported"
[ "$(entries)" = "alpharen-a.conf alpharen-b+0-3.conf " ] || fail "entries on slot a: $(entries)"
pass "slot a reports the failed version 0.2.0 with the check's reason (event and notification), and records it as reported"

# b on trial again, and now the check passes: committed.
stop
mv "$disk/esp/loader/entries/alpharen-b+0-3.conf" "$disk/esp/loader/entries/alpharen-b+2-1.conf"
echo b >"$disk/booted"
touch "$T/healthy"
start_node "$STATE"
wait_for 120 has "update: slot b (version 0.2.0, build e2e-v2) passed its trial boot and is committed" "$STATE/console.log" \
  || fail "not committed: $(grep -E 'slot|update' "$STATE/console.log" | tail -5)"
has "notification: update committed: update: slot b" "$STATE/console.log" || fail "no commit notification"
[ "$(entries)" = "alpharen-a.conf alpharen-b.conf " ] || fail "entries after the commit: $(entries)"
# start_node begins a new console.log: any report in it would be a repeat.
has "notification: boot slot failed" "$STATE/console.log" && fail "the old failure was reported again"
pass "a passing health check commits b (alpharen-b.conf) with an event and a notification; the old failure is not reported again"
