#!/bin/sh
# signet's entrypoint in the compose image: at the first start, initialises a SoftHSM2 token
# labelled "signet" in /var/lib/softhsm (a volume), with a random user PIN kept beside it
# (0600) and a random SO PIN that is thrown away; then runs signet with SOFTHSM2_CONF pointing
# at it. For trying the pkcs11 backend out: a real deployment points SIGNET_PKCS11_* at its HSM.
set -eu
dir=/var/lib/softhsm
export SOFTHSM2_CONF="$dir/softhsm2.conf"
if [ ! -e "$dir/user-pin" ]; then
  umask 077
  mkdir -p "$dir/tokens"
  printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$dir" >"$SOFTHSM2_CONF"
  random() { head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
  pin=$(random)
  softhsm2-util --init-token --free --label signet --so-pin "$(random)" --pin "$pin" >/dev/null
  # Written last: a start that stopped half-way initialises again.
  printf '%s' "$pin" >"$dir/user-pin.new" && mv "$dir/user-pin.new" "$dir/user-pin"
  echo "signet-entrypoint: initialised the SoftHSM2 token \"signet\" in $dir/tokens" >&2
fi
exec signet "$@"
