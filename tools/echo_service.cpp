// heartwire-echo: a real kernel service for the address heartwire moves (demo and tests).
// Answers every UDP datagram on PORT with the same bytes, and echoes every TCP connection on
// PORT until the client closes it. Runs in a node's namespace; it listens on INADDR_ANY, so
// whichever node's kernel holds the primary address serves it.
//
// UDP replies leave FROM the address each request was sent to (IP_PKTINFO), as a real
// service's must for a connected client: not from whatever source the route to the client
// would pick (the monitor address). TCP does that by itself.
//
//   heartwire-echo --port 7000 [--udp-only | --tcp-only]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

volatile std::sig_atomic_t stop = 0;

int fail(const char* what) {
    std::fprintf(stderr, "heartwire-echo: %s: %s\n", what, std::strerror(errno));
    return 1;
}

// One datagram in, the same bytes out, from the address it was sent to.
void answer_udp(int fd) {
    char buf[2048];
    for (;;) {
        sockaddr_in from{};
        iovec iov{buf, sizeof buf};
        alignas(cmsghdr) char in_ctl[CMSG_SPACE(sizeof(in_pktinfo))];
        msghdr m{};
        m.msg_name = &from;
        m.msg_namelen = sizeof from;
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        m.msg_control = in_ctl;
        m.msg_controllen = sizeof in_ctl;
        const ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT);
        if (n < 0) return;
        const in_pktinfo* got = nullptr;
        for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
            if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) got = reinterpret_cast<const in_pktinfo*>(CMSG_DATA(c));
        iov.iov_len = static_cast<std::size_t>(n);
        msghdr r{};
        r.msg_name = &from;
        r.msg_namelen = m.msg_namelen;
        r.msg_iov = &iov;
        r.msg_iovlen = 1;
        alignas(cmsghdr) char out_ctl[CMSG_SPACE(sizeof(in_pktinfo))]{};
        if (got) {
            // ipi_spec_dst: the local address the request was for, the reply's source.
            // ipi_ifindex 0: the route to the client picks the way out.
            in_pktinfo pi{};
            pi.ipi_spec_dst = got->ipi_spec_dst;
            r.msg_control = out_ctl;
            r.msg_controllen = sizeof out_ctl;
            cmsghdr* c = CMSG_FIRSTHDR(&r);
            c->cmsg_level = IPPROTO_IP;
            c->cmsg_type = IP_PKTINFO;
            c->cmsg_len = CMSG_LEN(sizeof pi);
            std::memcpy(CMSG_DATA(c), &pi, sizeof pi);
        }
        sendmsg(fd, &r, MSG_DONTWAIT);
    }
}

int listen_on(int type, std::uint16_t port) {
    const int fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (type == SOCK_DGRAM && setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) != 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return -1;
    if (type == SOCK_STREAM && listen(fd, 512) != 0) return -1;
    return fd;
}

} // namespace

int main(int argc, char** argv) {
    long port = 0;
    bool udp = true, tcp = true;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--port" && i + 1 < argc) port = std::strtol(argv[++i], nullptr, 10);
        else if (a == "--udp-only") tcp = false;
        else if (a == "--tcp-only") udp = false;
        else if (i == 1 && argc == 2) port = std::strtol(argv[i], nullptr, 10); // heartwire-echo PORT
        else {
            std::fprintf(stderr, "usage: heartwire-echo --port PORT [--udp-only | --tcp-only]\n");
            return 2;
        }
    }
    if (port <= 0 || port > 65535) {
        std::fprintf(stderr, "heartwire-echo: --port must be 1..65535\n");
        return 2;
    }
    std::signal(SIGTERM, [](int) { stop = 1; });
    std::signal(SIGINT, [](int) { stop = 1; });
    std::signal(SIGPIPE, SIG_IGN);
    const int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) return fail("epoll_create1");
    const auto p16 = static_cast<std::uint16_t>(port);
    const int ufd = udp ? listen_on(SOCK_DGRAM, p16) : -1;
    const int tfd = tcp ? listen_on(SOCK_STREAM, p16) : -1;
    if ((udp && ufd < 0) || (tcp && tfd < 0)) return fail("socket/bind");
    for (int fd : {ufd, tfd}) {
        if (fd < 0) continue;
        epoll_event ev{EPOLLIN, {.fd = fd}};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    epoll_event evs[64];
    char buf[4096];
    while (!stop) {
        const int n = epoll_wait(ep, evs, 64, 200);
        for (int i = 0; i < n; ++i) {
            const int fd = evs[i].data.fd;
            if (fd == ufd) {
                answer_udp(fd);
            } else if (fd == tfd) {
                for (int c; (c = accept4(tfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
                    int one = 1;
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    epoll_event ev{EPOLLIN | EPOLLRDHUP, {.fd = c}};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
                }
            } else {
                // A connection: echo what came, close on EOF or error.
                ssize_t got;
                bool done = false;
                while ((got = read(fd, buf, sizeof buf)) > 0)
                    if (write(fd, buf, static_cast<std::size_t>(got)) != got) done = true;
                if (got == 0 || (got < 0 && errno != EAGAIN) || done) close(fd);
            }
        }
    }
    return 0;
}
