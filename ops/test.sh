#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine, then lint, type-check and test.
#   bash ops/test.sh            # the whole suite (what CI runs)
#   bash ops/test.sh -k cache   # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
# Each long step says what it does first, so a fresh machine never looks stuck.
step() { echo "ops/test.sh: $*"; }

# Redis: the tests use a real one on 127.0.0.1:6379 (started here when none answers), and
# start private redis-servers of their own for outage, TLS and cluster tests.
redis_up() { (exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && head -c5 <&3 | grep -q PONG) 2>/dev/null; }
if ! command -v redis-server >/dev/null; then
  echo "ops/test.sh: installing redis-server (Debian package)"
  (apt-get update -qq && apt-get install -y -qq redis-server) >/dev/null
fi
if ! redis_up; then
  step "starting redis-server on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 50); do redis_up && break; sleep 0.1; done
fi

# Headless Chromium: the experiment report page is rendered in a real browser by the tests.
if ! command -v chromium >/dev/null; then
  echo "ops/test.sh: installing chromium and chromium-driver (Debian packages)"
  (apt-get update -qq && apt-get install -y -qq chromium chromium-driver) >/dev/null
fi

# The project and its test dependencies, in a virtual environment of its own.
if [ ! -x .venv/bin/python ]; then
  step "creating the virtual environment .venv"
  python3 -m venv .venv
fi
step "installing rerank-gateway[test] into .venv (pip; minutes on a fresh machine)"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'

step "lint (ruff check, ruff format --check)"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
step "type check (mypy --strict)"
.venv/bin/mypy
step "tests (pytest $*)"
exec .venv/bin/python -m pytest "$@"
