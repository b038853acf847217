#!/usr/bin/env bash
# The console in headless Chromium (Playwright driving Debian's chromium):
# setup, login, config change, history, diff, rollback, risky change, confirm.
. "$(dirname "$0")/../lib.sh"
browser_deps
STATE=$(mktemp -d /tmp/alpharen-webui.XXXXXX)
on_exit "rm -rf $STATE"
seed_ports "$STATE/seed.toml"
start_node "$STATE" --config "$STATE/seed.toml"
wait_for 20 curl -skf "https://127.0.0.1:$HTTPS_PORT/api/v1/health" || fail "web did not come up"
TEST_OUT=$OUT timeout 180 node "$DIR/console.mjs" "https://127.0.0.1:$HTTPS_PORT" "$(cat "$STATE/setup-code")" "$STATE/setup-code" || fail "console test (screenshots in $OUT)"
pass "console walk-through; screenshots in $OUT"
