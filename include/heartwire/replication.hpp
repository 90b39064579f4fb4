#pragma once
// Replication of a replica::table from the primary to a follower (the monitor; standbys when
// configured), over frames the engine carries on the heartwire port (issue 10). Pure: time
// is passed in, frames go out through a callback, nothing allocates after construction.
//
// The stream: every write on the primary gets the next sequence number and enters a
// bounded log (bytes and entries). DATA frames carry runs of consecutive deltas, batched up
// to the frame budget, with the primary's digest after the run's last one. The follower
// applies strictly in order (go-back-N: a gap drops what follows it) and answers with a
// cumulative ACK carrying its digest at that seq. The sender keeps at most `window_bytes`
// unacknowledged (flow control) and goes back to the first unacknowledged delta when no
// ACK has moved for the retransmission timeout (RTO: 4 x the smoothed round trip, clamped,
// doubled on each expiry). A follower whose next seq has left the log, or that joins a new
// stream (another primary), or whose digest differs (a divergence: its own fault type),
// gets a snapshot: the table walked in chunks while writes go on, then the deltas from the
// snapshot's base. Records carry the seq of the write that set them, and a delta applies
// only over an older record, so the fuzzy walk plus the deltas converge; digests are
// compared again from the seq the walk ended at.
//
// Synchronous writes complete once acked() reaches their seq; asynchronous ones report the
// lag (entries, bytes, age of the oldest unacknowledged write).

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "heartwire/replica.hpp"

