// Per-layer placement: each layer's weights live on one backend; the embedding lookup runs on
// the first layer's backend and the final norm + logits on `output`. Activations cross backends
// only at layer boundaries (see Gemma3Model::forward).
#pragma once
#include <vector>

#include "backends/backend.h"

namespace unicorn {

struct Placement {
  std::vector<Backend*> layer;  // one per layer
  Backend* input = nullptr;     // embedding lookup
  Backend* output = nullptr;    // final norm and logits

  static Placement all_on(Backend* b, int64_t n_layers) {
    Placement p;
    p.layer.assign(static_cast<size_t>(n_layers), b);
    p.input = p.output = b;
    return p;
  }

  // Partial offload: the first `n_first` layers (and the embedding lookup) on `first`, the rest
  // on `rest`; the output head follows the last layer. n_first is clamped to [0, n_layers].
  static Placement split(Backend* first, Backend* rest, int64_t n_layers, int64_t n_first) {
    n_first = n_first < 0 ? 0 : (n_first > n_layers ? n_layers : n_first);
    Placement p;
    for (int64_t l = 0; l < n_layers; ++l) p.layer.push_back(l < n_first ? first : rest);
    p.input = n_first > 0 ? first : rest;
    p.output = n_first == n_layers ? first : rest;
    return p;
  }
};

}  // namespace unicorn
