#pragma once
// Fixtures the state machine's unit tests share (test_fsm.cpp, test_trust.cpp): one machine
// driven by hand, and a formed pair in the simulated network.

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

#include "sim.hpp"

namespace heartwire::sim {

// A single machine driven by hand.
struct lone {
    fsm::state s;
    recorder out;
    std::uint64_t now{1};
    explicit lone(const fsm::params& p) { fsm::init(s, p); }
    void start() {
        fsm::event ev{fsm::event_kind::start};
        fsm::step(s, ev, now, out);
    }
    void tick_until(std::uint64_t t, std::uint64_t step = 100 * us) {
        while (now < t) {
            now = std::min(now + step, t);
            fsm::event ev{fsm::event_kind::tick};
            fsm::step(s, ev, now, out);
        }
    }
    void rx(const wire::frame& f) {
        fsm::event ev{fsm::event_kind::frame, &f};
        fsm::step(s, ev, now, out);
    }
    void hook_done(fsm::hook_kind h, bool ok) {
        fsm::event ev{fsm::event_kind::hook_done, nullptr, h, ok};
        fsm::step(s, ev, now, out);
    }
};

// A pair formed: node 0 primary, node 1 monitor.
using tweak = std::function<void(fsm::params& primary, fsm::params& monitor)>;

inline network formed_pair(const tweak& t = {}) {
    network net;
    auto p0 = test_params(1), p1 = test_params(2);
    if (t) t(p0, p1);
    net.add(p0);
    net.add(p1);
    net.start(0);
    net.run_for(80 * ms);
    net.start(1);
    EXPECT_TRUE(net.run_until([&] { return net.role_of(1) == role::monitor; }, 200 * ms));
    net.run_for(1 * ms); // some probes answered: the monitor watches node 0 by id and MAC
    return net;
}

} // namespace heartwire::sim