namespace heartwire::replica {

// ------------------------------------------------------------------ frames (the payload)

enum class frame_type : std::uint8_t { data = 1, ack = 2, snapshot = 3 };
inline constexpr std::uint8_t op_put = 1, op_erase = 2;
inline constexpr std::uint8_t flag_last_chunk = 1; // snapshot: the walk ended
inline constexpr std::uint8_t flag_want_snapshot = 2; // ack: send me a snapshot
inline constexpr std::uint8_t flag_diverged = 4;      // ack: my digest differed from yours at a seq we share
inline constexpr std::uint8_t flag_chunk_nack = 8;    // ack: snapshot chunk acked_seq (walk << 32 | chunk) is the next I need (base in digest)
inline constexpr std::uint8_t flag_chunk_progress = 32; // ack: every snapshot chunk below acked_seq's (walk << 32 | chunk) is here (base in digest)
inline constexpr std::uint8_t flag_not_in_sync = 16;  // data: the primary does not count its follower in sync (it may complete writes without it)
inline constexpr std::uint8_t flag_walking = 64;      // ack: a snapshot is under way here (or the old copy clearing): acked_seq is no copy's seq

// DATA and SNAPSHOT: this header, then `count` entries of [seq u64][op u8][key len u8]
// [value len u16][key][value], little-endian.
struct data_header {
    frame_type type;
    std::uint8_t flags;
    std::uint16_t count;
    std::uint64_t stream;      // the primary's stream id (its incarnation and epoch)
    std::uint64_t first_seq;   // DATA: the first entry's seq; SNAPSHOT: the snapshot's base seq
    std::uint64_t digest;      // DATA: the primary's digest after the last entry; SNAPSHOT: walk << 32 | chunk number
    // DATA: the floor, every write the primary counts as complete (sender::set_floor): a
    // follower is in sync only once it has applied up to it. SNAPSHOT with flag_last_chunk:
    // the primary's seq when the walk ended.
    std::uint64_t end_seq;
};
inline constexpr std::size_t data_header_bytes = 36;
inline constexpr std::size_t entry_header_bytes = 12;
// A keepalive is a DATA header with count 0, then [echo u32]: the newest `sent_us` of the
// follower's ACKs the primary had when it made the frame. The follower's lease on being in
// sync runs from that time on its own clock, so a keepalive that was delayed (a backlog, a
// stall, a reordering) can only shorten the lease, never stretch it past the primary's hold.
inline constexpr std::size_t keepalive_bytes = data_header_bytes + 4;

struct ack_msg {
    std::uint8_t flags{};
    std::uint64_t stream{};
    std::uint64_t acked_seq{};  // every delta up to it applied
    std::uint64_t digest{};     // the follower's digest at acked_seq
    std::uint32_t sent_us{};    // the follower's clock when it sent this ACK (us, mod 2^32; never 0)
};
inline constexpr std::size_t ack_bytes = 32;

struct entry {
    std::uint64_t seq{};
    std::uint8_t op{op_put};
    std::string_view key;
    std::span<const std::byte> value;
};

std::size_t encode_ack(const ack_msg& a, std::span<std::byte> out) noexcept; // 0: too small
bool decode_ack(std::span<const std::byte> in, ack_msg& a) noexcept;
bool decode_data_header(std::span<const std::byte> in, data_header& h) noexcept;
// Walks a DATA or SNAPSHOT frame's entries, f(const entry&) each; false when one is
// malformed (nothing after it is handed over; the frame should be counted as a bad one).
// A template: it runs for every delta a follower applies.
template <class F>
bool for_each_entry(std::span<const std::byte> in, const data_header& h, F&& f);
frame_type peek_type(std::span<const std::byte> in) noexcept; // 0 when empty

// ------------------------------------------------------------------ the primary's side

struct sender_params {
    std::size_t log_bytes{8u << 20};       // deltas kept for retransmission
    std::uint32_t log_entries{1u << 16};
    std::size_t window_bytes{256u << 10};  // unacknowledged bytes in flight
    std::size_t frame_budget{1400};        // payload bytes per frame (the port's MTU, less the heartwire header)
    std::uint64_t rto_min_ns{200'000};
    std::uint64_t rto_max_ns{50'000'000};
    std::uint32_t snapshot_chunks_per_poll{8};
    std::uint32_t snapshot_slots_per_poll{8192}; // table slots a snapshot walk looks at in one poll
    // A snapshot's RTO (the chunk window unanswered, or its last chunk) is never shorter: a
    // follower applies a window of large records for longer than a delta's round trip, and
    // an RTO of a few round trips sent the walk back with nothing lost. Lost chunks are
    // asked for at once (a NACK), not found by the RTO.
    std::uint64_t snapshot_rto_min_ns{2'000'000};
    // A keepalive (no entries: the sender's seq, digest, floor and the echo of the
    // follower's newest ACK) this often, writes or none: what a follower's lease runs from,
    // and its digest comparison while no write is made. 0: none.
    std::uint64_t keepalive_ns{0};
};

struct lag {
    std::uint64_t entries{};      // written, not yet acknowledged
    std::uint64_t bytes{};
    std::uint64_t oldest_ns{};    // age of the oldest unacknowledged write (0: none)
};

// Microsecond buckets (the last holds everything slower): fine enough to set beside a
// probe round trip of tens of microseconds.
struct latency_histogram {
    static constexpr std::size_t buckets = 1024;
    std::array<std::uint32_t, buckets> n{};
    std::uint64_t samples{}, sum_ns{}, max_ns{};
    void add(std::uint64_t ns) noexcept {
        ++n[std::min<std::uint64_t>(ns / 1000, buckets - 1)];
        ++samples;
        sum_ns += ns;
        max_ns = std::max(max_ns, ns);
    }
    // The upper bound of the bucket that holds the p-th percentile (max_ns in the last).
    std::uint64_t percentile_ns(double p) const noexcept {
        if (samples == 0) return 0;
        const auto want = static_cast<std::uint64_t>(p / 100.0 * static_cast<double>(samples));
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i + 1 < buckets; ++i) {
            seen += n[i];
            if (seen > want) return std::min<std::uint64_t>((i + 1) * 1000, max_ns);
        }
        return max_ns;
    }
};

struct sender_counters {
    std::uint64_t writes{}, frames{}, entries_sent{}, retransmits{}, rto_expiries{}, snapshots{}, snapshot_records{}, chunk_rewinds{};
    std::uint64_t acks{}, stale_acks{}, divergences{}, window_full{}, keepalives{};
    std::uint64_t walks_skipped{}; // snapshots ended at once: the follower already held their base
    // From the engine taking a write to the follower's ACK of it (the oldest write each ACK
    // newly covers; while in sync): a synchronous write's replication as the engine sees it.
    latency_histogram ack_latency;
};

class sender {
public:
    using emit_fn = std::function<void(std::span<const std::byte>)>;
    sender(table& t, const sender_params& p, std::uint64_t stream);

    // A write: applied to the table and logged; its seq (0 when refused: too large, full).
    std::uint64_t put(std::string_view key, std::span<const std::byte> value, std::uint64_t now);
    std::uint64_t erase(std::string_view key, std::uint64_t now);

    void on_ack(const ack_msg& a, std::uint64_t now);
    // Frames due now (new deltas within the window, a retransmission, snapshot chunks).
    void poll(std::uint64_t now, const emit_fn& emit);
    // Every follower gone (the monitor left): nothing is sent until one acks again.
    void reset_follower();
    // Every write up to `seq` counts as complete for the application (replica::host's
    // completion), and whether the primary counts its follower in sync: carried in each
    // DATA frame, so that a follower never says it is in sync while it lacks a complete
    // write or while the primary may complete writes without it.
    void set_floor(std::uint64_t seq, bool synced) noexcept {
        floor_ = seq;
        synced_ = synced;
    }
    // A new stream (this node became primary again): from the table's seq, no follower,
    // the log empty. Allocates nothing (the buffers stay); counters carry on.
    void restart(std::uint64_t stream);

