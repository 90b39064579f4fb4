// Configuration: TOML text -> config struct -> validate(). Two passes on purpose: the
// reader only cares about shape (known keys, TOML types, values that fit the field), and
// validate() is a pure function over the struct that owns every semantic rule, so the
// daemon can re-check a config built any other way. Both collect every error rather than
// stopping at the first, so one run of `heartwired --check` shows the whole list.
// The reference for every key lives in docs/configuration.md; keep it in step with `ranges`.

#include "heartwire/config.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <set>
#include <sstream>
#include <tuple>
#include <type_traits>
#include <utility>

#include <toml++/toml.h>

namespace heartwire::cfg {

namespace {

// ---------------------------------------------------------------------------------------
// Limits shared by the reader (for values that do not even fit the field) and validate().

struct range {
    std::string_view key; // dotted key; [[health]] entries use "health.<key>"
    std::uint64_t lo;
    std::uint64_t hi;
};

constexpr range ranges[] = {
    {"node.id", 1, 4294967295u},
    {"node.priority", 1, 255},
    {"node.group", 1, 4294967295u},
    {"garp.defend_interval_ms", 0, 60'000},
    {"port.rx_desc", 64, 8192},
    {"port.tx_desc", 64, 8192},
    {"port.mbufs", 511, 1048575},
    {"port.vlan", 0, 4094},
    {"detect.interval_us", 1, 10'000'000},
    {"detect.miss", 1, 1000},
    {"garp.repeat", 1, 100},
    {"garp.interval_us", 1, 1'000'000},
    {"garp.refresh_ms", 0, 3'600'000},
    {"protocol.discovery_probes", 1, 20},
    {"protocol.discovery_interval_ms", 1, 10'000},
    {"protocol.discovery_wait_ms", 1, 60'000},
    {"protocol.announce_interval_ms", 1, 60'000},
    {"protocol.peer_timeout_ms", 1, 3'600'000},
    {"protocol.stay_down_interval_ms", 1, 60'000},
    {"protocol.preempt_delay_ms", 0, 3'600'000},
    {"protocol.flap_hold_ms", 0, 86'400'000},
    {"protocol.drain_timeout_ms", 1, 3'600'000},
    {"engine.idle_max_sleep_us", 1, 100'000},
    {"engine.burst", 1, 512},
    {"engine.rt_priority", 1, 98},
    {"engine.yield_us", 0, 10'000},
    {"engine.yield_period_us", 0, 1'000'000},
    {"detect.stall_threshold_us", 0, 10'000'000},
    {"hooks.timeout_ms", 1, 3'600'000},
    {"health.interval_ms", 10, 3'600'000},
    {"health.rise", 1, 100},
    {"health.fall", 1, 100},
    {"group.id", 1, 4294967295u},
    {"group.priority", 1, 255},
    {"group.vlan", 0, 4094},
    {"state.records", 1, 16'777'216},
    {"state.key_max", 1, 255},
    {"state.value_max", 0, 975},
    {"state.queue", 16, 65'536},
    {"state.log_mb", 1, 4096},
    {"state.join_hold_ms", 0, 60'000},
};

const range* find_range(std::string_view key) noexcept {
    for (const auto& r : ranges)
        if (r.key == key) return &r;
    return nullptr;
}

std::string between(const range& r) {
    return "must be between " + std::to_string(r.lo) + " and " + std::to_string(r.hi);
}

// ---------------------------------------------------------------------------------------
// Enum spellings. to_string() below is a switch so -Wswitch catches a new enumerator;
// the round-trip test catches a table that falls out of step.

template <class E> using names_t = std::pair<std::string_view, E>;

constexpr names_t<address_mode> address_mode_names[] = {
    {"exclusive", address_mode::exclusive}, {"shared", address_mode::shared}};
constexpr names_t<probe_kind> probe_kind_names[] = {
    {"heartbeat", probe_kind::heartbeat}, {"icmp", probe_kind::icmp}, {"both", probe_kind::both}};
constexpr names_t<lcore_mode> lcore_mode_names[] = {
    {"run-to-completion", lcore_mode::run_to_completion}, {"pipelined", lcore_mode::pipelined}};
constexpr names_t<idle_policy> idle_policy_names[] = {
    {"busy", idle_policy::busy}, {"adaptive", idle_policy::adaptive}};
constexpr names_t<state_mode> state_mode_names[] = {{"sync", state_mode::sync}, {"async", state_mode::async}};
constexpr names_t<sched_policy> sched_policy_names[] = {{"fifo", sched_policy::fifo}, {"other", sched_policy::other}};
constexpr names_t<auth_mode> auth_mode_names[] = {{"keyed", auth_mode::keyed}, {"none", auth_mode::none}};
constexpr std::string_view health_kinds[] = {"script", "interface", "process"};
constexpr std::string_view log_levels[] = {"debug", "info", "warn", "error"};

template <class Range> std::string one_of(const Range& names) {
    std::string s = "must be one of ";
    bool first = true;
    for (const auto& n : names) {
        if (!first) s += ", ";
        first = false;
        s += '"';
        if constexpr (std::is_same_v<std::decay_t<decltype(n)>, std::string_view>)
            s += n;
        else
            s += n.first;
        s += '"';
    }
    return s;
}

// ---------------------------------------------------------------------------------------
// Rendering values the way a TOML file spells them, so an error reads like the line.

std::string quote(std::string_view s) {
    std::string out = "\"";
    for (char ch : s) {
        switch (ch) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\t': out += "\\t"; break;
        default:
            if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(ch)));
                out += buf;
            } else {
                out += ch;
            }
        }
    }
    return out + '"';
}

std::string render(const toml::node& n) {
    if (const auto* s = n.as_string()) return quote(s->get());
    if (n.is_table()) return "{...}";
    std::ostringstream os;
    n.visit([&](const auto& v) { os << v; });
    return os.str();
}

std::string_view type_name(toml::node_type t) noexcept {
    switch (t) {
    case toml::node_type::none: break;
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a floating-point number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    }
    return "nothing";
}

// ---------------------------------------------------------------------------------------
// Reading.

struct error_list {
    std::vector<config_error> errors;
    std::set<std::string, std::less<>> keys; // keys the reader already complained about

    void add(std::string key, std::string value, std::string message) {
        keys.insert(key);
        errors.push_back({std::move(key), std::move(value), std::move(message)});
    }
};

// Reads one table. Every accessor records its key as known; finish() reports the rest as
// unknown. `path` is the dotted name shown to the user ("health[1]"), `range_path` the one
// used to look up limits ("health").
class table_reader {
public:
    table_reader(const toml::table& t, std::string path, std::string range_path, error_list& e)
        : t_{t}, path_{std::move(path)}, range_path_{std::move(range_path)}, e_{e} {}

    template <class T> void uint(std::string_view k, T& out, bool required = false) {
        const toml::node* n = get(k, required);
        if (!n) return;
        const auto* v = n->as_integer();
        if (!v) return wrong_type(k, *n, "an integer");
        const std::int64_t x = v->get();
        if (x < 0 || static_cast<std::uint64_t>(x) > std::numeric_limits<T>::max()) {
            const range* r = find_range(range_path_ + "." + std::string{k});
            e_.add(key(k), render(*n),
                   r ? between(*r) : "must be between 0 and " + std::to_string(std::numeric_limits<T>::max()));
            return;
        }
        out = static_cast<T>(x);
    }

    bool has(std::string_view k) const { return t_.get(k) != nullptr; }

    void boolean(std::string_view k, bool& out) {
        const toml::node* n = get(k, false);
        if (!n) return;
        const auto* v = n->as_boolean();
        if (!v) return wrong_type(k, *n, "a boolean (true or false)");
        out = v->get();
    }

    void string(std::string_view k, std::string& out, bool required = false) {
        const toml::node* n = get(k, required);
        if (!n) return;
        const auto* v = n->as_string();
        if (!v) return wrong_type(k, *n, "a string");
        out = v->get();
    }

    void strings(std::string_view k, std::vector<std::string>& out) {
        const toml::node* n = get(k, false);
        if (!n) return;
        const auto* a = n->as_array();
        if (!a) return wrong_type(k, *n, "an array of strings");
        out.clear();
        for (std::size_t i = 0; i < a->size(); ++i) {
            const toml::node& el = *a->get(i);
            if (const auto* s = el.as_string())
                out.push_back(s->get());
            else
                e_.add(key(k) + "[" + std::to_string(i) + "]", render(el),
                       "must be a string, not " + std::string{type_name(el.type())});
        }
    }

    void prefix(std::string_view k, ipv4_prefix& out, bool required) {
        const toml::node* n = get(k, required);
        if (!n) return;
        const auto* v = n->as_string();
        if (!v) return wrong_type(k, *n, "a string \"a.b.c.d/len\"");
        auto p = ipv4_prefix::parse(v->get());
        if (!p) return e_.add(key(k), render(*n), "is not an IPv4 address with prefix length, like \"169.254.10.100/24\"");
        out = *p;
    }

    // A role's addresses: one IPv4 string, or an array whose first entry is IPv4 and whose
    // others are IPv4 or IPv6. Entries are named by position: addresses.primary[2].
    void address_list(std::string_view k, ipv4_prefix& first, std::vector<ipv4_prefix>& more,
                      std::vector<ipv6_prefix>& v6, bool required) {
        const toml::node* n = get(k, required);
        if (!n) return;
        if (n->as_string()) return prefix(k, first, required);
        const auto* a = n->as_array();
        if (!a) return wrong_type(k, *n, "a string \"a.b.c.d/len\" or an array of address strings");
        if (a->empty()) return e_.add(key(k), render(*n), "must name at least one address, IPv4 first");
        for (std::size_t i = 0; i < a->size(); ++i) {
            const toml::node& el = *a->get(i);
            const std::string ek = key(k) + "[" + std::to_string(i) + "]";
            const auto* v = el.as_string();
            if (!v) {
                e_.add(ek, render(el), "must be a string, not " + std::string{type_name(el.type())});
                continue;
            }
            if (auto p4 = ipv4_prefix::parse(v->get())) {
                if (i == 0) first = *p4;
                else if (!v6.empty() && first.addr.is_zero())
                    e_.add(ek, render(el), "IPv4 addresses come first in the list (the first IPv4 one is probed by ARP)");
                else more.push_back(*p4);
            } else if (auto p6 = ipv6_prefix::parse(v->get())) {
                // A role of IPv6 addresses only (no IPv4 first): discovered by DAD and
                // neighbour advertisements instead of ARP.
                if (i > 0 && first.addr.is_zero() && !more.empty())
                    e_.add(ek, render(el), "IPv4 addresses come first in the list (the first IPv4 one is probed by ARP)");
                v6.push_back(*p6);
            } else {
                e_.add(ek, render(el), "is not an IPv4 or IPv6 address with prefix length, like \"169.254.10.100/24\" "
                                       "or \"fd00:6877::100/64\"");
            }
        }
    }

    template <class E, std::size_t N>
    void enumeration(std::string_view k, E& out, const names_t<E> (&names)[N]) {
        const toml::node* n = get(k, false);
        if (!n) return;
        const auto* v = n->as_string();
        if (!v) return wrong_type(k, *n, "a string");
        for (const auto& [name, value] : names)
            if (name == v->get()) {
                out = value;
                return;
            }
        e_.add(key(k), render(*n), one_of(names));
    }

    void finish() {
        for (auto&& [k, n] : t_) {
            if (std::find(known_.begin(), known_.end(), k.str()) != known_.end()) continue;
            std::string list;
            for (auto name : known_) list += (list.empty() ? "" : ", ") + std::string{name};
            e_.add(key(k.str()), render(n), "unknown key; [" + range_path_ + "] accepts: " + list);
        }
    }

private:
    std::string key(std::string_view k) const { return path_ + "." + std::string{k}; }

    const toml::node* get(std::string_view k, bool required) {
        known_.push_back(k);
        const toml::node* n = t_.get(k);
        if (!n && required) e_.add(key(k), "", "is required");
        return n;
    }

    void wrong_type(std::string_view k, const toml::node& n, std::string_view want) {
        e_.add(key(k), render(n), "must be " + std::string{want} + ", not " + std::string{type_name(n.type())});
    }

    const toml::table& t_;
    std::string path_;
    std::string range_path_;
    error_list& e_;
    std::vector<std::string_view> known_;
};

void read_node(table_reader& r, node_cfg& c) {
    r.string("name", c.name, true);
    r.uint("id", c.id, true);
    r.uint("priority", c.priority);
    r.uint("group", c.group);
}

void read_port(table_reader& r, port_cfg& c) {
    r.strings("eal", c.eal_args);
    r.string("device", c.device, true);
    r.enumeration("mode", c.mode, address_mode_names);
    r.string("kernel_interface", c.kernel_interface);
    r.string("notice_interface", c.notice_interface);
    r.uint("rx_desc", c.rx_desc);
    r.uint("tx_desc", c.tx_desc);
    r.uint("mbufs", c.mbufs);
    r.uint("vlan", c.vlan);
    r.string("xdp_prog", c.xdp_prog);
    r.boolean("flow_isolate", c.flow_isolate);
}

void read_addresses(table_reader& r, addresses_cfg& c) {
    r.address_list("primary", c.primary, c.primary_more, c.primary6, true);
    r.address_list("monitor", c.monitor, c.monitor_more, c.monitor6, true);
}

void read_detect(table_reader& r, detect_cfg& c) {
    r.uint("interval_us", c.interval_us);
    r.uint("miss", c.miss);
    r.enumeration("probe", c.probe, probe_kind_names);
    r.uint("stall_threshold_us", c.stall_threshold_us);
}

void read_garp(table_reader& r, garp_cfg& c) {
    r.uint("repeat", c.repeat);
    r.uint("interval_us", c.interval_us);
    r.uint("refresh_ms", c.refresh_ms);
    r.uint("defend_interval_ms", c.defend_interval_ms);
}

void read_auth(table_reader& r, auth_cfg& c) {
    r.enumeration("mode", c.mode, auth_mode_names);
    r.string("key_file", c.key_file);
}

void read_protocol(table_reader& r, protocol_cfg& c) {
    r.uint("discovery_probes", c.discovery_probes);
    r.uint("discovery_interval_ms", c.discovery_interval_ms);
    r.uint("discovery_wait_ms", c.discovery_wait_ms);
    r.uint("announce_interval_ms", c.announce_interval_ms);
    r.uint("peer_timeout_ms", c.peer_timeout_ms);
    r.uint("stay_down_interval_ms", c.stay_down_interval_ms);
    r.boolean("preempt", c.preempt);
    r.uint("preempt_delay_ms", c.preempt_delay_ms);
    r.uint("flap_hold_ms", c.flap_hold_ms);
    r.uint("drain_timeout_ms", c.drain_timeout_ms);
    r.boolean("require_fence", c.require_fence);
}

void read_engine(table_reader& r, engine_cfg& c) {
    r.enumeration("mode", c.mode, lcore_mode_names);
    r.enumeration("idle", c.idle, idle_policy_names);
    r.uint("idle_max_sleep_us", c.idle_max_sleep_us);
    r.uint("burst", c.burst);
    r.enumeration("sched", c.sched, sched_policy_names);
    r.uint("rt_priority", c.rt_priority);
    r.uint("yield_us", c.yield_us);
    r.uint("yield_period_us", c.yield_period_us);
    r.boolean("lock_memory", c.lock_memory);
    r.boolean("idle_filler", c.idle_filler);
}

// One list so the reader and validate() cannot disagree on which hooks exist.
constexpr std::pair<std::string_view, std::string hooks_cfg::*> hook_paths[] = {
    {"notify", &hooks_cfg::notify},         {"on_primary", &hooks_cfg::on_primary},
    {"on_monitor", &hooks_cfg::on_monitor}, {"on_standby", &hooks_cfg::on_standby},
    {"on_fault", &hooks_cfg::on_fault},     {"boot_peer", &hooks_cfg::boot_peer},
    {"fence", &hooks_cfg::fence},           {"drain", &hooks_cfg::drain},
    {"recover", &hooks_cfg::recover},       {"undrain", &hooks_cfg::undrain},
};

void read_hooks(table_reader& r, hooks_cfg& c) {
    for (const auto& [k, member] : hook_paths) r.string(k, c.*member);
    r.uint("timeout_ms", c.timeout_ms);
    r.string("notify_args", c.notify_args);
}

void read_health(table_reader& r, health_check_cfg& c) {
    r.string("name", c.name, true);
    r.string("kind", c.kind, true);
    r.string("target", c.target, true);
    r.uint("interval_ms", c.interval_ms);
    r.uint("rise", c.rise);
    r.uint("fall", c.fall);
}

void read_state(table_reader& r, state_cfg& c) {
    r.string("name", c.name, true);
    r.uint("records", c.records);
    r.uint("key_max", c.key_max);
    r.uint("value_max", c.value_max);
    r.enumeration("mode", c.mode, state_mode_names);
    r.uint("group", c.group);
    r.uint("queue", c.queue);
    r.string("path", c.path);
    r.uint("log_mb", c.log_mb);
    r.uint("join_hold_ms", c.join_hold_ms);
}

void read_group(table_reader& r, group_cfg& g) {
    r.uint("id", g.id, true);
    r.string("name", g.name);
    r.address_list("primary", g.addresses.primary, g.addresses.primary_more, g.addresses.primary6, true);
    r.address_list("monitor", g.addresses.monitor, g.addresses.monitor_more, g.addresses.monitor6, true);
    r.uint("priority", g.priority);
    r.boolean("preempt", g.preempt);
    r.uint("vlan", g.vlan);
    r.string("interface", g.interface);
    g.health_given = r.has("health");
    r.strings("health", g.health);
}

void read_control(table_reader& r, control_cfg& c) {
    r.string("socket", c.socket);
    r.string("log_level", c.log_level);
    r.string("metrics", c.metrics);
}

template <class Fn> void read_section(const toml::table& root, std::string_view name, error_list& e, Fn fn) {
    static const toml::table empty;
    const toml::node* n = root.get(name);
    const toml::table* t = n ? n->as_table() : &empty;
    if (!t) {
        e.add(std::string{name}, render(*n), "must be a table ([" + std::string{name} + "])");
        t = &empty; // still report required keys
    }
    table_reader r{*t, std::string{name}, std::string{name}, e};
    fn(r);
    r.finish();
}

// An array of tables ([[health]], [[state]]): each block read by `fn` into a new element
// of `out`, its keys named "<name>[i].<key>".
template <class T, class Fn>
void read_blocks(const toml::table& root, std::string_view name, std::string_view what, error_list& e, Fn fn, std::vector<T>& out) {
    const toml::node* n = root.get(name);
    if (!n) return;
    const toml::array* a = n->as_array();
    if (!a || !(a->empty() || a->is_array_of_tables())) {
        e.add(std::string{name}, render(*n), "must be an array of tables: " + std::string{what});
        return;
    }
    for (std::size_t i = 0; i < a->size(); ++i) {
        T x;
        table_reader r{*a->get(i)->as_table(), std::string{name} + "[" + std::to_string(i) + "]", std::string{name}, e};
        fn(r, x);
        r.finish();
        out.push_back(std::move(x));
    }
}

constexpr std::string_view sections[] = {"node",     "port",   "addresses", "group", "detect", "garp",   "auth",
                                         "protocol", "engine", "hooks",     "health", "control", "state"};

void read_config(const toml::table& root, config& c, error_list& e) {
    read_section(root, "node", e, [&](table_reader& r) { read_node(r, c.node); });
    read_section(root, "port", e, [&](table_reader& r) { read_port(r, c.port); });
    // One group from [addresses], or many from [[group]] blocks: not both.
    const toml::node* groups = root.get("group");
    if (!groups) read_section(root, "addresses", e, [&](table_reader& r) { read_addresses(r, c.addresses); });
    else if (root.get("addresses"))
        e.add("addresses", "", "use either [addresses] (one group) or [[group]] blocks (each with its addresses), not both");
    read_section(root, "detect", e, [&](table_reader& r) { read_detect(r, c.detect); });
    read_section(root, "garp", e, [&](table_reader& r) { read_garp(r, c.garp); });
    read_section(root, "auth", e, [&](table_reader& r) { read_auth(r, c.auth); });
    read_section(root, "protocol", e, [&](table_reader& r) { read_protocol(r, c.protocol); });
    read_section(root, "engine", e, [&](table_reader& r) { read_engine(r, c.engine); });
    read_section(root, "hooks", e, [&](table_reader& r) { read_hooks(r, c.hooks); });
    read_section(root, "control", e, [&](table_reader& r) { read_control(r, c.control); });

    read_blocks<health_check_cfg>(root, "health", "one [[health]] block per check", e, read_health, c.health);
    read_blocks<state_cfg>(root, "state", "one [[state]] block per store", e, read_state, c.state);

    if (groups) {
        const toml::array* a = groups->as_array();
        if (!a || a->empty() || !a->is_array_of_tables()) {
            e.add("group", render(*groups), "must be an array of tables: one [[group]] block per address group");
        } else {
            for (std::size_t i = 0; i < a->size(); ++i) {
                group_cfg g;
                g.priority = c.node.priority;
                g.preempt = c.protocol.preempt;
                g.vlan = c.port.vlan;
                if (c.port.mode == address_mode::shared) g.interface = c.port.kernel_interface;
                table_reader r{*a->get(i)->as_table(), "group[" + std::to_string(i) + "]", "group", e};
                read_group(r, g);
                r.finish();
                c.groups.push_back(std::move(g));
            }
            c.explicit_groups = true;
            if (root.get("node") && root.get("node")->as_table() && root.get("node")->as_table()->get("group"))
                e.add("node.group", "", "with [[group]] blocks each group has its own id: set [[group]] id instead");
        }
    } else {
        group_cfg g;
        g.id = c.node.group;
        g.addresses = c.addresses;
        g.priority = c.node.priority;
        g.preempt = c.protocol.preempt;
        g.vlan = c.port.vlan;
        if (c.port.mode == address_mode::shared) g.interface = c.port.kernel_interface;
        c.groups.push_back(std::move(g));
    }
    if (!c.groups.empty()) c.addresses = c.groups.front().addresses;

    for (auto&& [k, n] : root) {
        if (std::find(std::begin(sections), std::end(sections), k.str()) != std::end(sections)) continue;
        std::string list;
        for (auto s : sections) list += (list.empty() ? "" : ", ") + std::string{s};
        e.add(std::string{k.str()}, render(n),
              n.is_table() ? "unknown key: there is no [" + std::string{k.str()} + "] table; the tables are: " + list
                           : "unknown key; the tables are: " + list);
    }
}

// ---------------------------------------------------------------------------------------
// Validation helpers.

bool valid_name(std::string_view s) noexcept {
    if (s.empty() || s.size() > 32) return false;
    return std::all_of(s.begin(), s.end(), [](char ch) {
        return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' ||
               ch == '.' || ch == '-';
    });
}

// What the kernel accepts as an interface name (IFNAMSIZ is 16 with the NUL).
bool valid_ifname(std::string_view s) noexcept {
    if (s.empty() || s.size() > 15 || s == "." || s == "..") return false;
    return std::none_of(s.begin(), s.end(), [](char ch) {
        return ch == '/' || ch == ':' || static_cast<unsigned char>(ch) <= ' ' || ch == 0x7f;
    });
}

// Cloud instance metadata (AWS, GCP, Azure, OpenStack): claiming it breaks every VM on the link.
constexpr std::uint32_t metadata_addr = (169u << 24) | (254u << 16) | (169u << 8) | 254u;

constexpr std::size_t sun_path_max = 107; // sizeof(sockaddr_un::sun_path) minus the NUL

class checker {
public:
    std::vector<config_error> errors;

    void fail(std::string key, std::string value, std::string message) {
        errors.push_back({std::move(key), std::move(value), std::move(message)});
    }

    // `range_key` names the limit in `ranges`; `key` is what the user sees.
    void in_range(const std::string& key, std::uint64_t v, std::string_view range_key = {}) {
        const range* r = find_range(range_key.empty() ? std::string_view{key} : range_key);
        if (r && (v < r->lo || v > r->hi)) fail(key, std::to_string(v), between(*r));
    }

    void descriptors(const std::string& key, std::uint32_t v) {
        const range& r = *find_range(key);
        if (v < r.lo || v > r.hi || (v & (v - 1)) != 0)
            fail(key, std::to_string(v),
                 "must be a power of two between " + std::to_string(r.lo) + " and " + std::to_string(r.hi));
    }

    void absolute_path(const std::string& key, const std::string& v) {
        if (!v.empty() && v.front() != '/') fail(key, quote(v), "must be an absolute path (starting with /)");
    }

    void address(const std::string& key, const ipv4_prefix& p) {
        const std::uint32_t a = p.addr.v;
        const std::string v = quote(p.to_string());
        if (a == metadata_addr)
            return fail(key, v,
                        "169.254.169.254 is the cloud instance metadata address; heartwire refuses to claim "
                        "it (pick another address, e.g. in 169.254.10.0/24)");
        if (p.len < 1 || p.len > 32) return fail(key, v, "prefix length must be between 1 and 32");
        const std::uint8_t first = static_cast<std::uint8_t>(a >> 24);
        if (first == 0 || first == 127 || first >= 224)
            return fail(key, v, "must be a unicast host address (not 0.0.0.0/8, loopback, multicast or reserved)");
        if (p.len <= 30) { // /31 (RFC 3021) and /32 have no network or broadcast address
            const std::uint32_t host = ~0u >> p.len;
            if ((a & host) == 0) return fail(key, v, "host part is zero: that is the network address of the prefix");
            if ((a & host) == host) return fail(key, v, "host part is all ones: that is the broadcast address of the prefix");
        }
    }

    void address6(const std::string& key, const ipv6_prefix& p) {
        const std::string v = quote(p.to_string());
        if (p.len < 1 || p.len > 128) return fail(key, v, "prefix length must be between 1 and 128");
        if (p.addr.is_zero() || p.addr.is_loopback() || p.addr.is_multicast())
            return fail(key, v, "must be a unicast IPv6 address (not ::, ::1 or multicast)");
    }

    // The addresses after a role's first: checked as addresses, and at most
    // max_role_addresses in all. Entry i of the array is key[i] (the first is [0]).
    void more_addresses(const std::string& key, const std::vector<ipv4_prefix>& more, const std::vector<ipv6_prefix>& v6) {
        for (std::size_t i = 0; i < more.size(); ++i) address(key + " (IPv4 #" + std::to_string(i + 2) + ")", more[i]);
        for (std::size_t i = 0; i < v6.size(); ++i) address6(key + " (IPv6 #" + std::to_string(i + 1) + ")", v6[i]);
        const std::size_t n = 1 + more.size() + v6.size();
        if (n > max_role_addresses)
            fail(key, std::to_string(n) + " addresses", "at most " + std::to_string(max_role_addresses) + " per role");
    }

    // No address in two places: two roles (or one role twice) claiming it would fight.
    void distinct_addresses(const addresses_cfg& a) {
        std::vector<ipv4_addr> seen4{a.primary.addr, a.monitor.addr};
        for (const auto* l : {&a.primary_more, &a.monitor_more})
            for (const auto& p : *l) {
                if (std::find(seen4.begin(), seen4.end(), p.addr) != seen4.end())
                    fail("addresses", quote(p.to_string()), "is listed twice: every address belongs to one role once");
                seen4.push_back(p.addr);
            }
        std::vector<ipv6_addr> seen6;
        for (const auto* l : {&a.primary6, &a.monitor6})
            for (const auto& p : *l) {
                if (std::find(seen6.begin(), seen6.end(), p.addr) != seen6.end())
                    fail("addresses", quote(p.to_string()), "is listed twice: every address belongs to one role once");
                seen6.push_back(p.addr);
            }
    }

    template <class Range> void member_of(const std::string& key, const std::string& v, const Range& allowed) {
        if (std::find(std::begin(allowed), std::end(allowed), v) == std::end(allowed))
            fail(key, quote(v), one_of(allowed));
    }
};

// toml++ 3.3 (Debian 12) reaches __builtin_unreachable() on some non-ASCII characters
// where it expects whitespace or a bare key (marzer/tomlplusplus#190, #295; found by
// fuzz/fuzz_config, fuzz/findings/toml-unreachable-*). Such text is refused here, before
// toml++ sees it: non-ASCII is allowed in comments and strings, where TOML needs it and
// toml++ handles it. Returns the 1-based line of the first offending byte, or 0.
std::size_t non_ascii_outside_strings(std::string_view t) noexcept {
    std::size_t line = 1;
    for (std::size_t i = 0; i < t.size(); ++i) {
        const char c = t[i];
        if (c == '\n') {
            ++line;
        } else if (c == '#') {
            while (i + 1 < t.size() && t[i + 1] != '\n') ++i;
        } else if (c == '"' || c == '\'') {
            const bool multi = t.substr(i, 3) == std::string_view(c == '"' ? "\"\"\"" : "'''");
            const std::string_view close = multi ? (c == '"' ? "\"\"\"" : "'''") : std::string_view(&t[i], 1);
            i += multi ? 3 : 1;
            for (; i < t.size(); ++i) {
                if (t[i] == '\n') {
                    if (!multi) break; // an unterminated string: toml++ reports it
                    ++line;
                } else if (c == '"' && t[i] == '\\') {
                    if (i + 1 < t.size() && t[i + 1] == '\n') ++line;
                    ++i; // an escaped character, quotes included
                } else if (t.substr(i, close.size()) == close) {
                    i += close.size() - 1;
                    break;
                }
            }
            if (i < t.size() && t[i] == '\n') --i; // counted by the outer loop
        } else if (static_cast<unsigned char>(c) >= 0x80) {
            return line;
        }
    }
    return 0;
}

parse_result parse_text(std::string_view text, std::string_view source) {
    parse_result res;
    if (const std::size_t bad = non_ascii_outside_strings(text); bad != 0) {
        const std::string where = source.empty() ? std::string{"line "} : std::string{source} + " line ";
        res.errors.push_back({"", "",
                              "non-ASCII character outside a string or comment at " + where + std::to_string(bad) +
                                  ": keys and values other than strings are ASCII"});
        return res;
    }
    toml::table root;
#if TOML_EXCEPTIONS
    try {
        root = toml::parse(text, source);
    } catch (const toml::parse_error& err) {
#else
    toml::parse_result parsed = toml::parse(text, source);
    if (!parsed) {
        const toml::parse_error& err = parsed.error();
#endif
        const auto& at = err.source().begin;
        std::string where = source.empty() ? std::string{"line "} : std::string{source} + " line ";
        res.errors.push_back({"", "",
                              "TOML syntax error at " + where + std::to_string(at.line) + ":" +
                                  std::to_string(at.column) + ": " + std::string{err.description()}});
        return res;
    }
#if !TOML_EXCEPTIONS
    root = std::move(parsed).table();
#endif

    config c;
    error_list e;
    read_config(root, c, e);
    if (c.control.socket.empty() && valid_name(c.node.name))
        c.control.socket = "/run/heartwire/" + c.node.name + ".sock";
    // The reader already explained these keys; validate() would only repeat it less precisely.
    for (auto& err : validate(c))
        if (!e.keys.contains(err.key)) e.errors.push_back(std::move(err));
    // Group by table in file order (reader and validate() errors for [port] side by side).
    auto rank = [](const config_error& err) {
        const std::string_view table = std::string_view{err.key}.substr(0, err.key.find_first_of(".["));
        const auto* it = std::find(std::begin(sections), std::end(sections), table);
        return it - std::begin(sections);
    };
    std::stable_sort(e.errors.begin(), e.errors.end(),
                     [&](const config_error& a, const config_error& b) { return rank(a) < rank(b); });
    res.errors = std::move(e.errors);
    if (res.errors.empty()) res.cfg = std::move(c);
    return res;
}

} // namespace

std::string config_error::to_string() const {
    if (key.empty()) return message;
    if (value.empty()) return key + ": " + message;
    return key + " = " + value + ": " + message;
}

std::vector<ipv4_prefix> role_v4(const addresses_cfg& a, bool primary) {
    std::vector<ipv4_prefix> v;
    if (const auto& first = primary ? a.primary : a.monitor; !first.addr.is_zero()) v.push_back(first); // IPv6-only: none
    const auto& more = primary ? a.primary_more : a.monitor_more;
    v.insert(v.end(), more.begin(), more.end());
    return v;
}

const std::vector<ipv6_prefix>& role_v6(const addresses_cfg& a, bool primary) { return primary ? a.primary6 : a.monitor6; }

parse_result parse(std::string_view toml_text) { return parse_text(toml_text, {}); }

parse_result load_file(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return {std::nullopt, {{"", "", "cannot open config file " + path + ": " + std::strerror(errno)}}};
    std::string text;
    char buf[8192];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    const bool failed = std::ferror(f) != 0;
    const int err = errno;
    std::fclose(f);
    if (failed) return {std::nullopt, {{"", "", "cannot read config file " + path + ": " + std::strerror(err)}}};
    return parse_text(text, path);
}

std::vector<config_error> validate(const config& c) {
    checker k;

    // [node]
    if (c.node.name.empty())
        k.fail("node.name", "", "must not be empty");
    else if (!valid_name(c.node.name))
        k.fail("node.name", quote(c.node.name), "must be at most 32 characters from A-Z a-z 0-9 _ . -");
    k.in_range("node.id", c.node.id);
    k.in_range("node.priority", c.node.priority);
    k.in_range("node.group", c.node.group);

    // [port]
    if (c.port.device.empty()) k.fail("port.device", "", "must not be empty (a vdev like \"net_af_xdp0,iface=eth0\" or a PCI address)");
    // With [[group]] blocks each group may name its own interface instead (checked below).
    if (c.port.mode == address_mode::shared && c.port.kernel_interface.empty() && !c.explicit_groups)
        k.fail("port.kernel_interface", "", "is required when port.mode = \"shared\" (the kernel keeps the address there)");
    if (!c.port.kernel_interface.empty() && !valid_ifname(c.port.kernel_interface))
        k.fail("port.kernel_interface", quote(c.port.kernel_interface),
               "is not a valid interface name (1 to 15 characters, no '/', ':' or spaces)");
    k.descriptors("port.rx_desc", c.port.rx_desc);
    k.descriptors("port.tx_desc", c.port.tx_desc);
    k.in_range("port.mbufs", c.port.mbufs);
    k.in_range("port.vlan", c.port.vlan);
    if (!c.port.xdp_prog.empty() && c.port.xdp_prog != "none" && c.port.xdp_prog.front() != '/')
        k.fail("port.xdp_prog", quote(c.port.xdp_prog), "must be an absolute path to a BPF object, or \"none\"");
    // An isolated port receives heartwire's own frames and nothing else: the kernel must be
    // the one that answers ARP and serves the addresses, and echo replies never reach the port.
    if (c.port.flow_isolate && c.port.mode != address_mode::shared)
        k.fail("port.flow_isolate", "true",
               "needs port.mode = \"shared\": an isolated port receives only heartwire's frames, so the kernel must "
               "serve the addresses (ARP, the service)");
    if (c.port.flow_isolate && c.detect.probe != probe_kind::heartbeat)
        k.fail("detect.probe", quote(to_string(c.detect.probe)),
               "cannot be used with port.flow_isolate = true: echo replies are not steered to the port (the kernel "
               "gets them); use \"heartbeat\"");
    // The RX ring holds rx_desc mbufs at all times; TX and one burst in flight need the rest.
    const std::uint64_t need = std::uint64_t{c.port.rx_desc} + c.port.tx_desc + c.engine.burst;
    if (c.port.mbufs >= find_range("port.mbufs")->lo && c.port.mbufs < need)
        k.fail("port.mbufs", std::to_string(c.port.mbufs),
               "must be at least port.rx_desc + port.tx_desc + engine.burst (" + std::to_string(need) + ")");

    // [addresses], or each [[group]]'s
    const auto check_addresses = [&](const std::string& at, const addresses_cfg& a) {
        // A role is either IPv4-first or IPv6 only (then its IPv4 is unset, 0.0.0.0).
        if (!(a.primary.addr.is_zero() && !a.primary6.empty())) k.address(at + "primary", a.primary);
        if (!(a.monitor.addr.is_zero() && !a.monitor6.empty())) k.address(at + "monitor", a.monitor);
        if (!a.primary.addr.is_zero() && a.primary.addr == a.monitor.addr)
            k.fail(at + "monitor", quote(a.monitor.to_string()),
                   "must differ from " + at + "primary: the two roles need two addresses");
        k.more_addresses(at + "primary", a.primary_more, a.primary6);
        k.more_addresses(at + "monitor", a.monitor_more, a.monitor6);
        k.distinct_addresses(a);
    };
    if (!c.explicit_groups) check_addresses("addresses.", c.addresses);
    if (c.explicit_groups) {
        if (c.groups.size() > max_groups)
            k.fail("group", std::to_string(c.groups.size()) + " groups", "at most " + std::to_string(max_groups) + " per engine");
        std::vector<std::uint32_t> ids;
        std::vector<ipv4_addr> v4;
        std::vector<ipv6_addr> v6;
        for (std::size_t i = 0; i < c.groups.size(); ++i) {
            const auto& g = c.groups[i];
            const std::string at = "group[" + std::to_string(i) + "].";
            k.in_range(at + "id", g.id, "group.id");
            k.in_range(at + "priority", g.priority, "group.priority");
            k.in_range(at + "vlan", g.vlan, "group.vlan");
            if (std::find(ids.begin(), ids.end(), g.id) != ids.end())
                k.fail(at + "id", std::to_string(g.id), "duplicate: another [[group]] has this id");
            ids.push_back(g.id);
            check_addresses(at, g.addresses);
            // No address in two groups: they would claim it from each other.
            for (const bool primary : {true, false}) {
                for (const auto& p : role_v4(g.addresses, primary)) {
                    if (std::find(v4.begin(), v4.end(), p.addr) != v4.end())
                        k.fail(at + (primary ? "primary" : "monitor"), quote(p.to_string()), "is also an address of another group");
                    v4.push_back(p.addr);
                }
                for (const auto& p : role_v6(g.addresses, primary)) {
                    if (std::find(v6.begin(), v6.end(), p.addr) != v6.end())
                        k.fail(at + (primary ? "primary" : "monitor"), quote(p.to_string()), "is also an address of another group");
                    v6.push_back(p.addr);
                }
            }
            for (const auto& h : g.health)
                if (std::none_of(c.health.begin(), c.health.end(), [&](const health_check_cfg& x) { return x.name == h; }))
                    k.fail(at + "health", quote(h), "names no [[health]] check");
            if (!g.interface.empty() && !valid_ifname(g.interface))
                k.fail(at + "interface", quote(g.interface),
                       "is not a valid interface name (1 to 15 characters, no '/', ':' or spaces)");
            if (c.port.mode == address_mode::shared && g.interface.empty())
                k.fail(at + "interface", "",
                       "is required when port.mode = \"shared\" and port.kernel_interface is not set (the kernel "
                       "interface that carries the group's addresses)");
            if (c.port.mode != address_mode::shared && !g.interface.empty())
                k.fail(at + "interface", quote(g.interface),
                       "needs port.mode = \"shared\": in exclusive mode the engine serves the addresses on the DPDK "
                       "port itself, and no kernel interface carries them");
        }
    }

    // [detect], [garp]
    k.in_range("detect.interval_us", c.detect.interval_us);
    k.in_range("detect.miss", c.detect.miss);
    k.in_range("garp.repeat", c.garp.repeat);
    k.in_range("garp.interval_us", c.garp.interval_us);
    k.in_range("garp.refresh_ms", c.garp.refresh_ms);
    k.in_range("garp.defend_interval_ms", c.garp.defend_interval_ms);

    // [auth]: unauthenticated only when asked for in so many words.
    if (c.auth.mode == auth_mode::keyed && c.detect.probe == probe_kind::icmp)
        k.fail("detect.probe", "\"icmp\"",
               "cannot be authenticated (an echo reply carries no tag): with auth.mode = \"keyed\" use \"heartbeat\" "
               "or \"both\" (then only heartbeat answers count)");
    if (c.auth.mode == auth_mode::keyed) {
        if (c.auth.key_file.empty())
            k.fail("auth.key_file", "",
                   "is required: frames are authenticated by default (a key file of mode 0600, or \"cred:NAME\" "
                   "for a systemd credential); set auth.mode = \"none\" to run unauthenticated");
        else if (!c.auth.key_file.starts_with("cred:"))
            k.absolute_path("auth.key_file", c.auth.key_file);
        else if (c.auth.key_file.size() == 5 || c.auth.key_file.find('/') != std::string::npos)
            k.fail("auth.key_file", quote(c.auth.key_file), "must be \"cred:NAME\" with a credential name (no '/')");
    } else if (!c.auth.key_file.empty()) {
        k.fail("auth.key_file", quote(c.auth.key_file), "is set but auth.mode = \"none\": remove one of them");
    }

    // [protocol]
    const auto& p = c.protocol;
    k.in_range("protocol.discovery_probes", p.discovery_probes);
    k.in_range("protocol.discovery_interval_ms", p.discovery_interval_ms);
    k.in_range("protocol.discovery_wait_ms", p.discovery_wait_ms);
    k.in_range("protocol.announce_interval_ms", p.announce_interval_ms);
    k.in_range("protocol.peer_timeout_ms", p.peer_timeout_ms);
    k.in_range("protocol.stay_down_interval_ms", p.stay_down_interval_ms);
    k.in_range("protocol.preempt_delay_ms", p.preempt_delay_ms);
    k.in_range("protocol.flap_hold_ms", p.flap_hold_ms);
    k.in_range("protocol.drain_timeout_ms", p.drain_timeout_ms);
    // A timeout no longer than the announce period would forget live peers between announces.
    if (p.peer_timeout_ms <= p.announce_interval_ms)
        k.fail("protocol.peer_timeout_ms", std::to_string(p.peer_timeout_ms),
               "must be greater than protocol.announce_interval_ms (" + std::to_string(p.announce_interval_ms) + ")");
    if (p.require_fence && c.hooks.fence.empty())
        k.fail("hooks.fence", "", "is required when protocol.require_fence = true");

    // [engine]
    k.in_range("engine.idle_max_sleep_us", c.engine.idle_max_sleep_us);
    k.in_range("engine.burst", c.engine.burst);
    k.in_range("engine.rt_priority", c.engine.rt_priority);
    k.in_range("engine.yield_us", c.engine.yield_us);
    k.in_range("engine.yield_period_us", c.engine.yield_period_us);
    k.in_range("detect.stall_threshold_us", c.detect.stall_threshold_us);
    // The duty cycle must leave the kernel its share: a yield at least as long as the
    // period would never poll; a FIFO loop that yields under 5 % of the time meets the RT
    // throttle (sched_rt_runtime_us 950000 of 1000000).
    if (c.engine.yield_period_us != 0 && c.engine.yield_us >= c.engine.yield_period_us)
        k.fail("engine.yield_us", std::to_string(c.engine.yield_us),
               "must be shorter than engine.yield_period_us (" + std::to_string(c.engine.yield_period_us) + ")");
    // Adaptive idle sleeps only when the port is quiet: under load it is a busy loop too.
    if (c.engine.sched == sched_policy::fifo &&
        (c.engine.yield_period_us == 0 || c.engine.yield_us * 20 < c.engine.yield_period_us))
        k.fail("engine.yield_us", std::to_string(c.engine.yield_us),
               "a FIFO poll loop must yield at least 5 % of the time (yield_us * 20 >= yield_period_us), or the "
               "kernel's RT throttle stops it for ~50 ms a second; set engine.sched = \"other\" to opt out");

    // [hooks]
    for (const auto& [name, member] : hook_paths) k.absolute_path("hooks." + std::string{name}, c.hooks.*member);
    k.in_range("hooks.timeout_ms", c.hooks.timeout_ms);

    // [[health]]
    for (std::size_t i = 0; i < c.health.size(); ++i) {
        const auto& h = c.health[i];
        const std::string at = "health[" + std::to_string(i) + "].";
        if (!valid_name(h.name))
            k.fail(at + "name", quote(h.name), "must be 1 to 32 characters from A-Z a-z 0-9 _ . -");
        for (std::size_t j = 0; j < i; ++j)
            if (c.health[j].name == h.name && !h.name.empty()) {
                k.fail(at + "name", quote(h.name), "duplicate: health[" + std::to_string(j) + "] has the same name");
                break;
            }
        k.member_of(at + "kind", h.kind, health_kinds);
        if (h.target.empty())
            k.fail(at + "target", "", "must not be empty (script path, interface name or process name)");
        else if (h.kind == "script")
            k.absolute_path(at + "target", h.target);
        else if (h.kind == "interface" && !valid_ifname(h.target))
            k.fail(at + "target", quote(h.target), "is not a valid interface name (1 to 15 characters, no '/', ':' or spaces)");
        k.in_range(at + "interval_ms", h.interval_ms, "health.interval_ms");
        k.in_range(at + "rise", h.rise, "health.rise");
        k.in_range(at + "fall", h.fall, "health.fall");
    }

    // [[state]]
    if (c.state.size() > max_stores)
        k.fail("state", std::to_string(c.state.size()) + " stores", "at most " + std::to_string(max_stores) + " [[state]] blocks");
    for (std::size_t i = 0; i < c.state.size(); ++i) {
        const auto& st = c.state[i];
        const std::string at = "state[" + std::to_string(i) + "].";
        if (!valid_name(st.name))
            k.fail(at + "name", quote(st.name), "must be 1 to 32 characters from A-Z a-z 0-9 _ . -");
        for (std::size_t j = 0; j < i; ++j)
            if (c.state[j].name == st.name && !st.name.empty()) {
                k.fail(at + "name", quote(st.name), "duplicate: state[" + std::to_string(j) + "] has the same name");
                break;
            }
        k.in_range(at + "records", st.records, "state.records");
        k.in_range(at + "key_max", st.key_max, "state.key_max");
        k.in_range(at + "value_max", st.value_max, "state.value_max");
        if (st.key_max + std::uint64_t{st.value_max} > state_entry_room)
            k.fail(at + "value_max", std::to_string(st.value_max),
                   "key_max + value_max must be at most " + std::to_string(state_entry_room) +
                       " bytes: every record travels in one frame");
        k.in_range(at + "queue", st.queue, "state.queue");
        if ((st.queue & (st.queue - 1)) != 0)
            k.fail(at + "queue", std::to_string(st.queue), "must be a power of two");
        k.in_range(at + "log_mb", st.log_mb, "state.log_mb");
        k.in_range(at + "join_hold_ms", st.join_hold_ms, "state.join_hold_ms");
        if (st.group != 0 && std::none_of(c.groups.begin(), c.groups.end(), [&](const group_cfg& g) { return g.id == st.group; }))
            k.fail(at + "group", std::to_string(st.group), "names no group (a [[group]] id, or node.group)");
        if (!st.path.empty()) k.absolute_path(at + "path", st.path);
    }

    // [control]
    if (!c.control.socket.empty()) {
        k.absolute_path("control.socket", c.control.socket);
        if (c.control.socket.size() > sun_path_max)
            k.fail("control.socket", quote(c.control.socket),
                   "is longer than " + std::to_string(sun_path_max) + " bytes, the limit for a unix socket path");
    }
    k.member_of("control.log_level", c.control.log_level, log_levels);
    constexpr std::string_view notify_styles[] = {"heartwire", "keepalived"};
    k.member_of("hooks.notify_args", c.hooks.notify_args, notify_styles);
    if (!c.control.metrics.empty() && !parse_host_port(c.control.metrics))
        k.fail("control.metrics", quote(c.control.metrics),
               "must be ADDR:PORT with an IPv4 or [IPv6] literal, e.g. \"127.0.0.1:9567\"");

    return std::move(k.errors);
}

reload_plan plan_reload(const config& running, const config& next) {
    reload_plan r{running, {}, {}};
    config& to = r.result;
    // `live`: copy a changed value and name it; `fixed`: name a change that waits for a restart.
    const auto live = [&](std::string key, auto& into, const auto& from) {
        if (into == from) return;
        into = from;
        r.applied.push_back(std::move(key));
    };
    const auto fixed = [&](std::string key, const auto& a, const auto& b) {
        if (!(a == b)) r.refused.push_back(std::move(key));
    };
    const config& a = running;
    const config& b = next;

    fixed("node.name", a.node.name, b.node.name);
    fixed("node.id", a.node.id, b.node.id);
    live("node.priority", to.node.priority, b.node.priority);
    if (a.explicit_groups || b.explicit_groups) fixed("node.group", a.node.group, b.node.group);

    fixed("port.eal", a.port.eal_args, b.port.eal_args);
    fixed("port.device", a.port.device, b.port.device);
    fixed("port.mode", a.port.mode, b.port.mode);
    fixed("port.kernel_interface", a.port.kernel_interface, b.port.kernel_interface);
    fixed("port.notice_interface", a.port.notice_interface, b.port.notice_interface);
    fixed("port.rx_desc", a.port.rx_desc, b.port.rx_desc);
    fixed("port.tx_desc", a.port.tx_desc, b.port.tx_desc);
    fixed("port.mbufs", a.port.mbufs, b.port.mbufs);
    fixed("port.vlan", a.port.vlan, b.port.vlan);
    fixed("port.xdp_prog", a.port.xdp_prog, b.port.xdp_prog);
    fixed("port.flow_isolate", a.port.flow_isolate, b.port.flow_isolate);

    // Groups: the same groups (count, ids, addresses, VLAN, interface) or a restart; their
    // rank, preempt, name and health list live. Without [[group]] blocks the one group is
    // [node] group, [addresses], node.priority and protocol.preempt, named so.
    if (a.groups.size() != b.groups.size() || a.explicit_groups != b.explicit_groups) {
        r.refused.emplace_back("group");
    } else {
        for (std::size_t i = 0; i < a.groups.size(); ++i) {
            const auto& ga = a.groups[i];
            const auto& gb = b.groups[i];
            auto& gt = to.groups[i];
            if (!a.explicit_groups) {
                fixed("node.group", ga.id, gb.id);
                fixed("addresses", ga.addresses, gb.addresses);
                gt.priority = gb.priority; // named as node.priority and protocol.preempt
                gt.preempt = gb.preempt;
                continue;
            }
            const std::string k = "group[" + std::to_string(i) + "].";
            fixed(k + "id", ga.id, gb.id);
            fixed(k + "primary", std::pair{ga.addresses.primary, ga.addresses.primary_more},
                  std::pair{gb.addresses.primary, gb.addresses.primary_more});
            fixed(k + "primary6", ga.addresses.primary6, gb.addresses.primary6);
            fixed(k + "monitor", std::pair{ga.addresses.monitor, ga.addresses.monitor_more},
                  std::pair{gb.addresses.monitor, gb.addresses.monitor_more});
            fixed(k + "monitor6", ga.addresses.monitor6, gb.addresses.monitor6);
            if (a.port.vlan == b.port.vlan) fixed(k + "vlan", ga.vlan, gb.vlan); // else named as port.vlan
            if (a.port.kernel_interface == b.port.kernel_interface) fixed(k + "interface", ga.interface, gb.interface);
            live(k + "name", gt.name, gb.name);
            live(k + "priority", gt.priority, gb.priority);
            live(k + "preempt", gt.preempt, gb.preempt);
            if (!(gt.health == gb.health) || gt.health_given != gb.health_given) {
                gt.health = gb.health;
                gt.health_given = gb.health_given;
                r.applied.push_back(k + "health");
            }
        }
        to.addresses = to.groups.front().addresses;
    }

    live("detect.interval_us", to.detect.interval_us, b.detect.interval_us);
    live("detect.miss", to.detect.miss, b.detect.miss);
    live("detect.stall_threshold_us", to.detect.stall_threshold_us, b.detect.stall_threshold_us);
    fixed("detect.probe", a.detect.probe, b.detect.probe);

    live("garp.repeat", to.garp.repeat, b.garp.repeat);
    live("garp.interval_us", to.garp.interval_us, b.garp.interval_us);
    live("garp.refresh_ms", to.garp.refresh_ms, b.garp.refresh_ms);
    live("garp.defend_interval_ms", to.garp.defend_interval_ms, b.garp.defend_interval_ms);

    fixed("auth.mode", a.auth.mode, b.auth.mode);
    live("auth.key_file", to.auth.key_file, b.auth.key_file);

    auto& p = to.protocol;
    const auto& q = b.protocol;
    live("protocol.discovery_probes", p.discovery_probes, q.discovery_probes);
    live("protocol.discovery_interval_ms", p.discovery_interval_ms, q.discovery_interval_ms);
    live("protocol.discovery_wait_ms", p.discovery_wait_ms, q.discovery_wait_ms);
    live("protocol.announce_interval_ms", p.announce_interval_ms, q.announce_interval_ms);
    live("protocol.peer_timeout_ms", p.peer_timeout_ms, q.peer_timeout_ms);
    live("protocol.stay_down_interval_ms", p.stay_down_interval_ms, q.stay_down_interval_ms);
    live("protocol.preempt", p.preempt, q.preempt);
    live("protocol.preempt_delay_ms", p.preempt_delay_ms, q.preempt_delay_ms);
    live("protocol.drain_timeout_ms", p.drain_timeout_ms, q.drain_timeout_ms);
    live("protocol.flap_hold_ms", p.flap_hold_ms, q.flap_hold_ms);
    live("protocol.require_fence", p.require_fence, q.require_fence);

    const auto& e = a.engine;
    const auto& f = b.engine;
    fixed("engine.mode", e.mode, f.mode);
    fixed("engine.idle", e.idle, f.idle);
    fixed("engine.idle_max_sleep_us", e.idle_max_sleep_us, f.idle_max_sleep_us);
    fixed("engine.burst", e.burst, f.burst);
    fixed("engine.sched", e.sched, f.sched);
    fixed("engine.rt_priority", e.rt_priority, f.rt_priority);
    fixed("engine.yield_us", e.yield_us, f.yield_us);
    fixed("engine.yield_period_us", e.yield_period_us, f.yield_period_us);
    fixed("engine.lock_memory", e.lock_memory, f.lock_memory);
    fixed("engine.idle_filler", e.idle_filler, f.idle_filler);

    auto& h = to.hooks;
    const auto& n = b.hooks;
    for (auto [key, into, from] : {std::tuple{"hooks.notify", &h.notify, &n.notify},
                                   {"hooks.notify_args", &h.notify_args, &n.notify_args},
                                   {"hooks.on_primary", &h.on_primary, &n.on_primary},
                                   {"hooks.on_monitor", &h.on_monitor, &n.on_monitor},
                                   {"hooks.on_standby", &h.on_standby, &n.on_standby},
                                   {"hooks.on_fault", &h.on_fault, &n.on_fault},
                                   {"hooks.boot_peer", &h.boot_peer, &n.boot_peer},
                                   {"hooks.fence", &h.fence, &n.fence},
                                   {"hooks.drain", &h.drain, &n.drain},
                                   {"hooks.recover", &h.recover, &n.recover},
                                   {"hooks.undrain", &h.undrain, &n.undrain}})
        live(key, *into, *from);
    live("hooks.timeout_ms", h.timeout_ms, n.timeout_ms);

    live("health", to.health, b.health);

    fixed("state", a.state, b.state);

    live("control.log_level", to.control.log_level, b.control.log_level);
    fixed("control.socket", a.control.socket, b.control.socket);
    fixed("control.metrics", a.control.metrics, b.control.metrics);
    return r;
}

std::string state_path(const std::string& node_name, const state_cfg& s) {
    return s.path.empty() ? "/dev/shm/heartwire-" + node_name + "-" + s.name : s.path;
}

std::string_view to_string(state_mode m) noexcept {
    switch (m) {
    case state_mode::sync: return "sync";
    case state_mode::async: return "async";
    }
    return "?";
}

std::string_view to_string(address_mode m) noexcept {
    switch (m) {
    case address_mode::exclusive: return "exclusive";
    case address_mode::shared: return "shared";
    }
    return "?";
}

std::string_view to_string(probe_kind p) noexcept {
    switch (p) {
    case probe_kind::heartbeat: return "heartbeat";
    case probe_kind::icmp: return "icmp";
    case probe_kind::both: return "both";
    }
    return "?";
}

std::string_view to_string(lcore_mode m) noexcept {
    switch (m) {
    case lcore_mode::run_to_completion: return "run-to-completion";
    case lcore_mode::pipelined: return "pipelined";
    }
    return "?";
}

std::string_view to_string(sched_policy p) noexcept {
    switch (p) {
    case sched_policy::fifo: return "fifo";
    case sched_policy::other: return "other";
    }
    return "?";
}

std::string_view to_string(auth_mode m) noexcept {
    switch (m) {
    case auth_mode::keyed: return "keyed";
    case auth_mode::none: return "none";
    }
    return "?";
}

std::string_view to_string(idle_policy p) noexcept {
    switch (p) {
    case idle_policy::busy: return "busy";
    case idle_policy::adaptive: return "adaptive";
    }
    return "?";
}

} // namespace heartwire::cfg
