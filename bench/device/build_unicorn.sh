# Sourced by the GPU-machine scripts (bash): Unicorn's Release build there, sm_90 by default, with
# the dependencies carried in .devcarry/deps (bench/device/prepare_deps.sh). Run from the
# repository root.
#   build_unicorn SRC BUILD CONFIGURE_LOG BUILD_LOG TARGET [cmake flags...]
# TARGET: a target name (e.g. unicorn), or all. Extra flags come last, so that they win (e.g.
# -DCMAKE_CUDA_ARCHITECTURES=80). On failure it prints the log's end or its errors and returns 1.
build_unicorn() {
  local src=$1 build=$2 configure_log=$3 build_log=$4 target=$5
  shift 5
  cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DUNICORN_DEPS_DIR="$PWD/.devcarry/deps" -DCMAKE_DISABLE_FIND_PACKAGE_GTest=ON "$@" > "$configure_log" 2>&1 \
    || { tail -30 "$configure_log"; return 1; }
  local targets=()
  [ "$target" = all ] || targets=(--target "$target")
  cmake --build "$build" -j16 "${targets[@]}" > "$build_log" 2>&1 \
    || { grep -E "error" -A3 "$build_log" | head -40; return 1; }
}
