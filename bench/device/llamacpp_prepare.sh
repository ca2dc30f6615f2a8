#!/usr/bin/env bash
# Fills .devcarry/llamacpp (git-ignored) for bench/device/llamacpp_compare.sh: llama.cpp's source
# as vendored in the pinned llama-cpp-python sdist from PyPI (the GPU machine has no internet),
# trimmed to what a CUDA llama-bench build needs (about 6 MB), and the real Gemma 3 tokenizer
# (../shared/data/gemma3-tokenizer), which the synthetic GGUF needs for llama.cpp to load it.
# Nothing of llama.cpp enters this repository: it is only built and run on the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}  # vendors llama.cpp 0c1e57098bba (2026-10-01)
d=.devcarry/llamacpp
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$tmp"
tar xzf "$tmp/llama_cpp_python-$VERSION.tar.gz" -C "$tmp"
src="$tmp/llama_cpp_python-$VERSION/vendor"
new="$tmp/out"  # built whole before it replaces the old copy
mkdir -p "$new"
git -C "$src/llama.cpp" log -1 --format='llama.cpp %H %cd' 2>/dev/null > "$new/VERSION" \
  || echo "llama.cpp from llama-cpp-python $VERSION" > "$new/VERSION"
ex=()
for p in models docs media examples tests pocs benches gguf-py tools/ui .git \
  ggml/src/ggml-sycl ggml/src/ggml-opencl ggml/src/ggml-hexagon ggml/src/ggml-metal ggml/src/ggml-vulkan ggml/src/ggml-et; do
  ex+=(--exclude="llama.cpp/$p")
done
tar czf "$new/llama.cpp.tar.gz" -C "$src" "${ex[@]}" llama.cpp
tok=../shared/data/gemma3-tokenizer
cp "$tok/tokenizer.json.xz" "$tok/tokenizer_config.json" "$new/"
mkdir -p .devcarry && rm -rf "$d" && mv "$new" "$d"
cat "$d/VERSION"
du -sh "$d"
