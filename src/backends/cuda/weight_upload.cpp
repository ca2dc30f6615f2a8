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

constexpr size_t kPlaneAlign = 256;
size_t align_up(size_t n) { return (n + kPlaneAlign - 1) / kPlaneAlign * kPlaneAlign; }

// Legacy 32-value blocks: split into a quant plane, an optional high-bit plane and a scale plane.
template <class Block>
std::vector<uint8_t> split_planes(const WeightTensor& w, int64_t nb, size_t quant_bytes, bool has_qh, size_t& qh_off,
                                  size_t& d_off) {
  const size_t n_blocks = static_cast<size_t>(w.rows * nb);
  const size_t q_size = align_up(n_blocks * quant_bytes);
  const size_t qh_size = has_qh ? align_up(n_blocks * 4) : 0;
  qh_off = q_size;
  d_off = q_size + qh_size;
  std::vector<uint8_t> img(d_off + n_blocks * 2);
  for (size_t i = 0; i < n_blocks; ++i) {
    Block b;
    std::memcpy(&b, w.data + i * sizeof(Block), sizeof(Block));
    std::memcpy(img.data() + i * quant_bytes, b.qs, quant_bytes);
    if constexpr (requires { b.qh; }) std::memcpy(img.data() + qh_off + i * 4, b.qh, 4);
    std::memcpy(img.data() + d_off + i * 2, &b.d, 2);
  }
  return img;
}

}  // namespace

UploadedWeight upload_weight(const WeightTensor& w) {
  if (!weight_type_supported(w.type))
    fail("{}: the CUDA backend has no kernels for {} weights", w.name, type_name(w.type));
  const int block = traits(w.type).block_size;
  if (w.cols % 8 != 0 || w.cols % block != 0)
    fail("{}: {} columns; the CUDA backend needs a multiple of 8 (and of the {}-value block)", w.name, w.cols, block);
  UploadedWeight u;
  DeviceWeight& v = u.view;
  v.type = w.type;
  v.rows = w.rows;
  v.cols = w.cols;
  v.blocks_per_row = w.cols / block;
  std::vector<uint8_t> img;
  size_t qh_off = 0, d_off = 0;
  const uint8_t* src = w.data;
  size_t size = w.nbytes();
  switch (w.type) {
    case GgmlType::Q8_0:
      img = split_planes<BlockQ8_0>(w, v.blocks_per_row, 32, false, qh_off, d_off);
      v.q_row_bytes = v.blocks_per_row * 32;
      break;
    case GgmlType::Q4_0:
      img = split_planes<BlockQ4_0>(w, v.blocks_per_row, 16, false, qh_off, d_off);
      v.q_row_bytes = v.blocks_per_row * 16;
      break;
    case GgmlType::Q5_0:
      img = split_planes<BlockQ5_0>(w, v.blocks_per_row, 16, true, qh_off, d_off);
      v.q_row_bytes = v.blocks_per_row * 16;
      break;
    case GgmlType::Q6_K: {
      const size_t n_blocks = static_cast<size_t>(w.rows * v.blocks_per_row);
      img.assign(n_blocks * kQ6KPaddedBytes, 0);
      for (size_t i = 0; i < n_blocks; ++i)
        std::memcpy(img.data() + i * kQ6KPaddedBytes, w.data + i * sizeof(BlockQ6_K), sizeof(BlockQ6_K));
      v.q_row_bytes = v.blocks_per_row * kQ6KPaddedBytes;
      break;
    }
    default:  // float rows and Q4_K blocks are used as stored
      v.q_row_bytes = static_cast<int64_t>(w.row_stride());
      break;
  }
  if (!img.empty()) {
    src = img.data();
    size = img.size();
  }
  u.memory.reserve(size);
  check(cudaMemcpy(u.memory.get(), src, size, cudaMemcpyHostToDevice), "uploading a weight");
  auto* base = u.memory.as<uint8_t>();
  v.q = base;
  if (w.type == GgmlType::Q5_0) v.qh = reinterpret_cast<const uint32_t*>(base + qh_off);
  if (w.type == GgmlType::Q8_0 || w.type == GgmlType::Q4_0 || w.type == GgmlType::Q5_0)
    v.d = reinterpret_cast<const uint16_t*>(base + d_off);
  return u;
}

}  // namespace unicorn::cuda
