#!/usr/bin/env bash
# One self-contained GPU-machine run: build (sm_90), CUDA op and end-to-end tests, the copy
# bandwidth roofline, and `unicorn bench` on synthetic Gemma 3 27B. Everything goes to $OUT.
# Call through the device tool with carry [".devcarry"], after bench/device/prepare_deps.sh.
#   BENCH_SCHEMES="q4_0 q8_0 bf16"  BENCH_REPS=2  SWEEP="ENV=a;ENV=b" (tg64 under each setting)
#   PARALLEL="1 2 4 8" (batched decode: tg64 of that many sequences together, 27B PARALLEL_TYPE)
#   MMA_SWEEP="UNICORN_CUDA_MMA_PIPELINE=2;UNICORN_CUDA_MMA_PIPELINE=3" (batched-decode kernel bench)
# Pass UNICORN_COMMIT=<hash from here>: the device copy's git metadata can be stale.
set -uo pipefail
cd "$(dirname "$0")/../.."
source bench/device/build_unicorn.sh
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv | tee "$OUT/gpu.txt"
echo "commit ${UNICORN_COMMIT:-$(git log -1 --format=%H 2>/dev/null)}" | tee -a "$OUT/gpu.txt"
start=$(date +%s)
build_unicorn . build/gpu "$OUT/configure.log" "$OUT/build.log" all || exit 1
echo "build: $(( $(date +%s) - start )) s"
# No kernel may read an earlier kernel's output before griddepcontrol.wait (checked in SASS).
if [ "${SKIP_PDL_CHECK:-0}" != 1 ]; then
  python3 tools/check_pdl_order.py build/gpu > "$OUT/pdl_check.txt" 2>&1
  rc=$?
  tail -6 "$OUT/pdl_check.txt"
  [ $rc -eq 0 ] || echo "PDL ORDER CHECK FAILED (rc=$rc): see pdl_check.txt"
fi

# Roofline denominator, measured in this run: device-to-device copy, bytes read + written.
python3 - <<'PY' | tee "$OUT/copy_bw.txt"
import torch
x = torch.empty(1 << 30, dtype=torch.float32, device="cuda"); y = torch.empty_like(x)
for _ in range(3): y.copy_(x)
torch.cuda.synchronize()
s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
s.record()
for _ in range(20): y.copy_(x)
e.record(); torch.cuda.synchronize()
ms = s.elapsed_time(e) / 20
print(f"copy_bandwidth_GBps {2 * x.numel() * 4 / ms / 1e6:.1f}")
PY

