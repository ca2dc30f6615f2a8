#!/usr/bin/env bash
# Puts the real Gemma 3 270M, cut to 12 layers and 8,608 tokens (tools/trim_real_gguf.py: ~49 MiB,
# every kept tensor byte for byte the original), into .devcarry/real (git-ignored), so that a device
# call can carry it beside .devcarry/deps (64 MiB in all): run_gpu.sh then points
# CudaEndToEnd.RealGemma270mLayersMatchCpuOverATextAnd64DecodeSteps at it. Needs the model
# (scripts/setup.sh) and the `gguf` package from PyPI (a test-time tool; installed here if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.devcarry/' .git/info/exclude 2>/dev/null || echo '/.devcarry/' >> .git/info/exclude
PY=${PYTHON:-python3}
$PY -c "import gguf" 2>/dev/null || $PY -m pip install -q --disable-pip-version-check gguf
model=models/gemma-3-270m-q4_k_m.gguf
[ -f "$model" ] || { echo "prepare_real: $model is missing: run scripts/setup.sh first" >&2; exit 1; }
mkdir -p .devcarry/real
$PY tools/trim_real_gguf.py --layers 12 --vocab 8192 "$model" .devcarry/real/gemma3-270m-12l-8k.gguf
du -sh .devcarry/real
