#include "formats/hf_checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"

namespace unicorn {
namespace {

namespace fs = std::filesystem;

// Most specific first: "model.language_model.embed_tokens.weight" also starts with "model.".
constexpr std::string_view kTextPrefixes[] = {"language_model.model.", "model.language_model.", "model."};
// spec §3.4; recent transformers nest them under "model." as well.
constexpr std::string_view kSkippedPrefixes[] = {"vision_tower.", "multi_modal_projector.", "model.vision_tower.",
                                                 "model.multi_modal_projector."};

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  if (!in) fail("{}: cannot open", p.string());
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: invalid JSON: {}", p.string(), e.what());
  }
}

bool starts_with_any(std::string_view s, const auto& prefixes) {
  for (std::string_view p : prefixes)
    if (s.starts_with(p)) return true;
  return false;
}

}  // namespace

std::unique_ptr<HfCheckpoint> HfCheckpoint::open(const std::string& dir) {
  std::unique_ptr<HfCheckpoint> c(new HfCheckpoint());
  c->dir_ = dir;
  const fs::path root(dir);
  std::error_code ec;
  if (!fs::is_directory(root, ec)) fail("{}: not a directory (expected a Hugging Face checkpoint directory)", dir);
  if (!fs::is_regular_file(root / "config.json", ec)) fail("{}: no config.json in the checkpoint directory", dir);
  c->config_ = read_json(root / "config.json");

  const fs::path index = root / "model.safetensors.index.json";
  if (fs::is_regular_file(index, ec)) {
    const nlohmann::json idx = read_json(index);
    const auto wm = idx.find("weight_map");
    if (wm == idx.end() || !wm->is_object()) fail("{}: no 'weight_map' object", index.string());
    std::set<std::string> shard_names;
    for (const auto& [name, file] : wm->items()) {
      if (!file.is_string()) fail("{}: weight_map entry '{}' is not a file name", index.string(), name);
      const std::string f = file.get<std::string>();
      // Shards live next to the index; refuse paths that would leave the directory.
      if (f.empty() || f.find('/') != std::string::npos || f == "..")
        fail("{}: weight_map entry '{}' names '{}', not a file in this directory", index.string(), name, f);
      shard_names.insert(f);
    }
    if (shard_names.empty()) fail("{}: weight_map is empty", index.string());
    for (const auto& s : shard_names) c->add_shard((root / s).string());
    for (const auto& [name, file] : wm->items()) {
      const Entry* e = c->find_entry(name);
      const std::string shard = (root / file.get<std::string>()).string();
      if (!e || e->file->path() != shard)
        fail("{}: weight_map puts '{}' in {}, but that shard does not hold it", index.string(), name,
             file.get<std::string>());
    }
  } else if (fs::is_regular_file(root / "model.safetensors", ec)) {
    c->add_shard((root / "model.safetensors").string());
  } else {
    std::vector<std::string> files;
    for (const auto& de : fs::directory_iterator(root, ec))
      if (de.path().extension() == ".safetensors" && de.is_regular_file(ec)) files.push_back(de.path().string());
    if (files.empty()) fail("{}: no *.safetensors files in the checkpoint directory", dir);
    std::sort(files.begin(), files.end());
    for (const auto& f : files) c->add_shard(f);
  }

  for (std::string_view p : kTextPrefixes) {
    if (c->has(std::string(p) + "embed_tokens.weight")) {
      c->text_prefix_ = p;
      break;
    }
  }
  for (const auto& [name, e] : c->entries_)
    if (starts_with_any(name, kSkippedPrefixes)) c->skipped_.push_back(name);
  std::sort(c->skipped_.begin(), c->skipped_.end());
  return c;
}

void HfCheckpoint::add_shard(const std::string& path) {
  shards_.push_back(SafetensorsFile::open(path));
  shard_paths_.push_back(path);
  const SafetensorsFile* f = shards_.back().get();
  for (const auto& t : f->tensors()) {
    auto [it, inserted] = entries_.emplace(t.name, Entry{f, &t});
    if (!inserted) fail("{}: tensor '{}' appears in both {} and {}", dir_, t.name, it->second.file->path(), path);
  }
}

const HfCheckpoint::Entry* HfCheckpoint::find_entry(std::string_view name) const {
  auto it = entries_.find(std::string(name));
  return it == entries_.end() ? nullptr : &it->second;
}

HfTensor HfCheckpoint::make(const Entry& e) const {
  return HfTensor{e.tensor->name, e.file->ggml_type(*e.tensor), e.tensor->shape, e.tensor->data, e.tensor->nbytes,
                  e.file->path()};
}

std::vector<std::string> HfCheckpoint::tensor_names() const {
  std::vector<std::string> names;
  names.reserve(entries_.size());
  for (const auto& [name, e] : entries_) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

std::optional<HfTensor> HfCheckpoint::find(std::string_view name) const {
  const Entry* e = find_entry(name);
  if (!e) return std::nullopt;
  return make(*e);
}

HfTensor HfCheckpoint::tensor(std::string_view name) const {
  const Entry* e = find_entry(name);
  if (!e) fail("{}: checkpoint has no tensor '{}'", dir_, name);
  return make(*e);
}

const std::string& HfCheckpoint::text_prefix() const {
  if (text_prefix_.empty())
    fail(
        "{}: no text model found (no embed_tokens.weight under model., language_model.model. "
        "or model.language_model.)",
        dir_);
  return text_prefix_;
}

std::optional<HfTensor> HfCheckpoint::find_text_tensor(std::string_view name_after_prefix) const {
  return find(text_prefix() + std::string(name_after_prefix));
}

HfTensor HfCheckpoint::text_tensor(std::string_view name_after_prefix) const {
  const std::string full = text_prefix() + std::string(name_after_prefix);
  const Entry* e = find_entry(full);
  if (!e) fail("{}: checkpoint has no text tensor '{}' (looked for '{}')", dir_, name_after_prefix, full);
  return make(*e);
}

std::optional<HfTensor> HfCheckpoint::lm_head() const {
  // spec §3.2: published multimodal files use language_model.lm_head, the others lm_head.
  if (text_prefix() == "language_model.model.")
    if (auto t = find("language_model.lm_head.weight")) return t;
  return find("lm_head.weight");
}

}  // namespace unicorn
