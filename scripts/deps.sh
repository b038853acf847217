#!/usr/bin/env bash
# Installs the Debian packages the build, the tests and `make run` need.
# Idempotent: installs only what is missing; apt-get update runs once.
set -euo pipefail
cd "$(dirname "$0")"
mapfile -t wanted < <(cat deps.d/*.list | sed 's/#.*//' | tr -s ' \t' '\n' | grep -v '^$' | sort -u)
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Wheels for tests/e2e/integrator-project.sh and integrator-orm.sh (which run without
# internet): requests and SQLAlchemy 2.0 with their dependencies for
# Python 3.11 on this machine's architecture, from PyPI, once.
test_wheels() {
  local dir=/var/cache/alpharen-test-wheels
  ls "$dir"/requests-*.whl "$dir"/sqlalchemy-*.whl >/dev/null 2>&1 && return 0
  mkdir -p "$dir"
  echo "downloading the test wheels (requests, SQLAlchemy and their dependencies) into $dir"
  timeout 300 python3 -m pip download -q --only-binary=:all: --python-version 3.11 --dest "$dir" requests 'SQLAlchemy==2.0.*'
}
# shellcheck source=scripts/nats-server.sh
. ./nats-server.sh
nats_ok=true
nats_host_ok || nats_ok=false
if [ ${#missing[@]} -eq 0 ] && $nats_ok; then test_wheels; exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  $nats_ok || missing+=("nats-server (>= $NATS_MIN_VERSION, Debian forky's, as $NATS_HOST)")
  echo "missing Debian packages: ${missing[*]}; run as root (or install them) first" >&2
  exit 1
fi
[ ${#missing[@]} -eq 0 ] || echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
stamp=/var/lib/apt/periodic/alpharen-update-stamp
if [ ! -e "$stamp" ] || [ -n "$(find "$stamp" -mmin +720 2>/dev/null)" ]; then
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  mkdir -p "$(dirname "$stamp")" && touch "$stamp"
fi
[ ${#missing[@]} -eq 0 ] || apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
$nats_ok || nats_host_install
test_wheels
