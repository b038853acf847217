#!/usr/bin/env bash
# Every cargo-fuzz target in the workspace (appliance/*/fuzz), run briefly:
# FUZZ_SECONDS each (20 by default). By hand, for longer:
#   cd appliance/mail && cargo +nightly fuzz run session
# libFuzzer's instrumentation needs a nightly toolchain; without one the
# script says so and skips (the randomized unit tests still run).
# e2e-timeout: 1500 (two sanitizer builds of separate fuzz workspaces take about 14 min on 2 cores)
# e2e-lock: exclusive (CPU-bound builds and fuzzing: nothing to overlap, and it would slow the timed tests beside it)
. "$(dirname "$0")/../lib.sh"
cd "$ROOT"
SECS=${FUZZ_SECONDS:-20}
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "skip: no nightly toolchain (rustup toolchain install nightly), fuzz targets not run"
  exit 0
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked -q || fail "cannot install cargo-fuzz"
for dir in appliance/*/fuzz; do
  crate=$(dirname "$dir")
  for target in $(cd "$crate" && cargo +nightly fuzz list); do
    log=$OUT/fuzz-$(basename "$crate")-$target.log
    if ! (cd "$crate" && cargo +nightly fuzz build --target-dir "$ROOT/target/fuzz" "$target") >"$log" 2>&1; then
      grep -A12 '^error' "$log" | head -n 30
      fail "$(basename "$crate")/$target does not build (see $log)"
    fi
    if (cd "$crate" && cargo +nightly fuzz run --target-dir "$ROOT/target/fuzz" "$target" -- \
        -max_total_time="$SECS" -rss_limit_mb=2048) >"$log" 2>&1; then
      pass "$(basename "$crate")/$target: $(grep -o 'Done [0-9]* runs' "$log" | tail -n 1) without a crash"
    else
      tail -n 30 "$log"
      fail "$(basename "$crate")/$target found a crash (input in $crate/fuzz/artifacts/$target)"
    fi
  done
done
