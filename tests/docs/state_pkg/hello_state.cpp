// An application in C++ on heartwire's replicated store, built against the installed
// heartwire/state.hpp with `pkg-config --cflags --libs heartwire-state` (tests/docs/
// state_pkg.py). It creates a region as heartwired would (state::region::create), plays the
// engine on a thread (drain, apply, publish applied_seq), writes and reads through a
// state::client, then runs the C program (argv[1]) on the same region and finds its record.
#include <heartwire/state.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>

using namespace std::chrono_literals;
namespace state = heartwire::state;

int main(int argc, char** argv) {
    if (argc != 2) return 64;
    std::string path("/dev/shm/heartwire-pkgtest-");
    path += std::to_string(::getpid());
    state::region_geometry g;
    g.table = heartwire::replica::table_geometry::for_records(100, 16, 32);
    g.cells = 16;
    std::string err;
    auto r = state::region::create(path, g, false, err); // async: complete once applied
    if (!r) {
        std::fprintf(stderr, "region::create: %s\n", err.c_str());
        return 2;
    }
    r->header().role.store(static_cast<std::uint32_t>(heartwire::role::primary));
    std::atomic<bool> stop{false};
    std::thread engine([&] {
        std::uint64_t seq = 0;
        while (!stop.load()) {
            r->drain(16, [&](std::uint8_t op, std::string_view k, std::span<const std::byte> v) -> std::uint64_t {
                if (op == 1 && r->table().put(k, v, seq + 1) != heartwire::replica::put_result::ok) return 0;
                if (op != 1) r->table().erase(k, seq + 1);
                return ++seq;
            });
            r->header().applied_seq.store(seq, std::memory_order_release);
            std::this_thread::sleep_for(100us);
        }
    });
    int bad = 0;
    auto c = state::client::open(path, err);
    if (!c) {
        std::fprintf(stderr, "client::open: %s\n", err.c_str());
        bad = 1;
    } else {
        const std::string v = "hello from C++";
        const auto t = c->put("from-cpp", {reinterpret_cast<const std::byte*>(v.data()), v.size()});
        std::byte buf[32];
        if (t == 0 || !c->wait(t, 5s) || c->get("from-cpp", buf) != static_cast<long>(v.size()) || c->replaced() ||
            heartwire::to_string(c->node_role()) != "primary") {
            std::fprintf(stderr, "c++: put, wait or get failed\n");
            bad = 1;
        }
    }
    std::fflush(nullptr);
    const pid_t child = ::fork();
    if (child == 0) {
        ::execl(argv[1], argv[1], path.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }
    int status = -1;
    ::waitpid(child, &status, 0);
    std::byte buf[32];
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !c || c->get("from-c", buf) != 12) {
        std::fprintf(stderr, "the C program on the same region: status %d\n", status);
        bad = 1;
    }
    stop = true;
    engine.join();
    ::unlink(path.c_str());
    if (!bad) std::puts("c++: ok");
    return bad;
}
