#pragma once
// Byte-string helpers the codec tests share: golden frames written as hex.

#include <gtest/gtest.h>

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hwtest {

using bytes = std::vector<std::byte>;

// Hex digits, with spaces, newlines and '|' allowed as field separators.
inline bytes hex(std::string_view s) {
    bytes out;
    int hi = -1;
    for (char c : s) {
        int v;
        if (c >= '0' && c <= '9') v = c - '0';
        else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
        else if (c == ' ' || c == '\n' || c == '|') continue;
        else {
            ADD_FAILURE() << "bad hex character '" << c << "'";
            continue;
        }
        if (hi < 0) hi = v;
        else {
            out.push_back(std::byte(hi << 4 | v));
            hi = -1;
        }
    }
    EXPECT_LT(hi, 0) << "odd number of hex digits";
    return out;
}

inline std::string to_hex(std::span<const std::byte> b) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s;
    for (std::size_t i = 0; i < b.size(); ++i) {
        if (i != 0 && i % 2 == 0) s += ' ';
        const auto v = std::to_integer<unsigned>(b[i]);
        s += digits[v >> 4];
        s += digits[v & 15];
    }
    return s;
}

} // namespace hwtest