    std::uint64_t last_seq() const noexcept { return next_ - 1; }
    std::uint64_t acked() const noexcept { return acked_; } // synchronous writes up to it are complete
    // A follower holds this stream, nothing to repair: what it acknowledges is in its copy.
    bool in_sync() const noexcept { return joined_ && !snapshot_ && !snap_unacked_ && !diverged_; }
    bool joined() const noexcept { return joined_; }
    bool snapshotting() const noexcept { return snapshot_; }
    lag current_lag(std::uint64_t now) const noexcept;
    std::uint64_t rtt_ns() const noexcept { return srtt_ns_; }
    const sender_counters& counters() const noexcept { return c_; }
    std::uint64_t stream() const noexcept { return stream_; }

private:
    std::uint64_t log_append(std::uint8_t op, std::string_view key, std::span<const std::byte> value, std::uint64_t now);
    bool logged(std::uint64_t seq) const noexcept { return seq >= oldest_ && seq < next_; }
    std::size_t entry_bytes(std::uint64_t seq) const noexcept { return len_[seq % p_.log_entries]; }
    void start_snapshot(std::uint64_t now);
    void send_data(std::uint64_t now, const emit_fn& emit);
    void send_snapshot(std::uint64_t now, const emit_fn& emit);
    void rewind_snapshot(std::uint64_t chunk, std::uint64_t now);
    void go_back(std::uint32_t chunk) noexcept; // the walk from that chunk again
    static constexpr std::size_t chunk_memory = 1024; // chunks whose start slot is kept (rewinds)
    std::vector<std::uint32_t> chunk_slot_;
    std::uint64_t last_rewind_{~0ull}, rewind_ns_{0};

