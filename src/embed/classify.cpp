#include "embed/classify.hpp"

#include <algorithm>

#include "heartwire/wire.hpp"

namespace heartwire::embed {

namespace {

// Offsets inside the frame (after the Ethernet header and any 802.1Q tag, at `l3`).
constexpr std::size_t arp_spa = 14, arp_tpa = 24;            // RFC 826, Ethernet/IPv4
constexpr std::size_t ip4_frag = 6, ip4_proto = 9, ip4_src = 12, ip4_dst = 16;
constexpr std::size_t ip6_next = 6, ip6_src = 8, ip6_dst = 24;
constexpr std::size_t nd_target = 8;                         // RFC 4861 4.3, 4.4
constexpr std::uint16_t ip4_frag_offset_mask = 0x1fff;

ipv4_addr v4_at(const std::byte* p) noexcept { return ipv4_addr{wire::load_be32(p)}; }

ipv6_addr v6_at(const std::byte* p) noexcept {
    ipv6_addr a;
    for (std::size_t i = 0; i < 16; ++i) a.b[i] = static_cast<std::uint8_t>(p[i]);
    return a;
}

} // namespace

classifier classifier::from_config(const cfg::config& c) {
    classifier k;
    for (const auto& g : c.groups) {
        for (const bool primary : {true, false}) {
            for (const auto& p : cfg::role_v4(g.addresses, primary)) k.add(p.addr);
            for (const auto& p : cfg::role_v6(g.addresses, primary)) k.add(p.addr);
        }
        k.add_vlan(static_cast<std::uint16_t>(g.vlan));
    }
    k.seal();
    return k;
}

void classifier::add(ipv4_addr a) { v4_.push_back(a); }
void classifier::add(const ipv6_addr& a) { v6_.push_back(a); }
void classifier::add_vlan(std::uint16_t vid) noexcept {
    vid &= 0xfff;
    vlans_[vid >> 6] |= std::uint64_t{1} << (vid & 63);
}

void classifier::seal() {
    std::sort(v4_.begin(), v4_.end());
    v4_.erase(std::unique(v4_.begin(), v4_.end()), v4_.end());
    std::sort(v6_.begin(), v6_.end());
    v6_.erase(std::unique(v6_.begin(), v6_.end()), v6_.end());
}

bool classifier::has(ipv4_addr a) const noexcept { return std::binary_search(v4_.begin(), v4_.end(), a); }
bool classifier::has(const ipv6_addr& a) const noexcept { return std::binary_search(v6_.begin(), v6_.end(), a); }

bool classifier::match(std::span<const std::byte> f, int stripped_vid) const noexcept {
    const std::size_t n = f.size();
    const std::byte* p = f.data();
    if (n < wire::eth_header::size()) return false;
    std::size_t l3 = wire::eth_header::size();
    std::uint16_t type = wire::load_be16(p + 12);
    std::uint16_t vid = stripped_vid >= 0 ? static_cast<std::uint16_t>(stripped_vid & 0xfff) : 0;
    if (stripped_vid < 0 && type == wire::ethertype_vlan) {
        if (n < l3 + 4) return false;
        vid = wire::load_be16(p + 14) & 0xfff; // 0: priority-tagged, which is untagged
        type = wire::load_be16(p + 16);
        l3 += 4;
    }
    if (!our_vlan(vid)) return false;
    const std::byte* h = p + l3;
    const std::size_t len = n - l3;
    switch (type) {
    case wire::ethertype_heartwire:
        return true;
    case wire::ethertype_arp:
        return len >= wire::arp_msg::size() && (has(v4_at(h + arp_spa)) || has(v4_at(h + arp_tpa)));
    case wire::ethertype_ipv4: {
        if (len < wire::ipv4_min_header_size) return false;
        const std::size_t ihl = (std::to_integer<std::size_t>(h[0]) & 0x0f) * 4;
        if (ihl < wire::ipv4_min_header_size || len < ihl + wire::icmp_header_size) return false;
        if (std::to_integer<std::uint8_t>(h[ip4_proto]) != wire::ip_proto_icmp) return false;
        if ((wire::load_be16(h + ip4_frag) & ip4_frag_offset_mask) != 0) return false;
        const auto icmp_type = std::to_integer<std::uint8_t>(h[ihl]);
        if (icmp_type != wire::icmp_echo_request && icmp_type != wire::icmp_echo_reply) return false;
        return has(v4_at(h + ip4_dst)) || has(v4_at(h + ip4_src));
    }
    case wire::ethertype_ipv6: {
        if (v6_.empty() || len < wire::ipv6_header_size + wire::icmp6_header_size) return false;
        if (std::to_integer<std::uint8_t>(h[ip6_next]) != wire::ip_proto_icmpv6) return false;
        const std::byte* icmp = h + wire::ipv6_header_size;
        switch (std::to_integer<std::uint8_t>(icmp[0])) {
        case wire::icmp6_neighbor_solicit:
        case wire::icmp6_neighbor_advert:
            return len >= wire::ipv6_header_size + wire::nd_min_size && has(v6_at(icmp + nd_target));
        case wire::icmp6_echo_request:
        case wire::icmp6_echo_reply:
            return has(v6_at(h + ip6_dst)) || has(v6_at(h + ip6_src));
        default:
            return false;
        }
    }
    default:
        return false;
    }
}

} // namespace heartwire::embed
