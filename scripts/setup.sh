#!/usr/bin/env bash
# Set up a fresh machine for koadep development: system tools, then a virtualenv.
#   bash scripts/setup.sh
# System packages (fitsverify, rsync, MariaDB for the MySQL back-end tests) are installed with apt-get when it is available
# and we are root (or sudo works); everything Python goes into ./.venv.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(fitsverify rsync mariadb-server mariadb-client openssh-server chromium)
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
  missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing system packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
else
  echo "apt-get not found: install ${APT_PACKAGES[*]} with your package manager" >&2
fi

PYTHON=${PYTHON:-python3}
[ -d .venv ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test,mysql,docs]'
echo "ready: run the tests with .venv/bin/python -m pytest"
