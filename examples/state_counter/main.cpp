// heartwire-state-counter: a small UDP key-value and counter service that keeps all its
// state in a heartwire replicated store ([[state]]), so the monitor that takes the primary
// address over also has every counter the old primary acknowledged (examples/state_counter/
// README.md). It holds nothing of its own: restart it, or fail the node over, and the
// counts go on.
//
//   heartwire-state-counter --port 7400 --node node1 --store counters [--timeout-ms 1000]
//   heartwire-state-counter --port 7400 --path /dev/shm/heartwire-node1-counters
//
// One request per datagram, one reply per request (a trailing line break in a request is
// ignored; replies have none). <id> is the client's, echoed back:
//   PUT <id> <key> <value>   -> OK <id> <seq>        the value is the rest of the datagram
//   INC <id> <key>           -> OK <id> <new value>  a decimal counter; absent counts as 0
//   GET <id> <key>           -> OK <id> <value> | MISSING <id>
//   anything failing         -> ERR <id> <reason>
// Reasons: no-store (no region: heartwired not running or restarting), not-primary (this
// node does not hold the primary role: reads too, since only the primary's copy is
// current), timeout (the write did not complete in --timeout-ms: it may still be applied),
// refused (queue full, the key or value too large, or the table full), not-a-counter (INC
// of a value that is not a decimal number), bad-request.
//
// OK is never sent before the write is complete: with [[state]] mode = "sync" the monitor
// has acknowledged it, so a takeover right after the reply keeps it. GET answers only
// values that are complete in the same sense (it waits, or answers timeout).
//
// One thread. The region is checked at most every 50 ms (one stat(2)), not per request: it
// is opened when it appears and reopened when heartwired restarted (a new file at the path).

#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <heartwire/state.hpp>

namespace {

namespace state = heartwire::state;
using clock_type = std::chrono::steady_clock;

volatile std::sig_atomic_t quit = 0;

void log_line(const std::string& s) { std::fprintf(stderr, "heartwire-state-counter: %s\n", s.c_str()); }

std::span<const std::byte> bytes(std::string_view s) { return {reinterpret_cast<const std::byte*>(s.data()), s.size()}; }

// The store, opened when it appears and reopened when heartwired made a new one.
class store {
public:
    explicit store(std::string path) : path_(std::move(path)) {}

    // At most every 50 ms: open it if there is none, reopen it if the file was replaced.
    void check(clock_type::time_point now, bool force = false) {
        if (now < next_check_ && !force) return;
        next_check_ = now + std::chrono::milliseconds{50};
        std::string err;
        if (!c_) {
            c_ = state::client::open(path_, err);
            if (c_) opened("opened");
            else if (err != last_error_) log_line("no store yet (" + err + "): answering no-store, retrying every 50 ms");
            last_error_ = c_ ? std::string{} : err;
            return;
        }
        if (!c_->replaced()) return;
        if (c_->reopen(err)) {
            opened("heartwired made a new region: reopened");
            return;
        }
        // Gone (heartwired stopped, or between its unlink and create): the old copy is no
        // longer written and its queue no longer drained; answer no-store until it is back.
        c_.reset();
        last_error_ = err;
        log_line("the store went away (" + err + "): answering no-store until heartwired is back");
    }

    state::client* client() noexcept { return c_ ? &*c_ : nullptr; }
    std::vector<std::byte>& buffer() noexcept { return buf_; }

private:
    void opened(const char* what) {
        const auto& h = c_->raw().header();
        buf_.assign(h.value_max, std::byte{});
        std::string s(what);
        s += " ";
        s += path_;
        s += h.sync ? " (mode sync, role " : " (mode async, role ";
        s += heartwire::to_string(c_->node_role());
        s += ", ";
        s += std::to_string(c_->raw().table().count());
        s += " records)";
        log_line(s);
    }

