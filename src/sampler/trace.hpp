// Recording sampler steps into a SamplerTrace (DDIM and PLMS share the layout).
#pragma once
#include <cstdint>

#include "rdm/sampler/ddim.hpp"

namespace rdm::sampler::solver_detail {

// DDIM and PLMS: one step into the trace (when there is one): timestep, the reference's index,
// the step's x_prev and pred_x0, and the eps that step recorded.
inline void record_ddim_step(SamplerTrace* tr, int64_t step, int64_t index, const DdimStep& out,
                             const torch::Tensor& e_t) {
  if (!tr) return;
  tr->sampling_timesteps_in_order.push_back(step);
  tr->step_index.push_back(index);
  tr->x_prev.push_back(out.x_prev);
  tr->pred_x0.push_back(out.pred_x0);
  tr->e_t.push_back(e_t);
}

}  // namespace rdm::sampler::solver_detail
