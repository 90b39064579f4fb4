#pragma once
// The control thread's handle on heartwire's XDP steering program (bpf/heartwire_steer.bpf.c)
// once the af_xdp PMD has attached it (devarg xdp_prog=): which addresses it watches, the
// engine's echo id, and what it decided. The program passes to the kernel everything else,
// so a service on the address heartwire moves keeps working. Uses libbpf, not DPDK.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "heartwire/net_types.hpp"
#include "heartwire_steer.h"

namespace heartwire::io {

// The program's decisions, in hw_stats order (HW_STEER_COUNTERS in heartwire_steer.h).
enum class steer_counter : std::uint8_t {
#define HW_STEER_CXX_ENUM(name) name,
    HW_STEER_COUNTERS(HW_STEER_CXX_ENUM)
#undef HW_STEER_CXX_ENUM
};
inline constexpr std::size_t steer_counter_count = HW_STEER_NR_COUNTERS;
const char* to_string(steer_counter c) noexcept;

// Summed over CPUs.
struct steer_stats {
    std::array<std::uint64_t, steer_counter_count> n{};
    std::uint64_t operator[](steer_counter c) const noexcept { return n[static_cast<std::size_t>(c)]; }
};

using ipv6_bytes = std::array<std::uint8_t, 16>; // as on the wire

class xdp_steer {
public:
    // Finds heartwire_steer attached to ifname (driver mode, else generic) and opens its
    // maps. Throws std::runtime_error naming the interface when it has no XDP program,
    // another program, or the program lacks a map; std::system_error when a bpf() call
    // fails (EPERM: not root / no CAP_BPF).
    static xdp_steer open(const std::string& ifname);

    xdp_steer(xdp_steer&& o) noexcept;
    xdp_steer& operator=(xdp_steer&& o) noexcept;
    xdp_steer(const xdp_steer&) = delete;
    xdp_steer& operator=(const xdp_steer&) = delete;
    ~xdp_steer();

    // Watched addresses. Adding a present one or removing an absent one is a no-op; add
    // throws std::system_error when the map is full (E2BIG).
    void add(ipv4_addr a);
    void remove(ipv4_addr a);
    bool contains(ipv4_addr a) const;
    void add(const ipv6_bytes& a);
    void remove(const ipv6_bytes& a);
    bool contains(const ipv6_bytes& a) const;

    // The id of the engine's echo requests, whose replies are steered; 0 steers none.
    void set_icmp_id(std::uint16_t id);
    std::uint16_t icmp_id() const;

    steer_stats stats() const;

    const std::string& ifname() const noexcept { return ifname_; }
    std::uint32_t prog_id() const noexcept { return prog_id_; }
    // "driver" (native XDP) or "generic" (skb mode): generic costs a copy per frame.
    const char* mode() const noexcept { return generic_ ? "generic" : "driver"; }

private:
    xdp_steer() = default;
    void close_all() noexcept;

    std::string ifname_;
    std::uint32_t prog_id_{};
    bool generic_{false};
    int prog_fd_{-1};
    int addrs4_fd_{-1};
    int addrs6_fd_{-1};
    int conf_fd_{-1};
    int stats_fd_{-1};
};

} // namespace heartwire::io
