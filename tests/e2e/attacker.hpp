#pragma once
// The attacker's tools for end-to-end tests: a raw AF_PACKET port inside a namespace the
// test made, heartwire frames built (and signed with any key) by the product's own codec,
// and the bridge's port security. Header only; used by test_attack.cpp.

#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cluster.hpp"
#include "heartwire/auth.hpp"
#include "heartwire/wire.hpp"

namespace heartwire::e2e {

using bytes = std::vector<std::byte>;

struct captured {
    bytes frame;
    bool outgoing{false};  // our own transmission, seen by the tap
    std::int64_t ts_ns{0}; // kernel timestamp (CLOCK_REALTIME)
    std::uint16_t vlan{0}; // 802.1Q id it arrived with (the kernel moves the tag out of line)
};

// An AF_PACKET socket on eth0 of a namespace this test made. Opened from a thread that
// entered the namespace; the socket stays in that namespace for life, so any thread may
// use it. protocol 0 sends only; another receives that protocol (outgoing too for ETH_P_ALL).
class raw_port {
public:
    raw_port(const std::string& ns, std::uint16_t protocol) {
        std::string err;
        std::thread t([&] {
            const int nsfd = ::open(("/var/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
            if (nsfd < 0 || ::setns(nsfd, CLONE_NEWNET) != 0) {
                err = "setns " + ns + ": " + std::strerror(errno);
                if (nsfd >= 0) ::close(nsfd);
                return;
            }
            ::close(nsfd);
            fd_ = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(protocol));
            if (fd_ < 0) {
                err = std::string("AF_PACKET socket: ") + std::strerror(errno);
                return;
            }
            sockaddr_ll a{};
            a.sll_family = AF_PACKET;
            a.sll_protocol = htons(protocol);
            a.sll_ifindex = static_cast<int>(if_nametoindex(topology::iface));
            if (a.sll_ifindex == 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
                err = "bind to " + std::string(topology::iface) + " in " + ns + ": " + std::strerror(errno);
            const int one = 1, rcvbuf = 8 << 20;
            ::setsockopt(fd_, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
            ::setsockopt(fd_, SOL_PACKET, PACKET_AUXDATA, &one, sizeof one);
            ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
        });
        t.join();
        if (!err.empty()) {
            if (fd_ >= 0) ::close(fd_);
            throw std::runtime_error(err);
        }
    }
    ~raw_port() { ::close(fd_); }
    raw_port(const raw_port&) = delete;
    raw_port& operator=(const raw_port&) = delete;

    // A full socket buffer (ENOBUFS) is waited out: the flood paces itself by it.
    bool send(std::span<const std::byte> f) {
        for (int tries = 0; tries < 100; ++tries) {
            if (::send(fd_, f.data(), f.size(), 0) == static_cast<ssize_t>(f.size())) return true;
            if (errno != ENOBUFS && errno != EAGAIN) return false;
            std::this_thread::sleep_for(std::chrono::microseconds(100));
        }
        return false;
    }

    std::optional<captured> recv(std::chrono::milliseconds timeout) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
        captured c;
        c.frame.resize(2048);
        sockaddr_ll from{};
        iovec iov{c.frame.data(), c.frame.size()};
        alignas(cmsghdr) char ctl[128];
        msghdr m{};
        m.msg_name = &from;
        m.msg_namelen = sizeof from;
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        m.msg_control = ctl;
        m.msg_controllen = sizeof ctl;
        const ssize_t n = ::recvmsg(fd_, &m, MSG_DONTWAIT);
        if (n <= 0) return std::nullopt;
        c.frame.resize(static_cast<std::size_t>(n));
        c.outgoing = from.sll_pkttype == PACKET_OUTGOING;
        for (cmsghdr* h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
            if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_TIMESTAMPNS) {
                timespec ts;
                std::memcpy(&ts, CMSG_DATA(h), sizeof ts);
                c.ts_ns = std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
            }
            if (h->cmsg_level == SOL_PACKET && h->cmsg_type == PACKET_AUXDATA) {
                tpacket_auxdata aux;
                std::memcpy(&aux, CMSG_DATA(h), sizeof aux);
                if (aux.tp_status & TP_STATUS_VLAN_VALID) c.vlan = aux.tp_vlan_tci & 0xfff;
            }
        }
        // A tag still in line (no offload on the way): take it out, as a receiver would.
        if (c.vlan == 0 && c.frame.size() >= 18 && wire::load_be16(c.frame.data() + 12) == wire::ethertype_vlan) {
            c.vlan = wire::load_be16(c.frame.data() + 14) & 0xfff;
            c.frame.erase(c.frame.begin() + 12, c.frame.begin() + 16);
        }
        return c;
    }

    void drain() {
        while (recv(std::chrono::milliseconds(0))) {
        }
    }

private:
    int fd_ = -1;
};

inline std::unique_ptr<auth::keyring> ring_of(std::uint8_t id, const std::string& hex) {
    const auto r = auth::parse_keys(std::to_string(id) + " " + hex + " send\n", "test key");
    std::string err;
    auto ring = r.ok() ? auth::keyring::make(r.keys, err) : nullptr;
    if (!ring) throw std::runtime_error("test keyring: " + r.error + err);
    return ring;
}

// A heartbeat frame; signed with `signer`'s send key, or untagged (auth alg 0) without one.
inline bytes hb_frame(const mac_addr& dst, const mac_addr& src, wire::hb_msg m, auth::keyring* signer) {
    m.auth_alg = signer ? static_cast<std::uint8_t>(auth::keyring::algo()) : 0;
    m.key_id = signer ? signer->send_key() : 0;
    bytes f(wire::eth_header::size() + wire::hb_header_size + wire::hb_max_payload + wire::hb_tag_size);
    const std::size_t n = wire::encode_heartbeat(dst, src, m, f);
    f.resize(n);
    if (signer && n > wire::hb_tag_size)
        signer->sign(std::span<const std::byte>(f).first(n - wire::hb_tag_size), std::span<std::byte>(f).last<wire::hb_tag_size>());
    return f;
}

inline void set_mac(bytes& f, std::size_t at, const mac_addr& m) {
    for (std::size_t i = 0; i < 6; ++i) f[at + i] = std::byte{m.b[i]};
}

// Port security, as a production switch would have it: the real nodes' MACs pinned to
// their bridge ports (static, sticky). Without it every frame x sends from a node's MAC
// moves that MAC to x's port on this learning bridge until the node sends again (its next
// announce, up to 10 ms later), and meanwhile the client's pings and the monitor's probes
// go to x: 17 of 150 pings lost in a measured run. That is layer 2, out of heartwire's
// reach; the spoofed frames still reach the nodes, which is what the tests are about.
inline void pin_macs(cluster& c, std::initializer_list<const char*> nodes) {
    for (const char* n : nodes) {
        const auto r = exec(c.net().bridge_ns(), "bridge fdb replace " + c.net().mac_of(n) + " dev " +
                                                     c.net().bridge_port(n) + " master static sticky");
        if (!r.ok()) throw std::runtime_error("bridge fdb replace for " + std::string(n) + ": " + r.err);
    }
}

} // namespace heartwire::e2e
