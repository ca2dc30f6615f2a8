#!/usr/bin/env bash
# llama.cpp against Unicorn on several synthetic Gemma 3 sizes in one device call: runs
# llamacpp_compare.sh once per entry of SIZES ("size:type type ..." separated by commas), the first
# one building llama.cpp. An entry that would start after SIZES_BY_S seconds (default 480) is
# left out. Each entry's files go to $OUT/SIZE/. Carry [".devcarry/deps", ".devcarry/llamacpp"].
#   SIZES="270m:q4_k_m,1b:q4_0,4b:q4_0" REPS=2 UNICORN_COMMIT=<hash> bash bench/device/llamacpp_sizes.sh
# DURING_BUILD (see llamacpp_compare.sh) applies to the first entry only.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
start=$(date +%s)
first=1
IFS=',' read -r -a entries <<< "${SIZES:-270m:q4_k_m,1b:q4_0,4b:q4_0}"
for e in "${entries[@]}"; do
  size=${e%%:*}; types=${e#*:}
  if [ $first = 0 ] && [ $(( $(date +%s) - start )) -ge "${SIZES_BY_S:-480}" ]; then
    echo "== $size ($types) left out at $(( $(date +%s) - start )) s"; continue
  fi
  echo "== $size: $types at $(( $(date +%s) - start )) s"
  mkdir -p "$OUT/$size"
  during=${DURING_BUILD:-}; [ $first = 1 ] || during=
  OUT="$OUT/$size" SIZE=$size TYPE="$types" DURING_BUILD="$during" bash bench/device/llamacpp_compare.sh
  rc=$?
  echo "== $size rc=$rc"
  [ $rc = 0 ] || [ $first = 0 ] || exit $rc
  first=0
  rm -f build/synth/*.gguf  # the disk holds one size's files at a time
done
