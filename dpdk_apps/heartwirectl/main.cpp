// heartwirectl: the operator's handle on a running heartwired. Each command is one request
// line on the daemon's control socket; the answer is printed as it comes. `state` is the
// exception: it maps a replicated store's region itself (state_cmd.cpp).
//
// Exit status: 0 the daemon said ok, 1 it answered with an error, 2 it cannot be reached,
// 64 bad usage.

#include <CLI/CLI.hpp>

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <string>
#include <system_error>
#include <vector>

#include "control/ctl_socket.hpp"
#include "heartwirectl/state_cmd.hpp"

namespace {

using namespace heartwirectl; // exit_*

constexpr const char* run_dir = "/run/heartwire";

std::string node_socket(const std::string& node) { return std::string(run_dir) + "/" + node + ".sock"; }

// The default when neither --socket nor --node is given: the only daemon on this host.
// Returns "" and sets `why` when there is none or more than one; `none` is what to say
// when there is none.
std::string only_socket(std::string& why, int& code,
                        const char* none = ": heartwired is not running (or its [control] socket is elsewhere: use --socket)") {
    std::vector<std::string> found;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(run_dir, ec))
        if (e.path().extension() == ".sock" && e.is_socket(ec)) found.push_back(e.path().string());
    if (found.size() == 1) return found[0];
    if (found.empty()) {
        why = std::string("no control socket in ") + run_dir + none;
        code = exit_unreachable;
    } else {
        why = "several heartwired run here; choose one with --node:";
        for (const auto& f : found) why += " " + std::filesystem::path(f).stem().string();
        code = exit_usage;
    }
    return {};
}

std::string explain(const std::system_error& e, const std::string& path, int timeout_ms) {
    const std::string head = "heartwirectl: cannot reach heartwired at " + path + ": ";
    switch (e.code().value()) {
    case ENOENT:
        return head + "no such socket; heartwired is not running (or uses another [control] socket)";
    case ECONNREFUSED:
        return head + "nobody listens on it; heartwired is not running (the socket is left over from one that stopped)";
    case EACCES:
    case EPERM:
        return head + "permission denied; heartwired may be running, but you need root or the socket's group";
    case ETIMEDOUT:
        return head + "heartwired is running but did not answer within " + std::to_string(timeout_ms) + " ms";
    default:
        return head + e.what();
    }
}

