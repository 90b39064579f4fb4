#include "control/log.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace heartwire::log {

namespace {

std::atomic<level> g_level{level::info};

constexpr std::string_view level_name(level l) noexcept {
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

// syslog(3) priorities, which journald keeps as PRIORITY.
constexpr int priority_of(level l) noexcept {
    switch (l) {
    case level::debug: return 7;
    case level::info: return 6;
    case level::warn: return 4;
    case level::error: return 3;
    }
    return 6;
}

std::atomic<int> g_journal{-1}; // connected datagram socket, or -1
std::string g_journal_path;     // set before other threads log (use_journal)

int connect_journal(const std::string& path) noexcept {
    sockaddr_un a{};
    if (path.size() >= sizeof a.sun_path) return -1;
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.data(), path.size());
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

bool reconnect_journal() noexcept {
    const int fd = connect_journal(g_journal_path);
    if (fd < 0) return false;
    const int old = g_journal.exchange(fd, std::memory_order_acq_rel);
    if (old >= 0) ::close(old);
    return true;
}

// Appends KEY=value\n (values here never hold a newline: messages are one line).
struct entry {
    char buf[line_max + 512];
    std::size_t len{0};
    void add(std::string_view key, std::string_view value) noexcept {
        if (len + key.size() + value.size() + 2 > sizeof buf) return;
        std::memcpy(buf + len, key.data(), key.size());
        len += key.size();
        buf[len++] = '=';
        std::memcpy(buf + len, value.data(), value.size());
        len += value.size();
        buf[len++] = '\n';
    }
    void add(std::string_view key, std::uint64_t v) noexcept {
        char n[24];
        const int k = std::snprintf(n, sizeof n, "%llu", static_cast<unsigned long long>(v));
        if (k > 0) add(key, std::string_view(n, static_cast<std::size_t>(k)));
    }
};

bool send_journal(level l, std::uint64_t wall_ns, std::string_view msg, const fields& f) noexcept {
    if (g_journal.load(std::memory_order_acquire) < 0) return false;
    entry e;
    char pri[2] = {static_cast<char>('0' + priority_of(l)), 0};
    e.add("PRIORITY", std::string_view(pri, 1));
    e.add("SYSLOG_IDENTIFIER", program_invocation_short_name);
    if (f.group) e.add("HEARTWIRE_GROUP", f.group);
    if (!f.role.empty()) e.add("HEARTWIRE_ROLE", f.role);
    if (f.epoch) e.add("HEARTWIRE_EPOCH", f.epoch);
    if (f.peer) e.add("HEARTWIRE_PEER", f.peer);
    // When it happened (the journal's own timestamp is when it was written).
    e.add("HEARTWIRE_EVENT_USEC", wall_ns / 1000);
    // The message last, one line, cut like the stderr line.
    char m[line_max];
    std::size_t n = 0;
    for (const char c : msg) {
        if (n == sizeof m) break;
        m[n++] = (c == '\n' || c == '\r') ? ' ' : c;
    }
    e.add("MESSAGE", std::string_view(m, n));
    for (bool again = true;;) {
        const int fd = g_journal.load(std::memory_order_acquire);
        if (fd >= 0 && ::send(fd, e.buf, e.len, MSG_NOSIGNAL) >= 0) return true;
        if (errno == EINTR) continue;
        // journald restarted: its socket is a new one. Connect again once, then fall back
        // to stderr for this line.
        if (!again || (errno != ECONNREFUSED && errno != ENOTCONN) || !reconnect_journal()) return false;
        again = false;
    }
}

} // namespace

bool use_journal(const std::string& socket_path) noexcept {
    const int old = g_journal.exchange(-1, std::memory_order_acq_rel);
    if (old >= 0) ::close(old);
    g_journal_path = socket_path;
    if (socket_path.empty()) return true;
    const int fd = connect_journal(socket_path);
    if (fd < 0) return false;
    g_journal.store(fd, std::memory_order_release);
    return true;
}

bool use_journal_if_connected() noexcept {
    const char* js = std::getenv("JOURNAL_STREAM");
    if (!js) return false;
    unsigned long long dev = 0, ino = 0;
    struct stat st{};
    if (std::sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) != 0 ||
        static_cast<unsigned long long>(st.st_dev) != dev || static_cast<unsigned long long>(st.st_ino) != ino)
        return false; // stderr was redirected since: the caller wants its lines there
    return use_journal("/run/systemd/journal/socket");
}

bool journal_on() noexcept { return g_journal.load(std::memory_order_acquire) >= 0; }

void set_level(level l) noexcept { g_level.store(l, std::memory_order_relaxed); }
level current_level() noexcept { return g_level.load(std::memory_order_relaxed); }
std::string_view name_of(level l) noexcept { return level_name(l); }

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

void write_at(level l, std::uint64_t wall_ns, std::string_view msg) noexcept { write_at(l, wall_ns, msg, fields{}); }

void write_at(level l, std::uint64_t wall_ns, std::string_view msg, const fields& f) noexcept {
    if (l < g_level.load(std::memory_order_relaxed)) return;
    if (send_journal(l, wall_ns, msg, f)) return;

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
                          static_cast<int>(level_name(l).size()), level_name(l).data());
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
