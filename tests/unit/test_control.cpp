// The control layer against the real kernel: rtnetlink in a private network namespace,
// hooks as real child processes, the control socket over a real Unix socket.

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <poll.h>
#include <regex>
#include <sched.h>
#include <set>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "control/ctl_socket.hpp"
#include "control/health.hpp"
#include "control/hooks.hpp"
#include "control/log.hpp"
#include "control/netlink.hpp"
#include "netns_child.hpp"

using namespace std::chrono_literals;
using heartwire::ipv4_addr;
using heartwire::ipv4_prefix;
namespace ctl = heartwire::control;
namespace fs = std::filesystem;

namespace {

using steady = std::chrono::steady_clock;

std::chrono::milliseconds ms_since(steady::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t);
}

struct temp_dir {
    fs::path path;
    temp_dir() {
        char tmpl[] = "/tmp/hwctl-test-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

ipv4_prefix pfx(const char* s) { return *ipv4_prefix::parse(s); }
ipv4_addr addr(const char* s) { return *ipv4_addr::parse(s); }

// ---------------------------------------------------------------------------------------
// netlink: everything runs in a forked child inside its own network namespace
// (netns_child.hpp), so nothing touches the host's interfaces.

using hwtest::ns_report;

std::string sh_out(const std::string& cmd) {
    std::string out;
    if (FILE* f = ::popen(cmd.c_str(), "r")) {
        char buf[512];
        while (std::fgets(buf, sizeof buf, f)) out += buf;
        ::pclose(f);
    }
    return out;
}

// Runs `body` with hwtest0 (dummy, or a veth pair hwtest0/hwtest0p where the kernel has
// no dummy driver) up.
void in_private_netns(const std::function<void(ns_report&, bool is_veth)>& body) {
    hwtest::run_in_private_netns([&](ns_report& r) {
        bool veth = false;
        int rc = std::system("ip link add hwtest0 type dummy 2>/dev/null");
        if (rc != 0) {
            veth = true;
            rc = std::system("ip link add hwtest0 type veth peer name hwtest0p && ip link set hwtest0p up");
        }
        r.check("create hwtest0", rc, 0);
        r.check("set hwtest0 up", std::system("ip link set hwtest0 up"), 0);
        body(r, veth);
    });
}

TEST(ControlNetlink, AddressAddIsVisibleToIpAndIdempotent) {
    in_private_netns([](ns_report& r, bool) {
        ctl::netlink nl;
        r.note("if_index > 0", nl.if_index("hwtest0") > 0);
        r.check("add 169.254.10.10/24", nl.add_address("hwtest0", pfx("169.254.10.10/24")), 0);
        r.check("has after add", nl.has_address("hwtest0", addr("169.254.10.10")), 1);
        const std::string shown = sh_out("ip -4 addr show dev hwtest0");
        r.note("ip shows 169.254.10.10/24", shown.find("inet 169.254.10.10/24") != std::string::npos);
        r.note("ip shows brd 169.254.10.255", shown.find("brd 169.254.10.255") != std::string::npos);
        r.check("add again (EEXIST is success)", nl.add_address("hwtest0", pfx("169.254.10.10/24")), 0);
        r.check("has a neighbour address", nl.has_address("hwtest0", addr("169.254.10.11")), 0);
    });
}

TEST(ControlNetlink, AddressDelRemovesItAndIsIdempotent) {
    in_private_netns([](ns_report& r, bool) {
        ctl::netlink nl;
        r.check("add", nl.add_address("hwtest0", pfx("169.254.10.20/24")), 0);
        r.check("del", nl.del_address("hwtest0", pfx("169.254.10.20/24")), 0);
        r.check("has after del", nl.has_address("hwtest0", addr("169.254.10.20")), 0);
        r.note("ip no longer shows it",
               sh_out("ip -4 addr show dev hwtest0").find("169.254.10.20") == std::string::npos);
        r.check("del again (EADDRNOTAVAIL is success)", nl.del_address("hwtest0", pfx("169.254.10.20/24")), 0);
    });
}

TEST(ControlNetlink, HostAndPointToPointPrefixesHaveNoBroadcast) {
    in_private_netns([](ns_report& r, bool) {
        ctl::netlink nl;
        r.check("add /32", nl.add_address("hwtest0", pfx("169.254.10.30/32")), 0);
        r.check("add /31", nl.add_address("hwtest0", pfx("169.254.10.40/31")), 0);
        r.check("has /32", nl.has_address("hwtest0", addr("169.254.10.30")), 1);
        r.check("has /31", nl.has_address("hwtest0", addr("169.254.10.40")), 1);
        r.note("no brd at all", sh_out("ip -4 addr show dev hwtest0").find("brd") == std::string::npos);
        r.check("del /32", nl.del_address("hwtest0", pfx("169.254.10.30/32")), 0);
        r.check("del /31", nl.del_address("hwtest0", pfx("169.254.10.40/31")), 0);
        r.check("bad prefix length", nl.add_address("hwtest0", ipv4_prefix{addr("169.254.10.50"), 33}), -EINVAL);
    });
}

TEST(ControlNetlink, AddressOnAnotherInterfaceIsNotOurs) {
    in_private_netns([](ns_report& r, bool) {
        ctl::netlink nl;
        r.check("lo up", std::system("ip link set lo up"), 0);
        r.check("add on lo", nl.add_address("lo", pfx("169.254.10.60/32")), 0);
        r.check("has on lo", nl.has_address("lo", addr("169.254.10.60")), 1);
        r.check("not on hwtest0", nl.has_address("hwtest0", addr("169.254.10.60")), 0);
    });
}

TEST(ControlNetlink, MissingInterfaceIsENODEV) {
    in_private_netns([](ns_report& r, bool) {
        ctl::netlink nl;
        r.check("if_index", nl.if_index("hwnope0"), -ENODEV);
        r.check("if_index of an over-long name", nl.if_index("hwnope0-far-too-long-name"), -ENODEV);
        r.check("add", nl.add_address("hwnope0", pfx("169.254.10.70/24")), -ENODEV);
        r.check("del", nl.del_address("hwnope0", pfx("169.254.10.70/24")), -ENODEV);
        r.check("has", nl.has_address("hwnope0", addr("169.254.10.70")), -ENODEV);
        r.check("link_up", nl.link_up("hwnope0"), -ENODEV);
    });
}

TEST(ControlNetlink, LinkUpFollowsAdminAndCarrierState) {
    in_private_netns([](ns_report& r, bool veth) {
        ctl::netlink nl;
        r.check("up", nl.link_up("hwtest0"), 1);
        if (veth) {
            // Administratively up, but the peer is down: no carrier, operationally down.
            r.check("peer down", std::system("ip link set hwtest0p down"), 0);
            r.check("no carrier", nl.link_up("hwtest0"), 0);
            r.check("peer up", std::system("ip link set hwtest0p up"), 0);
            r.check("carrier back", nl.link_up("hwtest0"), 1);
        }
        r.check("set down", std::system("ip link set hwtest0 down"), 0);
        r.check("admin down", nl.link_up("hwtest0"), 0);
        // Addresses can be managed on a down link too (shared mode installs before up).
        r.check("add while down", nl.add_address("hwtest0", pfx("169.254.10.80/24")), 0);
        r.check("has while down", nl.has_address("hwtest0", addr("169.254.10.80")), 1);
    });
}

// ---------------------------------------------------------------------------------------
// hook_runner

std::vector<ctl::hook_result> drain(ctl::hook_runner& h) {
    std::vector<ctl::hook_result> out;
    h.poll([&](const ctl::hook_result& r) { out.push_back(r); });
    return out;
}

ctl::hook_result run_one(ctl::hook_runner& h, std::string name, std::vector<std::string> argv,
                         std::vector<std::string> env = {},
                         std::chrono::milliseconds timeout = 0ms) {
    const auto id = h.run(std::move(name), std::move(argv), std::move(env), timeout);
    h.wait_all();
    auto rs = drain(h);
    EXPECT_EQ(rs.size(), 1u);
    if (rs.empty()) return {};
    EXPECT_EQ(rs[0].id, id);
    return rs[0];
}

std::vector<std::string> sh(const std::string& script, std::vector<std::string> args = {}) {
    std::vector<std::string> v{"/bin/sh", "-c", script, "hook"};
    v.insert(v.end(), args.begin(), args.end());
    return v;
}

bool process_absent(pid_t pid) { return !fs::exists("/proc/" + std::to_string(pid)); }

// Dead: absent, or a zombie waiting for whoever inherited it (an orphaned grandchild).
bool process_dead(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    if (!f) return true;
    std::string line;
    std::getline(f, line);
    const auto rp = line.rfind(')');
    return rp != std::string::npos && rp + 2 < line.size() && line[rp + 2] == 'Z';
}

pid_t read_pid_file(const fs::path& p, std::chrono::milliseconds within) {
    const auto end = steady::now() + within;
    while (steady::now() < end) {
        std::ifstream f(p);
        pid_t pid = 0;
        if (f >> pid && pid > 0) return pid;
        std::this_thread::sleep_for(10ms);
    }
    return -1;
}

TEST(ControlHooks, ExitCodeIsReported) {
    ctl::hook_runner h(5s);
    auto ok = run_one(h, "notify", sh("exit 0"));
    EXPECT_TRUE(ok.ok());
    EXPECT_EQ(ok.exit_code, 0);
    EXPECT_EQ(ok.name, "notify");
    auto three = run_one(h, "fence", sh("exit 3"));
    EXPECT_FALSE(three.ok());
    EXPECT_EQ(three.exit_code, 3);
    EXPECT_FALSE(three.timed_out);
    EXPECT_FALSE(three.spawn_failed);
}

TEST(ControlHooks, ArgvIsPassedVerbatimWithoutAShell) {
    ctl::hook_runner h(5s);
    // "a b" stays one argument, and "$(...)" is not expanded: no shell between us and the hook.
    auto r = run_one(h, "notify",
                     sh(R"sh(test "$#" = 3 && test "$1" = "a b" && test "$2" = '$(echo x)' && test "$3" = "")sh",
                        {"a b", "$(echo x)", ""}));
    EXPECT_TRUE(r.ok()) << "exit " << r.exit_code;
}

TEST(ControlHooks, ExtraEnvironmentIsAddedAndOverrides) {
    ::setenv("HW_TEST_OVERRIDE", "old", 1);
    ctl::hook_runner h(5s);
    auto r = run_one(h, "notify",
                     sh(R"sh(test "$HW_ROLE" = primary && test "$HW_EPOCH" = 7 && test "$HW_TEST_OVERRIDE" = new && test -n "$PATH")sh"),
                     {"HW_ROLE=primary", "HW_EPOCH=7", "HW_TEST_OVERRIDE=new"});
    EXPECT_TRUE(r.ok()) << "exit " << r.exit_code;
    ::unsetenv("HW_TEST_OVERRIDE");
    auto bad = run_one(h, "notify", sh("exit 0"), {"NOEQUALS"});
    EXPECT_TRUE(bad.spawn_failed);
    EXPECT_NE(bad.error.find("NOEQUALS"), std::string::npos) << bad.error;
}

TEST(ControlHooks, StdinIsDevNullAndNoDaemonDescriptorLeaks) {
    int leak[2];
    ASSERT_EQ(::pipe(leak), 0); // deliberately without O_CLOEXEC
    ctl::hook_runner h(5s);
    auto r = run_one(h, "notify",
                     sh(R"sh(test "$(readlink /proc/$$/fd/0)" = /dev/null && test ! -e /proc/$$/fd/$1)sh",
                        {std::to_string(leak[1])}));
    EXPECT_TRUE(r.ok()) << "exit " << r.exit_code;
    ::close(leak[0]);
    ::close(leak[1]);
}

TEST(ControlHooks, MissingProgramIsAClearSpawnFailure) {
    ctl::hook_runner h(5s);
    auto r = run_one(h, "fence", {"/nonexistent/heartwire-fence", "1"});
    EXPECT_TRUE(r.spawn_failed);
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.exit_code, -1);
    EXPECT_NE(r.error.find("fence"), std::string::npos) << r.error;
    EXPECT_NE(r.error.find("/nonexistent/heartwire-fence"), std::string::npos) << r.error;
    EXPECT_NE(r.error.find("No such file"), std::string::npos) << r.error;
    auto empty = run_one(h, "notify", {});
    EXPECT_TRUE(empty.spawn_failed);
    EXPECT_NE(empty.error.find("empty command"), std::string::npos) << empty.error;
    EXPECT_EQ(h.running(), 0u);
}

TEST(ControlHooks, TimeoutKillsAHangingHook) {
    ctl::hook_runner h(5s);
    const auto t0 = steady::now();
    auto r = run_one(h, "fence", {"sleep", "30"}, {}, 200ms);
    EXPECT_TRUE(r.timed_out);
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.exit_code, -1);
    EXPECT_EQ(r.term_signal, SIGTERM);
    EXPECT_GE(r.elapsed, 190ms);
    EXPECT_LT(ms_since(t0), 1500ms) << "SIGTERM alone should have ended sleep";
}

