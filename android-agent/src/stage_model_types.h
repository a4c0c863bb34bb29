// Small value types shared by the stage model, the layer math and the protocol handlers.
#pragma once
#include <cstdint>

namespace confidant::agent {

// P-RGE (zeroth-order, LoRA-FA): the batch holds 2*queries copies of one minibatch of B/(2*queries) sequences;
// copy 2j uses B + eps*z_i and copy 2j+1 uses B - eps*z_i for every adapted module, i = first_query + j, z_i
// regenerated on the device from (seed, step, i, parameter id) by prge.h. The base matmuls run once over all copies.
struct ZoPerturbation {
  uint64_t seed = 0;
  uint32_t step = 0;
  uint32_t queries = 0;
  float eps = 0;
  uint32_t first_query = 0;
};

// Which part of a layer runs on OpenCL: KV groups [0, gpu_kv_groups) of attention (their q/k/v column slices,
// attention and o_proj row slice) and MLP intermediate columns [0, gpu_mlp_cols) (a multiple of 32). The rest
// runs on the primary backend at the same time; the partial outputs are summed.
struct LayerSplit {
  uint32_t gpu_kv_groups = 0;
  uint32_t gpu_mlp_cols = 0;
};

}  // namespace confidant::agent
