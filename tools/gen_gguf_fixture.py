#!/usr/bin/env python3
"""Writes tests/fixtures/gguf/python_writer.gguf with the independent `gguf` Python package
(llama.cpp's gguf-py; tested with 0.19), so that Unicorn's GGUF reader is checked against a
writer it does not share code with. The values below are repeated in tests/test_gguf.cpp;
change both together.

Usage: python3 tools/gen_gguf_fixture.py [output path]
"""
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGUFValueType as T

ROOT = Path(__file__).resolve().parent.parent
out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests/fixtures/gguf/python_writer.gguf"
out.parent.mkdir(parents=True, exist_ok=True)

w = gguf.GGUFWriter(str(out), arch="fixture")  # writes general.architecture = "fixture"
w.add_custom_alignment(64)                      # general.alignment = 64 (u32)
w.add_uint8("test.u8", 200)
w.add_int8("test.i8", -100)
w.add_uint16("test.u16", 60000)
w.add_int16("test.i16", -30000)
w.add_uint32("test.u32", 4000000000)
w.add_int32("test.i32", -2000000000)
w.add_float32("test.f32", 0.15625)
w.add_bool("test.bool_true", True)
w.add_bool("test.bool_false", False)
w.add_string("test.string", "héllo, gguf")
w.add_uint64("test.u64", 18000000000000000000)
w.add_int64("test.i64", -9000000000000000000)
w.add_float64("test.f64", 2.718281828459045)
w.add_key_value("test.arr_str", ["alpha", "", "gamma delta", "▁token"], T.ARRAY, sub_type=T.STRING)
w.add_key_value("test.arr_u8", [0, 1, 255], T.ARRAY, sub_type=T.UINT8)
w.add_key_value("test.arr_i16", [-32768, 0, 32767], T.ARRAY, sub_type=T.INT16)
w.add_key_value("test.arr_i32", [-1, 2, -3, 4], T.ARRAY, sub_type=T.INT32)
w.add_key_value("test.arr_u64", [0, 1 << 40], T.ARRAY, sub_type=T.UINT64)
w.add_key_value("test.arr_f32", [0.5, -1.25, 3.0], T.ARRAY, sub_type=T.FLOAT32)
w.add_key_value("test.arr_f64", [1e-300, -0.1], T.ARRAY, sub_type=T.FLOAT64)
w.add_key_value("test.arr_bool", [True, False, True], T.ARRAY, sub_type=T.BOOL)

# Tensors: values are simple closed forms so the C++ test can recompute them.
f32 = (np.arange(3 * 5, dtype=np.float32) * 0.5 - 3.0).reshape(3, 5)  # PyTorch [3, 5] -> ne [5, 3]
w.add_tensor("t.f32", f32)
f16 = (np.arange(2 * 8, dtype=np.float32) / 4.0 - 2.0).astype(np.float16).reshape(2, 8)
w.add_tensor("t.f16", f16)
q_src = np.sin(np.arange(2 * 64, dtype=np.float32) * 0.1).reshape(2, 64)
q8 = gguf.quants.quantize(q_src, gguf.GGMLQuantizationType.Q8_0)
w.add_tensor("t.q8_0", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
w.add_tensor("t.scalar_row", np.array([7.0], dtype=np.float32))

w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print(f"wrote {out} ({out.stat().st_size} bytes)")
