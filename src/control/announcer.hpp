#pragma once
// Announcements from a kernel interface: the gratuitous ARP (an RFC 5227 announcement) and
// the unsolicited neighbour advertisement (RFC 4861 7.2.6) that move the clients' caches to
// this node, sent through an AF_PACKET socket with the interface's own MAC. For an address
// group whose addresses live on another kernel interface than the DPDK port's (a dedicated
// heartbeat port): from the port they would carry the heartbeat port's MAC onto the
// heartbeat link, where no client listens. A VLAN interface tags them itself.
//
// Control layer: the control thread only. Each send is a few syscalls that never block
// (the socket is non-blocking); errors are returned, counted and logged once per failing
// spell, never thrown.

#include <cstdint>
#include <string>

#include "heartwire/net_types.hpp"

namespace heartwire::control {

class announcer {
public:
    // Opens the packet socket (protocol 0: it receives nothing). The interface need not
    // exist yet. Throws std::system_error when the socket cannot be made (no CAP_NET_RAW).
    explicit announcer(std::string ifname);
    ~announcer();
    announcer(const announcer&) = delete;
    announcer& operator=(const announcer&) = delete;

    // One frame each, from the interface as it is at the call: its index and MAC are read
    // every time, so an interface made again or given a new MAC is followed. 0, or -errno:
    // -ENODEV no such interface, -ENETDOWN it is down, -EAGAIN its queue is full, or what
    // sendto(2) says.
    int garp(ipv4_addr a);
    int na(const ipv6_addr& a);

    const std::string& ifname() const noexcept { return ifname_; }
    mac_addr mac() const noexcept { return mac_; } // of the last frame built (zero before)
    std::uint64_t sent() const noexcept { return sent_; }
    std::uint64_t failed() const noexcept { return failed_; }
    int last_error() const noexcept { return last_error_; } // 0 when the last send worked

private:
    template <class Encode> int send(const std::string& what, Encode&& encode);
    int current(int& ifindex) noexcept; // the interface's index and MAC (mac_), or -errno

    std::string ifname_;
    int fd_{-1};
    mac_addr mac_;
    std::uint64_t sent_{0};
    std::uint64_t failed_{0};
    int last_error_{0};
};

} // namespace heartwire::control
