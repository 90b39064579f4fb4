#pragma once
// The status JSON's text, through nlohmann-json (issue 11 item 4): every string escaped
// (control characters as \u00XX) and bytes that are not UTF-8 (an interface name, a
// hook's words in a notice, a fault detail) replaced by U+FFFD, so a strict parser reads
// the whole document. No DPDK here: the unit tests run it without EAL.

#include <cstdlib>
#include <deque>
#include <string>

#include <nlohmann/json.hpp>

namespace heartwire::app {

// Ordered: keys come out in the order they are set (tools that read the first "role" find
// the node's own; the groups come last).
using json = nlohmann::ordered_json;

// Compact text. error_handler_t::replace: invalid UTF-8 becomes U+FFFD instead of the
// type_error the default handler throws on a status request.
inline std::string json_text(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// The control loop's notices, "<wall ns> <text>" newest last, as
// [{"wall_ns": <number>, "text": "<text>"}].
inline json notices_json(const std::deque<std::string>& notes) {
    json out = json::array();
    for (const auto& n : notes) {
        const auto sp = n.find(' ');
        out.push_back({{"wall_ns", std::strtoull(n.substr(0, sp).c_str(), nullptr, 10)},
                       {"text", sp == std::string::npos ? std::string{} : n.substr(sp + 1)}});
    }
    return out;
}

} // namespace heartwire::app