TEST(ControlHooks, HookIgnoringSigtermGetsSigkillOneSecondLater) {
    temp_dir d;
    ctl::hook_runner h(5s);
    const auto t0 = steady::now();
    // The shell and its background sleep both ignore SIGTERM; the sleep's PID is written so
    // we can check the whole process group died, not just the shell.
    const auto id = h.run("fence", sh(R"sh(trap "" TERM; sleep 30 & echo $! > "$1"; wait)sh",
                                      {(d.path / "pid").string()}), {}, 200ms);
    const pid_t grandchild = read_pid_file(d.path / "pid", 2s);
    ASSERT_GT(grandchild, 0);
    h.wait_all();
    const auto took = ms_since(t0);
    auto rs = drain(h);
    ASSERT_EQ(rs.size(), 1u);
    EXPECT_EQ(rs[0].id, id);
    EXPECT_TRUE(rs[0].timed_out);
    EXPECT_EQ(rs[0].term_signal, SIGKILL);
    EXPECT_GE(took, 1100ms);
    EXPECT_LT(took, 3000ms);
    const auto end = steady::now() + 2s;
    while (!process_dead(grandchild) && steady::now() < end) std::this_thread::sleep_for(10ms);
    EXPECT_TRUE(process_dead(grandchild)) << "the hook's own child outlived the timeout";
}

