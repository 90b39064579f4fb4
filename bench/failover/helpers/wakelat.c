// How late a SCHED_FIFO thread's short sleeps end on one CPU: what the host's stalls look
// like right now, before a benchmark whose tails they set. No heartwire code involved.
//   gcc -O2 -o /tmp/wakelat bench/failover/helpers/wakelat.c && sudo /tmp/wakelat CPU [SLEEPS] [SLEEP_US]
// Prints the lateness percentiles (us) and how many sleeps ended more than 200 / 500 us late.
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>

static long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static int by_value(const void* a, const void* b) {
    const long x = *(const long*)a, y = *(const long*)b;
    return (x > y) - (x < y);
}

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s CPU [SLEEPS (100000)] [SLEEP_US (20)]\n", argv[0]);
        return 2;
    }
    const int cpu = atoi(argv[1]);
    const long n = argc > 2 ? atol(argv[2]) : 100000, sleep_ns = (argc > 3 ? atol(argv[3]) : 20) * 1000;
    long* late = malloc(sizeof(long) * (size_t)n);
    if (!late || n <= 0) return 2;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (sched_setaffinity(0, sizeof one, &one) != 0) { perror("sched_setaffinity"); return 1; }
    struct sched_param p = {.sched_priority = 10};
    if (sched_setscheduler(0, SCHED_FIFO, &p) != 0) perror("sched_setscheduler (not root? measuring at SCHED_OTHER)");
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    const long t0 = now_ns();
    for (long i = 0; i < n; ++i) {
        const long t = now_ns();
        const struct timespec d = {0, sleep_ns};
        nanosleep(&d, NULL);
        late[i] = now_ns() - t - sleep_ns;
    }
    const double secs = (now_ns() - t0) / 1e9;
    qsort(late, (size_t)n, sizeof(long), by_value);
    long over200 = 0, over500 = 0;
    for (long i = 0; i < n; ++i) {
        over200 += late[i] > 200000;
        over500 += late[i] > 500000;
    }
    printf("cpu %d: %ld sleeps of %ld us in %.1f s, late p50 %.1f p99 %.1f p99.9 %.1f max %.1f us; >200 us %ld, >500 us %ld\n",
           cpu, n, sleep_ns / 1000, secs, late[n / 2] / 1e3, late[n * 99 / 100] / 1e3, late[n * 999 / 1000] / 1e3,
           late[n - 1] / 1e3, over200, over500);
    free(late);
    return 0;
}
