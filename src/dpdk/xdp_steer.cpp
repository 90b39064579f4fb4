#include "dpdk/xdp_steer.hpp"

#include <arpa/inet.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <utility>
#include <vector>

namespace heartwire::io {

const char* to_string(steer_counter c) noexcept {
    switch (c) {
#define HW_STEER_CXX_NAME(name) \
    case steer_counter::name: return #name;
        HW_STEER_COUNTERS(HW_STEER_CXX_NAME)
#undef HW_STEER_CXX_NAME
    }
    return "?";
}

namespace {

// libbpf returns -errno (and sets errno); bpf(2) wrappers return -1 and set errno.
[[noreturn]] void fail_errno(int err, const std::string& what) {
    throw std::system_error(err < 0 ? -err : err, std::generic_category(), what);
}

struct fd_guard {
    int fd{-1};
    explicit fd_guard(int f) noexcept : fd(f) {}
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    ~fd_guard() {
        if (fd >= 0) ::close(fd);
    }
    int release() noexcept { return std::exchange(fd, -1); }
};

} // namespace

xdp_steer xdp_steer::open(const std::string& ifname) {
    const std::string where = "XDP steering on " + ifname;
    const unsigned ifindex = ::if_nametoindex(ifname.c_str());
    if (ifindex == 0) throw std::runtime_error(where + ": no such interface in this network namespace");

    // The PMD attaches without a mode flag: the kernel picks driver mode where the driver
    // has it (veth, most NICs) and generic mode otherwise.
    xdp_steer s;
    s.ifname_ = ifname;
    std::uint32_t id = 0;
    int rc = bpf_xdp_query_id(static_cast<int>(ifindex), XDP_FLAGS_DRV_MODE, &id);
    if (rc < 0) fail_errno(rc, where + ": querying the attached XDP program");
    if (id == 0) {
        rc = bpf_xdp_query_id(static_cast<int>(ifindex), XDP_FLAGS_SKB_MODE, &id);
        if (rc < 0) fail_errno(rc, where + ": querying the attached XDP program");
        s.generic_ = id != 0;
    }
    if (id == 0)
        throw std::runtime_error(where + ": no XDP program is attached (is the port an af_xdp vdev with xdp_prog=" +
                                 "<path to heartwire_steer.bpf.o>, and started?)");
    s.prog_id_ = id;

    fd_guard prog(bpf_prog_get_fd_by_id(id));
    if (prog.fd < 0) fail_errno(errno, where + ": opening XDP program id " + std::to_string(id));
    bpf_prog_info info{};
    std::uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(prog.fd, &info, &len) != 0) fail_errno(errno, where + ": reading the program's info");
    const std::string name(info.name, strnlen(info.name, sizeof info.name));
    if (name != HW_STEER_PROG_NAME)
        throw std::runtime_error(where + ": the attached XDP program is \"" + name + "\" (id " + std::to_string(id) +
                                 "), not " HW_STEER_PROG_NAME
                                 ": pass xdp_prog=<path to heartwire_steer.bpf.o> to the af_xdp vdev, or detach "
                                 "the other program (ip link set dev " +
                                 ifname + " xdp off)");

    std::vector<std::uint32_t> map_ids(info.nr_map_ids);
    if (!map_ids.empty()) {
        const std::uint32_t nr = info.nr_map_ids;
        info = bpf_prog_info{};
        info.nr_map_ids = nr;
        info.map_ids = reinterpret_cast<std::uintptr_t>(map_ids.data());
        len = sizeof info;
        if (bpf_obj_get_info_by_fd(prog.fd, &info, &len) != 0)
            fail_errno(errno, where + ": reading the program's map ids");
        map_ids.resize(std::min<std::size_t>(map_ids.size(), info.nr_map_ids));
    }

    struct want {
        const char* name;
        bpf_map_type type;
        std::uint32_t key_size, value_size;
        int* fd;
    } wants[] = {
        {HW_STEER_MAP_ADDRS4, BPF_MAP_TYPE_HASH, 4, 1, &s.addrs4_fd_},
        {HW_STEER_MAP_ADDRS6, BPF_MAP_TYPE_HASH, sizeof(hw_steer_in6), 1, &s.addrs6_fd_},
        {HW_STEER_MAP_CONF, BPF_MAP_TYPE_ARRAY, 4, sizeof(hw_steer_conf), &s.conf_fd_},
        {HW_STEER_MAP_STATS, BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, &s.stats_fd_},
    };
    s.prog_fd_ = prog.release();
    for (const std::uint32_t mid : map_ids) {
        fd_guard m(bpf_map_get_fd_by_id(mid));
        if (m.fd < 0) fail_errno(errno, where + ": opening map id " + std::to_string(mid));
        bpf_map_info mi{};
        std::uint32_t mlen = sizeof mi;
        if (bpf_obj_get_info_by_fd(m.fd, &mi, &mlen) != 0) fail_errno(errno, where + ": reading map info");
        const std::string mname(mi.name, strnlen(mi.name, sizeof mi.name));
        for (auto& w : wants) {
            if (mname != w.name || *w.fd >= 0) continue;
            // An object from another build of the program: refuse rather than misread it.
            if (mi.type != static_cast<std::uint32_t>(w.type) || mi.key_size != w.key_size ||
                mi.value_size != w.value_size)
                throw std::runtime_error(where + ": map " + mname + " of program id " + std::to_string(id) +
                                         " has another layout than this heartwired expects (rebuild and "
                                         "reinstall heartwire_steer.bpf.o with the daemon)");
            *w.fd = m.release();
        }
    }
    for (const auto& w : wants)
        if (*w.fd < 0)
            throw std::runtime_error(where + ": program " HW_STEER_PROG_NAME " (id " + std::to_string(id) +
                                     ") has no map " + w.name + " (an old or foreign heartwire_steer.bpf.o?)");
    return s;
}

