// Writes the seed corpora of the fuzz targets: frames made by the real encoders (decode),
// scripts in fsm_script.hpp's language (fsm), and the example config with variants
// (config). `scripts/fuzz.sh --seed-corpus` builds and runs it; run it again whenever the
// wire format, the script language or the config keys change. It replaces only the
// `seed-*` files; what the fuzzer found and merged (--update-corpus) stays.
//
//   gen_corpus <repo root>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <string>
#include <vector>

#include "fsm_script.hpp"
#include "heartwire/config.hpp"
#include "heartwire/wire.hpp"

namespace {

using namespace heartwire;
using namespace heartwire::wire;
namespace fs = std::filesystem;
using bytes = std::vector<std::byte>;

fs::path root;
int problems = 0;

void write(const std::string& dir, const std::string& name, const void* data, std::size_t n) {
    const fs::path p = root / "fuzz" / "corpus" / dir / ("seed-" + name);
    std::ofstream f(p, std::ios::binary);
    f.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
    if (!f) {
        std::fprintf(stderr, "gen_corpus: cannot write %s\n", p.c_str());
        std::exit(1);
    }
}

void clear_seeds(const std::string& dir) {
    const fs::path d = root / "fuzz" / "corpus" / dir;
    fs::create_directories(d);
    for (const auto& e : fs::directory_iterator(d))
        if (e.path().filename().string().rfind("seed-", 0) == 0) fs::remove(e.path());
}

// ---------------------------------------------------------------- decode: frames

constexpr mac_addr mac_a{{0x02, 0, 0, 0, 0, 1}};
constexpr mac_addr mac_b{{0x02, 0, 0, 0, 0, 2}};
constexpr ipv4_addr primary_ip{0xa9fe0a64}; // 169.254.10.100
constexpr ipv4_addr monitor_ip{0xa9fe0a65}; // 169.254.10.101
// fd00:6877::100 and ::101, our ULA.
constexpr ipv6_addr primary_ip6{{0xfd, 0x00, 0x68, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00}};
constexpr ipv6_addr monitor_ip6{{0xfd, 0x00, 0x68, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x01}};

void frame(const std::string& name, const bytes& b, std::size_t n) {
    if (n == 0) {
        std::fprintf(stderr, "gen_corpus: the encoder refused decode seed %s\n", name.c_str());
        ++problems;
        return;
    }
    write("decode", name, b.data(), n);
}

// IPv6: what a node sends when it claims, defends and answers an address, and a few the
// decoder must refuse.
void ipv6_seeds(bytes& b, const bytes& ping) {
    frame("nd-unsolicited-na", b, encode_unsolicited_na(mac_a, primary_ip6, b));
    frame("nd-dad-ns", b, encode_dad_ns(mac_a, primary_ip6, b));
    nd_msg ns;
    ns.src = monitor_ip6;
    ns.dst = primary_ip6.solicited_node();
    ns.target = primary_ip6;
    ns.lladdr = mac_b;
    ns.has_lladdr = true;
    std::size_t n = encode_ns(mac_b, ns, b);
    frame("nd-ns", b, n);
    const bytes ns_frame(b.begin(), b.begin() + static_cast<long>(n));
    const auto decoded = decode(ns_frame);
    frame("nd-solicited-na", b, encode_na_answer(decoded, mac_a, b));
    nd_msg probe = ns; // unicast unreachability probe, no option
    probe.dst = primary_ip6;
    probe.has_lladdr = false;
    frame("nd-ns-unicast", b, encode_ns(mac_a, mac_b, probe, b));
    icmp6_echo e;
    e.src = monitor_ip6;
    e.dst = primary_ip6;
    e.id = 0x4856;
    e.seq = 7;
    e.payload = ping;
    frame("icmp6-request", b, encode_icmp6_echo(mac_a, mac_b, e, b));
    e.is_reply = true;
    std::swap(e.src, e.dst);
    frame("icmp6-reply", b, encode_icmp6_echo(mac_b, mac_a, e, b));
    // Refused, each at its own check: the hop limit and the next header are outside the
    // ICMPv6 checksum, so changing them leaves it valid. 254: the NA crossed a router;
    // 0: a hop-by-hop header, as MLD reports come.
    n = encode_unsolicited_na(mac_a, primary_ip6, b);
    b[eth_header::size() + 7] = std::byte{254};
    frame("bad-nd-hop-limit", b, n);
    n = encode_unsolicited_na(mac_a, primary_ip6, b);
    b[eth_header::size() + 6] = std::byte{0};
    frame("bad-ipv6-hop-by-hop", b, n);
}

void decode_seeds() {
    clear_seeds("decode");
    bytes b(2048);
    // The announce payload: the accepted-keys TLV (type 1, 32 bytes, key ids 1 and 2).
    bytes tlv(34);
    tlv[0] = std::byte{1};
    tlv[1] = std::byte{32};
    tlv[2] = std::byte{0x06};
#define HW_X(name, val)                                                                          \
    {                                                                                            \
        hb_msg m;                                                                                \
        m.type = hb_type::name;                                                                  \
        m.role = 2;                                                                              \
        m.priority = 100;                                                                        \
        m.node_id = 1;                                                                           \
        m.epoch = 3;                                                                             \
        m.seq = 1000 + val;                                                                      \
        m.ack_seq = 999;                                                                         \
        m.ts_ns = 123'456'789;                                                                   \
        m.ts_echo_ns = 123'000'000;                                                              \
        m.flags = hb_flag_holds_primary;                                                         \
        m.group = 1;                                                                             \
        m.incarnation = 1'700'000'000'000'000'000;                                               \
        m.key_id = 1;                                                                            \
        m.auth_alg = 1;                                                                          \
        if (hb_type::name == hb_type::announce) m.payload = tlv;                                 \
        frame("hb-" #name, b, encode_heartbeat(mac_addr::heartwire_group(), mac_a, m, b));      \
        m.auth_alg = 0;                                                                          \
        frame("hb-" #name "-untagged", b, encode_heartbeat(mac_b, mac_a, m, b));                 \
    }
    HEARTWIRE_HB_TYPES(HW_X)
#undef HW_X
    arp_msg req{arp_op_request, mac_a, monitor_ip, {}, primary_ip};
    frame("arp-request", b, encode_arp(mac_addr::broadcast(), mac_a, req, b));
    arp_msg rep{arp_op_reply, mac_b, primary_ip, mac_a, monitor_ip};
    frame("arp-reply", b, encode_arp(mac_a, mac_b, rep, b));
    frame("arp-garp", b, encode_garp(mac_a, primary_ip, b));
    frame("arp-probe", b, encode_arp_probe(mac_a, primary_ip, b));
    bytes ping(56);
    for (std::size_t i = 0; i < ping.size(); ++i) ping[i] = std::byte(i);
    icmp_echo e;
    e.src = monitor_ip;
    e.dst = primary_ip;
    e.id = 0x4856;
    e.seq = 7;
    e.payload = ping;
    frame("icmp-request", b, encode_icmp_echo(mac_b, mac_a, e, b));
    e.is_reply = true;
    std::swap(e.src, e.dst);
    frame("icmp-reply", b, encode_icmp_echo(mac_a, mac_b, e, b));
    // A few the decoder must refuse, each at a different check.
    hb_msg m;
    m.type = hb_type::probe;
    std::size_t n = encode_heartbeat(mac_b, mac_a, m, b);
    frame("bad-hb-truncated", b, n > 30 ? 30 : n);
    n = encode_heartbeat(mac_b, mac_a, m, b);
    b[eth_header::size()] = std::byte{1}; // version 1
    frame("bad-hb-version1", b, n);
    n = encode_arp(mac_addr::broadcast(), mac_a, req, b);
    store_be16(&b[12], ethertype_vlan);
    frame("bad-vlan", b, n);
    ipv6_seeds(b, ping);
}

// ---------------------------------------------------------------- fsm: scripts

class script {
public:
    script(std::uint8_t config, std::uint8_t prios = 0, std::uint8_t starts = 0, std::uint8_t timing = 0)
        : b_{config, prios, starts, timing} {}
    script& op(fuzz::op o, std::size_t node, std::initializer_list<std::uint8_t> args = {}) {
        return op(o, node, std::vector<std::uint8_t>(args));
    }
    script& op(fuzz::op o, std::size_t node, const std::vector<std::uint8_t>& args) {
        b_.push_back(static_cast<std::uint8_t>(o));
        b_.push_back(static_cast<std::uint8_t>(node));
        b_.insert(b_.end(), args.begin(), args.end());
        return *this;
    }
    script& wait_ms(unsigned t) { return op(fuzz::op::advance_5ms, 0, {static_cast<std::uint8_t>(t / 5)}); }
    const std::vector<std::uint8_t>& bytes() const { return b_; }

private:
    std::vector<std::uint8_t> b_;
};

// The argument bytes of a crafted_hb op, in the order fuzz_fsm.cpp's craft_hb reads them:
// sender node 1 (its id, MAC, incarnation and next seq), to the group address. `epoch`
// below 256 is added to the receiver's epoch (plus one); larger is taken as is.
std::vector<std::uint8_t> crafted(std::uint8_t auth, std::uint8_t type_index, std::uint8_t role, std::uint64_t epoch,
                                  std::uint8_t flags) {
    const bool absolute = epoch > 255;
    std::vector<std::uint8_t> a{auth, 0 /* src: node 1 */, 3 /* dst: group */,
                                static_cast<std::uint8_t>(absolute ? 0x0c : 0x04) /* sel */, 0 /* who: node 1 */,
                                type_index, role};
    if (absolute) {
        for (int i = 7; i >= 0; --i) a.push_back(static_cast<std::uint8_t>(epoch >> (8 * i)));
    } else {
        a.push_back(static_cast<std::uint8_t>(epoch));
    }
    for (std::uint8_t v : {std::uint8_t{1} /* seq + 1 */, std::uint8_t{0} /* ack */, std::uint8_t{0} /* ts */,
                           std::uint8_t{0}, std::uint8_t{0} /* ts echo */, flags, std::uint8_t{0} /* incarnation */,
                           std::uint8_t{1} /* key id */, std::uint8_t{1} /* auth alg */, std::uint8_t{0} /* payload */})
        a.push_back(v);
    return a;
}

void fsm_seeds() {
    using fuzz::op;
    clear_seeds("fsm");
    auto put = [](const std::string& name, const script& s) { write("fsm", name, s.bytes().data(), s.bytes().size()); };
    // With equal priorities node 3 (the largest id) ends up primary, node 2 monitor.
    put("boot", script(0));
    put("boot-staggered", script(0, 0, 0b00'01'10).wait_ms(100));
    put("primary-crashes", script(0).wait_ms(100).op(op::kill, 2, {0}).wait_ms(100));
    put("primary-engine-dies", script(0).wait_ms(100).op(op::kill, 2, {1}).wait_ms(50));
    put("primary-crashes-then-boots", script(0).wait_ms(100).op(op::kill, 2, {0}).wait_ms(50).op(op::boot, 2).wait_ms(100));
    put("boot-peer-and-fence", script(fuzz::hdr_fence | fuzz::hdr_boot_peer).wait_ms(100).op(op::kill, 2, {0}).wait_ms(100));
    put("require-fence-fails", script(fuzz::hdr_require_fence)
                                   .wait_ms(100)
                                   .op(op::fence_fails, 1, {1})
                                   .op(op::kill, 2, {0})
                                   .wait_ms(100)
                                   .op(op::fence_fails, 1, {0})
                                   .wait_ms(100));
    put("switchover-at-primary", script(0).wait_ms(100).op(op::switchover, 2).wait_ms(50).op(op::switchover, 1).wait_ms(50));
    put("switchover-at-monitor", script(0).wait_ms(100).op(op::switchover, 1).wait_ms(50));
    put("switchover-slow-drain", script(0, 0, 0, fuzz::hdr_slow_drain).wait_ms(100).op(op::switchover, 2).wait_ms(60));
    put("switchover-app-silent", script(0, 0, 0, fuzz::hdr_app_silent).wait_ms(100).op(op::switchover, 2).wait_ms(60));
    put("fault-on-primary", script(0).wait_ms(100).op(op::fault, 2, {2}).wait_ms(50).op(op::fault_cleared, 2).wait_ms(100));
    put("fault-on-monitor", script(0).wait_ms(100).op(op::fault, 1, {1}).wait_ms(50).op(op::fault_cleared, 1).wait_ms(100));
    put("carrier-lost-on-primary", script(0).wait_ms(100).op(op::carrier, 2).wait_ms(50).op(op::carrier, 2).wait_ms(100));
    put("carrier-lost-on-monitor", script(0).wait_ms(100).op(op::carrier, 1).wait_ms(50).op(op::carrier, 1).wait_ms(100));
    put("partition-heals", script(0).wait_ms(100).op(op::cut, 2).wait_ms(100).op(op::cut, 2).wait_ms(100));
    put("primary-stalls", script(fuzz::hdr_flap_damping).wait_ms(100).op(op::stall, 2, {20}).wait_ms(100));
    put("monitor-stalls", script(0).wait_ms(100).op(op::stall, 1, {20}).wait_ms(100));
    put("monitor-rx-stalls", script(0).wait_ms(100).op(op::rx_stall, 1, {20}).wait_ms(100));
    put("primary-rx-stalls", script(0).wait_ms(100).op(op::rx_stall, 2, {20}).wait_ms(100));
    put("preempt", script(fuzz::hdr_preempt, 0b00'00'11).wait_ms(100).op(op::kill, 2, {0}).wait_ms(50).op(op::boot, 2).wait_ms(150));
    put("graceful-shutdown", script(0).wait_ms(100).op(op::shutdown, 2).wait_ms(100).op(op::boot, 2).wait_ms(100));
    put("icmp-probes", script(fuzz::hdr_probe_icmp).wait_ms(100).op(op::kill, 2, {0}).wait_ms(100));
    put("both-probes-slow-link", script(fuzz::hdr_probe_both, 0, 0, fuzz::hdr_slow_link).wait_ms(100).op(op::kill, 2, {0}).wait_ms(100));
    put("lossy-network", script(0)
                             .wait_ms(100)
                             .op(op::drop, 0, {0})
                             .op(op::duplicate, 0, {0, 3})
                             .op(op::delay, 0, {1, 8})
                             .op(op::deliver_now, 0, {2})
                             .op(op::advance_ticks, 0, {3})
                             .op(op::drop, 0, {1})
                             .op(op::drop, 0, {0})
                             .wait_ms(20));
    put("replay-after-restart", script(0)
                                    .wait_ms(100)
                                    .op(op::kill, 2, {0})
                                    .wait_ms(50)
                                    .op(op::replay, 1, {5, 0})
                                    .op(op::replay, 0, {9, 1})
                                    .op(op::boot, 2)
                                    .op(op::replay, 2, {17, 1})
                                    .wait_ms(100));
    // Crafted announces from node 1's id and MAC claiming the primary address.
    const std::uint8_t announce = 2, primary_role = 2, holds_primary = 1;
    put("unauthenticated-claim", script(0).wait_ms(100).op(op::crafted_hb, 1, crafted(1, announce, primary_role, 200, holds_primary)).wait_ms(20));
    put("byzantine-epoch-jump", script(fuzz::hdr_byzantine).wait_ms(100).op(op::crafted_hb, 1, crafted(1, announce, primary_role, ~0ull - 1, holds_primary)).wait_ms(50));
    put("byzantine-stay-down", script(fuzz::hdr_byzantine).wait_ms(100).op(op::crafted_hb, 2, crafted(1, 3, primary_role, 1, holds_primary)).wait_ms(50));
    put("auth-none-claim", script(fuzz::hdr_auth_none).wait_ms(100).op(op::crafted_hb, 1, crafted(0, announce, primary_role, 5, holds_primary)).wait_ms(50));
    put("forged-garp", script(0).wait_ms(100).op(op::forged_arp, 2, {0, 3, 0, 4, 0, 1}).wait_ms(20));
    put("forged-echo", script(fuzz::hdr_probe_icmp).wait_ms(100).op(op::forged_icmp, 1, {1, 0, 1, 0, 1, 1, 0}).wait_ms(20));
    put("key-rotation", script(0)
                            .wait_ms(100)
                            .op(op::set_keys, 0, {1, 2, 2})
                            .op(op::set_keys, 1, {1, 2, 2})
                            .op(op::set_keys, 2, {1, 2, 2})
                            .wait_ms(50)
                            .op(op::set_keys, 0, {2, 0, 2})
                            .wait_ms(50));
}

// ---------------------------------------------------------------- config: files

std::string replace(std::string text, const std::string& from, const std::string& to) {
    const auto at = text.find(from);
    if (at == std::string::npos) {
        std::fprintf(stderr, "gen_corpus: the example config has no '%s' any more; variant left as is\n", from.c_str());
        ++problems;
        return text;
    }
    return text.replace(at, from.size(), to);
}

void config(const std::string& name, const std::string& text, bool valid) {
    write("config", name + ".toml", text.data(), text.size());
    const auto r = cfg::parse(text);
    if (r.cfg.has_value() != valid) {
        std::fprintf(stderr, "gen_corpus: config seed %s is %s (%s)\n", name.c_str(), valid ? "rejected" : "accepted",
                     r.errors.empty() ? "no error" : r.errors.front().to_string().c_str());
        ++problems;
    }
}

void config_seeds() {
    clear_seeds("config");
    std::ifstream f(root / "examples" / "heartwired.toml");
    std::stringstream ss;
    ss << f.rdbuf();
    const std::string ex = ss.str();
    if (ex.empty()) {
        std::fprintf(stderr, "gen_corpus: examples/heartwired.toml is missing\n");
        std::exit(1);
    }
    config("example", ex, true);
    const std::string minimal = "[node]\nname = \"b\"\nid = 2\n[port]\ndevice = \"net_af_packet0,iface=eth0\"\n"
                                "[addresses]\nprimary = \"10.0.0.10/24\"\nmonitor = \"10.0.0.11/24\"\n";
    config("minimal-auth-none", minimal + "[auth]\nmode = \"none\"\n", true);
    config("minimal-keyed", minimal + "[auth]\nkey_file = \"cred:heartwire-key\"\n", true);
    config("shared-mode", replace(ex, "mode = \"exclusive\"", "mode = \"shared\"\nkernel_interface = \"veth-a\""), true);
    config("icmp-preempt", replace(replace(ex, "probe = \"heartbeat\"", "probe = \"both\""), "preempt = false",
                                   "preempt = true\nflap_hold_ms = 0"),
           true);
    config("require-fence-without-hook", replace(ex, "require_fence = false", "require_fence = true"), false);
    config("require-fence",
           replace(replace(ex, "require_fence = false", "require_fence = true"), "# fence = \"/etc/heartwire/fence.sh\"",
                   "fence = \"/etc/heartwire/fence.sh\""),
           true);
    config("pipelined-adaptive",
           replace(replace(replace(ex, "mode = \"run-to-completion\"", "mode = \"pipelined\""), "idle = \"busy\"",
                           "idle = \"adaptive\""),
                   "sched = \"fifo\"", "sched = \"other\""),
           true);
    config("unknown-key", replace(ex, "miss = 3", "misses = 3"), false);
    config("out-of-range", replace(replace(ex, "interval_us = 10", "interval_us = 0"), "peer_timeout_ms = 100", "peer_timeout_ms = 5"), false);
    config("same-addresses", replace(ex, "169.254.10.101/24", "169.254.10.100/24"), false);
    config("bad-syntax", replace(ex, "[detect]", "[detect"), false);
    config("health-duplicates", ex + "\n[[health]]\nname = \"app\"\nkind = \"process\"\ntarget = \"\"\nrise = 0\n", false);
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: gen_corpus <repo root>\n");
        return 2;
    }
    root = argv[1];
    decode_seeds();
    fsm_seeds();
    config_seeds();
    if (problems) std::fprintf(stderr, "gen_corpus: %d seed(s) need a look (above)\n", problems);
    return problems ? 1 : 0;
}
