#pragma once
// The replicated state store as an application on the same host uses it (issue 10 item 3):
// a region of shared memory that heartwired creates, holding the replica::table (read
// directly, no system call) and a bounded multi-producer queue of writes that heartwired's
// engine drains, replicates and applies. A write returns a ticket; wait() says when it is
// replicated (synchronous mode: the monitor acknowledged it) or only applied here
// (asynchronous). No DPDK, no EAL: any process that can map the file can use it.
//
//   auto c = heartwire::state::client::open("/dev/shm/heartwire-node1-app", err);
//   auto t = c->put("session:42", bytes);          // queued: never blocks on the network
//   if (!c->wait(t, 1ms)) ...                      // replicated to the monitor, or timed out
//   c->get("session:42", buf);                     // the local copy, wait-free for readers
//   if (c->replaced()) c->reopen(err);             // heartwired restarted: now and then, not per call
//
// The layout is versioned (region_header::version); both sides check it at attach.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "heartwire/replica.hpp"
#include "heartwire/roles.hpp"

namespace heartwire::state {

inline constexpr std::uint32_t region_magic = 0x48575247; // "HWRG"
inline constexpr std::uint32_t region_version = 2;

// One queued write.
struct alignas(64) write_cell {
    std::atomic<std::uint64_t> sequence; // Vyukov: == pos when free for ticket pos, pos + 1 once written
    std::uint8_t op;                     // replica::op_put / op_erase
    std::uint8_t key_len;
    std::uint16_t value_len;
    std::uint32_t pad;
    // key (key_max bytes) then value (value_max bytes) follow, in cell_bytes()
};

// Where a ticket ended: the seq the engine gave it (0: refused, too large or full).
struct alignas(16) ticket_result {
    std::atomic<std::uint64_t> ticket; // the ticket this entry is about (entries are reused)
    std::atomic<std::uint64_t> seq;
};

struct alignas(64) region_header {
    std::uint32_t magic;
    std::uint32_t version;
    std::uint64_t table_offset, table_bytes;
    std::uint64_t cells_offset, results_offset;
    std::uint32_t cells;       // queue length, a power of two
    std::uint32_t cell_bytes;
    std::uint32_t key_max, value_max;
    std::uint8_t sync;         // 1: writes complete once the monitor has them; 0: once applied here
    alignas(64) std::atomic<std::uint64_t> enqueue_pos;
    alignas(64) std::atomic<std::uint64_t> dequeue_pos;  // the engine's (one consumer)
    alignas(64) std::atomic<std::uint64_t> replicated_seq; // the monitor acknowledged every write up to it
    std::atomic<std::uint64_t> applied_seq;                // applied here (the table's)
    std::atomic<std::uint32_t> role;                       // heartwire's role of this node (heartwire::role)
    std::atomic<std::uint32_t> in_sync;                    // 1 while the replica is in sync
    std::atomic<std::uint64_t> writer_pid;                 // the heartwired that owns it
    // The doorbell: 1 while the engine sleeps (an idle or courtesy sleep) on this word, a futex. A
    // producer that finds it set after queueing a write clears it and wakes the engine, so
    // a write waits for no idle sleep; while the engine polls, a write costs no system call.
    alignas(64) std::atomic<std::uint32_t> engine_asleep;
    // An application that shares the engine's core runs only while the engine sleeps. The
    // engine says which CPU it polls (+ 1; 0: not started, or a version-2 engine); a waiter
    // on that CPU says so (waiter_cpu) and, once a wait succeeds, up to which seq it saw
    // writes complete (waiter_seen). The engine then sleeps as soon as a turn has completed
    // every synchronous write (idle_planner::hurry), and again after each sleep, a few times
    // at most, until a wait has seen the completion (a sleep cut short by the next timer may
    // end before the waiter ran). A waiter on another CPU writes neither; one that left (it
    // moved, or stopped waiting) is found out by the engine: a few completions in a row
    // unseen, and it gives none until a wait there sees one again. Advisory only: nothing
    // depends on them for correctness. In the doorbell's padding: version-2 peers ignore them.
    std::atomic<std::uint32_t> engine_cpu;
    std::atomic<std::uint32_t> waiter_cpu;
    std::atomic<std::uint64_t> waiter_seen;
};
// Shared between processes: lock-free atomics only, and the new words inside the doorbell's
// line (the layout of version 2 unchanged).
static_assert(std::atomic<std::uint64_t>::is_always_lock_free && std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(offsetof(region_header, waiter_seen) + sizeof(std::uint64_t) <= offsetof(region_header, engine_asleep) + 64);
static_assert(sizeof(region_header) == 320 && offsetof(region_header, engine_asleep) == 256);

struct region_geometry {
    replica::table_geometry table;
    std::uint32_t cells{1024};
    std::size_t cell_bytes() const noexcept;
    std::size_t bytes() const noexcept; // the whole file
};

// A mapped region, either side.
class region {
public:
    // The engine, before an idle sleep: the doorbell armed (true), or a write ready to drain
    // at the queue's head (false: do not sleep; a slot reserved but not yet written is not
    // ready: its producer rings once it is). `ready_counts` false: arm regardless (the
    // engine is not draining this queue now). disarm() after the sleep.
    bool arm_doorbell(bool ready_counts = true) noexcept;
    // The application side, before it waits: true when it runs on the engine's CPU, which it
    // then says (waiter_cpu); once such a wait saw writes complete up to `seq`: note_seen.
    bool note_waiter() noexcept;
    void note_seen(std::uint64_t seq) noexcept { // a maximum: waiters on several threads
        std::uint64_t was = h_->waiter_seen.load(std::memory_order_relaxed);
        while (was < seq && !h_->waiter_seen.compare_exchange_weak(was, seq, std::memory_order_relaxed)) {}
    }
    // The engine: polls `cpu` (as sched_getcpu() numbers it; -1: stopped); an application
    // last waited there; a wait there has seen writes complete up to `seq`.
    // Both words hold cpu + 1 (0: none).
    static std::uint32_t cpu_word(int cpu) noexcept { return cpu < 0 ? 0 : static_cast<std::uint32_t>(cpu) + 1; }
    void engine_on(int cpu) noexcept { h_->engine_cpu.store(cpu_word(cpu), std::memory_order_relaxed); }
    bool waiter_on(int cpu) const noexcept { return cpu >= 0 && h_->waiter_cpu.load(std::memory_order_relaxed) == cpu_word(cpu); }
    bool waiter_saw(std::uint64_t seq) const noexcept { return h_->waiter_seen.load(std::memory_order_relaxed) >= seq; }
    void disarm_doorbell() noexcept { h_->engine_asleep.store(0, std::memory_order_relaxed); }
    std::atomic<std::uint32_t>& doorbell() noexcept { return h_->engine_asleep; }
    // heartwired: creates (or replaces) the file at `path` (mode 0660) and formats it.
    static std::unique_ptr<region> create(const std::string& path, const region_geometry& g, bool sync, std::string& error);
    // Anyone: maps an existing file, checking magic, version and size.
    static std::unique_ptr<region> attach(const std::string& path, std::string& error);
    ~region();
    region(const region&) = delete;
    region& operator=(const region&) = delete;

    region_header& header() noexcept { return *h_; }
    const region_header& header() const noexcept { return *h_; }
    replica::table& table() noexcept { return t_; }
    const replica::table& table() const noexcept { return t_; }

    // Producer side (any process): queues a write; its ticket (never 0), or 0 when the
    // queue stayed full for `patience` (the engine is not draining: stopped, or wedged).
    std::uint64_t enqueue(std::uint8_t op, std::string_view key, std::span<const std::byte> value,
                          std::chrono::nanoseconds patience = std::chrono::milliseconds{10}) noexcept;
    // The seq a ticket was given, 0 while not yet taken, ~0 when refused, forfeited or too
    // old to know.
    std::uint64_t seq_of(std::uint64_t ticket) const noexcept;
    // The engine, when this node stops leading a synchronous store: every write given a seq
    // above `complete` (applied here, never acknowledged) is forfeited. Its ticket reads as refused
    // from then on, so a wait() on it fails instead of completing on a later primary's
    // unrelated write of the same seq. Called before replicated_seq moves again.
    void forfeit_above(std::uint64_t complete) noexcept;

    // True while `path` names the very file this region maps (same device and inode). A
    // restarted heartwired unlinks the file and creates a new one: this mapping then reads a
    // copy nobody writes and queues writes nobody drains. One stat(2): not for a hot loop.
    bool is_at(const std::string& path) const noexcept;

    // Consumer side (the engine): up to `max` queued writes, oldest first, each handed to
    // `apply(op, key, value)` which returns the seq it got (0: refused).
    template <class F>
    std::size_t drain(std::size_t max, F&& apply) noexcept;

private:
    region(std::byte* base, std::size_t len, int fd) noexcept;
    write_cell* cell(std::uint64_t pos) const noexcept;
    std::byte* base_;
    std::size_t len_;
    int fd_;
    std::uint64_t dev_{}, ino_{}; // of the file mapped (is_at)
    region_header* h_;
    replica::table t_;
    ticket_result* results_;
};

template <class F>
std::size_t region::drain(std::size_t max, F&& apply) noexcept {
    std::size_t n = 0;
    std::uint64_t pos = h_->dequeue_pos.load(std::memory_order_relaxed);
    for (; n < max; ++n, ++pos) {
        write_cell* c = cell(pos);
        if (c->sequence.load(std::memory_order_acquire) != pos + 1) break; // not written yet
        const auto* p = reinterpret_cast<const std::byte*>(c) + sizeof(write_cell);
        const std::string_view key(reinterpret_cast<const char*>(p), c->key_len);
        const std::span<const std::byte> value(p + h_->key_max, c->value_len);
        const std::uint64_t seq = apply(c->op, key, value);
        ticket_result& r = results_[pos & (h_->cells - 1)];
        r.seq.store(seq == 0 ? ~0ull : seq, std::memory_order_relaxed);
        r.ticket.store(pos + 1, std::memory_order_release); // tickets are pos + 1 (never 0)
        c->sequence.store(pos + h_->cells, std::memory_order_release); // free for the next lap
    }
    h_->dequeue_pos.store(pos, std::memory_order_release);
    return n;
}

// The application's handle.
//
// heartwired restarting (a crash, an upgrade, `systemctl restart`) unlinks the region's file
// and creates a new one, empty until the node's role and its replica come back: a client
// still maps the old file, whose copy no longer changes and whose queue nobody drains
// (writes time out). An application checks replaced() now and then (every few tens of
// milliseconds, or after a wait() that timed out) and calls reopen():
//
//   if (c->replaced() && !c->reopen(err)) ...      // no region yet: heartwired still starting
//
// Tickets taken on the old mapping mean nothing on the new one; a write whose wait() had
// not completed may or may not have reached the monitor: read it back, or write it again.
class client {
public:
    static std::optional<client> open(const std::string& path, std::string& error);
    client(client&&) noexcept = default;
    client& operator=(client&&) noexcept = default;

    std::uint64_t put(std::string_view key, std::span<const std::byte> value) noexcept;
    std::uint64_t erase(std::string_view key) noexcept;
    // Until the write of `ticket` is complete (replicated in synchronous mode, applied in
    // asynchronous mode) or `timeout` passes. False too for a refused write (see refused()),
    // which includes (synchronous mode) one this node applied but lost with its leadership
    // before the monitor had it (a switchover or a fence while it waited:
    // region::forfeit_above): the new primary may or may not hold it; read it back there, or
    // write it again. An asynchronous write is complete once applied here and stays so: a
    // takeover may lose it within the lag the store reported.
    bool wait(std::uint64_t ticket, std::chrono::nanoseconds timeout) const noexcept;
    bool refused(std::uint64_t ticket) const noexcept { return r_->seq_of(ticket) == ~0ull; }
    // This node's copy, which holds writes applied here but (synchronous mode) perhaps not
    // yet acknowledged by the monitor: a read that must not show what a takeover could lose
    // takes the record's seq and waits for it with wait_seq().
    long get(std::string_view key, std::span<std::byte> out, std::uint64_t* seq = nullptr) const noexcept {
        return r_->table().get(key, out, seq);
    }
    // The seq every write is complete up to (replicated in synchronous mode, applied in
    // asynchronous mode), and the one they are applied here up to.
    std::uint64_t complete_seq() const noexcept {
        const auto& h = r_->header();
        return (h.sync ? h.replicated_seq : h.applied_seq).load(std::memory_order_acquire);
    }
    std::uint64_t applied_seq() const noexcept { return r_->header().applied_seq.load(std::memory_order_acquire); }
    // Until complete_seq() reaches `seq` (true) or `timeout` passes (false).
    bool wait_seq(std::uint64_t seq, std::chrono::nanoseconds timeout) const noexcept;
    bool in_sync() const noexcept { return r_->header().in_sync.load(std::memory_order_relaxed) != 0; }
    role node_role() const noexcept { return static_cast<role>(r_->header().role.load(std::memory_order_relaxed)); }
    const region& raw() const noexcept { return *r_; }  // the current mapping (changes on reopen)
    const std::string& path() const noexcept { return path_; }

    // True when the file at path() is no longer the one mapped: another file (heartwired
    // restarted) or none (heartwired stopped, or is between unlink and create). One stat(2).
    bool replaced() const noexcept;
    // Maps the file now at path() in place of the old mapping. False (the old mapping kept,
    // `error` set) when there is none yet or it is not a region, as open() reports it.
    bool reopen(std::string& error);

private:
    client(std::unique_ptr<region> r, std::string path) noexcept : r_(std::move(r)), path_(std::move(path)) {}
    std::unique_ptr<region> r_;
    std::string path_;
};

} // namespace heartwire::state
