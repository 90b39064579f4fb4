#pragma once
// Control-thread logging: one line per event to stderr, with wall-clock time and level.
// Never called from the poll loop.

#include <cstdint>
#include <string_view>

namespace heartwire::log {

enum class level { debug, info, warn, error };
void set_level(level l) noexcept;
bool parse_level(std::string_view s, level& out) noexcept;
void write(level l, std::string_view msg) noexcept;
// The same, stamped with the time the event happened (CLOCK_REALTIME ns), not the time the
// control thread got round to logging it.
void write_at(level l, std::uint64_t wall_ns, std::string_view msg) noexcept;

} // namespace heartwire::log