TEST(ControlHooks, ManyConcurrentHooksAllComplete) {
    ctl::hook_runner h(10s);
    constexpr int n = 64;
    std::map<std::uint64_t, int> want;
    const auto t0 = steady::now();
    for (int i = 0; i < n; ++i)
        want[h.run("notify", sh("sleep 0.3; exit $1", {std::to_string(i % 7)}))] = i % 7;
    EXPECT_GT(h.running(), 0u);
    h.wait_all();
    EXPECT_LT(ms_since(t0), 5000ms) << "hooks ran one after the other";
    EXPECT_EQ(h.running(), 0u);
    auto rs = drain(h);
    ASSERT_EQ(rs.size(), static_cast<std::size_t>(n));
    std::set<std::uint64_t> seen;
    for (const auto& r : rs) {
        ASSERT_TRUE(want.count(r.id)) << r.id;
        EXPECT_EQ(r.exit_code, want[r.id]);
        EXPECT_TRUE(seen.insert(r.id).second);
    }
    EXPECT_EQ(drain(h).size(), 0u);
}

TEST(ControlHooks, ResultsAreDeliveredOnThePollingThread) {
    ctl::hook_runner h(5s);
    h.run("notify", sh("exit 0"));
    h.wait_all();
    std::thread::id where;
    EXPECT_EQ(h.poll([&](const ctl::hook_result&) { where = std::this_thread::get_id(); }), 1u);
    EXPECT_EQ(where, std::this_thread::get_id());
}

