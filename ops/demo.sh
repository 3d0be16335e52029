#!/usr/bin/env bash
# The newcomer demo: judged SciFact queries from an in-memory search server, before and after
# reranking (relevance marks, nDCG@10, latency).
#   bash ops/demo.sh                 # run once, print both rankings and the figures, shut down
#   bash ops/demo.sh --serve         # keep the gateway up and print a curl line
#   bash ops/demo.sh --queries 50    # extra arguments go to python -m ops.demo
# The checkout's data and model, when present: ../shared/data/scifact (judged queries) and
# ../shared/models/all-minilm-l6-v2-pair (unless GATEWAY_MODEL__PATH names a model).
set -euo pipefail
cd "$(dirname "$0")/.."

data=../shared/data/scifact
model=../shared/models/all-minilm-l6-v2-pair
if [ -z "${GATEWAY_MODEL__PATH:-}" ] && [ -d "$model" ]; then
  export GATEWAY_MODEL__PATH="$model"
fi
# Without a local model the gateway downloads one from the Hugging Face Hub (the `hub` extra).
extras=demo
if [ -z "${GATEWAY_MODEL__PATH:-}" ]; then
  extras=demo,hub
fi
# Installed once: a second run finds the stamp of this pyproject.toml and these extras, and
# that the packages import, and goes straight to the demo (the install is editable).
stamp=".venv/.demo-installed-$extras-$(cksum <pyproject.toml | cut -d" " -f1)"
imports="import gateway, osmem_server"
if [ "$extras" = demo,hub ]; then imports="$imports, huggingface_hub"; fi
if [ ! -f "$stamp" ] || ! .venv/bin/python -c "$imports" 2>/dev/null; then
  echo "ops/demo.sh: installing rerank-gateway[$extras] into .venv (once; pip, a minute or more)"
  if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".[$extras]"
  rm -f .venv/.demo-installed-*
  touch "$stamp"
else
  echo "ops/demo.sh: .venv already has rerank-gateway[$extras] (delete $stamp to reinstall)"
fi

echo "ops/demo.sh: starting osmem-server, seeding it, loading the model and starting the gateway"
args=()
if [ -d "$data" ]; then args=(--data "$data"); fi
exec .venv/bin/python -m ops.demo "${args[@]}" "$@"
