#!/usr/bin/env bash
# axe-core (WCAG 2.x level A) on every console page at desktop and phone
# width, with each page holding content (tests/console-seed.sh).
. "$(dirname "$0")/../lib.sh"
. "$ROOT/tests/console-seed.sh"
browser_deps
STATE=$(mktemp -d /tmp/alpharen-a11y.XXXXXX); on_exit "rm -rf $STATE"
seeded_console "$STATE"
TEST_OUT=$OUT timeout 300 node "$DIR/a11y.mjs" "$BASE" "$PASSWORD" || fail "accessibility check (screenshots in $OUT)"
pass "axe-core: no WCAG level A violation on any console page, desktop or phone"