TEST(ControlHooks, PollNeverBlocks) {
    ctl::hook_runner h(5s);
    h.run("notify", {"sleep", "30"});
    const auto t0 = steady::now();
    EXPECT_EQ(drain(h).size(), 0u);
    EXPECT_LT(ms_since(t0), 50ms);
    EXPECT_EQ(h.running(), 1u);
}

TEST(ControlHooks, DestructorKillsAndReapsRunningHooks) {
    temp_dir d;
    pid_t pid = -1;
    const auto t0 = steady::now();
    {
        ctl::hook_runner h(0ms); // no timeout: only the destructor ends it
        h.run("drain", sh(R"sh(echo $$ > "$1"; exec sleep 30)sh", {(d.path / "pid").string()}));
        pid = read_pid_file(d.path / "pid", 2s);
        ASSERT_GT(pid, 0);
        EXPECT_EQ(h.running(), 1u);
    }
    EXPECT_LT(ms_since(t0), 3000ms);
    EXPECT_TRUE(process_absent(pid)) << "the hook was not reaped";
    // Every child was reaped: none is left for us to wait for.
    int st = 0;
    EXPECT_EQ(::waitpid(-1, &st, WNOHANG), -1);
    EXPECT_EQ(errno, ECHILD);
}

// ---------------------------------------------------------------------------------------
// ctl socket

