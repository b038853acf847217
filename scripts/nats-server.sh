# shellcheck shell=bash
# nats-server from Debian's next release (sourced by scripts/deps.sh and
# images/build.sh). Debian 12 ships 2.9.10, whose JetStream lets a newly
# elected stream leader answer conditional writes before it has applied
# its log (nats-server#6194, fixed in 2.11): a claim, lock or KV
# compare-and-set made just before an election could be overwritten
# (docs/cluster.md). The cluster's engine is therefore Debian forky's
# nats-server, a static Go program, downloaded by apt from a list of its
# own (the system's sources are not touched) and checked against Debian's
# archive keyring like any package.
NATS_MIN_VERSION=2.11
NATS_APT=/var/cache/alpharen-apt-forky

# newest_nats_deb DIR: the newest nats-server .deb in DIR if it is recent
# enough; nothing otherwise.
newest_nats_deb() {
  local deb
  deb=$(find "$1" -maxdepth 1 -name 'nats-server_*.deb' 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$deb" ] && dpkg --compare-versions "$(dpkg-deb -f "$deb" Version)" ge "$NATS_MIN_VERSION"; then
    echo "$deb"
  fi
}

# Where scripts/deps.sh keeps the package it installed from.
NATS_HOST_CACHE=/var/cache/alpharen-nats

# nats_deb DIR: the forky nats-server .deb in DIR (downloaded once, or
# copied from NATS_HOST_CACHE when scripts/deps.sh has it); prints its
# path.
nats_deb() {
  local dir=$1 deb kept
  deb=$(newest_nats_deb "$dir")
  if [ -z "$deb" ]; then
    kept=$(newest_nats_deb "$NATS_HOST_CACHE")
    if [ -n "$kept" ] && mkdir -p "$dir" && cp "$kept" "$dir/"; then
      deb=$(newest_nats_deb "$dir")
    fi
  fi
  if [ -z "$deb" ]; then
    mkdir -p "$NATS_APT"/{lists/partial,cache/archives/partial} "$dir"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian forky main" >"$NATS_APT/sources.list"
    local opts=(-o Dir::Etc::SourceList="$NATS_APT/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o Dir::State::Lists="$NATS_APT/lists" -o Dir::Cache="$NATS_APT/cache" -o Debug::NoLocking=1)
    apt-get "${opts[@]}" update -qq >&2 || { echo "cannot read Debian forky's package list (for nats-server >= $NATS_MIN_VERSION)" >&2; return 1; }
    (cd "$dir" && set -o pipefail && apt-get "${opts[@]}" download -qq nats-server 2>&1 |
      { grep -v '^W: Download is performed unsandboxed' || :; } >&2) || { echo "cannot download nats-server from Debian forky" >&2; return 1; }
    deb=$(newest_nats_deb "$dir")
  fi
  [ -n "$deb" ] || { echo "no nats-server >= $NATS_MIN_VERSION from Debian forky in $dir" >&2; return 1; }
  echo "$deb"
}

# On the build machine (the tests' reference and the members' engine in
# tests) the program alone goes to /usr/local/sbin, ahead of Debian 12's
# on PATH and where the cluster service looks first: the forky package
# itself does not install on Debian 12 (its sysusers file needs systemd
# 257).
NATS_HOST=/usr/local/sbin/nats-server

# nats_host_ok: whether NATS_HOST is there and recent enough.
nats_host_ok() {
  local v; v=$("$NATS_HOST" --version 2>/dev/null | sed -n 's/^nats-server: v//p')
  [ -n "$v" ] && dpkg --compare-versions "$v" ge "$NATS_MIN_VERSION"
}

# nats_host_install: NATS_HOST from the forky package (as root).
nats_host_install() {
  local deb tmp; deb=$(nats_deb "$NATS_HOST_CACHE") || return 1
  tmp=$(mktemp -d) && dpkg-deb -x "$deb" "$tmp" &&
    install -D -m 0755 "$tmp/usr/sbin/nats-server" "$NATS_HOST" && rm -rf "$tmp" &&
    echo "installed $NATS_HOST from $(basename "$deb") (scripts/nats-server.sh says why)"
}
