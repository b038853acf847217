# Helpers for end-to-end tests. Source it: `. "$(dirname "$0")/../lib.sh"`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ALPHAREN=${ALPHAREN_BIN:-$ROOT/target/debug/alpharen}
OUT=${TEST_OUT:-$ROOT/tests/out}
mkdir -p "$OUT"
_cleanups=()
cleanup() { local i; for ((i=${#_cleanups[@]}-1; i>=0; i--)); do eval "${_cleanups[i]}" || true; done; }
trap cleanup EXIT
on_exit() { _cleanups+=("$*"); }
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }
# wait_for SECONDS CMD...: run CMD every 0.1 s until it succeeds or time runs out.
wait_for() {
  local limit=$1; shift
  local tries=$((limit * 10))
  for ((i = 0; i < tries; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}
# start_node DIR [ARGS...]: `alpharen run --dev` in the background; waits for the socket.
start_node() {
  local dir=$1; shift
  mkdir -p "$dir"
  "$ALPHAREN" run --state-dir "$dir" --dev "$@" >"$dir/console.log" 2>&1 &
  NODE_PID=$!
  on_exit "kill $NODE_PID 2>/dev/null; wait $NODE_PID 2>/dev/null"
  wait_for 20 "$ALPHAREN" ctl --state-dir "$dir" status || { cat "$dir/console.log"; fail "node in $dir did not start"; }
}
ctl() { "$ALPHAREN" ctl --state-dir "$STATE" "$@"; }
# has PATTERN...: like `grep -q`, but reads all its input, so the writer of
# a pipe is never cut off by SIGPIPE (which `set -o pipefail` would report).
has() { grep "$@" >/dev/null; }
export -f has   # also inside `bash -c` waits
# seed_ports FILE: writes a `run --config` seed that puts the node's
# listeners on free loopback ports instead of the dev defaults (8443, 8080,
# 2222, 2525, 11223), so a test can run beside other nodes on this machine.
# Sets HTTPS_PORT HTTP_PORT SSH_PORT SMTP_PORT LB_PORT.
seed_ports() {
  read -r HTTPS_PORT HTTP_PORT SSH_PORT SMTP_PORT LB_PORT < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
  cat >"$1" <<TOML
[web]
https_port = $HTTPS_PORT
http_port = $HTTP_PORT
[ssh]
port = $SSH_PORT
[mail.listen]
port = $SMTP_PORT
[integrator]
port = $LB_PORT
TOML
}
# build_image: the release binary and the QEMU image from it, rebuilt only
# when one of their inputs is newer than the image. Sets IMG.
build_image() { # [BOARD], default qemu-x86_64
  local board=${1:-qemu-x86_64}
  IMG=$ROOT/images/out/alpharen-$board.img
  (cd "$ROOT" && cargo build --release -q)
  if [ -f "$IMG" ] && [ -z "$(find "$ROOT/target/release/alpharen" "$ROOT/images/build.sh" "$ROOT/images/initramfs-init" \
      "$ROOT/board" "$ROOT/overlays" -newer "$IMG" -print -quit)" ]; then
    return 0
  fi
  ALPHAREN_BIN=$ROOT/target/release/alpharen "$ROOT/images/build.sh" "$board" >"$OUT/build.log" 2>&1 || { cat "$OUT/build.log"; fail "image build ($board)"; }
}