// Serves `srv` from a background thread, the way the control thread would.
struct serving {
    ctl::ctl_server& srv;
    std::atomic<bool> stop{false};
    std::atomic<int> served{0};
    std::thread t;
    explicit serving(ctl::ctl_server& s) : srv(s) {
        t = std::thread([this] {
            while (!stop) served += srv.poll(20ms);
        });
    }
    ~serving() {
        stop = true;
        t.join();
    }
};

ctl::ctl_server::handler echo = [](std::string_view line) { return "ok " + std::string(line) + "\n"; };

int raw_connect(const std::string& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

TEST(ControlSocket, RequestAndResponseRoundTrip) {
    temp_dir d;
    ctl::ctl_server srv((d.path / "a.sock").string(), echo);
    serving s(srv);
    EXPECT_EQ(ctl::ctl_request(srv.path(), "status"), "ok status\n");
    EXPECT_EQ(ctl::ctl_request(srv.path(), "fault app disk full"), "ok fault app disk full\n");
}

TEST(ControlSocket, MultiLineAndLargeResponsesArriveWhole) {
    temp_dir d;
    std::string big;
    for (int i = 0; i < 20000; ++i) big += "line " + std::to_string(i) + "\n";
    ctl::ctl_server srv((d.path / "a.sock").string(), [&](std::string_view line) {
        return line == "big" ? "ok\n" + big : std::string("ok\nrole: primary\nepoch: 3");
    });
    serving s(srv);
    EXPECT_EQ(ctl::ctl_request(srv.path(), "status"), "ok\nrole: primary\nepoch: 3\n");
    EXPECT_EQ(ctl::ctl_request(srv.path(), "big"), "ok\n" + big);
}

TEST(ControlSocket, CreatesParentDirectoryAndRestrictsTheSocket) {
    temp_dir d;
    const auto path = d.path / "run" / "heartwire" / "node-a.sock";
    ctl::ctl_server srv(path.string(), echo);
    struct stat st{};
    ASSERT_EQ(::stat(path.parent_path().c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0755u);
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0660u);
}

TEST(ControlSocket, StaleSocketFileIsReplaced) {
    temp_dir d;
    const auto path = (d.path / "a.sock").string();
    { // a daemon that died without cleaning up leaves a socket nobody listens on
        const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
        ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
        ::close(fd);
    }
    ASSERT_TRUE(fs::is_socket(path));
    ctl::ctl_server srv(path, echo);
    serving s(srv);
    EXPECT_EQ(ctl::ctl_request(path, "clear"), "ok clear\n");
}

TEST(ControlSocket, LiveSocketOrOtherFileIsNotTakenOver) {
    temp_dir d;
    const auto path = (d.path / "a.sock").string();
    ctl::ctl_server first(path, echo);
    try {
        ctl::ctl_server second(path, echo);
        ADD_FAILURE() << "a second server took over a live socket";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), EADDRINUSE);
        EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
    const auto file = (d.path / "not-a-socket").string();
    std::ofstream(file) << "precious";
    EXPECT_THROW((ctl::ctl_server{file, echo}), std::system_error);
    std::ifstream in(file);
    std::string content;
    in >> content;
    EXPECT_EQ(content, "precious");
}