    std::string path_;
    std::optional<state::client> c_;
    std::vector<std::byte> buf_; // value_max bytes: a read's copy
    std::string last_error_;
    clock_type::time_point next_check_{};
};

// Splits off the next word (up to one space).
std::string_view next_word(std::string_view& s) {
    const auto sp = s.find(' ');
    const std::string_view w = s.substr(0, sp);
    s = sp == std::string_view::npos ? std::string_view{} : s.substr(sp + 1);
    return w;
}

std::string reply(std::string_view verb, std::string_view id, std::string_view rest = {}) {
    std::string r(verb);
    r += ' ';
    r += id.empty() ? std::string_view("-") : id;
    if (!rest.empty()) {
        r += ' ';
        r += rest;
    }
    return r;
}

// Queues a write and waits until it is complete: its seq, or the ERR reason.
bool write_and_wait(state::client& c, std::string_view key, std::string_view value, std::chrono::milliseconds timeout,
                    std::uint64_t& seq, const char*& why) {
    const std::uint64_t t = c.put(key, bytes(value));
    if (t == 0) { // too large, or the queue stayed full
        why = "refused";
        return false;
    }
    if (c.wait(t, timeout)) {
        seq = c.raw().seq_of(t);
        return true;
    }
    if (c.refused(t)) why = c.node_role() != heartwire::role::primary ? "not-primary" : "refused";
    else why = "timeout";
    return false;
}

std::string handle(std::string_view req, store& st, std::chrono::milliseconds timeout) {
    while (!req.empty() && (req.back() == '\n' || req.back() == '\r')) req.remove_suffix(1);
    const std::string_view verb = next_word(req);
    const std::string_view id = next_word(req);
    const std::string_view key = next_word(req); // PUT: req is now the value
    const bool put = verb == "PUT", inc = verb == "INC", get = verb == "GET";
    if (id.empty() || key.empty() || (!put && !inc && !get) || (!put && !req.empty())) return reply("ERR", id, "bad-request");
    state::client* c = st.client();
    if (!c) return reply("ERR", id, "no-store");
    if (c->node_role() != heartwire::role::primary) return reply("ERR", id, "not-primary");

    auto& buf = st.buffer();
    std::uint64_t at = 0; // the seq of the write that set the value
    const long n = c->get(key, buf, &at);
    const std::string_view current(reinterpret_cast<const char*>(buf.data()), n > 0 ? static_cast<std::size_t>(n) : 0);
    if (get) {
        // The local copy can hold a write the monitor has not acknowledged yet (one that
        // timed out): answer only what a takeover keeps. Absent: whatever erased it is
        // among the writes applied so far.
        if (!c->wait_seq(n >= 0 ? at : c->applied_seq(), timeout)) return reply("ERR", id, "timeout");
        return n < 0 ? reply("MISSING", id) : reply("OK", id) + ' ' + std::string(current); // an empty value too
    }

    std::uint64_t seq = 0;
    const char* why = "";
    if (put) return write_and_wait(*c, key, req, timeout, seq, why) ? reply("OK", id, std::to_string(seq)) : reply("ERR", id, why);

    // INC: read, add one, write, wait. One thread, and each write completes before the next
    // request is read, so no other increment of ours comes between the read and the write.
    std::uint64_t v = 0;
    if (n >= 0) {
        const auto r = std::from_chars(current.data(), current.data() + current.size(), v);
        if (current.empty() || r.ec != std::errc{} || r.ptr != current.data() + current.size() || v == ~0ull)
            return reply("ERR", id, "not-a-counter");
    }
    const std::string next = std::to_string(v + 1);
    return write_and_wait(*c, key, next, timeout, seq, why) ? reply("OK", id, next) : reply("ERR", id, why);
}

// One datagram read: its text, who sent it, and the address it was sent to (IP_PKTINFO):
// the reply leaves from that address, the primary address a client talks to, not whichever
// address the route back would pick.
struct request {
    std::string text;
    sockaddr_in from{};
    socklen_t from_len{};
    bool has_dst{false};
    in_addr dst{};
};

void send_reply(int fd, const request& q, const std::string& out) {
    iovec oiov{const_cast<char*>(out.data()), out.size()};
    msghdr r{};
    r.msg_name = const_cast<sockaddr_in*>(&q.from);
    r.msg_namelen = q.from_len;
    r.msg_iov = &oiov;
    r.msg_iovlen = 1;
    alignas(cmsghdr) char out_ctl[CMSG_SPACE(sizeof(in_pktinfo))]{};
    if (q.has_dst) {
        in_pktinfo pi{};
        pi.ipi_spec_dst = q.dst;
        r.msg_control = out_ctl;
        r.msg_controllen = sizeof out_ctl;
        cmsghdr* c = CMSG_FIRSTHDR(&r);
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof pi);
        std::memcpy(CMSG_DATA(c), &pi, sizeof pi);
    }
    ::sendmsg(fd, &r, MSG_DONTWAIT);
}

