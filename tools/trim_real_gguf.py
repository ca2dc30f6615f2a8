#!/usr/bin/env python3
"""Cuts the real Gemma 3 270M GGUF down to a file that fits one device call (64 MiB with the build's
dependencies), so that real weights run on the GPU machine: the first N transformer layers (with
both local and global layers: the 270M's globals are 5, 11 and 17) and a part of the vocabulary:
the first V ids (special and byte tokens, then the best-scoring pieces: Gemma orders them by score,
so they hold every intermediate piece of their merges) and every single-character piece below
U+0250 (these sit at the vocabulary's end, ids 236744 on, and are the merges' base), renumbered in
their order. The token embedding (= tied output head) keeps the same rows, and the tokenizer's
tokens, scores and types the same entries, so English text still tokenizes into real pieces.
Every other tensor kept is byte for byte the original (same quant type and blocks); only
`gemma3.block_count` and the vocabulary change. Not a usable language model: its logits come from
12 of 18 layers over ~8,600 tokens, but its weights, types and activations are real, which is what
a CPU-vs-GPU comparison needs (tests/test_cuda_e2e.cpp, UNICORN_REAL_TRIMMED_GGUF).

Uses the `gguf` package from PyPI (llama.cpp's gguf-py), a test-time tool only.

Usage: python3 tools/trim_real_gguf.py [--layers 12] [--vocab 8192] IN OUT
"""
import argparse
import re
import sys

import gguf
from gguf import GGUFValueType as T

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("input")
ap.add_argument("output")
ap.add_argument("--layers", type=int, default=12)
ap.add_argument("--vocab", type=int, default=8192)
args = ap.parse_args()

r = gguf.GGUFReader(args.input)
arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
n_layers = int(r.fields[f"{arch}.block_count"].parts[-1][0])
ftok, ftype = r.fields["tokenizer.ggml.tokens"], r.fields["tokenizer.ggml.token_type"]
vocab = len(ftok.data)
if not 1 <= args.layers <= n_layers:
    sys.exit(f"trim_real_gguf: --layers {args.layers} is outside 1..{n_layers}")
if not 512 <= args.vocab <= vocab:  # the byte-fallback tokens end at id 493
    sys.exit(f"trim_real_gguf: --vocab {args.vocab} is outside 512..{vocab}")
for token_key in ("bos_token_id", "eos_token_id", "unknown_token_id", "padding_token_id"):
    f = r.fields.get(f"tokenizer.ggml.{token_key}")
    if f is not None and int(f.parts[-1][0]) >= args.vocab:  # ids below --vocab keep their number
        sys.exit(f"trim_real_gguf: tokenizer.ggml.{token_key} lies past --vocab {args.vocab}")
keep = list(range(args.vocab))
for i in range(args.vocab, vocab):
    piece = bytes(ftok.parts[ftok.data[i]]).decode("utf-8")
    if len(piece) == 1 and ord(piece) < 0x250 and int(ftype.parts[ftype.data[i]][0]) == 1:
        keep.append(i)  # a normal single-character piece
V = len(keep)

w = gguf.GGUFWriter(args.output, arch=arch)
VOCAB_ARRAYS = {"tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"}
for name, f in r.fields.items():
    if name.startswith("GGUF.") or name == "general.architecture":
        continue  # the writer adds these itself
    vtype = f.types[0]
    if name == f"{arch}.block_count":
        w.add_uint32(name, args.layers)
    elif vtype == T.ARRAY:
        sub = f.types[-1]
        idx = [f.data[i] for i in keep] if name in VOCAB_ARRAYS else f.data
        if sub == T.STRING:
            vals = [bytes(f.parts[i]).decode("utf-8") for i in idx]
        else:
            vals = [f.parts[i].tolist()[0] for i in idx]
        w.add_key_value(name, vals, T.ARRAY, sub_type=sub)
    elif vtype == T.STRING:
        w.add_key_value(name, bytes(f.parts[-1]).decode("utf-8"), vtype)
    else:
        w.add_key_value(name, f.parts[-1].tolist()[0], vtype)

kept = 0
for t in r.tensors:
    m = re.match(r"blk\.(\d+)\.", t.name)
    if m and int(m.group(1)) >= args.layers:
        continue
    data = t.data
    if t.name == "token_embd.weight":
        data = data[keep]
    w.add_tensor(t.name, data, raw_dtype=t.tensor_type)
    kept += data.nbytes
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print(f"{args.output}: {args.layers} of {n_layers} layers, {V} of {vocab} tokens ({args.vocab} first + {V - args.vocab} characters), {kept / 2**20:.1f} MiB of tensors")
