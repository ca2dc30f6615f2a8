// unicorn check: the compute devices found and which backend `run` would choose, and why.
#include <fstream>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "backends/cpu/matmul_kernels.h"
#include "cli/common.h"
#ifdef UNICORN_HAVE_CUDA
#include "backends/cuda/cuda_device.h"
#endif

namespace unicorn::cli {
namespace {
std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

class CheckCommand final : public Command {
 public:
  void setup(CLI::App&) override {}
  int run() override {
    fmt::print("CPU: {}, {} hardware threads\n", cpu_model(), std::thread::hardware_concurrency());
    std::string feats;
    auto has = [&](const char* name, bool yes) {
      if (yes) feats += fmt::format(" {}", name);
    };
    __builtin_cpu_init();
    has("sse4.2", __builtin_cpu_supports("sse4.2"));
    has("avx2", __builtin_cpu_supports("avx2"));
    has("fma", __builtin_cpu_supports("fma"));
    has("f16c", __builtin_cpu_supports("f16c"));
    has("avx512f", __builtin_cpu_supports("avx512f"));
    has("avx512bw", __builtin_cpu_supports("avx512bw"));
    has("avx512vnni", __builtin_cpu_supports("avx512vnni"));
    fmt::print("  features:{}\n  matmul kernels: {}\n", feats, best_matmul_kernels().name);
    int n_cuda = 0;
#ifdef UNICORN_HAVE_CUDA
    n_cuda = cuda_device_count();
    fmt::print("CUDA: {} device(s)\n", n_cuda);
    if (n_cuda == 0)
      if (const std::string why = cuda_unavailable_reason(); !why.empty()) fmt::print("  ({})\n", why);
    for (int i = 0; i < n_cuda; ++i) fmt::print("  cuda:{}  {}\n", i, cuda_device_description(i));
#else
    fmt::print("CUDA: not in this build (configure with -DUNICORN_CUDA=ON)\n");
#endif
    if (n_cuda > 0)
      fmt::print("run would use: cuda:0 (a CUDA device is present; --device cpu to override)\n");
    else
      fmt::print("run would use: cpu ({})\n", n_cuda == 0 ? "no CUDA device found" : "");
    return 0;
  }
};
}  // namespace

std::unique_ptr<Command> make_check_command() { return std::make_unique<CheckCommand>(); }

}  // namespace unicorn::cli
