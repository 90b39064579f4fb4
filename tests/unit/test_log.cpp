// Logging to journald over its native protocol (issue 11 item 3): a datagram socket of the
// test's own stands in for /run/systemd/journal/socket and reads what journald would.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "control/log.hpp"

using namespace heartwire;

namespace {

struct fake_journal {
    std::string path;
    int fd{-1};
    fake_journal() {
        char dir[] = "/tmp/hw-journal-XXXXXX";
        path = std::string(mkdtemp(dir)) + "/socket";
        fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strcpy(a.sun_path, path.c_str());
        EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
        timeval tv{2, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    ~fake_journal() {
        log::use_journal("");
        ::close(fd);
        ::unlink(path.c_str());
        ::rmdir(path.substr(0, path.rfind('/')).c_str());
    }
    // One entry: KEY=value lines.
    std::map<std::string, std::string> next() {
        char buf[8192];
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        std::map<std::string, std::string> out;
        if (n <= 0) return out;
        std::string s(buf, static_cast<std::size_t>(n));
        std::size_t at = 0;
        while (at < s.size()) {
            const auto nl = s.find('\n', at);
            const std::string line = s.substr(at, nl - at);
            const auto eq = line.find('=');
            EXPECT_NE(eq, std::string::npos) << "a field without '=' (binary form) in " << line;
            out[line.substr(0, eq)] = line.substr(eq + 1);
            if (nl == std::string::npos) break;
            at = nl + 1;
        }
        EXPECT_EQ(s.back(), '\n');
        return out;
    }
};

} // namespace

TEST(Journal, AnErrorArrivesWithPriority3AndItsFields) {
    fake_journal j;
    ASSERT_TRUE(log::use_journal(j.path));
    EXPECT_TRUE(log::journal_on());
    log::set_level(log::level::info);
    log::write_at(log::level::error, 1'764'633'600'123'456'789ull, "fence hook failed\nwith a second line",
                  {.group = 20, .role = "monitor", .epoch = 7, .peer = 2});
    auto e = j.next();
    EXPECT_EQ(e["PRIORITY"], "3");
    EXPECT_EQ(e["MESSAGE"], "fence hook failed with a second line") << "one event, one line";
    EXPECT_EQ(e["HEARTWIRE_GROUP"], "20");
    EXPECT_EQ(e["HEARTWIRE_ROLE"], "monitor");
    EXPECT_EQ(e["HEARTWIRE_EPOCH"], "7");
    EXPECT_EQ(e["HEARTWIRE_PEER"], "2");
    EXPECT_EQ(e["HEARTWIRE_EVENT_USEC"], "1764633600123456");
    EXPECT_EQ(e["SYSLOG_IDENTIFIER"], program_invocation_short_name);

    log::write(log::level::warn, "takeover");
    e = j.next();
    EXPECT_EQ(e["PRIORITY"], "4");
    EXPECT_EQ(e.count("HEARTWIRE_GROUP"), 0u) << "fields not given are not sent";
    log::write(log::level::debug, "below the level: nothing sent");
    log::write(log::level::info, "info");
    e = j.next();
    EXPECT_EQ(e["PRIORITY"], "6");
    EXPECT_EQ(e["MESSAGE"], "info");
}

TEST(Journal, OnlyWhenStderrIsTheJournalsStream) {
    ::unsetenv("JOURNAL_STREAM");
    EXPECT_FALSE(log::use_journal_if_connected()) << "not under systemd";
    ::setenv("JOURNAL_STREAM", "1:2", 1);
    EXPECT_FALSE(log::use_journal_if_connected()) << "stderr is not that stream (redirected)";
    ::unsetenv("JOURNAL_STREAM");
    EXPECT_FALSE(log::journal_on());
    EXPECT_FALSE(log::use_journal("/nonexistent/socket"));
    EXPECT_FALSE(log::journal_on());
}

// journald restarted: its socket is a new one at the same path. The next entry reconnects
// (once) instead of falling back to stderr for ever.
TEST(Journal, AfterJournaldRestartsTheNextEntryReconnects) {
    auto* j = new fake_journal;
    const std::string path = j->path;
    ASSERT_TRUE(log::use_journal(path));
    log::write(log::level::error, "before");
    EXPECT_EQ(j->next()["MESSAGE"], "before");
    ::close(j->fd); // journald goes away ...
    ::unlink(path.c_str());
    j->fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0); // ... and comes back
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, path.c_str());
    ASSERT_EQ(::bind(j->fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    timeval tv{2, 0};
    setsockopt(j->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    log::write(log::level::error, "after");
    auto e = j->next();
    EXPECT_EQ(e["MESSAGE"], "after") << "reconnected to the new socket";
    EXPECT_EQ(e["PRIORITY"], "3");
    delete j;
}
