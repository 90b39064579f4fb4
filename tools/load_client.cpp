// heartwire-load: the client side of the serving demo and tests. Sends a stream of UDP
// requests and a stream of TCP requests (one connection per request: connect, send, read
// the echo, close) to a service behind the address heartwire moves, and reports, per
// protocol, the requests sent, answered and lost; the longest gap: the longest time between
// the sending of two answered requests (the client's own scheduling gaps included); and the
// longest outage: from the first of a run of unanswered requests to the next answered one.
//
// A UDP request is lost when no answer came within --timeout-ms. A TCP request is lost when
// its connection failed (refused, reset: the old primary died with it) or took longer
// than --tcp-timeout-ms. Runs until SIGTERM/SIGINT, --duration-ms or --requests.
//
//   heartwire-load --target 169.254.10.100 --port 7000 [--udp-interval-us 1000]
//                  [--tcp-interval-ms 10] [--timeout-ms 1000] [--tcp-timeout-ms 3000]
//                  [--duration-ms N | --requests N] [--udp-only | --tcp-only] [--json]
// Exit status: 0 when every request was answered, 1 when some were lost, 2 on bad usage.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
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
#include <string>
#include <vector>

namespace {

volatile std::sig_atomic_t stop = 0;

std::uint64_t now_ns() {
    timespec t{};
    clock_gettime(CLOCK_MONOTONIC, &t);
    return static_cast<std::uint64_t>(t.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(t.tv_nsec);
}

struct request {
    std::uint64_t sent_ns;
    bool answered;
};

// Requests of one protocol in the order they were sent (their index is their id).
struct stream {
    std::vector<request> reqs;
    std::uint64_t answered() const {
        return static_cast<std::uint64_t>(std::count_if(reqs.begin(), reqs.end(), [](const request& r) { return r.answered; }));
    }
    // The longest outage: from the first of a run of unanswered requests to the next answered
    // one (0 when nothing was lost). Unlike the gap, a client that could not send for a while
    // (its CPU taken) does not make one.
    std::uint64_t longest_outage_ns() const {
        std::uint64_t worst = 0;
        const request* first_lost = nullptr;
        for (const auto& r : reqs) {
            if (!r.answered) {
                if (!first_lost) first_lost = &r;
                continue;
            }
            if (first_lost) worst = std::max(worst, r.sent_ns - first_lost->sent_ns);
            first_lost = nullptr;
        }
        if (first_lost && !reqs.empty()) worst = std::max(worst, reqs.back().sent_ns - first_lost->sent_ns);
        return worst;
    }
    std::uint64_t longest_gap_ns() const {
        std::uint64_t gap = 0;
        const request* last = nullptr;
        for (const auto& r : reqs) {
            if (!r.answered) continue;
            if (last) gap = std::max(gap, r.sent_ns - last->sent_ns);
            last = &r;
        }
        return gap;
    }
};

struct tcp_conn {
    int fd;
    std::size_t id;
    bool connected;
};

struct options {
    sockaddr_in to{};
    std::uint64_t udp_interval_ns{1'000'000};
    std::uint64_t tcp_interval_ns{10'000'000};
    std::uint64_t timeout_ns{1'000'000'000};
    std::uint64_t tcp_timeout_ns{3'000'000'000};
    std::uint64_t duration_ns{0};
    std::uint64_t requests{0};
    bool udp{true};
    bool tcp{true};
    bool json{false};
};

bool parse(int argc, char** argv, options& o) {
    bool have_target = false, have_port = false;
    o.to.sin_family = AF_INET;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto num = [&](std::uint64_t scale, std::uint64_t& out) {
            if (i + 1 >= argc) return false;
            char* end = nullptr;
            const unsigned long v = std::strtoul(argv[++i], &end, 10);
            if (!end || *end != '\0') return false;
            out = v * scale;
            return true;
        };
        std::uint64_t v = 0;
        if (a == "--target" && i + 1 < argc) have_target = inet_pton(AF_INET, argv[++i], &o.to.sin_addr) == 1;
        else if (a == "--port" && num(1, v) && v > 0 && v < 65536) {
            o.to.sin_port = htons(static_cast<std::uint16_t>(v));
            have_port = true;
        } else if (a == "--udp-interval-us" && num(1000, o.udp_interval_ns) && o.udp_interval_ns > 0) {
        } else if (a == "--tcp-interval-ms" && num(1'000'000, o.tcp_interval_ns) && o.tcp_interval_ns > 0) {
        } else if (a == "--timeout-ms" && num(1'000'000, o.timeout_ns)) {
        } else if (a == "--tcp-timeout-ms" && num(1'000'000, o.tcp_timeout_ns)) {
        } else if (a == "--duration-ms" && num(1'000'000, o.duration_ns)) {
        } else if (a == "--requests" && num(1, o.requests)) {
        } else if (a == "--udp-only") o.tcp = false;
        else if (a == "--tcp-only") o.udp = false;
        else if (a == "--json") o.json = true;
        else return false;
    }
    return have_target && have_port && (o.udp || o.tcp);
}

class load {
public:
    explicit load(const options& o) : o_(o) {}

    int run() {
        if (o_.udp && !open_udp()) return 2;
        const std::uint64_t start = now_ns();
        std::uint64_t next_udp = start, next_tcp = start;
        std::vector<pollfd> fds;
        auto sending = [&](std::uint64_t t) {
            if (stop) return false;
            if (o_.duration_ns && t - start >= o_.duration_ns) return false;
            if (o_.requests && udp_.reqs.size() >= (o_.udp ? o_.requests : 0) &&
                tcp_.reqs.size() >= (o_.tcp ? o_.requests : 0))
                return false;
            return true;
        };
        std::uint64_t t = now_ns();
        // Sending, then a last timeout for the answers still on their way.
        std::uint64_t end = 0;
        for (;;) {
            t = now_ns();
            if (end == 0 && !sending(t)) end = t + std::max(o_.timeout_ns, o_.tcp_timeout_ns);
            if (end != 0 && (t >= end || (pending_udp() == 0 && conns_.empty()))) break;
            if (end == 0) {
                if (o_.udp && t >= next_udp && (!o_.requests || udp_.reqs.size() < o_.requests)) {
                    send_udp(t);
                    next_udp += o_.udp_interval_ns;
                    if (next_udp < t) next_udp = t + o_.udp_interval_ns; // we were away: no burst
                }
                if (o_.tcp && t >= next_tcp && (!o_.requests || tcp_.reqs.size() < o_.requests)) {
                    start_tcp(t);
                    next_tcp += o_.tcp_interval_ns;
                    if (next_tcp < t) next_tcp = t + o_.tcp_interval_ns;
                }
            }
            expire(t);
            fds.clear();
            if (udp_fd_ >= 0) fds.push_back({udp_fd_, POLLIN, 0});
            for (const auto& c : conns_) fds.push_back({c.fd, static_cast<short>(c.connected ? POLLIN : POLLOUT), 0});
            std::uint64_t wake = end ? end : std::min(o_.udp ? next_udp : ~0ull, o_.tcp ? next_tcp : ~0ull);
            t = now_ns();
            const std::uint64_t wait = wake > t ? std::min<std::uint64_t>(wake - t, 50'000'000) : 0;
            const timespec ts{0, static_cast<long>(wait)};
            ppoll(fds.data(), fds.size(), &ts, nullptr);
            std::size_t i = 0;
            if (udp_fd_ >= 0 && (fds[i++].revents & POLLIN)) read_udp();
            serve_tcp(fds, i);
        }
        for (auto& c : conns_) close(c.fd);
        conns_.clear();
        report();
        const bool all = udp_.answered() == udp_.reqs.size() && tcp_.answered() == tcp_.reqs.size();
        return all ? 0 : 1;
    }

private:
    bool open_udp() {
        udp_fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (udp_fd_ < 0 || connect(udp_fd_, reinterpret_cast<const sockaddr*>(&o_.to), sizeof o_.to) != 0) {
            std::fprintf(stderr, "heartwire-load: udp socket: %s\n", std::strerror(errno));
            return false;
        }
        return true;
    }

    std::size_t pending_udp() const { return udp_.reqs.size() - udp_answered_or_expired_; }

    void send_udp(std::uint64_t t) {
        const std::uint64_t id = udp_.reqs.size();
        udp_.reqs.push_back({t, false});
        // ECONNREFUSED from an earlier ICMP error, or no route for a moment: the request
        // was still made; it is lost unless answered.
        send(udp_fd_, &id, sizeof id, 0);
    }

    void read_udp() {
        std::uint64_t id = 0;
        const std::uint64_t t = now_ns();
        for (;;) {
            const ssize_t n = recv(udp_fd_, &id, sizeof id, 0);
            if (n < 0 && errno == ECONNREFUSED) continue; // an ICMP error queued on the socket
            if (n != sizeof id) return;
            if (id >= udp_.reqs.size() || udp_.reqs[id].answered) continue;
            if (t - udp_.reqs[id].sent_ns > o_.timeout_ns) continue; // too late: lost
            udp_.reqs[id].answered = true;
        }
    }

    void start_tcp(std::uint64_t t) {
        const std::size_t id = tcp_.reqs.size();
        tcp_.reqs.push_back({t, false});
        const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        const int rc = connect(fd, reinterpret_cast<const sockaddr*>(&o_.to), sizeof o_.to);
        if (rc != 0 && errno != EINPROGRESS) {
            close(fd);
            return; // refused at once: lost
        }
        conns_.push_back({fd, id, false});
    }

    void serve_tcp(const std::vector<pollfd>& fds, std::size_t first) {
        std::vector<tcp_conn> keep;
        keep.reserve(conns_.size());
        const std::uint64_t t = now_ns();
        for (std::size_t k = 0; k < conns_.size(); ++k) {
            tcp_conn c = conns_[k];
            const short re = first + k < fds.size() ? fds[first + k].revents : 0;
            bool done = false;
            if (!c.connected && (re & (POLLOUT | POLLERR | POLLHUP))) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
                const std::uint64_t id = c.id;
                if (err != 0 || send(c.fd, &id, sizeof id, MSG_NOSIGNAL) != sizeof id) done = true;
                else c.connected = true;
            } else if (c.connected && (re & (POLLIN | POLLERR | POLLHUP))) {
                std::uint64_t got = 0;
                const ssize_t n = recv(c.fd, &got, sizeof got, 0);
                if (n == sizeof got && got == c.id && t - tcp_.reqs[c.id].sent_ns <= o_.tcp_timeout_ns)
                    tcp_.reqs[c.id].answered = true;
                done = n >= 0 || errno != EAGAIN;
            }
            if (done) close(c.fd);
            else keep.push_back(c);
        }
        conns_.swap(keep);
    }

    // Connections past their timeout are lost; so are UDP requests past theirs (for the
    // end-of-run wait).
    void expire(std::uint64_t t) {
        std::vector<tcp_conn> keep;
        keep.reserve(conns_.size());
        for (const auto& c : conns_) {
            if (t - tcp_.reqs[c.id].sent_ns > o_.tcp_timeout_ns) close(c.fd);
            else keep.push_back(c);
        }
        conns_.swap(keep);
        while (udp_answered_or_expired_ < udp_.reqs.size()) {
            const auto& r = udp_.reqs[udp_answered_or_expired_];
            if (!r.answered && t - r.sent_ns <= o_.timeout_ns) break;
            ++udp_answered_or_expired_;
        }
    }

    void report() const {
        auto line = [&](const char* name, const stream& s, bool last) {
            const std::uint64_t sent = s.reqs.size(), ok = s.answered();
            if (o_.json)
                std::printf("\"%s\":{\"sent\":%llu,\"answered\":%llu,\"lost\":%llu,\"longest_gap_us\":%.1f,"
                            "\"longest_outage_us\":%.1f}%s",
                            name, static_cast<unsigned long long>(sent), static_cast<unsigned long long>(ok),
                            static_cast<unsigned long long>(sent - ok), static_cast<double>(s.longest_gap_ns()) / 1000.0,
                            static_cast<double>(s.longest_outage_ns()) / 1000.0, last ? "" : ",");
            else
                std::printf("%s: %llu requests, %llu answered, %llu lost, longest gap %.1f ms, longest outage %.1f ms\n", name,
                            static_cast<unsigned long long>(sent), static_cast<unsigned long long>(ok),
                            static_cast<unsigned long long>(sent - ok), static_cast<double>(s.longest_gap_ns()) / 1e6,
                            static_cast<double>(s.longest_outage_ns()) / 1e6);
        };
        if (o_.json) std::printf("{");
        if (o_.udp) line("udp", udp_, !o_.tcp);
        if (o_.tcp) line("tcp", tcp_, true);
        if (o_.json) std::printf("}\n");
        std::fflush(stdout);
    }

    options o_;
    int udp_fd_{-1};
    stream udp_, tcp_;
    std::size_t udp_answered_or_expired_{0};
    std::vector<tcp_conn> conns_;
};

} // namespace

int main(int argc, char** argv) {
    options o;
    if (!parse(argc, argv, o)) {
        std::fprintf(stderr,
                     "usage: heartwire-load --target IPV4 --port PORT [--udp-interval-us N] [--tcp-interval-ms N]\n"
                     "                      [--timeout-ms N] [--tcp-timeout-ms N] [--duration-ms N | --requests N]\n"
                     "                      [--udp-only | --tcp-only] [--json]\n");
        return 2;
    }
    struct sigaction sa{};
    sa.sa_handler = [](int) { stop = 1; };
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
    return load(o).run();
}
