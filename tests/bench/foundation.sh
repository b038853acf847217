#!/usr/bin/env bash
# Foundation benchmarks (not pass/fail):
#  1. idle RSS of init + supervisor (PID namespace, no services);
#  2. release binary size: opt-level "z" (release) vs 3 (release-speed);
#  3. `alpharen run` start -> control socket answering, against starting
#     `busybox sleep` (spawn -> exec done) under the same harness.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BIN=${ALPHAREN_BIN:-$ROOT/target/release/alpharen}
work=$(mktemp -d)
trap 'pkill -f "alpharen init --container --state-dir $work" 2>/dev/null; rm -rf "$work"' EXIT

echo "## binary size"
cargo build --release -q
cargo build --profile release-speed -q
z=$(stat -c %s target/release/alpharen)
o3=$(stat -c %s target/release-speed/alpharen)
echo "opt-level=z: $z bytes; opt-level=3: $o3 bytes; z/3 = $(awk "BEGIN{printf \"%.2f\", $z/$o3}")"

echo "## idle RSS of init + supervisor"
if [ "$(id -u)" -eq 0 ]; then
  unshare --pid --fork --mount-proc "$BIN" init --container --state-dir "$work/pid1" >/dev/null 2>&1 &
  us=$!
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

echo "## start to ready (median of 20), same harness"
python3 - "$BIN" "$work" <<'PY'
import os, socket, statistics, subprocess, sys, time, json
bin_, work = sys.argv[1], sys.argv[2]
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
a = statistics.median(ready_alpharen(i) for i in range(20))
b = statistics.median(ready_busybox(i) for i in range(20))
print(f"alpharen run -> socket ready: {a*1000:.1f} ms; busybox sleep -> exec'd: {b*1000:.1f} ms; ratio {a/b:.1f}x")
PY
