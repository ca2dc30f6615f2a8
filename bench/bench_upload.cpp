// Host side of the CUDA weight upload: how fast stage_rows builds each quantized type's device
// layout (device_weight.h) from file blocks, on one thread and on the upload's thread pool. Every
// weight byte of a model goes through it at load, so a format whose staging is slow shows as load
// time (27B with every matrix Q5_K took 5.4 s on the H200's 16 cores while its staging went bit by
// bit, docs/PERFORMANCE.md session 26). Needs no GPU.
//
// usage: bench_upload [--threads N] [--mb MB]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backends/cuda/weight_upload.h"
#include "core/thread_pool.h"

using namespace unicorn;

int main(int argc, char** argv) {
  int threads = 0;  // 0: every hardware thread
  double mb = 64;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--threads") == 0) threads = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--mb") == 0) mb = std::atof(argv[i + 1]);
  }
  ThreadPool pool(threads);
  std::printf("| type | MB | one thread GB/s | %d threads GB/s |\n| --- | ---: | ---: | ---: |\n", pool.size());
  for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q4_K, GgmlType::Q5_K,
                     GgmlType::Q6_K}) {
    WeightTensor w;
    w.name = "bench";
    w.type = t;
    w.cols = 5376;  // 27B's hidden size
    w.rows = std::max<int64_t>(1, static_cast<int64_t>(mb * 1e6 / static_cast<double>(row_bytes(t, w.cols))));
    std::vector<uint8_t> data(w.nbytes());
    uint64_t x = 0x9E3779B97F4A7C15ull;  // the staging's speed does not depend on the values
    for (size_t i = 0; i + 8 <= data.size(); i += 8) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      std::memcpy(data.data() + i, &x, 8);
    }
    w.data = data.data();
    std::vector<uint8_t> staging(cuda::staged_bytes(w, w.rows));
    auto rate = [&](auto&& stage) {
      double best = 1e30;
      for (int r = 0; r < 3; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        stage();
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      return static_cast<double>(data.size()) / best / 1e9;
    };
    const double one = rate([&] { cuda::stage_rows(w, 0, w.rows, staging.data()); });
    const double all = rate([&] { cuda::stage_rows_parallel(w, 0, w.rows, staging.data(), pool); });
    const std::string name(type_name(t));
    std::printf("| %s | %.0f | %.2f | %.2f |\n", name.c_str(), static_cast<double>(data.size()) / 1e6, one, all);
  }
}
