#pragma once
// Shared mode's kernel addresses: what the kernel holds follows what the engine holds.
//
// Two paths. Edge-triggered, the fast one: the engine's claim and release events, carried
// out by netlink at once and in order (apply). Level-triggered, the repair: reconcile()
// compares the engine's published state with what the kernel holds, and a difference that
// outlives the publication lag (seen at two checks in a row, with no event for the group
// in between) is put right, logged and counted. So a lost event (a full engine -> control
// ring), a failed netlink call, or an address an operator removed by hand does not leave a
// primary that the kernel does not serve, or a kernel that answers for an address the
// engine gave up.
//
// Also the monitor's staged copy of the primary addresses on lo (LVS-DR: served, never
// named in ARP; see stage()), and at start the removal of what a killed run left.
// Control layer: no DPDK. Blocking netlink calls; the control thread only.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "heartwire/config.hpp"
#include "heartwire/engine_link.hpp"
#include "heartwire/net_types.hpp"

namespace heartwire::control {

class netlink;

// One group's addresses, per role (fsm::address_id: primary, monitor).
struct group_addresses {
    std::string iface;                                // the kernel interface that carries them
    std::vector<ipv4_prefix> v4[fsm::address_count];  // the role address first
    std::vector<ipv6_prefix> v6[fsm::address_count];
    bool stages{false};                               // the monitor holds the primary addresses on lo (stage())
};

// Every group's, as the config gives them (each group's interface; nothing staged yet).
std::vector<group_addresses> addresses_of(const cfg::config& c);

class address_keeper {
public:
    struct counters {
        std::uint64_t applied{};     // netlink changes made for the engine's events
        std::uint64_t repairs{};     // differences reconcile() found and put right
        std::uint64_t failures{};    // netlink calls that failed (logged)
        std::uint64_t stale_removed{}; // left by an earlier run, removed at start
        std::uint64_t checks{};      // reconciliation passes
    };
    static constexpr const char* loopback = "lo";
    static constexpr std::chrono::milliseconds check_period{250};

    address_keeper(std::vector<group_addresses> groups, netlink& nl);

    // At start: whatever a killed run left (the addresses on their interfaces, the staged
    // copy on lo) is removed, so the node starts from what its engine holds: nothing.
    void remove_stale();
    // The engine claimed (`add`) or released a role's addresses: every one of them, in
    // order. 0, or the first -errno (each failure logged; reconcile() tries again).
    int apply(std::size_t g, fsm::address_id which, bool add);
    // Shared mode: the kernel must hold the primary address before the engine's first GARP sends
    // the clients here, and the engine sends it at the takeover, without waiting for netlink. So
    // the monitor holds it beforehand, unannounced (LVS-DR): a /32 on lo, which the kernel
    // accepts and serves packets for; the interface ignores ARP requests for it and never names
    // it as an ARP sender (control_loop's quiet_arp_for_lo), so the clients' caches keep pointing at the
    // primary until the GARP. The trade-offs, for as long as a node is monitor:
    //   - its own traffic to the primary address stays local (hooks, health checks, tools run
    //     on the monitor reach the monitor's own services, not the primary's);
    //   - its kernel drops packets whose source is the primary address as martians (a local
    //     source): kernel traffic the primary sends from it to the monitor's subnet address; the
    //     engine's probe replies reach DPDK before the stack and are unaffected. A node address
    //     of its own, first on the interface, is what the kernel picks as source instead;
    //   - a client whose cache still names the monitor (just after a switchover) is served by
    //     the monitor instead of dropped.
    // Every primary address, as a host address on lo (IPv6 on lo is never answered for on
    // the interface by neighbour discovery, as IPv4 with quiet_arp_for_lo is not by ARP).
    // The monitor's copy of the primary addresses on lo: on (stage) when it becomes
    // monitor, off when it leaves for any role but primary, and off once the primary's
    // interface holds them (a claim that failed keeps the copy serving). Only for a group
    // that `stages`; false when a netlink call failed (reconcile() tries again).
    bool stage(std::size_t g, bool on);
    bool staged(std::size_t g) const noexcept { return g < g_.size() && g_[g].staged; }
    // The level-triggered repair, at most every check_period: `published` is the engine's
    // group_statuses() (cfg.groups order), `published_ns` the engine time of that
    // publication (status().now_ns; 0: unknown). A publication that has not moved since the
    // last check (the engine stalled, or stopped calling its turn) is not judged at all: a
    // stale state must never undo an event. `now` is the caller's clock.
    void reconcile(const std::vector<group_status>& published, std::chrono::steady_clock::time_point now,
                   std::uint64_t published_ns = 0);
    bool due(std::chrono::steady_clock::time_point now) const noexcept { return now >= next_check_; }
    // Staging applies to the group (its interface keeps quiet in ARP about lo; set at start).
    void set_stages(std::size_t g, bool on) noexcept {
        if (g < g_.size()) g_[g].a.stages = on;
    }
    // Everything of every group off the kernel: the interfaces' addresses and lo's copies.
    // Returns how many were there. For `heartwired --release-addresses` (ExecStopPost).
    unsigned release_all();

    // The kernel holds it (its add succeeded and it was not released since): what may be
    // announced from the interface (kernel first).
    bool holds(std::size_t g, ipv4_addr a) const noexcept;
    bool holds(std::size_t g, const ipv6_addr& a) const noexcept;
    const counters& stats() const noexcept { return c_; }
    std::size_t groups() const noexcept { return g_.size(); }
    const group_addresses& group(std::size_t g) const { return g_[g].a; }

private:
    struct slot_state {
        bool suspect{false};     // differed at the last check
        std::uint64_t events{};  // the group's event count then
    };
    struct group_state {
        group_addresses a;
        bool staged{false};
        std::vector<ipv4_addr> held4; // added on the interface by us (apply or a repair)
        std::vector<ipv6_addr> held6;
        std::uint64_t events{};      // apply() / stage() calls: a difference seen across one is not a fault
        slot_state slot[fsm::address_count + 1]; // primary, monitor, the staged copy
    };
    int change(group_state& gs, const std::string& ifname, bool add, bool host_routes, std::size_t which);
    std::vector<group_state> g_;
    netlink& nl_;
    counters c_;
    std::chrono::steady_clock::time_point next_check_{};
    std::uint64_t last_published_ns_{0};
};

} // namespace heartwire::control
