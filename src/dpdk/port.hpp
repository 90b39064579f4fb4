#pragma once
// One ethdev port with one RX and one TX queue, its mempool on the port's NUMA socket.

#include <cstdint>
#include <string>
#include <vector>

#include "heartwire/net_types.hpp"

struct rte_mempool;

namespace heartwire::io {

struct port_options {
    std::string device_name; // as registered by DPDK (eal.hpp port_name())
    std::uint32_t rx_desc{1024};
    std::uint32_t tx_desc{1024};
    std::uint32_t mbufs{4095};
    std::uint16_t rx_queues{1};
    // rte_flow isolated mode (port.flow_isolate): only frames of EtherType 0x88B5 reach RX
    // queue 0, one rule per VLAN in `flow_vlans` (0: untagged); the rest stays with the
    // kernel (a bifurcated NIC). A PMD that cannot is a setup_error naming its reason.
    bool flow_isolate{false};
    std::vector<std::uint16_t> flow_vlans{};
};

// A port the application owns (heartwire/embed.hpp): configured, started and stopped by
// it. heartwire transmits on `tx_queue` with mbufs from `pool`.
struct port_attach {
    std::uint16_t id{};
    std::uint16_t tx_queue{};
    rte_mempool* pool{};
    mac_addr mac;           // all-zero: read from the port
};

class port {
public:
    // Finds, configures and starts the port. Throws setup_error ("unknown device ..." when
    // DPDK has no port by that name, listing the ports it has; "port.flow_isolate: ..." with
    // rte_flow's message when the PMD refuses isolated mode or a steering rule).
    explicit port(const port_options& o);
    // Wraps an application's port without configuring, starting or stopping it (stop() and
    // the destructor leave it alone; no link callback is registered). Throws setup_error for
    // a port id DPDK does not have, a TX queue the port was not configured with, or no pool.
    explicit port(const port_attach& a);
    ~port();
    port(const port&) = delete;
    port& operator=(const port&) = delete;

    std::uint16_t id() const noexcept { return id_; }
    std::uint16_t tx_queue() const noexcept { return tx_queue_; } // the queue the engine sends on
    const mac_addr& mac() const noexcept { return mac_; }
    rte_mempool* pool() const noexcept { return pool_; }
    const std::string& driver() const noexcept { return driver_; }
    // True when the PMD raises link-state-change interrupts (a real NIC); then on_link is
    // called from the EAL interrupt thread with the new state. Set before start.
    bool has_lsc() const noexcept { return lsc_; }
    void on_link(void (*cb)(void* arg, bool up), void* arg) noexcept;
    bool link_up() const noexcept;
    void notify_link(bool up) const noexcept {
        if (link_cb_) link_cb_(link_arg_, up);
    }
    void stop() noexcept;
    // Stops link callbacks (before whatever they call goes away). Idempotent.
    void stop_link_events() noexcept;

private:
    std::uint16_t id_{};
    std::uint16_t tx_queue_{0};
    mac_addr mac_;
    rte_mempool* pool_{};
    std::string driver_;
    bool started_{false};
    bool lsc_{false};
    void (*link_cb_)(void*, bool){nullptr};
    void* link_arg_{nullptr};
};

} // namespace heartwire::io
