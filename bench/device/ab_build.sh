#!/usr/bin/env bash
# A/B of a build option on the GPU machine: builds a second tree with extra CMake flags next to
# run_gpu.sh's build/gpu (run that first), then alternates the same bench between the two.
#   AB_FLAGS="-DSOME_OPTION=ON" AB_BENCH="--type q4_0 -p 0 -n 64 -r 2" AB_ROUNDS=2 \
#     bash bench/device/ab_build.sh
# AB_ENV_B="ENV=a;ENV=b" runs side B once per setting in each round (run-time switches of B).
set -uo pipefail
cd "$(dirname "$0")/../.."
source bench/device/build_unicorn.sh
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
start=$(date +%s)
rm -f build/gpu_b/CMakeCache.txt  # no option of an earlier A/B stays behind
# shellcheck disable=SC2086  # AB_FLAGS: several flags
build_unicorn . build/gpu_b "$OUT/configure_b.log" "$OUT/build_b.log" unicorn -DUNICORN_BUILD_TESTS=OFF \
  ${AB_FLAGS:?set AB_FLAGS} || exit 1
rm -f "$OUT/configure_b.log" "$OUT/build_b.log"
echo "build B ($AB_FLAGS): $(( $(date +%s) - start )) s"
IFS=';' read -r -a b_envs <<< "${AB_ENV_B:-}"
[ ${#b_envs[@]} -eq 0 ] && b_envs=("")
for round in $(seq "${AB_ROUNDS:-2}"); do
  for side in A "${b_envs[@]/#/B }"; do
    bin=./build/gpu/unicorn; setting=()
    if [ "$side" != A ]; then
      bin=./build/gpu_b/unicorn
      # shellcheck disable=SC2206  # the setting's words: ENV=value pairs
      setting=(${side#B })
    fi
    echo "[$side round $round] $(env "${setting[@]}" timeout 150 $bin bench --synthetic 27b --device cuda \
      --no-roofline ${AB_BENCH:---type q4_0 -p 0 -n 64 -r 2} 2>&1 | grep -E '\| (pp|tg)[0-9]' |
      awk -F'|' '{printf "%s:%s ", $7, $8}')"
  done
done
