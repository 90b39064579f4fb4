#include "embed/config.hpp"

#include <sstream>
#include <stdexcept>
#include <vector>

#include <toml++/toml.h>

namespace heartwire::embed {

namespace {

// The text with [port] device filled in when it is missing. TOML that does not parse is
// returned as it is, for cfg::parse to report.
std::string with_device(std::string_view text) {
    toml::table t;
    try {
        t = toml::parse(text);
    } catch (const toml::parse_error&) {
        return std::string(text);
    }
    toml::node* port = t.get("port");
    if (!port) {
        t.insert("port", toml::table{{"device", no_device}});
    } else if (auto* pt = port->as_table(); pt && !pt->contains("device")) {
        pt->insert("device", no_device);
    } else {
        return std::string(text);
    }
    std::ostringstream o;
    o << t;
    return o.str();
}

} // namespace

cfg::config load_config(std::string_view text, const std::string& source) {
    auto r = cfg::parse(with_device(text));
    std::vector<cfg::config_error> errors = std::move(r.errors);
    if (r.cfg && r.cfg->engine.mode == cfg::lcore_mode::pipelined)
        errors.push_back({"engine.mode", "\"pipelined\"",
                          "must be \"run-to-completion\" when embedded: the application's lcore runs the engine"});
    if (errors.empty()) return std::move(*r.cfg);
    std::string msg = "heartwire config " + source + ": ";
    msg.append(std::to_string(errors.size())).append(errors.size() == 1 ? " error" : " errors");
    for (const auto& e : errors) msg.append("\n  ").append(e.to_string());
    throw std::runtime_error(msg);
}

} // namespace heartwire::embed
