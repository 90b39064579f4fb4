#include "heartwirectl/state_cmd.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "heartwire/config.hpp"
#include "heartwire/roles.hpp"
#include "heartwire/state.hpp"
#include "heartwired/json_text.hpp"

namespace heartwirectl {

namespace {

using heartwire::app::json;
using heartwire::app::json_text;
namespace state = heartwire::state;

std::string name_check(const std::string& s) {
    if (s.empty() || s.size() > 32 || s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != std::string::npos)
        return "a store name ([[state]] name) is 1 to 32 letters, digits, '.', '_' and '-'";
    return {};
}

std::string num(std::uint64_t v) { return std::to_string(v); }

std::string hex(std::string_view b) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(b.size() * 2);
    for (const char c : b) {
        out.push_back(digits[static_cast<unsigned char>(c) >> 4]);
        out.push_back(digits[static_cast<unsigned char>(c) & 15]);
    }
    return out;
}

std::optional<std::string> unhex(std::string_view h) {
    const auto nib = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    if (h.size() % 2) return std::nullopt;
    std::string out;
    for (std::size_t i = 0; i < h.size(); i += 2) {
        const int a = nib(h[i]), b = nib(h[i + 1]);
        if (a < 0 || b < 0) return std::nullopt;
        out.push_back(static_cast<char>(a * 16 + b));
    }
    return out;
}

bool utf8(std::string_view s) {
    try { // the JSON library's own check: what it would refuse to print as a string
        (void)json(std::string(s)).dump();
        return true;
    } catch (const json::type_error&) {
        return false;
    }
}

// One record per line: control bytes, '\' (and '=' in a key) escaped as \xNN; bytes that
// are not UTF-8 too.
std::string printable(std::string_view s, bool is_key) {
    const bool keep_high = utf8(s);
    std::string out;
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if ((u >= 0x20 && u < 0x7f && c != '\\' && !(is_key && c == '=')) || (u >= 0x80 && keep_high)) {
            out.push_back(c);
        } else {
            out += "\\x";
            out += hex(std::string_view(&c, 1));
        }
    }
    return out;
}

std::string_view as_text(std::span<const std::byte> b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }
std::span<const std::byte> as_bytes(std::string_view s) { return {reinterpret_cast<const std::byte*>(s.data()), s.size()}; }

bool pid_alive(std::uint64_t pid) {
    return pid != 0 && pid < (1ull << 31) && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
}

void say(const std::string& s) { std::cerr << "heartwirectl: " << s << "\n"; }

// Why the region at `path` cannot be used, with the likely cause.
int unreachable(const std::string& path, const std::string& err, const state_request& req, const std::string& node) {
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0 && errno == ENOENT) {
        std::string why = "no state region at " + path + ": ";
        if (!req.path.empty()) why += "heartwired is not running, or this is not its [[state]] path";
        else {
            why += "heartwired is not running on node ";
            why += node;
            why += ", or has no [[state]] named ";
            why += req.store;
            why += " (a [[state]] with its own path: use --path)";
        }
        say(why);
    } else if (::access(path.c_str(), R_OK | W_OK) != 0 && (errno == EACCES || errno == EPERM)) {
        say("permission denied on " + path + ": the region is heartwired's (mode 0660): run as root or in its group");
    } else {
        say(err + " (made by a heartwired of another version, or not heartwired's at all?)");
    }
    return exit_unreachable;
}

std::string role_name(const state::client& c) { return std::string(heartwire::to_string(c.node_role())); }

int do_get(const state::client& c, const state_request& req) {
    std::vector<std::byte> buf(c.raw().header().value_max + 1);
    const long n = c.get(req.key, buf);
    if (n == -2) {
        say("the record of " + req.key + " stayed locked: a writer died inside it");
        return exit_refused;
    }
    if (n < 0) {
        say("no such key: " + req.key);
        return exit_refused;
    }
    const std::string_view v = as_text({buf.data(), static_cast<std::size_t>(n)});
    if (req.hex) std::cout << hex(v) << "\n";
    else {
        std::cout << v;
        if (::isatty(STDOUT_FILENO)) std::cout << "\n"; // the bytes as they are into a pipe or file
    }
    return exit_ok;
}

