#include "backends/cuda/weight_upload.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <exception>
#include <vector>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/kernels.h"
#include "core/bytes.h"
#include "core/error.h"
#include "quant/blocks.h"

namespace unicorn::cuda {
namespace {

size_t align_up(size_t n) { return (n + kWeightAlign - 1) / kWeightAlign * kWeightAlign; }

// Where each part of a weight goes in its device layout (device_weight.h).
struct Layout {
  size_t bytes = 0;   // total
  size_t qh_off = 0;  // second plane: Q5_0's and Q5_K's high bits, Q6_K's highs, Q4_K's headers
  size_t sc_off = 0;  // third plane: Q6_K's int8 scales, Q5_K's headers
  size_t d_off = 0;   // f16 scale plane of the split formats
  int64_t q_row_bytes = 0;
  size_t quant_bytes = 0;  // bytes of quants per block of a split format (0: not split)
  size_t aux_bytes = 0;    // bytes per block in the second plane (0: none)
  size_t sc_bytes = 0;     // bytes per block in the third plane (0: none)
  size_t d_bytes = 0;      // bytes per block in the f16 scale plane (0: none)
};

Layout layout_of(const WeightTensor& w) {
  if (!weight_type_supported(w.type))
    fail("{}: the CUDA backend has no kernels for {} weights", w.name, type_name(w.type));
  const int block = traits(w.type).block_size;
  if (w.cols % 8 != 0 || w.cols % block != 0)
    fail("{}: {} columns; the CUDA backend needs a multiple of 8 (and of the {}-value block)", w.name, w.cols, block);
  const int64_t nb = w.cols / block;
  const size_t n_blocks = static_cast<size_t>(w.rows * nb);
  Layout l;
  // Blocks split into a quant plane, an optional second and third plane and an f16 scale plane
  // (none for Q4_K and Q5_K, whose scales are in their headers).
  auto split = [&](size_t quant_bytes, size_t aux_bytes, size_t d_bytes = 2, size_t sc_bytes = 0) {
    l.quant_bytes = quant_bytes;
    l.aux_bytes = aux_bytes;
    l.sc_bytes = sc_bytes;
    l.d_bytes = d_bytes;
    l.q_row_bytes = nb * static_cast<int64_t>(quant_bytes);
    l.qh_off = align_up(n_blocks * quant_bytes);
    l.sc_off = l.qh_off + align_up(n_blocks * aux_bytes);
    l.d_off = l.sc_off + align_up(n_blocks * sc_bytes);
    l.bytes = l.d_off + n_blocks * d_bytes;
  };
  switch (w.type) {
    case GgmlType::Q8_0:
      split(32, 0);
      break;
    case GgmlType::Q4_0:
    case GgmlType::Q5_0:
      split(16, w.type == GgmlType::Q5_0 ? 4 : 0);
      break;
    case GgmlType::Q4_1:  // nibbles, the f16 pair (d, m)
      split(16, 0, 4);
      break;
    case GgmlType::Q5_1:  // nibbles, the fifth-bit word, the f16 pair (d, m)
      split(16, 4, 4);
      break;
    case GgmlType::Q6_K:  // low nibbles, 2-bit highs, the 16 scale bytes, d: the file's 210 bytes
      split(kQ6KLowBytes, kQ6KHighBytes, 2, kQ6KScaleBytes);
      break;
    case GgmlType::Q4_K:  // the sub-blocks' nibbles, then the 16-byte headers: the file's 144 bytes
      split(kQ4KQuantBytes, kQ4KHeaderBytes, 0);
      break;
    case GgmlType::Q5_K:  // Q4_K's nibbles, the bit-4 words, Q4_K's headers: the file's 176 bytes
      split(kQ4KQuantBytes, kQ5KHighBytes, 0, kQ4KHeaderBytes);
      break;
    default:  // float rows: the file's size
      l.q_row_bytes = static_cast<int64_t>(w.row_stride());
      l.bytes = w.nbytes();
      break;
  }
  return l;
}

// The staging below runs on every weight byte of a model at load, so it works on whole words
// (core/bytes.h loads; bench_upload: one thread staged Q5_K at ~0.35 GB/s bit by bit).

// The fifth-bit word's order (weight_formats.cuh unpack_fifth_bits): bit j of a 32-bit mask (value
// j's bit 4, j = 16 h + 4 i + k) goes to bit 8 k + 4 h + i, through one table per mask byte.
struct FifthBitOrder {
  uint32_t byte[4][256] = {};
  constexpr FifthBitOrder() {
    for (int b = 0; b < 4; ++b)
      for (int v = 0; v < 256; ++v)
        for (int t = 0; t < 8; ++t)
          if ((v >> t) & 1) {
            const int j = 8 * b + t, h = j / 16, i = (j % 16) / 4, k = j % 4;
            byte[b][v] |= uint32_t{1} << (8 * k + 4 * h + i);
          }
  }
};
constexpr FifthBitOrder kFifthBitOrder;
uint32_t fifth_bit_word(uint32_t mask) {
  const auto& t = kFifthBitOrder.byte;
  return t[0][mask & 0xFF] | t[1][(mask >> 8) & 0xFF] | t[2][(mask >> 16) & 0xFF] | t[3][mask >> 24];
}

// The 8 x 8 bit matrix x (byte r, bit c) transposed: byte c, bit r.
uint64_t transpose8x8(uint64_t x) {
  uint64_t t = (x ^ (x >> 7)) & 0x00AA00AA00AA00AAULL;
  x ^= t ^ (t << 7);
  t = (x ^ (x >> 14)) & 0x0000CCCC0000CCCCULL;
  x ^= t ^ (t << 14);
  t = (x ^ (x >> 28)) & 0x00000000F0F0F0F0ULL;
  x ^= t ^ (t << 28);
  return x;
}

// 32 values' 4-bit fields, value j = (src[j] >> shift) & 0xF (shift 0 or 4), as a Q4_0 block's 16
// bytes: value j in the low nibble of byte j, value j + 16 in its high nibble (the sub-block quant
// planes of Q4_K, Q5_K and Q6_K).
void pack_nibbles(const uint8_t* src, int shift, uint8_t* out) {
  constexpr uint64_t kLow = 0x0F0F0F0F0F0F0F0FULL;
  for (int j = 0; j < 16; j += 8) {
    const uint64_t v = ((load_u64(src + j) >> shift) & kLow) | (((load_u64(src + 16 + j) >> shift) & kLow) << 4);
    std::memcpy(out + j, &v, 8);
  }
}

// Blocks [b0, b1) of a split 32-value format into its planes: quants at q, the Q5_0 / Q5_1 fifth-bit
// words at qh (fifth_bit_word), the scales at d (Q4_1, Q5_1: d then m), each plane's pointer at block b0.
template <class Block>
void split_blocks(const WeightTensor& w, size_t b0, size_t b1, uint8_t* q, uint8_t* qh, uint8_t* d) {
  constexpr size_t quant_bytes = sizeof(Block::qs);  // a constant: the copies inline
  for (size_t i = b0; i < b1; ++i) {
    Block b;
    std::memcpy(&b, w.data + i * sizeof(Block), sizeof(Block));
    std::memcpy(q + (i - b0) * quant_bytes, b.qs, quant_bytes);
    if constexpr (requires { b.qh; }) {
      const uint32_t word = fifth_bit_word(load_u32(b.qh));
      std::memcpy(qh + (i - b0) * 4, &word, 4);
    }
    if constexpr (requires { b.m; }) {
      std::memcpy(d + (i - b0) * 4, &b.d, 2);
      std::memcpy(d + (i - b0) * 4 + 2, &b.m, 2);
    } else {
      std::memcpy(d + (i - b0) * 2, &b.d, 2);
    }
  }
}

// Q6_K blocks [b0, b1) into their planes (device_weight.h): each sub-block's low nibbles in Q4_0's
// order at q, its 2-bit highs (8 bytes, arranged for 4-byte words) at hi, the 16 scale bytes at sc,
// d at d (each plane's pointer at block b0). File layout (spec §4.5): in 128-value half h, 32-value
// group s takes its low 4 bits from ql[64h + 32 (s % 2) + l] (low nibble for s < 2) and its high 2
// bits from qh[32h + l] at bits 2s.
void split_q6k_blocks(const WeightTensor& w, size_t b0, size_t b1, uint8_t* q, uint8_t* hi, uint8_t* sc, uint8_t* d) {
  for (size_t i = b0; i < b1; ++i) {
    const uint8_t* b = w.data + i * sizeof(BlockQ6_K);
    const uint8_t* ql = b + offsetof(BlockQ6_K, ql);
    const uint8_t* qh = b + offsetof(BlockQ6_K, qh);
    uint8_t* oh = hi + (i - b0) * kQ6KHighBytes;
    for (int sub = 0; sub < 8; ++sub) {  // group s = sub % 4 of half h = sub / 4
      const int h = sub / 4, s = sub % 4;
      pack_nibbles(ql + 64 * h + 32 * (s % 2), 4 * (s / 2), q + (i - b0) * kQ6KLowBytes + 16 * sub);
      // f[i]: byte k the highs of value 4 i + k (i < 4) or 16 + 4 (i - 4) + k; H0 takes values
      // 4 i + k and 16 + 4 i + k of i = 0, 1 at bits 2 i and 4 + 2 i of byte k, H1 those of i = 2, 3.
      uint32_t f[8];
      for (int w4 = 0; w4 < 8; ++w4) f[w4] = (load_u32(qh + 32 * h + 4 * w4) >> (2 * s)) & 0x03030303u;
      const uint32_t words[2] = {f[0] | f[1] << 2 | f[4] << 4 | f[5] << 6, f[2] | f[3] << 2 | f[6] << 4 | f[7] << 6};
      std::memcpy(oh + 8 * sub, words, 8);
    }
    std::memcpy(sc + (i - b0) * kQ6KScaleBytes, b + offsetof(BlockQ6_K, scales), kQ6KScaleBytes);
    std::memcpy(d + (i - b0) * 2, b + offsetof(BlockQ6_K, d), 2);
  }
}

// Q4_K or Q5_K blocks [b0, b1) into their planes (device_weight.h): each sub-block's 32 low nibbles
// as a Q4_0 block's 16 bytes at q, the 16-byte header (d, dmin, then the 12-bit scale | min << 6
// fields, sub-block s's at bit 12 s of the last 12 bytes) at hdr, and for Q5_K one word of bit-4s
// per sub-block at hi (bit 8 k + 4 h + i: value 16 h + 4 i + k), each plane's pointer at block b0.
// File layout (spec §4.5): sub-block s's low 4 bits in the low (s even) or high nibbles of
// qs[32 (s / 2) ..], Q5_K's bit 4 of its value l in bit s of qh[l].
template <class Block>
void split_k_blocks(const WeightTensor& w, size_t b0, size_t b1, uint8_t* q, uint8_t* hdr, uint8_t* hi) {
  static_assert(offsetof(Block, dmin) == offsetof(Block, d) + 2 && sizeof(Block::qs) == kQ4KQuantBytes);
  constexpr bool kHigh = requires(Block blk) { blk.qh; };
  for (size_t i = b0; i < b1; ++i) {
    const uint8_t* b = w.data + i * sizeof(Block);
    const uint8_t* sc = b + offsetof(Block, scales);
    const uint8_t* qs = b + offsetof(Block, qs);
    uint8_t* h = hdr + (i - b0) * kQ4KHeaderBytes;
    std::memcpy(h, b + offsetof(Block, d), 4);
    for (int c = 0; c < 4; ++c) {  // sub-blocks 2c and 2c + 1: the 24 bits at byte 4 + 3c
      const ScaleMin a = k4_scale_min(sc, 2 * c), m = k4_scale_min(sc, 2 * c + 1);
      const uint32_t f = uint32_t{a.scale} | uint32_t{a.min} << 6 | uint32_t{m.scale} << 12 | uint32_t{m.min} << 18;
      for (int j = 0; j < 3; ++j) h[4 + 3 * c + j] = static_cast<uint8_t>(f >> (8 * j));
    }
    for (int s = 0; s < 8; ++s) pack_nibbles(qs + 32 * (s / 2), 4 * (s % 2), q + (i - b0) * kQ4KQuantBytes + 16 * s);
    if constexpr (kHigh) {
      // mask[s]: bit l the bit s of qh[l] (value l's bit 4 in sub-block s), eight bytes of qh at a
      // time through a bit-matrix transpose.
      const uint8_t* qh = b + offsetof(Block, qh);
      uint32_t mask[8] = {};
      for (int t = 0; t < 4; ++t) {
        const uint64_t y = transpose8x8(load_u64(qh + 8 * t));  // byte s, bit u: bit s of qh[8 t + u]
        for (int sub = 0; sub < 8; ++sub) mask[sub] |= static_cast<uint32_t>((y >> (8 * sub)) & 0xFF) << (8 * t);
      }
      for (int sub = 0; sub < 8; ++sub) {
        const uint32_t word = fifth_bit_word(mask[sub]);
        std::memcpy(hi + (i - b0) * kQ5KHighBytes + 4 * sub, &word, 4);
      }
    }
  }
}

DeviceWeight view_of(const WeightTensor& w, const Layout& l, void* dst) {
  DeviceWeight v;
  v.type = w.type;
  v.rows = w.rows;
  v.cols = w.cols;
  v.blocks_per_row = w.cols / traits(w.type).block_size;
  v.q_row_bytes = l.q_row_bytes;
  auto* base = static_cast<uint8_t*>(dst);
  v.q = base;
  if (l.aux_bytes > 0) v.qh = reinterpret_cast<const uint32_t*>(base + l.qh_off);
  if (l.sc_bytes > 0) v.sc = base + l.sc_off;
  if (l.d_bytes > 0) v.d = reinterpret_cast<const uint16_t*>(base + l.d_off);
  return v;
}

}  // namespace

size_t device_bytes(const WeightTensor& w) { return align_up(layout_of(w).bytes); }

size_t staged_bytes(const WeightTensor& w, int64_t rows) {
  const Layout l = layout_of(w);
  const size_t nb = static_cast<size_t>(w.cols / traits(w.type).block_size), n = static_cast<size_t>(rows);
  if (l.quant_bytes > 0) return n * nb * (l.quant_bytes + l.aux_bytes + l.sc_bytes + l.d_bytes);
  return n * static_cast<size_t>(l.q_row_bytes);
}

std::vector<StagedRegion> stage_rows(const WeightTensor& w, int64_t r0, int64_t r1, uint8_t* staging) {
  const Layout l = layout_of(w);
  const size_t nb = static_cast<size_t>(w.cols / traits(w.type).block_size);
  const size_t b0 = static_cast<size_t>(r0) * nb, b1 = static_cast<size_t>(r1) * nb, n = b1 - b0;
  std::vector<StagedRegion> regions;
  if (n == 0) return regions;
  if (l.quant_bytes > 0) {  // planes: the rows' quants, second plane and scales, each contiguous
    uint8_t* q = staging;
    uint8_t* qh = q + n * l.quant_bytes;
    uint8_t* sc = qh + n * l.aux_bytes;
    uint8_t* d = sc + n * l.sc_bytes;
    switch (w.type) {
      case GgmlType::Q8_0:
        split_blocks<BlockQ8_0>(w, b0, b1, q, qh, d);
        break;
      case GgmlType::Q4_0:
        split_blocks<BlockQ4_0>(w, b0, b1, q, qh, d);
        break;
      case GgmlType::Q6_K:
        split_q6k_blocks(w, b0, b1, q, qh, sc, d);
        break;
      case GgmlType::Q4_K:
        split_k_blocks<BlockQ4_K>(w, b0, b1, q, qh, nullptr);
        break;
      case GgmlType::Q5_K:
        split_k_blocks<BlockQ5_K>(w, b0, b1, q, sc, qh);
        break;
      case GgmlType::Q4_1:
        split_blocks<BlockQ4_1>(w, b0, b1, q, qh, d);
        break;
      case GgmlType::Q5_1:
        split_blocks<BlockQ5_1>(w, b0, b1, q, qh, d);
        break;
      default:
        split_blocks<BlockQ5_0>(w, b0, b1, q, qh, d);
        break;
    }
    regions.push_back({b0 * l.quant_bytes, 0, n * l.quant_bytes});
    if (l.aux_bytes > 0)
      regions.push_back({l.qh_off + b0 * l.aux_bytes, static_cast<size_t>(qh - staging), n * l.aux_bytes});
    if (l.sc_bytes > 0)
      regions.push_back({l.sc_off + b0 * l.sc_bytes, static_cast<size_t>(sc - staging), n * l.sc_bytes});
    if (l.d_bytes > 0) regions.push_back({l.d_off + b0 * l.d_bytes, static_cast<size_t>(d - staging), n * l.d_bytes});
    return regions;
  }
  const size_t row_bytes = static_cast<size_t>(l.q_row_bytes), bytes = static_cast<size_t>(r1 - r0) * row_bytes;
  std::memcpy(staging, w.data + static_cast<size_t>(r0) * row_bytes, bytes);  // float rows as in the file
  regions.push_back({static_cast<size_t>(r0) * row_bytes, 0, bytes});
  return regions;
}

std::vector<StagedRegion> stage_rows_parallel(const WeightTensor& w, int64_t r0, int64_t r1, uint8_t* staging,
                                              ThreadPool& pool) {
  // Part p takes a contiguous share of the rows, staged at its rows' offset.
  const int parts = pool.size();
  const size_t row_bytes = staged_bytes(w, 1);  // staged_bytes is linear in the rows
  std::vector<std::vector<StagedRegion>> part_regions(static_cast<size_t>(parts));
  const int64_t per_part = (r1 - r0 + parts - 1) / parts;
  std::vector<std::exception_ptr> errors(static_cast<size_t>(parts));  // a throw must not leave a worker
  pool.parallel_for(parts, [&](int64_t p0, int64_t p1, int) {
    for (int64_t p = p0; p < p1; ++p) {
      try {
        const int64_t a = std::min(r1, r0 + p * per_part), b = std::min(r1, a + per_part);
        const size_t off = static_cast<size_t>(a - r0) * row_bytes;
        auto& regions = part_regions[static_cast<size_t>(p)];
        regions = stage_rows(w, a, b, staging + off);
        for (StagedRegion& reg : regions) reg.src += off;
      } catch (...) {
        errors[static_cast<size_t>(p)] = std::current_exception();
      }
    }
  });
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
  std::vector<StagedRegion> all;
  for (const auto& regions : part_regions) all.insert(all.end(), regions.begin(), regions.end());
  return all;
}

WeightUploader::WeightUploader(cudaStream_t stream, size_t total, bool pinned)
    : stream_(stream), pool_(total >= kStagingBytes ? 0 : 1) {
  const size_t bytes = std::clamp(total, size_t{1} << 16, kStagingBytes);
  try {
    for (Staging& s : staging_) {
      check(cudaEventCreateWithFlags(&s.copied, cudaEventDisableTiming), "creating an upload event");
      void* p = nullptr;
      if (pinned && cudaHostAlloc(&p, bytes, cudaHostAllocDefault) == cudaSuccess) {
        s.data = static_cast<uint8_t*>(p);
        s.pinned = true;
      } else {
        (void)cudaGetLastError();  // no pinned memory (e.g. a memlock limit): pageable staging, slower
        s.pageable.resize(bytes);
        s.data = s.pageable.data();
      }
      s.bytes = bytes;
    }
  } catch (...) {
    release();  // a half-built uploader gets no destructor call
    throw;
  }
}

WeightUploader::~WeightUploader() {
  (void)cudaStreamSynchronize(stream_);  // the copies read the staging buffers
  release();
}

void WeightUploader::release() {
  for (Staging& s : staging_) {
    if (s.pinned) (void)cudaFreeHost(s.data);
    s.pinned = false;
    if (s.copied) (void)cudaEventDestroy(s.copied);
    s.copied = nullptr;
  }
}

DeviceWeight WeightUploader::upload(const WeightTensor& w, void* dst) {
  const Layout l = layout_of(w);
  const size_t row_bytes = staged_bytes(w, 1);
  if (row_bytes == 0) return view_of(w, l, dst);  // no columns: nothing to copy
  auto* base = static_cast<uint8_t*>(dst);
  for (int64_t r0 = 0; r0 < w.rows;) {
    Staging& s = staging_[next_];
    next_ = (next_ + 1) % kBuffers;
    check(cudaEventSynchronize(s.copied), "waiting for an upload");  // this buffer's last copies are done
    if (row_bytes > s.bytes) {  // a row longer than the buffer: a pageable one of its size
      const bool was_pinned = s.pinned;
      s.pinned = false;  // before a throw below: the destructor must not free it again
      if (was_pinned) check(cudaFreeHost(s.data), "freeing an upload buffer");
      s.pageable.assign(row_bytes, 0);
      s.data = s.pageable.data();
      s.bytes = row_bytes;
    }
    const int64_t r1 = std::min<int64_t>(w.rows, r0 + static_cast<int64_t>(s.bytes / row_bytes));
    for (const StagedRegion& reg : stage_rows_parallel(w, r0, r1, s.data, pool_))
      check(cudaMemcpyAsync(base + reg.dst, s.data + reg.src, reg.bytes, cudaMemcpyHostToDevice, stream_),
            "uploading a weight");
    check(cudaEventRecord(s.copied, stream_), "recording an upload");
    r0 = r1;
  }
  return view_of(w, l, dst);
}

void WeightUploader::finish() { check(cudaStreamSynchronize(stream_), "finishing the weight uploads"); }

UploadedWeight upload_weight(const WeightTensor& w) {
  UploadedWeight u;
  u.memory.reserve(device_bytes(w));
  WeightUploader up(nullptr, device_bytes(w));  // the default stream
  u.view = up.upload(w, u.memory.get());
  up.finish();
  return u;
}

}  // namespace unicorn::cuda