    table& t_;
    sender_params p_;
    std::uint64_t stream_;
    std::vector<std::byte> log_;            // encoded entries, in a ring
    std::vector<std::uint32_t> off_, len_;  // per seq % log_entries
    std::vector<std::uint64_t> digest_, at_ns_, cum_; // cum_: bytes logged up to and including the seq
    std::uint64_t total_bytes_{0}, cum_before_oldest_{0};
    std::uint64_t cum_at(std::uint64_t seq) const noexcept;
    std::size_t write_pos_{0};
    std::uint64_t next_{1}, oldest_{1};
    std::uint64_t acked_{0}, sent_{0};
    bool joined_{false};         // a follower acknowledged this stream
    bool diverged_{false};
    bool snapshot_{false};
    bool snap_unacked_{false};   // the last chunk went out; the follower has not acknowledged the base yet
    std::uint64_t snap_base_{0};
    std::uint32_t snap_slot_{0}, snap_chunk_{0};
    std::uint32_t snap_walk_{0}; // which walk (start_snapshot) the chunks belong to
    std::uint32_t snap_acked_chunk_{0}; // the follower holds every chunk of the walk below it
    std::uint64_t last_progress_ns_{0}, srtt_ns_{0}, rto_ns_{0}, sent_at_ns_{0}, snap_done_ns_{0};
    std::uint64_t floor_{0}, last_emit_ns_{0}, last_keepalive_ns_{0};
    std::uint32_t echo_us_{0}; // the newest sent_us of the follower's ACKs (0: none since it joined)
    bool synced_{true};
    std::vector<std::byte> frame_;
    sender_counters c_;
};

// ------------------------------------------------------------------ the follower's side

struct receiver_counters {
    std::uint64_t frames{}, applied{}, duplicates{}, gaps{}, bad_frames{}, snapshots{}, snapshot_records{};
    std::uint64_t divergences{}, digest_matches{};
    std::uint64_t clear_slices{}, clear_drops{}; // a snapshot clearing the old copy slice by slice; chunks dropped meanwhile
};

class receiver {
public:
    explicit receiver(table& t) : t_(t) {}
    // A DATA or SNAPSHOT frame; the ACK to send back goes through `emit` (every frame is
    // answered: a synchronous write waits on it).
    void on_frame(std::span<const std::byte> frame, std::uint64_t now, const sender::emit_fn& emit);
    // Unprompted ACKs: a follower that has heard nothing yet (or nothing for `idle_ns`)
    // says where it is, which is how a sender learns of it (stream 0: it holds nothing of
    // any stream it knows; another stream's id: a snapshot is needed).
    // Also clears, a slice per call, a copy that a snapshot replaces (clear_slots_per_poll):
    // chunks that arrive meanwhile are dropped and asked for again. `peer` false: the
    // clearing goes on, nothing is sent.
    void poll(std::uint64_t now, std::uint64_t idle_ns, const sender::emit_fn& emit, bool peer = true);
    static constexpr std::uint32_t clear_slots_per_poll = 4096;
    bool clearing() const noexcept { return clearing_; }
    // One slice of that clearing (the receiver's poll does it; replica::host too, when the
    // copy must become a table to lead from). True while slots remain.
    bool clear_step();
    // A local self-check (table::scrub) found records that do not match their hashes: the
    // copy has diverged; a snapshot repairs it.
    void mark_diverged(std::uint64_t bad);
    // Following again (another primary, or this node stopped leading): it holds nothing of
    // any stream, so the next primary sends a snapshot. Counters carry on.
    void reset();
    // The last frame is this long ago: the stream is idle or lost (status).
    std::uint64_t last_frame_ns() const noexcept { return last_ns_; }
    // When this follower sent the ACK that the primary's newest keepalive echoed (its own
    // clock): what a lease on being in sync runs from (replica::host). 0: none yet.
    std::uint64_t heard_ns() const noexcept { return heard_ns_; }
    // Following a stream, nothing to repair, the primary's last DATA frame counted it in
    // sync, and every write the primary last said was complete (its floor) applied here.
    bool in_sync() const noexcept {
        return stream_ != 0 && !snapshot_ && !diverged_ && !want_snapshot_ && !unsynced_ && applied_ >= floor_;
    }
    // The copy is being replaced or repaired (a snapshot asked for, under way or clearing the
    // old copy, or a divergence found): it is no state the primary ever had.
    bool walking() const noexcept { return snapshot_ || want_snapshot_ || clearing_ || diverged_; }
    std::uint64_t floor() const noexcept { return floor_; }
    std::uint64_t stream() const noexcept { return stream_; }
    std::uint64_t applied() const noexcept { return applied_; }
    std::uint64_t last_match_seq() const noexcept { return last_match_seq_; }
    const receiver_counters& counters() const noexcept { return c_; }

private:
    void ack(const sender::emit_fn& emit);
    void compare_digest(std::uint64_t theirs) noexcept; // ours at applied_ against the primary's there
    void progress(const sender::emit_fn& emit);          // a snapshot's chunks so far (flag_chunk_progress)
    std::uint64_t echo_time(std::uint32_t echo) const noexcept; // an ACK's sent_us back to this node's clock (0: not ours)
    table& t_;
    std::uint64_t stream_{0};
    std::uint64_t applied_{0};
    bool snapshot_{false};          // chunks arriving: deltas wait for the last
    bool want_snapshot_{false};
    bool diverged_{false};
    std::uint64_t snap_base_{0}, next_chunk_{0}, compare_from_{0}, snap_walk_{0};
    std::uint64_t walk_seen_{0}; // the newest walk of this stream a chunk came from
    std::uint64_t clear_seq_{0}; // the applied seq of the copy once the clear is done (its snapshot's base)
    std::uint64_t last_ns_{0}, last_match_seq_{0}, last_ack_ns_{0};
    std::uint64_t now_{0};        // the time of the frame or poll being handled (what an ACK's sent_us says)
    std::uint64_t last_sent_ns_{0}; // the newest ACK sent: no echo can be newer (another node's clock can)
    std::uint64_t heard_ns_{0}, floor_{0};
    bool unsynced_{true}; // until a DATA frame of the stream says otherwise
    bool clearing_{false}; // a snapshot's chunk 0 came to a non-empty copy: clearing it first
    std::uint32_t clear_slot_{0};
    std::byte ack_buf_[ack_bytes]{};
    receiver_counters c_;
};

namespace detail {
template <class T>
inline T le(const std::byte* p) noexcept { // little-endian, unaligned
    T v = 0;
    for (int i = sizeof(T) - 1; i >= 0; --i) v = static_cast<T>(v << 8 | std::to_integer<T>(p[i]));
    return v;
}
inline std::uint16_t le16(const std::byte* p) noexcept { return le<std::uint16_t>(p); }
inline std::uint32_t le32(const std::byte* p) noexcept { return le<std::uint32_t>(p); }
inline std::uint64_t le64(const std::byte* p) noexcept { return le<std::uint64_t>(p); }
} // namespace detail

template <class F>
bool for_each_entry(std::span<const std::byte> in, const data_header& h, F&& f) {
    std::size_t at = data_header_bytes;
    for (std::uint16_t i = 0; i < h.count; ++i) {
        if (in.size() - at < entry_header_bytes) return false;
        entry e;
        e.seq = detail::le64(in.data() + at);
        e.op = std::to_integer<std::uint8_t>(in[at + 8]);
        const std::size_t klen = std::to_integer<std::size_t>(in[at + 9]);
        const std::size_t vlen = detail::le16(in.data() + at + 10);
        if ((e.op != op_put && e.op != op_erase) || klen == 0 || in.size() - at - entry_header_bytes < klen + vlen) return false;
        e.key = std::string_view(reinterpret_cast<const char*>(in.data() + at + entry_header_bytes), klen);
        e.value = in.subspan(at + entry_header_bytes + klen, vlen);
        at += entry_header_bytes + klen + vlen;
        f(e);
    }
    return at == in.size();
}

} // namespace heartwire::replica
