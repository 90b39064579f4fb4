#include "control/netlink.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <system_error>

namespace heartwire::control {

namespace {

// Large enough for one recv() of a dump batch (the kernel sizes batches to the reader's
// buffer, up to 32 KiB; libmnl >= 1.0.5 calls this MNL_SOCKET_DUMP_SIZE).
constexpr std::size_t buf_size = 32768;
// The kernel answers in microseconds; this only bounds a wedged kernel or a lost reply.
constexpr int reply_timeout_s = 5;

using data_cb = int (*)(const nlmsghdr* nlh, void* arg); // 1 = keep going, 0 = done

// Sends `nlh` and reads until its ACK (or, for a dump, NLMSG_DONE), handing data messages
// to `cb`. Replies carrying another sequence number (a late answer to a request that timed
// out) are skipped. Returns 0 or -errno: the kernel's error, or -ETIMEDOUT.
int transact(mnl_socket* sock, unsigned portid, nlmsghdr* nlh, data_cb cb, void* arg) noexcept {
    if (mnl_socket_sendto(sock, nlh, nlh->nlmsg_len) < 0) return -errno;
    const unsigned seq = nlh->nlmsg_seq;
    alignas(nlmsghdr) char buf[buf_size];
    bool cb_done = false;
    for (;;) {
        ssize_t n = mnl_socket_recvfrom(sock, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            return (errno == EAGAIN || errno == EWOULDBLOCK) ? -ETIMEDOUT : -errno;
        }
        int len = static_cast<int>(n);
        for (auto* m = reinterpret_cast<const nlmsghdr*>(buf); mnl_nlmsg_ok(m, len);
             m = mnl_nlmsg_next(m, &len)) {
            if (m->nlmsg_seq != seq || (m->nlmsg_pid != 0 && m->nlmsg_pid != portid)) continue;
            if (m->nlmsg_type == NLMSG_ERROR) {
                if (m->nlmsg_len < mnl_nlmsg_size(sizeof(nlmsgerr))) return -EBADMSG;
                const auto* e = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(m));
                return e->error; // 0 is the ACK
            }
            if (m->nlmsg_type == NLMSG_DONE) return 0;
            if (m->nlmsg_type == NLMSG_NOOP || m->nlmsg_type == NLMSG_OVERRUN) continue;
            if (cb && !cb_done) cb_done = cb(m, arg) == 0;
        }
    }
}

std::uint32_t be(ipv4_addr a) noexcept { return htonl(a.v); }

struct addr_query {
    unsigned ifindex;
    std::uint32_t addr_be;
    bool found;
    int family{AF_INET};
    const ipv6_addr* addr6{nullptr};
};

// An address dump of one family, filtered to one interface (a filter only under strict
// checking; the callbacks filter too).
nlmsghdr* put_addr_dump(char* buf, unsigned seq, int family, unsigned ifindex) noexcept {
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = RTM_GETADDR;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    nlh->nlmsg_seq = seq;
    auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
    ifa->ifa_family = static_cast<unsigned char>(family);
    ifa->ifa_index = ifindex;
    return nlh;
}

// The address an RTM_NEWADDR names, or null. IFA_LOCAL is the interface's own address;
// IFA_ADDRESS is the peer on point-to-point links and equal to IFA_LOCAL otherwise. Prefer
// LOCAL, as `ip addr` does.
const nlattr* address_attr(const nlmsghdr* nlh, unsigned len) {
    const nlattr* local = nullptr;
    const nlattr* address = nullptr;
    const auto* tail = static_cast<const char*>(mnl_nlmsg_get_payload_tail(nlh));
    for (auto* a = static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(nlh, sizeof(ifaddrmsg)));
         mnl_attr_ok(a, static_cast<int>(tail - reinterpret_cast<const char*>(a)));
         a = mnl_attr_next(a)) {
        if (mnl_attr_get_payload_len(a) != len) continue;
        if (mnl_attr_get_type(a) == IFA_LOCAL) local = a;
        else if (mnl_attr_get_type(a) == IFA_ADDRESS) address = a;
    }
    return local ? local : address;
}

int match_address(const nlmsghdr* nlh, void* arg) {
    auto* q = static_cast<addr_query*>(arg);
    if (nlh->nlmsg_type != RTM_NEWADDR) return 1;
    const auto* ifa = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(nlh));
    if (ifa->ifa_family != q->family || ifa->ifa_index != q->ifindex) return 1;
    const nlattr* use = address_attr(nlh, q->family == AF_INET ? 4u : 16u);
    const bool same = use && (q->family == AF_INET ? mnl_attr_get_u32(use) == q->addr_be
                                                   : std::memcmp(mnl_attr_get_payload(use), q->addr6->b.data(), 16) == 0);
    if (same) {
        q->found = true;
        return 0;
    }
    return 1;
}

