/* An application in C on heartwire's replicated store, built against the installed
 * heartwire/state.h with `pkg-config --cflags --libs heartwire-state` (tests/docs/
 * state_pkg.py). argv[1]: a region an engine drains (hello_state_cpp plays it). Writes a
 * record, waits until it is complete, reads it back. Exit 0 when all of that worked. */
#include <heartwire/state.h>

#include <stdio.h>
#include <string.h>

int main(int argc, char** argv) {
    char err[256];
    hw_state* s;
    uint64_t t;
    char out[32] = {0};
    long n;
    if (argc != 2) return 64;
    s = hw_state_open(argv[1], err, sizeof err);
    if (!s) {
        fprintf(stderr, "hw_state_open: %s\n", err);
        return 2;
    }
    t = hw_state_put(s, "from-c", 6, "hello from C", 12);
    if (t == 0 || !hw_state_wait(s, t, 5000000000ull)) {
        fprintf(stderr, "put: ticket %llu not complete\n", (unsigned long long)t);
        return 1;
    }
    n = hw_state_get(s, "from-c", 6, out, sizeof out - 1);
    if (n != 12 || strcmp(out, "hello from C") != 0 || hw_state_replaced(s)) {
        fprintf(stderr, "get: %ld bytes, \"%s\"\n", n, out);
        return 1;
    }
    hw_state_close(s);
    puts("c: ok");
    return 0;
}
