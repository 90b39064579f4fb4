#pragma once
// heartwire embedded in a DPDK application: the same state machine and engine as heartwired,
// no daemon. The application owns EAL, the port and the poll loop; it hands heartwire the
// frames that are heartwire's, lets it transmit on a TX queue, and is told when it gains or
// loses an address.
//
//   rte_eal_init(...);                      // the application's, never heartwire's
//   ... configure and start the port: promiscuous or allmulticast on (heartwire's frames go
//       to the multicast group 03:68:77:00:00:01) ...
//   heartwire::embed::node hw(heartwire::embed::config_file{"/etc/heartwire/node.toml"},
//                             {.port_id = 0, .tx_queue = 0, .mempool = pool});
//   hw.on_change([&](const heartwire::embed::change& c) { serving = c.gained_primary || ...; });
//   hw.start_control();                     // control socket, hooks, logs, key reload
//   for (;;) {                              // the application's lcore
//       n = rte_eth_rx_burst(0, 0, pkts, 32);
//       for each pkt: hw.is_heartwire(pkt) ? keep for hw.rx(...) : serve it (if hw.holds_primary())
//       hw.rx(mine, k);
//       hw.poll();                          // every turn, on this same lcore
//   }
//   hw.stop();                              // on that lcore: releases the addresses, tells the peers
//
// Threading: is_heartwire() is pure and may run anywhere. rx(), poll() and stop() run on one
// lcore (the same one each time), and every callback runs there, inside poll(). The control
// side (start_control or run_control) runs on its own thread. holds_primary(),
// holds_monitor(), status() and status_json() may be called from any thread.
//
// The TOML config is heartwired's (docs/configuration.md), with these differences: [port]
// eal is ignored (the application started EAL) and [port] device is optional: when it
// names an af_xdp or af_packet vdev its iface= is the kernel interface whose carrier the
// control side watches; [port] rx_desc, tx_desc and mbufs and the [engine] scheduling keys
// are not used (the application owns the port and the lcore); engine.mode must be
// run-to-completion.

#if __cplusplus < 202002L
#error "heartwire/embed.hpp needs C++20 (-std=c++20)"
#endif

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "heartwire/net_types.hpp"
#include "heartwire/roles.hpp"

struct rte_mbuf;
struct rte_mempool;

namespace heartwire::embed {

// The config, as a file or as TOML text.
struct config_file {
    std::string path;
};
struct config_text {
    std::string toml;
};

// The application's port, as heartwire is to use it. heartwire never configures, starts or
// stops it, and never receives on it: frames reach it only through rx().
struct attach {
    std::uint16_t port_id{0};
    // The queue heartwire transmits on, from the lcore that calls rx() and poll(). It may be
    // the application's own queue on that lcore; no other thread may transmit on it.
    std::uint16_t tx_queue{0};
    // Where the frames heartwire sends come from (a few at a time: probes, ARP, GARP bursts).
    rte_mempool* mempool{nullptr};
    // The port's MAC; all-zero: read with rte_eth_macaddr_get.
    mac_addr mac{};
};

enum class address_role : std::uint8_t { primary = 0, monitor = 1 };

// Every address of one role, as configured: they are gained and lost together.
struct addresses {
    std::span<const ipv4_prefix> v4;
    std::span<const ipv6_prefix> v6;
};

// What changed in one group in one poll() (or in the rx() before it).
struct change {
    std::size_t group{0};    // index of the [[group]] (0: the config's only group)
    std::uint32_t group_id{}; // its id on the wire
    role from{role::init};
    role to{role::init};
    std::uint64_t epoch{};
    bool gained_primary{false};
    bool lost_primary{false};
    bool gained_monitor{false};
    bool lost_monitor{false};
    addresses primary; // the addresses gained_primary / lost_primary are about
    addresses monitor;
};

// Group 0's role and addresses; the counters summed over every group.
struct status {
    role r{role::init};
    std::uint64_t epoch{};
    bool holds_primary{false};
    bool holds_monitor{false};
    std::uint32_t watched_id{};      // monitor: the primary it watches
    bool detector_armed{false};      // monitor: that primary has answered, its window applies
    std::uint64_t last_rtt_ns{};     // the newest answered probe's round trip
    std::uint64_t takeovers{};
    std::uint64_t step_downs{};
    std::uint64_t false_takeovers{};
    std::uint64_t probes_sent{};
    std::uint64_t answers{};
    std::uint64_t garps_sent{};
    std::uint64_t arp_replies{};
    std::uint64_t echo_replies{};
    std::uint64_t rx_packets{};      // frames handed over by rx()
    std::uint64_t rx_invalid{};      // of which not decodable (dropped, counted by reason in status_json)
    std::uint64_t tx_packets{};
    std::uint64_t tx_dropped{};      // the TX queue did not take them
    std::uint64_t tx_nombuf{};       // the mempool was empty
};

class node {
public:
    // Parses and validates the config, attaches to the port and loads the keys. Throws
    // std::runtime_error naming every config error, or the cause (an unknown port id, a
    // queue the port does not have, no mempool, a key file that cannot be used, a control
    // socket that cannot be bound). After rte_eal_init; on any thread.
    node(const config_file& cfg, const attach& a);
    node(const config_text& cfg, const attach& a);
    // stop() if not done (then on the poll lcore, or once it no longer polls), without the
    // change callback: call stop() first to hear of the loss.
    ~node();
    node(node&&) noexcept;
    node& operator=(node&&) noexcept;
    node(const node&) = delete;
    node& operator=(const node&) = delete;

