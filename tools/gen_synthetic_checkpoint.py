#!/usr/bin/env python3
"""Writes a synthetic Hugging Face checkpoint with the exact tensor shapes of a published Gemma 3
size (gemma3-spec.md §1.1, §3.3, §3.4), filled with small random BF16 values, to measure the
quantizer's memory and speed on full-size inputs without downloading weights.

    python3 tools/gen_synthetic_checkpoint.py 4b /tmp/gemma3-4b-synthetic   # ~8.6 GB, 4 shards

Text tensors use the published prefix `language_model.model.`; a vision tower of the real size
(27 SigLIP layers) is included so the file is as large as the real one, and is skipped by the
converter. Values are N(0, 0.02) (norms included: HF stores them zero-centred); a 64 MiB random pool is reused with a
different offset per tensor so that writing 8 GB takes a minute, not an hour.
"""
import json
import os
import struct
import sys

import numpy as np

SIZES = {  # hidden, layers, heads, kv heads, head_dim, ffn, vocab, qpas
    "1b": (1152, 26, 4, 1, 256, 6912, 262144, 256),
    "4b": (2560, 34, 8, 4, 256, 10240, 262208, 256),
    "12b": (3840, 48, 16, 8, 256, 15360, 262208, 256),
    "27b": (5376, 62, 32, 16, 128, 21504, 262208, 168),
}


def tensors(size):
    h, n_layers, nh, nkv, hd, ffn, vocab, _ = SIZES[size]
    p = "language_model.model."
    yield p + "embed_tokens.weight", (vocab, h)
    for i in range(n_layers):
        q = f"{p}layers.{i}."
        yield q + "input_layernorm.weight", (h,)
        yield q + "self_attn.q_proj.weight", (nh * hd, h)
        yield q + "self_attn.k_proj.weight", (nkv * hd, h)
        yield q + "self_attn.v_proj.weight", (nkv * hd, h)
        yield q + "self_attn.o_proj.weight", (h, nh * hd)
        yield q + "self_attn.q_norm.weight", (hd,)
        yield q + "self_attn.k_norm.weight", (hd,)
        yield q + "post_attention_layernorm.weight", (h,)
        yield q + "pre_feedforward_layernorm.weight", (h,)
        yield q + "mlp.gate_proj.weight", (ffn, h)
        yield q + "mlp.up_proj.weight", (ffn, h)
        yield q + "mlp.down_proj.weight", (h, ffn)
        yield q + "post_feedforward_layernorm.weight", (h,)
    yield p + "norm.weight", (h,)
    if size != "1b":  # SigLIP tower, spec §3.4 (weights only; the converter skips it)
        v = "vision_tower.vision_model.encoder.layers."
        for i in range(27):
            for w in ("q_proj", "k_proj", "v_proj", "out_proj"):
                yield f"{v}{i}.self_attn.{w}.weight", (1152, 1152)
            yield f"{v}{i}.mlp.fc1.weight", (4304, 1152)
            yield f"{v}{i}.mlp.fc2.weight", (1152, 4304)
        yield "multi_modal_projector.mm_input_projection_weight", (1152, h)


def config(size):
    h, n_layers, nh, nkv, hd, ffn, vocab, qpas = SIZES[size]
    text = {"hidden_size": h, "num_hidden_layers": n_layers, "num_attention_heads": nh,
            "num_key_value_heads": nkv, "head_dim": hd, "intermediate_size": ffn,
            "query_pre_attn_scalar": qpas, "sliding_window": 1024 if size != "1b" else 512,
            "vocab_size": vocab, "model_type": "gemma3_text"}
    if size != "1b":
        text["rope_scaling"] = {"rope_type": "linear", "factor": 8.0}
    return {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3", "text_config": text}


def main():
    size, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(0)
    pool = (rng.standard_normal(32 << 20, dtype=np.float32) * 0.02).view(np.uint32)
    pool = (pool >> 16).astype(np.uint16)  # truncate to bf16
    items = list(tensors(size))
    shard_bytes = 2_500_000_000
    shards, cur, cur_bytes = [], [], 0
    for name, shape in items:
        n = int(np.prod(shape)) * 2
        if cur and cur_bytes + n > shard_bytes:
            shards.append(cur)
            cur, cur_bytes = [], 0
        cur.append((name, shape))
        cur_bytes += n
    shards.append(cur)
    weight_map, total = {}, 0
    for si, shard in enumerate(shards):
        fname = f"model-{si + 1:05d}-of-{len(shards):05d}.safetensors"
        header, off = {"__metadata__": {"format": "pt"}}, 0
        for name, shape in shard:
            n = int(np.prod(shape)) * 2
            header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + n]}
            off += n
            weight_map[name] = fname
        hj = json.dumps(header).encode()
        hj += b" " * (-len(hj) % 8)
        with open(os.path.join(out, fname), "wb") as f:
            f.write(struct.pack("<Q", len(hj)))
            f.write(hj)
            for k, (name, shape) in enumerate(shard):
                n = int(np.prod(shape))
                start = (k * 7919) % (len(pool) // 2)
                while n > 0:
                    m = min(n, len(pool) - start)
                    chunk = pool[start:start + m]
                    f.write(chunk.tobytes())
                    n -= m
                    start = 0
        total += off
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=1)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config(size), f, indent=1)
    print(f"{out}: {len(items)} tensors, {total} bytes in {len(shards)} shards")


if __name__ == "__main__":
    main()
