# shellcheck shell=bash
# Sourced by images/build.sh and images/bundle.sh (after OUT is set):
# which update keys to use. Sets UPDATE_PUB, the minisign public key the
# image trusts (installed as /etc/alpharen/update-keys/), and UPDATE_KEY,
# the secret key bundle.sh signs with.
#   UPDATE_KEY=FILE     a minisign secret key; its public key is UPDATE_PUB,
#                       by default FILE with .key replaced by .pub
#   UPDATE_KEY=offline  sign elsewhere (docs/update.md); needs UPDATE_PUB
#   neither             a development key pair images/out/update-dev.{key,pub},
#                       made on first use without a password: never commit
#                       it, never let a node in the field trust it
if [ -n "${UPDATE_KEY:-}" ]; then
  if [ "$UPDATE_KEY" = offline ]; then
    [ -n "${UPDATE_PUB:-}" ] || { echo "UPDATE_KEY=offline needs UPDATE_PUB=FILE.pub" >&2; exit 2; }
  else
    [ -f "$UPDATE_KEY" ] || { echo "UPDATE_KEY=$UPDATE_KEY: no such file" >&2; exit 2; }
    UPDATE_PUB=${UPDATE_PUB:-${UPDATE_KEY%.key}.pub}
  fi
else
  UPDATE_KEY=$OUT/update-dev.key
  UPDATE_PUB=${UPDATE_PUB:-$OUT/update-dev.pub}
  if [ ! -f "$UPDATE_KEY" ]; then
    mkdir -p "$OUT"
    minisign -G -W -p "$OUT/update-dev.pub" -s "$UPDATE_KEY" >/dev/null
    chmod 600 "$UPDATE_KEY"
    echo "update: made the development signing key $UPDATE_KEY" >&2
  fi
fi
[ -f "$UPDATE_PUB" ] || { echo "update public key $UPDATE_PUB: no such file" >&2; exit 2; }
