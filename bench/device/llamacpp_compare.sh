#!/usr/bin/env bash
# Same card, same run: llama.cpp's llama-bench and `unicorn bench` on one synthetic Gemma 3 GGUF
# (27B unless SIZE says otherwise; random but valid weights of the real shapes, written by
# `unicorn bench --write-gguf` with the real tokenizer's metadata). Run through the device tool with carry [".devcarry"], after
# bench/device/prepare_deps.sh and bench/device/llamacpp_prepare.sh:
#   UNICORN_COMMIT=<hash> bash bench/device/llamacpp_compare.sh > $OUT/run.txt 2>&1
# Resumable: llama.cpp's CUDA build takes minutes; if it is not done by LCPP_BUILD_S seconds the
# script stops (exit 3) and a second call on the still-warm machine goes on where it stopped; so
# does a build that ends after BENCH_START_BY_S seconds, too late for the benches.
#   TYPE="q4_0 q4_mix" (--synthetic schemes, one GGUF each, in order; a type that would start after
#   TYPES_BY_S seconds, default 470, is left for the next call)  REPS=3  DEPTHS="0 4096"
#   SIZE=27b (--synthetic size: 270m, 1b, 4b, 12b or 27b)
#   DURING_BUILD="command" (run once the GGUFs are written, while llama.cpp still builds; its
#   output goes to $OUT/during_build.txt)
set -uo pipefail
cd "$(dirname "$0")/../.."
source bench/device/build_unicorn.sh
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
TYPE=${TYPE:-q4_0 q4_mix}; REPS=${REPS:-3}; DEPTHS=${DEPTHS:-0 4096}; SIZE=${SIZE:-27b}
start=$(date +%s)
el() { echo $(( $(date +%s) - start )); }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv | tee "$OUT/gpu.txt"
echo "commit ${UNICORN_COMMIT:-$(git log -1 --format=%H 2>/dev/null)}" | tee -a "$OUT/gpu.txt"
cat .devcarry/llamacpp/VERSION | tee -a "$OUT/gpu.txt"

L=build/llamacpp
LB=$L/b/bin/llama-bench
lpid=
# An early exit must not leave llama.cpp's build running beside the next call's.
trap '[ -n "$lpid" ] && kill "$lpid" 2>/dev/null' EXIT
if [ ! -x "$LB" ]; then
  if [ ! -d "$L/llama.cpp" ]; then  # extracted whole or not at all
    rm -rf "$L/extract" && mkdir -p "$L/extract" && tar xzf .devcarry/llamacpp/llama.cpp.tar.gz -C "$L/extract" \
      && mv "$L/extract/llama.cpp" "$L/llama.cpp" || { echo "cannot extract llama.cpp's source"; exit 1; }
  fi
  if [ ! -f "$L/b/build.ninja" ]; then
    cmake -S "$L/llama.cpp" -B "$L/b" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON \
      -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
      -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF > "$OUT/lcpp_configure.log" 2>&1 \
      || { tail -30 "$OUT/lcpp_configure.log"; exit 1; }
  fi
  cmake --build "$L/b" -j16 --target llama-bench > "$OUT/lcpp_build.log" 2>&1 &
  lpid=$!
fi

# Unicorn's own build (beside llama.cpp's), then the GGUF both engines read.
build_unicorn . build/gpu "$OUT/configure.log" "$OUT/build.log" unicorn || exit 1
echo "unicorn build: $(el) s"
U=./build/gpu/unicorn
# The GGUF of one type, reused by later calls on the same warm machine (written by this commit's
# generator then).
write_gguf() {
  local type=$1 g=build/synth/${SIZE}_$1.gguf
  [ -f "$g" ] && return 0
  mkdir -p build/synth "$L/tok"
  python3 -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],'wb'))" \
    .devcarry/llamacpp/tokenizer.json.xz "$L/tok/tokenizer.json"
  cp .devcarry/llamacpp/tokenizer_config.json "$L/tok/"
  $U bench --synthetic "$SIZE" --type "$type" --write-gguf "$g.part" --tokenizer "$L/tok" > "$OUT/gguf_$type.log" 2>&1 \
    || { tail -5 "$OUT/gguf_$type.log"; return 1; }
  mv "$g.part" "$g" && rm -f "$OUT/gguf_$type.log"
  echo "gguf $type written: $(el) s, $(du -h "$g" | cut -f1)"
}
first=${TYPE%% *}
for type in $TYPE; do write_gguf "$type" || exit 1; done  # while llama.cpp builds

if [ -n "${DURING_BUILD:-}" ]; then
  ( eval "$DURING_BUILD" ) > "$OUT/during_build.txt" 2>&1
  echo "DURING_BUILD rc=$? at $(el) s"
fi
if [ -n "$lpid" ]; then
  while kill -0 "$lpid" 2>/dev/null; do
    if [ "$(el)" -ge "${LCPP_BUILD_S:-560}" ]; then
      kill "$lpid"; wait "$lpid" 2>/dev/null; lpid=
      echo "llama.cpp build not done after $(el) s ($(grep -c '^\[' "$OUT/lcpp_build.log") steps): call again while warm"
      tail -2 "$OUT/lcpp_build.log"; exit 3
    fi
    sleep 5
  done
  wait "$lpid" || { lpid=; grep -E "error" -A3 "$OUT/lcpp_build.log" | head -40; exit 1; }
  lpid=
  echo "llama.cpp build: $(el) s"
  # The benches took about 30 s in session 9 and may take 150 (their timeouts): a build that
  # ended later than that before the device's 600 s leaves them to the next call.
  if [ "$(el)" -ge "${BENCH_START_BY_S:-440}" ]; then
    echo "llama.cpp built at $(el) s, too late for both benches in this call: call again while warm"; exit 3
  fi
fi
rm -f "$OUT/lcpp_build.log" "$OUT/lcpp_configure.log" "$OUT/configure.log" "$OUT/build.log"  # ~8 files come back

# Same file, same card, one after the other. llama-bench: all layers on the GPU, flash attention.
# One file per type: llamacpp_TYPE.md, unicorn_TYPE.md, unicorn_TYPE.json.
d_csv=$(echo $DEPTHS | tr ' ' ',')
d_args=; for d in $DEPTHS; do d_args="$d_args -d $d"; done
for type in $TYPE; do
  if [ "$type" != "$first" ] && [ "$(el)" -ge "${TYPES_BY_S:-470}" ]; then
    echo "$type left for the next call (at $(el) s)"; continue
  fi
  G=build/synth/${SIZE}_$type.gguf  # written above
  echo "== $type"
  timeout 90 "$LB" -m "$G" -ngl 99 -fa 1 -p 512 -n 128 -d "$d_csv" -r "$REPS" -o md 2>"$OUT/llamacpp_stderr.txt" \
    | tee "$OUT/llamacpp_$type.md"
  echo "llama-bench rc=$? at $(el) s"; grep -iE "error|failed" "$OUT/llamacpp_stderr.txt" | head -5
  timeout 60 $U bench -m "$G" --device cuda -p 512 -n 128 $d_args -r "$REPS" --json-file "$OUT/unicorn_$type.json" 2>&1 \
    | tee "$OUT/unicorn_$type.md"
  echo "unicorn bench rc=$? at $(el) s"
done
