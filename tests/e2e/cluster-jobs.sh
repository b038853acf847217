#!/usr/bin/env bash
# ARCLST jobs under failure: three members A, B, C run the same
# every-second job (`[integrator]` is cluster-wide). Its service POSTs its
# fire time to a collector on the bridge, outside the members, which
# writes one line per run with the member's address. For about 30 s one
# member at a time is killed with its process tree and started again
# (the next one only once all three agree again). Every fire time from
# the first to the last collected must have run exactly once.
# e2e-timeout: 600
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../cluster-lib.sh"
trap "exit 1" TERM INT
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3

cluster_net A B C
for n in A B C; do start $n; done
cluster_init A lab
c B cluster join "$TOKEN" >/dev/null || fail "B did not join"
c C cluster join "$TOKEN" >/dev/null || fail "C did not join"
wait_for 90 agree A B C || { for n in A B C; do st $n; done; fail "the members do not agree on three members and one leader"; }
pass "A, B and C form a cluster"

# The collector: on the bridge (10.67.0.254), outside every member.
ip netns exec "$NS_S" ip addr add 10.67.0.254/24 dev br0
cat >"$W/collect.py" <<'PY'
import http.server, json, sys

class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
        with open(sys.argv[1], 'a') as f:
            f.write('%d %s\n' % (int(body['at']), self.client_address[0]))
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', '2')
        self.end_headers()
        self.wfile.write(b'{}')

    def log_message(self, *a):
        pass

http.server.ThreadingHTTPServer(('10.67.0.254', 8099), H).serve_forever()
PY
: >"$W/fires.txt"
ip netns exec "$NS_S" "$PY" "$W/collect.py" "$W/fires.txt" >"$W/collect.log" 2>&1 &
COLLECT=$!
on_exit "kill $COLLECT 2>/dev/null"

cat >"$W/tick.py" <<'PY'
from zato.server.service import Service

class Fire(Service):
    name = 'tick.fire'

    def handle(self):
        r = self.out.rest['collect'].conn.post(self.cid, {'at': self.request.meta.fire_time})
        if r.status_code != 200:
            raise Exception('collector answered %s' % r.status_code)
PY
# A new member's KV answers 503 until its nats-server is up.
wait_for 60 c A integrator deploy "$W/tick.py" || { c A integrator deploy "$W/tick.py"; fail "deploy tick.py on A"; }
live() { "$ALPHAREN" ctl --state-dir "$W/${1,,}" --json integrator list | has '"tick.fire"'; }
for n in A B C; do wait_for 30 live $n || fail "tick.fire deployed on A is not live on $n"; done
c A config set 'integrator.outgoing[0]' '{name = "collect", host = "http://10.67.0.254:8099", url_path = "/", data_format = "json"}' >/dev/null \
  || fail "the collector connection not added on A"
c A config set 'integrator.jobs[0]' '{name = "tick", service = "tick.fire", kind = "interval", seconds = 1}' >/dev/null \
  || fail "the tick job not added on A"
wait_for 30 bash -c "[ \$(wc -l <'$W/fires.txt') -ge 3 ]" \
  || { for n in A B C; do c $n integrator jobs; c $n logs integrator | tail -5; done; fail "the tick job did not reach the collector"; }
pass "an every-second job on A, B and C posts its fire times to the collector"

# tick_on NODE: NODE's scheduler has the job again.
tick_on() { "$ALPHAREN" ctl --state-dir "$W/${1,,}" --json integrator jobs | jq -e '.[] | select(.name == "tick") | .next_run_unix != null'; }
began=$(date +%s); kills=0
# One member at a time, each at least once, for at least 30 s (at most 9).
for n in A B C A B C A B C; do
  [ $kills -ge 3 ] && [ $(($(date +%s) - began)) -ge 30 ] && break
  kill_tree $n; kills=$((kills + 1))
  sleep 3
  start $n
  wait_for 90 agree A B C || { for m in A B C; do st $m; done; fail "the members do not agree again after $n was restarted"; }
  wait_for 30 tick_on $n || { c $n integrator jobs; fail "$n has no tick job after its restart"; }
done
sleep 5   # a few fires with all three members up
last=$(date +%s)
sleep 3   # the fires before $last have reached the collector
pass "$kills kills and restarts in $((last - began)) s"

# Per fire time from the first collected to the last before $last: how
# many runs (0 = lost, 2+ = run twice).
counts=$(awk -v last="$last" '$1 < last { n[$1]++; if (!first || $1 < first) first = $1 }
  END { for (t = first; t < last; t++) print t, (t in n ? n[t] : 0) }' "$W/fires.txt")
once=$(awk '$2 == 1' <<<"$counts" | wc -l)
lost=$(awk '$2 == 0 { printf "%s ", $1 }' <<<"$counts")
twice=$(awk '$2 >= 2 { printf "%s ", $1 }' <<<"$counts")
echo "fire times $(sed -n '1s/ .*//p' <<<"$counts")..$((last - 1)): $once run once; run 0 times: [${lost% }]; run 2+ times: [${twice% }]"
[ -z "$lost$twice" ] || {
  for t in $lost $twice; do grep "^$t " "$W/fires.txt" || echo "$t -"; done
  for n in A B C; do echo "--- $n"; c $n logs integrator -n 400 | grep -i "job\|claim" | tail -15; done
  fail "fire times not run exactly once while members were killed: lost [${lost% }], twice [${twice% }]"
}
[ "$(wc -l <<<"$counts")" -ge 30 ] || fail "only $(wc -l <<<"$counts") fire times in the window"
pass "every fire time from the first to the last ran exactly once while members were killed and restarted"
