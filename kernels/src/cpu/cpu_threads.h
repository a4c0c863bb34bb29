// The default thread count's pieces, separated from cpu_default_threads() (confidant/backend.h) so tests can feed
// them the core clocks of real phones.
#pragma once
#include <vector>

namespace confidant::cpu {

// Cores whose maximum clock is more than 75% of the fastest core's (the "big" cores); 0 for an empty list.
int count_big_cores(const std::vector<long>& max_freq_khz);

}  // namespace confidant::cpu