TEST(ControlSocket, DestructorRemovesTheSocket) {
    temp_dir d;
    const auto path = (d.path / "a.sock").string();
    { ctl::ctl_server srv(path, echo); EXPECT_TRUE(fs::exists(path)); }
    EXPECT_FALSE(fs::exists(path));
}

TEST(ControlSocket, SilentClientDoesNotStallOthers) {
    temp_dir d;
    ctl::ctl_server srv((d.path / "a.sock").string(), echo);
    serving s(srv);
    const int silent = raw_connect(srv.path());
    ASSERT_GE(silent, 0);
    std::this_thread::sleep_for(30ms); // let the server accept it first
    const auto t0 = steady::now();
    EXPECT_EQ(ctl::ctl_request(srv.path(), "status"), "ok status\n");
    EXPECT_LT(ms_since(t0), 150ms) << "the silent client held up the next one";
    // The server drops the silent one after its read deadline.
    pollfd p{silent, POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 2000), 1);
    char c;
    EXPECT_EQ(::read(silent, &c, 1), 0);
    ::close(silent);
}

TEST(ControlSocket, OversizedRequestGetsAnError) {
    temp_dir d;
    std::atomic<int> handler_calls{0};
    ctl::ctl_server srv((d.path / "a.sock").string(), [&](std::string_view) {
        ++handler_calls;
        return std::string("ok\n");
    });
    serving s(srv);
    const auto resp = ctl::ctl_request(srv.path(), std::string(8000, 'x'));
    EXPECT_EQ(resp.rfind("error: request line longer than 4096 bytes", 0), 0u) << resp;
    EXPECT_EQ(handler_calls, 0);
    EXPECT_EQ(ctl::ctl_request(srv.path(), std::string(4096, 'y')), "ok\n");
}

TEST(ControlSocket, HandlerExceptionBecomesAnErrorResponse) {
    temp_dir d;
    ctl::ctl_server srv((d.path / "a.sock").string(),
                        [](std::string_view) -> std::string { throw std::runtime_error("no such command"); });
    serving s(srv);
    EXPECT_EQ(ctl::ctl_request(srv.path(), "bogus"), "error: no such command\n");
}

TEST(ControlSocket, PollHonoursItsTimeout) {
    temp_dir d;
    ctl::ctl_server srv((d.path / "a.sock").string(), echo);
    auto t0 = steady::now();
    EXPECT_EQ(srv.poll(0ms), 0);
    EXPECT_LT(ms_since(t0), 20ms);
    t0 = steady::now();
    EXPECT_EQ(srv.poll(100ms), 0);
    EXPECT_GE(ms_since(t0), 95ms);
    EXPECT_LT(ms_since(t0), 300ms);
    // Even with a silent client connected, poll() returns on time.
    const int silent = raw_connect(srv.path());
    t0 = steady::now();
    EXPECT_EQ(srv.poll(50ms), 0);
    EXPECT_LT(ms_since(t0), 150ms);
    ::close(silent);
}

TEST(ControlSocket, ClientErrorsNameTheSocket) {
    temp_dir d;
    const auto path = (d.path / "nobody.sock").string();
    try {
        ctl::ctl_request(path, "status", 500ms);
        ADD_FAILURE() << "no exception without a server";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), ENOENT);
        EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
    // A daemon that accepts connections but never answers: the client gives up on time.
    ctl::ctl_server wedged(path, echo); // never polled
    const auto t0 = steady::now();
    try {
        ctl::ctl_request(path, "status", 150ms);
        ADD_FAILURE() << "no timeout from a wedged server";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), ETIMEDOUT);
        EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
    EXPECT_LT(ms_since(t0), 1000ms);
}

// ---------------------------------------------------------------------------------------
// log

// Captures what log::write puts on stderr.
std::string capture_stderr(const std::function<void()>& f) {
    int p[2];
    if (::pipe(p) != 0) return {};
    const int saved = ::dup(STDERR_FILENO);
    ::dup2(p[1], STDERR_FILENO);
    f();
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
    ::close(p[1]);
    std::string out;
    char buf[8192];
    for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
    ::close(p[0]);
    return out;
}

