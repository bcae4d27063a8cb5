#!/usr/bin/env bash
# Makes sure what the test suite talks to is installed and running:
# Debian's chromium (Playwright drives it; no browser download), Debian's spamassassin (the
# spam-score test runs it), iproute2 and redis-server (the several-hosts scenario) and the
# local PostgreSQL.
# The test databases themselves are created by tests/conftest.py.
set -euo pipefail

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! [ -x /usr/bin/chromium ]; then
  echo "Installing Debian's chromium"
  apt_install chromium
fi

if ! command -v spamassassin >/dev/null 2>&1; then
  echo "Installing Debian's spamassassin (tests/delivery/test_spam_score.py)"
  apt_install spamassassin
fi

# The "several hosts" scenario (bench/reliability/scenario_hosts.py, its short variant in
# the PostgreSQL pass) puts processes in network namespaces and starts its own Redis.
if ! command -v ip >/dev/null 2>&1; then
  echo "Installing Debian's iproute2 (ip netns)"
  apt_install iproute2
fi
if ! command -v redis-server >/dev/null 2>&1; then
  echo "Installing Debian's redis-server"
  apt_install redis-server
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "Installing PostgreSQL"
    apt_install postgresql
  fi
  echo "Starting PostgreSQL"
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 1
  done
  pg_isready -h 127.0.0.1 -p 5432
fi

if command -v redis-cli >/dev/null 2>&1 && ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "Starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
fi
