#pragma once
// End-to-end test harness: throwaway hosts made of network namespaces on one Linux bridge.
//
//   <prefix>-br       bridge namespace: br0 (stp off, forward_delay 0), one veth port per host
//   <prefix>-<node>   one per node, eth0 (promisc, no address unless add_address)
//   <prefix>-client   the client, eth0 = 169.254.10.10/24; its ARP cache and ping are the checks
//
// add_service_segment() adds a second segment, a service LAN beside the heartbeat link (a
// dedicated heartbeat port): br1 in the bridge namespace and svc0 in every host; the
// client's address moves to its svc0, and its eth0 only watches the heartbeat link.
//
// The bridge-side veth ends live only in the bridge namespace, so their names ("v0", "v1",
// "vc") never collide with another test run; only the namespace names carry the prefix.
// IPv6 is disabled everywhere so the wire carries only what the test sends. Every address
// must be in 169.254.10.0/24 (and never 169.254.169.254): the helpers refuse anything else.
//
// Needs root. Setup failures throw std::runtime_error naming the command and its stderr.

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace heartwire::e2e {

struct exec_result {
    int exit_code = -1; // 128 + signal when killed by a signal
    std::string out;    // stdout
    std::string err;    // stderr
    bool ok() const noexcept { return exit_code == 0; }
};

// Runs argv directly (PATH search, no shell) on the host and collects its output.
exec_result run(const std::vector<std::string>& argv);
// `ip netns exec NS sh -c COMMAND`.
exec_result exec(std::string_view ns, std::string_view command);

// A prefix unique to this process and call: base + pid + 'n' + counter, e.g. "hwt4242n0".
std::string make_prefix(std::string_view base = "hwt");

// True for a dotted IPv4 address (optionally "/len") inside 169.254.10.0/24, and not
// 169.254.169.254; or an IPv6 address (optionally "/len", 64..128) in our ULA fd00:6877::/64.
bool is_test_address(std::string_view addr_or_cidr);

enum class netem_dir {
    to_node,   // qdisc on the bridge-side veth: delays what the node receives
    from_node, // qdisc on the node's eth0: delays what the node sends through the kernel
               // (af_xdp and qdisc-bypassing af_packet skip it)
};

class topology {
public:
    static constexpr const char* client = "client"; // node name of the client in every accessor
    static constexpr const char* client_ip = "169.254.10.10";
    static constexpr const char* client_cidr = "169.254.10.10/24";
    static constexpr const char* iface = "eth0"; // the interface name inside every namespace
    static constexpr const char* service_iface = "svc0"; // add_service_segment()'s, in every namespace

    // Node names: [a-z0-9_-], 1..20 chars, unique, not "client" or "br".
    topology(std::string prefix, std::vector<std::string> nodes);
    ~topology(); // removes every namespace it made (and so every veth); never throws
    topology(const topology&) = delete;
    topology& operator=(const topology&) = delete;

    const std::string& prefix() const noexcept { return prefix_; }
    const std::vector<std::string>& nodes() const noexcept { return nodes_; }
    std::string ns_name(std::string_view node) const; // node or "client"
    const std::string& client_ns() const noexcept { return client_ns_; }
    const std::string& bridge_ns() const noexcept { return bridge_ns_; }
    std::string bridge_port(std::string_view node) const; // bridge-side veth name
    std::string mac_of(std::string_view node, std::string_view ifname = iface) const; // lowercase "aa:bb:..."

    // The service segment: br1, a veth per host to it (svc0 inside, up, no address on the
    // nodes), the client's 169.254.10.10/24 moved from eth0 to svc0. Call it once.
    void add_service_segment();

    void add_address(std::string_view node, std::string_view cidr);
    void del_address(std::string_view node, std::string_view cidr);
    // exec() in the namespace of `node` (or "client").
    exec_result exec_on(std::string_view node, std::string_view command) const;

    // Cable cut: the bridge side of the node's veth goes down, so the node's eth0 loses carrier.
    void link_down(std::string_view node);
    void link_up(std::string_view node);
    // A partition with the link up: the bridge stops forwarding to and from the node.
    void partition(std::string_view node);
    void heal(std::string_view node);

    // `tc qdisc replace ... netem SPEC`, e.g. netem("a", "delay 100us 50us"). Throws when the
    // kernel has no netem (check netem_supported() and skip).
    void netem(std::string_view node, std::string_view spec, netem_dir dir = netem_dir::to_node);
    void netem_clear(std::string_view node, netem_dir dir = netem_dir::to_node);
    static bool netem_supported();

    // Deletes namespaces named "<prefix>-*" (a crashed run with this exact prefix).
    // Returns how many were removed.
    static int cleanup_leftovers(std::string_view prefix);
    // Deletes namespaces made by make_prefix(base) in processes that no longer exist; safe
    // while other test processes run. Returns how many were removed.
    static int cleanup_stale(std::string_view base = "hwt");

private:
    std::size_t index_of(std::string_view node) const; // nodes_.size() for the client
    void teardown() noexcept;

    std::string prefix_;
    std::vector<std::string> nodes_;
    std::string bridge_ns_;
    std::string client_ns_;
    std::vector<std::string> made_; // namespaces created so far, for teardown
};

// A program running inside a namespace: fork, setns(/var/run/netns/NS), a private /sys for
// that namespace (as `ip netns exec` does), execv. No shell in between, so pid() is the
// program's own. stdin is /dev/null; stdout and stderr go to the log file (truncated).
// The child gets SIGKILL if the thread that created it exits (PR_SET_PDEATHSIG), so a
// crashed test leaves no daemon behind. Signals go through a pidfd: only this child is hit.
class process {
public:
    // argv[0] is a path, or a name looked up in PATH. Throws if the namespace is missing or
    // the program cannot be started. Empty log_path: /tmp/heartwire-e2e-<ns>-<name>-<n>.log.
    process(std::string ns, std::vector<std::string> argv, std::string log_path = {});
    ~process(); // SIGKILL and reap if still running
    process(const process&) = delete;
    process& operator=(const process&) = delete;
    process(process&& o) noexcept;
    process& operator=(process&&) = delete;

    pid_t pid() const noexcept { return pid_; }
    const std::string& ns() const noexcept { return ns_; }
    const std::string& log_path() const noexcept { return log_path_; }
    std::string log() const; // the log file's current contents

    // Sends sig to this child; false if it has already exited.
    bool kill(int sig = SIGTERM);
    // Waits up to timeout for the exit. Returns the exit code (128 + signal when killed by a
    // signal), or nullopt if still running. Once reaped, returns the same value again.
    std::optional<int> wait_exit(std::chrono::milliseconds timeout);
    bool running();

private:
    bool reap(bool block) noexcept;

    std::string ns_;
    std::string log_path_;
    pid_t pid_ = -1;
    int pidfd_ = -1;
    std::optional<int> status_;
};

// The client's view -----------------------------------------------------------------------

// MAC the namespace's neighbour table holds for ip (any state with a link-layer address,
// STALE included), lowercase; nullopt if none or FAILED/INCOMPLETE.
std::optional<std::string> arp_mac(std::string_view ns, std::string_view ip);
// Pings ip from ns with the system ping; returns the number of replies. Stops after `count`
// replies or when timeout passes. ip must be a test address.
int ping(std::string_view ns, std::string_view ip, int count = 3,
         std::chrono::milliseconds timeout = std::chrono::seconds(2));

// Polls pred every `poll` until it returns true (-> true) or timeout passes (-> false).
template <class Pred>
bool wait_until(Pred&& pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds poll = std::chrono::milliseconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (pred()) return true;
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(poll);
    }
}

} // namespace heartwire::e2e
