#!/usr/bin/env bash
# The GPU benchmark in one short run (< 8 min): onnxruntime-gpu in a venv, the fp16
# model exported, then the model alone (CUDA EP, IO binding on/off, batch sweep,
# pairs/s under concurrency: ops.gpu_sweep) and through the gateway (100-candidate
# latency and pairs/s at concurrency 1 and 16: ops.bench_gateway), one table each.
#
#   ops/gpu_bench.sh --model-dir ../shared/models/M --data ../shared/data/scifact
#   ops/gpu_bench.sh ... --wheels DIR     # offline: pip installs from DIR only
#   ops/gpu_bench.sh ... --dry-run        # no GPU: every step on the CPU provider, small
#
# Stops at once, with the reason, when there is no CUDA device (nvidia-smi, then
# onnxruntime's CUDAExecutionProvider). See docs/speed.md, "On a GPU".
set -euo pipefail

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    echo "options: --model-dir DIR --data DIR [--work DIR] [--venv DIR] [--wheels DIR]"
    echo "         [--ort PACKAGE] [--dry-run] [--skip-install]"
}

MODEL_DIR="${GATEWAY_MODEL__PATH:-}"
DATA=""
WORK="${TMPDIR:-/tmp}/gpu-bench"
VENV=""
WHEELS=""
ORT="onnxruntime-gpu"
DRY=0
INSTALL=1
while [ $# -gt 0 ]; do
    case "$1" in
        --model-dir) MODEL_DIR="$2"; shift 2 ;;
        --data) DATA="$2"; shift 2 ;;
        --work) WORK="$2"; shift 2 ;;
        --venv) VENV="$2"; shift 2 ;;
        --wheels) WHEELS="$2"; shift 2 ;;
        --ort) ORT="$2"; shift 2 ;;
        --dry-run) DRY=1; shift ;;
        --skip-install) INSTALL=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gpu_bench: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done
fail() { echo "gpu_bench: $*" >&2; exit 1; }
[ -n "$MODEL_DIR" ] || fail "--model-dir is required (a dir with model.onnx + tokenizer.json)"
[ -f "$MODEL_DIR/model.onnx" ] || fail "no model.onnx in $MODEL_DIR"
[ -n "$DATA" ] || fail "--data is required (a BEIR SciFact dir)"
[ -f "$DATA/corpus.jsonl" ] || fail "no corpus.jsonl in $DATA"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${VENV:-$WORK/venv}"
DEVICE=cuda
[ "$DRY" = 1 ] && DEVICE=cpu

step() { printf '\n== %s (%ss)\n' "$1" "$SECONDS"; }

step "1 device"
if [ "$DRY" = 0 ]; then
    command -v nvidia-smi >/dev/null || fail "no CUDA device: nvidia-smi not found (use --dry-run on a CPU)"
    nvidia-smi -L | grep -q GPU || fail "no CUDA device: nvidia-smi lists no GPU"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
else
    echo "dry run: CPU provider, small sizes"
fi

step "2 venv ($VENV)"
mkdir -p "$WORK"
if [ "$INSTALL" = 1 ]; then
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    PIP=("$VENV/bin/python" -m pip install -q)
    [ -n "$WHEELS" ] && PIP+=(--no-index --find-links "$WHEELS")
    "${PIP[@]}" -e "$REPO[test]"
    if [ "$DRY" = 0 ]; then
        # Same import name: the CPU wheel must go before the GPU one goes in.
        "$VENV/bin/python" -m pip uninstall -q -y onnxruntime || true
        "${PIP[@]}" "$ORT"
    fi
fi
PY="$VENV/bin/python"
[ -x "$PY" ] || fail "no venv at $VENV (drop --skip-install)"
"$PY" - "$DEVICE" <<'EOF' || fail "no CUDA device: onnxruntime has no usable CUDAExecutionProvider"
import sys
import onnxruntime as ort
providers = ort.get_available_providers()
print("onnxruntime", ort.__version__, providers)
sys.exit(0 if sys.argv[1] == "cpu" or "CUDAExecutionProvider" in providers else 1)
EOF

step "3 fp16 export ($WORK/model)"
MODEL_OUT="$WORK/model"
if [ ! -f "$MODEL_OUT/model_fp16.onnx" ]; then
    "$VENV/bin/rerank-gateway" export-model --from-onnx "$MODEL_DIR" --out "$MODEL_OUT"
fi

"$PY" - "$DEVICE" "$MODEL_OUT/model_fp16.onnx" <<'EOF' || fail "no CUDA device: the CUDA EP did not start (the wheel's CUDA major must match the driver's; cuDNN 9 and cuBLAS must be there)"
import sys
import onnxruntime as ort
want = "CUDAExecutionProvider" if sys.argv[1] == "cuda" else "CPUExecutionProvider"
session = ort.InferenceSession(sys.argv[2], providers=[want])
print("fp16 session on", session.get_providers())
sys.exit(0 if session.get_providers()[0] == want else 1)
EOF

step "4 model alone (ops.gpu_sweep)"
cd "$REPO"
if [ "$DRY" = 0 ]; then
    "$PY" -m ops.gpu_sweep --model-dir "$MODEL_OUT" --data "$DATA" --device cuda \
        --file model_fp16.onnx --json "$WORK/sweep.json"
else
    "$PY" -m ops.gpu_sweep --model-dir "$MODEL_OUT" --data "$DATA" --device cpu \
        --file model_fp16.onnx --batches 1,2 --pairs 4 --rounds 1 --threads 2 \
        --max-length 64 --json "$WORK/sweep.json"
fi

step "5 through the gateway (ops.bench_gateway)"
export GATEWAY_MODEL__DEVICE="$DEVICE" GATEWAY_MODEL__FILE=model_fp16.onnx
export GATEWAY_MODEL__QUANTIZATION=none
if [ "$DRY" = 0 ]; then
    export GATEWAY_BATCHER__MAX_BATCH_PAIRS=128
    "$PY" -m ops.bench_gateway --model-dir "$MODEL_OUT" --data "$DATA" --no-peer \
        --windows 10,100 --concurrency 1,16 --queries 16 --ceiling-queries 8 \
        --batch 128 --passthrough-queries 50
else
    export GATEWAY_MODEL__MAX_LENGTH=64 GATEWAY_BATCHER__SWEEP_PAIRS='[]'
    "$PY" -m ops.bench_gateway --model-dir "$MODEL_OUT" --data "$DATA" --no-peer \
        --windows 2 --concurrency 1 --queries 1 --ceiling-queries 1 --batch 2 \
        --passthrough-queries 2
fi
step "done"
