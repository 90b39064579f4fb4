#include "control/http_endpoint.hpp"

#include "heartwire/net_types.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

namespace heartwire::control {

namespace {

constexpr std::size_t request_max = 8192;
constexpr int request_timeout_ms = 2000;
constexpr auto render_timeout = std::chrono::seconds(2);

void write_all(int fd, const std::string& s) {
    const char* p = s.data();
    std::size_t left = s.size();
    while (left > 0) {
        const ssize_t n = ::send(fd, p, left, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return; // the scraper went away, or stopped reading (SO_SNDTIMEO)
        }
        p += n;
        left -= static_cast<std::size_t>(n);
    }
}

std::string response(const char* status, const std::string& type, const std::string& body, bool head) {
    std::string r = std::string("HTTP/1.1 ") + status + "\r\nContent-Type: " + type +
                    "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
    if (!head) r += body;
    return r;
}

} // namespace

http_endpoint::http_endpoint(const std::string& listen, std::string path) : path_(std::move(path)) {
    const auto hp = parse_host_port(listen);
    if (!hp) throw std::runtime_error("metrics endpoint \"" + listen + "\": not ADDR:PORT (an IPv4 or [IPv6] literal)");
    const std::string& addr = hp->addr;
    const std::uint16_t port = hp->port;
    sockaddr_storage ss{};
    socklen_t len = 0;
    int family = AF_INET;
    if (in_addr a4{}; !hp->v6 && inet_pton(AF_INET, addr.c_str(), &a4) == 1) {
        auto* s = reinterpret_cast<sockaddr_in*>(&ss);
        s->sin_family = AF_INET;
        s->sin_port = htons(port);
        s->sin_addr = a4;
        len = sizeof *s;
    } else {
        auto* s = reinterpret_cast<sockaddr_in6*>(&ss);
        s->sin6_family = AF_INET6;
        s->sin6_port = htons(port);
        inet_pton(AF_INET6, addr.c_str(), &s->sin6_addr);
        len = sizeof *s;
        family = AF_INET6;
    }
    listen_fd_ = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    if (listen_fd_ < 0 || setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(listen_fd_, 8) != 0) {
        const std::string why = std::strerror(errno);
        if (listen_fd_ >= 0) ::close(listen_fd_);
        throw std::runtime_error("metrics endpoint " + listen + ": " + why);
    }
    sockaddr_storage bound{};
    socklen_t bl = sizeof bound;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &bl);
    port_ = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                    : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
    stop_fd_ = eventfd(0, EFD_CLOEXEC);
    thread_ = std::thread([this] { run(); });
}

http_endpoint::~http_endpoint() {
    const std::uint64_t one = 1;
    if (::write(stop_fd_, &one, sizeof one) < 0) ::shutdown(listen_fd_, SHUT_RDWR); // wakes its poll all the same
    {
        std::lock_guard<std::mutex> g(m_);
        want_ = false;
    }
    cv_.notify_all();
    thread_.join();
    ::close(listen_fd_);
    ::close(stop_fd_);
}

void http_endpoint::serve(const std::function<std::string()>& render) {
    if (!pending_.load(std::memory_order_acquire)) return;
    std::string body = render();
    {
        std::lock_guard<std::mutex> g(m_);
        if (!want_) return; // the scrape gave up meanwhile
        body_ = std::move(body);
        have_ = true;
        want_ = false;
        pending_.store(false, std::memory_order_release);
    }
    cv_.notify_all();
}

bool http_endpoint::render_for_request(std::string& body) {
    std::unique_lock<std::mutex> g(m_);
    want_ = true;
    have_ = false;
    pending_.store(true, std::memory_order_release);
    const bool got = cv_.wait_for(g, render_timeout, [&] { return have_; });
    want_ = false;
    pending_.store(false, std::memory_order_release);
    if (got) body = std::move(body_);
    have_ = false;
    return got;
}

void http_endpoint::run() {
    for (;;) {
        pollfd p[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
        if (::poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return;
        }
        if (p[1].revents) return;
        if (!(p[0].revents & POLLIN)) continue;
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        // A scraper that stops reading must not hold the only serving thread (nor the
        // daemon's stop, which joins it): each send gives up after 2 s.
        const timeval send_timeout{2, 0};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);
        answer(fd);
        ::close(fd);
    }
}

void http_endpoint::answer(int fd) {
    std::string req;
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(request_timeout_ms);
    while (req.find("\r\n\r\n") == std::string::npos && req.find("\n\n") == std::string::npos) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
        pollfd p[2] = {{fd, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
        if (left.count() <= 0 || ::poll(p, 2, static_cast<int>(left.count())) <= 0 || p[1].revents) {
            refused_.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        char buf[2048];
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            refused_.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        req.append(buf, static_cast<std::size_t>(n));
        if (req.size() > request_max) {
            refused_.fetch_add(1, std::memory_order_relaxed);
            write_all(fd, response("431 Request Header Fields Too Large", "text/plain", "too large\n", false));
            return;
        }
    }
    const std::string line = req.substr(0, req.find_first_of("\r\n"));
    const auto sp1 = line.find(' '), sp2 = line.rfind(' ');
    const std::string method = line.substr(0, sp1);
    std::string target = sp1 == std::string::npos || sp2 <= sp1 ? "" : line.substr(sp1 + 1, sp2 - sp1 - 1);
    target = target.substr(0, target.find('?'));
    const bool head = method == "HEAD";
    if (method != "GET" && !head) {
        refused_.fetch_add(1, std::memory_order_relaxed);
        write_all(fd, response("405 Method Not Allowed", "text/plain", "GET " + path_ + "\n", false));
        return;
    }
    if (target != path_) {
        refused_.fetch_add(1, std::memory_order_relaxed);
        write_all(fd, response("404 Not Found", "text/plain", "metrics are at " + path_ + "\n", head));
        return;
    }
    std::string body;
    if (!render_for_request(body)) {
        refused_.fetch_add(1, std::memory_order_relaxed);
        write_all(fd, response("503 Service Unavailable", "text/plain", "the control thread did not answer\n", head));
        return;
    }
    requests_.fetch_add(1, std::memory_order_relaxed);
    write_all(fd, response("200 OK", "text/plain; version=0.0.4; charset=utf-8", body, head));
}

} // namespace heartwire::control
