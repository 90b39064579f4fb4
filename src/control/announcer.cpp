#include "control/announcer.hpp"

#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <span>
#include <system_error>

#include "control/log.hpp"
#include "heartwire/wire.hpp"

namespace heartwire::control {

announcer::announcer(std::string ifname) : ifname_(std::move(ifname)) {
    fd_ = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd_ < 0)
        throw std::system_error(errno, std::generic_category(), "announcements on " + ifname_ + ": socket(AF_PACKET) (needs CAP_NET_RAW)");
}

announcer::~announcer() {
    if (fd_ >= 0) ::close(fd_);
}

int announcer::current(int& ifindex) noexcept {
    ifindex = static_cast<int>(::if_nametoindex(ifname_.c_str()));
    if (ifindex == 0) return -ENODEV;
    ifreq ifr{};
    std::snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname_.c_str());
    if (::ioctl(fd_, SIOCGIFHWADDR, &ifr) != 0) return -errno;
    for (std::size_t i = 0; i < 6; ++i) mac_.b[i] = static_cast<std::uint8_t>(ifr.ifr_hwaddr.sa_data[i]);
    return 0;
}

template <class Encode>
int announcer::send(const std::string& what, Encode&& encode) {
    std::array<std::byte, 128> frame{};
    int ifindex = 0;
    int rc = current(ifindex);
    if (rc == 0) {
        const std::size_t n = encode(mac_, std::span<std::byte>{frame});
        sockaddr_ll to{};
        to.sll_family = AF_PACKET;
        to.sll_ifindex = ifindex;
        if (n == 0) rc = -EMSGSIZE;
        else if (::sendto(fd_, frame.data(), n, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to) != static_cast<ssize_t>(n))
            rc = -errno;
    }
    char line[256];
    if (rc == 0) {
        ++sent_;
        if (last_error_ != 0) {
            std::snprintf(line, sizeof line, "announcements on %s work again (%llu failed)", ifname_.c_str(),
                          static_cast<unsigned long long>(failed_));
            log::write(log::level::info, line);
        }
        last_error_ = 0;
        return 0;
    }
    ++failed_;
    // Once per failing spell (and again if the reason changes): a dead interface would
    // otherwise log every GARP refresh of every address on it.
    if (rc != last_error_) {
        std::snprintf(line, sizeof line,
                      "announcing %s on %s failed: %s; counted (status: announce failed), logged again when the error "
                      "changes or announcements work again",
                      what.c_str(), ifname_.c_str(), std::strerror(-rc));
        log::write(log::level::warn, line);
    }
    last_error_ = rc;
    return rc;
}

int announcer::garp(ipv4_addr a) {
    return send(a.to_string(), [&](const mac_addr& me, std::span<std::byte> out) { return wire::encode_garp(me, a, out); });
}

int announcer::na(const ipv6_addr& a) {
    return send(a.to_string(), [&](const mac_addr& me, std::span<std::byte> out) {
        return wire::encode_unsolicited_na(me, a, out);
    });
}

} // namespace heartwire::control