bool starts_with_word(std::string_view s, std::string_view w) {
    return s.substr(0, w.size()) == w && (s.size() == w.size() || s[w.size()] == ' ' ||
                                          s[w.size()] == ':' || s[w.size()] == '\n');
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"heartwirectl: query and steer a running heartwired through its control socket.",
                 "heartwirectl"};
    std::string socket_path, node;
    int timeout_ms = 2000;
    auto* sock_opt = app.add_option("-s,--socket", socket_path, "control socket path (the daemon's [control] socket)");
    auto* node_opt = app.add_option("-n,--node", node, "node name; the socket is /run/heartwire/NAME.sock")
        ->check([](const std::string& s) -> std::string {
            if (s.empty() || s.front() == '.' ||
                s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") !=
                    std::string::npos)
                return "a node name is letters, digits, '.', '_' and '-'";
            return {};
        });
    sock_opt->excludes(node_opt);
    app.add_option("-t,--timeout", timeout_ms, "milliseconds to wait for the answer")
        ->check(CLI::Range(1, 600'000))
        ->capture_default_str();
    long long group = -1;
    app.add_option("-g,--group", group, "address group id ([[group]] id) a switchover, fault, clear or inflight is for; "
                                        "default: the first group (switchover) or every group")
        ->check(CLI::Range(1LL, 4294967295LL));
    app.set_version_flag("-V,--version", std::string("heartwirectl ") + HEARTWIRE_VERSION);
    app.require_subcommand(1, 1);

    std::string line;

    bool json = false;
    auto* status = app.add_subcommand("status", "show role, epoch, held addresses, peers and counters");
    status->footer("Sends \"status\" (\"status json\" with --json; the answer is then one JSON document).");
    status->add_flag("--json", json, "print the status as one JSON document (for scripts and monitoring)");
    status->callback([&] { line = json ? "status json" : "status"; });

    app.add_subcommand("switchover", "planned handover of the primary address to the monitor")
        ->footer("The primary drains (stops taking new work, waits for in-flight work or its drain\n"
                 "deadline) before the monitor claims the primary address, so no request is lost.\n"
                 "Either the primary or the monitor accepts it.")
        ->callback([&] { line = "switchover"; });

    std::string fault_type;
    std::vector<std::string> fault_detail;
    auto* fault = app.add_subcommand("fault", "report a local fault; the monitor takes over if it can");
    fault->footer("As a failing health check would: the node enters `fault` and sends the monitor a fault\n"
                  "report naming TYPE; the monitor answers whether it can take over, then a switchover\n"
                  "follows. Sends \"fault TYPE DETAIL...\". Undo with `clear`.");
    fault->add_option("type", fault_type, "fault type, one word (e.g. app, disk, sync)")
        ->required()
        ->check([](const std::string& s) -> std::string {
            return s.find_first_of(" \t\n") == std::string::npos ? std::string{} : "the fault type is one word";
        });
    fault->add_option("detail", fault_detail, "free text recorded with the fault");
    fault->callback([&] {
        line = "fault " + fault_type;
        for (const auto& d : fault_detail) line += " " + d;
    });

    app.add_subcommand("clear", "declare this node's fault cured")
        ->footer("The node leaves `fault` and rejoins as monitor or standby (no preemption by default).")
        ->callback([&] { line = "clear"; });

    std::uint64_t inflight = 0;
    auto* infl = app.add_subcommand("inflight", "report how many requests are still in flight");
    infl->footer("For applications that track their own work: a draining primary hands over once the\n"
                 "count it was last told reaches 0 (or at its drain deadline).");
    infl->add_option("count", inflight, "number of requests in flight, 0 or more")
        ->required()
        ->check([](const std::string& s) -> std::string {
            return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos
                       ? std::string{}
                       : "the count is a whole number, 0 or more";
        });
    infl->callback([&] { line = "inflight " + std::to_string(inflight); });

    std::string level;
    auto* lvl = app.add_subcommand("log-level", "show the running log level, or set it (debug, info, warn, error)");
    lvl->add_option("level", level, "the new level; none: print the current one")
        ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
    lvl->callback([&] { line = level.empty() ? "log-level" : "log-level " + level; });

    auto* met = app.add_subcommand("metrics", "print the metrics in Prometheus text format");
    met->footer("The text the [control] metrics endpoint serves, for node_exporter's textfile collector:\n"
                "  heartwirectl metrics > /var/lib/prometheus/node-exporter/heartwire.prom.$$ && mv ...");
    met->callback([&] { line = "metrics"; });

    heartwirectl::state_request sreq;
    auto* state_cmd = heartwirectl::add_state_commands(app, sreq);

    // Set last: subcommands created before it do not inherit it.
    app.footer(
        "Each command sends one line to heartwired and prints its answer (`state` maps the store itself).\n"
        "The socket is --socket PATH, or /run/heartwire/NAME.sock for --node NAME, or, when\n"
        "neither is given, the only socket in /run/heartwire. `heartwirectl COMMAND --help` for more.\n"
        "Exit status: 0 the daemon answered ok, 1 it answered with an error,\n"
        "2 it cannot be reached (not running, no permission, no answer), 64 bad usage.");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int rc = app.exit(e);
        return rc == 0 ? exit_ok : exit_usage;
    }
    if (state_cmd->parsed()) {
        if (!socket_path.empty()) {
            std::cerr << "heartwirectl: state maps the store's region, not the control socket: give --node NAME or --path FILE\n";
            return exit_usage;
        }
        return heartwirectl::run_state(sreq, node, [](std::string& why, int& code) { // the only heartwired here
            const std::string sock = only_socket(why, code, ": heartwired is not running (give --node NAME or --path FILE)");
            return sock.empty() ? sock : std::filesystem::path(sock).stem().string();
        });
    }
    if (line.find('\n') != std::string::npos) {
        std::cerr << "heartwirectl: a fault detail cannot contain a line break\n";
        return exit_usage;
    }

    std::string path = socket_path;
    if (path.empty() && !node.empty()) path = node_socket(node);
    if (path.empty()) {
        std::string why;
        int code = exit_usage;
        path = only_socket(why, code);
        if (path.empty()) {
            std::cerr << "heartwirectl: " << why << "\n";
            return code;
        }
    }

    if (group >= 0) line = "group " + std::to_string(group) + " " + line;
    std::string resp;
    try {
        resp = heartwire::control::ctl_request(path, line, std::chrono::milliseconds{timeout_ms});
    } catch (const std::system_error& e) {
        std::cerr << explain(e, path, timeout_ms) << "\n";
        return exit_unreachable;
    }
    if (!resp.empty() && resp.back() != '\n') resp.push_back('\n');

    const auto first_end = resp.find('\n');
    const std::string_view first = std::string_view(resp).substr(0, first_end);
    if (starts_with_word(first, "error")) {
        std::cerr << resp;
        return exit_refused;
    }
    const auto body = resp.find_first_not_of(" \t\r\n");
    if (json && body != std::string::npos && (resp[body] == '{' || resp[body] == '[')) {
        std::cout << resp;
        return exit_ok;
    }
    if (starts_with_word(first, "ok")) {
        // A bare "ok" line in front of status text says nothing the exit status does not.
        if (first == "ok" && first_end + 1 < resp.size()) std::cout << resp.substr(first_end + 1);
        else std::cout << resp;
        return exit_ok;
    }
    std::cerr << "heartwirectl: unexpected answer from heartwired at " << path << ":\n" << resp;
    return exit_refused;
}
