#pragma once
// Serialises operator hooks per kind on top of hook_runner, so that a flapping or forged
// peer cannot make the daemon start a hundred fence scripts at once.
//
// Per kind ("fence", "boot_peer", "notify", "on_primary", "drain", ...):
//   - at most one run at a time; a request of a kind that is running waits in that kind's
//     queue, and the next one starts when the run's result is polled;
//   - a new request may coalesce with one already waiting (never with the running one: it
//     started before whatever the new request reports), as its hook_merge says;
//   - at most `max_waiting` requests wait per kind; one more drops the oldest waiting
//     request of that kind (counted and logged): for notify the newest roles are the ones
//     that matter, for fence the newest peers.
// Every accepted request is answered exactly once: by the run it started, by the run of the
// request it coalesced into (one completion carries all their tickets), or by a failed
// completion when it was dropped, so a state machine waiting for a fence never waits forever.
// Kinds are independent: a fence and a notify run at the same time.
//
// Single-threaded: submit() and poll() belong to the control thread. Results of hooks that
// were started on the runner directly (health checks, which serialise themselves) are not the
// queue's and are handed to poll()'s `on_other`.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "control/hooks.hpp"

namespace heartwire::control {

enum class hook_merge : std::uint8_t {
    identical, // coalesces with a waiting request of its kind with the same argv and env
    same_key,  // coalesces with a waiting request of its kind with the same key (fence,
               // boot_peer: the peer id), which keeps its place and takes the newer arguments
    never,     // every request runs, in order (notify: one run per role change)
};

struct hook_request {
    std::string kind{};              // serialisation unit, and the hook_result's name
    std::vector<std::string> argv{}; // as for hook_runner::run
    std::vector<std::string> env{};
    hook_merge merge{hook_merge::identical};
    std::string key{};               // hook_merge::same_key only
};

// One finished run, or one dropped request, and every request it answers.
struct hook_completion {
    hook_result result;                 // a dropped request: spawn_failed, error says why
    std::vector<std::uint64_t> tickets; // the request that ran (or was dropped) first, then
                                        // those coalesced into it, in arrival order
    bool dropped{false};
};

struct hook_queue_counters {
    std::uint64_t submitted{0};
    std::uint64_t started{0};   // runs begun, at once or from the queue
    std::uint64_t queued{0};    // requests that had to wait (coalesced ones not included)
    std::uint64_t coalesced{0}; // requests merged into a waiting one
    std::uint64_t dropped{0};   // waiting requests pushed out by an overflow
    std::uint64_t running{0};   // now: kinds with a run in flight
    std::uint64_t waiting{0};   // now: requests waiting, all kinds together
};

class hook_queue {
public:
    static constexpr std::size_t default_max_waiting = 8;

    // `max_waiting` bounds each kind's queue; it must be at least 1 (std::invalid_argument).
    explicit hook_queue(hook_runner& runner, std::size_t max_waiting = default_max_waiting);
    hook_queue(const hook_queue&) = delete;
    hook_queue& operator=(const hook_queue&) = delete;

    // Starts the request or queues it; returns its ticket (never 0), which names it in the
    // completion that answers it. Never blocks; never calls back.
    std::uint64_t submit(hook_request r);

    // Hands every completion that is ready to `on_done` (one call per run or dropped request)
    // and starts the next waiting request of each kind whose run finished. Results of hooks
    // the queue did not start go to `on_other` when given. Non-blocking; returns the number
    // of completions handed out.
    std::size_t poll(const std::function<void(const hook_completion&)>& on_done,
                     const std::function<void(const hook_result&)>& on_other = {});
    // Runs everything started and queued to the end, delivering as poll() does (shutdown,
    // tests). Requests submitted from the callbacks are run too.
    void wait_all(const std::function<void(const hook_completion&)>& on_done,
                  const std::function<void(const hook_result&)>& on_other = {});

    hook_queue_counters counters() const noexcept;

private:
    struct waiting {
        hook_request req;
        std::vector<std::uint64_t> tickets;
    };
    struct lane {
        bool busy{false};
        std::vector<std::uint64_t> run_tickets; // answered by the run in flight
        std::deque<waiting> queue;
    };

    void start(lane& l, waiting w);
    bool coalesce(lane& l, hook_request& r, std::uint64_t ticket);
    void drop_oldest(lane& l, const std::string& kind);
    bool idle() const noexcept;

    hook_runner& runner_;
    std::size_t max_waiting_;
    std::uint64_t next_ticket_{1};
    std::map<std::string, lane> lanes_;            // by kind; nodes are stable
    std::map<std::uint64_t, std::string> by_run_;  // runner id -> kind of the run
    std::vector<hook_completion> ready_;           // dropped requests, answered on poll()
    hook_queue_counters c_;
};

} // namespace heartwire::control
