#!/usr/bin/env bash
# The portable build on the GPU machine: the library compiled for compute_80 (A100 and later; no
# PDL waits, so the engine must launch without PDL) runs its CUDA tests on this machine's GPU
# through the driver's PTX JIT. Not the same as an A100, but it runs every sm_80 code path.
#   ARCH=80 bash bench/device/arch_check.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
source bench/device/build_unicorn.sh
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
arch=${ARCH:-80}; dir=build/gpu$arch
start=$(date +%s)
build_unicorn . "$dir" "/tmp/configure_$arch.log" "/tmp/build_$arch.log" all -DCMAKE_CUDA_ARCHITECTURES="$arch" || exit 1
echo "build (compute_$arch): $(( $(date +%s) - start )) s"
start=$(date +%s)
timeout 400 "./$dir/unicorn_tests" --gtest_filter='Cuda*:-CudaBench*' > "$OUT/tests_$arch.log" 2>&1
rc=$?
echo "cuda tests (compute_$arch) rc=$rc after $(( $(date +%s) - start )) s"
grep -E "^\[  FAILED|^\[  PASSED|Failure|Expected|actual|Which is" "$OUT/tests_$arch.log" | head -30
if [ "${ARCH_BENCH:-1}" = 1 ]; then
  echo "compute_$arch tg64: $(timeout 150 "./$dir/unicorn" bench --synthetic 27b --type q4_0 \
    --device cuda --no-roofline -p 0 -n 64 -r 1 2>&1 | grep -E '\| tg' | awk -F'|' '{print $8}')"
fi
exit $rc
