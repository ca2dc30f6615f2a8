// Included first by the reference codec sources: matching GGML/gguf-py bit for bit needs every
// float product and sum rounded on its own, so the compiler must not fuse x*id + 0.5f into an
// FMA (which it may do on FMA-capable targets; the SIMD kernels are separate files).
#pragma once

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
