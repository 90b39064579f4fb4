#pragma once
// The replicated state store (issue 10; seeds 000 claim 2, 003 claim 16, 004): keyed records
// that the primary's applications write and the monitor holds as a replica, so a takeover
// carries the application's state with the address.
//
// This header is the store's core, pure and allocation-free once built:
//   - `table`: a fixed-capacity open-addressing hash table laid out in one caller-given
//     memory region (heartwired maps it shared with the applications on the host). One
//     writer (the engine's lcore); any number of readers in any process, each slot under
//     its own seqlock, so a reader never sees a torn record and never blocks the writer.
//     Deletes leave tombstones, reused by later inserts: records never move, so a lookup
//     that races a write sees the record before or after it.
//   - a running digest of the whole copy (the XOR of every record's 64-bit hash with the
//     record count): order-independent, updated in O(1) per write, so the primary and the
//     monitor compare their copies at the same sequence number without walking them (seed
//     004: synchronicity monitored continuously).
// Time is never read here; sizes are bounded by the config (key_max, value_max, capacity).

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <type_traits>

namespace heartwire::replica {

inline constexpr std::uint32_t table_magic = 0x48575354; // "HWST"
inline constexpr std::uint32_t table_version = 1;
inline constexpr std::size_t max_key = 255;
inline constexpr std::size_t max_value = 65535;

// 64-bit hash of bytes (FNV-1a folded through a murmur3 finaliser): stable across processes
// and builds (the digest is compared between nodes).
std::uint64_t hash_bytes(std::span<const std::byte> b, std::uint64_t seed = 0) noexcept;
// One record's contribution to the digest.
std::uint64_t record_hash(std::string_view key, std::span<const std::byte> value) noexcept;

struct table_geometry {
    std::uint32_t capacity{};   // slots, a power of two (at least twice the records wanted)
    std::uint32_t key_max{};    // bytes, 1..max_key
    std::uint32_t value_max{};  // bytes, 0..max_value
    // The bytes one slot takes and the whole region (header included), 64-byte aligned.
    std::size_t slot_bytes() const noexcept;
    std::size_t region_bytes() const noexcept;
    // For `records` records (capacity = the power of two >= 2 x records, at least 16).
    static table_geometry for_records(std::uint64_t records, std::uint32_t key_max, std::uint32_t value_max) noexcept;
};

// The region's first cache lines: what readers in other processes need to find their way.
struct alignas(64) table_header {
    std::uint32_t magic;
    std::uint32_t version;
    table_geometry geo;
    alignas(64) std::atomic<std::uint64_t> count;      // live records
    std::atomic<std::uint64_t> tombstones;
    std::atomic<std::uint64_t> applied_seq;            // the newest write applied (replication's sequence)
    std::atomic<std::uint64_t> digest;                 // XOR of record_hash over live records
    std::atomic<std::uint32_t> digest_seq;             // seqlock over (applied_seq, digest, count)
};

enum class put_result : std::uint8_t { ok, too_large, full };

// A callback of a walk, f(key, value, seq), that cannot throw: the walk is noexcept then too.
template <class F>
inline constexpr bool nothrow_record_fn =
    std::is_nothrow_invocable_v<F&, std::string_view, std::span<const std::byte>, std::uint64_t>;

class table {
public:
    // Formats `region` (region_bytes() of geo, 64-byte aligned) as an empty table.
    static table create(std::span<std::byte> region, const table_geometry& geo) noexcept;
    // Opens a region another process formatted (readers); invalid() when it is not a table.
    static table attach(std::span<std::byte> region) noexcept;
    table() = default;
    bool valid() const noexcept { return h_ != nullptr; }
    const table_geometry& geometry() const noexcept { return h_->geo; }

