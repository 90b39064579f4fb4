#pragma once
// Addresses as values. Kept free of any OS or DPDK header so the core stays portable.

#include <array>
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

} // namespace heartwire
