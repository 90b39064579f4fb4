#include "netns.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace heartwire::e2e {

namespace {

constexpr const char* bridge_name = "br0";
constexpr const char* service_bridge = "br1";

std::string join(const std::vector<std::string>& argv) {
    std::string s;
    for (const auto& a : argv) {
        if (!s.empty()) s += ' ';
        s += a;
    }
    return s;
}

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
    return s;
}

std::vector<std::string> split_ws(std::string_view s) {
    std::vector<std::string> out;
    std::istringstream in{std::string(s)};
    for (std::string w; in >> w;) out.push_back(w);
    return out;
}

// Runs argv and throws with the command and its stderr when it fails.
exec_result must(const std::vector<std::string>& argv) {
    auto r = run(argv);
    if (!r.ok())
        throw std::runtime_error("e2e harness: `" + join(argv) + "` exited " + std::to_string(r.exit_code) + ": " +
                                 trim(r.err.empty() ? r.out : r.err));
    return r;
}

exec_result must_exec(std::string_view ns, std::string_view command) {
    auto r = exec(ns, command);
    if (!r.ok())
        throw std::runtime_error("e2e harness: in " + std::string(ns) + ": `" + std::string(command) + "` exited " +
                                 std::to_string(r.exit_code) + ": " + trim(r.err.empty() ? r.out : r.err));
    return r;
}

int status_to_code(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

std::vector<std::string> list_namespaces() {
    std::vector<std::string> out;
    auto r = run({"ip", "netns", "list"});
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
        auto words = split_ws(line); // "name (id: 3)" or "name"
        if (!words.empty()) out.push_back(words[0]);
    }
    return out;
}

bool valid_name(std::string_view s, std::size_t max) {
    if (s.empty() || s.size() > max) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    });
}

std::string find_in_path(const std::string& name) {
    if (name.find('/') != std::string::npos) return name;
    const char* path = std::getenv("PATH");
    std::istringstream in(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin");
    for (std::string dir; std::getline(in, dir, ':');) {
        std::string full = (dir.empty() ? "." : dir) + "/" + name;
        if (access(full.c_str(), X_OK) == 0) return full;
    }
    return name; // execv reports ENOENT
}

} // namespace

// ------------------------------------------------------------------ commands

exec_result run(const std::vector<std::string>& argv) {
    if (argv.empty()) throw std::invalid_argument("e2e harness: run() with no argv");
    std::vector<char*> cargv;
    for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);

    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
    if (pipe2(err, O_CLOEXEC) != 0) {
        close(out[0]), close(out[1]);
        throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
    }
    const pid_t pid = fork();
    if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        execvp(cargv[0], cargv.data());
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    exec_result r;
    pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    int open_fds = 2;
    char buf[4096];
    while (open_fds > 0) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || fds[i].revents == 0) continue;
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n > 0) {
                (i == 0 ? r.out : r.err).append(buf, static_cast<std::size_t>(n));
            } else if (n == 0 || errno != EINTR) {
                close(fds[i].fd);
                fds[i].fd = -1;
                --open_fds;
            }
        }
    }
    for (auto& f : fds)
        if (f.fd >= 0) close(f.fd);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    r.exit_code = status_to_code(status);
    return r;
}

exec_result exec(std::string_view ns, std::string_view command) {
    return run({"ip", "netns", "exec", std::string(ns), "sh", "-c", std::string(command)});
}

std::string make_prefix(std::string_view base) {
    static std::atomic<unsigned> counter{0};
    return std::string(base) + std::to_string(getpid()) + "n" + std::to_string(counter++);
}

bool is_test_address(std::string_view s) {
    const auto slash = s.find('/');
    const std::string addr(s.substr(0, slash));
    // IPv6: our own ULA, fd00:6877::/64, nothing wider.
    if (in6_addr a6{}; inet_pton(AF_INET6, addr.c_str(), &a6) == 1) {
        if (slash != std::string_view::npos) {
            const std::string len(s.substr(slash + 1));
            if (len.empty() || len.size() > 3 || !std::all_of(len.begin(), len.end(), ::isdigit)) return false;
            const int l = std::stoi(len);
            if (l < 64 || l > 128) return false;
        }
        static const unsigned char ula[8] = {0xfd, 0x00, 0x68, 0x77, 0, 0, 0, 0};
        return std::memcmp(a6.s6_addr, ula, sizeof ula) == 0;
    }
    if (slash != std::string_view::npos) {
        // A shorter prefix would route more than the test network (169.254.169.254 included).
        const std::string len(s.substr(slash + 1));
        if (len.empty() || len.size() > 2 || !std::all_of(len.begin(), len.end(), ::isdigit)) return false;
        const int l = std::stoi(len);
        if (l < 24 || l > 32) return false;
    }
    in_addr a{};
    if (inet_pton(AF_INET, addr.c_str(), &a) != 1) return false;
    const std::uint32_t v = ntohl(a.s_addr);
    return (v & 0xffffff00u) == 0xA9FE0A00u && v != 0xA9FEA9FEu;
}

