// heartwire-peersim: many standby peers from one process, for the many-groups benchmark
// (bench/groups/groups.py --peers 64) on a machine that cannot run 64 engines.
//
// On a raw AF_PACKET socket it plays N standby nodes of every group in a list, each with
// its own node id, its own locally administered MAC (02:68 + the node id, the frames'
// source), an incarnation (realtime ns at start) and, per group, a seq that only grows.
// Every --announce-ms each peer announces every group the way a real standby does
// (src/core/fsm_roles.cpp announce(): role standby, its priority, the newest epoch it heard
// in the group, no flags, payload = the accepted-keys TLV), in heartbeat bundles as an
// engine sends many groups' (12 announces of 106 bytes fill the 1,368-byte payload; one
// group alone is a plain announce, as from an engine with one group), signed with the
// group key as the engine signs (a tag over every byte before it). A priority below the
// real nodes' keeps it from ever outranking them; it never claims an address, so it stays
// a standby.
//
// The peers' rounds are spread evenly over the interval, as independent nodes' phases would
// be, and sent with sendmmsg once a millisecond at most. Whatever arrives is read: an
// authenticated heartbeat's epoch is what a standby that heard it would carry next; the
// rest is ignored. On SIGTERM/SIGINT it prints one JSON line: frames and entries sent,
// send errors, what it received, rounds it fell a whole interval behind, its own CPU.
//
//   heartwire-peersim --interface IF --key-file PATH --groups LIST [--peers 62]
//                     [--first-id 1000] [--priority 1] [--announce-ms 100]
// LIST: group ids and ranges, "1-1000" or "1,5,7-9". Needs CAP_NET_RAW.
#include <arpa/inet.h>
#include <net/if.h>
#include <netpacket/packet.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "heartwire/auth.hpp"
#include "heartwire/fsm.hpp"
#include "heartwire/roles.hpp"
#include "heartwire/wire.hpp"

