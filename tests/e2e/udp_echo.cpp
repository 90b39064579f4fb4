// A request/response service for the switchover test: answers every UDP datagram on the
// given port with the same bytes. Runs in a node namespace; the kernel serves the primary
// address there (shared mode), so whichever node holds it answers.
//
// It listens on INADDR_ANY but answers FROM the address each request was sent to, as a
// real service does (and as a connected client requires): with IP_PKTINFO, not from
// whatever source the route to the client would pick (the monitor address, or nothing yet).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: udp_echo PORT\n");
        return 2;
    }
    const int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        std::perror("udp_echo: socket");
        return 1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) != 0) {
        std::perror("udp_echo: IP_PKTINFO");
        return 1;
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(std::atoi(argv[1])));
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        std::perror("udp_echo: bind");
        return 1;
    }
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
        const ssize_t n = recvmsg(fd, &m, 0);
        if (n <= 0) continue;
        const in_pktinfo* got = nullptr;
        for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
            if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO)
                got = reinterpret_cast<const in_pktinfo*>(CMSG_DATA(c));
        iov.iov_len = static_cast<std::size_t>(n);
        msghdr r{};
        r.msg_name = &from;
        r.msg_namelen = m.msg_namelen;
        r.msg_iov = &iov;
        r.msg_iovlen = 1;
        alignas(cmsghdr) char out_ctl[CMSG_SPACE(sizeof(in_pktinfo))]{};
        if (got) {
            // ipi_spec_dst is the local address the request was for (the destination for
            // unicast): the reply's source. ipi_ifindex 0: the route to the client picks the
            // way out, as for any reply.
            in_pktinfo pi{};
            pi.ipi_spec_dst = got->ipi_spec_dst;
            pi.ipi_addr = got->ipi_addr;
            r.msg_control = out_ctl;
            r.msg_controllen = sizeof out_ctl;
            cmsghdr* c = CMSG_FIRSTHDR(&r);
            c->cmsg_level = IPPROTO_IP;
            c->cmsg_type = IP_PKTINFO;
            c->cmsg_len = CMSG_LEN(sizeof pi);
            std::memcpy(CMSG_DATA(c), &pi, sizeof pi);
        }
        sendmsg(fd, &r, 0);
    }
}
