#pragma once
// The node's metrics, Prometheus-named (issue 11 item 4), from what status reads: per group
// role, epoch, held addresses, peers, takeovers; the engine's I/O counters, the state
// machines' counters and drops by reason, the probe round-trip and loop-gap histograms.

#include <string>

#include "status.hpp"

namespace heartwire::app {

std::string metrics_text(const status_inputs& in);

} // namespace heartwire::app
