// Every bad input gets a one-line error naming the file or tensor and a non-zero exit, never a
// crash: the unicorn binary is run as a user would run it.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#ifdef UNICORN_HAVE_CUDA
#include "backends/cuda/cuda_device.h"
#endif
#include "formats/gguf.h"
#include "formats/gguf_writer.h"
#include "model/loader.h"
#include "runtime/model_writer.h"
#include "test_support.h"
#include "tokenizer/chat_template.h"

using namespace unicorn;
namespace fs = std::filesystem;

namespace {

// The temporary files this process made, removed when it ends (a failed check leaves none
// behind either).
struct TempFiles {
  std::vector<fs::path> paths;
  TempFiles() = default;
  TempFiles(const TempFiles&) = delete;
  TempFiles& operator=(const TempFiles&) = delete;
  ~TempFiles() {
    for (const fs::path& p : paths) {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  }
};

fs::path remove_at_exit(fs::path p) {
  static TempFiles files;
  files.paths.push_back(p);
  return p;
}

struct Result {
  int exit_code = -1;  // -1 if killed by a signal
  std::string err;     // stderr
  std::string out;     // stdout
};

// env: variable settings put before the command ("NAME=value ..."), for the shell.
Result run_unicorn(const std::string& args, const std::string& stdin_file = "/dev/null", const std::string& env = "") {
  static const fs::path errf =
      remove_at_exit(fs::temp_directory_path() / ("unicorn_cli_err_" + std::to_string(::getpid()) + ".txt"));
  const std::string cmd = env + (env.empty() ? "" : " ") + std::string(UNICORN_BINARY) + " " + args + " 2>" +
                          errf.string() + " <" + stdin_file;
  Result r;
  FILE* p = popen(cmd.c_str(), "r");
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int st = pclose(p);
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::ifstream f(errf);
  r.err.assign(std::istreambuf_iterator<char>(f), {});
  return r;
}

const std::string kTiny = test::fixture("tiny/g1_hd128_w8/model.gguf");

// ctest runs tests as parallel processes: names carry the pid.
fs::path temp_path(const std::string& name) {
  return remove_at_exit(fs::temp_directory_path() / ("unicorn_cli_" + std::to_string(::getpid()) + "_" + name));
}

// Rewrites the tiny GGUF with `edit` applied to its metadata and tensors.
std::string rewrite_tiny(const std::string& name,
                         const std::function<bool(const std::string& key, GgufWriter& w, const GgufValue& v)>& meta,
                         const std::function<bool(const GgufTensorInfo& t, GgufWriter& w)>& tensor) {
  auto src = GgufFile::open(kTiny);
  const std::string out = temp_path(name).string();
  GgufWriter w(out);
  for (const std::string& k : src->keys()) {
    const GgufValue* v = src->find(k);
    if (!meta(k, w, *v)) w.add_value(k, *v);
  }
  for (const GgufTensorInfo& t : src->tensors())
    if (!tensor(t, w)) w.add_tensor(t.name, t.ne, t.type, t.data, t.nbytes);
  w.write();
  return out;
}

void expect_clean_error(const Result& r, const std::string& must_contain) {
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.exit_code, -1) << "killed by a signal";
  EXPECT_NE(r.err.find(must_contain), std::string::npos) << "stderr: " << r.err;
  // One line of error text.
  EXPECT_LE(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

}  // namespace

TEST(CliErrors, MissingModelFileIsNamed) {
  expect_clean_error(run_unicorn("run -m /nonexistent/model.gguf -p hi"), "/nonexistent/model.gguf");
}

TEST(CliErrors, TextFileIsNotAGguf) {
  const auto p = temp_path("not.gguf");
  std::ofstream(p) << "hello, I am not a model\n";
  expect_clean_error(run_unicorn("info -m " + p.string()), "not a GGUF");
}

TEST(CliErrors, OtherArchitectureIsRejected) {
  const auto p = rewrite_tiny(
      "llama.gguf",
      [](const std::string& k, GgufWriter& w, const GgufValue&) {
        if (k != "general.architecture") return false;
        w.add_string(k, "llama");
        return true;
      },
      [](const GgufTensorInfo&, GgufWriter&) { return false; });
  expect_clean_error(run_unicorn("info -m " + p), "architecture 'llama'");
}

TEST(CliErrors, TruncatedFileIsReported) {
  const auto p = temp_path("truncated.gguf");
  fs::copy_file(kTiny, p, fs::copy_options::overwrite_existing);
  fs::resize_file(p, fs::file_size(p) / 2);
  const Result r = run_unicorn("info -m " + p.string());
  expect_clean_error(r, p.string());
}

TEST(CliErrors, CorruptHeaderIsReported) {
  const auto p = temp_path("corrupt.gguf");
  fs::copy_file(kTiny, p, fs::copy_options::overwrite_existing);
  {
    std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(16);  // kv count: make it absurd
    const uint64_t huge = ~0ull >> 4;
    f.write(reinterpret_cast<const char*>(&huge), 8);
  }
  expect_clean_error(run_unicorn("info -m " + p.string()), p.string());
}

TEST(CliErrors, MissingTensorIsNamed) {
  const auto p = rewrite_tiny(
      "missing.gguf", [](const std::string&, GgufWriter&, const GgufValue&) { return false; },
      [](const GgufTensorInfo& t, GgufWriter&) { return t.name == "blk.3.ffn_up.weight"; });
  expect_clean_error(run_unicorn("info -m " + p), "blk.3.ffn_up.weight");
}

TEST(CliErrors, WrongShapeIsNamed) {
  const auto p = rewrite_tiny(
      "shape.gguf", [](const std::string&, GgufWriter&, const GgufValue&) { return false; },
      [](const GgufTensorInfo& t, GgufWriter& w) {
        if (t.name != "blk.0.attn_q.weight") return false;
        // Same bytes, rows and cols swapped.
        w.add_tensor(t.name, {t.ne[1], t.ne[0]}, t.type, t.data, t.nbytes);
        return true;
      });
  expect_clean_error(run_unicorn("info -m " + p), "blk.0.attn_q.weight");
}

TEST(CliErrors, BadFlagValuesAreRejected) {
  for (const char* args : {"run --temp abc -p hi", "run -c -5 -p hi", "run --top-p 2 -p hi", "bench -r 0",
                           "run --kv-type q4 -p hi", "frobnicate", "bench --write-gguf /tmp/unicorn_never.gguf"}) {
    const Result r = run_unicorn(args);
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_NE(r.exit_code, -1) << args;
    EXPECT_FALSE(r.err.empty()) << args;
  }
}

TEST(CliErrors, TokenizerForSyntheticGgufNamesTheProblem) {
  expect_clean_error(run_unicorn("bench --synthetic 270m --tokenizer /tmp -n 1"), "--write-gguf only");
  const fs::path dir = temp_path("no_tokenizer_here");
  fs::create_directories(dir);
  const fs::path out = temp_path("never_tok.gguf");
  expect_clean_error(
      run_unicorn("bench --synthetic 270m --write-gguf " + out.string() + " --tokenizer " + dir.string()),
      "no tokenizer.json there");
  EXPECT_FALSE(fs::exists(out));
  fs::remove_all(dir);
}

TEST(CliErrors, GpuMemoryNeedsAGpuAndAValidSize) {
  const Result cpu = run_unicorn("run -m " + kTiny + " --device cpu --gpu-memory 8G -p hi -n 1");
  expect_clean_error(cpu, "--gpu-memory 8G needs a GPU device");
  const Result both = run_unicorn("run -m " + kTiny + " --device cpu --gpu-memory 8G --gpu-layers 2 -p hi -n 1");
  expect_clean_error(both, "not both");
}

TEST(CliErrors, MissingCudaDeviceSaysWhy) {
#ifndef UNICORN_HAVE_CUDA
  GTEST_SKIP() << "skipped: built without CUDA";
#else
  if (cuda_device_count() > 0) GTEST_SKIP() << "skipped: a CUDA device is present";
  // The runtime's reason (no driver, a driver too old, CUDA_VISIBLE_DEVICES hiding the devices)
  // reaches the user: in unicorn check, and in the error of an explicit --device cuda.
  const std::string why = cuda_unavailable_reason();
  ASSERT_FALSE(why.empty()) << "no device but no reason";
  const Result check = run_unicorn("check");
  ASSERT_EQ(check.exit_code, 0) << check.err;
  EXPECT_NE(check.out.find("CUDA: 0 device(s)\n  (" + why + ")"), std::string::npos) << check.out;
  expect_clean_error(run_unicorn("run -m " + kTiny + " --device cuda -p hi -n 1"), why);
#endif
}

TEST(CliErrors, AutoDeviceSaysWhyItRunsOnTheCpuWhenADriverIsInstalled) {
#ifndef UNICORN_HAVE_CUDA
  GTEST_SKIP() << "skipped: built without CUDA";
#else
  const std::string note = "note: --device auto runs on the CPU";
  if (!cuda_driver_installed()) {
    // No driver: a CPU-only machine, where the CPU is no surprise.
    const Result r = run_unicorn("run -m " + kTiny + " -p hi -n 1 --temp 0");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err.find(note), std::string::npos) << r.err;
    return;
  }
  // A driver but the devices hidden: the run goes on, on the CPU, and says why.
  const Result r = run_unicorn("run -m " + kTiny + " -p hi -n 1 --temp 0", "/dev/null", "CUDA_VISIBLE_DEVICES=");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find(note), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("CUDA_VISIBLE_DEVICES=''"), std::string::npos) << r.err;
#endif
}

