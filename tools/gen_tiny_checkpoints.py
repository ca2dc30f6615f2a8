#!/usr/bin/env python3
"""Generate tiny random-weight Gemma 3 text checkpoints plus reference logits.

Output: tests/fixtures/tiny/<name>/ (see tests/fixtures/tiny/README.md for the exact formats).

The reference implementation is Hugging Face transformers' own Gemma 3 code (Gemma3TextConfig +
Gemma3ForCausalLM, float32, attn_implementation="eager"); the GGUF copies are written with the
`gguf` Python package's GGUFWriter following llama.cpp's Gemma 3 conventions (spec §4.2-4.4). Nothing
here uses Unicorn code, so the fixtures are an independent check of the engine.

Design choices (why):
- Every weight is rounded to a bfloat16-representable value (and magnitudes below 2**-14 are flushed
  to zero), so the F32, BF16 and F16 copies of a checkpoint hold *exactly* the same numbers and one set
  of reference logits serves all of them.
- Weights are drawn with a large enough scale that logits spread over several units; norm weights
  (input/post-attention/pre-FFN/post-FFN/final/q_norm/k_norm) are random and non-zero so that the
  "1 + w" convention (spec §2.2) and the GGUF "+1 baked in" convention (spec §4.4) are really tested.
- The prompt is a seeded random sequence starting with BOS=2; the greedy continuation is accepted only
  if every greedy decision wins by at least MIN_MARGIN logits, so an engine that is right to ~1e-4
  cannot legitimately pick a different token.
- A float64 numpy forward written from the spec alone, reading only model.gguf, must reproduce the
  stored logits (max error / max |logit| < 1e-5): this checks the GGUF conventions end to end.
- Reference logits are computed twice, (a) one causal forward over the whole sequence and (b) prefill
  + one token at a time through transformers' DynamicCache (sliding layers keep a window); the script
  asserts they agree to a relative error below 1e-5 and stores (a).

Run: python3 tools/gen_tiny_checkpoints.py   (needs torch, transformers, gguf, safetensors, numpy)
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import gguf
import safetensors
import safetensors.numpy
import safetensors.torch
import transformers
from transformers import Gemma3Config, Gemma3ForCausalLM, Gemma3TextConfig
from transformers.cache_utils import DynamicCache

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "tiny"

VOCAB = 512
PROMPT_LEN = 12
GEN_STEPS = 64           # generated tokens; total positions = PROMPT_LEN + GEN_STEPS
MIN_MARGIN = 0.02        # top1 - top2 logit gap required at every greedy decision
MIN_DISTINCT = 8         # distinct generated tokens required (rejects collapsed repetitions)
BOS, EOS, UNK, PAD = 2, 1, 3, 0

# name -> (text-config overrides, storage options)
# Storage: "hf" = "plain" (model.* prefix, one F32 file, written by save_pretrained; config.json either
#          as transformers 5 writes it ("transformers5": layer_types + rope_parameters) or hub style
#          ("legacy": rope_theta, rope_local_base_freq, rope_scaling, sliding_window_pattern)) or
#          "sharded_lm" (language_model.model.* prefix, F32, 2 shards + index, multimodal config.json);
#          "bf16_copy" adds hf_bf16/ (model.language_model.* prefix, BF16, multimodal config.json);
#          "gguf_matrix_type" = "F32" or "F16" for the 2-D tensors (norms are always F32).
CONFIGS = {
    # GQA 1, head_dim 128, 5 sliding + 1 full, window 8, no rope scaling, scale 1/sqrt(head_dim).
    "g1_hd128_w8": dict(
        cfg=dict(hidden_size=16, num_hidden_layers=6, num_attention_heads=2, num_key_value_heads=2,
                 head_dim=128, intermediate_size=32, sliding_window=8, query_pre_attn_scalar=128),
        rope_scaling=None, hf="plain", config_style="transformers5", bf16_copy=False,
        gguf_matrix_type="F32", seed=1001),
    # GQA 2, head_dim 256, window 16, linear rope factor 8 on the global layer.
    "g2_hd256_w16_linear8": dict(
        cfg=dict(hidden_size=16, num_hidden_layers=6, num_attention_heads=2, num_key_value_heads=1,
                 head_dim=256, intermediate_size=16, sliding_window=16, query_pre_attn_scalar=256),
        rope_scaling={"rope_type": "linear", "factor": 8.0}, hf="plain", config_style="transformers5",
        bf16_copy=False, gguf_matrix_type="F32", seed=1002),
    # GQA 4, head_dim 128, 7 layers (pattern continues after the global layer 5), linear 8,
    # query_pre_attn_scalar 168 != head_dim (the 27B situation: scale 1/sqrt(168)).
    "g4_hd128_w8_linear8_qpas168": dict(
        cfg=dict(hidden_size=16, num_hidden_layers=7, num_attention_heads=4, num_key_value_heads=1,
                 head_dim=128, intermediate_size=16, sliding_window=8, query_pre_attn_scalar=168),
        rope_scaling={"rope_type": "linear", "factor": 8.0}, hf="plain", config_style="legacy",
        bf16_copy=False, gguf_matrix_type="F32", seed=1003),
    # Hidden 64 (sqrt exact), GQA 1, head_dim 128, query_pre_attn_scalar 64 = hidden/heads.
    # Exercises the loader paths: prefixed + sharded F32, BF16 safetensors, F16 GGUF matrices.
    "h64_hd128_w16_sharded": dict(
        cfg=dict(hidden_size=64, num_hidden_layers=6, num_attention_heads=1, num_key_value_heads=1,
                 head_dim=128, intermediate_size=32, sliding_window=16, query_pre_attn_scalar=64),
        rope_scaling=None, hf="sharded_lm", bf16_copy=True, gguf_matrix_type="F16", seed=1004),
}


def bf16_exact(t: torch.Tensor) -> torch.Tensor:
    """Round to bfloat16 and flush |x| < 2**-14 to 0 so F32/BF16/F16 copies are identical."""
    t = t.to(torch.bfloat16).to(torch.float32)
    t[t.abs() < 2.0 ** -14] = 0.0
    return t


def make_model(name: str, spec: dict) -> Gemma3ForCausalLM:
    kw = dict(spec["cfg"])
    kw.update(vocab_size=VOCAB, max_position_embeddings=512, rms_norm_eps=1e-6,
              hidden_activation="gelu_pytorch_tanh", initializer_range=0.5,
              bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD, tie_word_embeddings=True,
              rope_theta=1_000_000.0, rope_local_base_freq=10_000.0,
              attn_implementation="eager")
    if spec["rope_scaling"] is not None:
        kw["rope_scaling"] = dict(spec["rope_scaling"])
    cfg = Gemma3TextConfig(**kw)
    torch.manual_seed(spec["seed"])
    model = Gemma3ForCausalLM(cfg).eval()
    hidden = cfg.hidden_size
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname == "model.norm.weight":
                # Final norm: multiplier 1+w in (-4, 4) with random signs. With tied embeddings a
                # positive multiplier makes every token predict itself (the residual still holds its
                # own embedding), and greedy decoding collapses to one repeated token.
                new = torch.empty_like(p).uniform_(-5.0, 3.0)
            elif pname.endswith("norm.weight"):
                # random non-zero "1-centred" weights: effective multiplier 1+w in [0.5, 1.5]
                new = torch.empty_like(p).uniform_(-0.5, 0.5)
            elif "embed_tokens" in pname:
                new = torch.randn_like(p) * (2.0 / math.sqrt(hidden))
            else:  # Linear [out, in]: keep activations O(1)
                new = torch.randn_like(p) * (1.2 / math.sqrt(p.shape[1]))
            p.copy_(bf16_exact(new))
    model.tie_weights()
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    return model


def check_rope(model: Gemma3ForCausalLM, spec: dict) -> dict:
    """Verify from the installed modeling code that scaling hits only full-attention layers."""
    cfg = model.config
    rot = model.model.rotary_emb
    hd = cfg.head_dim
    expo = torch.arange(0, hd, 2, dtype=torch.float32) / hd
    local = 1.0 / (10_000.0 ** expo)
    glob = 1.0 / (1_000_000.0 ** expo)
    factor = spec["rope_scaling"]["factor"] if spec["rope_scaling"] else 1.0
    assert torch.allclose(rot.sliding_attention_inv_freq, local, rtol=1e-6, atol=0), "local rope"
    assert torch.allclose(rot.full_attention_inv_freq, glob / factor, rtol=1e-6, atol=0), "global rope"
    assert rot.sliding_attention_attention_scaling == 1.0 and rot.full_attention_attention_scaling == 1.0
    return {"local_base": 10000.0, "global_base": 1000000.0, "global_linear_factor": factor,
            "rope_parameters_in_config": cfg.rope_parameters}


@torch.no_grad()
def full_logits(model, ids: list[int]) -> torch.Tensor:
    out = model(input_ids=torch.tensor([ids]), use_cache=False)
    return out.logits[0].float()


@torch.no_grad()
def greedy_with_cache(model, prompt: list[int], steps: int):
    """Prefill, then feed one argmax token at a time through DynamicCache. Returns ids and logits."""
    cache = DynamicCache(config=model.config)
    out = model(input_ids=torch.tensor([prompt]), cache=cache, use_cache=True)
    rows = [out.logits[0].float()]
    ids = list(prompt)
    nxt = int(rows[-1][-1].argmax())
    for _ in range(steps - 1):
        ids.append(nxt)
        out = model(input_ids=torch.tensor([[nxt]]), cache=out.cache, use_cache=True)
        rows.append(out.logits[0].float())
        nxt = int(rows[-1][-1].argmax())
    ids.append(nxt)  # the last generated token is recorded but not fed
    return ids, torch.cat(rows, dim=0)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).abs().max(dim=-1).values / b.abs().max(dim=-1).values).max())


def margins(logits: torch.Tensor) -> torch.Tensor:
    top2 = logits.topk(2, dim=-1).values
    return top2[:, 0] - top2[:, 1]


def pick_prompt_and_run(model, seed: int):
    """Try seeded random prompts until every greedy decision has a clear margin."""
    for attempt in range(200):
        g = torch.Generator().manual_seed(seed * 1000 + attempt)
        # ordinary tokens only: avoid 0..3 (pad/eos/bos/unk) after the BOS
        body = torch.randint(4, VOCAB, (PROMPT_LEN - 1,), generator=g).tolist()
        prompt = [BOS] + body
        ids, step_logits = greedy_with_cache(model, prompt, GEN_STEPS)
        # the fed sequence is ids[:-1]; row t of its logits predicts ids[t+1]
        seq = ids[:-1]
        assert len(seq) == PROMPT_LEN + GEN_STEPS - 1
        decision_rows = step_logits[PROMPT_LEN - 1:]
        m = margins(decision_rows)
        if float(m.min()) >= MIN_MARGIN and len(set(ids[PROMPT_LEN:])) >= MIN_DISTINCT:
            return prompt, ids, step_logits, attempt, float(m.min())
    raise RuntimeError("no prompt with a clear, varied greedy path; change the seed or the weight scale")


def hf_state_numpy(model) -> dict[str, np.ndarray]:
    sd = model.state_dict()
    return {k: v.detach().float().numpy().copy() for k, v in sd.items() if k != "lm_head.weight"}


def legacy_text_config(model, dtype: str) -> dict:
    """Text config in the style of the published hub files (spec §1.1 notes): flat rope_theta,
    rope_local_base_freq, rope_scaling and sliding_window_pattern instead of layer_types and
    rope_parameters (the transformers-5 form that save_pretrained writes)."""
    cfg = model.config
    full = cfg.rope_parameters["full_attention"]
    scaling = None
    if full.get("rope_type", "default") != "default":
        scaling = {"rope_type": full["rope_type"], "factor": full["factor"]}
    return {
        "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text",
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size, "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads, "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": cfg.head_dim, "hidden_activation": cfg.hidden_activation,
        "max_position_embeddings": cfg.max_position_embeddings, "rms_norm_eps": cfg.rms_norm_eps,
        "query_pre_attn_scalar": cfg.query_pre_attn_scalar, "sliding_window": cfg.sliding_window,
        "sliding_window_pattern": 6,
        "rope_theta": full["rope_theta"],
        "rope_local_base_freq": cfg.rope_parameters["sliding_attention"]["rope_theta"],
        "rope_scaling": scaling,
        "final_logit_softcapping": None, "attn_logit_softcapping": None,
        "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": BOS, "eos_token_id": EOS, "pad_token_id": PAD,
        "tie_word_embeddings": True, "torch_dtype": dtype,
    }


def multimodal_config_dict(model, dtype: str) -> dict:
    """config.json of a Gemma3ForConditionalGeneration checkpoint, hub style (text_config nested)."""
    tc = legacy_text_config(model, dtype)
    del tc["architectures"], tc["torch_dtype"]
    return {
        "architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
        "boi_token_index": 255999, "eoi_token_index": 256000, "image_token_index": 262144,
        "mm_tokens_per_image": 256, "eos_token_id": [EOS, 106], "initializer_range": 0.02,
        "text_config": tc, "torch_dtype": dtype,
        "vision_config": {"hidden_size": 1152, "image_size": 896, "intermediate_size": 4304,
                          "model_type": "siglip_vision_model", "num_attention_heads": 16,
                          "num_hidden_layers": 27, "patch_size": 14, "vision_use_head": False},
    }


def check_config_file(model, path: Path):
    """transformers must read the written config.json back to the same text architecture."""
    d = json.loads(path.read_text())
    if d.get("model_type") == "gemma3":
        tc = Gemma3Config(**d).text_config
    else:
        tc = Gemma3TextConfig(**{k: v for k, v in d.items() if k not in ("architectures", "model_type")})
    cfg = model.config
    for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                "num_attention_heads", "num_key_value_heads", "head_dim", "query_pre_attn_scalar",
                "sliding_window", "layer_types", "rope_parameters", "rms_norm_eps"):
        assert getattr(tc, key) == getattr(cfg, key), (path, key, getattr(tc, key), getattr(cfg, key))


def write_hf_plain(model, dst: Path, config_style: str):
    dst.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dst, safe_serialization=True)
    for extra in ("generation_config.json",):
        if (dst / extra).exists():
            (dst / extra).unlink()
    if config_style == "legacy":
        (dst / "config.json").write_text(json.dumps(legacy_text_config(model, "float32"), indent=2) + "\n")
    check_config_file(model, dst / "config.json")
    with safetensors.safe_open(dst / "model.safetensors", "np") as f:
        keys = set(f.keys())
    assert "lm_head.weight" not in keys and "model.embed_tokens.weight" in keys, keys


def write_hf_sharded(model, dst: Path, prefix: str):
    """Two F32 shards + model.safetensors.index.json, tensor names under `prefix`."""
    dst.mkdir(parents=True, exist_ok=True)
    sd = hf_state_numpy(model)
    n_layers = model.config.num_hidden_layers
    half = n_layers // 2
    shards = [{}, {}]
    for k, v in sd.items():
        assert k.startswith("model."), k
        rest = k[len("model."):]
        in_first = rest.startswith("embed_tokens") or any(
            rest.startswith(f"layers.{i}.") for i in range(half))
        shards[0 if in_first else 1][prefix + rest] = v
    names = [f"model-0000{i + 1}-of-00002.safetensors" for i in range(2)]
    weight_map, total = {}, 0
    for shard, fname in zip(shards, names):
        safetensors.numpy.save_file(shard, str(dst / fname), metadata={"format": "pt"})
        for k, v in shard.items():
            weight_map[k] = fname
            total += v.nbytes
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (dst / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    (dst / "config.json").write_text(json.dumps(multimodal_config_dict(model, "float32"), indent=2) + "\n")
    check_config_file(model, dst / "config.json")


def write_hf_bf16(model, dst: Path, prefix: str):
    dst.mkdir(parents=True, exist_ok=True)
    sd = {prefix + k[len("model."):]: v.detach().to(torch.bfloat16).contiguous()
          for k, v in model.state_dict().items() if k != "lm_head.weight"}
    safetensors.torch.save_file(sd, str(dst / "model.safetensors"), metadata={"format": "pt"})
    (dst / "config.json").write_text(json.dumps(multimodal_config_dict(model, "bfloat16"), indent=2) + "\n")
    check_config_file(model, dst / "config.json")


def reload_check(model, dst: Path, prefix: str, ref_logits: torch.Tensor, ids: list[int]):
    """Load what we wrote back into a fresh HF model (prefix stripped); logits must be identical."""
    tensors = {}
    for fname in sorted(os.listdir(dst)):
        if fname.endswith(".safetensors"):
            with safetensors.safe_open(dst / fname, "pt") as f:
                for k in f.keys():
                    assert k.startswith(prefix), k
                    tensors["model." + k[len(prefix):]] = f.get_tensor(k).float()
    fresh = Gemma3ForCausalLM(model.config).eval()
    missing, unexpected = fresh.load_state_dict(tensors, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    fresh.tie_weights()
    got = full_logits(fresh, ids)
    assert torch.equal(got, ref_logits), f"reload mismatch in {dst}"


# HF (after "model.") -> GGUF tensor names, spec §4.3.
LAYER_MAP = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight",
    "post_attention_layernorm.weight": "post_attention_norm.weight",
    "pre_feedforward_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
    "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
}


def gguf_name(hf_name: str) -> str:
    assert hf_name.startswith("model.")
    rest = hf_name[len("model."):]
    if rest == "embed_tokens.weight":
        return "token_embd.weight"
    if rest == "norm.weight":
        return "output_norm.weight"
    _, idx, tail = rest.split(".", 2)
    return f"blk.{int(idx)}.{LAYER_MAP[tail]}"


def tiny_vocab():
    """A small SentencePiece-style vocab: 4 specials, 256 byte tokens, then plain pieces."""
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>"]
    types = [gguf.TokenType.CONTROL, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL, gguf.TokenType.UNKNOWN]
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        types.append(gguf.TokenType.BYTE)
    i = 0
    while len(tokens) < VOCAB:
        tokens.append(f"\u2581tok{i}")
        types.append(gguf.TokenType.NORMAL)
        i += 1
    scores = [0.0] * 4 + [0.0] * 256 + [-float(k) for k in range(VOCAB - 260)]
    return tokens, scores, [int(t) for t in types]


def write_gguf(model, spec: dict, path: Path):
    cfg = model.config
    w = gguf.GGUFWriter(str(path), "gemma3")
    w.add_name("unicorn-tiny-" + path.parent.name)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_key_length(cfg.head_dim)
    w.add_value_length(cfg.head_dim)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_sliding_window(cfg.sliding_window)
    w.add_rope_freq_base(cfg.rope_parameters["full_attention"]["rope_theta"])
    w.add_rope_freq_base_swa(cfg.rope_parameters["sliding_attention"]["rope_theta"])
    if spec["rope_scaling"] is not None:
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(spec["rope_scaling"]["factor"])
    # Our documented key for the attention scale (llama.cpp derives it instead): qpas**-0.5.
    w.add_attention_scale(float(cfg.query_pre_attn_scalar) ** -0.5)
    ftype = gguf.LlamaFileType.ALL_F32 if spec["gguf_matrix_type"] == "F32" else gguf.LlamaFileType.MOSTLY_F16
    w.add_file_type(int(ftype))
    tokens, scores, types = tiny_vocab()
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(BOS)
    w.add_eos_token_id(EOS)
    w.add_unk_token_id(UNK)
    w.add_pad_token_id(PAD)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(False)

    sd = hf_state_numpy(model)
    # llama.cpp-like order: token_embd, output_norm, then blocks
    order = ["model.embed_tokens.weight", "model.norm.weight"] + sorted(
        (k for k in sd if k.startswith("model.layers.")),
        key=lambda k: (int(k.split(".")[2]), k))
    for k in order:
        arr = sd[k]
        if k.endswith("norm.weight"):
            arr = (arr + 1.0).astype(np.float32)  # spec §4.4: GGUF norms carry the +1
        elif spec["gguf_matrix_type"] == "F16":
            f16 = arr.astype(np.float16)
            assert np.array_equal(f16.astype(np.float32), arr), f"{k} not exact in f16"
            arr = f16
        else:
            arr = arr.astype(np.float32)
        # numpy shape [out, in] -> GGUF ne [in, out] (the writer reverses the dims), spec §4.1
        w.add_tensor(gguf_name(k), np.ascontiguousarray(arr))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def check_gguf(model, path: Path):
    """Independent read-back with GGUFReader: names, ne order, +1 on norms, values."""
    r = gguf.GGUFReader(str(path))
    sd = hf_state_numpy(model)
    by_name = {t.name: t for t in r.tensors}
    assert "output.weight" not in by_name
    assert len(by_name) == len(sd)
    for k, v in sd.items():
        t = by_name[gguf_name(k)]
        assert list(t.shape) == list(reversed(v.shape)), (k, t.shape, v.shape)
        data = np.asarray(t.data).astype(np.float32).reshape(v.shape)
        expect = v + 1.0 if k.endswith("norm.weight") else v
        assert np.array_equal(data, expect), k
    arch = r.fields["general.architecture"].contents()
    assert arch == "gemma3"


def spec_forward_from_gguf(path: Path, ids: list[int]) -> np.ndarray:
    """Float64 numpy forward written from the spec alone (§2), reading only the GGUF file.

    A second, transformers-free reference: if it matches the transformers logits, the GGUF keys,
    ne order, +1 norm convention, layer pattern, rope bases/scaling and attention scale are right.
    """
    r = gguf.GGUFReader(str(path))
    f = lambda k: r.fields[k].contents()  # noqa: E731
    T = {t.name: np.asarray(t.data).astype(np.float64).reshape([int(x) for x in reversed(t.shape)])
         for t in r.tensors}
    H, L = f("gemma3.embedding_length"), f("gemma3.block_count")
    nh, nkv = f("gemma3.attention.head_count"), f("gemma3.attention.head_count_kv")
    hd, W = f("gemma3.attention.key_length"), f("gemma3.attention.sliding_window")
    eps, scale = f("gemma3.attention.layer_norm_rms_epsilon"), f("gemma3.attention.scale")
    gbase, lbase = f("gemma3.rope.freq_base"), f("gemma3.rope.freq_base_swa")
    factor = f("gemma3.rope.scaling.factor") if "gemma3.rope.scaling.factor" in r.fields else 1.0
    n = len(ids)
    pos = np.arange(n)

    def rms(x, w):  # GGUF norm weights already hold 1+w (spec §4.4)
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w

    def rope(x, base, fct):  # NeoX / rotate-half pairing (spec §2.4.3)
        ang = pos[:, None] * (base ** (-np.arange(0, hd, 2) / hd) / fct)[None, :]
        c, s_ = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        a, b = x[..., :hd // 2], x[..., hd // 2:]
        return np.concatenate([a * c - b * s_, b * c + a * s_], -1)

    emb = T["token_embd.weight"]
    x = emb[ids] * math.sqrt(H)
    for i in range(L):
        g = lambda nm: T[f"blk.{i}.{nm}.weight"]  # noqa: E731
        is_global = (i + 1) % 6 == 0  # spec §1.2
        h = rms(x, g("attn_norm"))
        q = rms((h @ g("attn_q").T).reshape(n, nh, hd), g("attn_q_norm"))
        k = rms((h @ g("attn_k").T).reshape(n, nkv, hd), g("attn_k_norm"))
        v = (h @ g("attn_v").T).reshape(n, nkv, hd)
        base, fct = (gbase, factor) if is_global else (lbase, 1.0)
        q, k = rope(q, base, fct), rope(k, base, fct)
        mask = pos[None, :] <= pos[:, None]
        if not is_global:
            mask &= (pos[:, None] - pos[None, :]) < W
        out = np.zeros((n, nh, hd))
        for hh in range(nh):
            kv = hh // (nh // nkv)
            sc = np.where(mask, (q[:, hh] @ k[:, kv].T) * scale, -np.inf)
            a = np.exp(sc - sc.max(-1, keepdims=True))
            out[:, hh] = (a / a.sum(-1, keepdims=True)) @ v[:, kv]
        x = x + rms(out.reshape(n, nh * hd) @ g("attn_output").T, g("post_attention_norm"))
        h = rms(x, g("ffn_norm"))
        gate, up = h @ g("ffn_gate").T, h @ g("ffn_up").T
        act = 0.5 * gate * (1 + np.tanh(math.sqrt(2 / math.pi) * (gate + 0.044715 * gate ** 3)))
        x = x + rms((act * up) @ g("ffn_down").T, g("post_ffw_norm"))
    return rms(x, T["output_norm.weight"]) @ emb.T


def main():
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    only = set(sys.argv[1:])
    OUT.mkdir(parents=True, exist_ok=True)
    for name, spec in CONFIGS.items():
        if only and name not in only:
            continue
        d = OUT / name
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        model = make_model(name, spec)
        cfg = model.config
        rope_info = check_rope(model, spec)

        prompt, ids, step_logits, attempt, min_margin = pick_prompt_and_run(model, spec["seed"])
        seq = ids[:-1]  # every position that was fed
        ref = full_logits(model, seq)
        err = rel_err(step_logits, ref)
        assert err < 1e-5, f"{name}: cached decode vs full forward rel err {err}"
        # greedy consistency on the stored (full-forward) logits
        for t in range(PROMPT_LEN - 1, len(seq)):
            assert int(ref[t].argmax()) == ids[t + 1]
        assert len(seq) > cfg.sliding_window + 8

        (d / "logits.bin").write_bytes(ref.numpy().astype("<f4").tobytes())

        prefix_info = {}
        if spec["hf"] == "plain":
            write_hf_plain(model, d / "hf", spec["config_style"])
            reload_check(model, d / "hf", "model.", ref, seq)
            prefix_info["hf"] = {"prefix": "model.", "dtype": "F32", "files": ["model.safetensors"],
                                 "config_style": spec["config_style"]}
        else:
            write_hf_sharded(model, d / "hf", "language_model.model.")
            reload_check(model, d / "hf", "language_model.model.", ref, seq)
            prefix_info["hf"] = {"prefix": "language_model.model.", "dtype": "F32",
                                 "files": ["model-00001-of-00002.safetensors",
                                           "model-00002-of-00002.safetensors",
                                           "model.safetensors.index.json"],
                                 "config_style": "legacy multimodal (text_config nested)"}
        if spec["bf16_copy"]:
            write_hf_bf16(model, d / "hf_bf16", "model.language_model.")
            reload_check(model, d / "hf_bf16", "model.language_model.", ref, seq)
            prefix_info["hf_bf16"] = {"prefix": "model.language_model.", "dtype": "BF16",
                                      "files": ["model.safetensors"],
                                      "config_style": "legacy multimodal (text_config nested)"}

        write_gguf(model, spec, d / "model.gguf")
        check_gguf(model, d / "model.gguf")
        np_logits = spec_forward_from_gguf(d / "model.gguf", seq)
        np_err = float(np.abs(np_logits - ref.numpy()).max() / np.abs(ref.numpy()).max())
        assert np_err < 1e-5 and (np_logits.argmax(-1) == ref.numpy().argmax(-1)).all(), np_err

        emb = model.model.embed_tokens
        reference = {
            "generator": "tools/gen_tiny_checkpoints.py",
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "gguf": getattr(gguf, "__version__", "0.19")},
            "config": {
                "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size,
                "num_hidden_layers": cfg.num_hidden_layers,
                "num_attention_heads": cfg.num_attention_heads,
                "num_key_value_heads": cfg.num_key_value_heads,
                "gqa_ratio": cfg.num_attention_heads // cfg.num_key_value_heads,
                "head_dim": cfg.head_dim, "intermediate_size": cfg.intermediate_size,
                "sliding_window": cfg.sliding_window, "layer_types": list(cfg.layer_types),
                "query_pre_attn_scalar": cfg.query_pre_attn_scalar,
                "attention_scale": float(cfg.query_pre_attn_scalar) ** -0.5,
                "rms_norm_eps": cfg.rms_norm_eps, "rope": rope_info,
                "max_position_embeddings": cfg.max_position_embeddings,
            },
            "embedding_scale": {
                "hf_embed_scale_buffer": float(emb.embed_scale),
                "hf_applied_in_weight_dtype": float(emb.embed_scale.to(emb.weight.dtype)),
                "sqrt_hidden_bf16": float(torch.tensor(math.sqrt(cfg.hidden_size)).to(torch.bfloat16)),
                "note": "sqrt(hidden) is exact in bf16 for these hidden sizes, so all conventions agree",
            },
            "storage": prefix_info | {
                "gguf": {"file": "model.gguf", "matrix_type": spec["gguf_matrix_type"],
                         "norm_type": "F32", "norms_include_plus_one": True,
                         "extra_keys": ["gemma3.attention.scale", "gemma3.rope.freq_base_swa"]},
            },
            "weights_note": "all weights are bf16-representable; F32/BF16/F16 copies are identical",
            "prompt_ids": prompt,
            "generated_ids": ids[PROMPT_LEN:],
            "sequence_ids": seq,
            "logits": {
                "file": "logits.bin", "dtype": "float32 little-endian", "shape": [len(seq), VOCAB],
                "layout": "row-major; row t = logits at position t after causally processing sequence_ids[0..t]",
                "prefill_rows": [0, PROMPT_LEN],
                "decode_rows": [PROMPT_LEN, len(seq)],
            },
            "greedy_rule": "generated_ids[k] = argmax(logits row PROMPT_LEN-1+k); "
                           "sequence_ids = prompt_ids + generated_ids[:-1]",
            "prompt_len": PROMPT_LEN,
            "num_generated": GEN_STEPS,
            "min_greedy_margin": min_margin,
            "prompt_attempt": attempt,
            "cached_vs_full_max_rel_err": err,
            "numpy_spec_forward_from_gguf_max_err_over_max_abs_logit": np_err,
        }
        (d / "reference.json").write_text(json.dumps(reference, indent=1) + "\n")
        sizes = {str(p.relative_to(d)): p.stat().st_size for p in sorted(d.rglob("*")) if p.is_file()}
        print(f"{name}: attempt {attempt}, min margin {min_margin:.4f}, rel err {err:.2e}, "
              f"numpy-from-gguf err {np_err:.2e}, "
              f"generated {ids[PROMPT_LEN:PROMPT_LEN + 10]}..., sizes {sizes}")


if __name__ == "__main__":
    main()