// ------------------------------------------------------------------ topology

topology::topology(std::string prefix, std::vector<std::string> nodes) : prefix_(std::move(prefix)), nodes_(std::move(nodes)) {
    if (!valid_name(prefix_, 40)) throw std::invalid_argument("e2e harness: bad prefix '" + prefix_ + "' ([a-z0-9_-]{1,40})");
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
        const auto& n = nodes_[i];
        if (!valid_name(n, 20) || n == client || n == "br")
            throw std::invalid_argument("e2e harness: bad node name '" + n + "' ([a-z0-9_-]{1,20}, not client/br)");
        if (std::find(nodes_.begin(), nodes_.begin() + static_cast<std::ptrdiff_t>(i), n) != nodes_.begin() + static_cast<std::ptrdiff_t>(i))
            throw std::invalid_argument("e2e harness: node '" + n + "' given twice");
    }
    bridge_ns_ = prefix_ + "-br";
    client_ns_ = prefix_ + "-" + client;

    std::vector<std::string> hosts = nodes_;
    hosts.push_back(client);
    try {
        for (const auto& ns : [&] {
                 std::vector<std::string> all{bridge_ns_};
                 for (const auto& h : hosts) all.push_back(ns_name(h));
                 return all;
             }()) {
            must({"ip", "netns", "add", ns});
            made_.push_back(ns);
            // Before any interface exists, so every one inherits "no IPv6" (no RS/DAD/MLD noise).
            must_exec(ns, "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 && "
                          "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6 && ip link set lo up");
        }
        must({"ip", "-n", bridge_ns_, "link", "add", bridge_name, "type", "bridge", "stp_state", "0", "forward_delay", "0"});
        must({"ip", "-n", bridge_ns_, "link", "set", bridge_name, "up"});
        for (const auto& h : hosts) {
            const std::string port = bridge_port(h), ns = ns_name(h);
            must({"ip", "-n", bridge_ns_, "link", "add", port, "type", "veth", "peer", "name", iface, "netns", ns});
            must_exec(bridge_ns_, "echo 1 > /proc/sys/net/ipv6/conf/" + port + "/disable_ipv6 && ip link set " + port +
                                      " master " + bridge_name + " && ip link set " + port + " up");
            std::string cmd = std::string("echo 1 > /proc/sys/net/ipv6/conf/") + iface + "/disable_ipv6";
            if (h == client)
                cmd += std::string(" && ip addr add ") + client_cidr + " dev " + iface;
            else
                cmd += std::string(" && ip link set ") + iface + " promisc on"; // af_packet sees every frame
            cmd += std::string(" && ip link set ") + iface + " up";
            must_exec(ns, cmd);
        }
    } catch (...) {
        teardown();
        throw;
    }
}

topology::~topology() { teardown(); }

void topology::teardown() noexcept {
    // Deleting a namespace destroys its veth ends and with them their peers. A process still
    // running inside keeps its namespace alive but cut off: the bridge namespace has none.
    for (auto it = made_.rbegin(); it != made_.rend(); ++it) {
        try {
            run({"ip", "netns", "del", *it});
        } catch (...) {
        }
    }
    made_.clear();
}

std::size_t topology::index_of(std::string_view node) const {
    if (node == client) return nodes_.size();
    for (std::size_t i = 0; i < nodes_.size(); ++i)
        if (nodes_[i] == node) return i;
    throw std::invalid_argument("e2e harness: no node '" + std::string(node) + "' in topology " + prefix_);
}

std::string topology::ns_name(std::string_view node) const {
    return index_of(node) == nodes_.size() ? client_ns_ : prefix_ + "-" + std::string(node);
}

