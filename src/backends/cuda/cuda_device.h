// Entry points to the CUDA backend that need no CUDA headers: the engine and the tests use these
// to ask for a device. Declared only in builds with the backend (UNICORN_HAVE_CUDA).
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "backends/backend.h"

namespace unicorn {

// Number of usable CUDA devices; 0 when there is no driver or no device (never throws).
int cuda_device_count();
// Why no CUDA device is usable, for messages: the runtime's error (e.g. a driver too old for
// this build's runtime, with both versions) and CUDA_VISIBLE_DEVICES when it is set; empty when
// the runtime reports no error.
std::string cuda_unavailable_reason();
// Whether a CUDA driver is installed (cudaDriverGetVersion reports one), usable or not.
bool cuda_driver_installed();

// A backend on CUDA device `index`. Throws Error naming the device when it cannot be used.
std::unique_ptr<Backend> make_cuda_backend(int index);
// "NAME: memory, compute capability, SMs" for unicorn check.
std::string cuda_device_description(int index);

// Device time in milliseconds of the ops that `work` queues on a CUDA backend (events on its
// stream around them; waits for them). For benchmarks: excludes host launch overhead.
double cuda_time_ms(Backend& cuda_backend, const std::function<void()>& work);

// Free memory of a CUDA backend's device (cudaMemGetInfo), in bytes.
size_t cuda_free_memory(Backend& cuda_backend);
// Memory in use on that device (total - free: this process's allocations and CUDA context, and
// any other process's), in bytes.
size_t cuda_used_memory(Backend& cuda_backend);
// Memory in use on that device when the backend was made (its CUDA context and stream, before any
// engine allocation), in bytes: what cuda_used_memory counts beyond the engine's own buffers.
size_t cuda_start_used_memory(Backend& cuda_backend);

// Tests and measurements: decode attention's key splits, at least min_keys cache positions each,
// aiming at blocks_per_sm blocks per SM (defaults 64 and 0; UNICORN_CUDA_ATTN_MIN_KEYS and
// UNICORN_CUDA_ATTN_BLOCKS_PER_SM set them for every CUDA backend). blocks_per_sm 0: by head
// size, 4 for 256-wide heads and 8 for the others (CudaBackend::attention_impl).
void cuda_attention_splits(Backend& cuda_backend, int64_t min_keys, int64_t blocks_per_sm);

// Tests and measurements: whether the split decode attention of batches of one token per
// sequence merges its own splits (the default; UNICORN_CUDA_ATTN_SELF_MERGE=0 turns it off) or
// launches a merge kernel.
void cuda_attention_self_merge(Backend& cuda_backend, bool on);

// Tests and measurements: decode batches of one token per sequence with every position below n
// take the short-context attention (one kernel, no split merge); default 128
// (UNICORN_CUDA_SHORT_KEYS), 0 never.
void cuda_short_attention_keys(Backend& cuda_backend, int64_t n);

// Tests and measurements: warps of the short-context attention's block for 256-wide heads over an
// f16 cache: 8 (the default), 16 or 4 (UNICORN_CUDA_SHORT_WARPS). Process-wide.
void cuda_short_attention_warps(Backend& cuda_backend, int warps);

// Tests and measurements: warps of the split decode attention's block for 256-wide heads over an
// f16 cache: 8 (the default) or 4 (UNICORN_CUDA_SPLIT_WARPS). Process-wide.
void cuda_split_attention_warps(Backend& cuda_backend, int warps);
// Tests and measurements: that kernel on 8 warps with the split kernel's pipelined loop over the
// cached keys (on by default; UNICORN_CUDA_SHORT_PIPELINE=0 turns it off). Process-wide.
void cuda_short_attention_pipelined(Backend& cuda_backend, bool on);

// Tests and measurements: the fused f16 split attention scores the cached keys in a loop of their
// own that issues each warp's next loads before the current step's math (on by default;
// UNICORN_CUDA_ATTN_PIPELINE=0 turns it off). Process-wide: it applies to every CUDA backend.
void cuda_attention_pipelined(Backend& cuda_backend, bool on);

// Tests and measurements: the decode attention runs on tensor cores where it fits (f16 caches,
// fused QK-norm, at most 4 query heads per kv head). mode (UNICORN_CUDA_ATTN_MMA): 0 off, 1 on for
// head_dim 128 (the default), 2 the same without its register cap, 3 on for head_dim 128 and 256.
// Process-wide: it applies to every CUDA backend.
void cuda_attention_mma_decode(Backend& cuda_backend, int mode);

// Tests: make a CUDA backend take the tiled prompt attention for every batch of 32+ tokens.
void cuda_force_tiled_prompt_attention(Backend& cuda_backend, bool on);

// Tests: QK-norm + RoPE inside the decode attention kernel (on by default;
// UNICORN_FUSE_QK_ATTENTION=0 turns it off for every CUDA backend).
void cuda_fuse_qk_attention(Backend& cuda_backend, bool on);

// Tests: prompt attention on tensor cores for f16 caches (on by default;
// UNICORN_MMA_PROMPT_ATTENTION=0 puts the SIMT kernel back for every CUDA backend).
void cuda_tensor_core_prompt_attention(Backend& cuda_backend, bool on);

// How many recorded op runs (CUDA graphs) a CUDA backend holds.
size_t cuda_recordings(Backend& cuda_backend);

}  // namespace unicorn