namespace {

using namespace heartwire;

volatile std::sig_atomic_t stop = 0;

constexpr std::size_t frame_room = 1536;
constexpr unsigned batch_max = 64;           // frames per sendmmsg / recvmmsg
constexpr std::uint64_t tick_ns = 1'000'000; // the fewest ns between two send batches

std::uint64_t clock_ns(clockid_t c) {
    timespec t{};
    clock_gettime(c, &t);
    return static_cast<std::uint64_t>(t.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(t.tv_nsec);
}

struct options {
    std::string interface;
    std::string key_file;
    std::vector<std::uint32_t> groups;
    std::uint32_t peers{62};
    std::uint32_t first_id{1000};
    std::uint8_t priority{1};
    std::uint64_t announce_ns{100'000'000};
};

// "1-1000" or "1,5,7-9"; group 0 is no group (it marks a node-wide notice).
bool parse_groups(const char* s, std::vector<std::uint32_t>& out) {
    while (*s) {
        char* end = nullptr;
        const unsigned long a = std::strtoul(s, &end, 10);
        unsigned long b = a;
        if (end == s) return false;
        if (*end == '-') {
            const char* t = end + 1;
            b = std::strtoul(t, &end, 10);
            if (end == t) return false;
        }
        if (a == 0 || b < a || b > 0xffffffffu) return false;
        for (unsigned long g = a; g <= b; ++g) out.push_back(static_cast<std::uint32_t>(g));
        if (*end == ',') ++end;
        else if (*end != '\0') return false;
        s = end;
    }
    return !out.empty();
}

bool parse(int argc, char** argv, options& o) {
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto num = [&](unsigned long lo, unsigned long hi, unsigned long& out) {
            if (i + 1 >= argc) return false;
            char* end = nullptr;
            out = std::strtoul(argv[++i], &end, 10);
            return end && *end == '\0' && out >= lo && out <= hi;
        };
        unsigned long v = 0;
        if (a == "--interface" && i + 1 < argc) o.interface = argv[++i];
        else if (a == "--key-file" && i + 1 < argc) o.key_file = argv[++i];
        else if (a == "--groups" && i + 1 < argc) {
            if (!parse_groups(argv[++i], o.groups)) return false;
        } else if (a == "--peers" && num(1, fsm::max_peers, v)) o.peers = static_cast<std::uint32_t>(v);
        else if (a == "--first-id" && num(1, 0xffffff00u, v)) o.first_id = static_cast<std::uint32_t>(v);
        else if (a == "--priority" && num(0, 255, v)) o.priority = static_cast<std::uint8_t>(v);
        else if (a == "--announce-ms" && num(1, 3'600'000, v)) o.announce_ns = v * 1'000'000;
        else return false;
    }
    return !o.interface.empty() && !o.key_file.empty() && !o.groups.empty();
}

struct sim_peer {
    std::uint32_t id{};
    mac_addr mac;
    std::uint64_t incarnation{};
};

struct totals {
    std::uint64_t frames{}, entries{}, send_errors{}, rx_frames{}, rx_authenticated{}, rx_unauthenticated{};
    std::uint64_t late_rounds{}, max_lag_ns{};
    int first_errno{};
};

class simulator {
public:
    simulator(const options& o, int fd, std::unique_ptr<auth::keyring> ring)
        : o_(o), fd_(fd), ring_(std::move(ring)), seq_(std::size_t{o.peers} * o.groups.size(), 0),
          epoch_(o.groups.size(), 0) {
        for (std::size_t g = 0; g < o.groups.size(); ++g) index_.emplace(o.groups[g], g);
        const std::uint64_t now = clock_ns(CLOCK_REALTIME);
        for (std::uint32_t i = 0; i < o.peers; ++i) {
            sim_peer p;
            p.id = o.first_id + i;
            p.mac = {{0x02, 0x68, static_cast<std::uint8_t>(p.id >> 24), static_cast<std::uint8_t>(p.id >> 16),
                      static_cast<std::uint8_t>(p.id >> 8), static_cast<std::uint8_t>(p.id)}};
            p.incarnation = now + i; // distinct, as separate boots would be
            peers_.push_back(p);
        }
        // The accepted-keys TLV (fsm_roles.cpp announce()): the key ids this keyring takes.
        const fsm::key_set keys = ring_->ids_bitmap();
        tlv_[0] = std::byte{fsm::tlv_accepted_keys};
        tlv_[1] = std::byte{32};
        for (std::size_t i = 0; i < 32; ++i) tlv_[2 + i] = std::byte(static_cast<std::uint8_t>(keys[i / 8] >> ((i % 8) * 8)));
        // Groups per bundle: as many announces as fit both limits.
        per_bundle_ = std::min(wire::hb_bundle_max_entries, wire::hb_max_bundle_payload / (wire::hb_header_size + sizeof tlv_));
        chunks_ = (o.groups.size() + per_bundle_ - 1) / per_bundle_;
        for (unsigned k = 0; k < batch_max; ++k) {
            tx_iov_[k] = {tx_buf_[k], 0};
            tx_msg_[k].msg_hdr.msg_iov = &tx_iov_[k];
            tx_msg_[k].msg_hdr.msg_iovlen = 1;
            rx_iov_[k] = {rx_buf_[k], frame_room};
            rx_msg_[k].msg_hdr.msg_iov = &rx_iov_[k];
            rx_msg_[k].msg_hdr.msg_iovlen = 1;
        }
    }

    // Round after round, each spread over the interval, until told to stop.
    const totals& run() {
        const std::uint64_t per_round = std::uint64_t{chunks_} * peers_.size();
        std::uint64_t round_start = clock_ns(CLOCK_MONOTONIC), done = 0;
        const auto due_at = [&](std::uint64_t k) { return round_start + k * o_.announce_ns / per_round; };
        while (!stop) {
            const std::uint64_t now = clock_ns(CLOCK_MONOTONIC);
            // (A round finished early: the next one starts on its own schedule, not now.)
            const std::uint64_t due =
                now < round_start ? 0 : std::min<std::uint64_t>(per_round, (now - round_start) * per_round / o_.announce_ns + 1);
            if (due > done) t_.max_lag_ns = std::max(t_.max_lag_ns, now - due_at(done));
            while (done < due && !stop) done += send_batch(done, std::min<std::uint64_t>(due - done, batch_max), now);
            if (done == per_round) {
                done = 0;
                round_start += o_.announce_ns;
                // A whole interval behind (the machine could not carry it): start afresh
                // rather than send a burst of stale rounds.
                if (now > round_start + o_.announce_ns) {
                    ++t_.late_rounds;
                    round_start = now;
                }
            }
            const std::uint64_t next = std::max(due_at(done), now + tick_ns);
            const std::uint64_t t = clock_ns(CLOCK_MONOTONIC);
            const std::uint64_t wait = next > t ? next - t : 0;
            const timespec ts{static_cast<time_t>(wait / 1'000'000'000u), static_cast<long>(wait % 1'000'000'000u)};
            pollfd p{fd_, POLLIN, 0};
            if (ppoll(&p, 1, &ts, nullptr) > 0 && (p.revents & POLLIN)) receive();
        }
        return t_;
    }

private:
    // Frames [first, first + n) of the round: frame k is peer k / chunks_'s bundle of chunk
    // k % chunks_, so each peer's bundles leave together, as one node's turn would.
    std::uint64_t send_batch(std::uint64_t first, std::uint64_t n, std::uint64_t now) {
        for (std::uint64_t k = 0; k < n; ++k) tx_iov_[k].iov_len = encode(first + k, tx_buf_[k], tx_entries_[k], now);
        unsigned at = 0;
        while (at < n && !stop) {
            const int r = sendmmsg(fd_, tx_msg_ + at, static_cast<unsigned>(n - at), 0);
            if (r > 0) {
                for (unsigned k = at; k < at + static_cast<unsigned>(r); ++k) t_.entries += tx_entries_[k];
                t_.frames += static_cast<unsigned>(r);
                at += static_cast<unsigned>(r);
                continue;
            }
            if (errno == EINTR) continue;
            // That frame is lost (a peer's round missing from its groups); go on with the next.
            if (t_.send_errors++ == 0) t_.first_errno = errno;
            ++at;
        }
        return n;
    }

