#!/usr/bin/env bash
# Start (or stop) a private MariaDB server for the MySQL back-end tests.
#   eval "$(bash scripts/mariadb.sh start)"   # prints the variables the tests read
#   bash scripts/mariadb.sh stop
#   bash scripts/mariadb.sh status             # exit 0 when the server answers, 1 when not
#   bash scripts/mariadb.sh where              # the data folder and the port, nothing started
# Each checkout has a server of its own, so two checkouts (a clean clone in CI beside a
# working copy) never share or stop each other's: the data lives in
# ${TMPDIR:-/tmp}/koadep-mariadb-<name>-<hash> and the server listens on 127.0.0.1:<port> only,
# both derived from the checkout's absolute path (a port in 13306..14305).
# $KOADEP_MARIADB_DIR and $KOADEP_MARIADB_PORT override them.
# A data folder is initialised only when it holds no data yet; an existing one is never
# deleted: if the server cannot be started on it, the script says why and exits 1.
set -euo pipefail
CHECKOUT=$(cd "$(dirname "$0")/.." && pwd -P)
SUM=$(printf '%s' "$CHECKOUT" | cksum | cut -d' ' -f1)
NAME=$(basename "$CHECKOUT" | tr -c 'A-Za-z0-9_.\n-' '_')
DIR=${KOADEP_MARIADB_DIR:-${TMPDIR:-/tmp}/koadep-mariadb-$NAME-$(printf '%08x' "$SUM")}
PORT=${KOADEP_MARIADB_PORT:-$((13306 + SUM % 1000))}
SOCK="$DIR/mysqld.sock"
PASSWORD=koadep-test

answers() {
  mariadb --socket="$SOCK" -uroot -e "SELECT 1" >/dev/null 2>&1
}

case "${1:-start}" in
start)
  command -v mariadbd >/dev/null 2>&1 || PATH="$PATH:/usr/sbin"
  if ! { [ -S "$SOCK" ] && answers; }; then
    mkdir -p "$DIR"
    if [ ! -d "$DIR/data" ] || [ -z "$(ls -A "$DIR/data")" ]; then
      mariadb-install-db --user="$(id -un)" --datadir="$DIR/data" --auth-root-authentication-method=socket \
        --skip-test-db >"$DIR/install.log" 2>&1 || {
        echo "mariadb.sh: initialising $DIR/data failed; see $DIR/install.log" >&2
        exit 1
      }
    fi
    mariadbd --user="$(id -un)" --datadir="$DIR/data" --socket="$SOCK" --port="$PORT" \
      --bind-address=127.0.0.1 --pid-file="$DIR/mysqld.pid" --log-error="$DIR/error.log" \
      --innodb-buffer-pool-size=64M --max-connections=200 >/dev/null 2>&1 &
    server=$!
    for _ in $(seq 1 60); do
      answers && break
      kill -0 "$server" 2>/dev/null || break # the server exited: stop waiting
      sleep 0.5
    done
    if ! answers; then
      echo "mariadb.sh: the server does not answer on $SOCK with the data in $DIR/data" \
        "(nothing was deleted); see $DIR/error.log" >&2
      exit 1
    fi
    mariadb --socket="$SOCK" -uroot <<SQL
CREATE DATABASE IF NOT EXISTS koadep_test;
CREATE USER IF NOT EXISTS 'koadep'@'127.0.0.1' IDENTIFIED BY '$PASSWORD';
CREATE USER IF NOT EXISTS 'koadep'@'localhost' IDENTIFIED BY '$PASSWORD';
GRANT ALL ON *.* TO 'koadep'@'127.0.0.1';
GRANT ALL ON *.* TO 'koadep'@'localhost';
FLUSH PRIVILEGES;
SQL
  fi
  echo "export KOADEP_TEST_MYSQL_URL=mysql://koadep@127.0.0.1:$PORT/koadep_test"
  echo "export KOADEP_DB_PASSWORD=$PASSWORD"
  ;;
status)
  if [ -S "$SOCK" ] && answers; then
    echo "mariadb.sh: the server of $DIR answers on 127.0.0.1:$PORT"
  else
    echo "mariadb.sh: no server of $DIR answers" >&2
    exit 1
  fi
  ;;
where)
  echo "dir=$DIR"
  echo "port=$PORT"
  ;;
stop)
  if [ -f "$DIR/mysqld.pid" ]; then
    pid=$(cat "$DIR/mysqld.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do # wait until the server has shut down
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
  fi
  ;;
*)
  echo "usage: $0 start|stop|status|where" >&2
  exit 2
  ;;
esac