    // Writer only. `seq` is the replication sequence number the write carries (the
    // primary's next one; on a replica the delta's). A put of the value a key already has
    // still moves its seq.
    put_result put(std::string_view key, std::span<const std::byte> value, std::uint64_t seq) noexcept;
    bool erase(std::string_view key, std::uint64_t seq) noexcept; // false: no such key (seq still applied)
    void clear(std::uint64_t seq) noexcept;                       // every record gone (a snapshot restarts)
    // The same in slices, so that a large copy is cleared without holding the poll loop:
    // up to `max` slots from `from` emptied (the slot to go on from returned; capacity:
    // done), then clear_summary() once every slot is. The digest, count and tombstones
    // follow each slice; the applied seq stays the old one until clear_summary. Between
    // slices the copy is no hash table to write to (a key past the cleared slots is not
    // found): finish the clear first.
    std::uint32_t clear_slots(std::uint32_t from, std::uint32_t max) noexcept;
    void clear_summary(std::uint64_t seq) noexcept;

    // Any thread or process. The value (up to out.size() bytes) and its length, or -1 when
    // there is no such key (-2: the slot stayed locked, a writer died inside it); `seq_out`
    // (may be null) the write that set it.
    long get(std::string_view key, std::span<std::byte> out, std::uint64_t* seq_out = nullptr) const noexcept;

    struct summary {
        std::uint64_t applied_seq, digest, count;
    };
    summary state() const noexcept; // consistent triple (seqlock)
    std::uint64_t count() const noexcept { return h_->count.load(std::memory_order_relaxed); }
    std::uint64_t tombstones() const noexcept { return h_->tombstones.load(std::memory_order_relaxed); }

    // Writer side (snapshots): every live record in slot order from `slot`, handed to `f(key,
    // value, seq)`; returns the slot to continue from (capacity: done) once `max` records
    // were handed over.
    template <class F>
    std::uint32_t walk(std::uint32_t slot, std::uint32_t max, F&& f) const noexcept;

    // Writer side: the live records among at most `max_slots` slots from `slot`, each handed
    // to `f(key, value, seq)` until f returns false (that record not taken). Returns the
    // slot to go on from: the refused record's, or the first not looked at (capacity: done).
    template <class F>
    std::uint32_t scan(std::uint32_t slot, std::uint32_t max_slots, F&& f) const noexcept;

    // Reader side (any thread or process, beside the writer): every live record, each read
    // under its slot's seqlock and handed to `f(key, value, seq)` as copies in `scratch`
    // (valid for the call only; at least scratch_bytes() long). A slot the writer changes
    // while it is read is read again, up to `tries` times, then skipped and counted (a
    // record rewritten faster than it can be copied, or a writer that died inside it).
    // Each record is whole, but the walk is not a point-in-time snapshot: a record written
    // meanwhile may be seen before or after its write, and a key erased and written again
    // during the walk may be missed or (its chain wrapping past the table's end) seen twice.
    // noexcept when f is; an exception from f ends the walk.
    struct read_walk {
        std::uint64_t records{}; // handed to f
        std::uint64_t skipped{}; // live (or changing) slots given up on after `tries`
        bool scratch_too_small{};
    };
    std::size_t scratch_bytes() const noexcept { return std::size_t{h_->geo.key_max} + h_->geo.value_max; }
    template <class F>
    read_walk for_each(std::span<std::byte> scratch, F&& f, unsigned tries = 8) const noexcept(nothrow_record_fn<F>);

    // Self-check of `max` slots from `slot`: each live record's bytes against the hash it
    // was stored with (memory corruption, a stray write). Returns the slot to go on from
    // (capacity: a whole pass done) and adds the records that do not match to `bad`.
    std::uint32_t scrub(std::uint32_t slot, std::uint32_t max, std::uint64_t& bad) const noexcept;

