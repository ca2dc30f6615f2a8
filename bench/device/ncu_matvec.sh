#!/usr/bin/env bash
# Nsight Compute counters of the decode matvecs of 27B Q4_0 (layer 0: q/k/v, o, gate/up, down),
# full text of the chosen sections. Device call, carry [".devcarry"], after prepare_deps.sh.
#   NCU_SKIP=2 NCU_COUNT=2 (skip q/k/v and o: gate/up and down)
set -uo pipefail
cd "$(dirname "$0")/../.."
source bench/device/build_unicorn.sh
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
build_unicorn . build/gpu "$OUT/configure.log" "$OUT/build.log" unicorn -DUNICORN_BUILD_TESTS=OFF || exit 1
timeout 300 ncu --clock-control none -k regex:'matvec_quant' --launch-skip "${NCU_SKIP:-2}" -c "${NCU_COUNT:-2}" \
  --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats --section LaunchStats \
  --section Occupancy --section SchedulerStats \
  ./build/gpu/unicorn bench --synthetic 27b --type q4_0 --device cuda -p 0 -n 1 -r 1 > "$OUT/ncu.txt" 2>&1
echo "ncu rc=$?"
grep -v "^    ---\|^$\|^==PROF==" "$OUT/ncu.txt" | grep -v "^  *Section:" | cut -c1-160 | head -150
