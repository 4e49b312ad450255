#!/usr/bin/env bash
# Start (or stop) a private MariaDB server for the MySQL back-end tests.
#   eval "$(bash scripts/mariadb.sh start)"   # prints the variables the tests read
#   bash scripts/mariadb.sh stop
# Data lives in $KOADEP_MARIADB_DIR (default /tmp/koadep-mariadb); the server listens on
# 127.0.0.1:$KOADEP_MARIADB_PORT (default 3307) only.
# A data folder is initialised only when it holds no data yet; an existing one is never
# deleted: if the server cannot be started on it, the script says why and exits 1.
set -euo pipefail
DIR=${KOADEP_MARIADB_DIR:-/tmp/koadep-mariadb}
PORT=${KOADEP_MARIADB_PORT:-3307}
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
  echo "usage: $0 start|stop" >&2
  exit 2
  ;;
esac
