#!/usr/bin/env bash
# Sensitivity of each tensor role to 4-bit rounding: quantize ONE role to Q4_0 (everything else
# kept F32), then measure mean KL / perplexity against the F32 reference on the CALIBRATION text
# (the held-out text is kept for the final numbers). Used to choose q4_mix/q4_small
# (docs/QUANTIZATION.md).
# usage: tools/quant_sensitivity.sh REF_F32.gguf TEXT [CHUNKS] [CTX]
set -euo pipefail
ref=$1; text=$2; chunks=${3:-2}; ctx=${4:-256}
bin=${UNICORN:-build/release/unicorn}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n_layers=$("$bin" info -m "$ref" 2>/dev/null | grep -o 'layers [0-9]*' | head -1 | awk '{print $2}')
last=$((n_layers - 1)); prev=$((n_layers - 2))
mid1=$((n_layers / 2 - 1)); mid2=$((n_layers / 2)); mid3=$((n_layers / 2 + 1)); mid0=$((n_layers / 2 - 2))
runs=(
  "token_embd|token_embd"
  "attn_q|attn_q"  "attn_k|attn_k"  "attn_v|attn_v"  "attn_output|attn_output"
  "ffn_gate|ffn_gate"  "ffn_up|ffn_up"  "ffn_down|ffn_down"
  "ffn_down outer (0,1,${prev},${last})|blk\\.(0|1|${prev}|${last})\\.ffn_down"
  "ffn_down middle (${mid0}..${mid3})|blk\\.(${mid0}|${mid1}|${mid2}|${mid3})\\.ffn_down"
  "attn_v outer (0,1,${prev},${last})|blk\\.(0|1|${prev}|${last})\\.attn_v"
  "attn_v middle (${mid0}..${mid3})|blk\\.(${mid0}|${mid1}|${mid2}|${mid3})\\.attn_v"
)
echo "| quantized to Q4_0 (rest F32) | mean KL | top-1 | ppl ratio |"
echo "|---|---:|---:|---:|"
for r in "${runs[@]}"; do
  label=${r%%|*}; re=${r#*|}
  "$bin" quantize "$ref" "$tmp/q.gguf" --preset f32 --override "$re=q4_0" >/dev/null 2>&1
  "$bin" compare "$ref" "$tmp/q.gguf" -f "$text" -c "$ctx" --chunks "$chunks" --no-tensors --format json \
      2>/dev/null > "$tmp/r.json"
  python3 -c "
import json,sys; j=json.load(open('$tmp/r.json'))
print('| $label | %.5f | %.2f%% | %.4f |' % (j['mean_kl'], 100*j['top1_agreement'], j['ppl_ratio']))"
  rm -f "$tmp/q.gguf"
done
