#!/usr/bin/env bash
# Foundation benchmarks (not pass/fail):
#  1. idle RSS of init + supervisor (PID namespace, no services);
#  2. release binary size: opt-level "z" (release) vs 3 (release-speed);
#  3. `alpharen run` start -> control socket answering, against starting
#     `busybox sleep` (spawn -> exec done) under the same harness, STARTS
#     (default 20) of each: medians, spread, ratio of the medians.
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
BIN=$ALPHAREN
STARTS=${STARTS:-20}
work=$(mktemp -d)
on_exit "rm -rf $work"

echo "## binary size"
TD=${CARGO_TARGET_DIR:-$ROOT/target}
${CARGO:-cargo} build --release -q -p alpharen
${CARGO:-cargo} build --profile release-speed -q -p alpharen
z=$(stat -c %s "$TD/release/alpharen")
o3=$(stat -c %s "$TD/release-speed/alpharen")
echo "opt-level=z: $z bytes; opt-level=3: $o3 bytes; z/3 = $(awk "BEGIN{printf \"%.2f\", $z/$o3}")"

echo "## idle RSS of init + supervisor"
if [ "$(id -u)" -eq 0 ]; then
  unshare --pid --fork --mount-proc "$BIN" init --container --state-dir "$work/pid1" >/dev/null 2>&1 &
  us=$!
  on_exit "kill $us 2>/dev/null; wait $us 2>/dev/null"
  sleep 3
  init=$(cat "/proc/$us/task/$us/children" | tr -d ' ')
  sup=$(cat "/proc/$init/task/$init/children" | tr -d ' ')
  ri=$(awk '/VmRSS/{print $2}' "/proc/$init/status"); rs=$(awk '/VmRSS/{print $2}' "/proc/$sup/status")
  # Both map the same binary and libc, so RSS counts those pages twice;
  # PSS splits shared pages between their users and sums honestly.
  pi=$(awk '/^Pss:/{print $2}' "/proc/$init/smaps_rollup"); ps_=$(awk '/^Pss:/{print $2}' "/proc/$sup/smaps_rollup")
  echo "RSS: init $ri KiB + supervisor $rs KiB = $((ri + rs)) KiB"
  echo "PSS: init $pi KiB + supervisor $ps_ KiB = $((pi + ps_)) KiB (target < 4096 KiB)"
  kill -TERM "$init"; wait || true
else
  echo "skipped (needs root for a PID namespace)"
fi

echo "## start to ready, same harness, $STARTS starts of each"
python3 - "$BIN" "$work" "$STARTS" >"$work/starts" <<'PY' || fail "start measurement failed"
import os, socket, subprocess, sys, time
bin_, work, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def ready_alpharen(i):
    d = f"{work}/run{i}"
    t0 = time.perf_counter()
    p = subprocess.Popen([bin_, "run", "--dev", "--state-dir", d], stderr=subprocess.DEVNULL)
    sock = f"{d}/run/control.sock"
    for _ in range(20000):
        try:
            s = socket.socket(socket.AF_UNIX); s.connect(sock)
            s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"status"}\n')
            if b'"result"' in s.recv(65536):
                break
        except OSError:
            pass
        time.sleep(0.0005)
    dt = time.perf_counter() - t0
    p.terminate(); p.wait()
    return dt
def ready_busybox(i):
    t0 = time.perf_counter()
    p = subprocess.Popen(["busybox", "sleep", "10"])
    for _ in range(20000):
        try:
            if os.readlink(f"/proc/{p.pid}/exe").endswith("busybox"):
                break
        except OSError:
            pass
        time.sleep(0.0005)
    dt = time.perf_counter() - t0
    p.kill(); p.wait()
    return dt
print(*(f"{ready_alpharen(i) * 1000:.2f}" for i in range(n)))
print(*(f"{ready_busybox(i) * 1000:.2f}" for i in range(n)))
PY
{ read -r ours; read -r theirs; } <"$work/starts"
# shellcheck disable=SC2086 # the lists split into values on purpose
{ a=$(stats $ours); b=$(stats $theirs); r=$(ratio "$(median $ours)" "$(median $theirs)"); }
echo "alpharen run -> socket ready (ms): $a"
echo "busybox sleep -> exec'd (ms):      $b"
echo "ratio (medians): ${r}x"
