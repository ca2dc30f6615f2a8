#include "backends/cuda/weight_upload.h"

#include <cuda_runtime_api.h>

#include <cstring>
#include <vector>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/kernels.h"
#include "core/error.h"
#include "quant/blocks.h"

namespace unicorn::cuda {
namespace {

size_t align_up(size_t n) { return (n + kWeightAlign - 1) / kWeightAlign * kWeightAlign; }

// Where each part of a weight goes in its device layout (device_weight.h).
struct Layout {
  size_t bytes = 0;   // total
  size_t qh_off = 0;  // Q5_0 high-bit plane
  size_t d_off = 0;   // scale plane of the legacy 32-value formats
  int64_t q_row_bytes = 0;
  size_t quant_bytes = 0;  // bytes of quants per block of a split format (0: not split)
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
  // Legacy 32-value blocks: split into a quant plane, an optional high-bit plane and a scale plane.
  auto split = [&](size_t quant_bytes, bool has_qh) {
    l.quant_bytes = quant_bytes;
    l.q_row_bytes = nb * static_cast<int64_t>(quant_bytes);
    l.qh_off = align_up(n_blocks * quant_bytes);
    l.d_off = l.qh_off + (has_qh ? align_up(n_blocks * 4) : 0);
    l.bytes = l.d_off + n_blocks * 2;
  };
  switch (w.type) {
    case GgmlType::Q8_0:
      split(32, false);
      break;
    case GgmlType::Q4_0:
    case GgmlType::Q5_0:
      split(16, w.type == GgmlType::Q5_0);
      break;
    case GgmlType::Q6_K:  // blocks padded to 16-byte multiples
      l.q_row_bytes = nb * kQ6KPaddedBytes;
      l.bytes = n_blocks * kQ6KPaddedBytes;
      break;
    default:  // float rows; Q4_K, Q5_K blocks (scale bytes reordered in place): the file's size
      l.q_row_bytes = static_cast<int64_t>(w.row_stride());
      l.bytes = w.nbytes();
      break;
  }
  return l;
}

template <class Block>
void split_planes(const WeightTensor& w, const Layout& l, std::vector<uint8_t>& img) {
  const size_t n_blocks = static_cast<size_t>(w.rows * (w.cols / 32));
  for (size_t i = 0; i < n_blocks; ++i) {
    Block b;
    std::memcpy(&b, w.data + i * sizeof(Block), sizeof(Block));
    std::memcpy(img.data() + i * l.quant_bytes, b.qs, l.quant_bytes);
    if constexpr (requires { b.qh; }) std::memcpy(img.data() + l.qh_off + i * 4, b.qh, 4);
    std::memcpy(img.data() + l.d_off + i * 2, &b.d, 2);
  }
}

// Q4_K's and Q5_K's scale bytes in the device order (device_weight.h): pair c's four 6-bit values
// as the 24 bits at byte 3c, from the file's packing (quant/blocks.h k4_scale_min).
template <class Block>
void repack_k4_scales(const WeightTensor& w, std::vector<uint8_t>& img) {
  img.assign(w.data, w.data + w.nbytes());  // the file's blocks, then their scale bytes rewritten
  const size_t n_blocks = img.size() / sizeof(Block);
  for (size_t i = 0; i < n_blocks; ++i) {
    uint8_t* sc = img.data() + i * sizeof(Block) + offsetof(Block, scales);
    uint8_t packed[kKScaleBytes] = {};
    for (int c = 0; c < 4; ++c) {
      const ScaleMin a = k4_scale_min(sc, 2 * c), b = k4_scale_min(sc, 2 * c + 1);
      const uint32_t f = uint32_t{a.scale} | uint32_t{a.min} << 6 | uint32_t{b.scale} << 12 | uint32_t{b.min} << 18;
      for (int j = 0; j < 3; ++j) packed[3 * c + j] = static_cast<uint8_t>(f >> (8 * j));
    }
    std::memcpy(sc, packed, kKScaleBytes);
  }
}

}  // namespace

size_t device_bytes(const WeightTensor& w) { return align_up(layout_of(w).bytes); }

DeviceWeight upload_weight_to(const WeightTensor& w, void* dst) {
  const Layout l = layout_of(w);
  DeviceWeight v;
  v.type = w.type;
  v.rows = w.rows;
  v.cols = w.cols;
  v.blocks_per_row = w.cols / traits(w.type).block_size;
  v.q_row_bytes = l.q_row_bytes;
  // The formats whose layout differs from the file's are rebuilt in a host image first.
  std::vector<uint8_t> img;
  if (l.quant_bytes > 0 || w.type == GgmlType::Q6_K) img.assign(l.bytes, 0);  // planes, padding
  switch (w.type) {
    case GgmlType::Q8_0:
      split_planes<BlockQ8_0>(w, l, img);
      break;
    case GgmlType::Q4_0:
      split_planes<BlockQ4_0>(w, l, img);
      break;
    case GgmlType::Q5_0:
      split_planes<BlockQ5_0>(w, l, img);
      break;
    case GgmlType::Q6_K: {
      const size_t n_blocks = static_cast<size_t>(w.rows * v.blocks_per_row);
      for (size_t i = 0; i < n_blocks; ++i)
        std::memcpy(img.data() + i * kQ6KPaddedBytes, w.data + i * sizeof(BlockQ6_K), sizeof(BlockQ6_K));
      break;
    }
    case GgmlType::Q4_K:
      repack_k4_scales<BlockQ4_K>(w, img);
      break;
    case GgmlType::Q5_K:
      repack_k4_scales<BlockQ5_K>(w, img);
      break;
    default:
      break;
  }
  const uint8_t* src = img.empty() ? w.data : img.data();
  check(cudaMemcpy(dst, src, l.bytes, cudaMemcpyHostToDevice), "uploading a weight");
  auto* base = static_cast<uint8_t*>(dst);
  v.q = base;
  if (w.type == GgmlType::Q5_0) v.qh = reinterpret_cast<const uint32_t*>(base + l.qh_off);
  if (l.quant_bytes > 0) v.d = reinterpret_cast<const uint16_t*>(base + l.d_off);
  return v;
}

UploadedWeight upload_weight(const WeightTensor& w) {
  UploadedWeight u;
  u.memory.reserve(device_bytes(w));
  u.view = upload_weight_to(w, u.memory.get());
  return u;
}

}  // namespace unicorn::cuda
