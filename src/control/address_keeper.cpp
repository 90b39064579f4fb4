#include "control/address_keeper.hpp"

#include <algorithm>
#include <cstring>
#include <map>

#include "control/log.hpp"
#include "control/netlink.hpp"

namespace heartwire::control {

namespace {

constexpr std::size_t staged_slot = fsm::address_count; // slot[] index of the copy on lo

const char* role_name(std::size_t which) { return which == 0 ? "primary" : "monitor"; }

std::string group_tag(std::size_t groups, std::size_t g) {
    return groups > 1 ? "group #" + std::to_string(g) + ": " : std::string{};
}

// What one interface holds, sorted for lookups.
struct kernel_view {
    bool ok{false};
    std::vector<ipv4_addr> v4;
    std::vector<ipv6_addr> v6;
    bool has(ipv4_addr a) const { return std::binary_search(v4.begin(), v4.end(), a); }
    bool has(const ipv6_addr& a) const {
        return std::binary_search(v6.begin(), v6.end(), a, [](const ipv6_addr& x, const ipv6_addr& y) { return x.b < y.b; });
    }
};

} // namespace

std::vector<group_addresses> addresses_of(const cfg::config& c) {
    std::vector<group_addresses> out(c.groups.size());
    for (std::size_t g = 0; g < c.groups.size(); ++g) {
        out[g].iface = c.groups[g].interface;
        for (const bool primary : {true, false}) {
            out[g].v4[primary ? 0 : 1] = cfg::role_v4(c.groups[g].addresses, primary);
            out[g].v6[primary ? 0 : 1] = cfg::role_v6(c.groups[g].addresses, primary);
        }
    }
    return out;
}

address_keeper::address_keeper(std::vector<group_addresses> groups, netlink& nl) : nl_(nl) {
    g_.reserve(groups.size());
    for (auto& a : groups) {
        group_state gs;
        gs.a = std::move(a);
        g_.push_back(std::move(gs));
    }
}

// Every address of a role on `ifname` (as host routes on lo), added or removed. 0 or the
// first -errno; an address whose add succeeded counts as held even when another failed.
int address_keeper::change(group_state& gs, const std::string& ifname, bool add, bool host_routes, std::size_t which) {
    int first = 0;
    const bool on_iface = ifname == gs.a.iface;
    const auto one = [&](const auto& p, auto& held) {
        const int rc = add ? nl_.add_address(ifname, p) : nl_.del_address(ifname, p);
        if (rc != 0) {
            ++c_.failures;
            log::write(log::level::error, "netlink " + std::string(add ? "add " : "del ") + p.to_string() + " on " + ifname +
                                              ": " + std::strerror(-rc));
            if (first == 0) first = rc;
        }
        if (!on_iface) return;
        const auto at = std::find(held.begin(), held.end(), p.addr);
        if (add && rc == 0 && at == held.end()) held.push_back(p.addr);
        if (!add && at != held.end()) held.erase(at); // never announced once the role let it go
    };
    for (const auto& p : gs.a.v4[which]) one(host_routes ? ipv4_prefix{p.addr, 32} : p, gs.held4);
    for (const auto& p : gs.a.v6[which]) one(host_routes ? ipv6_prefix{p.addr, 128} : p, gs.held6);
    return first;
}

int address_keeper::apply(std::size_t g, fsm::address_id which, bool add) {
    if (g >= g_.size()) return -EINVAL;
    auto& gs = g_[g];
    ++gs.events;
    ++c_.applied;
    const std::size_t w = static_cast<std::size_t>(which);
    const int rc = change(gs, gs.a.iface, add, false, w);
    // The interface holds the primary addresses now (the kernel answers ARP for them and
    // picks them as source): the copy on lo can go. Before the monitor address is released
    // (the next event), so the route to the clients' subnet never lapses. Had the add
    // failed, the copy keeps the kernel serving until reconcile() repairs it.
    if (add && which == fsm::address_id::primary && rc == 0) stage(g, false);
    return rc;
}

bool address_keeper::stage(std::size_t g, bool on) {
    if (g >= g_.size() || !g_[g].a.stages) return true;
    auto& gs = g_[g];
    ++gs.events;
    if (gs.staged == on) return true;
    const int rc = change(gs, loopback, on, true, 0);
    if (rc != 0) {
        log::write(log::level::error, group_tag(g_.size(), g) + (on ? "staging the primary address on lo failed: the first "
                                                                      "requests after a takeover may be lost until it is repaired"
                                                                    : "removing the staged primary address from lo failed"));
        return false;
    }
    gs.staged = on;
    return true;
}

void address_keeper::reconcile(const std::vector<group_status>& published, std::chrono::steady_clock::time_point now,
                               std::uint64_t published_ns) {
    if (now < next_check_) return;
    if (published_ns != 0) {
        if (published_ns == last_published_ns_) {
            for (auto& gs : g_)
                for (auto& sl : gs.slot) sl.suspect = false; // start over once it publishes again
            return;
        }
        last_published_ns_ = published_ns;
    }
    next_check_ = now + check_period;
    ++c_.checks;
    // One dump per interface (and lo, when a group stages), not one per address.
    std::map<std::string, kernel_view> kernel;
    for (const auto& gs : g_) {
        kernel[gs.a.iface];
        if (gs.a.stages) kernel[loopback];
    }
    for (auto& [ifname, view] : kernel) {
        const int rc = nl_.addresses(ifname, view.v4, view.v6);
        view.ok = rc == 0;
        if (!view.ok) {
            ++c_.failures;
            continue; // those groups are judged at the next check
        }
        std::sort(view.v4.begin(), view.v4.end());
        std::sort(view.v6.begin(), view.v6.end(), [](const ipv6_addr& x, const ipv6_addr& y) { return x.b < y.b; });
    }
    const auto judge = [&](group_state& gs, std::size_t slot, bool differs) {
        auto& s = gs.slot[slot];
        if (!differs) {
            s.suspect = false;
            return false;
        }
        if (s.suspect && s.events == gs.events) {
            s.suspect = false;
            return true; // twice, with nothing in between that could explain it: repair
        }
        s.suspect = true;
        s.events = gs.events;
        return false;
    };
    for (std::size_t g = 0; g < g_.size() && g < published.size(); ++g) {
        auto& gs = g_[g];
        const auto& iface = kernel[gs.a.iface];
        if (!iface.ok) continue;
        const auto count = [&](const kernel_view& k, std::size_t which, std::size_t& n) {
            n = 0;
            for (const auto& p : gs.a.v4[which]) n += k.has(p.addr);
            for (const auto& p : gs.a.v6[which]) n += k.has(p.addr);
            return gs.a.v4[which].size() + gs.a.v6[which].size();
        };
        bool iface_has_primary = false;
        for (std::size_t which = 0; which < fsm::address_count; ++which) {
            std::size_t n = 0;
            const std::size_t all = count(iface, which, n);
            const bool want = published[g].holds[which];
            if (which == 0) iface_has_primary = n == all;
            if (!judge(gs, which, want ? n != all : n != 0)) continue;
            ++c_.repairs;
            log::write(log::level::warn, group_tag(g_.size(), g) +
                                             (want ? "repair: the engine holds the " + std::string(role_name(which)) +
                                                         " address but " + gs.a.iface + " lacked it: added"
                                                   : "repair: " + gs.a.iface + " held the " + std::string(role_name(which)) +
                                                         " address the engine gave up: removed"));
            if (change(gs, gs.a.iface, want, false, which) == 0 && which == 0) iface_has_primary = want;
        }
        if (!gs.a.stages) continue;
        const auto& lo = kernel[loopback];
        if (!lo.ok) continue;
        std::size_t n = 0;
        const std::size_t all = count(lo, 0, n);
        // The monitor holds the copy; the primary only until its interface holds the addresses.
        const bool want = published[g].r == role::monitor || (published[g].holds[0] && !iface_has_primary);
        gs.staged = n == all && all != 0;
        if (!judge(gs, staged_slot, want ? n != all : n != 0)) continue;
        ++c_.repairs;
        log::write(log::level::warn, group_tag(g_.size(), g) + (want ? "repair: the monitor's staged primary address was "
                                                                       "missing from lo: added"
                                                                     : "repair: a staged primary address left on lo: removed"));
        if (change(gs, loopback, want, true, 0) == 0) gs.staged = want;
    }
}

unsigned address_keeper::release_all() {
    unsigned removed = 0;
    const auto off = [&](const std::string& ifname, const auto& p) {
        if (nl_.has_address(ifname, p.addr) != 1) return;
        if (nl_.del_address(ifname, p) == 0 && nl_.has_address(ifname, p.addr) == 0) ++removed;
    };
    for (auto& gs : g_) {
        for (std::size_t which = 0; which < fsm::address_count; ++which) {
            for (const auto& p : gs.a.v4[which]) off(gs.a.iface, p);
            for (const auto& p : gs.a.v6[which]) off(gs.a.iface, p);
        }
        for (const auto& p : gs.a.v4[0]) off(loopback, ipv4_prefix{p.addr, 32});
        for (const auto& p : gs.a.v6[0]) off(loopback, ipv6_prefix{p.addr, 128});
        gs.held4.clear();
        gs.held6.clear();
        gs.staged = false;
    }
    return removed;
}

void address_keeper::remove_stale() {
    const unsigned n = release_all();
    c_.stale_removed += n;
    if (n != 0)
        log::write(log::level::warn, "removed " + std::to_string(n) + " address(es) a previous run left on the kernel");
}

bool address_keeper::holds(std::size_t g, ipv4_addr a) const noexcept {
    return g < g_.size() && std::find(g_[g].held4.begin(), g_[g].held4.end(), a) != g_[g].held4.end();
}

bool address_keeper::holds(std::size_t g, const ipv6_addr& a) const noexcept {
    return g < g_.size() && std::find(g_[g].held6.begin(), g_[g].held6.end(), a) != g_[g].held6.end();
}

} // namespace heartwire::control