struct addr_list {
    unsigned ifindex;
    std::vector<ipv4_addr>* v4;
    std::vector<ipv6_addr>* v6;
    bool failed{false}; // no memory for one more
};

int collect_address(const nlmsghdr* nlh, void* arg) {
    auto* q = static_cast<addr_list*>(arg);
    if (nlh->nlmsg_type != RTM_NEWADDR) return 1;
    const auto* ifa = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(nlh));
    if (ifa->ifa_index != q->ifindex || (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6)) return 1;
    const bool v4 = ifa->ifa_family == AF_INET;
    const nlattr* a = address_attr(nlh, v4 ? 4u : 16u);
    if (!a) return 1;
    try {
        if (v4) {
            q->v4->push_back(ipv4_addr{ntohl(mnl_attr_get_u32(a))});
        } else {
            ipv6_addr x;
            std::memcpy(x.b.data(), mnl_attr_get_payload(a), 16);
            q->v6->push_back(x);
        }
    } catch (...) {
        q->failed = true;
        return 0;
    }
    return 1;
}

struct link_query {
    bool up;
};

int read_link(const nlmsghdr* nlh, void* arg) {
    auto* q = static_cast<link_query*>(arg);
    if (nlh->nlmsg_type != RTM_NEWLINK) return 1;
    const auto* ifi = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
    // The kernel sets IFF_RUNNING only when the device is up and its operstate is UP or
    // UNKNOWN (dummy, tun): "administratively and operationally up" in one flag pair.
    q->up = (ifi->ifi_flags & IFF_UP) && (ifi->ifi_flags & IFF_RUNNING);
    return 0;
}

} // namespace

