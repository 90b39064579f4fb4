#include "control/hook_queue.hpp"

#include <stdexcept>
#include <utility>

#include "control/log.hpp"

namespace heartwire::control {

namespace {

// "fence 2 02:00:00:00:00:02": the kind and the arguments, without the script's path.
std::string describe(const hook_request& r) {
    std::string out = r.kind;
    for (std::size_t i = 1; i < r.argv.size(); ++i) out += " " + r.argv[i];
    return out;
}

bool same_request(const hook_request& waiting, const hook_request& r) {
    if (waiting.merge != r.merge) return false;
    switch (r.merge) {
    case hook_merge::identical:
        return waiting.argv == r.argv && waiting.env == r.env;
    case hook_merge::same_key:
        return waiting.key == r.key;
    case hook_merge::never:
        return false;
    }
    return false;
}

} // namespace

hook_queue::hook_queue(hook_runner& runner, std::size_t max_waiting) : runner_(runner), max_waiting_(max_waiting) {
    if (max_waiting_ == 0)
        throw std::invalid_argument("hook_queue: max_waiting must be at least 1 (a request of a running kind "
                                    "needs somewhere to wait)");
}

std::uint64_t hook_queue::submit(hook_request r) {
    const std::uint64_t ticket = next_ticket_++;
    ++c_.submitted;
    lane& l = lanes_[r.kind];
    if (!l.busy) {
        start(l, waiting{std::move(r), {ticket}});
        return ticket;
    }
    if (coalesce(l, r, ticket)) {
        ++c_.coalesced;
        return ticket;
    }
    if (l.queue.size() >= max_waiting_) drop_oldest(l, r.kind);
    l.queue.push_back(waiting{std::move(r), {ticket}});
    ++c_.queued;
    return ticket;
}

void hook_queue::start(lane& l, waiting w) {
    std::string kind = w.req.kind;
    const std::uint64_t id = runner_.run(w.req.kind, std::move(w.req.argv), std::move(w.req.env));
    l.busy = true;
    l.run_tickets = std::move(w.tickets);
    by_run_.emplace(id, std::move(kind));
    ++c_.started;
}

bool hook_queue::coalesce(lane& l, hook_request& r, std::uint64_t ticket) {
    for (auto& w : l.queue) {
        if (!same_request(w.req, r)) continue;
        // Same peer, newer news: the waiting run takes the latest arguments (the MAC the
        // machine knows now) and keeps its place.
        if (r.merge == hook_merge::same_key) {
            w.req.argv = std::move(r.argv);
            w.req.env = std::move(r.env);
        }
        w.tickets.push_back(ticket);
        return true;
    }
    return false;
}

void hook_queue::drop_oldest(lane& l, const std::string& kind) {
    waiting w = std::move(l.queue.front());
    l.queue.pop_front();
    ++c_.dropped;
    const std::string what = describe(w.req);
    log::write(log::level::warn, "hook queue: " + std::to_string(max_waiting_) + " " + kind +
                                     " requests already waiting; dropped the oldest (" + what + ")");
    hook_completion d;
    d.dropped = true;
    d.tickets = std::move(w.tickets);
    d.result.name = kind;
    d.result.spawn_failed = true;
    d.result.error = "not run: dropped from a full queue (" + what + ")";
    ready_.push_back(std::move(d));
}

std::size_t hook_queue::poll(const std::function<void(const hook_completion&)>& on_done,
                             const std::function<void(const hook_result&)>& on_other) {
    std::size_t n = 0;
    // Taken out first: a callback that submits may drop, and that answer waits for the next poll.
    for (const auto& d : std::exchange(ready_, {})) {
        on_done(d);
        ++n;
    }
    runner_.poll([&](const hook_result& r) {
        const auto it = by_run_.find(r.id);
        if (it == by_run_.end()) {
            if (on_other) on_other(r);
            return;
        }
        lane& l = lanes_.at(it->second);
        by_run_.erase(it);
        hook_completion done{r, std::exchange(l.run_tickets, {}), false};
        l.busy = false;
        if (!l.queue.empty()) {
            waiting next = std::move(l.queue.front());
            l.queue.pop_front();
            start(l, std::move(next));
        }
        on_done(done);
        ++n;
    });
    return n;
}

bool hook_queue::idle() const noexcept { return ready_.empty() && by_run_.empty(); }

void hook_queue::wait_all(const std::function<void(const hook_completion&)>& on_done,
                          const std::function<void(const hook_result&)>& on_other) {
    // Every kind with waiting requests has a run in flight, so by_run_ empty means all done.
    for (;;) {
        poll(on_done, on_other);
        if (idle()) return;
        runner_.wait_all();
    }
}

hook_queue_counters hook_queue::counters() const noexcept {
    hook_queue_counters out = c_;
    out.running = by_run_.size();
    out.waiting = 0;
    for (const auto& [kind, l] : lanes_) out.waiting += l.queue.size();
    return out;
}

} // namespace heartwire::control
