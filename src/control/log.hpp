#pragma once
// Control-thread logging: one line per event to stderr, with wall-clock time and level;
// under systemd (stderr connected to the journal) one journal entry per event instead, with
// its priority and structured fields. Never called from the poll loop.

#include <cstdint>
#include <string>
#include <string_view>

namespace heartwire::log {

enum class level { debug, info, warn, error };
void set_level(level l) noexcept;
level current_level() noexcept;
std::string_view name_of(level l) noexcept;
bool parse_level(std::string_view s, level& out) noexcept;
void write(level l, std::string_view msg) noexcept;
// The same, stamped with the time the event happened (CLOCK_REALTIME ns), not the time the
// control thread got round to logging it.
void write_at(level l, std::uint64_t wall_ns, std::string_view msg) noexcept;

// What the event is about, as journal fields (HEARTWIRE_GROUP, HEARTWIRE_ROLE,
// HEARTWIRE_EPOCH, HEARTWIRE_PEER: `journalctl HEARTWIRE_GROUP=20`); on stderr only the
// message is written, as before. Zero / empty: not set.
struct fields {
    std::uint32_t group{};
    std::string_view role;
    std::uint64_t epoch{};
    std::uint32_t peer{};
};
void write_at(level l, std::uint64_t wall_ns, std::string_view msg, const fields& f) noexcept;

// journald's native protocol (systemd.io/JOURNAL_NATIVE_PROTOCOL): one datagram per entry,
// with PRIORITY (error 3, warn 4, info 6, debug 7), SYSLOG_IDENTIFIER, MESSAGE and the
// fields above. use_journal_if_connected() turns it on when stderr is the journal (systemd
// sets JOURNAL_STREAM to stderr's device:inode), so a daemon started by hand keeps its
// stderr lines; use_journal(path) sends to that socket (tests); "" turns it off. A failed
// send falls back to stderr. Call before other threads log.
bool use_journal_if_connected() noexcept;
bool use_journal(const std::string& socket_path) noexcept;
bool journal_on() noexcept;

} // namespace heartwire::log
