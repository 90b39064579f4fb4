#include "control/link_watch.hpp"

#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <ctime>
#include <system_error>

namespace heartwire::control {

namespace {

constexpr std::size_t buf_size = 32768; // one recv() of a link message with all its attributes
constexpr int rcvbuf_bytes = 1 << 20;   // a host creating many interfaces floods the group
constexpr int answer_timeout_ms = 1000;

struct parsed {
    const char* name{nullptr};
    int operstate{-1};
    std::optional<std::uint32_t> carrier_downs; // IFLA_CARRIER_DOWN_COUNT (Linux 4.16)
};

int read_attr(const nlattr* a, void* arg) {
    auto* p = static_cast<parsed*>(arg);
    switch (mnl_attr_get_type(a)) {
    case IFLA_IFNAME:
        if (mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0) p->name = mnl_attr_get_str(a);
        break;
    case IFLA_OPERSTATE:
        if (mnl_attr_validate(a, MNL_TYPE_U8) == 0) p->operstate = mnl_attr_get_u8(a);
        break;
    case IFLA_CARRIER_DOWN_COUNT:
        if (mnl_attr_validate(a, MNL_TYPE_U32) == 0) p->carrier_downs = mnl_attr_get_u32(a);
        break;
    default:
        break;
    }
    return MNL_CB_OK;
}

} // namespace

link_watch::link_watch(const std::string& ifname) {
    sock_ = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (!sock_) throw std::system_error(errno, std::generic_category(), "link_watch: socket(NETLINK_ROUTE)");
    setsockopt(mnl_socket_get_fd(sock_), SOL_SOCKET, SO_RCVBUF, &rcvbuf_bytes, sizeof rcvbuf_bytes);
    // Subscribe before asking: a change between the answer and the subscription would be lost.
    if (mnl_socket_bind(sock_, 1u << (RTNLGRP_LINK - 1), MNL_SOCKET_AUTOPID) < 0) {
        const int e = errno;
        mnl_socket_close(sock_);
        throw std::system_error(e, std::generic_category(), "link_watch: bind to RTNLGRP_LINK");
    }
    seq_ = static_cast<unsigned>(time(nullptr));
    links_[ifname] = {};
    request(ifname);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds{answer_timeout_ms};
    int err = 0;
    while (err == 0 && !links_[ifname].latest) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd p{fd(), POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) == 0) {
            err = -ETIMEDOUT;
            break;
        }
        drain();
        for (const auto& [name, e] : errors_)
            if (name == ifname) err = e;
        errors_.clear();
    }
    if (err != 0) {
        mnl_socket_close(sock_);
        throw std::system_error(-err, std::generic_category(), "link_watch: " + ifname);
    }
    links_[ifname].reported = links_[ifname].latest;
}

link_watch::~link_watch() { mnl_socket_close(sock_); }

int link_watch::fd() const noexcept { return mnl_socket_get_fd(sock_); }

void link_watch::request(const std::string& ifname) noexcept {
    alignas(nlmsghdr) char buf[MNL_SOCKET_BUFFER_SIZE];
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = RTM_GETLINK;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    nlh->nlmsg_seq = ++seq_;
    auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
    ifi->ifi_family = AF_UNSPEC;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, ifname.c_str());
    mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
    pending_[nlh->nlmsg_seq] = ifname;
    // A full socket buffer drops the request; the next overrun re-requests everything.
    mnl_socket_sendto(sock_, nlh, nlh->nlmsg_len);
}

void link_watch::drain() noexcept {
    alignas(nlmsghdr) char buf[buf_size];
    for (;;) {
        const ssize_t n = mnl_socket_recvfrom(sock_, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            // ENOBUFS: the kernel dropped messages for us; ask afresh for what we watch.
            if (errno == ENOBUFS) {
                for (const auto& [name, l] : links_) request(name);
                continue;
            }
            return; // EAGAIN: nothing more queued
        }
        int len = static_cast<int>(n);
        for (auto* m = reinterpret_cast<const nlmsghdr*>(buf); mnl_nlmsg_ok(m, len); m = mnl_nlmsg_next(m, &len))
            on_message(m);
    }
}

void link_watch::on_message(const void* msg) noexcept {
    const auto* nlh = static_cast<const nlmsghdr*>(msg);
    if (nlh->nlmsg_type == NLMSG_ERROR) {
        auto it = pending_.find(nlh->nlmsg_seq);
        if (it == pending_.end()) return;
        if (nlh->nlmsg_len >= mnl_nlmsg_size(sizeof(nlmsgerr))) {
            const auto* e = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
            if (e->error != 0) errors_.emplace_back(it->second, e->error);
        }
        pending_.erase(it); // the ACK (or error) ends a request
        return;
    }
    if (nlh->nlmsg_type != RTM_NEWLINK && nlh->nlmsg_type != RTM_DELLINK) return;
    if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(ifinfomsg))) return;
    const auto* ifi = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
    parsed p;
    mnl_attr_parse(nlh, sizeof(ifinfomsg), read_attr, &p);
    if (!p.name) return;
    auto it = links_.find(p.name);
    if (it == links_.end()) return;
    const unsigned f = ifi->ifi_flags;
    const bool lower = (f & IFF_LOWER_UP) || (f & IFF_RUNNING) || p.operstate == IF_OPER_UP;
    const bool up = nlh->nlmsg_type == RTM_NEWLINK && (f & IFF_UP) && lower;
    link& l = it->second;
    // The kernel's linkwatch folds a carrier off and on that land before it runs into one
    // message that says "up"; the carrier-down counter still moved, so the blip is seen.
    const bool counted_down = p.carrier_downs && l.carrier_downs && *p.carrier_downs != *l.carrier_downs;
    if (p.carrier_downs) l.carrier_downs = p.carrier_downs;
    if ((!up || counted_down) && l.reported != false) l.went_down = true;
    l.latest = up;
}

std::optional<bool> link_watch::poll(const std::string& ifname) {
    auto [it, fresh] = links_.try_emplace(ifname);
    if (fresh) request(ifname);
    drain();
    errors_.clear(); // a later name that does not exist just stays unknown
    link& l = it->second;
    if (l.went_down && l.reported != false) {
        l.went_down = false;
        l.reported = false;
        return false; // the blip: down now; the up that followed is reported next time
    }
    l.went_down = false;
    if (!l.latest || l.latest == l.reported) return std::nullopt;
    l.reported = l.latest;
    return l.latest;
}

std::optional<bool> link_watch::state(const std::string& ifname) const {
    auto it = links_.find(ifname);
    return it == links_.end() ? std::nullopt : it->second.latest;
}

} // namespace heartwire::control
