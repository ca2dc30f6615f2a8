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
};

}  // namespace unicorn
