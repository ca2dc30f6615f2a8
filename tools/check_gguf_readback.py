#!/usr/bin/env python3
"""Reads a GGUF written by `unicorn quantize` with the `gguf` Python package (llama.cpp's
reader) and checks what other tools rely on: architecture gemma3, every gemma3.* key of spec
§4.2 plus gemma3.attention.scale, the tokenizer keys of the source (if given), standard GGML
tensor types, ggml ne order [cols, rows]; then dequantizes every tensor with gguf-py's own
dequantizers and reports its relative error against a reference GGUF (if given).

    python3 tools/check_gguf_readback.py OUT.gguf [--source SRC.gguf] [--reference REF_F32.gguf]
"""
import argparse
import sys

import numpy as np
import gguf
from gguf import quants

REQUIRED = ["general.architecture", "gemma3.context_length", "gemma3.embedding_length", "gemma3.block_count",
            "gemma3.feed_forward_length", "gemma3.attention.head_count", "gemma3.attention.head_count_kv",
            "gemma3.attention.key_length", "gemma3.attention.value_length",
            "gemma3.attention.layer_norm_rms_epsilon", "gemma3.attention.sliding_window", "gemma3.rope.freq_base",
            "gemma3.attention.scale"]


def value(r, key):
    f = r.fields[key]
    try:
        return f.contents()
    except Exception:  # older gguf-py
        return [f.parts[i].tolist() for i in f.data]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf_path")
    ap.add_argument("--source")
    ap.add_argument("--reference")
    a = ap.parse_args()
    r = gguf.GGUFReader(a.gguf_path)
    problems = []
    for k in REQUIRED:
        if k not in r.fields:
            problems.append(f"missing key {k}")
    if value(r, "general.architecture") != "gemma3":
        problems.append("architecture is not gemma3")
    if r.fields["gemma3.attention.scale"].types[0] != gguf.GGUFValueType.FLOAT32:
        problems.append("gemma3.attention.scale is not f32")
    if a.source:
        s = gguf.GGUFReader(a.source)
        for k in s.fields:
            if k.startswith("tokenizer.") and (k not in r.fields or value(r, k) != value(s, k)):
                problems.append(f"tokenizer key {k} differs from the source")
    ref = {t.name: t for t in gguf.GGUFReader(a.reference).tensors} if a.reference else {}
    types = {}
    worst = {}
    for t in r.tensors:
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
        if t.name.endswith("norm.weight") and t.tensor_type != gguf.GGMLQuantizationType.F32:
            problems.append(f"{t.name} is {t.tensor_type.name}, norms must be F32")
        if t.name in ref:
            rt = ref[t.name]
            if list(t.shape) != list(rt.shape):
                problems.append(f"{t.name}: shape {list(t.shape)} != reference {list(rt.shape)}")
                continue
            x = quants.dequantize(t.data, t.tensor_type).astype(np.float64).ravel()
            y = quants.dequantize(rt.data, rt.tensor_type).astype(np.float64).ravel()
            err = np.linalg.norm(x - y) / max(np.linalg.norm(y), 1e-30)
            worst[t.name] = (t.tensor_type.name, err)
    print(f"{a.gguf_path}: {len(r.tensors)} tensors, {len(r.fields)} keys; types {types}")
    if worst:
        by_type = {}
        for name, (ty, e) in worst.items():
            by_type.setdefault(ty, []).append(e)
        for ty, es in sorted(by_type.items()):
            print(f"  {ty}: {len(es)} tensors, relative error vs reference mean {np.mean(es):.3e} max {np.max(es):.3e}")
    for p in problems:
        print("PROBLEM:", p)
    print("OK" if not problems else f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