    // Returns the frame's length; `entries` its announces.
    std::size_t encode(std::uint64_t k, std::byte* out, std::size_t& entries, std::uint64_t now) {
        const std::size_t pi = k / chunks_, chunk = k % chunks_;
        const sim_peer& p = peers_[pi];
        const std::size_t g0 = chunk * per_bundle_, g1 = std::min(o_.groups.size(), g0 + per_bundle_);
        wire::hb_msg e[wire::hb_bundle_max_entries];
        for (std::size_t g = g0; g < g1; ++g) {
            wire::hb_msg& m = e[g - g0];
            m.type = wire::hb_type::announce;
            m.role = static_cast<std::uint8_t>(role::standby);
            m.priority = o_.priority;
            m.node_id = p.id;
            m.epoch = epoch_[g];
            m.seq = ++seq_[pi * o_.groups.size() + g];
            m.ts_ns = now;
            m.group = o_.groups[g];
            m.incarnation = p.incarnation;
            m.payload = tlv_;
        }
        const std::uint8_t key = ring_->send_key();
        const auto alg = static_cast<std::uint8_t>(auth::keyring::algo());
        std::size_t n = 0;
        if (o_.groups.size() == 1) {
            // One group goes as an engine with one group sends it: a plain announce.
            e[0].key_id = key;
            e[0].auth_alg = alg;
            n = wire::encode_heartbeat(mac_addr::heartwire_group(), p.mac, e[0], {out, frame_room});
        } else {
            wire::hb_msg outer;
            outer.type = wire::hb_type::bundle;
            outer.node_id = p.id;
            outer.incarnation = p.incarnation;
            outer.key_id = key;
            outer.auth_alg = alg;
            n = wire::encode_bundle(mac_addr::heartwire_group(), p.mac, outer, {e, g1 - g0}, {out, frame_room});
        }
        // As engine::sign: the tag over every byte before it.
        if (n != 0) {
            const std::size_t covered = n - wire::hb_tag_size;
            ring_->sign({out, covered}, std::span<std::byte, wire::hb_tag_size>(out + covered, wire::hb_tag_size));
        }
        entries = g1 - g0;
        return n;
    }

    void receive() {
        for (;;) {
            const int r = recvmmsg(fd_, rx_msg_, batch_max, MSG_DONTWAIT, nullptr);
            if (r <= 0) return;
            for (int k = 0; k < r; ++k) heard({rx_buf_[k], rx_msg_[k].msg_len});
        }
    }

    // A standby takes the newest epoch it hears in a group (fsm_watch.cpp: a node that
    // holds no address follows the epochs); only from frames that authenticate.
    void heard(std::span<const std::byte> bytes) {
        ++t_.rx_frames;
        const wire::frame f = wire::decode(bytes);
        if (f.kind != wire::frame_kind::heartbeat) return;
        if (f.hb.auth_alg != static_cast<std::uint8_t>(auth::keyring::algo()) ||
            ring_->verify(f.hb.key_id, f.hb.covered, f.hb.tag.first<wire::hb_tag_size>()) != auth::keyring::verdict::ok) {
            ++t_.rx_unauthenticated;
            return;
        }
        ++t_.rx_authenticated;
        if (f.hb.type != wire::hb_type::bundle) return follow(f.hb);
        wire::hb_msg e;
        for (std::size_t off = 0; off < f.hb.payload.size();) {
            off = wire::next_bundle_entry(f.hb, off, e);
            follow(e);
        }
    }