    // The classifier for the application's RX loop: true for heartwire's frames (its
    // EtherType; ARP, ICMP echo, IPv6 neighbour discovery and ICMPv6 echo about the node's
    // addresses; on its VLAN). A few loads, no state the poll side writes.
    bool is_heartwire(const rte_mbuf* m) const noexcept;
    // Hands heartwire its frames; it takes ownership and frees every one. Poll lcore.
    void rx(rte_mbuf* const* pkts, std::uint16_t n) noexcept;
    // One engine turn: control commands, timers, detection, the TX flush; then the change
    // callback if the role or the addresses moved. Call it every loop turn, on the lcore
    // that calls rx(), after handing over what that turn received. `rx_empty_ns` (now_ns()'s
    // clock): when the application last found its RX queue empty (an rx_burst that
    // returned fewer than it asked for). The monitor judges the primary's silence only up
    // to then, so answers still queued behind the application's own traffic never count as
    // silence. 0 means "now": the application drained its queue this turn. Returns when
    // heartwire next has something to do, on now_ns()'s clock: the application may sleep
    // until then if it has nothing else to do.
    std::uint64_t poll(std::uint64_t rx_empty_ns = 0) noexcept;
    // heartwire's clock (TSC, in ns).
    std::uint64_t now_ns() const noexcept;

    // The address groups of the config ([[group]] blocks; one without them), by index.
    std::size_t group_count() const noexcept;
    std::uint32_t group_id(std::size_t group) const noexcept;
    // Polled flags, from any thread.
    bool holds_primary(std::size_t group = 0) const noexcept;
    bool holds_monitor(std::size_t group = 0) const noexcept;
    // Called on the poll lcore, inside poll(), once per group whose role or addresses
    // changed. Set it before the first poll() (or from the poll lcore).
    void on_change(std::function<void(const change&)> cb);
    addresses addresses_of(address_role r, std::size_t group = 0) const noexcept;

    // From any thread; refreshed by the engine at least once a millisecond.
    embed::status status() const noexcept;
    // heartwirectl's `status json`, without what only the control side knows (takeover
    // records, notes, hooks): those come through the control socket.
    std::string status_json() const;

    // The link of the port went up or down (the application's LSC handler, any thread): a
    // primary without a link lets go at once and a monitor without one never takes over.
    // Ports with a kernel interface named in [port] device are watched by the control side.
    void set_link(bool up) noexcept;

    // The control side: the control socket (heartwirectl --socket <control.socket> status,
    // switchover, fault, clear, inflight), hooks, logs, health checks, key-file reload and,
    // in shared mode, the kernel's addresses. start_control() runs it on an EAL control
    // thread (rte_ctrl_thread_create: off the lcores); run_control() runs it on the calling
    // thread until stop(). Without either, heartwire still detects, takes over and answers.
    void start_control();
    void run_control();

    // Poll lcore, after the last poll(): the machine releases what it holds, sends its
    // release frame (a monitor takes over at once) and the change callback reports the
    // loss; then the control side finishes (hooks, kernel addresses) and stops. Idempotent.
    void stop() noexcept;

    struct impl;

private:
    std::unique_ptr<impl> p_;
};

} // namespace heartwire::embed