std::string topology::bridge_port(std::string_view node) const {
    const auto i = index_of(node);
    std::string port = "v"; // not "v" + to_string(i): GCC 12 -Wrestrict false positive at -O3
    port += i == nodes_.size() ? std::string("c") : std::to_string(i);
    return port;
}

std::string topology::mac_of(std::string_view node, std::string_view ifname) const {
    auto r = must({"ip", "-n", ns_name(node), "-o", "link", "show", std::string(ifname)});
    auto words = split_ws(r.out);
    for (std::size_t i = 0; i + 1 < words.size(); ++i)
        if (words[i] == "link/ether") return words[i + 1];
    throw std::runtime_error("e2e harness: no MAC in `ip -o link show " + std::string(ifname) + "` of " + ns_name(node) +
                             ": " + r.out);
}

void topology::add_service_segment() {
    must({"ip", "-n", bridge_ns_, "link", "add", service_bridge, "type", "bridge", "stp_state", "0", "forward_delay", "0"});
    must({"ip", "-n", bridge_ns_, "link", "set", service_bridge, "up"});
    std::vector<std::string> hosts = nodes_;
    hosts.push_back(client);
    for (const auto& h : hosts) {
        const std::string port = "s" + bridge_port(h).substr(1), ns = ns_name(h); // s0, s1, ..., sc
        must({"ip", "-n", bridge_ns_, "link", "add", port, "type", "veth", "peer", "name", service_iface, "netns", ns});
        must_exec(bridge_ns_, "echo 1 > /proc/sys/net/ipv6/conf/" + port + "/disable_ipv6 && ip link set " + port +
                                  " master " + service_bridge + " && ip link set " + port + " up");
        std::string cmd = std::string("echo 1 > /proc/sys/net/ipv6/conf/") + service_iface + "/disable_ipv6";
        if (h == client) cmd += std::string(" && ip addr flush dev ") + iface + " && ip addr add " + client_cidr + " dev " + service_iface;
        cmd += std::string(" && ip link set ") + service_iface + " up";
        must_exec(ns, cmd);
    }
}

void topology::add_address(std::string_view node, std::string_view cidr) {
    if (!is_test_address(cidr) || cidr.find('/') == std::string_view::npos)
        throw std::invalid_argument("e2e harness: " + std::string(cidr) + " is not a 169.254.10.0/24 address with a /24../32 prefix");
    must({"ip", "-n", ns_name(node), "addr", "add", std::string(cidr), "dev", iface});
}

void topology::del_address(std::string_view node, std::string_view cidr) {
    must({"ip", "-n", ns_name(node), "addr", "del", std::string(cidr), "dev", iface});
}

exec_result topology::exec_on(std::string_view node, std::string_view command) const { return exec(ns_name(node), command); }

void topology::link_down(std::string_view node) { must({"ip", "-n", bridge_ns_, "link", "set", bridge_port(node), "down"}); }
void topology::link_up(std::string_view node) { must({"ip", "-n", bridge_ns_, "link", "set", bridge_port(node), "up"}); }
// The node's veth leaves the bridge: nothing reaches it or leaves it, while both ends keep
// their carrier (the bridge side stays up), so the node cannot tell from its link.
void topology::partition(std::string_view node) {
    must({"ip", "-n", bridge_ns_, "link", "set", "dev", bridge_port(node), "nomaster"});
}
void topology::heal(std::string_view node) {
    must({"ip", "-n", bridge_ns_, "link", "set", "dev", bridge_port(node), "master", "br0"});
}

void topology::netem(std::string_view node, std::string_view spec, netem_dir dir) {
    std::vector<std::string> argv = dir == netem_dir::to_node
                                        ? std::vector<std::string>{"ip", "netns", "exec", bridge_ns_, "tc", "qdisc", "replace", "dev", bridge_port(node)}
                                        : std::vector<std::string>{"ip", "netns", "exec", ns_name(node), "tc", "qdisc", "replace", "dev", iface};
    argv.insert(argv.end(), {"root", "netem"});
    for (auto& w : split_ws(spec)) argv.push_back(std::move(w));
    must(argv);
}

void topology::netem_clear(std::string_view node, netem_dir dir) {
    if (dir == netem_dir::to_node)
        run({"ip", "netns", "exec", bridge_ns_, "tc", "qdisc", "del", "dev", bridge_port(node), "root"});
    else
        run({"ip", "netns", "exec", ns_name(node), "tc", "qdisc", "del", "dev", iface, "root"});
}

