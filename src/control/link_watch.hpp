#pragma once
// Carrier events from the kernel: the port's link going down is a local fact the engine
// should hear at once, not something it infers from silence. An rtnetlink socket
// subscribed to RTNLGRP_LINK, non-blocking, for the control thread to poll each turn.
//
// Carrier "up" means administratively up (IFF_UP) and the lower layer up: IFF_LOWER_UP or
// IFF_RUNNING in ifi_flags, or IFLA_OPERSTATE UP. A deleted interface is down.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

struct mnl_socket; // libmnl's, at global scope

namespace heartwire::control {

class link_watch {
public:
    // Subscribes, then asks the kernel for `ifname`'s state and waits (<= 1 s) for the
    // answer. Throws std::system_error: no netlink socket, no such interface (ENODEV), or
    // no answer (ETIMEDOUT). The socket works in the network namespace it was made in.
    explicit link_watch(const std::string& ifname);
    ~link_watch();
    link_watch(const link_watch&) = delete;
    link_watch& operator=(const link_watch&) = delete;

    // Readable when the kernel has queued link messages (for a caller's poll()).
    int fd() const noexcept;
    // Reads everything queued, never blocks. Returns `ifname`'s carrier when it differs
    // from what poll() last returned for it (the baseline being the state at construction),
    // else nullopt. A down and up again between two polls is an edge, not nothing: it is
    // reported as down now and as up on the next poll. A name not given to the constructor is watched from its first poll; its
    // first known state is reported as a change.
    std::optional<bool> poll(const std::string& ifname);
    // The latest carrier seen for `ifname`, without reading the socket; nullopt: unknown.
    std::optional<bool> state(const std::string& ifname) const;

private:
    struct link {
        std::optional<bool> latest;   // from the kernel
        std::optional<bool> reported; // what poll() last returned
        bool went_down{false};        // a down seen since the last poll(), even if up again
        std::optional<std::uint32_t> carrier_downs; // the kernel's count of carrier losses
    };
    void drain() noexcept;
    void request(const std::string& ifname) noexcept; // RTM_GETLINK; the answer arrives via drain()
    void on_message(const void* nlh) noexcept;

    ::mnl_socket* sock_{};
    unsigned seq_{};
    std::map<std::string, link> links_;        // the watched interfaces, by name
    std::map<unsigned, std::string> pending_;  // request seq -> name, until its ACK
    std::vector<std::pair<std::string, int>> errors_; // (name, -errno) answers since the last look
};

} // namespace heartwire::control
