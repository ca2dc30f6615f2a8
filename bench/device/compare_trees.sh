#!/usr/bin/env bash
# Regression hunt on the GPU machine: builds the working tree and every source tarball in
# .devcarry/trees/ (made here with `git archive --format=tar.gz -o .devcarry/trees/<rev>.tgz <rev>`),
# then alternates the same `unicorn bench` between them, TREE_ROUNDS rounds.
#   TREE_BENCH="--type q4_0 -p 32 -n 0 -r 3" TREE_ROUNDS=2 [TREE_REUSE_GPU=1] bash bench/device/compare_trees.sh
# (several benches: TREE_BENCH="--type q4_0 -p 0 -n 128 -r 2;--type q4_mix -p 0 -n 128 -r 2";
# TREE_SIZES="27b 4b" runs each bench on each synthetic size, 27b by default)
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
source bench/device/build_unicorn.sh
build() {  # source dir, build dir
  build_unicorn "$1" "$2" /tmp/configure_tree.log /tmp/build_tree.log unicorn -DUNICORN_BUILD_TESTS=OFF
}
start=$(date +%s)
# Its own build tree: run_gpu.sh's build/gpu keeps the tests this one leaves out. After
# run_gpu.sh in the same call, TREE_REUSE_GPU=1 takes build/gpu's binary for the working tree.
names=(work); bins=(./build/gpu_tree/unicorn)
if [ "${TREE_REUSE_GPU:-0}" = 1 ] && [ -f build/gpu/build.ninja ]; then
  build_unicorn . build/gpu /tmp/configure_tree.log /tmp/build_tree.log unicorn || exit 1
  bins=(./build/gpu/unicorn)  # up to date with the working tree (a no-op after run_gpu.sh)
else
  build . build/gpu_tree || exit 1
fi
for t in .devcarry/trees/*.tgz; do
  [ -e "$t" ] || continue
  n=$(basename "$t" .tgz); d=/tmp/tree_$n
  rm -rf "$d"; mkdir -p "$d"; tar -xzf "$t" -C "$d"
  build "$d" "$d/build" && { names+=("$n"); bins+=("$d/build/unicorn"); }
done
echo "built ${names[*]} in $(( $(date +%s) - start )) s"
# TREE_BENCH may hold several benches separated by ';', each alternated in every round.
IFS=';' read -ra benches <<< "${TREE_BENCH:---type q4_0 -p 32 -n 0 -r 3}"
for round in $(seq "${TREE_ROUNDS:-2}"); do
  for size in ${TREE_SIZES:-27b}; do
    for b in "${benches[@]}"; do
      for i in "${!names[@]}"; do
        echo "[${names[$i]} round $round: $size $b] $(timeout 150 ${bins[$i]} bench --synthetic "$size" --device cuda \
          $b 2>&1 | grep -E '\| (pp|tg)[0-9]' | awk -F'|' '{printf "%s:%s ", $7, $8}')"
      done
    done
  done
done