bool topology::netem_supported() {
    static const bool supported = [] {
        const std::string ns = make_prefix() + "-netemcheck";
        if (!run({"ip", "netns", "add", ns}).ok()) return false;
        run({"ip", "-n", ns, "link", "set", "lo", "up"});
        const bool ok = run({"ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"}).ok();
        run({"ip", "netns", "del", ns});
        return ok;
    }();
    return supported;
}

int topology::cleanup_leftovers(std::string_view prefix) {
    if (prefix.empty()) return 0;
    const std::string head = std::string(prefix) + "-";
    int removed = 0;
    for (const auto& ns : list_namespaces())
        if (ns.rfind(head, 0) == 0 && run({"ip", "netns", "del", ns}).ok()) ++removed;
    return removed;
}

int topology::cleanup_stale(std::string_view base) {
    if (base.empty()) return 0;
    int removed = 0;
    for (const auto& ns : list_namespaces()) {
        if (ns.rfind(base, 0) != 0) continue;
        std::size_t i = base.size(), j = i;
        while (j < ns.size() && std::isdigit(static_cast<unsigned char>(ns[j]))) ++j;
        if (j == i || j >= ns.size() || ns[j] != 'n') continue; // not made by make_prefix(base)
        const std::string pid = ns.substr(i, j - i);
        if (access(("/proc/" + pid).c_str(), F_OK) == 0) continue; // its creator still runs
        if (run({"ip", "netns", "del", ns}).ok()) ++removed;
    }
    return removed;
}

// ------------------------------------------------------------------ process

process::process(std::string ns, std::vector<std::string> argv, std::string log_path)
    : ns_(std::move(ns)), log_path_(std::move(log_path)) {
    if (argv.empty()) throw std::invalid_argument("e2e harness: process with no argv");
    if (log_path_.empty()) {
        static std::atomic<unsigned> n{0};
        auto base = argv[0].substr(argv[0].rfind('/') + 1);
        log_path_ = "/tmp/heartwire-e2e-" + ns_ + "-" + base + "-" + std::to_string(n++) + ".log";
    }
    const std::string path = find_in_path(argv[0]);
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    const std::string ns_path = "/var/run/netns/" + ns_;

    // Everything the child needs is opened before fork: after it only syscalls are made.
    const int nsfd = open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (nsfd < 0) throw std::runtime_error("e2e harness: no namespace " + ns_path + ": " + std::strerror(errno));
    const int logfd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    const int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int errpipe[2] = {-1, -1};
    if (logfd < 0 || nullfd < 0 || pipe2(errpipe, O_CLOEXEC) != 0) {
        const int e = errno;
        close(nsfd);
        if (logfd >= 0) close(logfd);
        if (nullfd >= 0) close(nullfd);
        throw std::runtime_error("e2e harness: cannot open log " + log_path_ + ": " + std::strerror(e));
    }
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid < 0) {
        const int e = errno;
        close(nsfd), close(logfd), close(nullfd), close(errpipe[0]), close(errpipe[1]);
        throw std::runtime_error(std::string("e2e harness: fork: ") + std::strerror(e));
    }
    if (pid == 0) {
        auto fail = [&](int st) {
            int msg[2] = {st, errno};
            [[maybe_unused]] auto w = write(errpipe[1], msg, sizeof msg);
            _exit(127);
        };
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        if (setns(nsfd, CLONE_NEWNET) != 0) fail(1);
        // What `ip netns exec` does: a mount namespace whose /sys shows this net namespace.
        if (unshare(CLONE_NEWNS) != 0) fail(2);
        if (mount("", "/", nullptr, MS_SLAVE | MS_REC, nullptr) != 0) fail(3);
        umount2("/sys", MNT_DETACH);
        if (mount(ns_.c_str(), "/sys", "sysfs", 0, nullptr) != 0) fail(4);
        mount("bpf", "/sys/fs/bpf", "bpf", 0, nullptr); // best effort, for af_xdp's libxdp
        if (dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0) fail(5);
        syscall(SYS_close_range, 3u, ~0u, 4u /* CLOSE_RANGE_CLOEXEC */);
        execv(path.c_str(), cargv.data());
        fail(6);
    }
    close(nsfd), close(logfd), close(nullfd), close(errpipe[1]);
    int msg[2] = {0, 0};
    ssize_t n;
    while ((n = read(errpipe[0], msg, sizeof msg)) < 0 && errno == EINTR) {
    }
    close(errpipe[0]);
    if (n > 0) {
        int status = 0;
        waitpid(pid, &status, 0);
        static const char* stages[] = {"?", "setns", "unshare(CLONE_NEWNS)", "make / slave", "mount /sys", "redirect stdio", "execv"};
        const char* what = msg[0] >= 1 && msg[0] <= 6 ? stages[msg[0]] : "?";
        throw std::runtime_error("e2e harness: starting " + path + " in " + ns_ + ": " + what + ": " + std::strerror(msg[1]));
    }
    pid_ = pid;
    pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); // -1 on old kernels: waitpid polling then
}

