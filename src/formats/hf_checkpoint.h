// A Hugging Face checkpoint directory (gemma3-spec.md §3): config.json plus one
// model.safetensors, or shards listed by model.safetensors.index.json, or — with no index —
// every *.safetensors in the directory. Tensors are looked up by name across shards.
//
// The text model sits under one of three prefixes (spec §3.2): `model.` (1B, Gemma3ForCausalLM),
// `language_model.model.` (4B/12B/27B as published) or `model.language_model.` (re-saved by
// recent transformers). text_tensor() hides which one; vision tower and projector tensors
// (spec §3.4) are listed as skipped so the loader can report them.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/types.h"
#include "formats/safetensors.h"

namespace unicorn {

struct HfTensor {
  std::string name;            // full name as stored
  GgmlType dtype;              // F32, F16 or BF16
  std::vector<int64_t> shape;  // PyTorch order, outermost first
  const uint8_t* data;         // into the shard's mapping (valid while the HfCheckpoint lives)
  size_t nbytes;
  std::string file;  // shard path
};

class HfCheckpoint {
 public:
  // Throws Error naming the directory if it is not one, has no config.json, or no safetensors;
  // or naming the file if the index or a shard is malformed.
  static std::unique_ptr<HfCheckpoint> open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const nlohmann::json& config() const { return config_; }
  const std::vector<std::string>& shard_paths() const { return shard_paths_; }

  // Every tensor name across the shards, sorted.
  std::vector<std::string> tensor_names() const;
  bool has(std::string_view name) const { return find_entry(name) != nullptr; }
  // nullopt if absent; throws Error if present with a dtype other than F32/F16/BF16.
  std::optional<HfTensor> find(std::string_view name) const;
  // Throws Error naming the directory and tensor if absent.
  HfTensor tensor(std::string_view name) const;

  // The text-model prefix in use ("model.", "language_model.model." or
  // "model.language_model."); throws Error if none of them holds embed_tokens.weight.
  const std::string& text_prefix() const;
  // e.g. text_tensor("layers.0.self_attn.q_proj.weight"); throws if absent.
  HfTensor text_tensor(std::string_view name_after_prefix) const;
  std::optional<HfTensor> find_text_tensor(std::string_view name_after_prefix) const;
  // The untied output projection if the checkpoint has one (`lm_head.weight`, or
  // `language_model.lm_head.weight` with the published prefix); nullopt means tied to
  // embed_tokens (spec §3.2).
  std::optional<HfTensor> lm_head() const;

  // Vision tower and multimodal projector tensors (spec §3.4), which text inference skips.
  const std::vector<std::string>& skipped_tensors() const { return skipped_; }

 private:
  struct Entry {
    const SafetensorsFile* file;
    const SafetensorsTensor* tensor;
  };
  const Entry* find_entry(std::string_view name) const;
  HfTensor make(const Entry& e) const;
  void add_shard(const std::string& path);

  std::string dir_;
  nlohmann::json config_;
  std::vector<std::string> shard_paths_;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::unordered_map<std::string, Entry> entries_;
  std::string text_prefix_;  // empty if not detected
  std::vector<std::string> skipped_;
};

}  // namespace unicorn