TEST(CliErrors, ModelWithoutTokenizerCannotRunText) {
  const auto p = rewrite_tiny(
      "notok.gguf",
      [](const std::string& k, GgufWriter&, const GgufValue&) {
        return k.rfind("tokenizer.", 0) == 0;  // drop every tokenizer key
      },
      [](const GgufTensorInfo&, GgufWriter&) { return false; });
  expect_clean_error(run_unicorn("run -m " + p + " -p hi"), "no tokenizer");
}

TEST(CliRun, TinyModelGeneratesAndSummarises) {
  const Result r = run_unicorn("run -m " + kTiny + " -p hi -n 5 --temp 0");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("generated 5 tok"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("stop: max tokens"), std::string::npos) << r.err;
}

TEST(CliInfo, DescribesTinyModel) {
  const Result r = run_unicorn("info -m " + kTiny + " -c 64");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("layers 6 (global: 5)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("sliding window 8"), std::string::npos) << r.out;
}

TEST(CliChat, PipedTurnsReuseTheCache) {
  // Two turns from a pipe; the summary's prompt count must be the rendered conversation's
  // tokens fed once each (history is never re-processed): turn 1 = full template, turn 2 =
  // only the follow-up text.
  const std::string cmd = "chat -m " + kTiny + " -n 3 --temp 0";
  const std::string in = (temp_path("chat_in.txt")).string();
  std::ofstream(in) << "hello there\nand again\n";
  const Result r = run_unicorn(cmd, in);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("generated 6 tok"), std::string::npos) << r.err;
  const Tokenizer tok = *load_model(kTiny).tokenizer;
  const size_t first = tok.encode(render_chat({{"user", "hello there"}}, true), false).size();
  const size_t second = tok.encode(render_user_followup("and again", false), false).size();
  EXPECT_NE(r.err.find(fmt::format("[prompt {} tok", first + second)), std::string::npos) << r.err;
}