process::process(process&& o) noexcept
    : ns_(std::move(o.ns_)), log_path_(std::move(o.log_path_)), pid_(o.pid_), pidfd_(o.pidfd_), status_(o.status_) {
    o.pid_ = -1;
    o.pidfd_ = -1;
}

process::~process() {
    if (pid_ > 0 && !status_) {
        kill(SIGKILL);
        reap(true);
    }
    if (pidfd_ >= 0) close(pidfd_);
}

std::string process::log() const {
    std::ifstream f(log_path_);
    std::ostringstream s;
    s << f.rdbuf();
    return s.str();
}

bool process::reap(bool block) noexcept {
    if (status_) return true;
    if (pid_ <= 0) return false;
    int status = 0;
    pid_t r;
    while ((r = waitpid(pid_, &status, block ? 0 : WNOHANG)) < 0 && errno == EINTR) {
    }
    if (r != pid_) return false;
    status_ = status_to_code(status);
    if (pidfd_ >= 0) close(pidfd_), pidfd_ = -1;
    return true;
}

bool process::kill(int sig) {
    if (pid_ <= 0 || status_) return false;
    // Unreaped, the PID cannot have been reused; the pidfd makes that explicit.
    if (pidfd_ >= 0) return syscall(SYS_pidfd_send_signal, pidfd_, sig, nullptr, 0u) == 0;
    return ::kill(pid_, sig) == 0;
}

std::optional<int> process::wait_exit(std::chrono::milliseconds timeout) {
    if (status_ || pid_ <= 0) return status_;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (reap(false)) return status_;
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return std::nullopt;
        if (pidfd_ >= 0) {
            pollfd p{pidfd_, POLLIN, 0};
            poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 1000)));
        } else {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }
}

bool process::running() { return pid_ > 0 && !reap(false); }

// ------------------------------------------------------------------ client checks

std::optional<std::string> arp_mac(std::string_view ns, std::string_view ip) {
    auto r = run({"ip", "-n", std::string(ns), "neigh", "show", "to", std::string(ip)});
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
        auto w = split_ws(line);
        if (w.empty() || w[0] != ip) continue;
        if (std::find(w.begin(), w.end(), "FAILED") != w.end() || std::find(w.begin(), w.end(), "INCOMPLETE") != w.end())
            continue;
        for (std::size_t i = 0; i + 1 < w.size(); ++i)
            if (w[i] == "lladdr") {
                std::string mac = w[i + 1];
                std::transform(mac.begin(), mac.end(), mac.begin(), ::tolower);
                return mac;
            }
    }
    return std::nullopt;
}

int ping(std::string_view ns, std::string_view ip, int count, std::chrono::milliseconds timeout) {
    if (!is_test_address(ip) || ip.find('/') != std::string_view::npos)
        throw std::invalid_argument("e2e harness: ping " + std::string(ip) + " refused: not a 169.254.10.0/24 address");
    // ping's deadline is in whole seconds.
    const long long secs = std::max<long long>(1, (timeout.count() + 999) / 1000);
    auto r = run({"ip", "netns", "exec", std::string(ns), "ping", "-n", "-q", "-c", std::to_string(count), "-i", "0.05",
                  "-W", "1", "-w", std::to_string(secs), std::string(ip)});
    const auto pos = r.out.find(" received");
    if (pos == std::string::npos) return 0;
    auto start = r.out.rfind(' ', pos - 1);
    start = start == std::string::npos ? 0 : start + 1;
    return std::atoi(r.out.substr(start, pos - start).c_str());
}

} // namespace heartwire::e2e
