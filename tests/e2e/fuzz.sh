#!/usr/bin/env bash
# Every cargo-fuzz target (fuzz/fuzz_targets/: the dpx DNS server's packet
# handling, the mail SMTP session), built once in one fuzz workspace and run
# briefly: FUZZ_SECONDS each (20 by default). By hand, for longer, from the
# repository's root:  cargo +nightly fuzz run smtp_session
# (the release profile: slower to build, faster to fuzz)
# libFuzzer's instrumentation needs a nightly toolchain; without one the
# script says so and skips (the randomized unit tests still run).
# e2e-lock: exclusive (CPU-bound builds and fuzzing: nothing to overlap, and it would slow the timed tests beside it)
. "$(dirname "$0")/../lib.sh"
cd "$ROOT"
SECS=${FUZZ_SECONDS:-20}
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "skip: no nightly toolchain (rustup toolchain install nightly), fuzz targets not run"
  exit 0
fi
command -v cargo-fuzz >/dev/null || online cargo install cargo-fuzz --locked -q || fail "cannot install cargo-fuzz"
FUZZ=(online cargo +nightly fuzz)
# --dev: fuzz/Cargo.toml's dev profile (opt-level 1, still with the address
# sanitizer and debug assertions) builds in about 60% of the release
# profile's CPU time and fuzzes at about 75% of its speed (measured on this
# project: dns_packet 27,000 vs 35,000 runs in 20 s).
build_log=$OUT/fuzz-build.log
if ! "${FUZZ[@]}" build --dev --target-dir "$ROOT/target/fuzz" >"$build_log" 2>&1; then
  grep -A12 '^error' "$build_log" | head -n 30
  fail "the fuzz targets do not build (see $build_log)"
fi
targets=$("${FUZZ[@]}" list)
[ -n "$targets" ] || fail "cargo fuzz lists no target in fuzz/"
for target in $targets; do
  log=$OUT/fuzz-$target.log
  if "${FUZZ[@]}" run --dev --target-dir "$ROOT/target/fuzz" "$target" -- \
      -max_total_time="$SECS" -rss_limit_mb=2048 >"$log" 2>&1; then
    runs=$(grep -o 'Done [0-9]* runs' "$log" | tail -n 1)
    [ -n "$runs" ] || { tail -n 20 "$log"; fail "$target: libFuzzer reported no runs"; }
    pass "$target: $runs without a crash"
  else
    tail -n 30 "$log"
    fail "$target found a crash (input in fuzz/artifacts/$target)"
  fi
done
