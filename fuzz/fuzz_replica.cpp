// libFuzzer target: the replicated store's protocol (issue 10).
//
// The input is a script for one primary (a sender over its table) and one follower (a
// receiver over another), joined by a link the script controls: writes, deliveries,
// losses, duplicates, reorders, time, bit flips of frames in flight, and raw bytes handed
// to the follower as if its primary had sent them (a broken but authenticated peer: the
// MAC keeps anyone else out). Properties, each an abort when broken:
//  1. Nothing the follower is handed, however malformed, crashes it, reads outside it or
//     breaks its table (every record keeps matching its stored hash: scrub finds nothing).
//  2. Without raw or flipped frames, once the link heals the follower converges: it is in
//     sync, its digest equals the primary's and every record matches.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "owned_table.hpp"
#include "heartwire/replica.hpp"
#include "heartwire/replication.hpp"

using heartwire::test::owned_table;

namespace {

using namespace heartwire::replica;
using bytes = std::vector<std::byte>;

[[noreturn]] void broken(const char* what) {
    std::fprintf(stderr, "fuzz_replica: %s\n", what);
    std::abort();
}

std::map<std::string, std::string> contents(const table& t) {
    std::map<std::string, std::string> out;
    t.walk(0, ~0u, [&](std::string_view k, std::span<const std::byte> v, std::uint64_t) {
        out.emplace(std::string(k), std::string(reinterpret_cast<const char*>(v.data()), v.size()));
    });
    return out;
}

std::uint64_t scrub_all(const table& t) {
    std::uint64_t bad = 0;
    for (std::uint32_t s = 0; s < t.geometry().capacity;) s = t.scrub(s, 4096, bad);
    return bad;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    FuzzedDataProvider in(data, size);
    const table_geometry g = table_geometry::for_records(64, 8, 24);
    owned_table a(g), b(g);
    sender_params sp;
    sp.log_entries = 32;         // small: logs overflow and force snapshots
    sp.log_bytes = 2048;
    sp.window_bytes = in.ConsumeIntegralInRange<std::size_t>(256, 8192);
    sp.frame_budget = in.ConsumeIntegralInRange<std::size_t>(400, 1024);
    sp.snapshot_chunks_per_poll = 2;
    sender snd(a.t, sp, 0x1234);
    receiver rcv(b.t);
    std::deque<bytes> to_follower, to_primary;
    bool tainted = false; // raw or flipped frames reached the follower
    const bool trace_on = std::getenv("FUZZ_TRACE") != nullptr;
    std::uint64_t now = 1000;
    const auto emit_down = [&](std::span<const std::byte> f) { to_follower.emplace_back(f.begin(), f.end()); };
    const auto emit_up = [&](std::span<const std::byte> f) { to_primary.emplace_back(f.begin(), f.end()); };
    const auto deliver_up = [&] {
        if (to_primary.empty()) return;
        ack_msg m;
        if (decode_ack(to_primary.front(), m)) {
            if (trace_on) std::fprintf(stderr, "   up: ack flags %u stream %llx acked %llu dig %llx\n", m.flags, (unsigned long long)m.stream, (unsigned long long)m.acked_seq, (unsigned long long)m.digest);
            snd.on_ack(m, now);
            if (trace_on) std::fprintf(stderr, "       -> sender acked %llu joined-sync %d\n", (unsigned long long)snd.acked(), snd.in_sync());
        }
        to_primary.pop_front();
    };
    const auto deliver_down = [&] {
        if (to_follower.empty()) return;
        const bytes f = std::move(to_follower.front());
        to_follower.pop_front();
        data_header h{};
        if (trace_on && decode_data_header(f, h))
            std::fprintf(stderr, "   down: type %d flags %u count %u stream %llx first %llu dig/chunk %llu end %llu\n", (int)h.type, h.flags, h.count,
                         (unsigned long long)h.stream, (unsigned long long)h.first_seq, (unsigned long long)h.digest, (unsigned long long)h.end_seq);
        rcv.on_frame(f, now, emit_up);
    };
    const bool trace = std::getenv("FUZZ_TRACE") != nullptr; // reproducing: print the script
    for (int steps = 0; steps < 400 && in.remaining_bytes() > 0; ++steps) {
        const int op = in.ConsumeIntegralInRange<int>(0, 11);
        if (trace)
            std::fprintf(stderr, "op %d  t=%llu  last %llu acked %llu  rcv applied %llu sync %d/%d  q %zu/%zu\n", op,
                         static_cast<unsigned long long>(now), static_cast<unsigned long long>(snd.last_seq()),
                         static_cast<unsigned long long>(snd.acked()), static_cast<unsigned long long>(rcv.applied()),
                         snd.in_sync(), rcv.in_sync(), to_follower.size(), to_primary.size());
        switch (op) {
        case 0:
        case 1: { // a write
            const std::string k = "k" + std::to_string(in.ConsumeIntegralInRange<int>(0, 40));
            const std::string v = in.ConsumeRandomLengthString(30);
            snd.put(k, {reinterpret_cast<const std::byte*>(v.data()), v.size()}, now);
            break;
        }
        case 2:
            snd.erase("k" + std::to_string(in.ConsumeIntegralInRange<int>(0, 40)), now);
            break;
        case 3:
            snd.poll(now, emit_down);
            break;
        case 4:
            deliver_down();
            break;
        case 5:
            deliver_up();
            break;
        case 6: // lose one either way
            if (in.ConsumeBool() && !to_follower.empty()) to_follower.pop_front();
            else if (!to_primary.empty()) to_primary.pop_front();
            break;
        case 7: // duplicate or reorder the next frame to the follower
            if (to_follower.size() >= 2) {
                if (in.ConsumeBool()) to_follower.push_back(to_follower.front());
                else std::swap(to_follower[0], to_follower[1]);
            }
            break;
        case 8:
            now += in.ConsumeIntegralInRange<std::uint64_t>(1, 20'000'000);
            rcv.poll(now, 5'000'000, emit_up);
            break;
        case 9: { // a bit flipped in flight (the tag would catch it; the protocol must survive it too)
            if (to_follower.empty()) break;
            bytes& f = to_follower.front();
            if (f.empty()) break;
            f[in.ConsumeIntegralInRange<std::size_t>(0, f.size() - 1)] ^= std::byte{static_cast<unsigned char>(1u << in.ConsumeIntegralInRange<int>(0, 7))};
            tainted = true;
            break;
        }
        case 10: { // raw bytes from the "primary"
            const auto raw = in.ConsumeBytes<std::uint8_t>(in.ConsumeIntegralInRange<std::size_t>(0, 1100));
            rcv.on_frame({reinterpret_cast<const std::byte*>(raw.data()), raw.size()}, now, emit_up);
            tainted = true;
            break;
        }
        case 11:
            if (in.ConsumeBool()) snd.reset_follower();
            break;
        }
        if (scrub_all(b.t) != 0) broken("the follower's table holds a record that does not match its hash");
        // What the primary counts as acknowledged is in the follower's copy (a synchronous
        // write completes on it).
        if (!tainted && snd.in_sync() && rcv.in_sync() && snd.acked() > rcv.applied())
            broken("the sender counts a write acknowledged that the follower has not applied");
    }
    if (tainted) return 0;
    // Heal: a reliable link, time moving, until the follower is in sync with the primary.
    for (int round = 0; round < 20000; ++round) {
        now += 100'000;
        snd.poll(now, emit_down);
        if (trace && round < 6)
            std::fprintf(stderr, "heal %d: last %llu acked %llu  frames down %zu  sender frames %llu retx %llu rto %llu\n", round,
                         static_cast<unsigned long long>(snd.last_seq()), static_cast<unsigned long long>(snd.acked()),
                         to_follower.size(), static_cast<unsigned long long>(snd.counters().frames),
                         static_cast<unsigned long long>(snd.counters().retransmits),
                         static_cast<unsigned long long>(snd.counters().rto_expiries));
        while (!to_follower.empty()) deliver_down();
        rcv.poll(now, 1'000'000, emit_up);
        while (!to_primary.empty()) deliver_up();
        if (rcv.in_sync() && snd.in_sync() && snd.acked() == snd.last_seq() && rcv.applied() == snd.last_seq()) break;
    }
    if (!rcv.in_sync() || !snd.in_sync()) broken("the follower never reached sync over a healed link");
    if (trace)
        std::fprintf(stderr, "healed: last %llu acked %llu rcv applied %llu; records %zu / %zu\n", static_cast<unsigned long long>(snd.last_seq()),
                     static_cast<unsigned long long>(snd.acked()), static_cast<unsigned long long>(rcv.applied()), contents(a.t).size(),
                     contents(b.t).size());
    if (trace)
        std::fprintf(stderr, "receiver: frames %llu applied %llu dups %llu gaps %llu bad %llu snapshots %llu\n",
                     (unsigned long long)rcv.counters().frames, (unsigned long long)rcv.counters().applied,
                     (unsigned long long)rcv.counters().duplicates, (unsigned long long)rcv.counters().gaps,
                     (unsigned long long)rcv.counters().bad_frames, (unsigned long long)rcv.counters().snapshots);
    if (a.t.state().digest != b.t.state().digest) broken("digests differ after sync");
    if (contents(a.t) != contents(b.t)) broken("records differ after sync");
    return 0;
}