int do_write(state::client& c, const state_request& req) {
    const auto& h = c.raw().header();
    std::string value = req.value;
    if (req.hex) {
        auto v = unhex(req.value);
        if (!v) {
            say("--hex: the value is not an even number of hex digits");
            return exit_usage;
        }
        value = std::move(*v);
    }
    if (req.key.size() > h.key_max || value.size() > h.value_max) {
        say("refused: too large: key_max " + num(h.key_max) + ", value_max " + num(h.value_max) + " (the key is " +
            num(req.key.size()) + " bytes, the value " + num(value.size()) + ")");
        return exit_refused;
    }
    const std::uint64_t pid = h.writer_pid.load(std::memory_order_relaxed);
    if (!pid_alive(pid)) {
        say("heartwired (pid " + num(pid) + ") that made " + c.path() +
            " is not running: nothing would take the write (start heartwired, or it is restarting: try again)");
        return exit_unreachable;
    }
    const std::uint64_t t = req.action == "put" ? c.put(req.key, as_bytes(value)) : c.erase(req.key);
    if (t == 0) {
        say("refused: queue full: heartwired is not draining");
        return exit_refused;
    }
    if (c.wait(t, std::chrono::milliseconds{req.timeout_ms})) {
        std::cout << c.raw().seq_of(t) << "\n";
        return exit_ok;
    }
    if (c.refused(t)) {
        const auto r = c.node_role();
        if (r != heartwire::role::primary) say("refused: not the primary (role " + role_name(c) + ")");
        else say("refused by heartwired (the table is full: [[state]] records)");
        return exit_refused;
    }
    const std::uint64_t seq = c.raw().seq_of(t);
    if (seq == 0)
        say("refused: timed out: heartwired did not take the write from its queue within " + num(req.timeout_ms) +
            " ms (its engine is not draining)");
    else if (h.sync)
        say("refused: timed out waiting for the monitor's acknowledgement (seq " + num(seq) + ", replicated up to " +
            num(h.replicated_seq.load()) + "; the write is applied here and may still reach the monitor)");
    else
        say("refused: timed out waiting for the write (seq " + num(seq) + ") to be applied");
    return exit_refused;
}

int do_dump(const state::client& c, const state_request& req) {
    const auto& t = c.raw().table();
    struct record {
        std::string key, value;
        std::uint64_t seq;
    };
    std::vector<record> all;
    all.reserve(t.count());
    std::vector<std::byte> scratch(t.scratch_bytes());
    const auto w = t.for_each(scratch, [&](std::string_view k, std::span<const std::byte> v, std::uint64_t seq) {
        all.push_back({std::string(k), std::string(as_text(v)), seq});
    });
    // In key order: two nodes' dumps compare with diff.
    std::sort(all.begin(), all.end(), [](const record& a, const record& b) { return a.key < b.key; });
    if (req.json) {
        json out = json::array();
        for (const auto& r : all) {
            json j;
            if (utf8(r.key)) j["key"] = r.key;
            else j["key_hex"] = hex(r.key);
            if (!req.hex && utf8(r.value)) j["value"] = r.value;
            else j["value_hex"] = hex(r.value);
            j["seq"] = r.seq;
            out.push_back(std::move(j));
        }
        std::cout << json_text(out) << "\n";
    } else {
        for (const auto& r : all)
            std::cout << printable(r.key, true) << "=" << (req.hex ? hex(r.value) : printable(r.value, false)) << "\n";
    }
    if (w.skipped)
        say("warning: " + num(w.skipped) + " record(s) skipped: rewritten faster than they could be read, or a writer died inside");
    return exit_ok;
}

int do_stats(const state::client& c, const state_request& req) {
    const auto& r = c.raw();
    const auto& h = r.header();
    const auto sum = r.table().state();
    const auto& g = r.table().geometry();
    const std::uint64_t pid = h.writer_pid.load(std::memory_order_relaxed);
    const std::uint64_t enq = h.enqueue_pos.load(), deq = h.dequeue_pos.load();
    char digest[17];
    std::snprintf(digest, sizeof digest, "%016llx", static_cast<unsigned long long>(sum.digest));
    json j;
    j["path"] = c.path();
    j["role"] = role_name(c);
    j["in_sync"] = c.in_sync();
    j["mode"] = h.sync ? "sync" : "async";
    j["applied_seq"] = h.applied_seq.load();
    j["replicated_seq"] = h.replicated_seq.load();
    j["records"] = sum.count;
    j["tombstones"] = r.table().tombstones();
    j["capacity"] = g.capacity;
    j["key_max"] = h.key_max;
    j["value_max"] = h.value_max;
    j["digest"] = digest;
    j["queued"] = enq >= deq ? enq - deq : 0;
    j["queue"] = h.cells;
    j["writer_pid"] = pid;
    j["writer_alive"] = pid_alive(pid);
    if (req.json) {
        std::cout << json_text(j) << "\n";
        return exit_ok;
    }
    for (const auto& [k, v] : j.items()) {
        std::string text = v.is_string() ? v.get<std::string>() : v.is_boolean() ? (v.get<bool>() ? "yes" : "no") : v.dump();
        if (k == "writer_pid") text += pid_alive(pid) ? " (running)" : " (not running: the copy is what it left)";
        if (k == "writer_alive") continue;
        std::printf("%-15s %s\n", k.c_str(), text.c_str());
    }
    return exit_ok;
}

