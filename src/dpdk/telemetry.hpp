#pragma once
// DPDK telemetry endpoints for a running engine, readable with dpdk-telemetry.py:
//   /heartwire/status    role, epoch, held addresses, RTT percentiles
//   /heartwire/counters  state machine and per-lcore I/O counters, drops by reason
// The callbacks run on DPDK's telemetry thread and read the engine's published snapshot.

namespace heartwire::io {

class engine;

// Registers the endpoints for `e` (one engine per process). Returns 0 or -errno.
int register_telemetry(const engine* e) noexcept;
// Stops the callbacks from reading `e` (before it is destroyed).
void unregister_telemetry() noexcept;

} // namespace heartwire::io
