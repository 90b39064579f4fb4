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
inline constexpr std::uint32_t region_version = 1;

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
};

struct region_geometry {
    replica::table_geometry table;
    std::uint32_t cells{1024};
    std::size_t cell_bytes() const noexcept;
    std::size_t bytes() const noexcept; // the whole file
};

// A mapped region, either side.
class region {
public:
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
    // The seq a ticket was given, 0 while not yet taken, ~0 when refused or too old to know.
    std::uint64_t seq_of(std::uint64_t ticket) const noexcept;

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
class client {
public:
    static std::optional<client> open(const std::string& path, std::string& error);
    client(client&&) noexcept = default;
    client& operator=(client&&) noexcept = default;

    std::uint64_t put(std::string_view key, std::span<const std::byte> value) noexcept;
    std::uint64_t erase(std::string_view key) noexcept;
    // Until the write of `ticket` is complete (replicated in synchronous mode, applied in
    // asynchronous mode) or `timeout` passes. False too for a refused write (see refused()).
    bool wait(std::uint64_t ticket, std::chrono::nanoseconds timeout) const noexcept;
    bool refused(std::uint64_t ticket) const noexcept { return r_->seq_of(ticket) == ~0ull; }
    long get(std::string_view key, std::span<std::byte> out) const noexcept { return r_->table().get(key, out); }
    bool in_sync() const noexcept { return r_->header().in_sync.load(std::memory_order_relaxed) != 0; }
    role node_role() const noexcept { return static_cast<role>(r_->header().role.load(std::memory_order_relaxed)); }
    const region& raw() const noexcept { return *r_; }

private:
    explicit client(std::unique_ptr<region> r) noexcept : r_(std::move(r)) {}
    std::unique_ptr<region> r_;
};

} // namespace heartwire::state
