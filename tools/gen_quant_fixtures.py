#!/usr/bin/env python3
"""Generate the quant codec fixtures in tests/fixtures/quant/ from the `gguf` Python package.

For every decoder: random blocks of raw bytes (f16 scale fields replaced by finite, moderate
halves so that expected outputs are finite) and the float32 output of gguf.quants.dequantize.
For every quantizer gguf implements: random float32 rows and the bytes of gguf.quants.quantize.
tests/test_quant_codecs.cpp checks the C++ codecs against these bit for bit.

File format (little-endian), one file per type and direction, named <type>_<direction>.bin:
    char[4] magic "UQF1"
    u32     GGML type id
    u32     direction: 0 = dequantize (payload: n_bytes block bytes, then n_values f32 expected)
                       1 = quantize   (payload: n_values f32 input, then n_bytes expected bytes)
    u32     n_values
    u32     n_bytes

Deterministic (fixed seed). Re-run from the repository root:  python3 tools/gen_quant_fixtures.py
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize, quantize

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "quant"
SEED = 20250301
MAGIC = b"UQF1"
DEQUANTIZE, QUANTIZE = 0, 1

# Byte offsets of the f16 scale fields per block (src/quant/blocks.h, gemma3-spec.md §4.5).
HALF_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}
DEQUANT_TYPES = [T.F32, T.F16, T.BF16, *HALF_FIELDS]
# Added later; drawn from their own generator so that the fixtures above stay byte-identical.
LATER_HALF_FIELDS = {T.IQ4_XS: [0]}
HALF_FIELDS.update(LATER_HALF_FIELDS)
QUANT_TYPES = [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0]


def write_fixture(qtype: T, direction: int, n_values: int, payload: list[bytes]) -> None:
    n_bytes = len(payload[0]) if direction == DEQUANTIZE else len(payload[1])
    header = MAGIC + struct.pack("<IIII", int(qtype), direction, n_values, n_bytes)
    name = f"{qtype.name.lower()}_{'dequant' if direction == DEQUANTIZE else 'quant'}.bin"
    (OUT / name).write_bytes(header + b"".join(payload))


def random_scales(rng: np.random.Generator, n: int) -> np.ndarray:
    """Finite f16 scales spanning several decades, both signs, plus zero and a subnormal."""
    mags = 10.0 ** rng.uniform(-4, 0.5, size=n)
    d = (rng.choice([-1.0, 1.0], size=n) * mags).astype(np.float16)
    if n >= 4:
        d[1] = np.float16(0.0)
        d[2] = np.float16(3.0e-6)  # subnormal half
    return d


def dequant_fixture(rng: np.random.Generator, qtype: T) -> None:
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    if qtype in (T.F32, T.F16, T.BF16):
        n_values = 512
        raw = rng.integers(0, 256, size=n_values * type_size, dtype=np.uint8)  # every bit pattern goes
    else:
        n_blocks = 16 if block_size == 32 else 6
        n_values = n_blocks * block_size
        blocks = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
        for off in HALF_FIELDS[qtype]:
            blocks[:, off:off + 2] = random_scales(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
        raw = blocks.reshape(-1)
    expected = np.asarray(dequantize(raw.copy(), qtype), dtype=np.float32).reshape(-1)
    assert expected.size == n_values, (qtype.name, expected.size)
    if qtype not in (T.F32, T.F16, T.BF16):
        assert np.all(np.isfinite(expected)), qtype.name
    write_fixture(qtype, DEQUANTIZE, n_values, [raw.tobytes(), expected.astype("<f4").tobytes()])


def quant_input(rng: np.random.Generator, qtype: T) -> np.ndarray:
    """Rows of 32-value blocks: gaussians at many scales plus edge-case blocks."""
    blocks = []
    for scale in 10.0 ** rng.uniform(-6, 3, size=10):  # 1e-6 gives subnormal half scales
        blocks.append(rng.standard_normal(32) * scale)
    blocks.append(np.zeros(32))                           # d = 0 path
    blocks.append(np.full(32, 0.7))                       # constant: max == min for Q4_1/Q5_1
    spike = np.zeros(32); spike[rng.integers(32)] = -3.25
    blocks.append(spike)                                  # one nonzero value
    halves = rng.integers(-8, 8, size=32) + 0.5; halves[5] = -8.0
    blocks.append(halves)                                 # ties for the 4/5-bit levels
    ints = rng.integers(-126, 127, size=32) + 0.5; ints[0] = 127.0
    blocks.append(ints)                                   # d = 1, ties for Q8_0 rounding
    blocks.append(rng.uniform(-1, 1, size=32) + 5.0)      # all positive, offset
    x = np.concatenate(blocks).astype(np.float32)
    if qtype == T.F16:
        edge = [65504.0, 65519.0, 65520.0, -70000.0, 6.0e-8, 2.98e-8, 3.0e-8, 1e-9,
                1.0 + 1.0 / 2048, 1.0 + 3.0 / 2048, -0.0, 1.0e-5, 0.33333334]
        x[: len(edge)] = np.array(edge, dtype=np.float32)
    if qtype == T.BF16:
        edge = [np.inf, -np.inf, np.nan, 1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8, 3.4e38, -1e-40, -0.0]
        x[: len(edge)] = np.array(edge, dtype=np.float32)
    return x


def quant_fixture(rng: np.random.Generator, qtype: T) -> None:
    x = quant_input(rng, qtype)
    with np.errstate(over="ignore"):  # F16 edge values overflow to inf on purpose
        out = np.asarray(quantize(x.reshape(1, -1), qtype)).reshape(-1).view(np.uint8)
    write_fixture(qtype, QUANTIZE, x.size, [x.astype("<f4").tobytes(), out.tobytes()])


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    for qtype in DEQUANT_TYPES:
        dequant_fixture(rng, qtype)
    for qtype in QUANT_TYPES:
        quant_fixture(rng, qtype)
    for qtype in LATER_HALF_FIELDS:
        dequant_fixture(np.random.default_rng(SEED + int(qtype)), qtype)
    total = sum(p.stat().st_size for p in OUT.glob("*.bin"))
    count = len(DEQUANT_TYPES) + len(QUANT_TYPES) + len(LATER_HALF_FIELDS)
    print(f"wrote {count} fixtures, {total} bytes, to {OUT}")


if __name__ == "__main__":
    main()
