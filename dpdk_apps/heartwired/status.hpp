#pragma once
// The text and JSON views of a running engine, for heartwirectl status.

#include <cstdint>
#include <deque>
#include <vector>
#include <string>

#include "control/address_keeper.hpp"
#include "control/announcer.hpp"
#include "control/hook_queue.hpp"
#include "dpdk/engine.hpp"
#include "dpdk/xdp_steer.hpp"
#include "heartwire/config.hpp"

namespace heartwire::app {

struct takeover_record {
    std::uint32_t failed_id{};
    std::uint64_t wall_ns{};       // decision time, CLOCK_REALTIME
    std::uint64_t detection_ns{};  // last answer -> decision
    std::uint32_t group{};         // the group that took over
};

// Where one group's announcements (GARP, NA) leave from.
struct announce_view {
    const control::announcer* kernel{nullptr}; // its kernel interface's; null: the engine sends them from the DPDK port
    std::uint64_t not_held{0};                 // not sent: the kernel did not hold the address
};

struct status_inputs {
    const cfg::config& c;
    const io::engine& e;
    const std::deque<takeover_record>& takeovers;
    const std::deque<std::string>& notes;   // "<wall ns> <text>", newest last
    const std::string& fault_detail;
    std::int64_t app_inflight;              // -1: never reported
    control::hook_queue_counters hooks;     // the control loop's hook queue
    const io::xdp_steer* steer{nullptr};    // af_xdp steering program, when heartwire's
    const std::vector<takeover_record>* last_takeover{nullptr}; // per group (cfg.groups order); wall_ns 0: none
    const std::vector<announce_view>* announce{nullptr};        // per group (cfg.groups order)
    const control::address_keeper::counters* kernel_addresses{nullptr}; // shared mode
};

std::string status_text(const status_inputs& in);
// "1,2": the key ids in the set ("" when none).
std::string key_ids(const fsm::key_set& k);
std::string status_json(const status_inputs& in);

} // namespace heartwire::app