TEST(CliBench, WritesJson) {
  const Result r = run_unicorn("bench -m " + kTiny + " -p 16 -n 4 -r 1 -o json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"test\": \"pp16\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"test\": \"tg4\""), std::string::npos) << r.out;
  // The tg test as a fraction of the roofline measured in the same run; the pp test has none.
  const nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 2u) << r.out;
  EXPECT_FALSE(j[0].contains("roofline_fraction")) << r.out;
  ASSERT_TRUE(j[1].contains("roofline_fraction")) << r.out;
  const double bw = j[1]["copy_bandwidth_gbps"].get<double>(), ceiling = j[1]["roofline_tok_per_s"].get<double>();
  EXPECT_GT(bw, 0.1) << r.out;
  EXPECT_NEAR(ceiling, bw * 1e9 / j[1]["bytes_per_token"].get<double>(), 1e-6 * ceiling) << r.out;
  EXPECT_NEAR(j[1]["roofline_fraction"].get<double>(), j[1]["mean"].get<double>() / ceiling, 1e-9) << r.out;
}

TEST(CliBench, TestsPromptAndGenerationAtEachDepth) {
  // As llama-bench: at each -d a pp and a tg test, named "@ dN" past depth 0, in that order; the
  // default context holds the deepest depth plus the longer test.
  const Result r = run_unicorn("bench -m " + kTiny + " -p 8 -n 2 -d 0 -d 24 -r 1 -o json --no-roofline");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 4u) << r.out;
  const char* names[] = {"pp8", "tg2", "pp8 @ d24", "tg2 @ d24"};
  const int depths[] = {0, 0, 24, 24};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(j[i]["test"].get<std::string>(), names[i]) << r.out;
    EXPECT_EQ(j[i]["depth"].get<int>(), depths[i]) << r.out;
    EXPECT_GT(j[i]["mean"].get<double>(), 0.0) << r.out;
  }
}

