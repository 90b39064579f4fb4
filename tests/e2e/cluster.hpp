#pragma once
// heartwired nodes for end-to-end tests: config files in a temp dir, daemons started in
// their namespaces, their status read over the control socket. Built on netns.hpp.

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "netns.hpp"

namespace heartwire::e2e {

inline constexpr const char* primary_ip = "169.254.10.100";
inline constexpr const char* monitor_ip = "169.254.10.101";

struct node_options {
    std::string pmd{"net_af_xdp"};       // net_af_xdp | net_af_packet | net_memif
    std::string mode{"exclusive"};       // address mode
    std::string engine{"run-to-completion"};
    std::string idle{"adaptive"};        // [engine] idle: adaptive | busy
    std::string lcores{"0"};
    // Tests judge behaviour, not speed: a 20 ms window rides out a loaded 2-core machine.
    std::uint32_t interval_us{2000};
    std::uint32_t miss{10};
    std::string probe{"heartbeat"};
    std::uint8_t priority{100};
    std::uint32_t group{1};
    // [addresses]: a second pair on the same bridge needs its own (test addresses only).
    std::string primary{primary_ip};
    std::string monitor{monitor_ip};
    std::string primary6;                // "" none; else an IPv6 address the primary role also holds (/64)
    std::string groups_toml;             // "": [addresses] from primary/monitor; else these [[group]] blocks instead
    std::string monitor6;
    std::string auth{"keyed"};           // [auth] mode; keyed uses key_file
    std::string key_file;                // "" = the cluster's own key file (key_path())
    std::string extra_toml;              // appended verbatim
    std::uint32_t vlan{0};               // [port] vlan (802.1Q id; 0 untagged)
    std::string kernel_interface{"eth0"}; // shared mode: where the kernel holds the addresses
    std::string device;                  // "": <pmd>0,iface=eth0 (or the memif below)
    std::string port_toml;               // appended to [port] verbatim
    std::string memif_role;              // server | client, for net_memif
    std::string memif_socket;
    std::string metrics;                 // [control] metrics, "" off
};

class cluster {
public:
    explicit cluster(std::vector<std::string> nodes);
    ~cluster();

    topology& net() { return *topo_; }
    const std::string& dir() const { return dir_; }

    // Writes <dir>/<name>.toml; returns its path.
    std::string write_config(const std::string& name, std::uint32_t id, const node_options& o);
    // Starts heartwired for `name` (config written before) in its namespace.
    void start(const std::string& name);
    process& proc(const std::string& name) { return *procs_.at(name); }
    bool running(const std::string& name);
    void stop(const std::string& name, int sig);           // signal and wait for the exit
    std::string socket(const std::string& name) const { return dir_ + "/" + name + ".sock"; }
    const std::string& config_path(const std::string& name) const { return configs_.at(name); }
    // The key file every node of this cluster uses unless told otherwise: one random key
    // (id 1, send), mode 0600, written by the constructor.
    std::string key_path() const { return dir_ + "/group.key"; }

    // "status json" over the control socket; nullopt when the daemon does not answer.
    std::optional<std::string> status(const std::string& name);
    std::string role(const std::string& name);              // "" when unreachable
    bool wait_role(const std::string& name, const std::string& role,
                   std::chrono::milliseconds timeout = std::chrono::seconds(20));
    std::uint64_t counter(const std::string& name, const std::string& key);
    std::string logs();                               // every daemon's log, for failures

private:
    std::unique_ptr<topology> topo_;
    std::string dir_;
    std::map<std::string, std::unique_ptr<process>> procs_;
    std::map<std::string, std::string> configs_;
};

// Starts `first` (it becomes primary) then `second` (monitor) and checks that the client
// reaches the primary address at `first`'s MAC. Fails the calling test (gtest) otherwise.
void form_pair(cluster& c, const std::string& first = "a", const std::string& second = "b");

// Writes an executable /bin/sh script with `body`; returns `path`.
std::string write_script(const std::string& path, const std::string& body);

// Key files for keyed clusters.
struct test_key {
    std::uint8_t id{1};
    std::string hex;   // the secret in hex
    bool send{false};
};
std::string random_hex(std::size_t bytes);
// Writes `keys` to `path` atomically (temp file, chmod 0600, rename).
void write_key_file(const std::string& path, const std::vector<test_key>& keys);

// The value of "key": in a flat scan of a JSON text (string or number, as text).
std::string json_value(const std::string& json, const std::string& key);

// Sets /proc/sys/vm/nr_hugepages to at least `n` 2 MiB pages and makes sure hugetlbfs is
// mounted. Returns false (with a reason) when the machine cannot give them.
bool ensure_hugepages(unsigned n, std::string& why);

} // namespace heartwire::e2e
