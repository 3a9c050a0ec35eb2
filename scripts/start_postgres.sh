#!/usr/bin/env bash
# Starts this machine's PostgreSQL for the store tests (installing it from Debian if it is missing) and makes a
# role and database for them; idempotent. Prints the URL to use: postgresql://npc:npc@127.0.0.1:5432/npc_test
# CI (.ci/run) runs it and exports NPC_SDK_TEST_POSTGRES with that URL.
set -euo pipefail
# Only the URL goes to stdout (callers capture it); everything else, pg_ctlcluster's chatter included
# ("Removed stale pid file."), goes to stderr.
exec 3>&1 1>&2
if ! command -v pg_lsclusters >/dev/null 2>&1; then
  echo "start_postgres: installing postgresql from Debian" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null
fi
version=$(pg_lsclusters -h | awk 'NR==1 {print $1}')
cluster=$(pg_lsclusters -h | awk 'NR==1 {print $2}')
if [ -z "$version" ]; then
  version=$(ls /usr/lib/postgresql | sort -n | tail -1)
  cluster=main
  pg_createcluster "$version" "$cluster" >/dev/null 3>&-
fi
if ! pg_lsclusters -h | awk -v c="$cluster" '$2 == c {print $4}' | grep -q online; then
  pg_ctlcluster "$version" "$cluster" start 3>&-  # the server must not hold the caller's pipe open
fi
port=$(pg_lsclusters -h | awk -v c="$cluster" '$2 == c {print $3}')
psql_as_postgres() { su postgres -c "psql -p $port -v ON_ERROR_STOP=1 -qAt -c \"$1\""; }
if [ "$(psql_as_postgres "SELECT 1 FROM pg_roles WHERE rolname = 'npc'")" != "1" ]; then
  psql_as_postgres "CREATE ROLE npc LOGIN PASSWORD 'npc' CREATEDB"
fi
if [ "$(psql_as_postgres "SELECT 1 FROM pg_database WHERE datname = 'npc_test'")" != "1" ]; then
  psql_as_postgres "CREATE DATABASE npc_test OWNER npc"
fi
echo "postgresql://npc:npc@127.0.0.1:$port/npc_test" >&3