TEST(CliBench, DecodesSeveralSequencesTogether) {
  // -P 3: each tg test decodes 3 sequences in lockstep (one forward call of 3 tokens per step, at
  // each sequence's own depth) and counts all their tokens; its roofline fraction is per step.
  const Result r = run_unicorn("bench -m " + kTiny + " -p 8 -n 3 -d 0 -d 12 -P 3 -r 1 -o json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 4u) << r.out;
  const char* names[] = {"pp8", "tg3 x3", "pp8 @ d12", "tg3 x3 @ d12"};
  const int seqs[] = {1, 3, 1, 3};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(j[i]["test"].get<std::string>(), names[i]) << r.out;
    EXPECT_EQ(j[i]["n_seq"].get<int>(), seqs[i]) << r.out;
    EXPECT_GT(j[i]["mean"].get<double>(), 0.0) << r.out;
  }
  for (size_t i : {size_t{1}, size_t{3}}) {
    ASSERT_TRUE(j[i].contains("roofline_fraction")) << r.out;
    EXPECT_NEAR(j[i]["roofline_fraction"].get<double>(),
                j[i]["mean"].get<double>() / 3.0 / j[i]["roofline_tok_per_s"].get<double>(), 1e-9)
        << r.out;
  }
  for (const char* bad : {" -n 2 -P 0", " -n 2 -P 65"}) {  // CLI11's range check (and its --help hint)
    const Result e = run_unicorn("bench -m " + kTiny + bad);
    EXPECT_NE(e.exit_code, 0) << bad;
    EXPECT_NE(e.exit_code, -1) << bad;
    EXPECT_NE(e.err.find("--parallel"), std::string::npos) << e.err;
  }
}

TEST(CliBench, AContextTooSmallForTheDeepestTestIsRefusedBeforeLoading) {
  expect_clean_error(run_unicorn("bench -m /nonexistent.gguf -p 32 -n 4 -d 64 -c 80"), "needs 96 positions");
}