# Real weights for CudaEndToEnd.RealGemma270m* (bench/device/prepare_real.sh puts the cut 270M in
# .devcarry/real; carry that folder too).
real=$(ls .devcarry/real/*.gguf 2>/dev/null | head -1)
[ -n "$real" ] && export UNICORN_REAL_TRIMMED_GGUF="$PWD/$real"
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  timeout 240 ./build/gpu/unicorn_tests --gtest_filter="${TEST_FILTER:-Cuda*:CliErrors.AutoDevice*:-CudaBench*}" \
    > "$OUT/tests.log" 2>&1
  echo "cuda tests rc=$? after $(( $(date +%s) - start )) s"
  grep -E "^\[  FAILED|^\[  PASSED|tests ran|worst|SKIPPED|Failure|exception|Expected|actual|Which is|step [0-9]+:|output [0-9]" "$OUT/tests.log" | head -60
fi

if [ "${KERNEL_BENCH:-0}" = 1 ]; then  # per-kernel timings (tests/test_cuda_ops.cpp CudaBench.*)
  UNICORN_CUDA_BENCH=1 timeout 240 ./build/gpu/unicorn_tests --gtest_filter='CudaBench*' > "$OUT/kernel_bench.md" 2>&1
  grep -E "^\||27B|FAILED" "$OUT/kernel_bench.md" | head -80
  for mode in 2 0; do  # 2-8 tokens: matvec_mma from 2 tokens for every format, then the dp4a matvec alone
    echo "2-8 tokens with UNICORN_CUDA_MMA_DECODE=$mode (UNICORN_CUDA_MMA_DECODE_ALL=1):"
    UNICORN_CUDA_MMA_DECODE=$mode UNICORN_CUDA_MMA_DECODE_ALL=1 UNICORN_CUDA_BENCH=1 timeout 120 ./build/gpu/unicorn_tests \
      --gtest_filter='CudaBench.Gemma27BMatmulBandwidth' 2>&1 | grep -E "^\| [^|]+ \| [^|]+ \| [2-8] \|"
  done
  echo "tensor-core small batch below 9 tokens (UNICORN_MMA_MIN_TOKENS=2):"
  UNICORN_MMA_MIN_TOKENS=2 UNICORN_CUDA_BENCH=1 timeout 120 ./build/gpu/unicorn_tests \
    --gtest_filter='CudaBench.Gemma27BMatmulBandwidth' 2>&1 | grep -E "^\| Q4_0 \| 5376 -> 21504 \| [248] \|"
fi

# matvec_mma settings, e.g. MMA_SWEEP="UNICORN_CUDA_MMA_PIPELINE=2;UNICORN_CUDA_MMA_PIPELINE=3": the
# batched-decode kernel bench (2 / 5 / 8 tokens, every quantized format, gate / up and down shapes)
# under each, every format through the mma
if [ -n "${MMA_SWEEP:-}" ]; then
  IFS=';' read -ra mma_settings <<< "$MMA_SWEEP"
  for setting in "${mma_settings[@]}"; do
    echo "[$setting] batched decode, us per call:"
    env $setting UNICORN_CUDA_MMA_DECODE=2 UNICORN_CUDA_MMA_DECODE_ALL=1 UNICORN_CUDA_BENCH=1 UNICORN_CUDA_BENCH_ONLY=batched \
      timeout 120 ./build/gpu/unicorn_tests --gtest_filter='CudaBench.Gemma27BMatmulBandwidth' 2>&1 \
      | grep -E "^\| [^|]+ \| [^|]+ \| [258] \|" | awk -F'|' '{printf "%s%s T%s %s;", $2, $3, $4, $5} END {print ""}'
  done
fi

U=./build/gpu/unicorn
$U check 2>&1 | tee "$OUT/check.txt"
if [ -n "${OFFLOAD_LAYERS:-}" ]; then  # partial offload on the 27B shapes, e.g. OFFLOAD_LAYERS=40
  timeout 150 $U bench --synthetic 27b --type q4_0 --gpu-layers "$OFFLOAD_LAYERS" -p 64 -n 16 -r 1 2>&1 | tee -a "$OUT/bench.md"
fi
for scheme in ${BENCH_SCHEMES-q4_0 q8_0 bf16}; do
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 250 > "$OUT/gpu_mem_$scheme.csv" &
  smi=$!
  timeout 200 $U bench --synthetic 27b --type "$scheme" --device cuda -p 512 -n 128 -d 0 -d 4096 \
    -r "${BENCH_REPS:-2}" --json-file "$OUT/bench_27b_$scheme.json" 2>&1 | tee -a "$OUT/bench.md"
  kill $smi 2>/dev/null
  echo "scheme $scheme done after $(( $(date +%s) - start )) s; peak GPU memory $(sort -n "$OUT/gpu_mem_$scheme.csv" | tail -1) MiB"
done
for size in ${SIZES_BENCH:-}; do  # the smaller sizes at Q4_0, e.g. SIZES_BENCH="270m 1b 4b 12b"
  timeout 120 $U bench --synthetic "$size" --type q4_0 --device cuda -p 512 -n 128 -d 0 -d 4096 -r 2 \
    --json-file "$OUT/bench_${size}_q4_0.json" 2>&1 | tee -a "$OUT/bench.md" | grep -E '^\| gemma|% of the roofline'
done
# batched decode, e.g. PARALLEL="1 2 4 8": tg64 xP of 27B (PARALLEL_TYPE, default q4_0), under each
# setting of PARALLEL_ENVS (e.g. "UNICORN_CUDA_MMA_DECODE=2 UNICORN_CUDA_MMA_DECODE=0"; default none)
for env in ${PARALLEL_ENVS:-UNICORN_PARALLEL_DEFAULT=1}; do
  for p in ${PARALLEL:-}; do
    echo "$env:" | tee -a "$OUT/bench.md"
    env "$env" timeout 150 $U bench --synthetic 27b --type "${PARALLEL_TYPE:-q4_0}" --device cuda -p 0 -n 64 -P "$p" \
      -r 2 2>&1 | grep -E '\| tg|of the roofline' | tee -a "$OUT/bench.md"
  done
done
# NCU_P=8: the same for a step of 8 sequences (matvec_mma at 5-8 tokens)
if [ -n "${NCU_MATVEC:-}" ]; then  # stall reasons of one decode step's matvecs, e.g. NCU_MATVEC=q4_mix
  timeout 240 ncu --clock-control none -k regex:'matvec' -c 8 --section SpeedOfLight --section Occupancy \
    --section WarpStateStats --section LaunchStats \
    --metrics 'regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio' $U bench --synthetic 27b --type "$NCU_MATVEC" --device cuda \
    -p 0 -n 2 -r 1 -P "${NCU_P:-1}" > "$OUT/ncu_matvec.txt" 2>&1
  echo "ncu matvec rc=$?"; grep -E "^  [a-z_]+.*\(|Duration|DRAM Throughput|Achieved Occupancy|Registers Per|Stall|Warp Cycles Per Issued|Issued Warp|Block Limit|stalled_(long|lg|wait|math|mio|short|barrier|no_inst|not_sel|selected|imc|drain|branch|dispatch|membar|sleep|tex)" \
    "$OUT/ncu_matvec.txt" | head -150
fi
if [ "${NCU:-0}" = 1 ]; then  # hardware counters of one decode step's kernels (layer 0 and 1)
  timeout 240 ncu --clock-control none -k regex:'matvec|attention|add_norm|qk_norm|quantize' -c 14 \
    --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats --section Occupancy \
    $U bench --synthetic 27b --type q4_0 --device cuda -p 0 -n 2 -r 1 > "$OUT/ncu.txt" 2>&1
  echo "ncu rc=$?"; grep -E "^  [a-z_]+.*\(|Duration|DRAM Throughput|Memory Throughput|Achieved Occupancy|Registers Per" "$OUT/ncu.txt" | head -120
  # decode attention at depth 4096: skip the 8 prefill chunks' 496 attention launches
  timeout 240 ncu --clock-control none -k regex:'attention|merge' --launch-skip 496 -c 12 --section SpeedOfLight \
    --section Occupancy --section LaunchStats --section WarpStateStats \
    --metrics 'regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio' \
    $U bench --synthetic 27b --type q4_0 --device cuda -p 0 -n 1 -d 4096 -r 1 > "$OUT/ncu_depth.txt" 2>&1
  grep -E "^  [a-z_]+.*\(|Duration|DRAM Throughput|L2 Cache Throughput|Achieved Occupancy|Registers Per|Grid Size|Warp Cycles Per Issued|stalled_(long|lg|wait|math|mio|short|barrier|no_inst|not_sel|selected|imc|drain|branch|dispatch|membar)[a-z_]*_per_issue_active.ratio +[a-z]+ +[0-9.]*[1-9]" \
    "$OUT/ncu_depth.txt" | head -150
fi
if [ -n "${NCU_DEPTH_SIZE:-}" ]; then  # decode attention at depth 4096 of one size, e.g. NCU_DEPTH_SIZE=12b
  case "$NCU_DEPTH_SIZE" in 270m) nl=18 ;; 1b) nl=26 ;; 4b) nl=34 ;; 12b) nl=48 ;; *) nl=62 ;; esac
  # skip the depth prompt's 8 chunks of prefill attention, then the first 6 layers' decode kernels
  timeout 200 ncu --clock-control none -k regex:'attention|merge' --launch-skip $((8 * nl)) -c 12 --section SpeedOfLight \
    --section Occupancy --section LaunchStats --section WarpStateStats --section MemoryWorkloadAnalysis \
    $U bench --synthetic "$NCU_DEPTH_SIZE" --type q4_0 --device cuda -p 0 -n 1 -d 4096 -r 1 > "$OUT/ncu_depth_$NCU_DEPTH_SIZE.txt" 2>&1
  echo "ncu depth rc=$?"
  grep -E "^  [a-z_]+.*\(|Duration|DRAM Throughput|L2 Cache Throughput|L1/TEX Hit|L2 Hit|Achieved Occupancy|Registers Per|Grid Size|Block Size|Warp Cycles Per Issued|Theoretical Occupancy" \
    "$OUT/ncu_depth_$NCU_DEPTH_SIZE.txt" | head -200
fi
if [ "${MEMORY_4K:-0}" = 1 ]; then  # 27B Q4_0 at a 4K context with 64-token prompt batches (no cuBLAS scratch)
  timeout 120 $U bench --synthetic 27b --type q4_0 --device cuda -p 64 -n 16 -d 4032 -c 4096 -b 64 -r 1 2>&1 | tee -a "$OUT/bench.md"
fi
if [ "${UNFUSED_QK:-0}" = 1 ]; then  # every CUDA test with QK-norm + RoPE as their own kernel again
  UNICORN_FUSE_QK_ATTENTION=0 timeout 240 ./build/gpu/unicorn_tests --gtest_filter='Cuda*:-CudaBench*' > "$OUT/tests_fuse_qk.log" 2>&1
  echo "cuda tests with UNICORN_FUSE_QK_ATTENTION=0: rc=$?"
  grep -E "^\[  FAILED|^\[  PASSED|Failure|Expected|actual|Which is" "$OUT/tests_fuse_qk.log" | head -30
fi
# tg64 (or SWEEP_BENCH="-p 512 -n 0") of synthetic Q4_0 (SWEEP_TYPE; SWEEP_ARGS adds bench flags)
# under each of several settings, for each size of SWEEP_SIZES (default 27b), e.g.
#   SWEEP="UNICORN_FUSE_QK_ATTENTION=0;UNICORN_FUSE_QK_ATTENTION=1" SWEEP_SIZES="270m 1b"
if [ -n "${SWEEP:-}" ]; then
  IFS=';' read -ra settings <<< "$SWEEP"
  for size in ${SWEEP_SIZES:-27b}; do
    for setting in "${settings[@]}"; do
      echo "$size [$setting] $(env $setting timeout 100 $U bench --synthetic "$size" --type "${SWEEP_TYPE:-q4_0}" \
        --device cuda ${SWEEP_BENCH:--p 0 -n 64} -r "${SWEEP_REPS:-2}" ${SWEEP_ARGS:-} 2>&1 \
        | grep -E '\| (pp|tg)[0-9]|^\[cuda\]' | awk -F'|' '/^\[cuda\]/ {printf "%s ", $0; next} {printf "%s:%s ", $7, $8}')"
    done
  done
fi
if [ "${SKIP_BREAKDOWN:-0}" = 1 ]; then  # what each non-matmul op costs inside the recorded decode step
  for bsize in ${BREAKDOWN_SIZE:-27b}; do
    for skip in none quantize add_norm qk_norm_rope attention qk_norm_rope,attention,add_norm,quantize; do
      echo "$bsize UNICORN_CUDA_SKIP=$skip: $(UNICORN_CUDA_SKIP=$skip timeout 100 $U bench --synthetic "$bsize" --type q4_0 \
        --device cuda -p 0 -n 64 -r 2 ${BREAKDOWN_ARGS:-} 2>&1 | grep -E '\| tg64' | awk -F'|' '{print $8}')"
    done
  done
fi
[ "${SKIP_TTFT:-0}" = 1 ] || timeout 60 $U bench --synthetic 27b --type q4_0 --device cuda -p 32 -n 0 -r 3 2>&1 | tee -a "$OUT/bench.md"