xdp_steer::xdp_steer(xdp_steer&& o) noexcept
    : ifname_(std::move(o.ifname_)), prog_id_(o.prog_id_), generic_(o.generic_),
      prog_fd_(std::exchange(o.prog_fd_, -1)), addrs4_fd_(std::exchange(o.addrs4_fd_, -1)),
      addrs6_fd_(std::exchange(o.addrs6_fd_, -1)), conf_fd_(std::exchange(o.conf_fd_, -1)),
      stats_fd_(std::exchange(o.stats_fd_, -1)) {}

xdp_steer& xdp_steer::operator=(xdp_steer&& o) noexcept {
    if (this == &o) return *this;
    close_all();
    ifname_ = std::move(o.ifname_);
    prog_id_ = o.prog_id_;
    generic_ = o.generic_;
    prog_fd_ = std::exchange(o.prog_fd_, -1);
    addrs4_fd_ = std::exchange(o.addrs4_fd_, -1);
    addrs6_fd_ = std::exchange(o.addrs6_fd_, -1);
    conf_fd_ = std::exchange(o.conf_fd_, -1);
    stats_fd_ = std::exchange(o.stats_fd_, -1);
    return *this;
}

xdp_steer::~xdp_steer() { close_all(); }

void xdp_steer::close_all() noexcept {
    for (int* fd : {&prog_fd_, &addrs4_fd_, &addrs6_fd_, &conf_fd_, &stats_fd_})
        if (*fd >= 0) ::close(std::exchange(*fd, -1));
}

namespace {

void put(int fd, const void* key, const std::string& what) {
    const std::uint8_t one = 1;
    if (bpf_map_update_elem(fd, key, &one, BPF_ANY) != 0) fail_errno(errno, what);
}

void erase(int fd, const void* key, const std::string& what) {
    if (bpf_map_delete_elem(fd, key) != 0 && errno != ENOENT) fail_errno(errno, what);
}

bool has(int fd, const void* key, const std::string& what) {
    std::uint8_t v = 0;
    if (bpf_map_lookup_elem(fd, key, &v) == 0) return true;
    if (errno != ENOENT) fail_errno(errno, what);
    return false;
}

std::string v6_text(const ipv6_bytes& a) {
    char buf[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET6, a.data(), buf, sizeof buf);
    return buf;
}

} // namespace

// The program compares against the packet's bytes: the key is in network byte order.
void xdp_steer::add(ipv4_addr a) {
    const std::uint32_t key = htonl(a.v);
    put(addrs4_fd_, &key, "XDP steering on " + ifname_ + ": watching " + a.to_string());
}

void xdp_steer::remove(ipv4_addr a) {
    const std::uint32_t key = htonl(a.v);
    erase(addrs4_fd_, &key, "XDP steering on " + ifname_ + ": unwatching " + a.to_string());
}

bool xdp_steer::contains(ipv4_addr a) const {
    const std::uint32_t key = htonl(a.v);
    return has(addrs4_fd_, &key, "XDP steering on " + ifname_ + ": looking up " + a.to_string());
}

void xdp_steer::add(const ipv6_bytes& a) {
    put(addrs6_fd_, a.data(), "XDP steering on " + ifname_ + ": watching " + v6_text(a));
}

void xdp_steer::remove(const ipv6_bytes& a) {
    erase(addrs6_fd_, a.data(), "XDP steering on " + ifname_ + ": unwatching " + v6_text(a));
}

bool xdp_steer::contains(const ipv6_bytes& a) const {
    return has(addrs6_fd_, a.data(), "XDP steering on " + ifname_ + ": looking up " + v6_text(a));
}

void xdp_steer::set_icmp_id(std::uint16_t id) {
    const std::uint32_t zero = 0;
    hw_steer_conf c{};
    c.icmp_id = id;
    if (bpf_map_update_elem(conf_fd_, &zero, &c, BPF_ANY) != 0)
        fail_errno(errno, "XDP steering on " + ifname_ + ": setting the echo id");
}

std::uint16_t xdp_steer::icmp_id() const {
    const std::uint32_t zero = 0;
    hw_steer_conf c{};
    if (bpf_map_lookup_elem(conf_fd_, &zero, &c) != 0)
        fail_errno(errno, "XDP steering on " + ifname_ + ": reading the echo id");
    return c.icmp_id;
}

steer_stats xdp_steer::stats() const {
    const int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0) fail_errno(ncpu, "XDP steering on " + ifname_ + ": counting possible CPUs");
    std::vector<std::uint64_t> per_cpu(static_cast<std::size_t>(ncpu)); // 8-byte values: no padding
    steer_stats s;
    for (std::uint32_t k = 0; k < steer_counter_count; ++k) {
        if (bpf_map_lookup_elem(stats_fd_, &k, per_cpu.data()) != 0)
            fail_errno(errno, "XDP steering on " + ifname_ + ": reading counters");
        for (auto v : per_cpu) s.n[k] += v;
    }
    return s;
}

} // namespace heartwire::io