    // Test-only fault switch (issue 10: a divergence injected on the monitor): flips bits of
    // a record's value in place, without its hash or the digest, as memory corruption would.
    void corrupt_for_test(std::string_view key, std::byte b) noexcept;

private:
    struct slot_view;
    // One seqlocked read of slot i into key_out (key_max bytes) and value_out (value_max).
    enum class slot_read : std::uint8_t { not_live, live, changing };
    slot_read read_slot(std::uint32_t i, std::byte* key_out, std::byte* value_out, std::uint8_t& key_len,
                        std::uint16_t& value_len, std::uint64_t& seq) const noexcept;
    explicit table(table_header* h) noexcept : h_(h) {}
    std::byte* slot(std::uint32_t i) const noexcept;
    // Writer: the slot holding `key`, or (when absent) the first free one on its chain.
    std::uint32_t find_for_write(std::string_view key, std::uint64_t h, bool& found) const noexcept;
    void publish_summary(std::uint64_t seq, std::uint64_t digest_xor, std::int64_t count_delta, std::int64_t tomb_delta = 0) noexcept;
    table_header* h_{nullptr};
};

// Slot layout (slot_bytes() each): a seqlock word, state, key length, value length, the
// write's seq, the key's hash, the key, the value.
struct slot_head {
    std::atomic<std::uint32_t> version; // odd while the writer changes the slot
    std::uint8_t state;                 // 0 empty, 1 live, 2 tombstone
    std::uint8_t key_len;
    std::uint16_t value_len;            // up to max_value
    std::uint64_t seq;
    std::uint64_t key_hash;
    std::uint64_t rec_hash;             // record_hash of what it holds (the digest's share)
};
static_assert(sizeof(slot_head) == 32);

template <class F>
std::uint32_t table::walk(std::uint32_t from, std::uint32_t max, F&& f) const noexcept {
    const std::uint32_t cap = h_->geo.capacity;
    std::uint32_t handed = 0;
    std::uint32_t i = from;
    for (; i < cap && handed < max; ++i) {
        const auto* s = reinterpret_cast<const slot_head*>(slot(i));
        if (s->state != 1) continue;
        const auto* key = reinterpret_cast<const char*>(slot(i) + sizeof(slot_head));
        const auto* val = slot(i) + sizeof(slot_head) + h_->geo.key_max;
        f(std::string_view(key, s->key_len), std::span<const std::byte>(val, s->value_len), s->seq);
        ++handed;
    }
    return i;
}

template <class F>
std::uint32_t table::scan(std::uint32_t from, std::uint32_t max_slots, F&& f) const noexcept {
    const std::uint32_t cap = h_->geo.capacity;
    const std::uint32_t end = static_cast<std::uint32_t>(std::min<std::uint64_t>(cap, std::uint64_t{from} + max_slots));
    for (std::uint32_t i = from; i < end; ++i) {
        const auto* s = reinterpret_cast<const slot_head*>(slot(i));
        if (s->state != 1) continue;
        const auto* key = reinterpret_cast<const char*>(slot(i) + sizeof(slot_head));
        const auto* val = slot(i) + sizeof(slot_head) + h_->geo.key_max;
        if (!f(std::string_view(key, s->key_len), std::span<const std::byte>(val, s->value_len), s->seq)) return i;
    }
    return end;
}

template <class F>
table::read_walk table::for_each(std::span<std::byte> scratch, F&& f, unsigned tries) const noexcept(nothrow_record_fn<F>) {
    read_walk w;
    if (scratch.size() < scratch_bytes()) {
        w.scratch_too_small = true;
        return w;
    }
    std::byte* key = scratch.data();
    std::byte* val = scratch.data() + h_->geo.key_max;
    for (std::uint32_t i = 0, cap = h_->geo.capacity; i < cap; ++i) {
        std::uint8_t klen = 0;
        std::uint16_t vlen = 0;
        std::uint64_t seq = 0;
        slot_read r = slot_read::changing;
        for (unsigned t = 0; t < (tries ? tries : 1) && r == slot_read::changing; ++t) r = read_slot(i, key, val, klen, vlen, seq);
        if (r == slot_read::changing) {
            ++w.skipped;
            continue;
        }
        if (r != slot_read::live) continue;
        f(std::string_view(reinterpret_cast<const char*>(key), klen), std::span<const std::byte>(val, vlen), seq);
        ++w.records;
    }
    return w;
}

} // namespace heartwire::replica
