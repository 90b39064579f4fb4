#include "heartwire/replica.hpp"

#include <algorithm>
#include <cstring>
#include <new>

namespace heartwire::replica {

namespace {

constexpr std::uint8_t st_empty = 0, st_live = 1, st_tomb = 2;

std::uint64_t fmix(std::uint64_t k) noexcept {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return k;
}

std::size_t align64(std::size_t n) noexcept { return (n + 63) & ~std::size_t{63}; }

std::span<const std::byte> bytes_of(std::string_view s) noexcept {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

} // namespace

std::uint64_t hash_bytes(std::span<const std::byte> b, std::uint64_t seed) noexcept {
    std::uint64_t h = 0xcbf29ce484222325ull ^ fmix(seed + 0x9e3779b97f4a7c15ull);
    for (const std::byte x : b) {
        h ^= static_cast<std::uint8_t>(x);
        h *= 0x100000001b3ull;
    }
    return fmix(h ^ b.size());
}

std::uint64_t record_hash(std::string_view key, std::span<const std::byte> value) noexcept {
    // Key and value hashed apart and mixed, so ("ab", "c") and ("a", "bc") differ.
    return fmix(hash_bytes(bytes_of(key), 1) ^ (hash_bytes(value, 2) * 0x9e3779b97f4a7c15ull));
}

std::size_t table_geometry::slot_bytes() const noexcept { return align64(sizeof(slot_head) + key_max + value_max); }

std::size_t table_geometry::region_bytes() const noexcept { return sizeof(table_header) + std::size_t{capacity} * slot_bytes(); }

table_geometry table_geometry::for_records(std::uint64_t records, std::uint32_t key_max, std::uint32_t value_max) noexcept {
    std::uint64_t cap = 16;
    while (cap < 2 * records && cap < (1ull << 31)) cap <<= 1;
    return {static_cast<std::uint32_t>(cap), std::clamp<std::uint32_t>(key_max, 1, max_key),
            std::min<std::uint32_t>(value_max, max_value)};
}

table table::create(std::span<std::byte> region, const table_geometry& geo) noexcept {
    if (geo.capacity == 0 || (geo.capacity & (geo.capacity - 1)) != 0 || geo.key_max == 0 || geo.key_max > max_key ||
        geo.value_max > max_value || region.size() < geo.region_bytes() ||
        reinterpret_cast<std::uintptr_t>(region.data()) % 64 != 0)
        return {};
    auto* h = new (region.data()) table_header{};
    h->magic = table_magic;
    h->version = table_version;
    h->geo = geo;
    std::memset(region.data() + sizeof(table_header), 0, std::size_t{geo.capacity} * geo.slot_bytes());
    return table(h);
}

table table::attach(std::span<std::byte> region) noexcept {
    if (region.size() < sizeof(table_header) || reinterpret_cast<std::uintptr_t>(region.data()) % 64 != 0) return {};
    auto* h = reinterpret_cast<table_header*>(region.data());
    if (h->magic != table_magic || h->version != table_version || region.size() < h->geo.region_bytes()) return {};
    return table(h);
}

std::byte* table::slot(std::uint32_t i) const noexcept {
    return reinterpret_cast<std::byte*>(h_) + sizeof(table_header) + std::size_t{i} * h_->geo.slot_bytes();
}

std::uint32_t table::find_for_write(std::string_view key, std::uint64_t kh, bool& found) const noexcept {
    const std::uint32_t mask = h_->geo.capacity - 1;
    std::uint32_t free = h_->geo.capacity; // first tombstone seen
    for (std::uint32_t n = 0, i = static_cast<std::uint32_t>(kh) & mask; n < h_->geo.capacity; ++n, i = (i + 1) & mask) {
        const auto* s = reinterpret_cast<const slot_head*>(slot(i));
        if (s->state == st_empty) {
            found = false;
            return free != h_->geo.capacity ? free : i;
        }
        if (s->state == st_tomb) {
            if (free == h_->geo.capacity) free = i;
            continue;
        }
        if (s->key_hash == kh && s->key_len == key.size() &&
            std::memcmp(slot(i) + sizeof(slot_head), key.data(), key.size()) == 0) {
            found = true;
            return i;
        }
    }
    found = false;
    return free; // capacity: full
}

void table::publish_summary(std::uint64_t seq, std::uint64_t digest_xor, std::int64_t count_delta, std::int64_t tomb_delta) noexcept {
    const std::uint32_t v = h_->digest_seq.load(std::memory_order_relaxed);
    h_->digest_seq.store(v + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    h_->applied_seq.store(std::max(seq, h_->applied_seq.load(std::memory_order_relaxed)), std::memory_order_relaxed);
    h_->digest.store(h_->digest.load(std::memory_order_relaxed) ^ digest_xor, std::memory_order_relaxed);
    h_->count.store(h_->count.load(std::memory_order_relaxed) + static_cast<std::uint64_t>(count_delta), std::memory_order_relaxed);
    h_->tombstones.store(h_->tombstones.load(std::memory_order_relaxed) + static_cast<std::uint64_t>(tomb_delta), std::memory_order_relaxed);
    h_->digest_seq.store(v + 2, std::memory_order_release);
}

put_result table::put(std::string_view key, std::span<const std::byte> value, std::uint64_t seq) noexcept {
    if (key.empty() || key.size() > h_->geo.key_max || value.size() > h_->geo.value_max) return put_result::too_large;
    const std::uint64_t kh = hash_bytes(bytes_of(key));
    bool found = false;
    const std::uint32_t i = find_for_write(key, kh, found);
    if (i == h_->geo.capacity) return put_result::full;
    std::byte* p = slot(i);
    auto* s = reinterpret_cast<slot_head*>(p);
    const bool was_tomb = s->state == st_tomb;
    const std::uint64_t old = found ? s->rec_hash : 0;
    const std::uint64_t rh = record_hash(key, value);
    const std::uint32_t v = s->version.load(std::memory_order_relaxed);
    s->version.store(v + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    s->state = st_live;
    s->key_len = static_cast<std::uint8_t>(key.size());
    s->value_len = static_cast<std::uint16_t>(value.size());
    s->seq = seq;
    s->key_hash = kh;
    s->rec_hash = rh;
    std::memcpy(p + sizeof(slot_head), key.data(), key.size());
    if (!value.empty()) std::memcpy(p + sizeof(slot_head) + h_->geo.key_max, value.data(), value.size());
    s->version.store(v + 2, std::memory_order_release);
    publish_summary(seq, old ^ rh, found ? 0 : 1, was_tomb ? -1 : 0);
    return put_result::ok;
}

bool table::erase(std::string_view key, std::uint64_t seq) noexcept {
    bool found = false;
    const std::uint32_t i = key.empty() || key.size() > h_->geo.key_max ? h_->geo.capacity
                                                                        : find_for_write(key, hash_bytes(bytes_of(key)), found);
    if (!found) {
        publish_summary(seq, 0, 0);
        return false;
    }
    auto* s = reinterpret_cast<slot_head*>(slot(i));
    const std::uint64_t old = s->rec_hash;
    const std::uint32_t v = s->version.load(std::memory_order_relaxed);
    s->version.store(v + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    s->state = st_tomb;
    s->seq = seq;
    s->rec_hash = 0;
    s->version.store(v + 2, std::memory_order_release);
    publish_summary(seq, old, -1, 1);
    return true;
}

std::uint32_t table::clear_slots(std::uint32_t from, std::uint32_t max) noexcept {
    const std::uint32_t end = static_cast<std::uint32_t>(std::min<std::uint64_t>(h_->geo.capacity, std::uint64_t{from} + max));
    std::uint64_t gone_hash = 0;
    std::int64_t live = 0, tombs = 0;
    for (std::uint32_t i = from; i < end; ++i) {
        auto* s = reinterpret_cast<slot_head*>(slot(i));
        if (s->state == st_empty) continue;
        if (s->state == st_live) {
            gone_hash ^= s->rec_hash;
            ++live;
        } else {
            ++tombs;
        }
        const std::uint32_t v = s->version.load(std::memory_order_relaxed);
        s->version.store(v + 1, std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_release);
        s->state = st_empty;
        s->rec_hash = 0;
        s->version.store(v + 2, std::memory_order_release);
    }
    // The summary follows the slots, so the copy agrees with itself between slices (its
    // digest, count and tombstones are what it holds; the applied seq stays).
    if (live != 0 || tombs != 0) publish_summary(0, gone_hash, -live, -tombs);
    return end;
}

void table::clear_summary(std::uint64_t seq) noexcept {
    const std::uint32_t v = h_->digest_seq.load(std::memory_order_relaxed);
    h_->digest_seq.store(v + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    h_->applied_seq.store(seq, std::memory_order_relaxed);
    h_->digest.store(0, std::memory_order_relaxed);
    h_->count.store(0, std::memory_order_relaxed);
    h_->tombstones.store(0, std::memory_order_relaxed);
    h_->digest_seq.store(v + 2, std::memory_order_release);
}

void table::clear(std::uint64_t seq) noexcept {
    clear_slots(0, h_->geo.capacity);
    clear_summary(seq);
}

long table::get(std::string_view key, std::span<std::byte> out, std::uint64_t* seq_out) const noexcept {
    if (key.empty() || key.size() > h_->geo.key_max) return -1;
    const std::uint64_t kh = hash_bytes(bytes_of(key));
    const std::uint32_t mask = h_->geo.capacity - 1;
    for (std::uint32_t n = 0, i = static_cast<std::uint32_t>(kh) & mask; n < h_->geo.capacity; ++n, i = (i + 1) & mask) {
        const std::byte* p = slot(i);
        const auto* s = reinterpret_cast<const slot_head*>(p);
        for (std::uint32_t spins = 0;; ++spins) {
            const std::uint32_t v1 = s->version.load(std::memory_order_acquire);
            if (v1 & 1u) {
                if (spins > (1u << 24)) return -2; // a writer that died inside the slot
                continue;                          // the writer is in it: a few ns
            }
            const std::uint8_t state = s->state;
            const std::uint8_t klen = s->key_len;
            const std::uint16_t vlen = s->value_len;
            const std::uint64_t sh = s->key_hash;
            const std::uint64_t sseq = s->seq;
            bool match = state == st_live && sh == kh && klen == key.size() &&
                         std::memcmp(p + sizeof(slot_head), key.data(), key.size()) == 0;
            long len = -1;
            if (match) {
                len = vlen;
                std::memcpy(out.data(), p + sizeof(slot_head) + h_->geo.key_max, std::min<std::size_t>(vlen, out.size()));
            }
            std::atomic_thread_fence(std::memory_order_acquire);
            if (s->version.load(std::memory_order_relaxed) != v1) continue; // torn: read it again
            if (state == st_empty) return -1;
            if (match) {
                if (seq_out) *seq_out = sseq;
                return len;
            }
            break; // a tombstone or another key: the next slot
        }
    }
    return -1;
}

table::slot_read table::read_slot(std::uint32_t i, std::byte* key_out, std::byte* value_out, std::uint8_t& key_len,
                                  std::uint16_t& value_len, std::uint64_t& seq) const noexcept {
    const std::byte* p = slot(i);
    const auto* s = reinterpret_cast<const slot_head*>(p);
    std::uint32_t v1 = s->version.load(std::memory_order_acquire);
    // The writer holds a slot for a memcpy of at most a frame's bytes: wait a little for it
    // rather than spend one of the caller's tries on it.
    for (std::uint32_t spins = 0; (v1 & 1u) && spins < 4096; ++spins) v1 = s->version.load(std::memory_order_acquire);
    if (v1 & 1u) return slot_read::changing;
    const std::uint8_t state = s->state;
    const std::uint8_t klen = s->key_len;
    const std::uint16_t vlen = s->value_len;
    const std::uint64_t sseq = s->seq;
    // Lengths read mid-write can be anything: bound the copies by the slot, then let the
    // version check throw the read away.
    const bool live = state == st_live;
    if (live) {
        std::memcpy(key_out, p + sizeof(slot_head), std::min<std::size_t>(klen, h_->geo.key_max));
        std::memcpy(value_out, p + sizeof(slot_head) + h_->geo.key_max, std::min<std::size_t>(vlen, h_->geo.value_max));
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    if (s->version.load(std::memory_order_relaxed) != v1) return slot_read::changing;
    if (!live) return slot_read::not_live;
    if (klen == 0 || klen > h_->geo.key_max || vlen > h_->geo.value_max) return slot_read::changing; // not a record the writer made
    key_len = klen;
    value_len = vlen;
    seq = sseq;
    return slot_read::live;
}

table::summary table::state() const noexcept {
    for (;;) {
        const std::uint32_t v1 = h_->digest_seq.load(std::memory_order_acquire);
        if (v1 & 1u) continue;
        summary s{h_->applied_seq.load(std::memory_order_relaxed), h_->digest.load(std::memory_order_relaxed),
                  h_->count.load(std::memory_order_relaxed)};
        std::atomic_thread_fence(std::memory_order_acquire);
        if (h_->digest_seq.load(std::memory_order_relaxed) == v1) return s;
    }
}

std::uint32_t table::scrub(std::uint32_t from, std::uint32_t max, std::uint64_t& bad) const noexcept {
    std::uint32_t i = from;
    for (std::uint32_t n = 0; i < h_->geo.capacity && n < max; ++i, ++n) {
        const std::byte* p = slot(i);
        const auto* s = reinterpret_cast<const slot_head*>(p);
        if (s->state != st_live) continue;
        const std::string_view key(reinterpret_cast<const char*>(p + sizeof(slot_head)), s->key_len);
        const std::span<const std::byte> val(p + sizeof(slot_head) + h_->geo.key_max, s->value_len);
        if (record_hash(key, val) != s->rec_hash) ++bad;
    }
    return i;
}

void table::corrupt_for_test(std::string_view key, std::byte b) noexcept {
    bool found = false;
    const std::uint32_t i = find_for_write(key, hash_bytes(bytes_of(key)), found);
    if (!found) return;
    auto* s = reinterpret_cast<slot_head*>(slot(i));
    if (s->value_len == 0) return;
    std::byte* v = slot(i) + sizeof(slot_head) + h_->geo.key_max;
    v[0] ^= b;
}

} // namespace heartwire::replica
