#!/usr/bin/env bash
# Quality of every preset against an F32 reference, with and without an importance matrix:
# calibrates on one text, evaluates on another (docs/QUANTIZATION.md).
# usage: tools/quant_eval.sh REF_F32.gguf CALIB.txt HELDOUT.txt OUTDIR [CHUNKS] [CTX] [PRESETS...]
set -euo pipefail
ref=$1; calib=$2; heldout=$3; out=$4; chunks=${5:-8}; ctx=${6:-256}; shift 6 || shift $#
presets=("$@"); [ ${#presets[@]} -gt 0 ] || presets=(q8_0 q4_mix q4_small q4_0)
bin=${UNICORN:-build/release/unicorn}
mkdir -p "$out"
if [ ! -f "$out/imatrix.gguf" ]; then
  "$bin" quantize "$ref" --calibrate "$calib" --calib-ctx "$ctx" --calib-chunks 16 --imatrix-out "$out/imatrix.gguf" \
    2>"$out/calibrate.log"
fi
echo "| preset | imatrix | bits/weight | size MB | ppl ref | ppl quant | retention | mean KL | top-1 |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
for p in "${presets[@]}"; do
  for im in no yes; do
    q="$out/$p-$im.gguf"
    args=(); [ $im = yes ] && args=(--imatrix "$out/imatrix.gguf")
    "$bin" quantize "$ref" "$q" --preset "$p" "${args[@]}" 2>"$out/$p-$im.quantize.log"
    "$bin" compare "$ref" "$q" -f "$heldout" -c "$ctx" --chunks "$chunks" --json-out "$out/$p-$im.json" \
      >"$out/$p-$im.md" 2>/dev/null
    python3 -c "
import json; j=json.load(open('$out/$p-$im.json'))
print('| $p | $im | %.3f | %.1f | %.4f | %.4f | %.2f%% | %.5f | %.2f%% |' % (j['quant']['bits_per_weight'],
  j['quant']['file_bytes']/1e6, j['ref']['ppl'], j['quant']['ppl'], 100*j['retention'], j['mean_kl'], 100*j['top1_agreement']))"
    rm -f "$q"
  done
done
