#pragma once
// The embedded node's frame classifier (heartwire/embed.hpp, node::is_heartwire): which of
// the frames an application's RX loop receives belong to heartwire. Pure: bytes in, a
// verdict out; no DPDK and nothing the engine writes, so the application may call it on
// every frame of its RX path, on any thread.
//
// heartwire's frames, with exclusive semantics (the engine itself answers ARP, ICMP echo and
// neighbour discovery for the addresses it holds):
//   - its EtherType 0x88B5 (heartbeats, probes, notices);
//   - ARP whose sender or target address is one of the node's IPv4 addresses (either role);
//   - ICMP echo request or reply from or to one of them (first fragment only);
//   - ICMPv6 neighbour solicitation or advertisement whose target is one of the node's IPv6
//     addresses, and ICMPv6 echo from or to one (no extension headers, as the codec);
// each only on one of the node's VLANs (port.vlan, each [[group]]'s vlan; 0: untagged), as
// the engine accepts them.
// Everything else (the application's UDP and TCP, other hosts' ARP) is the application's.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "heartwire/config.hpp"
#include "heartwire/net_types.hpp"

namespace heartwire::embed {

class classifier {
public:
    // No tag taken off by the NIC: the frame is classified from its own bytes.
    static constexpr int no_stripped_tag = -1;

    classifier() = default;
    // Every address of both roles of every group, and the groups' VLANs.
    static classifier from_config(const cfg::config& c);

    void add(ipv4_addr a);
    void add(const ipv6_addr& a);
    void add_vlan(std::uint16_t vid) noexcept; // 0: untagged frames
    // Sorts the address lists; call once after the last add.
    void seal();

    // `frame` as received (from the Ethernet header on). `stripped_vid`: the VLAN id of a tag
    // the NIC already removed (rte_mbuf RTE_MBUF_F_RX_VLAN_STRIPPED), else no_stripped_tag.
    bool match(std::span<const std::byte> frame, int stripped_vid = no_stripped_tag) const noexcept;

    bool has(ipv4_addr a) const noexcept;
    bool has(const ipv6_addr& a) const noexcept;

private:
    bool our_vlan(std::uint16_t vid) const noexcept { return (vlans_[vid >> 6] >> (vid & 63)) & 1u; }

    std::vector<ipv4_addr> v4_;          // sorted after seal()
    std::vector<ipv6_addr> v6_;          // sorted after seal()
    std::array<std::uint64_t, 64> vlans_{}; // bit v: VLAN v is ours (bit 0: untagged)
};

} // namespace heartwire::embed
