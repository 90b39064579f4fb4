#include "dpdk/telemetry.hpp"

#include <atomic>
#include <string>

#include <rte_telemetry.h>

#include "dpdk/engine.hpp"

namespace heartwire::io {

namespace {

std::atomic<const engine*> g_engine{nullptr};

int status_cb(const char*, const char*, rte_tel_data* d) {
    const engine* e = g_engine.load(std::memory_order_acquire);
    if (!e) return -ENODEV;
    const auto s = e->status();
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_string(d, "role", std::string(to_string(s.r)).c_str());
    rte_tel_data_add_dict_u64(d, "epoch", s.epoch);
    rte_tel_data_add_dict_int(d, "holds_primary", s.holds[0]);
    rte_tel_data_add_dict_int(d, "holds_monitor", s.holds[1]);
    rte_tel_data_add_dict_string(d, "mac", e->mac().to_string().c_str());
    rte_tel_data_add_dict_u64(d, "watched_primary", s.watched_id);
    rte_tel_data_add_dict_string(d, "fault", std::string(fsm::to_string(s.fault)).c_str());
    rte_tel_data_add_dict_u64(d, "rtt_p50_ns", e->rtt().percentile(50));
    rte_tel_data_add_dict_u64(d, "rtt_p99_ns", e->rtt().percentile(99));
    rte_tel_data_add_dict_u64(d, "rtt_max_ns", e->rtt().max_ns.get());
    rte_tel_data_add_dict_u64(d, "rtt_samples", e->rtt().samples.get());
    return 0;
}

int counters_cb(const char*, const char*, rte_tel_data* d) {
    const engine* e = g_engine.load(std::memory_order_acquire);
    if (!e) return -ENODEV;
    const auto s = e->status();
    const auto& rc = e->role_counters();
    const auto& xc = e->rx_counters();
    rte_tel_data_start_dict(d);
#define HW_X(name) rte_tel_data_add_dict_u64(d, #name, s.c.name);
    HEARTWIRE_FSM_COUNTERS(HW_X)
#undef HW_X
#define HW_X(name) rte_tel_data_add_dict_u64(d, "io_" #name, rc.name.get() + xc.name.get());
    HEARTWIRE_IO_COUNTERS(HW_X)
#undef HW_X
    for (std::size_t i = 1; i < wire::decode_error_count; ++i) {
        const std::string key = "drop_" + std::string(wire::to_string(static_cast<wire::decode_error>(i)));
        rte_tel_data_add_dict_u64(d, key.c_str(), rc.drops[i].get() + xc.drops[i].get());
    }
    return 0;
}

} // namespace

int register_telemetry(const engine* e) noexcept {
    const bool first = g_engine.exchange(e) == nullptr;
    if (!first) return 0;
    int rc = rte_telemetry_register_cmd("/heartwire/status", status_cb, "heartwire role, epoch, addresses, RTT");
    if (rc == 0)
        rc = rte_telemetry_register_cmd("/heartwire/counters", counters_cb,
                                        "heartwire state machine and I/O counters, drops by reason");
    return rc;
}

void unregister_telemetry() noexcept { g_engine.store(nullptr, std::memory_order_release); }

} // namespace heartwire::io
