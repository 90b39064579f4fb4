#pragma once
// rtnetlink over libmnl: the kernel address add/del that `shared` mode needs. Blocking
// calls; only the control thread uses them. Each returns 0 or -errno (documented per call);
// besides those, any call may return the kernel's own -errno (-EPERM without CAP_NET_ADMIN)
// or -ETIMEDOUT when the kernel does not answer within 5 s. The socket works in the network
// namespace it was created in.

#include <string>
#include <vector>

#include "heartwire/net_types.hpp"

struct mnl_socket; // libmnl's, at global scope (declaring it inside the class would name a new type)

namespace heartwire::control {

class netlink {
public:
    netlink();                      // opens a NETLINK_ROUTE socket; throws std::system_error on failure
    ~netlink();
    netlink(const netlink&) = delete;
    netlink& operator=(const netlink&) = delete;

    // Interface index, or -ENODEV when there is no such interface.
    int if_index(const std::string& ifname) const noexcept;
    // Adds `addr` (with its prefix length; broadcast set for prefixes below /31) to `ifname`.
    // 0 also when it is already there (EEXIST is success: the state we want holds).
    // -ENODEV: no such interface. -EINVAL: prefix length above 32.
    int add_address(const std::string& ifname, ipv4_prefix addr) noexcept;
    // Removes it (address and prefix length must match what was added). 0 also when it was
    // not there (EADDRNOTAVAIL is success). -ENODEV, -EINVAL as for add_address.
    int del_address(const std::string& ifname, ipv4_prefix addr) noexcept;
    // 1 when `ifname` holds `addr` (any prefix length), 0 when not, -ENODEV, -errno.
    int has_address(const std::string& ifname, ipv4_addr addr) noexcept;
    // IPv6, the same contracts. Added with IFA_F_NODAD: heartwire has probed the address
    // itself (RFC 4862 DAD at discovery) and a takeover must not wait a second of kernel
    // DAD before the address serves; and IFA_F_NOPREFIXROUTE off, so the prefix route comes
    // with it as for IPv4.
    int add_address(const std::string& ifname, const ipv6_prefix& addr) noexcept;
    int del_address(const std::string& ifname, const ipv6_prefix& addr) noexcept;
    int has_address(const std::string& ifname, const ipv6_addr& addr) noexcept;
    // Every address `ifname` holds, IPv4 and IPv6, in one dump each (a reconciliation of a
    // thousand groups' addresses reads the interface once, not once an address). 0,
    // -ENODEV, -errno; `v4`, `v6` are replaced.
    int addresses(const std::string& ifname, std::vector<ipv4_addr>& v4, std::vector<ipv6_addr>& v6) noexcept;
    // 1 when the link is administratively and operationally up (IFF_UP and IFF_RUNNING:
    // carrier, operstate UP or UNKNOWN), 0 when not, -ENODEV, -errno.
    int link_up(const std::string& ifname) noexcept;

private:
    int request(void* nlh) noexcept; // sends one request, waits for its ACK; 0 or -errno
    template <class Prefix> int change_address(const std::string& ifname, bool add, const Prefix& p) noexcept;
    template <class Addr> int find_address(const std::string& ifname, int family, const Addr& addr) noexcept;
    ::mnl_socket* sock_{};
    unsigned seq_{};
    unsigned portid_{};
};

} // namespace heartwire::control
