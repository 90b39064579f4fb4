#include "metrics_view.hpp"

#include <algorithm>
#include <string_view>

#include "control/metrics.hpp"

namespace heartwire::app {

namespace m = control::metrics;

namespace {

m::family gauge(std::string name, std::string help) { return {std::move(name), std::move(help), m::kind::gauge, {}, {}}; }
m::family counter(std::string name, std::string help) { return {std::move(name), std::move(help), m::kind::counter, {}, {}}; }

// A counter's name as Prometheus reads it: "ns" is nanoseconds there, not a solicitation.
std::string metric_name(std::string_view counter) {
    if (counter == "ns_answered") return "neighbour_solicitations_answered";
    return std::string(counter);
}

m::histogram log2_histogram(const io::rtt_histogram& h) {
    std::uint64_t counts[40];
    for (std::size_t i = 0; i < 40; ++i) counts[i] = h.bucket[i].get();
    return m::from_log2_ns({}, counts, 40, static_cast<double>(h.sum_ns.get()));
}

} // namespace

std::string metrics_text(const status_inputs& in) {
    std::vector<m::family> f;
    auto info = gauge("heartwire_build_info", "heartwired's version and node; always 1");
    info.samples.push_back({{{"version", HEARTWIRE_VERSION}, {"node", in.c.node.name}, {"node_id", std::to_string(in.c.node.id)}}, 1});
    f.push_back(std::move(info));

    auto roles = gauge("heartwire_role", "1 for the role the node holds in the group, 0 for the others");
    auto epoch = gauge("heartwire_epoch", "the group's epoch as this node knows it");
    auto holds = gauge("heartwire_holds_address", "1 while this node holds the group's primary or monitor address");
    auto peers = gauge("heartwire_peers", "live peers heard in the group");
    auto armed = gauge("heartwire_detector_armed", "1 while this node, as monitor, has heard the primary's answers");
    auto takeovers = counter("heartwire_takeovers_total", "takeovers of a failed primary by this node");
    auto false_takeovers = counter("heartwire_false_takeovers_total", "takeovers of a primary later heard alive");
    for (const auto& g : in.e.group_statuses()) {
        const std::string id = std::to_string(g.id);
        for (std::uint8_t r = 0; r < role_count; ++r) {
            const role rr = static_cast<role>(r);
            roles.samples.push_back({{{"group", id}, {"role", std::string(to_string(rr))}}, g.r == rr ? 1.0 : 0.0});
        }
        epoch.samples.push_back({{{"group", id}}, static_cast<double>(g.epoch)});
        holds.samples.push_back({{{"group", id}, {"address", "primary"}}, g.holds[0] ? 1.0 : 0.0});
        holds.samples.push_back({{{"group", id}, {"address", "monitor"}}, g.holds[1] ? 1.0 : 0.0});
        peers.samples.push_back({{{"group", id}}, static_cast<double>(g.peers)});
        armed.samples.push_back({{{"group", id}}, g.detector_armed ? 1.0 : 0.0});
        takeovers.samples.push_back({{{"group", id}}, static_cast<double>(g.takeovers)});
        false_takeovers.samples.push_back({{{"group", id}}, static_cast<double>(g.false_takeovers)});
    }
    for (auto* x : {&roles, &epoch, &holds, &peers, &armed, &takeovers, &false_takeovers}) f.push_back(std::move(*x));

    // The state machines' counters, summed over groups: drops by reason, the rest by name.
    const auto s = in.e.status();
    auto dropped = counter("heartwire_frames_dropped_total", "frames dropped, by reason (decode errors and admission checks)");
    auto sm = std::vector<m::family>{};
#define HW_X(name)                                                                                                     \
    if (std::string_view(#name).starts_with("drop_"))                                                                  \
        dropped.samples.push_back({{{"reason", std::string(std::string_view(#name).substr(5))}}, static_cast<double>(s.c.name)}); \
    else                                                                                                               \
        sm.push_back({"heartwire_" + metric_name(#name) + "_total",                                                     \
                      "state machine counter " #name " (src/core, HEARTWIRE_FSM_COUNTERS)", m::kind::counter,               \
                      {{{}, static_cast<double>(s.c.name)}}, {}});
    HEARTWIRE_FSM_COUNTERS(HW_X)
#undef HW_X
    const auto& rc = in.e.role_counters();
    const auto& xc = in.e.rx_counters();
    for (std::size_t i = 1; i < wire::decode_error_count; ++i) {
        const auto n = rc.drops[i].get() + xc.drops[i].get();
        dropped.samples.push_back({{{"reason", std::string(wire::to_string(static_cast<wire::decode_error>(i)))}}, static_cast<double>(n)});
    }
    f.push_back(std::move(dropped));
    // takeovers and false_takeovers are per group above already.
    for (auto& x : sm)
        if (std::none_of(f.begin(), f.end(), [&](const m::family& y) { return y.name == x.name; })) f.push_back(std::move(x));

    // The poll lcores' I/O counters (both lcores summed in pipelined mode).
#define HW_X(name)                                                                                                     \
    if (std::string_view(#name) != "loop_gap_max_ns")                                                                  \
        f.push_back({"heartwire_io_" #name "_total", "poll lcore counter " #name " (src/dpdk/engine.hpp)", m::kind::counter, \
                     {{{}, static_cast<double>(rc.name.get() + xc.name.get())}}, {}});
    HEARTWIRE_IO_COUNTERS(HW_X)
#undef HW_X
    auto gap_max = gauge("heartwire_loop_gap_max_seconds", "the latest a poll loop woke against its plan");
    gap_max.samples.push_back({{}, static_cast<double>(std::max(rc.loop_gap_max_ns.get(), xc.loop_gap_max_ns.get())) * 1e-9});
    f.push_back(std::move(gap_max));

    // Shared mode: the kernel's addresses following the engine's (control::address_keeper).
    if (in.kernel_addresses) {
        const auto& a = *in.kernel_addresses;
        f.push_back({"heartwire_kernel_address_repairs_total",
                     "differences between the kernel's addresses and the engine's that the reconciliation repaired",
                     m::kind::counter, {{{}, static_cast<double>(a.repairs)}}, {}});
        f.push_back({"heartwire_kernel_address_failures_total", "netlink calls on the kernel's addresses that failed",
                     m::kind::counter, {{{}, static_cast<double>(a.failures)}}, {}});
    }
    // Replicated stores (issue 10).
    {
        auto in_sync = gauge("heartwire_state_in_sync", "1 while the store's copy on the monitor is in sync with the primary's");
        auto degraded = gauge("heartwire_state_degraded", "1 while the primary completes writes without a monitor's acknowledgement");
        auto records = gauge("heartwire_state_records", "live records in the store");
        auto seq = gauge("heartwire_state_seq", "the newest write (primary) or the newest applied (monitor)");
        auto lag_e = gauge("heartwire_state_lag_entries", "writes the monitor has not acknowledged yet");
        auto lag_b = gauge("heartwire_state_lag_bytes", "bytes of writes the monitor has not acknowledged yet");
        auto lag_s = gauge("heartwire_state_lag_seconds", "age of the oldest write the monitor has not acknowledged");
        auto match = gauge("heartwire_state_last_match_age_seconds", "time since the two copies' digests last agreed");
        auto div = counter("heartwire_state_divergences_total", "the monitor's copy found to differ (digest or scrub), each repaired by a snapshot");
        auto snaps = counter("heartwire_state_snapshots_total", "snapshots sent (primary) or received (monitor)");
        auto retx = counter("heartwire_state_retransmits_total", "replication deltas sent again");
        auto writes = counter("heartwire_state_writes_total", "application writes the primary applied and logged");
        auto refused = counter("heartwire_state_refused_total", "application writes refused: this node was not the primary");
        const std::uint64_t now = in.e.status().now_ns;
        for (const auto& st : in.e.store_statuses()) {
            const auto& x = st.h;
            const m::labels l{{"store", in.c.state[st.index].name}};
            in_sync.samples.push_back({l, x.in_sync ? 1.0 : 0.0});
            degraded.samples.push_back({l, x.degraded ? 1.0 : 0.0});
            records.samples.push_back({l, static_cast<double>(x.records)});
            seq.samples.push_back({l, static_cast<double>(x.last_seq)});
            lag_e.samples.push_back({l, static_cast<double>(x.l.entries)});
            lag_b.samples.push_back({l, static_cast<double>(x.l.bytes)});
            lag_s.samples.push_back({l, static_cast<double>(x.l.oldest_ns) / 1e9});
            if (x.last_match_ns != 0 && x.last_match_ns <= now)
                match.samples.push_back({l, static_cast<double>(now - x.last_match_ns) / 1e9});
            div.samples.push_back({l, static_cast<double>(x.divergences)});
            snaps.samples.push_back({l, static_cast<double>(x.sc.snapshots + x.rc.snapshots)});
            retx.samples.push_back({l, static_cast<double>(x.sc.retransmits)});
            writes.samples.push_back({l, static_cast<double>(x.sc.writes)});
            refused.samples.push_back({l, static_cast<double>(x.refused)});
        }
        if (!in.c.state.empty())
            for (auto* x : {&in_sync, &degraded, &records, &seq, &lag_e, &lag_b, &lag_s, &match, &div, &snaps, &retx, &writes, &refused})
                f.push_back(std::move(*x));
    }
    auto rtt = m::family{"heartwire_probe_rtt_seconds", "probe round trips the monitor measured", m::kind::histogram, {}, {}};
    rtt.histograms.push_back(log2_histogram(in.e.rtt()));
    f.push_back(std::move(rtt));
    auto gaps = m::family{"heartwire_loop_gap_seconds", "how late the role lcore woke against its plan, every turn",
                          m::kind::histogram, {}, {}};
    gaps.histograms.push_back(log2_histogram(in.e.gaps()));
    f.push_back(std::move(gaps));
    return m::exposition(f);
}

} // namespace heartwire::app
