#include "heartwire/replication.hpp"

#include <algorithm>
#include <cstring>

namespace heartwire::replica {

namespace {

template <class T>
void put_le(std::byte* p, T v) noexcept { // little-endian, unaligned
    for (std::size_t i = 0; i < sizeof(T); ++i) p[i] = std::byte(static_cast<std::uint8_t>(v >> (8 * i)));
}
void put_u16(std::byte* p, std::uint16_t v) noexcept { put_le(p, v); }
void put_u32(std::byte* p, std::uint32_t v) noexcept { put_le(p, v); }
void put_u64(std::byte* p, std::uint64_t v) noexcept { put_le(p, v); }
// A clock in microseconds mod 2^32, never 0 (0: no time).
std::uint32_t us32(std::uint64_t ns) noexcept {
    const auto v = static_cast<std::uint32_t>(ns / 1000);
    return v == 0 ? 1 : v;
}
using detail::le16;
using detail::le32;
using detail::le64;

void put_header(std::byte* p, const data_header& h) noexcept {
    p[0] = std::byte(static_cast<std::uint8_t>(h.type));
    p[1] = std::byte(h.flags);
    put_u16(p + 2, h.count);
    put_u64(p + 4, h.stream);
    put_u64(p + 12, h.first_seq);
    put_u64(p + 20, h.digest);
    put_u64(p + 28, h.end_seq);
}

std::size_t put_entry(std::byte* p, std::uint64_t seq, std::uint8_t op, std::string_view key,
                      std::span<const std::byte> value) noexcept {
    put_u64(p, seq);
    p[8] = std::byte(op);
    p[9] = std::byte(static_cast<std::uint8_t>(key.size()));
    put_u16(p + 10, static_cast<std::uint16_t>(value.size()));
    std::memcpy(p + entry_header_bytes, key.data(), key.size());
    if (!value.empty()) std::memcpy(p + entry_header_bytes + key.size(), value.data(), value.size());
    return entry_header_bytes + key.size() + value.size();
}

} // namespace

// ------------------------------------------------------------------ codec

std::size_t encode_ack(const ack_msg& a, std::span<std::byte> out) noexcept {
    if (out.size() < ack_bytes) return 0;
    out[0] = std::byte(static_cast<std::uint8_t>(frame_type::ack));
    out[1] = std::byte(a.flags);
    put_u16(out.data() + 2, 0);
    put_u64(out.data() + 4, a.stream);
    put_u64(out.data() + 12, a.acked_seq);
    put_u64(out.data() + 20, a.digest);
    put_u32(out.data() + 28, a.sent_us);
    return ack_bytes;
}

bool decode_ack(std::span<const std::byte> in, ack_msg& a) noexcept {
    if (in.size() < ack_bytes || in[0] != std::byte(static_cast<std::uint8_t>(frame_type::ack))) return false;
    a.flags = std::to_integer<std::uint8_t>(in[1]);
    a.stream = le64(in.data() + 4);
    a.acked_seq = le64(in.data() + 12);
    a.digest = le64(in.data() + 20);
    a.sent_us = le32(in.data() + 28);
    return true;
}

frame_type peek_type(std::span<const std::byte> in) noexcept {
    return in.empty() ? frame_type{} : static_cast<frame_type>(std::to_integer<std::uint8_t>(in[0]));
}

bool decode_data_header(std::span<const std::byte> in, data_header& h) noexcept {
    if (in.size() < data_header_bytes) return false;
    h.type = static_cast<frame_type>(std::to_integer<std::uint8_t>(in[0]));
    if (h.type != frame_type::data && h.type != frame_type::snapshot) return false;
    h.flags = std::to_integer<std::uint8_t>(in[1]);
    h.count = le16(in.data() + 2);
    h.stream = le64(in.data() + 4);
    h.first_seq = le64(in.data() + 12);
    h.digest = le64(in.data() + 20);
    h.end_seq = le64(in.data() + 28);
    return true;
}

// ------------------------------------------------------------------ sender

sender::sender(table& t, const sender_params& p, std::uint64_t stream) : t_(t), p_(p), stream_(stream) {
    p_.log_entries = std::max<std::uint32_t>(p_.log_entries, 16);
    p_.frame_budget = std::max<std::size_t>(p_.frame_budget, data_header_bytes + entry_header_bytes + max_key + 64);
    p_.log_bytes = std::max(p_.log_bytes, p_.frame_budget * 4);
    log_.resize(p_.log_bytes);
    off_.resize(p_.log_entries);
    len_.resize(p_.log_entries);
    digest_.resize(p_.log_entries);
    at_ns_.resize(p_.log_entries);
    cum_.resize(p_.log_entries);
    frame_.resize(p_.frame_budget);
    chunk_slot_.resize(chunk_memory);
    restart(stream);
}

void sender::restart(std::uint64_t stream) {
    stream_ = stream;
    rto_ns_ = p_.rto_min_ns;
    // The stream starts where the table is (a new primary carries on from its replica).
    next_ = oldest_ = t_.state().applied_seq + 1;
    acked_ = sent_ = next_ - 1;
    write_pos_ = 0;
    total_bytes_ = cum_before_oldest_ = 0;
    joined_ = diverged_ = snapshot_ = snap_unacked_ = false;
    snap_base_ = 0;
    snap_slot_ = snap_chunk_ = 0;
    last_progress_ns_ = srtt_ns_ = sent_at_ns_ = snap_done_ns_ = 0;
    floor_ = last_emit_ns_ = last_keepalive_ns_ = 0;
    echo_us_ = 0;
    synced_ = true;
    last_rewind_ = ~0ull;
    rewind_ns_ = 0;
}

std::uint64_t sender::log_append(std::uint8_t op, std::string_view key, std::span<const std::byte> value, std::uint64_t now) {
    const std::size_t len = entry_header_bytes + key.size() + value.size();
    const std::size_t pos = write_pos_ + len <= log_.size() ? write_pos_ : 0;
    // Make room: the oldest entries go first (entries sit in the ring in seq order).
    const auto overlaps = [&](std::uint64_t s) {
        const std::size_t o = off_[s % p_.log_entries], l = len_[s % p_.log_entries];
        return o < pos + len && pos < o + l;
    };
    while (oldest_ < next_ && (next_ - oldest_ >= p_.log_entries || overlaps(oldest_))) {
        cum_before_oldest_ = cum_[oldest_ % p_.log_entries];
        ++oldest_;
    }
    const std::uint64_t seq = next_++;
    const std::size_t i = seq % p_.log_entries;
    off_[i] = static_cast<std::uint32_t>(pos);
    len_[i] = static_cast<std::uint32_t>(len);
    total_bytes_ += len;
    cum_[i] = total_bytes_;
    put_entry(log_.data() + pos, seq, op, key, value);
    digest_[i] = t_.state().digest;
    at_ns_[i] = now;
    write_pos_ = pos + len;
    ++c_.writes;
    return seq;
}

std::uint64_t sender::put(std::string_view key, std::span<const std::byte> value, std::uint64_t now) {
    const std::uint64_t seq = next_;
    if (t_.put(key, value, seq) != put_result::ok) return 0;
    return log_append(op_put, key, value, now);
}

std::uint64_t sender::erase(std::string_view key, std::uint64_t now) {
    if (key.empty() || key.size() > t_.geometry().key_max) return 0;
    const std::uint64_t seq = next_;
    t_.erase(key, seq);
    return log_append(op_erase, key, {}, now);
}

std::uint64_t sender::cum_at(std::uint64_t seq) const noexcept {
    if (seq + 1 < oldest_) return cum_before_oldest_; // gone from the log: the follower needs a snapshot
    if (seq + 1 == oldest_) return cum_before_oldest_;
    return cum_[seq % p_.log_entries];
}

void sender::reset_follower() {
    joined_ = false;
    echo_us_ = 0; // the next follower's clock is its own
    snapshot_ = false;
    snap_unacked_ = false;
    diverged_ = false;
    acked_ = sent_ = next_ - 1;
}

lag sender::current_lag(std::uint64_t now) const noexcept {
    lag l;
    if (!joined_) return l;
    l.entries = next_ - 1 - acked_;
    l.bytes = cum_at(next_ - 1) - cum_at(acked_);
    if (l.entries != 0 && logged(acked_ + 1)) l.oldest_ns = now - at_ns_[(acked_ + 1) % p_.log_entries];
    return l;
}

void sender::start_snapshot(std::uint64_t now) {
    snapshot_ = true;
    snap_unacked_ = false;
    snap_base_ = next_ - 1;
    snap_slot_ = 0;
    snap_chunk_ = 0;
    snap_acked_chunk_ = 0;
    ++snap_walk_;
    ++c_.snapshots;
    last_progress_ns_ = now;
}

void sender::on_ack(const ack_msg& a, std::uint64_t now) {
    // The follower's clock when it sent the ACK received last, for the next keepalive. Any
    // ACK of this follower received before a keepalive is made is a sound anchor (an older
    // one, reordered, only shortens the lease), and a new monitor's clock replaces the old
    // one's at once. Not a stale ACK's (another stream's, or beyond what was sent).
    const auto take_echo = [&] {
        if (a.sent_us != 0) echo_us_ = a.sent_us;
    };
    if (a.stream != stream_) {
        // A follower that holds nothing of this stream (0) or another primary's copy: it
        // joins with a snapshot. Once joined, such an ACK is one sent before it joined.
        if (joined_) {
            ++c_.stale_acks;
            return;
        }
        ++c_.acks;
        take_echo();
        joined_ = true;
        start_snapshot(now);
        return;
    }
    if (a.flags & flag_chunk_progress) { // the follower holds every chunk of this walk below acked_seq's
        const std::uint64_t c = a.acked_seq & 0xffff'ffffull;
        if (snapshot_ && a.digest == snap_base_ && (a.acked_seq >> 32) == snap_walk_ && c > snap_acked_chunk_ && c <= snap_chunk_) {
            snap_acked_chunk_ = static_cast<std::uint32_t>(c);
            last_progress_ns_ = now;
            rto_ns_ = std::clamp<std::uint64_t>(4 * srtt_ns_, p_.rto_min_ns, p_.rto_max_ns);
        }
        return;
    }
    if (a.flags & flag_chunk_nack) { // a snapshot chunk was lost: from it again (of this walk only)
        if ((snapshot_ || snap_unacked_) && a.digest == snap_base_ && (a.acked_seq >> 32) == snap_walk_)
            rewind_snapshot(a.acked_seq & 0xffff'ffffull, now);
        return;
    }
    if (a.acked_seq >= next_) {
        ++c_.stale_acks;
        return;
    }
    ++c_.acks;
    take_echo();
    if (!joined_) {
        // A follower of this stream heard again after reset_follower (its monitor was judged
        // gone): what it holds and what was in flight to it are unknown here, so it joins
        // like any other, by a snapshot (fuzz/fuzz_replica.cpp found a rejoin that took its
        // word and never resent a gap).
        joined_ = true;
        start_snapshot(now);
        return;
    }
    // A request for a snapshot (or a divergence report) sent before the last snapshot
    // reached the follower: that snapshot answers it.
    if ((a.flags & (flag_want_snapshot | flag_diverged)) && !snapshot_ && snap_done_ns_ != 0 &&
        now - snap_done_ns_ < 2 * rto_ns_)
        return;
    if ((a.flags & flag_diverged) && !diverged_) {
        ++c_.divergences;
        diverged_ = true;
    }
    if (a.flags & (flag_want_snapshot | flag_diverged)) {
        if (!snapshot_) start_snapshot(now);
        return;
    }
    // Only an ACK of a copy: a follower in the middle of a walk acks 0, which a base of 0 (a
    // stream with no write yet) would take for the whole snapshot.
    const bool of_copy = (a.flags & flag_walking) == 0;
    if (snapshot_ && of_copy && a.acked_seq >= snap_base_) {
        // The follower holds every write up to the base already (it rejoined with its copy
        // intact after reset_follower: each chunk is a duplicate to it, and it never reports
        // progress, so the window would never move): the walk ends here and the deltas after
        // what it holds follow.
        snapshot_ = false;
        ++c_.walks_skipped;
        last_progress_ns_ = now;
        sent_ = std::max(sent_, a.acked_seq);
    }
    if (snap_unacked_ && of_copy && a.acked_seq >= snap_base_) {
        snap_unacked_ = false; // the follower holds the snapshot
        last_progress_ns_ = now;
        if (diverged_) diverged_ = false;
    }
    if (a.acked_seq > acked_) {
        if (sent_at_ns_ != 0 && a.acked_seq >= sent_) {
            const std::uint64_t sample = now - sent_at_ns_;
            srtt_ns_ = srtt_ns_ == 0 ? sample : (7 * srtt_ns_ + sample) / 8;
        }
        if (!snapshot_ && !snap_unacked_ && acked_ >= snap_base_ && logged(acked_ + 1)) c_.ack_latency.add(now - at_ns_[(acked_ + 1) % p_.log_entries]);
        acked_ = a.acked_seq;
        sent_ = std::max(sent_, acked_);
        last_progress_ns_ = now;
        rto_ns_ = std::clamp<std::uint64_t>(4 * srtt_ns_, p_.rto_min_ns, p_.rto_max_ns);
        if (diverged_ && !snapshot_) diverged_ = false; // the snapshot's deltas are acknowledged
    }
}

void sender::rewind_snapshot(std::uint64_t chunk, std::uint64_t now) {
    if (chunk == last_rewind_ && now - rewind_ns_ < 2 * rto_ns_) return; // the rewind is on its way
    if (chunk >= snap_chunk_ || snap_chunk_ - chunk > chunk_memory) {
        start_snapshot(now);
        return;
    }
    last_rewind_ = chunk;
    rewind_ns_ = now;
    go_back(static_cast<std::uint32_t>(chunk));
    snapshot_ = true;
    snap_unacked_ = false;
}

void sender::go_back(std::uint32_t chunk) noexcept {
    ++c_.chunk_rewinds;
    snap_slot_ = chunk_slot_[chunk % chunk_memory];
    snap_chunk_ = chunk;
    snap_acked_chunk_ = std::min(snap_acked_chunk_, chunk);
}

void sender::send_snapshot(std::uint64_t now, const emit_fn& emit) {
    // A budget of slots looked at per poll as well as of chunks: a sparse table (few
    // records in many slots) must not hold the poll loop for milliseconds (a primary that
    // stops answering probes while it walks would be taken over).
    std::uint32_t slots = std::max<std::uint32_t>(p_.snapshot_slots_per_poll, 1);
    // Flow control: at most a window of chunks beyond the last the follower said it holds;
    // none said for an RTO, from that one again (go-back-N; the follower may be clearing
    // its old copy, or lost some).
    const std::uint32_t window = static_cast<std::uint32_t>(std::clamp<std::size_t>(p_.window_bytes / p_.frame_budget, 8, 512));
    if (snap_chunk_ - snap_acked_chunk_ >= window) {
        if (now - last_progress_ns_ <= std::max(rto_ns_, p_.snapshot_rto_min_ns)) {
            ++c_.window_full;
            return;
        }
        ++c_.rto_expiries;
        rto_ns_ = std::min(rto_ns_ * 2, p_.rto_max_ns);
        last_progress_ns_ = now;
        go_back(snap_acked_chunk_);
    }
    for (std::uint32_t n = 0; n < p_.snapshot_chunks_per_poll && snapshot_ && slots != 0 && snap_chunk_ - snap_acked_chunk_ < window; ++n) {
        std::size_t at = data_header_bytes;
        std::uint16_t count = 0;
        const std::size_t room = p_.frame_budget;
        const std::uint32_t cap = t_.geometry().capacity;
        const std::uint32_t chunk_start = snap_slot_;
        bool full = false;
        // Whole records only: a chunk never splits one.
        while (snap_slot_ < cap && slots != 0 && !full) {
            const std::uint32_t next = t_.scan(snap_slot_, slots, [&](std::string_view k, std::span<const std::byte> v, std::uint64_t seq) {
                if (at + entry_header_bytes + k.size() + v.size() > room) {
                    full = true;
                    return false;
                }
                at += put_entry(frame_.data() + at, seq, op_put, k, v);
                ++count;
                return true;
            });
            slots -= std::min(slots, next - snap_slot_);
            snap_slot_ = next;
        }
        if (count == 0 && snap_slot_ < cap && !full) break; // the budget went on empty slots: on from here next poll
        chunk_slot_[snap_chunk_ % chunk_memory] = chunk_start;
        const bool last = snap_slot_ >= cap;
        const std::uint8_t flags = static_cast<std::uint8_t>((last ? flag_last_chunk : 0) | (synced_ ? 0 : flag_not_in_sync));
        data_header h{frame_type::snapshot, flags, count, stream_, snap_base_,
                      std::uint64_t{snap_walk_} << 32 | snap_chunk_++, last ? next_ - 1 : 0};
        put_header(frame_.data(), h);
        emit({frame_.data(), at});
        last_emit_ns_ = now;
        ++c_.frames;
        c_.snapshot_records += count;
        if (last) {
            snapshot_ = false;
            snap_unacked_ = true; // until the follower acknowledges the base
            snap_done_ns_ = now;
            last_progress_ns_ = now; // the RTO runs from the last chunk: chunks lost, the snapshot starts over
            // The deltas from the base follow (the follower applies those newer than its
            // records); the base must still be in the log, or the snapshot starts over. A
            // last chunk sent again (its ACK was late) resends nothing acknowledged since:
            // the follower keeps what it applied after the walk (fuzz/fuzz_replica.cpp).
            sent_ = std::max(snap_base_, acked_);
            if (!logged(snap_base_ + 1) && snap_base_ + 1 < next_) start_snapshot(now);
        }
    }
}

void sender::send_data(std::uint64_t now, const emit_fn& emit) {
    // The snapshot's last chunk (or the follower's ACK of it) was lost: that chunk again
    // (a follower that missed more asks for the first it lacks).
    if (snap_unacked_ && now - last_progress_ns_ > std::max(rto_ns_, p_.snapshot_rto_min_ns)) {
        ++c_.rto_expiries;
        rto_ns_ = std::min(rto_ns_ * 2, p_.rto_max_ns);
        last_progress_ns_ = now;
        rewind_snapshot(snap_chunk_ - 1, now);
        return;
    }
    // Retransmission: nothing acknowledged for an RTO while deltas are out.
    if (acked_ < sent_ && now - last_progress_ns_ > rto_ns_) {
        c_.retransmits += sent_ - acked_;
        ++c_.rto_expiries;
        sent_ = acked_;
        sent_at_ns_ = 0; // Karn: no round-trip sample from a retransmission
        rto_ns_ = std::min(rto_ns_ * 2, p_.rto_max_ns);
        last_progress_ns_ = now;
    }
    if (!logged(sent_ + 1) && sent_ + 1 < next_) { // the follower's next delta left the log
        start_snapshot(now);
        return;
    }
    const std::uint64_t floor = std::max(acked_, snap_unacked_ ? snap_base_ : 0);
    std::uint64_t inflight = sent_ > floor ? cum_at(sent_) - cum_at(floor) : 0;
    while (sent_ + 1 < next_) {
        if (inflight >= p_.window_bytes) {
            ++c_.window_full;
            return;
        }
        std::size_t at = data_header_bytes;
        std::uint16_t count = 0;
        const std::uint64_t first = sent_ + 1;
        std::uint64_t s = first;
        while (s < next_ && count < 0xffff) {
            const std::size_t l = entry_bytes(s);
            if (at + l > p_.frame_budget) break;
            std::memcpy(frame_.data() + at, log_.data() + off_[s % p_.log_entries], l);
            at += l;
            inflight += l;
            ++count;
            ++s;
        }
        data_header h{frame_type::data, synced_ ? std::uint8_t{0} : flag_not_in_sync, count, stream_, first,
                      digest_[(s - 1) % p_.log_entries], floor_};
        put_header(frame_.data(), h);
        emit({frame_.data(), at});
        last_emit_ns_ = now;
        ++c_.frames;
        c_.entries_sent += count;
        sent_ = s - 1;
        if (sent_at_ns_ == 0 || acked_ + 1 == first) sent_at_ns_ = now;
        if (acked_ == first - 1) last_progress_ns_ = now; // the RTO runs from the first unacknowledged send
    }
}

void sender::poll(std::uint64_t now, const emit_fn& emit) {
    if (!joined_) return; // no follower has said where it is
    if (snapshot_) {
        send_snapshot(now, emit);
        return;
    }
    send_data(now, emit);
    if (p_.keepalive_ns != 0 && !snapshot_ && now - last_keepalive_ns_ >= p_.keepalive_ns) {
        // Where the stream is (its seq, digest and floor), whether the follower counts as in
        // sync here, and the follower's newest ACK time: its lease runs from that time, on
        // its own clock. Writes or none: DATA frames carry no echo and do not renew a lease.
        data_header h{frame_type::data, synced_ ? std::uint8_t{0} : flag_not_in_sync, 0, stream_, next_, t_.state().digest, floor_};
        put_header(frame_.data(), h);
        put_u32(frame_.data() + data_header_bytes, echo_us_);
        emit({frame_.data(), keepalive_bytes});
        last_emit_ns_ = last_keepalive_ns_ = now;
        ++c_.frames;
        ++c_.keepalives;
    }
}

// ------------------------------------------------------------------ receiver

void receiver::ack(const sender::emit_fn& emit) {
    ack_msg a;
    a.flags = static_cast<std::uint8_t>((want_snapshot_ ? flag_want_snapshot : 0) | (diverged_ ? flag_diverged : 0) |
                                        (snapshot_ || clearing_ ? flag_walking : 0));
    a.stream = stream_;
    a.acked_seq = applied_;
    a.digest = t_.state().digest;
    a.sent_us = us32(now_);
    last_sent_ns_ = now_;
    const std::size_t n = encode_ack(a, ack_buf_);
    emit({ack_buf_, n});
}

bool receiver::clear_step() {
    if (!clearing_) return false;
    ++c_.clear_slices;
    clear_slot_ = t_.clear_slots(clear_slot_, clear_slots_per_poll);
    if (clear_slot_ >= t_.geometry().capacity) {
        // Empty: the snapshot from its first chunk (the next chunk to arrive is not it:
        // the answer to it asks the sender to go back).
        t_.clear_summary(clear_seq_);
        clearing_ = false;
        next_chunk_ = 0;
    }
    return clearing_;
}

void receiver::poll(std::uint64_t now, std::uint64_t idle_ns, const sender::emit_fn& emit, bool peer) {
    now_ = now;
    clear_step();
    if (!peer) return;
    if (now - std::max(last_ns_, last_ack_ns_) < idle_ns && last_ack_ns_ != 0) return;
    last_ack_ns_ = now;
    ack(emit);
}

void receiver::reset() {
    stream_ = 0;
    applied_ = 0;
    heard_ns_ = floor_ = 0;
    unsynced_ = true;
    // A clear under way goes on (clear_step): a copy left half cleared is no table.
    snapshot_ = want_snapshot_ = diverged_ = false;
    snap_base_ = next_chunk_ = compare_from_ = snap_walk_ = walk_seen_ = 0;
    last_ns_ = last_match_seq_ = last_ack_ns_ = 0;
}

void receiver::mark_diverged(std::uint64_t bad) {
    if (bad == 0 || diverged_) return;
    ++c_.divergences;
    diverged_ = true;
}

void receiver::on_frame(std::span<const std::byte> frame, std::uint64_t now, const sender::emit_fn& emit) {
    data_header h;
    if (!decode_data_header(frame, h)) {
        ++c_.bad_frames;
        return;
    }
    ++c_.frames;
    last_ns_ = now_ = now;
    if (h.stream != stream_) {
        // Another primary's stream (a takeover, or our first): we hold nothing of it for sure.
        stream_ = h.stream;
        // Nothing it applied is of this stream: an ACK that said otherwise would move the
        // new primary's acknowledgement past what this copy holds.
        applied_ = 0;
        heard_ns_ = floor_ = 0;
        unsynced_ = true;
        want_snapshot_ = true; // a clear under way goes on: a copy left half cleared is no table
        snap_base_ = walk_seen_ = 0;
        snapshot_ = false;
        diverged_ = false;
    }
    if (h.type == frame_type::snapshot) {
        // A follower never goes back unless it asked to (fuzz/fuzz_replica.cpp found each of
        // these throwing away deltas the sender counted as acknowledged):
        //  - a snapshot whose base it has already applied (a late or duplicated chunk of one
        //    it completed, or one the sender started on a rejoin while this copy was
        //    intact): everything up to the base is here, the deltas after it follow;
        //  - a chunk of an older base than the snapshot under way (bases only grow within a
        //    stream: a stale copy of a walk the sender gave up).
        //  - a chunk of a walk older than one already seen in this stream (the sender gave
        //    it up and started another, perhaps from the same base).
        const std::uint64_t chunk = h.digest & 0xffff'ffffull, walk = h.digest >> 32;
        const bool asked = want_snapshot_ || diverged_;
        if (walk < walk_seen_) {
            ++c_.duplicates;
            return;
        }
        if (!asked && ((!snapshot_ && h.first_seq <= applied_) || h.first_seq < snap_base_)) {
            ++c_.duplicates;
            ack(emit);
            return;
        }
        walk_seen_ = walk;
        // A snapshot is its base and the sender's walk number (the chunk field's high half):
        // chunk 0 of the walk under way (a rewind's copy) is not a new one.
        const auto ours = [&] { return snapshot_ && h.first_seq == snap_base_ && walk == snap_walk_; };
        if (chunk == 0 && !ours() && !clearing_) { // chunk 0: a snapshot (re)starts
            if (t_.count() == 0 && t_.tombstones() == 0) {
                t_.clear_summary(h.first_seq);
            } else if (t_.geometry().capacity <= clear_slots_per_poll) {
                t_.clear(h.first_seq);
            } else { // a large copy cleared at once would hold the loop: in slices (poll)
                clearing_ = true;
                clear_slot_ = 0;
                clear_seq_ = h.first_seq;
            }
            applied_ = 0; // the copy is empty: its ACKs say so until the walk is done
            unsynced_ = true;
            snapshot_ = true;
            want_snapshot_ = false;
            snap_base_ = h.first_seq;
            snap_walk_ = walk;
            next_chunk_ = 0;
            ++c_.snapshots;
        }
        if (clearing_) { // the old copy is not gone yet: this chunk is asked for again afterwards
            ++c_.clear_drops;
            return;
        }
        if (ours() && chunk < next_chunk_) { // a rewind's copy of one we have: where we are
            progress(emit);
            return;
        }
        if (!ours() || chunk != next_chunk_) {
            // A lost chunk: ask for the first one missing (chunk 0 when none of this
            // snapshot arrived); the sender goes back to it.
            ++c_.gaps;
            ack_msg a;
            a.flags = flag_chunk_nack;
            a.stream = stream_;
            a.acked_seq = walk << 32 | (ours() ? next_chunk_ : 0);
            a.digest = h.first_seq;
            emit({ack_buf_, encode_ack(a, ack_buf_)});
            return;
        }
        ++next_chunk_;
        const bool ok = for_each_entry(frame, h, [&](const entry& e) {
            t_.put(e.key, e.value, e.seq);
            ++c_.snapshot_records;
        });
        if (!ok) {
            ++c_.bad_frames;
            snapshot_ = false;
            want_snapshot_ = true;
        } else if (h.flags & flag_last_chunk) {
            snapshot_ = false;
            diverged_ = false;
            applied_ = snap_base_;
            compare_from_ = h.end_seq; // the walk saw writes up to here: digests agree from then on
            // In sync once those writes are applied too (the deltas after the base follow):
            // the primary may count any of them as complete.
            floor_ = std::max(floor_, h.end_seq);
            unsynced_ = (h.flags & flag_not_in_sync) != 0;
        } else {
            progress(emit); // the sender's window moves on
            return;
        }
        ack(emit);
        return;
    }
    if (snapshot_ || want_snapshot_) { // deltas wait for the snapshot they follow
        ack(emit);
        return;
    }
    floor_ = std::max(floor_, h.end_seq);
    if (h.flags & flag_not_in_sync) unsynced_ = true; // from any frame; only a keepalive says otherwise
    if (h.count == 0) { // a keepalive: where the primary is
        if (frame.size() != keepalive_bytes) {
            ++c_.bad_frames;
        } else {
            // The lease runs from when this node sent the ACK the primary echoes: the primary
            // made this frame after it, and what it says (in sync or not) is from then. An
            // echo older than one already taken is a late frame: its word is old.
            const std::uint64_t at = echo_time(le32(frame.data() + data_header_bytes));
            if (at != 0 && at > heard_ns_) {
                heard_ns_ = at;
                unsynced_ = (h.flags & flag_not_in_sync) != 0;
            }
            if (applied_ + 1 == h.first_seq && applied_ >= compare_from_) compare_digest(h.digest);
        }
        ack(emit);
        return;
    }
    std::uint64_t last = 0;
    bool gap = false;
    const bool ok = for_each_entry(frame, h, [&](const entry& e) {
        last = e.seq;
        if (gap) return;
        if (e.seq <= applied_) {
            ++c_.duplicates;
            return;
        }
        if (e.seq != applied_ + 1) {
            gap = true;
            ++c_.gaps;
            return;
        }
        // After a snapshot, a record may already be newer than the delta (the walk saw it).
        std::uint64_t have = 0;
        std::byte scratch[1];
        const bool exists = t_.get(e.key, scratch, &have) >= 0;
        if (!exists || have < e.seq) {
            if (e.op == op_put) t_.put(e.key, e.value, e.seq);
            else t_.erase(e.key, e.seq);
        }
        applied_ = e.seq;
        ++c_.applied;
    });
    if (!ok) ++c_.bad_frames;
    // The primary's digest after the frame's last delta, against ours at the same seq.
    if (ok && !gap && last != 0 && applied_ == last && applied_ >= compare_from_) compare_digest(h.digest);
    ack(emit);
}

std::uint64_t receiver::echo_time(std::uint32_t echo) const noexcept {
    if (echo == 0 || last_sent_ns_ == 0) return 0;
    // How long before the newest ACK sent the echoed one was: an echo newer than that ACK is
    // none of ours (a clock of another node, or garbage).
    const std::uint32_t back = us32(last_sent_ns_) - echo;
    if (back > 0x8000'0000u) return 0;
    const std::uint64_t ns = std::uint64_t{back} * 1000;
    return ns >= last_sent_ns_ ? 0 : last_sent_ns_ - ns;
}

void receiver::progress(const sender::emit_fn& emit) {
    ack_msg a;
    a.flags = flag_chunk_progress;
    a.stream = stream_;
    a.acked_seq = snap_walk_ << 32 | next_chunk_;
    a.digest = snap_base_;
    emit({ack_buf_, encode_ack(a, ack_buf_)});
}

void receiver::compare_digest(std::uint64_t theirs) noexcept {
    if (t_.state().digest == theirs) {
        last_match_seq_ = applied_;
        ++c_.digest_matches;
    } else if (!diverged_) {
        ++c_.divergences; // one divergence, however many frames show it before the snapshot
        diverged_ = true;
    }
}

} // namespace heartwire::replica
