# Helpers for the pgha test and benchmark: two PostgreSQL 15 servers with
# sshd (namespaces A and B), the node with the controller (C) and an HTTP
# referee (R), all on one bridge in a switch namespace (S). Source after
# tests/lib.sh. Nothing leaves the namespaces created here.
PGBIN=/usr/lib/postgresql/15/bin
command -v /usr/sbin/sshd >/dev/null || fail "sshd missing (scripts/deps.sh)"
[ -x $PGBIN/postgres ] || fail "PostgreSQL 15 missing (scripts/deps.sh)"
command -v jq >/dev/null || fail "jq missing (scripts/deps.sh)"

# A TERM (timeout) still runs the cleanups.
trap "exit 1" TERM INT
SFX=$$
NS_S=pg-s-$SFX
# A, B: database servers; C: the node; R: referee; K: backup storage.
declare -A IP=([A]=10.66.0.1 [B]=10.66.0.2 [C]=10.66.0.3 [R]=10.66.0.4 [K]=10.66.0.5)
declare -A NS=([A]=pg-a-$SFX [B]=pg-b-$SFX [C]=pg-c-$SFX [R]=pg-r-$SFX [K]=pg-k-$SFX)
REPL_PWD=r3pl-$SFX

in_ns() { local n=$1; shift; ip netns exec "${NS[$n]}" "$@"; }
# sql X QUERY: one value from server X as the superuser (trusted on the bridge).
sql() { in_ns "$1" runuser -u postgres -- $PGBIN/psql -X -At -h "${IP[$1]}" -U postgres -d postgres -c "$2"; }
is_primary() { [ "$(sql "$1" 'SELECT NOT pg_is_in_recovery()' 2>/dev/null)" = t ]; }
is_streaming() { [ "$(sql "$1" "SELECT status FROM pg_stat_wal_receiver" 2>/dev/null)" = streaming ]; }
postmaster_pid() { head -1 "$T/$1/data/postmaster.pid" 2>/dev/null; }

# pg_net [EXTRA...]: the switch, the hosts A B C R K on it, and EXTRA
# hosts (more nodes) from 10.66.0.6 on.
pg_net() {
  ip netns add $NS_S; on_exit "ip netns del $NS_S"
  ip netns exec $NS_S ip link add br0 type bridge
  ip netns exec $NS_S ip link set br0 up
  local n i=5
  for n in "$@"; do i=$((i + 1)); IP[$n]=10.66.0.$i; NS[$n]=pg-${n,,}-$SFX; done
  for n in A B C R K "$@"; do
    ip netns add "${NS[$n]}"; on_exit "ip netns del ${NS[$n]}"
    ip link add eth0 netns "${NS[$n]}" type veth peer name "p$n" netns $NS_S
    ip netns exec $NS_S ip link set "p$n" master br0 up
    in_ns $n ip link set lo up
    in_ns $n ip addr add "${IP[$n]}/24" dev eth0
    in_ns $n ip link set eth0 up
  done
}
# unplug X / plug X: X's cable out of the switch and back.
unplug() { ip netns exec $NS_S ip link set "p$1" down; }
plug() { ip netns exec $NS_S ip link set "p$1" up; }

