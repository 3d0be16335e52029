#!/usr/bin/env bash
# The newcomer demo: one search from an in-memory search server, before and after reranking.
#   bash ops/demo.sh                 # run once, print both rankings, shut down
#   bash ops/demo.sh --serve         # keep the gateway up and print a curl line
#   bash ops/demo.sh --query "..."   # extra arguments go to python -m ops.demo
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# Without a local model the gateway downloads one from the Hugging Face Hub (the `hub` extra).
extras=demo
if [ -z "${GATEWAY_MODEL__PATH:-}" ] && [ ! -d ../shared/models/all-minilm-l6-v2-pair ]; then
  extras=demo,hub
fi
.venv/bin/python -m pip install -q -e ".[$extras]"

exec .venv/bin/python -m ops.demo "$@"
