// hwb-linkset: set a link up or down in a named network namespace and record when.
//
//   hwb-linkset NETNS IFACE up|down OUTFILE
//
// The failover benchmark injects "link down" through heartwire-failover-probe --inject,
// which stamps the injection before it spawns the command. `ip link set` then costs a
// shell, a large dynamically linked binary and a netns switch (milliseconds on a loaded
// 2-core VM) before the link actually goes down. This helper is small and writes
// CLOCK_REALTIME just before and just after the SIOCSIFFLAGS ioctl (the veth pair's
// carrier changes inside it), so the benchmark can measure from the moment the link
// really went down: OUTFILE gets "t_before_ns t_after_ns errno".
//
// Built by failover.py with `cc -O2`; only ever pointed at the benchmark's own namespaces.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char** argv) {
    if (argc != 5 || (strcmp(argv[3], "up") != 0 && strcmp(argv[3], "down") != 0)) {
        fprintf(stderr, "usage: %s NETNS IFACE up|down OUTFILE\n", argv[0]);
        return 2;
    }
    char path[512];
    snprintf(path, sizeof path, "/run/netns/%s", argv[1]);
    int nsfd = open(path, O_RDONLY | O_CLOEXEC);
    if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) != 0) {
        fprintf(stderr, "%s: netns %s: %s\n", argv[0], argv[1], strerror(errno));
        return 2;
    }
    close(nsfd);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", argv[2]);
    if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) {
        fprintf(stderr, "%s: %s: %s\n", argv[0], argv[2], strerror(errno));
        return 2;
    }
    if (strcmp(argv[3], "up") == 0)
        ifr.ifr_flags |= IFF_UP;
    else
        ifr.ifr_flags &= ~IFF_UP;
    long long t0 = now_ns();
    int rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
    long long t1 = now_ns();
    int err = rc == 0 ? 0 : errno;
    FILE* out = fopen(argv[4], "w");
    if (out) {
        fprintf(out, "%lld %lld %d\n", t0, t1, err);
        fclose(out);
    }
    if (err) fprintf(stderr, "%s: %s %s: %s\n", argv[0], argv[2], argv[3], strerror(err));
    return err ? 1 : 0;
}
