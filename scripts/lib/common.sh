# Shared by scripts/test and scripts/bench (sourced, from the repository root): steps, cleanups at
# exit, package installs, and a throwaway Postgres cluster.

step() { printf '\n== %s\n' "$*"; }
# Commands run at exit, last registered first (stop servers, remove temporary directories).
cleanups=()
cleanup() {
  local i
  for ((i = ${#cleanups[@]} - 1; i >= 0; i--)); do eval "${cleanups[$i]}"; done
}
trap cleanup EXIT
# A TCP port free on 127.0.0.1 right now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
as_root() { [ "$(id -u)" = 0 ]; }
apt_install() {
  if ! as_root; then
    echo "missing: $* (install it, e.g. sudo apt-get install -y $*), then run ${0##*/} again" >&2
    exit 1
  fi
  if [ -z "${apt_updated:-}" ]; then
    echo "apt-get update"
    apt-get update -qq
    apt_updated=1
  fi
  echo "apt-get install -y $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Starts a throwaway Postgres cluster on a free port and sets pg_port; it is stopped and removed at
# exit.
start_throwaway_postgres() {
  # Newest installed server (postgresql-client-NN alone also creates /usr/lib/postgresql/NN/bin).
  find_pg_bin() {
    local initdb
    initdb=$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$initdb" ] && [ -x "$initdb" ]; then dirname "$initdb"; fi
  }
  pg_bin=$(find_pg_bin)
  if [ -z "$pg_bin" ]; then
    echo "no Postgres server binaries under /usr/lib/postgresql/*/bin"
    apt_install postgresql
    pg_bin=$(find_pg_bin)
    [ -n "$pg_bin" ] || { echo "postgresql installed but no initdb found" >&2; exit 1; }
  fi
  # A short path: the Unix socket lives in it too (limit about 100 bytes).
  pg_dir=$(mktemp -d /tmp/signet-pg.XXXXXX)
  # initdb refuses to run as root, so root runs the cluster as the postgres user.
  if as_root; then
    chown postgres: "$pg_dir"
    run_pg() { (cd "$pg_dir" && runuser -u postgres -- "$@"); }
  else
    run_pg() { (cd "$pg_dir" && "$@"); }
  fi
  stop_pg() {
    echo "stopping the throwaway cluster and removing $pg_dir"
    run_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
  }
  cleanups+=(stop_pg)
  pg_port=$(free_port)
  echo "initdb $pg_dir/data ($("$pg_bin/postgres" --version))"
  run_pg "$pg_bin/initdb" -D "$pg_dir/data" -A trust -U postgres -E UTF8 --locale=C >"$pg_dir/initdb.log" 2>&1 \
    || { cat "$pg_dir/initdb.log" >&2; exit 1; }
  echo "pg_ctl start on 127.0.0.1:$pg_port"
  if ! run_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
    -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null; then
    cat "$pg_dir/log" >&2 || true
    exit 1
  fi
}

# Builds the release binary of commit $1 in its own worktree (/tmp/signet-bench-<commit>, kept for
# the next run) and sets baseline_bin to its path.
build_commit() {
  local commit base
  commit=$(git rev-parse --short "$1^{commit}")
  base="/tmp/signet-bench-$commit"
  [ -d "$base" ] || git worktree add --detach "$base" "$commit"
  (cd "$base" && cargo build --release --bin signet)
  baseline_bin="$base/target/release/signet"
}
