#include "cluster.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <gtest/gtest.h>

#include "control/ctl_socket.hpp"

namespace heartwire::e2e {

namespace {

std::string make_dir() {
    std::string t = "/tmp/hw-e2e-XXXXXX";
    if (!mkdtemp(t.data())) throw std::runtime_error("mkdtemp failed");
    return t;
}

} // namespace

cluster::cluster(std::vector<std::string> nodes)
    : topo_(std::make_unique<topology>(make_prefix("hw"), std::move(nodes))), dir_(make_dir()) {
    write_key_file(key_path(), {{1, random_hex(32), true}});
}

cluster::~cluster() {
    for (auto& [name, p] : procs_) {
        if (p->running()) {
            p->kill(SIGTERM);
            if (!p->wait_exit(std::chrono::seconds(5))) p->kill(SIGKILL);
        }
    }
    procs_.clear();
    // A daemon killed before it unlinked its hugepage files would keep the pages.
    std::system(("rm -rf /dev/hugepages/hw" + std::to_string(getpid()) + "* /var/run/dpdk/hw" +
                 std::to_string(getpid()) + "*").c_str());
    if (!std::getenv("HEARTWIRE_KEEP_E2E")) std::system(("rm -rf " + dir_).c_str());
}

void form_pair(cluster& c, const std::string& first, const std::string& second) {
    using namespace std::chrono_literals;
    c.start(first);
    ASSERT_TRUE(c.wait_role(first, "primary")) << c.logs();
    c.start(second);
    ASSERT_TRUE(c.wait_role(second, "monitor")) << c.logs();
    ASSERT_GT(ping(c.net().client_ns(), primary_ip, 3, 5s), 0) << c.logs();
    ASSERT_EQ(arp_mac(c.net().client_ns(), primary_ip), c.net().mac_of(first));
}

std::string write_script(const std::string& path, const std::string& body) {
    std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
    ::chmod(path.c_str(), 0755);
    return path;
}

std::string random_hex(std::size_t bytes) {
    std::ifstream rnd("/dev/urandom", std::ios::binary);
    std::string out;
    static const char* digits = "0123456789abcdef";
    for (std::size_t i = 0; i < bytes; ++i) {
        const auto c = static_cast<unsigned char>(rnd.get());
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

void write_key_file(const std::string& path, const std::vector<test_key>& keys) {
    const std::string tmp = path + ".tmp";
    {
        std::ofstream f(tmp, std::ios::trunc);
        for (const auto& k : keys) f << int(k.id) << " " << k.hex << (k.send ? " send" : "") << "\n";
    }
    ::chmod(tmp.c_str(), 0600);
    ::rename(tmp.c_str(), path.c_str()); // a reader never sees half a file
}

std::string cluster::write_config(const std::string& name, std::uint32_t id, const node_options& o) {
    std::string device = o.pmd + "0,iface=eth0";
    if (o.pmd == "net_memif")
        device = "net_memif0,role=" + o.memif_role + ",socket=" + o.memif_socket + ",socket-abstract=no,id=0";
    if (!o.device.empty()) device = o.device;
    std::ostringstream t;
    t << "[node]\nname = \"" << name << "\"\nid = " << id << "\npriority = " << int(o.priority);
    if (o.groups_toml.empty()) t << "\ngroup = " << o.group;
    t << "\n\n";
    t << "[auth]\nmode = \"" << o.auth << "\"\n";
    if (o.auth == "keyed") t << "key_file = \"" << (o.key_file.empty() ? key_path() : o.key_file) << "\"\n";
    t << "\n";
    t << "[port]\neal = [\"-l\", \"" << o.lcores << "\", \"--no-pci\", \"--file-prefix\", \"hw" << getpid() << name
      << "\", \"--log-level\", \"lib.eal:error\"";
    if (o.pmd != "net_memif") t << ", \"--no-huge\", \"-m\", \"256\"";
    else t << ", \"-m\", \"128\", \"--huge-unlink\""; // pages go back when the process dies
    t << "]\ndevice = \"" << device << "\"\nmode = \"" << o.mode << "\"\n";
    if (o.mode == "shared") t << "kernel_interface = \"" << o.kernel_interface << "\"\n";
    if (o.vlan) t << "vlan = " << o.vlan << "\n";
    t << o.port_toml;
    if (!is_test_address(o.primary) || !is_test_address(o.monitor))
        throw std::invalid_argument("e2e harness: addresses " + o.primary + ", " + o.monitor + " refused: not in 169.254.10.0/24");
    for (const auto* a : {&o.primary6, &o.monitor6})
        if (!a->empty() && !is_test_address(*a))
            throw std::invalid_argument("e2e harness: address " + *a + " refused: not in fd00:6877::/64");
    const auto role = [](const std::string& v4, const std::string& v6) {
        return v6.empty() ? "\"" + v4 + "/24\"" : "[\"" + v4 + "/24\", \"" + v6 + "/64\"]";
    };
    if (o.groups_toml.empty())
        t << "\n[addresses]\nprimary = " << role(o.primary, o.primary6) << "\nmonitor = " << role(o.monitor, o.monitor6)
          << "\n\n";
    else
        t << "\n" << o.groups_toml << "\n";
    t << "[detect]\ninterval_us = " << o.interval_us << "\nmiss = " << o.miss << "\nprobe = \"" << o.probe
      << "\"\n\n";
    t << "[engine]\nmode = \"" << o.engine << "\"\nidle = \"" << o.idle << "\"\nidle_max_sleep_us = 200\n\n";
    t << "[control]\nsocket = \"" << socket(name) << "\"\nlog_level = \"debug\"\n";
    if (!o.metrics.empty()) t << "metrics = \"" << o.metrics << "\"\n";
    t << "\n";
    t << o.extra_toml << "\n";
    const std::string path = dir_ + "/" + name + ".toml";
    std::ofstream(path) << t.str();
    configs_[name] = path;
    return path;
}

void cluster::start(const std::string& name) {
    procs_.erase(name);
    procs_[name] = std::make_unique<process>(topo_->ns_name(name), std::vector<std::string>{HEARTWIRED_PATH, "--config", configs_.at(name)},
                                             dir_ + "/" + name + ".log");
}

bool cluster::running(const std::string& name) {
    auto it = procs_.find(name);
    return it != procs_.end() && it->second->running();
}

void cluster::stop(const std::string& name, int sig) {
    auto& p = proc(name);
    p.kill(sig);
    p.wait_exit(std::chrono::seconds(10));
}

std::optional<std::string> cluster::status(const std::string& name) {
    try {
        return control::ctl_request(socket(name), "status json", std::chrono::milliseconds(1000));
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

std::string cluster::role(const std::string& name) {
    auto s = status(name);
    return s ? json_value(*s, "role") : std::string{};
}

bool cluster::wait_role(const std::string& name, const std::string& want, std::chrono::milliseconds timeout) {
    return wait_until([&] { return role(name) == want; }, timeout, std::chrono::milliseconds(20));
}

std::uint64_t cluster::counter(const std::string& name, const std::string& key) {
    auto s = status(name);
    if (!s) return 0;
    const std::string v = json_value(*s, key);
    return v.empty() ? 0 : std::stoull(v);
}

std::string cluster::logs() {
    std::string all;
    for (const auto& [name, p] : procs_) {
        std::string state = "running";
        if (!p->running()) {
            const auto code = p->wait_exit(std::chrono::milliseconds(0));
            state = code ? "exited with " + std::to_string(*code) + (*code > 128 ? " (signal " + std::to_string(*code - 128) + ")" : "") : "gone";
        }
        all += "---- " + name + " (" + state + ") ----\n" + p->log();
    }
    return all;
}

std::string json_value(const std::string& json, const std::string& key) {
    const std::string k = "\"" + key + "\":";
    auto at = json.find(k);
    if (at == std::string::npos) return {};
    at += k.size();
    if (at < json.size() && json[at] == '"') {
        const auto end = json.find('"', at + 1);
        return json.substr(at + 1, end - at - 1);
    }
    auto end = json.find_first_of(",}]", at);
    return json.substr(at, end - at);
}

bool ensure_hugepages(unsigned n, std::string& why) {
    auto read_num = [](const char* path) {
        std::ifstream f(path);
        long v = -1;
        f >> v;
        return v;
    };
    const char* nr = "/proc/sys/vm/nr_hugepages";
    if (read_num(nr) < static_cast<long>(n)) {
        std::ofstream(nr) << n;
        if (read_num(nr) < static_cast<long>(n)) {
            why = "could not allocate " + std::to_string(n) + " hugepages (have " + std::to_string(read_num(nr)) + ")";
            return false;
        }
    }
    struct stat st{};
    if (stat("/dev/hugepages", &st) != 0) mkdir("/dev/hugepages", 0755);
    if (std::system("grep -qs ' /dev/hugepages hugetlbfs ' /proc/mounts || mount -t hugetlbfs nodev /dev/hugepages") !=
        0) {
        why = "cannot mount hugetlbfs on /dev/hugepages";
        return false;
    }
    return true;
}

} // namespace heartwire::e2e