TEST(ControlLog, LineHasUtcTimestampProgramPidAndLevel) {
    namespace log = heartwire::log;
    log::set_level(log::level::info);
    const auto out = capture_stderr([] { log::write(log::level::info, "took over 169.254.10.100"); });
    const std::regex re(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z [^\s\[]+\[(\d+)\] info: took over 169\.254\.10\.100\n$)");
    std::smatch m;
    ASSERT_TRUE(std::regex_match(out, m, re)) << out;
    EXPECT_EQ(std::stoi(m[1]), ::getpid());
}

TEST(ControlLog, LevelFiltersAndEmbeddedNewlinesStayOnOneLine) {
    namespace log = heartwire::log;
    log::set_level(log::level::warn);
    const auto out = capture_stderr([] {
        log::write(log::level::debug, "hidden");
        log::write(log::level::info, "hidden");
        log::write(log::level::warn, "two\nlines");
        log::write(log::level::error, "bad");
    });
    log::set_level(log::level::info);
    EXPECT_EQ(out.find("hidden"), std::string::npos);
    EXPECT_NE(out.find("warn: two lines\n"), std::string::npos) << out;
    EXPECT_NE(out.find("error: bad\n"), std::string::npos) << out;
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 2);
}

TEST(ControlLog, OverlongMessageIsCutNotSplit) {
    namespace log = heartwire::log;
    const auto out = capture_stderr([] { log::write(log::level::error, std::string(10000, 'z')); });
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1);
    EXPECT_LE(out.size(), 4096u);
    EXPECT_NE(out.find("[truncated]\n"), std::string::npos);
}

TEST(ControlLog, ParseLevel) {
    namespace log = heartwire::log;
    log::level l{};
    EXPECT_TRUE(log::parse_level("debug", l));
    EXPECT_EQ(l, log::level::debug);
    EXPECT_TRUE(log::parse_level("warn", l));
    EXPECT_EQ(l, log::level::warn);
    EXPECT_TRUE(log::parse_level("error", l));
    EXPECT_EQ(l, log::level::error);
    EXPECT_TRUE(log::parse_level("info", l));
    EXPECT_EQ(l, log::level::info);
    EXPECT_FALSE(log::parse_level("verbose", l));
    EXPECT_FALSE(log::parse_level("", l));
}

} // namespace

// ---------------------------------------------------------------- health checks

namespace {

heartwire::cfg::health_check_cfg script_check(const std::string& path, std::uint32_t fall, std::uint32_t rise) {
    heartwire::cfg::health_check_cfg c;
    c.name = "t";
    c.kind = "script";
    c.target = path;
    c.interval_ms = 1;
    c.fall = fall;
    c.rise = rise;
    return c;
}

// Runs the monitor until `pred` holds (or 5 s), routing hook results to it.
template <class Pred>
bool drive(heartwire::control::health_monitor& h, heartwire::control::hook_runner& hooks, Pred pred) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < end) {
        h.poll(std::chrono::steady_clock::now());
        hooks.poll([&](const heartwire::control::hook_result& r) { h.on_hook_done(r); });
        if (pred()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
}

} // namespace

TEST(ControlHealth, ScriptCheckFailsAfterFallFailuresAndRecoversAfterRisePasses) {
    char dir[] = "/tmp/hw-health-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    const std::string flag = std::string(dir) + "/ok", script = std::string(dir) + "/check.sh";
    std::ofstream(script) << "#!/bin/sh\ntest -f " << flag << "\n";
    chmod(script.c_str(), 0755);
    heartwire::control::hook_runner hooks(std::chrono::milliseconds(2000));
    heartwire::control::health_monitor h({script_check(script, 3, 2)}, hooks);
    EXPECT_EQ(h.first_failed(), nullptr) << "healthy until proven otherwise";
    ASSERT_TRUE(drive(h, hooks, [&] { return h.first_failed() != nullptr; })) << "no flag file: fails";
    EXPECT_EQ(h.first_failed()->kind, heartwire::fsm::fault_kind::script);
    EXPECT_EQ(h.first_failed()->last_detail, "exit 1");
    std::ofstream(flag) << "1";
    ASSERT_TRUE(drive(h, hooks, [&] { return h.first_failed() == nullptr; })) << "passes again: cured";
    hooks.wait_all();
    std::filesystem::remove_all(dir);
}

