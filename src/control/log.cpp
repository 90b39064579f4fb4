#include "control/log.hpp"

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <unistd.h>

namespace heartwire::log {

namespace {

std::atomic<level> g_level{level::info};

constexpr std::string_view name_of(level l) noexcept {
    switch (l) {
    case level::debug: return "debug";
    case level::info: return "info";
    case level::warn: return "warn";
    case level::error: return "error";
    }
    return "?";
}

// Long enough for any message the control thread writes (a hook command line, a netlink
// error); longer ones are cut rather than split, because a split line is two events to a
// log reader.
constexpr std::size_t line_max = 4096;

} // namespace

void set_level(level l) noexcept { g_level.store(l, std::memory_order_relaxed); }

bool parse_level(std::string_view s, level& out) noexcept {
    if (s == "debug") out = level::debug;
    else if (s == "info") out = level::info;
    else if (s == "warn" || s == "warning") out = level::warn;
    else if (s == "error") out = level::error;
    else return false;
    return true;
}

void write(level l, std::string_view msg) noexcept {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    write_at(l, static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec),
             msg);
}

void write_at(level l, std::uint64_t wall_ns, std::string_view msg) noexcept {
    if (l < g_level.load(std::memory_order_relaxed)) return;

    timespec ts{};
    ts.tv_sec = static_cast<time_t>(wall_ns / 1'000'000'000ull);
    ts.tv_nsec = static_cast<long>(wall_ns % 1'000'000'000ull);
    tm utc{};
    gmtime_r(&ts.tv_sec, &utc);

    char buf[line_max];
    // program_invocation_short_name is "heartwired" in the daemon and the tool's own name
    // elsewhere, so a line always says who wrote it.
    int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ %s[%d] %.*s: ",
                          utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour,
                          utc.tm_min, utc.tm_sec, ts.tv_nsec / 1000,
                          program_invocation_short_name, static_cast<int>(getpid()),
                          static_cast<int>(name_of(l).size()), name_of(l).data());
    if (n < 0) return;
    std::size_t len = static_cast<std::size_t>(n) < sizeof buf ? static_cast<std::size_t>(n)
                                                                : sizeof buf - 1;

    constexpr std::string_view cut = " [truncated]";
    const std::size_t cap = sizeof buf - 1; // one byte kept for the '\n'
    const bool truncated = len + msg.size() > cap;
    const std::size_t take = truncated ? cap - len - cut.size() : msg.size();
    for (std::size_t i = 0; i < take; ++i) {
        const char c = msg[i];
        // One event, one line: embedded line breaks would forge a second log line.
        buf[len++] = (c == '\n' || c == '\r') ? ' ' : c;
    }
    if (truncated)
        for (char c : cut) buf[len++] = c;
    buf[len++] = '\n';

    // One write() so lines from several threads never interleave (stderr is usually a pipe
    // or the journal; writes below PIPE_BUF are atomic there).
    const char* p = buf;
    while (len > 0) {
        ssize_t w = ::write(STDERR_FILENO, p, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return;
        }
        p += w;
        len -= static_cast<std::size_t>(w);
    }
}

} // namespace heartwire::log
