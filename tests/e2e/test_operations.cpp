// Running it like production software (issue 11): a real heartwired under a stand-in for
// systemd's notify socket (NOTIFY_SOCKET, WATCHDOG_USEC, as systemd sets them for
// Type=notify and WatchdogSec=): READY=1 only once the node has a role, STATUS with the role,
// WATCHDOG=1 at half the interval while the engine turns, STOPPING=1 on SIGTERM.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cluster.hpp"
#include "netns.hpp"

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

namespace {

// An HTTP GET from inside a node's namespace (the endpoint listens on that namespace's
// loopback), by a real client: Python's http.client. Prints the status, the content type,
// then the body.
std::string scrape(cluster& c, const std::string& node, int& status) {
    const auto r = c.net().exec_on(node, "python3 -c 'import http.client,sys; h=http.client.HTTPConnection(\"127.0.0.1\", 9567, timeout=5); "
                                         "h.request(\"GET\", \"/metrics\"); r=h.getresponse(); print(r.status); "
                                         "print(r.getheader(\"Content-Type\")); sys.stdout.write(r.read().decode())'");
    status = std::atoi(r.out.c_str());
    return r.out + r.err;
}

double value_of(const std::string& text, const std::string& series) {
    const auto at = text.find("\n" + series + " ");
    return at == std::string::npos ? -1 : std::atof(text.c_str() + at + 1 + series.size() + 1);
}

} // namespace

TEST(Operations, TheMetricsEndpointServesPrometheusTextAndTheTakeoverCounterMoves) {
    cluster c({"a", "b"});
    for (const auto& [n, core] : {std::pair{"a", "0"}, std::pair{"b", "1"}}) {
        node_options o;
        o.lcores = core;
        o.metrics = "127.0.0.1:9567";
        c.write_config(n, n[0] == 'a' ? 1 : 2, o);
    }
    c.start("a");
    ASSERT_TRUE(c.wait_role("a", "primary")) << c.logs();
    c.start("b");
    ASSERT_TRUE(c.wait_role("b", "monitor")) << c.logs();
    int status = 0;
    const std::string before = scrape(c, "b", status);
    ASSERT_EQ(status, 200) << before;
    EXPECT_NE(before.find("text/plain; version=0.0.4"), std::string::npos);
    for (const char* family : {"# TYPE heartwire_role gauge", "# TYPE heartwire_takeovers_total counter",
                               "# TYPE heartwire_probe_rtt_seconds histogram", "# TYPE heartwire_loop_gap_seconds histogram",
                               "# TYPE heartwire_frames_dropped_total counter", "# TYPE heartwire_io_rx_packets_total counter",
                               "# TYPE heartwire_build_info gauge"})
        EXPECT_NE(before.find(family), std::string::npos) << family << "\n" << before.substr(0, 2000);
    EXPECT_EQ(value_of(before, "heartwire_role{group=\"1\",role=\"monitor\"}"), 1.0);
    EXPECT_EQ(value_of(before, "heartwire_takeovers_total{group=\"1\"}"), 0.0);
    EXPECT_GT(value_of(before, "heartwire_probe_rtt_seconds_count"), 0.0) << "b probes a";

    // Prometheus's own parser on what a real scrape got (Debian's promtool, unpacked by the
    // test command's setup).
    const std::string promtool = std::string(HEARTWIRE_BUILD_ROOT) + "/fetched/prometheus/usr/bin/promtool";
    const std::string body = before.substr(before.find('\n', before.find('\n') + 1) + 1);
    const std::string file = c.dir() + "/scrape.prom";
    std::ofstream(file) << body;
    const auto lint = run({"sh", "-c", promtool + " check metrics < " + file});
    EXPECT_EQ(lint.exit_code, 0) << lint.out << lint.err;
    EXPECT_EQ(lint.out + lint.err, "") << "promtool's lint";

    c.stop("a", SIGKILL);
    ASSERT_TRUE(c.wait_role("b", "primary")) << c.logs();
    const std::string after = scrape(c, "b", status);
    ASSERT_EQ(status, 200);
    EXPECT_EQ(value_of(after, "heartwire_takeovers_total{group=\"1\"}"), 1.0) << "the failover is counted";
    EXPECT_EQ(value_of(after, "heartwire_role{group=\"1\",role=\"primary\"}"), 1.0);
    EXPECT_EQ(value_of(after, "heartwire_holds_address{group=\"1\",address=\"primary\"}"), 1.0);
    // heartwirectl metrics: the same text over the control socket.
    const auto ctl = run({HEARTWIRECTL_PATH, "--socket", c.socket("b"), "metrics"});
    EXPECT_EQ(ctl.exit_code, 0) << ctl.err;
    EXPECT_EQ(value_of("\n" + ctl.out, "heartwire_takeovers_total{group=\"1\"}"), 1.0) << ctl.out.substr(0, 500);
}