TEST(CliPerplexity, ABatchLargerThanTheContextIsBudgetedByTheContext) {
  // Perplexity takes a whole call's logits at once, but a call never has more tokens than the
  // context: -b 32768 with -c 128 must budget 128 rows of Gemma 3's 262,144 logits, not 32,768
  // (32 GiB, refused as out of memory before the cap).
  const std::string real = test::source_dir() + "/models/gemma-3-270m-q4_k_m.gguf";
  if (!std::filesystem::exists(real)) GTEST_SKIP() << "skipped: no " << real;
  const Result r = run_unicorn("perplexity -m " + real + " -f " + test::source_dir() +
                               "/README.md --chunks 1 -c 128 -b 32768 -t 2 --device cpu");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("Final estimate: PPL = "), std::string::npos) << r.out;
}

TEST(CliBench, SyntheticGgufCarriesItsSchemesFileType) {
  // llama.cpp prints general.file_type as the model's type; without it, q4_mix's mix of K-quants
  // read as "all F32" there (session 10).
  const fs::path mix = temp_path("synthetic_q4_mix.gguf");
  const Result r = run_unicorn("bench --synthetic 270m --type q4_mix --write-gguf " + mix.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(GgufFile::open(mix.string())->get_int("general.file_type"), 15);
  fs::remove(mix);
  EXPECT_EQ(llama_file_type("q4_0"), 2u);
  EXPECT_EQ(llama_file_type("q8_0"), 7u);
  EXPECT_EQ(llama_file_type("bf16"), 32u);
  EXPECT_EQ(llama_file_type("Q4_K"), 14u);  // a type name, in any case
  EXPECT_FALSE(llama_file_type("q9_9").has_value());
}

TEST(CliBench, RooflineCanBeLeftOut) {
  const Result r = run_unicorn("bench -m " + kTiny + " -p 0 -n 4 -r 1 --no-roofline");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("| tg4 |"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("roofline"), std::string::npos) << r.out;
  const Result with = run_unicorn("bench -m " + kTiny + " -p 0 -n 4 -r 1");
  ASSERT_EQ(with.exit_code, 0) << with.err;
  EXPECT_NE(with.out.find("tg4: "), std::string::npos) << with.out;
  EXPECT_NE(with.out.find("% of the roofline"), std::string::npos) << with.out;
}

TEST(CliRun, CtrlCStopsCleanlyWithSummary) {
  // Long generation on the tiny model; SIGINT once it is streaming (the prompt echo on stdout
  // comes after the handler is installed) must end it with exit 0 and a summary saying so.
  const std::string errf = temp_path("sigint_err.txt").string();
  const std::string outf = temp_path("sigint_out.txt").string();
  const std::string cmd = "(" + std::string(UNICORN_BINARY) + " run -m " + kTiny +
                          " -p hi -n 100000000 -c 512 --temp 0 2>" + errf + " >" + outf +
                          " & pid=$!; for i in $(seq 200); do [ -s " + outf +
                          " ] && break; sleep 0.05; done; kill -INT $pid; wait $pid)";
  const int st = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(st));
  std::ifstream f(errf);
  const std::string err((std::istreambuf_iterator<char>(f)), {});
  // Either interrupted, or (on a very fast machine) it hit the context end first; both are clean.
  EXPECT_TRUE(err.find("stop: interrupted") != std::string::npos || err.find("stop: context full") != std::string::npos)
      << err;
  EXPECT_EQ(WEXITSTATUS(st), 0) << err;
}

TEST(CliRun, PassingTheContextEndIsAClearMessage) {
  const Result r = run_unicorn("run -m " + kTiny + " -p hi -n 1000 -c 16 --temp 0");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("stop: context full"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("end of the 16-token context"), std::string::npos) << r.err;
}

TEST(CliRun, PromptLongerThanContextIsAnError) {
  std::string prompt(200, 'x');
  const Result r = run_unicorn("run -m " + kTiny + " -p '" + prompt + "' -c 16");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("context"), std::string::npos) << r.err;
}
