#pragma once
// What the control side and an engine say to each other, with no DPDK in it: the engine's
// actions in the order its machines emitted them (control_event), the commands it takes
// (engine_command), the per-group state it publishes (group_status), and engine_link, the
// interface the control side's logic (src/control) drives an engine through. The DPDK
// engine (io::engine) is one; a test can be another.

#include <cstdint>
#include <vector>

#include "heartwire/fsm.hpp"
#include "heartwire/roles.hpp"

namespace heartwire {

// Engine -> control thread.
struct control_event {
    fsm::action a;
    std::uint64_t engine_ns; // when the machine emitted it
    std::uint64_t wall_ns;   // the same instant on CLOCK_REALTIME
    std::uint16_t group{};   // index into cfg.groups of the machine that emitted it
};

inline constexpr std::uint16_t all_groups = 0xffff;

// Control thread -> engine.
struct engine_command {
    enum class kind : std::uint8_t { hook_done, command } k{kind::hook_done};
    fsm::hook_kind hook{fsm::hook_kind::boot_peer};
    bool ok{false};
    fsm::command_kind cmd{fsm::command_kind::switchover};
    std::uint16_t group{all_groups}; // index into cfg.groups, or every group
    std::uint32_t arg{};
};
static_assert(sizeof(engine_command) % 4 == 0);

// One group's summary, for status with many groups (the first group's full detail is in
// status_snapshot).
struct group_status {
    std::uint32_t id{};
    role r{role::init};
    bool holds[fsm::address_count]{};
    bool monitor_alive{};
    bool detector_armed{};
    fsm::fault_kind fault{fsm::fault_kind::none};
    std::uint64_t epoch{};
    std::uint32_t watched_id{};
    std::uint32_t peers{};        // live peers
    std::uint64_t takeovers{};
    std::uint64_t false_takeovers{};
    std::uint64_t role_since_ns{};
};

// The control side's view of an engine: commands go in, published state comes out. Events
// come out too, but a caller polls them from the engine it owns (in order, one thread).
class engine_link {
public:
    virtual ~engine_link() = default;
    // One command (a hook's answer, an operator's or a health check's command); false when
    // the engine's ring is full (the caller retries: nothing is dropped).
    virtual bool post(const engine_command& cmd) noexcept = 0;
    // Every group's latest published state, in cfg.groups order (at most a few ms old).
    virtual std::vector<group_status> group_statuses() const = 0;
};

} // namespace heartwire
