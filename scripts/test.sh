#!/usr/bin/env bash
# Sets up a fresh machine and runs the whole test suite (what CI runs via .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== clang-format check"
files=$(git ls-files 'src/*.cpp' 'src/*.h' 'tests/*.cpp' 'tests/*.h' 'src/*.cu' 'src/*.cuh' 'src/*.inl' 'bench/*.cpp')
if ! clang-format --dry-run --Werror $files; then
  echo "clang-format: files above are not formatted; run: clang-format -i <files>" >&2
  exit 1
fi
echo "== unit, parity and end-to-end tests"
ctest --test-dir build/release --output-on-failure -j"$(nproc)"