TEST(ControlHealth, ProcessCheckFindsRunningProcessesByName) {
    EXPECT_TRUE(heartwire::control::health_monitor::process_running("unit_tests"));
    EXPECT_FALSE(heartwire::control::health_monitor::process_running("no-such-process-hw"));
}

TEST(ControlHealth, MissingInterfaceFailsTheInterfaceCheck) {
    heartwire::cfg::health_check_cfg c;
    c.name = "link";
    c.kind = "interface";
    c.target = "hwnosuch0";
    c.interval_ms = 1;
    c.fall = 1;
    c.rise = 1;
    heartwire::control::hook_runner hooks(std::chrono::milliseconds(1000));
    heartwire::control::health_monitor h({c}, hooks);
    ASSERT_TRUE(drive(h, hooks, [&] { return h.first_failed() != nullptr; }));
    EXPECT_EQ(h.first_failed()->kind, heartwire::fsm::fault_kind::interface);
    EXPECT_EQ(h.first_failed()->last_detail, "missing");
}

// [[health]] kind = "process" (issue 11 item 7): by name (comm, or argv[0]'s last part so a
// name past the kernel's 15 characters still matches), by executable path, or by the whole
// command line; against real processes of the test's own.
TEST(ControlHealth, ProcessChecksMatchByNamePathOrCommandLine) {
    using heartwire::control::health_monitor;
    // The rule on its own (a command line as /proc/PID/cmdline has it: NUL after each word).
    constexpr char raw[] = "/usr/bin/python3\0/opt/app/server.py\0--port\0" "8080\0";
    const std::string line(raw, sizeof raw - 1);
    EXPECT_TRUE(health_monitor::process_matches("python3", "python3", "", line));
    EXPECT_TRUE(health_monitor::process_matches("/usr/bin/python3", "python3", "/usr/bin/python3.11", line));
    EXPECT_TRUE(health_monitor::process_matches("/usr/bin/python3.11", "python3", "/usr/bin/python3.11", line));
    EXPECT_TRUE(health_monitor::process_matches("/usr/bin/python3 /opt/app/server.py", "python3", "", line));
    EXPECT_TRUE(health_monitor::process_matches("/usr/bin/python3 /opt/app/server.py --port 8080", "python3", "", line));
    EXPECT_FALSE(health_monitor::process_matches("/usr/bin/python3 /opt/app/serv", "python3", "", line)) << "a prefix of a word";
    EXPECT_FALSE(health_monitor::process_matches("server.py", "python3", "", line));
    EXPECT_FALSE(health_monitor::process_matches("/opt/app/server.py", "python3", "/usr/bin/python3.11", line));

    // Real processes: a copy of sleep under a 24-character name (its comm is cut to 15).
    char dir[] = "/tmp/hw-proc-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    const std::string longname = "heartwire-app-server-xyz";
    const std::string exe = std::string(dir) + "/" + longname;
    std::filesystem::copy_file("/bin/sleep", exe);
    std::filesystem::permissions(exe, std::filesystem::perms::owner_all);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        execl(exe.c_str(), exe.c_str(), "37.5", static_cast<char*>(nullptr));
        _exit(127);
    }
    // Until the child has exec'd (its comm changes).
    for (int i = 0; i < 200 && !health_monitor::process_running(longname.substr(0, 15)); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_TRUE(health_monitor::process_running(longname.substr(0, 15))) << "comm, as the kernel keeps it";
    EXPECT_TRUE(health_monitor::process_running(longname)) << "the whole name, from argv[0]";
    EXPECT_TRUE(health_monitor::process_running(exe)) << "the executable's path";
    EXPECT_TRUE(health_monitor::process_running(exe + " 37.5")) << "the command line";
    EXPECT_FALSE(health_monitor::process_running(exe + " 38")) << "another command line";
    EXPECT_FALSE(health_monitor::process_running(std::string(dir) + "/other")) << "another path";
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    EXPECT_FALSE(health_monitor::process_running(longname)) << "gone";
    std::filesystem::remove_all(dir);
}