namespace {

void edit(const std::string& path, const std::string& from, const std::string& to) {
    std::ifstream in(path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from << " not in " << path;
    text.replace(at, from.size(), to);
    std::ofstream(path) << text;
}

} // namespace

// Every signal has an action, none of them a role change: HUP re-reads the file (what can
// change live applied: the log level, a GARP knob, the window; what cannot refused by name:
// the port; a broken file refused whole), USR1 writes the status to the log, USR2 toggles
// debug logging.
TEST(Operations, SignalsReloadDumpAndToggleDebugWithoutARoleChange) {
    cluster c({"a"});
    node_options o;
    o.lcores = "0";
    c.write_config("a", 1, o);
    c.start("a");
    ASSERT_TRUE(c.wait_role("a", "primary")) << c.logs();
    const auto epoch = json_value(*c.status("a"), "epoch");
    const auto log_has = [&](const std::string& s) { return wait_until([&] { return c.proc("a").log().find(s) != std::string::npos; }, 5s); };
    const auto knob = [&](const std::string& key) {
        const auto s = c.status("a");
        return s ? json_value(*s, key) : std::string{};
    };
    ASSERT_EQ(knob("garp_refresh_ms"), "1000") << *c.status("a");

    // Live: the log level, a GARP knob and the miss count, applied with no role change and
    // run by the engine (status shows the machine's own values).
    edit(c.config_path("a"), "log_level = \"debug\"", "log_level = \"info\"");
    edit(c.config_path("a"), "miss = " + std::to_string(o.miss) + "\n", "miss = " + std::to_string(o.miss + 2) + "\n");
    std::ofstream(c.config_path("a"), std::ios::app) << "\n[garp]\nrefresh_ms = 4321\n";
    c.proc("a").kill(SIGHUP);
    EXPECT_TRUE(log_has("reload (SIGHUP): applied detect.miss, garp.refresh_ms, control.log_level = info")) << c.proc("a").log();
    EXPECT_TRUE(wait_until([&] { return knob("garp_refresh_ms") == "4321"; }, 5s)) << *c.status("a");
    EXPECT_EQ(knob("miss"), std::to_string(o.miss + 2));
    EXPECT_EQ(knob("reloads"), "1");
    EXPECT_EQ(c.role("a"), "primary");
    EXPECT_EQ(json_value(*c.status("a"), "epoch"), epoch) << "no role change";

    // Not live: a changed port is refused by name; the node keeps its role and its port.
    edit(c.config_path("a"), "iface=eth0", "iface=eth9");
    c.proc("a").kill(SIGHUP);
    EXPECT_TRUE(log_has("refused, these need a restart (the running values stay): port.device")) << c.proc("a").log();
    EXPECT_EQ(c.role("a"), "primary");
    EXPECT_EQ(knob("garp_refresh_ms"), "4321");
    EXPECT_EQ(knob("reloads"), "1") << "nothing of the engine's changed";

    // A live change that would not run (a hook that does not exist) is refused whole.
    std::ofstream(c.config_path("a"), std::ios::app) << "[hooks]\nnotify = \"/nonexistent/notify\"\n";
    c.proc("a").kill(SIGHUP);
    EXPECT_TRUE(log_has("would not run, the running configuration stays: hooks.notify")) << c.proc("a").log();
    std::ofstream(c.config_path("a"), std::ios::app) << "[nonsense\n";
    c.proc("a").kill(SIGHUP);
    EXPECT_TRUE(log_has("the running configuration stays")) << c.proc("a").log();
    c.proc("a").kill(SIGUSR1);
    EXPECT_TRUE(log_has("status (SIGUSR1):"));
    EXPECT_TRUE(log_has("  role      primary"));
    c.proc("a").kill(SIGUSR2);
    EXPECT_TRUE(log_has("debug logging on (SIGUSR2"));
    c.proc("a").kill(SIGUSR2);
    EXPECT_TRUE(log_has("debug logging off (SIGUSR2)"));
    // heartwirectl log-level: the running level, shown and set.
    const auto ctl = [&](const std::string& level) {
        std::vector<std::string> argv{HEARTWIRECTL_PATH, "--socket", c.socket("a"), "log-level"};
        if (!level.empty()) argv.push_back(level);
        return run(argv);
    };
    EXPECT_EQ(ctl("error").exit_code, 0);
    EXPECT_EQ(ctl("").out, "error\n");
    EXPECT_NE(ctl("loud").exit_code, 0) << "not a level";
    EXPECT_TRUE(c.running("a")) << "no signal stopped it";
    EXPECT_EQ(c.role("a"), "primary");
    EXPECT_EQ(json_value(*c.status("a"), "epoch"), epoch) << "no role change";
}

// keepalived's notify scripts unchanged (issue 11 item 6): hooks.notify_args = "keepalived"
// calls notify INSTANCE <group name> MASTER|BACKUP|FAULT|STOP <priority>.
TEST(Operations, KeepalivedStyleNotifyArgumentsReachTheScript) {
    cluster c({"a"});
    const std::string log = c.dir() + "/notify.log";
    const std::string script = write_script(c.dir() + "/notify.sh", "echo \"$*\" >> " + log);
    node_options o;
    o.lcores = "0";
    o.groups_toml = "[[group]]\nid = 51\nname = \"VI_1\"\npriority = 150\nprimary = \"169.254.10.100/24\"\n"
                    "monitor = \"169.254.10.101/24\"\n";
    o.extra_toml = "[hooks]\nnotify = \"" + script + "\"\nnotify_args = \"keepalived\"\n";
    c.write_config("a", 1, o);
    c.start("a");
    const auto lines = [&] {
        std::ifstream in(log);
        return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    };
    EXPECT_TRUE(wait_until([&] { return lines().find("INSTANCE VI_1 MASTER 150") != std::string::npos; }, 20s))
        << lines() << c.logs();
    EXPECT_EQ(lines().find("probe"), std::string::npos) << "discovery's roles call nothing: " << lines();
    c.stop("a", SIGTERM);
    EXPECT_TRUE(wait_until([&] { return lines().find("INSTANCE VI_1 STOP 150") != std::string::npos; }, 10s)) << lines();
}

// The kernel's addresses follow the engine and never outlive it (issue 11 item 8), shared
// mode on a real kernel: an address an operator takes off the primary's interface is put
// back (level-triggered reconciliation against the engine's published state); a SIGKILL
// with the engine-down notice off still leaves nothing on the dead node's kernel (its guard
// releases the addresses); what a run killed together with its guard left, `heartwired
// --release-addresses` (systemd's ExecStopPost) removes, and it refuses a running node's.
TEST(Operations, KernelAddressesFollowTheEngineAndNeverOutliveIt) {
    cluster c({"a"});
    node_options o;
    o.lcores = "0";
    o.pmd = "net_af_xdp";
    o.mode = "shared";
    o.port_toml = "notice_interface = \"none\"\n";
    c.write_config("a", 1, o);
    const auto held = [&] {
        return c.net().exec_on("a", "ip -o addr show dev eth0 | grep -q ' " + std::string(primary_ip) + "/'").ok();
    };
    c.start("a");
    ASSERT_TRUE(c.wait_role("a", "primary")) << c.logs();
    ASSERT_TRUE(wait_until(held, 5s)) << c.logs();

    // Taken off by hand: put back within a few checks (250 ms apart).
    ASSERT_TRUE(c.net().exec_on("a", "ip addr del " + std::string(primary_ip) + "/24 dev eth0").ok());
    EXPECT_TRUE(wait_until(held, 5s)) << "not repaired\n" << c.proc("a").log();
    EXPECT_NE(c.proc("a").log().find("repair: the engine holds the primary address but eth0 lacked it: added"), std::string::npos)
        << c.proc("a").log();
    EXPECT_EQ(c.role("a"), "primary");

    // SIGKILL, no notice interface: the guard still takes the address off.
    c.stop("a", SIGKILL);
    EXPECT_TRUE(wait_until([&] { return !held(); }, 5s)) << "the killed node's kernel still holds " << primary_ip << "\n"
                                                          << c.proc("a").log();

    // Killed with its guard (a cgroup-wide SIGKILL): the address stays until
    // --release-addresses, which a running node refuses.
    c.start("a");
    ASSERT_TRUE(c.wait_role("a", "primary")) << c.logs();
    ASSERT_TRUE(wait_until(held, 5s));
    const auto refused = c.net().exec_on("a", std::string(HEARTWIRED_PATH) + " --release-addresses -c " + c.config_path("a"));
    EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
    EXPECT_NE(refused.err.find("not touching its addresses"), std::string::npos) << refused.err;
    EXPECT_TRUE(held()) << "a running node's address is its own";
    const std::string log = c.proc("a").log();
    const auto at = log.find("engine-down guard ");
    ASSERT_NE(at, std::string::npos) << log;
    const pid_t guard = static_cast<pid_t>(std::atol(log.c_str() + at + 18));
    ASSERT_GT(guard, 1);
    ASSERT_EQ(::kill(guard, SIGKILL), 0);
    c.stop("a", SIGKILL);
    EXPECT_TRUE(held()) << "nobody took it off";
    const auto released = c.net().exec_on("a", std::string(HEARTWIRED_PATH) + " --release-addresses -c " + c.config_path("a"));
    EXPECT_EQ(released.exit_code, 0) << released.out << released.err;
    EXPECT_NE(released.out.find("address(es) of a removed from the kernel"), std::string::npos) << released.out;
    EXPECT_FALSE(held());
}

// Status JSON through a JSON library (issue 11 item 4): text from outside (an application's
// fault detail with a control character and bytes that are not UTF-8) comes out escaped and
// as U+FFFD, so a strict parser reads the whole document.
TEST(Operations, StatusJsonStaysValidWithHostileText) {
    cluster c({"a"});
    node_options o;
    o.lcores = "0";
    c.write_config("a", 1, o);
    c.start("a");
    ASSERT_TRUE(c.wait_role("a", "primary")) << c.logs();
    const auto f = run({HEARTWIRECTL_PATH, "--socket", c.socket("a"), "fault", "application", "disk\x01 \"full\" \xff\xfe caf\xc3\xa9"});
    ASSERT_EQ(f.exit_code, 0) << f.out << f.err;
    const std::string script = c.dir() + "/parse.py";
    std::ofstream(script) << "import json, subprocess, sys\n"
                             "out = subprocess.run(sys.argv[1:], capture_output=True, check=True).stdout\n"
                             "d = json.loads(out.decode('utf-8'))  # strict: invalid UTF-8 or a raw control character fails\n"
                             "print(repr(d['fault_detail']))\n";
    const auto p = run({"python3", script, HEARTWIRECTL_PATH, "--socket", c.socket("a"), "status", "--json"});
    ASSERT_EQ(p.exit_code, 0) << p.err;
    EXPECT_EQ(p.out, "'application: disk\\x01 \"full\" \uFFFD\uFFFD café'\n") << p.out; // each bad byte a U+FFFD
}