# sshd_for X [KEYS]: an sshd on X's address with its own host key, logging
# in `postgres` with the keys in KEYS ($T/authorized_keys by default).
sshd_for() {
  local n=$1 d=$T/$1 keys=${2:-$T/authorized_keys}
  mkdir -p /run/sshd "$d"
  [ -f "$d/host_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$d/host_key"
  cat >"$d/sshd_config" <<EOC
ListenAddress ${IP[$n]}:22
HostKey $d/host_key
PidFile $d/sshd.pid
AuthorizedKeysFile $keys
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM yes
AllowUsers postgres
PermitRootLogin no
Subsystem sftp internal-sftp
EOC
  # `ip netns exec` (not the in_ns function) so that $! is sshd itself.
  ip netns exec "${NS[$n]}" /usr/sbin/sshd -D -e -f "$d/sshd_config" >>"$d/sshd.log" 2>&1 &
  eval "SSHD_$n=$!"
  on_exit "kill $! 2>/dev/null"
  wait_for 10 in_ns "$n" bash -c "exec 3<>/dev/tcp/${IP[$n]}/22" || fail "sshd on $n did not start"
}

pg_conf() {
  cat >>"$1/postgresql.conf" <<EOC
listen_addresses = '*'
unix_socket_directories = ''
wal_level = replica
max_wal_senders = 10
wal_keep_size = '256MB'
hot_standby = on
synchronous_commit = on
wal_sender_timeout = '3s'
wal_receiver_timeout = '3s'
wal_receiver_status_interval = '1s'
wal_retrieve_retry_interval = '1s'
EOC
  cat >"$1/pg_hba.conf" <<EOC
host all postgres 10.66.0.0/24 trust
host all replicator 10.66.0.0/24 scram-sha-256
host replication replicator 10.66.0.0/24 scram-sha-256
EOC
}

pg_start() {
  in_ns "$1" runuser -u postgres -- $PGBIN/pg_ctl -D "$T/$1/data" -l "$T/$1/postgresql.log" -w -t 60 start >/dev/null
}

# pg_pair: A initialised as master, B a synchronous standby of it.
pg_pair() {
  mkdir -p "$T/A" "$T/B"; chown postgres: "$T/A" "$T/B"
  runuser -u postgres -- $PGBIN/initdb -D "$T/A/data" -U postgres --auth=trust >"$T/initdb.log"
  pg_conf "$T/A/data"
  pg_start A
  on_exit "runuser -u postgres -- $PGBIN/pg_ctl -D $T/A/data stop -m immediate >/dev/null 2>&1"
  on_exit "runuser -u postgres -- $PGBIN/pg_ctl -D $T/B/data stop -m immediate >/dev/null 2>&1"
  sql A "CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD '$REPL_PWD'; GRANT pg_monitor TO replicator" >/dev/null
  in_ns B runuser -u postgres -- env PGPASSWORD="$REPL_PWD" $PGBIN/pg_basebackup -h "${IP[A]}" -U replicator \
    -D "$T/B/data" -R -X stream -c fast
  pg_start B
  wait_for 30 is_streaming B || fail "B does not stream from A"
  # Only now: with no standby, every commit on A would wait for one. B
  # gets it too, for when it is master (rebuilds copy it from there).
  echo "synchronous_standby_names = '*'" >>"$T/B/data/postgresql.conf"
  sql A "ALTER SYSTEM SET synchronous_standby_names = '*'" >/dev/null
  sql A "SELECT pg_reload_conf()" >/dev/null
}

# referee: answers `up`/`down` for GET /?host=H&port=P by a TCP connect.
referee() {
  ip netns exec "${NS[R]}" python3 - "${IP[R]}" 8080 >"$T/referee.log" 2>&1 <<'EOP' &
import http.server, socket, sys, urllib.parse
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        try:
            socket.create_connection((q["host"][0], int(q["port"][0])), timeout=1).close()
            answer = b"up"
        except Exception:
            answer = b"down"
        self.send_response(200)
        self.end_headers()
        self.wfile.write(answer)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
EOP
  on_exit "kill $! 2>/dev/null"
  wait_for 10 in_ns R bash -c "exec 3<>/dev/tcp/${IP[R]}/8080" || fail "referee did not start"
}

# pgha_user: the pgha service runs ssh and rsync as ar-pgha (uid 907, see
# overlays/etc/passwd); OpenSSH refuses a uid that /etc/passwd does not
# name. The image names it; on this host the test adds it for its run.
pgha_user() {
  getent passwd 907 >/dev/null && return
  getent group 907 >/dev/null || { groupadd --system --gid 907 ar-pgha; on_exit "groupdel ar-pgha"; }
  useradd --system --uid 907 --gid 907 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin ar-pgha
  on_exit "userdel ar-pgha"
}

# controller GRACE: the node in C with one group over A and B; puts the
# controller's public key into $T/authorized_keys.
controller() {
  STATE=$T/state
  pgha_conf "$1" >"$T/seed.toml"
  [ -z "${BACKUP:-}" ] || backup_conf >>"$T/seed.toml"
  mkdir -p "$STATE"
  ip netns exec "${NS[C]}" "$ALPHAREN" run --state-dir "$STATE" --dev --config "$T/seed.toml" >"$STATE/console.log" 2>&1 &
  NODE_PID=$!
  on_exit "kill $NODE_PID 2>/dev/null; wait $NODE_PID 2>/dev/null"
  wait_for 30 pgha_status || { cat "$STATE/console.log"; fail "pgha did not answer"; }
  pgha_status | jq -r .client_key >"$T/authorized_keys"
  chmod 644 "$T/authorized_keys"
}
# pgha_conf GRACE: the [pgha] section: group "main" over A and B, the
# referee on R.
pgha_conf() {
  cat <<EOC
[pgha]
grace = $1
poll_interval = 1
[[pgha.groups]]
key = "main"
referee = "http://${IP[R]}:8080/"
[pgha.groups.defaults]
ssh_user = "postgres"
pg_replica_user = "replicator"
pg_replica_pwd = "$REPL_PWD"
pg_ctl_command = "$PGBIN/pg_ctl"
pg_basebackup_command = "$PGBIN/pg_basebackup"
[[pgha.groups.servers]]
ssh_host = "${IP[A]}"
pg_data_folder = "$T/A/data"
pg_backup_folder = "$T/A/backups"
pg_log_filepath = "$T/A/postgresql.log"
[[pgha.groups.servers]]
ssh_host = "${IP[B]}"
pg_data_folder = "$T/B/data"
pg_backup_folder = "$T/B/backups"
pg_log_filepath = "$T/B/postgresql.log"
EOC
}
# backup_conf: the backup controller's section, storage on K: the db
# instance zipped from its host (a missing first server shows the
# fallback), the sync folder rsynced from the node, two archives kept.
backup_conf() {
  local ssh="ssh -i $T/bkp_key -o UserKnownHostsFile=$T/bkp_known_hosts"
  cat <<EOC
[pgha.backup]
keep = 2
storage_ssh_host = "${IP[K]}"
storage_ssh_user = "postgres"
storage_ssh_path = "$T/K/store/dow_%weekday"
[pgha.backup.sync_folder]
folder = "$T/sync"
excluded_paths = ["temp/"]
send_mode = "rsync"
ssh_command = "ssh -i $T/bkp_key_node -o UserKnownHostsFile=$T/bkp_known_hosts_node"
[[pgha.backup.pgdb]]
ssh_user = "postgres"
pg_replica_user = "replicator"
pg_replica_pwd = "$REPL_PWD"
pg_basebackup_command = "$PGBIN/pg_basebackup"
destination_folder = "$T/bkp_tmp"
send_mode = "zip_cmd"
ssh_command = "$ssh"
scp_command = "scp -i $T/bkp_key -o UserKnownHostsFile=$T/bkp_known_hosts"
[[pgha.backup.pgdb.servers]]
ssh_host = "10.66.0.99"
[[pgha.backup.pgdb.servers]]
ssh_host = "${IP[A]}"
EOC
}
# storage: K's sshd takes the backup key; a sync folder to archive. The
# key is used by postgres on the servers (the instance's scp) and by the
# pgha service itself, ar-pgha (uid 907), for the sync folder: a copy each,
# since ssh takes a private key only from a file its user alone can read.
storage() {
  mkdir -p "$T/K/store" "$T/sync/temp" "$T/bkp_tmp"; chown postgres: "$T/K/store" "$T/bkp_tmp"
  echo keep >"$T/sync/a.txt"; echo skip >"$T/sync/temp/b.txt"
  ssh-keygen -q -t ed25519 -N '' -f "$T/bkp_key"
  cp "$T/bkp_key" "$T/bkp_key_node"; touch "$T/bkp_known_hosts_node"
  chown 907:907 "$T/bkp_key_node" "$T/bkp_known_hosts_node"; chmod 600 "$T/bkp_key_node"
  touch "$T/bkp_known_hosts"; chown postgres: "$T/bkp_key" "$T/bkp_known_hosts"
  cp "$T/bkp_key.pub" "$T/storage_keys"; chmod 644 "$T/storage_keys"
  sshd_for K "$T/storage_keys"
}
pgha_status() { "$ALPHAREN" ctl --state-dir "$STATE" --json pgha status; }
group() { pgha_status | jq -r ".groups[0].$1"; }
# healthy_with M: the controller holds server M for master, the other streams.
healthy_with() {
  [ "$(group situation)" = healthy ] && [ "$(group master)" = "$1" ] &&
    [ "$(group "servers[$((1 - $1))].role")" = standby ]
}
