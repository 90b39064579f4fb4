#pragma once
// The embedded node's config: heartwired's TOML (heartwire/config.hpp) read for an
// application that owns EAL and the port. No DPDK, so it is tested from strings.
//   - [port] device may be absent (the port is the application's); when it names an
//     af_xdp or af_packet vdev, its iface= is the kernel interface the control side watches;
//   - [port] eal is accepted and not used (the application started EAL);
//   - engine.mode must be run-to-completion: the application's lcore runs the engine.

#include <string>
#include <string_view>

#include "heartwire/config.hpp"

namespace heartwire::embed {

// The placeholder [port] device of a config that has none: it names no kernel interface.
inline constexpr const char* no_device = "embedded";

// Parsed and validated. Throws std::runtime_error listing every error, each as
// "key = value: what is wrong", after "heartwire config <source>: N errors".
cfg::config load_config(std::string_view toml_text, const std::string& source);

} // namespace heartwire::embed
