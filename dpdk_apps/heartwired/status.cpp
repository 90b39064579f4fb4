#include "status.hpp"

#include "json_text.hpp"

#include "heartwire/auth.hpp"

#include <cstdio>
#include <cstring>
#include <sstream>

namespace heartwire::app {

namespace {

double us(std::uint64_t ns) { return static_cast<double>(ns) / 1000.0; }

std::string holds_list(const io::status_snapshot& s) {
    std::string h;
    if (s.holds[0]) h += "primary";
    if (s.holds[1]) h += h.empty() ? "monitor" : ",monitor";
    return h.empty() ? "none" : h;
}

std::string sched_text(const status_inputs& in) {
    const int rc = in.e.sched_result();
    if (in.c.engine.sched == cfg::sched_policy::other) return "other";
    if (rc == 0) return "fifo " + std::to_string(in.c.engine.rt_priority);
    if (rc < 0) return "fifo (not applied yet)";
    return "other (fifo refused: errno " + std::to_string(rc) + ")";
}

void gaps_text(std::ostringstream& o, const char* name, const io::gap_histogram& g) {
    char buf[240];
    std::snprintf(buf, sizeof buf,
                  "%s turns %llu  p99 <= %.1f us  p99.99 <= %.1f us  max %.1f us  >100us %llu  >500us %llu  >1ms %llu\n",
                  name, static_cast<unsigned long long>(g.samples.get()), us(g.percentile(99)),
                  us(g.percentile(99.99)), us(g.max_ns.get()), static_cast<unsigned long long>(g.over_100us.get()),
                  static_cast<unsigned long long>(g.over_500us.get()), static_cast<unsigned long long>(g.over_1ms.get()));
    o << buf;
}

json gaps_json(const io::gap_histogram& g) {
    json o;
    o["samples"] = g.samples.get();
    o["max_ns"] = g.max_ns.get();
    o["p99_ns"] = g.percentile(99);
    o["p9999_ns"] = g.percentile(99.99);
    o["over_100us"] = g.over_100us.get();
    o["over_500us"] = g.over_500us.get();
    o["over_1ms"] = g.over_1ms.get();
    json b = json::array();
    for (unsigned i = 0; i < g.bucket.size(); ++i)
        if (const auto n = g.bucket[i].get(); n != 0) b.push_back(json::array({(std::uint64_t{2} << i) - 1, n}));
    o["buckets"] = std::move(b);
    return o;
}

std::uint64_t io_sum(const status_inputs& in, io::counter io::lcore_counters::*m) {
    return (in.e.role_counters().*m).get() + (in.e.rx_counters().*m).get();
}

std::string auth_text(const status_inputs& in, const io::status_snapshot& s) {
    if (in.c.auth.mode == cfg::auth_mode::none)
        return "none (UNAUTHENTICATED: any frame of group " + std::to_string(in.c.node.group) + " is believed)";
    char moving[80] = "";
    if (s.preferred_key != s.send_key)
        std::snprintf(moving, sizeof moving, " (moving to %u once every peer accepts it)", s.preferred_key);
    char buf[320];
    std::snprintf(buf, sizeof buf,
                  "keyed %s  send key %u%s  accepts %s  dropped: no tag %llu  unknown key %llu  bad tag %llu  replay %llu  "
                  "old boot %llu  other group %llu",
                  std::string(auth::to_string(auth::keyring::algo())).c_str(), s.send_key,
                  moving,
                  key_ids(s.accepted_keys).c_str(), static_cast<unsigned long long>(io_sum(in, &io::lcore_counters::auth_missing)),
                  static_cast<unsigned long long>(io_sum(in, &io::lcore_counters::auth_unknown_key)),
                  static_cast<unsigned long long>(io_sum(in, &io::lcore_counters::auth_bad_tag)),
                  static_cast<unsigned long long>(s.c.drop_replay), static_cast<unsigned long long>(s.c.drop_old_incarnation),
                  static_cast<unsigned long long>(s.c.drop_other_group));
    return buf;
}

// A role's addresses, IPv4 first, joined by `sep`.
std::string role_list(const cfg::config& c, bool primary, const char* sep) {
    std::string out;
    const auto add = [&](const std::string& a) {
        if (!out.empty()) out.append(sep);
        out.append(a);
    };
    for (const auto& p : cfg::role_v4(c.addresses, primary)) add(p.to_string());
    for (const auto& p : cfg::role_v6(c.addresses, primary)) add(p.to_string());
    return out;
}

json role_array(const cfg::config& c, bool primary) {
    json a = json::array();
    for (const auto& p : cfg::role_v4(c.addresses, primary)) a.push_back(p.to_string());
    for (const auto& p : cfg::role_v6(c.addresses, primary)) a.push_back(p.to_string());
    return a;
}

std::string steer_text(const io::xdp_steer& x) {
    std::string out = "XDP on " + x.ifname() + " (" + x.mode() + "):";
    const auto st = x.stats();
    for (std::size_t i = 0; i < io::steer_counter_count; ++i) {
        out.append(" ");
        out.append(io::to_string(static_cast<io::steer_counter>(i)));
        out.append(" ");
        out.append(std::to_string(st.n[i]));
    }
    return out;
}

// Group g's announcements: from its own kernel interface (and how that went), or from the
// DPDK port.
const announce_view* announce_of(const status_inputs& in, std::size_t g) {
    return in.announce && g < in.announce->size() ? &(*in.announce)[g] : nullptr;
}

std::string announce_text(const status_inputs& in, std::size_t g) {
    const announce_view* a = announce_of(in, g);
    if (!a || !a->kernel) return "from the DPDK port " + in.c.port.device + " (mac " + in.e.mac().to_string() + ")";
    const auto& k = *a->kernel;
    char buf[200];
    std::snprintf(buf, sizeof buf, "from %s (kernel interface, mac %s)  sent %llu  failed %llu%s%s  not held %llu",
                  k.ifname().c_str(), k.mac().to_string().c_str(), static_cast<unsigned long long>(k.sent()),
                  static_cast<unsigned long long>(k.failed()), k.last_error() ? ": " : "",
                  k.last_error() ? std::strerror(-k.last_error()) : "", static_cast<unsigned long long>(a->not_held));
    return buf;
}

void announce_json(json& o, const status_inputs& in, std::size_t g) {
    const announce_view* a = announce_of(in, g);
    o["interface"] = g < in.c.groups.size() ? in.c.groups[g].interface : std::string{};
    json an;
    if (!a || !a->kernel) {
        an["by"] = "port";
        an["from"] = in.c.port.device;
        an["mac"] = in.e.mac().to_string();
    } else {
        const auto& k = *a->kernel;
        an["by"] = "kernel";
        an["from"] = k.ifname();
        an["mac"] = k.mac().to_string();
        an["sent"] = k.sent();
        an["failed"] = k.failed();
        an["last_error"] = k.last_error() ? std::strerror(-k.last_error()) : "";
        an["not_held"] = a->not_held;
    }
    o["announce"] = std::move(an);
}

} // namespace

std::string key_ids(const fsm::key_set& k) {
    std::string out;
    for (unsigned i = 1; i < 256; ++i) {
        if (!fsm::key_in(k, static_cast<std::uint8_t>(i))) continue;
        if (!out.empty()) out.push_back(',');
        out.append(std::to_string(i)); // append, not a chain of operator+ (GCC 12 -Wrestrict, PR 105651)
    }
    return out;
}

std::string status_text(const status_inputs& in) {
    const auto s = in.e.status();
    const auto& rc = in.e.role_counters();
    std::ostringstream o;
    o << "node      " << in.c.node.name << " (id " << in.c.node.id << ", priority " << int(in.c.node.priority)
      << (in.c.groups.size() > 1 ? ", " + std::to_string(in.c.groups.size()) + " groups" : ", group " + std::to_string(in.c.groups.front().id))
      << ")  heartwired " HEARTWIRE_VERSION "\n";
    o << "role      " << to_string(s.r) << "  epoch " << s.epoch << "  holds " << holds_list(s) << "\n";
    o << "addresses primary " << role_list(in.c, true, ", ") << "  monitor " << role_list(in.c, false, ", ");
    if (in.c.port.vlan) o << "  vlan " << in.c.port.vlan;
    o << "\n";
    o << "port      " << in.c.port.device << "  mac " << in.e.mac().to_string() << "  mode "
      << cfg::to_string(in.c.port.mode) << "  engine " << cfg::to_string(in.c.engine.mode) << "/"
      << cfg::to_string(in.c.engine.idle) << "\n";
    o << "announce  " << announce_text(in, 0) << "\n";
    if (s.fault != fsm::fault_kind::none) {
        o << "fault     " << fsm::to_string(s.fault) << (in.fault_detail.empty() ? "" : " (" + in.fault_detail + ")");
        if (s.r == role::primary)
            o << (s.fault_answered && !s.fault_can_take_over ? "  no healthy monitor: keeps serving"
                                                             : "  waiting for the monitor's answer");
        o << "\n";
    }
    o << "auth      " << auth_text(in, s) << "\n";
    if (in.steer) o << "steering  " << steer_text(*in.steer) << "\n";
    if (s.switchover_pending) o << "switchover pending: waiting for the primary to drain\n";
    if (in.app_inflight >= 0) o << "inflight  " << in.app_inflight << " (reported by the application)\n";
    // The knobs as the engine runs them (a reload's changes show here once it took them).
    const auto& k = s.knobs;
    o << "detect    interval " << k.interval_ns / 1000 << " us  miss " << k.miss;
    if (k.watch_miss != k.miss && s.r == role::monitor) o << " (watching with " << k.watch_miss << ": flap damping)";
    o << "  probe " << cfg::to_string(in.c.detect.probe) << "\n";
    o << "garp      repeat " << k.garp_repeat << "  interval " << k.garp_interval_ns / 1000 << " us  refresh "
      << k.garp_refresh_ns / 1'000'000 << " ms  defend " << k.defend_interval_ns / 1'000'000 << " ms\n";
    o << "rank      priority " << int(k.priority) << "  preempt " << (k.preempt ? "yes" : "no") << "  reloads " << k.reloads << "\n";
    const auto& h = in.e.rtt();
    char buf[200];
    std::snprintf(buf, sizeof buf, "rtt       samples %llu  p50 <= %.1f us  p99 <= %.1f us  max %.1f us\n",
                  static_cast<unsigned long long>(h.samples.get()), us(h.percentile(50)), us(h.percentile(99)),
                  us(h.max_ns.get()));
    o << buf;
    o << "sched     poll lcore " << sched_text(in) << "  yield " << in.c.engine.yield_us << " us every "
      << in.c.engine.yield_period_us << " us  wake latency " << us(in.e.wake_latency_ns()) << " us\n";
    for (const auto& st : in.e.store_statuses()) {
        const auto& h = st.h;
        const std::string& name = in.c.state[st.index].name;
        std::snprintf(buf, sizeof buf,
                      "state     %s: %s %s%s  records %llu/%llu  seq %llu  acked %llu  lag %llu (%llu B, %.1f ms)  "
                      "divergences %llu  snapshots %llu\n",
                      name.c_str(), std::string(replica::to_string(h.s)).c_str(), h.in_sync ? "in sync" : "NOT in sync",
                      h.degraded ? " (degraded: writes complete here)" : "", static_cast<unsigned long long>(h.records),
                      static_cast<unsigned long long>(st.capacity / 2), static_cast<unsigned long long>(h.last_seq),
                      static_cast<unsigned long long>(h.s == replica::side::leader ? h.acked : h.last_match_seq),
                      static_cast<unsigned long long>(h.l.entries), static_cast<unsigned long long>(h.l.bytes),
                      static_cast<double>(h.l.oldest_ns) / 1e6, static_cast<unsigned long long>(h.divergences),
                      static_cast<unsigned long long>(h.sc.snapshots + h.rc.snapshots));
        o << buf;
    }
    gaps_text(o, "loop gaps", in.e.gaps());
    if (in.c.engine.mode == cfg::lcore_mode::pipelined) gaps_text(o, "rx gaps  ", in.e.rx_gaps());
    if (s.groups > 1) {
        const auto all = in.e.group_statuses();
        o << "groups    " << all.size() << " (the first in detail above; roles, epochs and peers of the first 50 below)\n";
        for (std::size_t g = 0; g < all.size() && g < 50; ++g) {
            const auto& x = all[g];
            const announce_view* a = announce_of(in, g);
            std::snprintf(buf, sizeof buf, "  group %-10u %-13s epoch %-5llu holds %-16s peers %u  takeovers %llu  announce from %s\n",
                          x.id, std::string(to_string(x.r)).c_str(), static_cast<unsigned long long>(x.epoch),
                          x.holds[0] && x.holds[1] ? "primary,monitor" : x.holds[0] ? "primary" : x.holds[1] ? "monitor" : "-",
                          x.peers, static_cast<unsigned long long>(x.takeovers),
                          a && a->kernel ? a->kernel->ifname().c_str() : "the port");
            o << buf;
        }
    }
    o << "peers\n";
    for (const auto& p : s.peers) {
        if (!p.valid) continue;
        std::snprintf(buf, sizeof buf, "  id %-6u %-13s prio %-3d epoch %-4llu mac %s  heard %.1f ms ago  rtt %.1f us\n",
                      p.id, p.down ? "down" : std::string(to_string(p.r)).c_str(), p.priority, static_cast<unsigned long long>(p.epoch),
                      p.mac.to_string().c_str(), static_cast<double>(s.now_ns - p.last_heard_ns) / 1e6, us(p.rtt_ns));
        o << buf;
    }
    o << "counters  rx " << rc.rx_packets.get() + in.e.rx_counters().rx_packets.get() << "  tx "
      << rc.tx_packets.get() << "  invalid " << rc.rx_invalid.get() + in.e.rx_counters().rx_invalid.get()
      << "  takeovers " << s.c.takeovers << "  probes " << s.c.probes_sent << "  answers " << s.c.answers
      << "  stalls " << s.c.stalls << "\n";
    const auto& hk = in.hooks;
    o << "hooks     started " << hk.started << "  queued " << hk.queued << "  coalesced " << hk.coalesced
      << "  dropped " << hk.dropped << "  running " << hk.running << "  waiting " << hk.waiting << "\n";
    for (const auto& t : in.takeovers) {
        std::snprintf(buf, sizeof buf, "takeover  of node %u: detection %.1f us\n", t.failed_id, us(t.detection_ns));
        o << buf;
    }
    for (const auto& n : in.notes) o << "notice    " << n.substr(n.find(' ') + 1) << "\n";
    return o.str();
}

// Through a JSON library: every string escaped (control characters as \u00XX), and bytes
// that are not UTF-8 (an interface name, a hook's words in a notice) replaced by U+FFFD
// instead of passed on to break the reader's parser. Keys in the order they always had
// (tools that read the first "role" find the node's own; the groups come last).
std::string status_json(const status_inputs& in) {
    const auto s = in.e.status();
    const auto& rc = in.e.role_counters();
    const auto& xc = in.e.rx_counters();
    json o;
    o["version"] = HEARTWIRE_VERSION;
    o["node"] = {{"name", in.c.node.name}, {"id", in.c.node.id}, {"priority", int(in.c.node.priority)},
                 {"group", in.c.node.group}, {"incarnation", s.incarnation}};
    json accepted = json::array();
    for (unsigned id = 1; id < 256; ++id)
        if (fsm::key_in(s.accepted_keys, static_cast<std::uint8_t>(id))) accepted.push_back(id);
    o["auth"] = {{"mode", cfg::to_string(in.c.auth.mode)},
                 {"algorithm", in.c.auth.mode == cfg::auth_mode::none ? std::string_view("none") : auth::to_string(auth::keyring::algo())},
                 {"send_key", int(s.send_key)},
                 {"preferred_key", int(s.preferred_key)},
                 {"accepted", std::move(accepted)}};
    if (in.steer) {
        const auto st = in.steer->stats();
        json x{{"interface", in.steer->ifname()}, {"mode", in.steer->mode()}};
        for (std::size_t i = 0; i < io::steer_counter_count; ++i) x[std::string(io::to_string(static_cast<io::steer_counter>(i)))] = st.n[i];
        o["steering"] = std::move(x);
    }
    o["addresses"] = {{"primary", role_array(in.c, true)}, {"monitor", role_array(in.c, false)}, {"vlan", in.c.port.vlan}};
    o["role"] = to_string(s.r);
    o["epoch"] = s.epoch;
    o["holds_primary"] = s.holds[0];
    o["holds_monitor"] = s.holds[1];
    o["mac"] = in.e.mac().to_string();
    o["watched_primary"] = s.watched_id;
    o["monitor_alive"] = s.monitor_alive;
    o["fault"] = fsm::to_string(s.fault);
    o["fault_detail"] = in.fault_detail;
    o["fault_answered"] = s.fault_answered;
    o["fault_can_take_over"] = s.fault_can_take_over;
    o["switchover_pending"] = s.switchover_pending;
    o["detector_armed"] = s.detector_armed;
    o["app_inflight"] = in.app_inflight;
    const auto& k = s.knobs;
    o["knobs"] = {{"interval_us", k.interval_ns / 1000},
                  {"miss", k.miss},
                  {"watch_miss", k.watch_miss},
                  {"garp_repeat", k.garp_repeat},
                  {"garp_interval_us", k.garp_interval_ns / 1000},
                  {"garp_refresh_ms", k.garp_refresh_ns / 1'000'000},
                  {"defend_interval_ms", k.defend_interval_ns / 1'000'000},
                  {"announce_interval_ms", k.announce_interval_ns / 1'000'000},
                  {"peer_timeout_ms", k.peer_timeout_ns / 1'000'000},
                  {"priority", int(k.priority)},
                  {"preempt", k.preempt},
                  {"reloads", k.reloads}};
    if (in.kernel_addresses) {
        const auto& a = *in.kernel_addresses;
        o["kernel_addresses"] = {{"applied", a.applied}, {"repairs", a.repairs}, {"failures", a.failures},
                                 {"stale_removed", a.stale_removed}, {"checks", a.checks}};
    }
    // Replicated stores (issue 10): where each stands against its peer.
    auto stores = nlohmann::ordered_json::array();
    const std::uint64_t now = s.now_ns;
    for (const auto& st : in.e.store_statuses()) {
        const auto& x = st.h;
        const auto& sc = in.c.state[st.index];
        const auto ago = [&](std::uint64_t t) -> std::int64_t { return t == 0 || t > now ? -1 : static_cast<std::int64_t>((now - t) / 1000); };
        stores.push_back({{"name", sc.name},
                          {"group", st.group_id},
                          {"mode", cfg::to_string(sc.mode)},
                          {"side", replica::to_string(x.s)},
                          {"in_sync", x.in_sync},
                          {"consistent", x.consistent},
                          {"degraded", x.degraded},
                          {"holding", x.holding},
                          {"stream", x.stream},
                          {"records", x.records},
                          {"capacity", st.capacity},
                          {"last_seq", x.last_seq},
                          {"acked_seq", x.acked},
                          {"completed_seq", x.completed},
                          {"last_match_seq", x.last_match_seq},
                          {"last_match_age_us", ago(x.last_match_ns)},
                          {"digest", x.digest},
                          {"lag", {{"entries", x.l.entries}, {"bytes", x.l.bytes}, {"oldest_us", x.l.oldest_ns / 1000}}},
                          {"rtt_ns", x.rtt_ns},
                          {"ack_latency_ns", {{"samples", x.sc.ack_latency.samples}, {"p50", x.sc.ack_latency.percentile_ns(50)},
                                              {"p99", x.sc.ack_latency.percentile_ns(99)}, {"p99_9", x.sc.ack_latency.percentile_ns(99.9)},
                                              {"max", x.sc.ack_latency.max_ns},
                                              {"mean", x.sc.ack_latency.samples ? x.sc.ack_latency.sum_ns / x.sc.ack_latency.samples : 0}}},
                          {"queued", st.queued},
                          {"refused", x.refused},
                          {"divergences", x.divergences},
                          {"scrub_passes", x.scrub_passes},
                          {"scrub_bad", x.scrub_bad},
                          {"joined_age_us", ago(x.joined_ns)},
                          {"sync_reached_age_us", ago(x.sync_reached_ns)},
                          {"sync_after_us", x.sync_reached_ns >= x.joined_ns && x.sync_reached_ns != 0
                                                ? static_cast<std::int64_t>((x.sync_reached_ns - x.joined_ns) / 1000)
                                                : -1},
                          {"sender", {{"writes", x.sc.writes}, {"frames", x.sc.frames}, {"entries", x.sc.entries_sent},
                                      {"retransmits", x.sc.retransmits}, {"rto_expiries", x.sc.rto_expiries},
                                      {"snapshots", x.sc.snapshots}, {"snapshot_records", x.sc.snapshot_records},
                                      {"acks", x.sc.acks}, {"window_full", x.sc.window_full},
                                      {"chunk_rewinds", x.sc.chunk_rewinds}, {"keepalives", x.sc.keepalives}}},
                          {"receiver", {{"frames", x.rc.frames}, {"applied", x.rc.applied}, {"duplicates", x.rc.duplicates},
                                        {"gaps", x.rc.gaps}, {"bad_frames", x.rc.bad_frames}, {"snapshots", x.rc.snapshots},
                                        {"snapshot_records", x.rc.snapshot_records}, {"digest_matches", x.rc.digest_matches},
                                        {"clear_slices", x.rc.clear_slices}, {"clear_drops", x.rc.clear_drops}}}});
    }
    o["state"] = std::move(stores);
    const auto& h = in.e.rtt();
    o["rtt_ns"] = {{"samples", h.samples.get()}, {"p50", h.percentile(50)}, {"p99", h.percentile(99)},
                   {"max", h.max_ns.get()}, {"last", s.last_rtt_ns}};
    o["sched"] = sched_text(in);
    o["wake_latency_ns"] = in.e.wake_latency_ns();
    const auto mb = in.e.mbufs();
    o["mbufs"] = {{"size", mb.size}, {"in_use", mb.in_use}};
    o["tx_backlog"] = in.e.tx_backlog();
    o["loop_gaps"] = gaps_json(in.e.gaps());
    o["rx_loop_gaps"] = gaps_json(in.e.rx_gaps());
    json peers = json::array();
    for (const auto& p : s.peers) {
        if (!p.valid) continue;
        peers.push_back({{"id", p.id},
                         {"role", p.down ? std::string("down") : std::string(to_string(p.r))},
                         {"mac", p.mac.to_string()},
                         {"priority", int(p.priority)},
                         {"epoch", p.epoch},
                         {"heard_ns_ago", s.now_ns - p.last_heard_ns},
                         {"rtt_ns", p.rtt_ns}});
    }
    o["peers"] = std::move(peers);
    json c;
#define HW_X(name) c[#name] = s.c.name;
    HEARTWIRE_FSM_COUNTERS(HW_X)
#undef HW_X
#define HW_X(name) c["io_" #name] = rc.name.get() + xc.name.get();
    HEARTWIRE_IO_COUNTERS(HW_X)
#undef HW_X
    json drops = json::object();
    for (std::size_t i = 1; i < wire::decode_error_count; ++i)
        if (const auto n = rc.drops[i].get() + xc.drops[i].get(); n != 0)
            drops[std::string(wire::to_string(static_cast<wire::decode_error>(i)))] = n;
    c["drops"] = std::move(drops);
    o["counters"] = std::move(c);
    const auto& hk = in.hooks;
    o["hooks"] = {{"submitted", hk.submitted}, {"started", hk.started}, {"queued", hk.queued}, {"coalesced", hk.coalesced},
                  {"dropped", hk.dropped}, {"running", hk.running}, {"waiting", hk.waiting}};
    json takeovers = json::array();
    for (const auto& t : in.takeovers)
        takeovers.push_back({{"failed_id", t.failed_id}, {"wall_ns", t.wall_ns}, {"detection_ns", t.detection_ns}, {"group", t.group}});
    o["takeovers"] = std::move(takeovers);
    o["notices"] = notices_json(in.notes);
    json groups = json::array();
    const auto all_groups = in.e.group_statuses();
    for (std::size_t i = 0; i < all_groups.size(); ++i) {
        const auto& x = all_groups[i];
        json g{{"id", x.id},
               {"role", to_string(x.r)},
               {"epoch", x.epoch},
               {"holds_primary", x.holds[0]},
               {"holds_monitor", x.holds[1]},
               {"detector_armed", x.detector_armed},
               {"peers", x.peers},
               {"takeovers", x.takeovers},
               {"false_takeovers", x.false_takeovers}};
        announce_json(g, in, i);
        // Its latest takeover: when it was decided (CLOCK_REALTIME) and how long the
        // primary had been silent then.
        if (in.last_takeover && i < in.last_takeover->size() && (*in.last_takeover)[i].wall_ns != 0)
            g["last_takeover"] = {{"wall_ns", (*in.last_takeover)[i].wall_ns}, {"detection_ns", (*in.last_takeover)[i].detection_ns}};
        groups.push_back(std::move(g));
    }
    o["groups"] = std::move(groups);
    return json_text(o);
}

} // namespace heartwire::app
