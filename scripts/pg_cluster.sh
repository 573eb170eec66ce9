#!/usr/bin/env bash
# A private PostgreSQL server for tests and development: one data directory, one port, trust auth
# on 127.0.0.1 only, a `worldstream` database. Postgres refuses to run as root, so when invoked as
# root the server runs as the unprivileged OS user `postgres` (created if missing).
#
#   scripts/pg_cluster.sh start DIR PORT   # initdb if DIR is empty, start, createdb worldstream
#   scripts/pg_cluster.sh stop DIR         # fast shutdown
#   scripts/pg_cluster.sh status DIR
#
# Then: DATABASE_URL=postgres://postgres@127.0.0.1:PORT/worldstream
set -euo pipefail

PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
[[ -x "$PG_BIN/pg_ctl" ]] || PG_BIN="$(dirname "$(command -v pg_ctl)")"
OS_USER="${PG_OS_USER:-postgres}"

usage() {
  echo "Usage: $0 start DIR PORT | stop DIR | status DIR" >&2
  exit 2
}

# Runs a command as the server's OS user (a no-op wrapper when not root). From / so the tools
# never trip over a working directory the unprivileged user cannot read.
as_pg() {
  if [[ "$(id -u)" == "0" ]]; then
    (cd / && runuser -u "$OS_USER" -- "$@")
  else
    "$@"
  fi
}

ensure_user() {
  [[ "$(id -u)" == "0" ]] || return 0
  id -u "$OS_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /bin/bash "$OS_USER"
}

start() {
  local dir="$1" port="$2"
  ensure_user
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  if [[ "$(id -u)" == "0" ]]; then
    chown "$OS_USER" "$dir"
    # The server user must be able to reach DIR: grant search (not read) on any ancestor that
    # blocks it, e.g. a `mktemp -d` parent with mode 700.
    local parent="$dir"
    while [[ "$parent" != "/" ]]; do
      parent="$(dirname "$parent")"
      as_pg test -x "$parent" || chmod o+x "$parent"
    done
  fi
  chmod 700 "$dir"
  if [[ -z "$(ls -A "$dir")" ]]; then
    local log
    log="$(mktemp)"
    as_pg "$PG_BIN/initdb" -D "$dir" -A trust -U postgres -E UTF8 --no-locale >"$log" 2>&1 ||
      { cat "$log" >&2; rm -f "$log"; exit 1; }
    rm -f "$log"
  elif [[ ! -f "$dir/PG_VERSION" ]]; then
    echo "$dir is neither empty nor a Postgres data directory" >&2
    exit 1
  fi
  if as_pg "$PG_BIN/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
    echo "Already running in $dir"
  else
    # The unix socket lives in DIR so parallel clusters never fight over /var/run/postgresql.
    as_pg "$PG_BIN/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  fi
  if ! as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc \
    "select 1 from pg_database where datname = 'worldstream'" | grep -q 1; then
    as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres worldstream
  fi
  echo "DATABASE_URL=postgres://postgres@127.0.0.1:$port/worldstream"
}

stop() {
  local dir="$1"
  [[ -f "$dir/postmaster.pid" ]] || { echo "Not running in $dir"; return 0; }
  as_pg "$PG_BIN/pg_ctl" -D "$dir" -m fast -w stop >/dev/null
  echo "Stopped $dir"
}

case "${1:-}" in
  start) [[ $# -eq 3 ]] || usage; start "$2" "$3" ;;
  stop) [[ $# -eq 2 ]] || usage; stop "$2" ;;
  status) [[ $# -eq 2 ]] || usage; as_pg "$PG_BIN/pg_ctl" -D "$2" status ;;
  *) usage ;;
esac