CLI::App* region_options(CLI::App* sub, state_request& req) {
    sub->fallthrough();
    auto* store = sub->add_option("--store", req.store, "the [[state]] name; the region is /dev/shm/heartwire-NODE-NAME")
                      ->check(name_check);
    sub->add_option("--path", req.path, "the region's file ([[state]] path), instead of --node and --store")->excludes(store);
    return sub;
}

} // namespace

CLI::App* add_state_commands(CLI::App& app, state_request& req) {
    auto* st = app.add_subcommand("state", "read and write a replicated state store ([[state]]) on this host");
    st->footer("Maps the store's shared-memory region directly (no round trip through heartwired):\n"
               "get and dump read this node's copy, put and erase queue a write heartwired's engine\n"
               "applies and replicates, and wait for it. The region is --path FILE, or\n"
               "/dev/shm/heartwire-NODE-STORE for --store STORE and the global --node NODE (default:\n"
               "the only heartwired running here).");
    st->require_subcommand(1, 1);
    st->fallthrough(); // the global --node after the command too
    auto* get = region_options(st->add_subcommand("get", "print a record's value (its bytes as they are)"), req);
    get->add_option("key", req.key, "the key")->required();
    get->add_flag("--hex", req.hex, "print the value in hex");
    get->callback([&] { req.action = "get"; });

    auto* put = region_options(st->add_subcommand("put", "write a record, wait until complete, print its seq"), req);
    put->footer("Complete: acknowledged by the monitor (mode sync) or applied here (async).");
    put->add_option("key", req.key, "the key")->required();
    put->add_option("value", req.value, "the value")->required();
    put->add_flag("--hex", req.hex, "the value is given in hex");
    put->add_option("--timeout-ms", req.timeout_ms, "milliseconds to wait for the write")->check(CLI::Range(1, 600'000))->capture_default_str();
    put->callback([&] { req.action = "put"; });

    auto* erase = region_options(st->add_subcommand("erase", "erase a record, wait until complete, print its seq"), req);
    erase->add_option("key", req.key, "the key")->required();
    erase->add_option("--timeout-ms", req.timeout_ms, "milliseconds to wait for the write")->check(CLI::Range(1, 600'000))->capture_default_str();
    erase->callback([&] { req.action = "erase"; });

    auto* dump = region_options(st->add_subcommand("dump", "print every record, key=value, in key order"), req);
    dump->footer("Control bytes, '\\' (and '=' in a key) are printed as \\xNN. Each record is read whole;\n"
                 "the dump as a whole is not a snapshot of one instant while writes go on.");
    dump->add_flag("--json", req.json, "print a JSON array of {key, value, seq} (key_hex/value_hex for bytes that are not UTF-8)");
    dump->add_flag("--hex", req.hex, "print the values in hex");
    dump->callback([&] { req.action = "dump"; });

    auto* stats = region_options(st->add_subcommand("stats", "print the region's view: role, sync, seqs, records, digest, queue"), req);
    stats->add_flag("--json", req.json, "print one JSON object");
    stats->callback([&] { req.action = "stats"; });
    return st;
}

int run_state(const state_request& req, const std::string& given_node,
              const std::function<std::string(std::string& why, int& code)>& only_node) {
    if (req.path.empty() && req.store.empty()) {
        say("state " + req.action + ": give --store NAME (the [[state]] name) or --path FILE");
        return exit_usage;
    }
    if (req.key.empty() && req.action != "dump" && req.action != "stats") {
        say("a key is 1 byte or more");
        return exit_usage;
    }
    std::string node = given_node;
    if (node.empty() && req.path.empty()) {
        std::string why;
        int code = exit_usage;
        node = only_node(why, code);
        if (node.empty()) {
            say(why);
            return code;
        }
    }
    heartwire::cfg::state_cfg s;
    s.name = req.store;
    s.path = req.path;
    const std::string path = heartwire::cfg::state_path(node, s);
    std::string err;
    auto c = state::client::open(path, err);
    if (!c) return unreachable(path, err, req, node);
    const std::uint64_t pid = c->raw().header().writer_pid.load(std::memory_order_relaxed);
    if ((req.action == "get" || req.action == "dump") && !pid_alive(pid))
        say("note: heartwired (pid " + num(pid) + ") that made " + path + " is not running: this is the copy it left");
    if (req.action == "get") return do_get(*c, req);
    if (req.action == "put" || req.action == "erase") return do_write(*c, req);
    if (req.action == "dump") return do_dump(*c, req);
    return do_stats(*c, req);
}

} // namespace heartwirectl
