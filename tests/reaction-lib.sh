# Helpers shared by the reaction tests and its bench. Source after
# tests/lib.sh (or tests/bench/lib.sh); they use STATE (the node's state
# directory) and W (a work directory the service users may read).

# reaction_secrets: a random secret each for host1 and host2 in S1, S2
# and the files $W/s1, $W/s2 (0600), put into the node's secret store (a
# seed holds no secrets); waits for the node's certificate.
reaction_secrets() {
  S1=$(head -c 24 /dev/urandom | base64); S2=$(head -c 24 /dev/urandom | base64)
  printf '%s\n' "$S1" >"$W/s1"; printf '%s\n' "$S2" >"$W/s2"; chmod 600 "$W/s1" "$W/s2"
  printf '[secrets]\n"reaction.agent.host1" = "%s"\n"reaction.agent.host2" = "%s"\n' "$S1" "$S2" >"$W/secrets.toml"
  ctl config apply -f "$W/secrets.toml" -m "reaction agent secrets" >"$W/apply.out" || { cat "$W/apply.out"; fail "config apply [secrets]"; }
  rm "$W/secrets.toml"
  wait_for 30 test -s "$STATE/tls/cert.pem" || fail "no node certificate"
}

# reaction_loopback_agents PORT [AGENT-ARGS...]: host1 (--reader) and
# host2 (--executor) on loopback, separate processes, logs in
# $W/host*.log; waits until both are online and the reader watches.
reaction_loopback_agents() {
  local port=$1 a name; shift
  wait_for 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" || fail "agent API not listening on $port"
  for a in host1:--reader host2:--executor; do
    name=${a%%:*}
    "$ALPHAREN" agent --engine "https://127.0.0.1:$port" --name "$name" --secret-file "$W/s${name#host}" \
      --engine-cert "$STATE/tls/cert.pem" --state-dir "$W/$name" "$@" "${a#*:}" >>"$W/$name.log" 2>&1 &
    on_exit "kill $! 2>/dev/null"
  done
  wait_for 30 bash -c "$(printf '%q ' "$ALPHAREN") ctl --state-dir $STATE --json reaction status | jq -e '[.agents[] | select(.online)] | length == 2'" \
    || fail "agents not online: $(ctl reaction status; cat "$W"/host*.log)"
  wait_for 20 grep -q "watching" "$W/host1.log" || fail "the reader did not get its watch list: $(cat "$W/host1.log")"
}

# reaction_agents_toml PORT LOG PATTERN...: a seed's [reaction] with its
# agent API on PORT, host1 watching LOG for the PATTERNs, and host2.
reaction_agents_toml() {
  local port=$1 log=$2; shift 2
  printf '[reaction]\nport = %s\n[[reaction.agents]]\nname = "host1"\n[[reaction.agents.watch]]\npath = "%s"\npatterns = [%s]\n[[reaction.agents]]\nname = "host2"\n' \
    "$port" "$log" "$(printf '"%s", ' "$@" | sed 's/, $//')"
}

# reaction_flaky_flow: the flow "flaky": `check` (host2) fails unless
# $W/flag exists; `after` then appends a line to $W/flaky.out.
reaction_flaky_flow() {
  cat <<TOML
[[reaction.flows]]
name = "flaky"
[[reaction.flows.tasks]]
name = "check"
kind = "command"
host = "host2"
command = "test -f $W/flag"
[[reaction.flows.tasks]]
name = "after"
kind = "command"
host = "host2"
command = "echo after >>$W/flaky.out"
TOML
}
