#pragma once
// Small text helpers of the control side's log lines and answers.

#include <cstdio>
#include <string>
#include <string_view>

namespace heartwire::control {

// printf into a std::string (one log line: up to 511 characters).
template <class... A>
std::string fmt(const char* f, A... args) {
    char buf[512];
    std::snprintf(buf, sizeof buf, f, args...);
    return buf;
}

inline std::string s(std::string_view v) { return std::string(v); }

} // namespace heartwire::control