netlink::netlink() {
    sock_ = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
    if (!sock_) throw std::system_error(errno, std::generic_category(), "netlink: socket(NETLINK_ROUTE)");
    if (mnl_socket_bind(sock_, 0, MNL_SOCKET_AUTOPID) < 0) {
        const int e = errno;
        mnl_socket_close(sock_);
        throw std::system_error(e, std::generic_category(), "netlink: bind");
    }
    timeval tv{reply_timeout_s, 0};
    setsockopt(mnl_socket_get_fd(sock_), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    portid_ = mnl_socket_get_portid(sock_);
    seq_ = static_cast<unsigned>(time(nullptr));
}

netlink::~netlink() {
    if (sock_) mnl_socket_close(sock_);
}

int netlink::if_index(const std::string& ifname) const noexcept {
    if (ifname.empty() || ifname.size() >= IF_NAMESIZE) return -ENODEV;
    errno = 0;
    const unsigned idx = if_nametoindex(ifname.c_str());
    if (idx != 0) return static_cast<int>(idx);
    // ENODEV is the normal "no such interface"; anything else (EMFILE from the ioctl socket)
    // is passed on so it is not mistaken for a missing interface.
    return (errno == 0 || errno == ENXIO) ? -ENODEV : -errno;
}

int netlink::request(void* nlh) noexcept {
    return transact(sock_, portid_, static_cast<nlmsghdr*>(nlh), nullptr, nullptr);
}

namespace {

nlmsghdr* put_addr_msg(char* buf, std::uint16_t type, std::uint16_t flags, unsigned seq,
                       unsigned ifindex, ipv4_prefix p) noexcept {
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = flags;
    nlh->nlmsg_seq = seq;
    auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
    ifa->ifa_family = AF_INET;
    ifa->ifa_prefixlen = p.len;
    ifa->ifa_flags = 0;
    ifa->ifa_scope = RT_SCOPE_UNIVERSE;
    ifa->ifa_index = ifindex;
    // Both, as `ip addr add` sends them: the kernel keys the address on LOCAL and the
    // prefix route on ADDRESS.
    mnl_attr_put_u32(nlh, IFA_LOCAL, be(p.addr));
    mnl_attr_put_u32(nlh, IFA_ADDRESS, be(p.addr));
    return nlh;
}

nlmsghdr* put_addr_msg(char* buf, std::uint16_t type, std::uint16_t flags, unsigned seq, unsigned ifindex,
                       const ipv6_prefix& p) noexcept {
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = flags;
    nlh->nlmsg_seq = seq;
    auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
    ifa->ifa_family = AF_INET6;
    ifa->ifa_prefixlen = p.len;
    ifa->ifa_flags = IFA_F_NODAD;
    ifa->ifa_scope = p.addr.is_link_local() ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
    ifa->ifa_index = ifindex;
    mnl_attr_put(nlh, IFA_LOCAL, 16, p.addr.b.data());
    mnl_attr_put(nlh, IFA_ADDRESS, 16, p.addr.b.data());
    mnl_attr_put_u32(nlh, IFA_FLAGS, IFA_F_NODAD);
    return nlh;
}

// /31 and /32 have no broadcast address (RFC 3021); below that, the kernel would not fill
// it in for us, and ARP-based clients on the segment expect it. IPv6 has none.
void put_broadcast(nlmsghdr* nlh, ipv4_prefix p) noexcept {
    if (p.len >= 31) return;
    const std::uint32_t host_mask = p.len == 0 ? 0xffffffffu : (1u << (32 - p.len)) - 1;
    mnl_attr_put_u32(nlh, IFA_BROADCAST, htonl(p.addr.v | host_mask));
}
void put_broadcast(nlmsghdr*, const ipv6_prefix&) noexcept {}

constexpr unsigned max_len(const ipv4_prefix&) noexcept { return 32; }
constexpr unsigned max_len(const ipv6_prefix&) noexcept { return 128; }

addr_query query_of(unsigned idx, ipv4_addr a) noexcept { return {idx, be(a), false}; }
addr_query query_of(unsigned idx, const ipv6_addr& a) noexcept { return {idx, 0, false, AF_INET6, &a}; }

} // namespace

// Add or remove one address, IPv4 or IPv6: the state asked for counts as success (EEXIST
// on an add, EADDRNOTAVAIL on a removal).
template <class Prefix>
int netlink::change_address(const std::string& ifname, bool add, const Prefix& p) noexcept {
    if (p.len > max_len(p)) return -EINVAL;
    const int idx = if_index(ifname);
    if (idx < 0) return idx;
    alignas(nlmsghdr) char buf[MNL_SOCKET_BUFFER_SIZE];
    nlmsghdr* nlh = add ? put_addr_msg(buf, RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, ++seq_,
                                       static_cast<unsigned>(idx), p)
                        : put_addr_msg(buf, RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, ++seq_, static_cast<unsigned>(idx), p);
    if (add) put_broadcast(nlh, p);
    const int rc = request(nlh);
    return rc == (add ? -EEXIST : -EADDRNOTAVAIL) ? 0 : rc;
}

template <class Addr>
int netlink::find_address(const std::string& ifname, int family, const Addr& addr) noexcept {
    const int idx = if_index(ifname);
    if (idx < 0) return idx;
    alignas(nlmsghdr) char buf[MNL_SOCKET_BUFFER_SIZE];
    nlmsghdr* nlh = put_addr_dump(buf, ++seq_, family, static_cast<unsigned>(idx));
    addr_query q = query_of(static_cast<unsigned>(idx), addr);
    // The dump is read to NLMSG_DONE even after a match, so no stale batch is left queued.
    const int rc = transact(sock_, portid_, nlh, match_address, &q);
    if (rc < 0) return rc;
    return q.found ? 1 : 0;
}

int netlink::add_address(const std::string& ifname, ipv4_prefix addr) noexcept { return change_address(ifname, true, addr); }
int netlink::del_address(const std::string& ifname, ipv4_prefix addr) noexcept { return change_address(ifname, false, addr); }
int netlink::has_address(const std::string& ifname, ipv4_addr addr) noexcept { return find_address(ifname, AF_INET, addr); }
int netlink::add_address(const std::string& ifname, const ipv6_prefix& addr) noexcept { return change_address(ifname, true, addr); }
int netlink::del_address(const std::string& ifname, const ipv6_prefix& addr) noexcept { return change_address(ifname, false, addr); }
int netlink::has_address(const std::string& ifname, const ipv6_addr& addr) noexcept { return find_address(ifname, AF_INET6, addr); }

int netlink::addresses(const std::string& ifname, std::vector<ipv4_addr>& v4, std::vector<ipv6_addr>& v6) noexcept {
    v4.clear();
    v6.clear();
    const int idx = if_index(ifname);
    if (idx < 0) return idx;
    addr_list q{static_cast<unsigned>(idx), &v4, &v6};
    for (const int family : {AF_INET, AF_INET6}) {
        alignas(nlmsghdr) char buf[MNL_SOCKET_BUFFER_SIZE];
        nlmsghdr* nlh = put_addr_dump(buf, ++seq_, family, static_cast<unsigned>(idx));
        const int rc = transact(sock_, portid_, nlh, collect_address, &q);
        if (rc < 0) return rc;
        if (q.failed) return -ENOMEM;
    }
    return 0;
}

int netlink::link_up(const std::string& ifname) noexcept {
    const int idx = if_index(ifname);
    if (idx < 0) return idx;
    alignas(nlmsghdr) char buf[MNL_SOCKET_BUFFER_SIZE];
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = RTM_GETLINK;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    nlh->nlmsg_seq = ++seq_;
    auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_index = idx;
    // Skip the per-VF and stats blobs we do not read.
    mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
    link_query q{false};
    const int rc = transact(sock_, portid_, nlh, read_link, &q);
    if (rc < 0) return rc;
    return q.up ? 1 : 0;
}

} // namespace heartwire::control
