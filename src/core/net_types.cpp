#include "heartwire/net_types.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstdio>
#include <cstring>

namespace heartwire {

namespace {

std::optional<unsigned> parse_uint(std::string_view s, int base, unsigned max) noexcept {
    if (s.empty()) return std::nullopt;
    // No leading zeros in decimal: inet_aton (ping, many scripts) reads "010" as octal 8,
    // so accepting it as 10 would make the same config text name two different addresses.
    if (base == 10 && s.size() > 1 && s[0] == '0') return std::nullopt;
    unsigned v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
    if (ec != std::errc{} || p != s.data() + s.size() || v > max) return std::nullopt;
    return v;
}

} // namespace

std::string mac_addr::to_string() const {
    char buf[18];
    std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
    return buf;
}

std::optional<mac_addr> mac_addr::parse(std::string_view s) noexcept {
    mac_addr m;
    char sep = 0; // ':' or '-', the same one throughout
    for (int i = 0; i < 6; ++i) {
        if (s.size() < 2) return std::nullopt;
        auto v = parse_uint(s.substr(0, 2), 16, 0xff);
        if (!v) return std::nullopt;
        m.b[i] = static_cast<std::uint8_t>(*v);
        s.remove_prefix(2);
        if (i < 5) {
            if (s.empty() || (s[0] != ':' && s[0] != '-')) return std::nullopt;
            if (sep == 0) sep = s[0];
            if (s[0] != sep) return std::nullopt;
            s.remove_prefix(1);
        }
    }
    if (!s.empty()) return std::nullopt;
    return m;
}

std::string ipv4_addr::to_string() const {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", v >> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff);
    return buf;
}

std::optional<ipv4_addr> ipv4_addr::parse(std::string_view s) noexcept {
    std::uint32_t out = 0;
    for (int i = 0; i < 4; ++i) {
        auto dot = s.find('.');
        auto part = i < 3 ? s.substr(0, dot) : s;
        if (i < 3 && dot == std::string_view::npos) return std::nullopt;
        if (part.size() > 3) return std::nullopt;
        auto v = parse_uint(part, 10, 255);
        if (!v) return std::nullopt;
        out = (out << 8) | *v;
        if (i < 3) s.remove_prefix(dot + 1);
    }
    return ipv4_addr{out};
}

std::string ipv4_prefix::to_string() const { return addr.to_string() + "/" + std::to_string(len); }

std::optional<ipv4_prefix> ipv4_prefix::parse(std::string_view s) noexcept {
    auto slash = s.find('/');
    auto a = ipv4_addr::parse(s.substr(0, slash));
    if (!a) return std::nullopt;
    if (slash == std::string_view::npos) return ipv4_prefix{*a, 32};
    auto l = parse_uint(s.substr(slash + 1), 10, 32);
    if (!l) return std::nullopt;
    return ipv4_prefix{*a, static_cast<std::uint8_t>(*l)};
}

// IPv6 text is parsed and printed by the C library, not on the hot path: the same code that
// reads `ip -6 addr` input and prints its output, so a config and `ip` agree by construction.
std::string ipv6_addr::to_string() const {
    char buf[INET6_ADDRSTRLEN];
    if (::inet_ntop(AF_INET6, b.data(), buf, sizeof buf) == nullptr) return "?"; // cannot fail for AF_INET6
    return buf;
}

std::optional<ipv6_addr> ipv6_addr::parse(std::string_view s) noexcept {
    // inet_pton reads a C string: a NUL inside the view would make it accept a prefix of
    // the text, so refuse one; the longest valid text is 45 characters (INET6_ADDRSTRLEN - 1).
    char buf[INET6_ADDRSTRLEN];
    if (s.size() >= sizeof buf || s.find('\0') != std::string_view::npos) return std::nullopt;
    std::memcpy(buf, s.data(), s.size());
    buf[s.size()] = '\0';
    ipv6_addr a;
    if (::inet_pton(AF_INET6, buf, a.b.data()) != 1) return std::nullopt;
    return a;
}

std::string ipv6_prefix::to_string() const {
    std::string s = addr.to_string();
    s.append("/").append(std::to_string(len));
    return s;
}

std::optional<ipv6_prefix> ipv6_prefix::parse(std::string_view s) noexcept {
    auto slash = s.find('/');
    auto a = ipv6_addr::parse(s.substr(0, slash));
    if (!a) return std::nullopt;
    if (slash == std::string_view::npos) return ipv6_prefix{*a, 128};
    auto l = parse_uint(s.substr(slash + 1), 10, 128);
    if (!l) return std::nullopt;
    return ipv6_prefix{*a, static_cast<std::uint8_t>(*l)};
}

std::optional<host_port> parse_host_port(std::string_view s) noexcept {
    host_port h;
    std::string_view port;
    if (!s.empty() && s.front() == '[') {
        const auto close = s.find("]:");
        if (close == std::string_view::npos) return std::nullopt;
        h.v6 = true;
        h.addr = std::string(s.substr(1, close - 1));
        port = s.substr(close + 2);
    } else {
        const auto colon = s.rfind(':');
        if (colon == std::string_view::npos || s.find(':') != colon) return std::nullopt;
        h.addr = std::string(s.substr(0, colon));
        port = s.substr(colon + 1);
    }
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
    unsigned long v = 0;
    for (const char c : port) v = v * 10 + static_cast<unsigned long>(c - '0');
    if (v > 65535) return std::nullopt;
    h.port = static_cast<std::uint16_t>(v);
    const bool ok = h.v6 ? ipv6_addr::parse(h.addr).has_value() : ipv4_addr::parse(h.addr).has_value();
    if (!ok) return std::nullopt;
    return h;
}

} // namespace heartwire
