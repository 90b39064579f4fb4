#pragma once
// Frames for the XDP steering tests, built field by field in network byte order, with
// valid IPv4, ICMP and ICMPv6 checksums (the program checks none; the kernel does when the
// frames are sent for real). Addresses: 169.254.10.0/24 and fd00:6877::/64 only.

#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <vector>

namespace hwtest::xdp {

using bytes = std::vector<std::uint8_t>;
using mac = std::array<std::uint8_t, 6>;
using in6 = std::array<std::uint8_t, 16>;

inline constexpr mac node_mac{0x02, 0x68, 0x77, 0x00, 0x00, 0x01};   // the heartwire node
inline constexpr mac client_mac{0x02, 0x68, 0x77, 0x00, 0x00, 0x0a}; // a client on the segment
inline constexpr mac other_mac{0x02, 0x68, 0x77, 0x00, 0x00, 0x02};  // another node
inline constexpr mac bcast{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

inline constexpr std::uint32_t v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
    return std::uint32_t{a} << 24 | std::uint32_t{b} << 16 | std::uint32_t{c} << 8 | d;
}
inline constexpr std::uint32_t primary4 = v4(169, 254, 10, 100); // watched
inline constexpr std::uint32_t monitor4 = v4(169, 254, 10, 101); // watched
inline constexpr std::uint32_t client4 = v4(169, 254, 10, 10);
inline constexpr std::uint32_t other4 = v4(169, 254, 10, 50); // nobody watches it

inline in6 v6(std::uint16_t last) { // fd00:6877::<last>
    in6 a{0xfd, 0x00, 0x68, 0x77};
    a[14] = static_cast<std::uint8_t>(last >> 8);
    a[15] = static_cast<std::uint8_t>(last);
    return a;
}
inline in6 link_local(std::uint16_t last) { // fe80::<last>
    in6 a{0xfe, 0x80};
    a[14] = static_cast<std::uint8_t>(last >> 8);
    a[15] = static_cast<std::uint8_t>(last);
    return a;
}
inline const in6 unspecified{};

inline void put8(bytes& b, std::uint8_t v) { b.push_back(v); }
inline void put16(bytes& b, std::uint16_t v) {
    b.push_back(static_cast<std::uint8_t>(v >> 8));
    b.push_back(static_cast<std::uint8_t>(v));
}
inline void put32(bytes& b, std::uint32_t v) {
    put16(b, static_cast<std::uint16_t>(v >> 16));
    put16(b, static_cast<std::uint16_t>(v));
}
template <std::size_t N>
void put(bytes& b, const std::array<std::uint8_t, N>& a) {
    b.insert(b.end(), a.begin(), a.end());
}
inline void put(bytes& b, const bytes& tail) { b.insert(b.end(), tail.begin(), tail.end()); }

// RFC 1071 one's-complement sum, folded, not yet inverted.
inline std::uint32_t sum16(const std::uint8_t* p, std::size_t n, std::uint32_t acc = 0) {
    for (std::size_t i = 0; i + 1 < n; i += 2) acc += std::uint32_t{p[i]} << 8 | p[i + 1];
    if (n & 1) acc += std::uint32_t{p[n - 1]} << 8;
    while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
    return acc;
}
inline void set_csum(bytes& b, std::size_t at, std::uint32_t folded) {
    const auto c = static_cast<std::uint16_t>(~folded);
    b[at] = static_cast<std::uint8_t>(c >> 8);
    b[at + 1] = static_cast<std::uint8_t>(c);
}

// Ethernet header; each tpid adds a tag (VID 10, 20, ...) before `type`.
inline bytes eth(std::uint16_t type, const mac& dst = node_mac, const mac& src = client_mac,
                 std::initializer_list<std::uint16_t> tpids = {}) {
    bytes b;
    put(b, dst);
    put(b, src);
    std::uint16_t vid = 10;
    for (auto t : tpids) {
        put16(b, t);
        put16(b, vid);
        vid = static_cast<std::uint16_t>(vid + 10);
    }
    put16(b, type);
    return b;
}

inline bytes arp(std::uint16_t op, const mac& sha, std::uint32_t spa, const mac& tha, std::uint32_t tpa,
                 std::uint16_t htype = 1) {
    bytes b;
    put16(b, htype);
    put16(b, 0x0800);
    put8(b, 6);
    put8(b, 4);
    put16(b, op);
    put(b, sha);
    put32(b, spa);
    put(b, tha);
    put32(b, tpa);
    return b;
}

// IPv4 header + payload. options: extra header bytes (a multiple of 4), frag: the
// flags/fragment-offset field.
inline bytes ipv4(std::uint8_t proto, std::uint32_t src, std::uint32_t dst, const bytes& payload,
                  const bytes& options = {}, std::uint16_t frag = 0x4000) {
    bytes b;
    const auto ihl = static_cast<std::uint8_t>(5 + options.size() / 4);
    put8(b, static_cast<std::uint8_t>(0x40 | ihl));
    put8(b, 0);
    put16(b, static_cast<std::uint16_t>(ihl * 4 + payload.size()));
    put16(b, 0x1234);
    put16(b, frag);
    put8(b, 64);
    put8(b, proto);
    put16(b, 0);
    put32(b, src);
    put32(b, dst);
    put(b, options);
    set_csum(b, 10, sum16(b.data(), b.size()));
    put(b, payload);
    return b;
}

inline bytes icmp_echo(std::uint8_t type, std::uint16_t id, std::uint16_t seq = 1, std::size_t data = 16) {
    bytes b;
    put8(b, type);
    put8(b, 0);
    put16(b, 0);
    put16(b, id);
    put16(b, seq);
    for (std::size_t i = 0; i < data; ++i) put8(b, static_cast<std::uint8_t>(i));
    set_csum(b, 2, sum16(b.data(), b.size()));
    return b;
}

inline bytes udp(std::uint16_t sport, std::uint16_t dport, const bytes& payload) {
    bytes b;
    put16(b, sport);
    put16(b, dport);
    put16(b, static_cast<std::uint16_t>(8 + payload.size()));
    put16(b, 0); // IPv4 only: no checksum
    put(b, payload);
    return b;
}

inline bytes tcp_syn(std::uint16_t sport, std::uint16_t dport) {
    bytes b;
    put16(b, sport);
    put16(b, dport);
    put32(b, 1000); // seq
    put32(b, 0);    // ack
    put8(b, 0x50);  // data offset 5
    put8(b, 0x02);  // SYN
    put16(b, 64240);
    put16(b, 0); // checksum (not checked by the program)
    put16(b, 0);
    return b;
}

// IPv6 header + payload; ICMPv6 payloads get their checksum over the pseudo-header.
inline bytes ipv6(std::uint8_t next, const in6& src, const in6& dst, bytes payload, std::uint8_t hops = 255) {
    bytes b;
    put32(b, 0x60000000);
    put16(b, static_cast<std::uint16_t>(payload.size()));
    put8(b, next);
    put8(b, hops);
    put(b, src);
    put(b, dst);
    if (next == 58 && payload.size() >= 4) {
        payload[2] = payload[3] = 0;
        std::uint32_t acc = sum16(src.data(), 16);
        acc = sum16(dst.data(), 16, acc);
        acc += static_cast<std::uint32_t>(payload.size()) + 58;
        set_csum(payload, 2, sum16(payload.data(), payload.size(), acc));
    }
    put(b, payload);
    return b;
}

// Neighbour solicitation (135) or advertisement (136) with a link-layer address option.
inline bytes icmp6_nd(std::uint8_t type, const in6& target, const mac& lladdr, bool with_option = true) {
    bytes b;
    put8(b, type);
    put8(b, 0);
    put16(b, 0);
    put32(b, type == 136 ? 0x20000000u : 0u); // NA: override
    put(b, target);
    if (with_option) {
        put8(b, type == 136 ? 2 : 1); // target / source link-layer address
        put8(b, 1);
        put(b, lladdr);
    }
    return b;
}

inline bytes cat(bytes a, const bytes& b) {
    put(a, b);
    return a;
}

} // namespace hwtest::xdp