    void follow(const wire::hb_msg& m) {
        const auto it = index_.find(m.group);
        if (it != index_.end()) epoch_[it->second] = std::max(epoch_[it->second], m.epoch);
    }

    const options& o_;
    int fd_;
    std::unique_ptr<auth::keyring> ring_;
    std::vector<sim_peer> peers_;
    std::vector<std::uint64_t> seq_;   // [peer][group]
    std::vector<std::uint64_t> epoch_; // [group]: the newest heard
    std::unordered_map<std::uint32_t, std::size_t> index_;
    std::byte tlv_[2 + 32]{};
    std::size_t per_bundle_{1};
    std::size_t chunks_{1};
    totals t_;
    std::byte tx_buf_[batch_max][frame_room]{};
    std::byte rx_buf_[batch_max][frame_room]{};
    std::size_t tx_entries_[batch_max]{};
    iovec tx_iov_[batch_max]{}, rx_iov_[batch_max]{};
    mmsghdr tx_msg_[batch_max]{}, rx_msg_[batch_max]{};
};

int open_socket(const std::string& ifname) {
    const unsigned ifindex = if_nametoindex(ifname.c_str());
    if (ifindex == 0) {
        std::fprintf(stderr, "heartwire-peersim: no interface %s: %s\n", ifname.c_str(), std::strerror(errno));
        return -1;
    }
    // Bound to the heartwire EtherType: only frames received, never our own sent ones.
    const int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(wire::ethertype_heartwire));
    if (fd < 0) {
        std::fprintf(stderr, "heartwire-peersim: AF_PACKET socket: %s (needs CAP_NET_RAW)\n", std::strerror(errno));
        return -1;
    }
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(wire::ethertype_heartwire);
    sll.sll_ifindex = static_cast<int>(ifindex);
    if (bind(fd, reinterpret_cast<const sockaddr*>(&sll), sizeof sll) != 0) {
        std::fprintf(stderr, "heartwire-peersim: bind to %s: %s\n", ifname.c_str(), std::strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

} // namespace

int main(int argc, char** argv) {
    options o;
    if (!parse(argc, argv, o)) {
        std::fprintf(stderr, "usage: heartwire-peersim --interface IF --key-file PATH --groups LIST [--peers N (1-%zu)]\n"
                             "                         [--first-id N] [--priority N] [--announce-ms N]\n",
                     fsm::max_peers);
        return 2;
    }
    const auto keys = auth::load_key_file(o.key_file);
    if (!keys.ok()) {
        std::fprintf(stderr, "heartwire-peersim: %s\n", keys.error.c_str());
        return 1;
    }
    std::string error;
    auto ring = auth::keyring::make(keys.keys, error);
    if (!ring) {
        std::fprintf(stderr, "heartwire-peersim: %s: %s\n", o.key_file.c_str(), error.c_str());
        return 1;
    }
    const int fd = open_socket(o.interface);
    if (fd < 0) return 1;
    struct sigaction sa{};
    sa.sa_handler = [](int) { stop = 1; }; // no SA_RESTART: ppoll and sendmmsg return at once
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);

    const std::uint64_t t0 = clock_ns(CLOCK_MONOTONIC);
    auto sim = std::make_unique<simulator>(o, fd, std::move(ring));
    const totals& t = sim->run();
    const double seconds = static_cast<double>(clock_ns(CLOCK_MONOTONIC) - t0) / 1e9;
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    const double cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                       static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    std::printf("{\"peers\":%u,\"groups\":%zu,\"seconds\":%.3f,\"frames\":%llu,\"entries\":%llu,\"send_errors\":%llu,"
                "\"first_send_error\":\"%s\",\"rx_frames\":%llu,\"rx_authenticated\":%llu,\"rx_unauthenticated\":%llu,"
                "\"late_rounds\":%llu,\"max_lag_ms\":%.3f,\"cpu_s\":%.3f}\n",
                o.peers, o.groups.size(), seconds, static_cast<unsigned long long>(t.frames),
                static_cast<unsigned long long>(t.entries), static_cast<unsigned long long>(t.send_errors),
                t.first_errno ? std::strerror(t.first_errno) : "", static_cast<unsigned long long>(t.rx_frames),
                static_cast<unsigned long long>(t.rx_authenticated), static_cast<unsigned long long>(t.rx_unauthenticated),
                static_cast<unsigned long long>(t.late_rounds), static_cast<double>(t.max_lag_ns) / 1e6, cpu);
    std::fflush(stdout);
    close(fd);
    return 0;
}
