#pragma once
// Addresses as values. Kept free of any OS or DPDK header so the core stays portable.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace heartwire {

struct mac_addr {
    std::array<std::uint8_t, 6> b{};

    static constexpr mac_addr broadcast() noexcept { return {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}; }
    // Locally administered multicast group every heartwire node listens on (03:68:77 = "hw").
    static constexpr mac_addr heartwire_group() noexcept { return {{0x03, 0x68, 0x77, 0x00, 0x00, 0x01}}; }

    constexpr bool is_zero() const noexcept {
        for (auto x : b)
            if (x != 0) return false;
        return true;
    }
    constexpr bool is_multicast() const noexcept { return (b[0] & 0x01) != 0; }
    constexpr bool operator==(const mac_addr&) const noexcept = default;

    std::string to_string() const;
    static std::optional<mac_addr> parse(std::string_view s) noexcept;
};

// IPv4 address in host byte order; the codec converts at the wire.
struct ipv4_addr {
    std::uint32_t v{};

    constexpr bool is_zero() const noexcept { return v == 0; }
    constexpr auto operator<=>(const ipv4_addr&) const noexcept = default;

    std::string to_string() const;
    static std::optional<ipv4_addr> parse(std::string_view s) noexcept;
};

struct ipv4_prefix {
    ipv4_addr addr;
    std::uint8_t len{32};

    constexpr bool operator==(const ipv4_prefix&) const noexcept = default;
    constexpr bool contains(ipv4_addr a) const noexcept {
        if (len == 0) return true;
        const std::uint32_t mask = len >= 32 ? 0xffffffffu : ~((1u << (32 - len)) - 1);
        return (a.v & mask) == (addr.v & mask);
    }

    std::string to_string() const;
    // "a.b.c.d/len"; a bare address means /32.
    static std::optional<ipv4_prefix> parse(std::string_view s) noexcept;
};

// IPv6 address in network byte order: b[0] is the first byte on the wire and in the text.
struct ipv6_addr {
    std::array<std::uint8_t, 16> b{};

    // ff02::1, every node on the link (unsolicited neighbour advertisements go here).
    static constexpr ipv6_addr all_nodes() noexcept { return {{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}}; }

    constexpr bool is_zero() const noexcept {
        for (auto x : b)
            if (x != 0) return false;
        return true;
    }
    constexpr bool is_multicast() const noexcept { return b[0] == 0xff; }                     // ff00::/8
    constexpr bool is_link_local() const noexcept { return b[0] == 0xfe && (b[1] & 0xc0) == 0x80; } // fe80::/10
    constexpr bool is_ula() const noexcept { return (b[0] & 0xfe) == 0xfc; }                  // fc00::/7
    constexpr bool is_loopback() const noexcept {
        for (std::size_t i = 0; i < 15; ++i)
            if (b[i] != 0) return false;
        return b[15] == 1;
    }
    // ff02::1:ff00:0/104, the groups neighbour solicitations are sent to (RFC 4291 2.7.1).
    constexpr bool is_solicited_node() const noexcept {
        for (std::size_t i = 2; i < 11; ++i)
            if (b[i] != 0) return false;
        return b[0] == 0xff && b[1] == 0x02 && b[11] == 0x01 && b[12] == 0xff;
    }
    // ff02::1:ffXX:XXXX with this address's low 24 bits: where a solicitation for it goes.
    constexpr ipv6_addr solicited_node() const noexcept {
        return {{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, b[13], b[14], b[15]}};
    }
    // 33:33 and the low 32 bits (RFC 2464 7): the Ethernet group this multicast address maps to.
    constexpr mac_addr multicast_mac() const noexcept { return {{0x33, 0x33, b[12], b[13], b[14], b[15]}}; }
    constexpr auto operator<=>(const ipv6_addr&) const noexcept = default;

    // RFC 5952 text as inet_ntop (and so `ip -6`) writes it: lowercase, longest zero run as "::".
    std::string to_string() const;
    // What inet_pton(AF_INET6) accepts: "::" compression, 1-4 hex digits per group, either
    // case, an IPv4 tail ("::ffff:192.0.2.1"). No zone ("fe80::1%eth0"), no brackets, no spaces.
    static std::optional<ipv6_addr> parse(std::string_view s) noexcept;
};

struct ipv6_prefix {
    ipv6_addr addr;
    std::uint8_t len{128};

    constexpr bool operator==(const ipv6_prefix&) const noexcept = default;
    constexpr bool contains(const ipv6_addr& a) const noexcept {
        const std::size_t full = len >= 128 ? 16 : len / 8u;
        for (std::size_t i = 0; i < full; ++i)
            if (a.b[i] != addr.b[i]) return false;
        if (full == 16 || len % 8 == 0) return true;
        const auto mask = static_cast<std::uint8_t>(0xff << (8 - len % 8));
        return (a.b[full] & mask) == (addr.b[full] & mask);
    }

    std::string to_string() const;
    // "addr/len", len 0..128; a bare address means /128. Host bits are kept, as for IPv4.
    static std::optional<ipv6_prefix> parse(std::string_view s) noexcept;
};

// "ADDR:PORT" with an IPv4 literal, or "[ADDR]:PORT" with an IPv6 one (a listen address:
// [control] metrics). nullopt when malformed; the port may be 0.
struct host_port {
    std::string addr; // the literal, without brackets
    bool v6{false};
    std::uint16_t port{};
};
std::optional<host_port> parse_host_port(std::string_view s) noexcept;

} // namespace heartwire
