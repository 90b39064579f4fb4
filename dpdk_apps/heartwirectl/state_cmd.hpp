#pragma once
// heartwirectl state: the replicated store's region mapped directly (issue 10), no round
// trip through heartwired: get and dump read the local copy, put and erase queue a write the
// engine drains and wait for it, stats prints the region header's view.

#include <CLI/CLI.hpp>

#include <functional>
#include <string>

namespace heartwirectl {

inline constexpr int exit_ok = 0, exit_refused = 1, exit_unreachable = 2, exit_usage = 64;

struct state_request {
    std::string action; // get, put, erase, dump, stats: the command given
    std::string store, path, key, value;
    bool json{}, hex{};
    int timeout_ms{2000};
};

// Adds `state` and its commands to `app`; the one parsed fills `req`.
CLI::App* add_state_commands(CLI::App& app, state_request& req);

// Runs it on the region at req.path, or /dev/shm/heartwire-NODE-STORE; with no --node,
// `only_node` names the node of the only heartwired here ("" with `why` and an exit code
// when there is none or several). Exit status: 0 ok, 1 refused (no such key, not the
// primary, timed out, too large, queue full), 2 the region cannot be reached, 64 bad usage.
int run_state(const state_request& req, const std::string& node,
              const std::function<std::string(std::string& why, int& code)>& only_node);

} // namespace heartwirectl
