#pragma once
#include "model/weights.h"

namespace unicorn {
// Every tensor has the shape the config implies and a type the engine can multiply by;
// throws Error naming the source and tensor otherwise.
void check_weight_shapes(const ModelWeights& mw);
// Norm vectors become owned F32 arrays (+1 when the format stores zero-centred w, spec §2.2).
void convert_norms_to_f32(ModelWeights& mw, bool add_one);
}  // namespace unicorn
