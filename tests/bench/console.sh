#!/usr/bin/env bash
# The console's weight and time to content per page, with every page
# holding content (tests/console-seed.sh): RUNS cold loads of each page in
# Debian's Chromium by a logged-in admin (cache off), counting requests
# and bytes until the page's view shows its data, and the time from the
# navigation's start to then (medians and spread). Also the console's
# static files in total, against the 150 KB budget of issue #20. No peer:
# absolute figures. Not pass/fail, but a failed load, a request to
# another origin or a browser error stops it.
#   RUNS=5 tests/bench/console.sh
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/console-seed.sh"
browser_deps
STATE=$(mktemp -d /tmp/console-bench.XXXXXX); on_exit "rm -rf $STATE"
seeded_console "$STATE"
TEST_OUT=$STATE timeout 600 node "$DIR/weight.mjs" "$BASE" "$PASSWORD" "$RUNS" >"$STATE/weight.jsonl" \
  || fail "the console did not load (see above)"
python3 - "$STATE/weight.jsonl" <<'PY' || fail "reading the measurements"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def spread(v):
    return f"{statistics.median(v):7.1f} ({min(v):.1f}–{max(v):.1f})"
print(f"{'page':28} {'requests':>8} {'KB on the wire':>15} {'KB bodies':>10}   ms to content, median (min–max)")
for r in rows:
    if "page" not in r:
        continue
    s = r["samples"]
    med = lambda k: statistics.median(x[k] for x in s)
    print(f"{r['page']:28} {med('requests'):8.0f} {med('wire') / 1000:15.1f} {med('body') / 1000:10.1f}   {spread([x['ms'] for x in s])}  n {len(s)}")
files = next(r["static_files"] for r in rows if "static_files" in r)
total = sum(files.values())
print(f"static files: {len(files)}, {total / 1000:.1f} KB uncompressed in total (budget 150 KB); no request left the node")
PY