// Up to 64 requests a wakeup. PUTs are queued to the store one after another and then
// waited for together, so a burst costs one replication round trip, not one each (the
// engine batches what it drains into few frames); each reply still goes only once its own
// write is complete. INC and GET first let every earlier PUT complete, then run alone:
// an INC's read and write have nothing of ours in between.
void serve(int fd, store& st, std::chrono::milliseconds timeout) {
    std::vector<request> batch;
    char buf[2048];
    for (int i = 0; i < 64; ++i) {
        request q;
        iovec iov{buf, sizeof buf};
        alignas(cmsghdr) char in_ctl[CMSG_SPACE(sizeof(in_pktinfo))];
        msghdr m{};
        m.msg_name = &q.from;
        m.msg_namelen = sizeof q.from;
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        m.msg_control = in_ctl;
        m.msg_controllen = sizeof in_ctl;
        const ssize_t n = ::recvmsg(fd, &m, MSG_DONTWAIT);
        if (n < 0) break;
        q.from_len = m.msg_namelen;
        for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
            if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
                q.has_dst = true;
                q.dst = reinterpret_cast<const in_pktinfo*>(CMSG_DATA(c))->ipi_spec_dst;
            }
        q.text.assign(buf, static_cast<std::size_t>(n));
        batch.push_back(std::move(q));
    }
    struct queued {
        std::size_t at;   // in batch
        std::string id;
        std::uint64_t ticket;
    };
    std::vector<queued> puts;
    // One deadline for the whole batch: a store that stopped answering (heartwired killed:
    // its region still says primary, and nobody drains it) costs one timeout, not one each.
    const auto complete_puts = [&] {
        state::client* c = st.client();
        const auto deadline = clock_type::now() + timeout;
        for (const auto& p : puts) {
            std::string out;
            const auto left = std::max(deadline - clock_type::now(), clock_type::duration::zero());
            if (c && c->wait(p.ticket, left)) out = reply("OK", p.id, std::to_string(c->raw().seq_of(p.ticket)));
            else if (c && c->refused(p.ticket)) out = reply("ERR", p.id, c->node_role() != heartwire::role::primary ? "not-primary" : "refused");
            else out = reply("ERR", p.id, "timeout");
            send_reply(fd, batch[p.at], out);
        }
        // A batch that timed out: look at the store now rather than in 50 ms (a restarted
        // heartwired has a new region, and the old one will never complete anything).
        if (!puts.empty() && clock_type::now() >= deadline) st.check(clock_type::now(), true);
        puts.clear();
    };
    for (std::size_t i = 0; i < batch.size(); ++i) {
        std::string_view req = batch[i].text;
        while (!req.empty() && (req.back() == '\n' || req.back() == '\r')) req.remove_suffix(1);
        std::string_view rest = req;
        const std::string_view verb = next_word(rest), id = next_word(rest), key = next_word(rest);
        state::client* c = st.client();
        if (verb == "PUT" && !id.empty() && !key.empty() && c && c->node_role() == heartwire::role::primary) {
            const std::uint64_t t = c->put(key, bytes(rest));
            if (t != 0) {
                puts.push_back({i, std::string(id), t});
                continue;
            }
        }
        complete_puts();
        send_reply(fd, batch[i], handle(req, st, timeout));
    }
    complete_puts();
}

int usage(const char* why) {
    if (why) std::fprintf(stderr, "heartwire-state-counter: %s\n", why);
    std::fprintf(stderr, "usage: heartwire-state-counter --port PORT (--node NODE --store NAME | --path FILE) [--timeout-ms MS]\n");
    return 64;
}

bool number(const char* s, long lo, long hi, long& out) {
    char* end = nullptr;
    errno = 0;
    out = std::strtol(s, &end, 10);
    return errno == 0 && end != s && *end == '\0' && out >= lo && out <= hi;
}

} // namespace

int main(int argc, char** argv) {
    static const option longs[] = {{"port", required_argument, nullptr, 'p'},     {"path", required_argument, nullptr, 'f'},
                                   {"node", required_argument, nullptr, 'n'},     {"store", required_argument, nullptr, 's'},
                                   {"timeout-ms", required_argument, nullptr, 't'}, {"help", no_argument, nullptr, 'h'},
                                   {nullptr, 0, nullptr, 0}};
    long port = 0, timeout_ms = 1000;
    std::string path, node, name;
    for (int o; (o = ::getopt_long(argc, argv, "p:f:n:s:t:h", longs, nullptr)) != -1;) {
        switch (o) {
        case 'p': if (!number(optarg, 1, 65535, port)) return usage("--port is 1 to 65535"); break;
        case 't': if (!number(optarg, 1, 600'000, timeout_ms)) return usage("--timeout-ms is 1 to 600000"); break;
        case 'f': path = optarg; break;
        case 'n': node = optarg; break;
        case 's': name = optarg; break;
        case 'h': usage(nullptr); return 0;
        default: return usage(nullptr);
        }
    }
    if (optind != argc || port == 0) return usage(port == 0 ? "--port is required" : "unexpected arguments");
    if (path.empty() == (node.empty() || name.empty())) return usage("give --path FILE, or --node NODE and --store NAME");
    if (path.empty()) { // heartwired's default for a [[state]] without a path
        path = "/dev/shm/heartwire-";
        path += node;
        path += '-';
        path += name;
    }

    struct sigaction sa{};
    sa.sa_handler = [](int) { quit = 1; };
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGTERM, &sa, nullptr); // no SA_RESTART: poll() returns at once
    ::sigaction(SIGINT, &sa, nullptr);

    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    if (fd < 0 || ::setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) != 0 ||
        ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        std::fprintf(stderr, "heartwire-state-counter: cannot bind UDP 0.0.0.0:%ld: %s\n", port, std::strerror(errno));
        return 1;
    }
    log_line("serving UDP 0.0.0.0:" + std::to_string(port) + " from the store at " + path);

    store st(path);
    const std::chrono::milliseconds timeout{timeout_ms};
    while (!quit) {
        st.check(clock_type::now());
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 50) > 0) {
            st.check(clock_type::now());
            serve(fd, st, timeout);
        }
    }
    ::close(fd);
    log_line("stopped");
    return 0;
}
