#!/usr/bin/env bash
# PostgreSQL as the official image starts it: a first start creates the cluster with
# POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB; every start then runs the server in the
# foreground with whatever arguments compose gives (for example -c listen_addresses=127.0.0.1).
set -euo pipefail
if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  password_file=$(mktemp)
  printf '%s\n' "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}" > "$password_file"
  initdb --username="${POSTGRES_USER:-postgres}" --pwfile="$password_file" --auth=scram-sha-256 \
    --encoding=UTF8 -D "$PGDATA" > /dev/null
  rm -f "$password_file"
  echo "host all all 127.0.0.1/32 scram-sha-256" >> "$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=/run/postgresql" -w start > /dev/null
  if [[ "${POSTGRES_DB:-}" && "${POSTGRES_DB}" != "postgres" ]]; then
    PGPASSWORD="$POSTGRES_PASSWORD" createdb -h /run/postgresql -U "${POSTGRES_USER:-postgres}" "$POSTGRES_DB"
  fi
  pg_ctl -D "$PGDATA" -m fast -w stop > /dev/null
fi
exec postgres -D "$PGDATA" -c unix_socket_directories=/run/postgresql "$@"
