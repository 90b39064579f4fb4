// Running it like production software (issue 11): a real heartwired under a stand-in for
// systemd's notify socket (NOTIFY_SOCKET, WATCHDOG_USEC, as systemd sets them for
// Type=notify and WatchdogSec=): READY=1 only once the node has a role, STATUS with the role,
// WATCHDOG=1 at half the interval while the engine turns, STOPPING=1 on SIGTERM.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cluster.hpp"

using namespace heartwire::e2e;
using namespace std::chrono_literals;

namespace {

struct notify_socket {
    std::string path;
    int fd{-1};
    explicit notify_socket(const std::string& dir) : path(dir + "/notify.sock") {
        fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
        EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
        timeval tv{0, 200'000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    ~notify_socket() { ::close(fd); }
    // Messages until `until` passes or one contains `want`.
    std::vector<std::string> read_until(const std::string& want, std::chrono::steady_clock::time_point until) {
        std::vector<std::string> got;
        while (std::chrono::steady_clock::now() < until) {
            char buf[4096];
            const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) continue;
            got.emplace_back(buf, static_cast<std::size_t>(n));
            if (got.back().find(want) != std::string::npos) break;
        }
        return got;
    }
};

std::size_t count(const std::vector<std::string>& v, const std::string& s) {
    std::size_t n = 0;
    for (const auto& m : v) n += m.find(s) != std::string::npos;
    return n;
}

} // namespace

TEST(Operations, UnderSystemdItIsReadyOnceItHasARoleAndFeedsTheWatchdogWhileTheEngineTurns) {
    cluster c({"a"});
    node_options o;
    o.lcores = "0";
    c.write_config("a", 1, o);
    notify_socket ns(c.dir());
    ::setenv("NOTIFY_SOCKET", ns.path.c_str(), 1);
    ::setenv("WATCHDOG_USEC", "400000", 1); // systemd's WatchdogSec=0.4s: a ping every 200 ms
    c.start("a");
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("WATCHDOG_USEC");
    const auto t0 = std::chrono::steady_clock::now();
    const auto first = ns.read_until("READY=1", t0 + 20s);
    ASSERT_EQ(count(first, "READY=1"), 1u) << "no READY=1\n" << c.logs();
    const std::string& ready = first.back();
    EXPECT_NE(ready.find("STATUS=primary"), std::string::npos) << ready << " (a lone node is primary once ready)";
    EXPECT_EQ(c.role("a"), "primary") << "READY=1 comes once the node has its role";
    const auto pings = ns.read_until("never", std::chrono::steady_clock::now() + 2s);
    EXPECT_GE(count(pings, "WATCHDOG=1"), 5u) << "about one every 200 ms while the engine turns";
    EXPECT_LE(count(pings, "WATCHDOG=1"), 14u);
    c.stop("a", SIGTERM);
    const auto last = ns.read_until("STOPPING=1", std::chrono::steady_clock::now() + 10s);
    EXPECT_EQ(count(last, "STOPPING=1"), 1u);
    EXPECT_EQ(c.proc("a").wait_exit(5s), 0);
}
