// libFuzzer target: the config reader (toml++ and heartwire's own reader) and validate().
//
// Properties, each a crash (abort) when broken:
//  - parse() never crashes or lets an exception out, whatever the text;
//  - it returns a config exactly when it returns no error, and every error says something;
//  - a config parse() accepted passes validate() on its own (the two passes agree: the
//    daemon re-checks configs built any other way with validate() alone);
//  - the state machine's parameters derived from it keep the rules the machine relies on.
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "heartwire/config.hpp"
#include "heartwire/fsm.hpp"

namespace {

using namespace heartwire;

[[noreturn]] void broken(const char* what, std::string_view detail = {}) {
    std::fprintf(stderr, "fuzz_config: %s%s%.*s\n", what, detail.empty() ? "" : ": ", static_cast<int>(detail.size()),
                 detail.data());
    std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const cfg::parse_result r = cfg::parse(text);
    if (r.cfg.has_value() == !r.errors.empty()) broken("a config and errors together, or neither");
    for (const auto& e : r.errors) {
        if (e.message.empty()) broken("an error without a message", e.key);
        if (e.to_string().empty()) broken("an error that prints as nothing", e.key);
    }
    if (!r.cfg) return 0;

    const cfg::config& c = *r.cfg;
    const auto again = cfg::validate(c);
    if (!again.empty()) broken("parse() accepted a config validate() rejects", again.front().to_string());

    const auto p = fsm::params::from_config(c, mac_addr{{0x02, 0, 0, 0, 0, 1}});
    if (p.interval_ns == 0 || p.miss == 0) broken("accepted config gives a zero probe interval or miss count");
    if (p.peer_timeout_ns <= p.announce_interval_ns) broken("accepted config forgets live peers between announces");
    if (p.addr[0] == p.addr[1]) broken("accepted config gives both roles one address");
    if (p.node_id == 0) broken("accepted config gives node id 0");
    return 0;
}
