#pragma once
// Runs operator hooks (notify scripts, boot_peer, fence, drain, health scripts) off the
// control thread: each hook runs as a child process (posix_spawn, no shell), with a timeout
// after which it is killed (SIGTERM, then SIGKILL after 1 s). Completions are collected and
// handed back on the control thread by poll(), so callers never race.
//
// What a hook gets: stdin from /dev/null, stdout/stderr inherited, no other descriptor,
// default signal dispositions and an empty signal mask (whatever the daemon blocks or
// ignores), its own process group. The timeout's signals go to that process group, so a
// hook script's own children (`sleep`, `ipmitool`) die with it rather than linger.
// One reaper thread waits on pidfds; the process must not set SIGCHLD to SIG_IGN nor
// call waitpid(-1), or exit statuses are lost.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace heartwire::control {

struct hook_result {
    std::uint64_t id{};        // as returned by run()
    std::string name;          // the label given to run(), e.g. "notify", "fence"
    int exit_code{-1};         // exit status; -1 if it could not start or was killed
    bool timed_out{false};
    bool spawn_failed{false};
    int term_signal{0};        // the signal that ended it, 0 when it exited
    std::string error;         // why it failed to start, when spawn_failed
    std::chrono::milliseconds elapsed{};
    bool ok() const noexcept { return !spawn_failed && !timed_out && exit_code == 0; }
};

class hook_runner {
public:
    // default_timeout applies when run() is given 0; 0 here too means no timeout.
    explicit hook_runner(std::chrono::milliseconds default_timeout);
    // A reload: hooks started from now on (those running keep theirs).
    void set_default_timeout(std::chrono::milliseconds t);
    // Sends SIGTERM to hooks still running, SIGKILL 1 s later, and reaps them all before
    // returning (call wait_all() first to let them finish). Unpolled results are dropped.
    ~hook_runner();
    hook_runner(const hook_runner&) = delete;
    hook_runner& operator=(const hook_runner&) = delete;

    // Starts `argv[0]` with the rest as arguments and `env` added to the environment
    // ("KEY=VALUE", overriding an inherited KEY). argv[0] without a '/' is looked up in the
    // daemon's PATH. Returns an id; never blocks on the child. A start failure (empty argv,
    // missing or non-executable program) is a spawn_failed result delivered through poll().
    std::uint64_t run(std::string name, std::vector<std::string> argv,
                      std::vector<std::string> env = {},
                      std::chrono::milliseconds timeout = std::chrono::milliseconds{0});

    // Hands every finished hook's result to `on_done`, on the calling thread. Non-blocking.
    std::size_t poll(const std::function<void(const hook_result&)>& on_done);
    // Blocks until all started hooks have finished (tests, shutdown).
    void wait_all();
    std::size_t running() const;

private:
    struct impl;
    std::unique_ptr<impl> p_;
};

} // namespace heartwire::control
