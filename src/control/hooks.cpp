#include "control/hooks.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <poll.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <system_error>
#include <thread>
#include <unistd.h>

#include <tbb/concurrent_queue.h>

extern char** environ;

namespace heartwire::control {

namespace {

using clock = std::chrono::steady_clock;
constexpr auto kill_grace = std::chrono::seconds{1};

struct child {
    std::uint64_t id{};
    std::string name;
    pid_t pid{-1};
    int pidfd{-1};
    clock::time_point start;
    clock::time_point deadline{clock::time_point::max()}; // SIGTERM at
    clock::time_point kill_at{clock::time_point::max()};  // SIGKILL at, once SIGTERMed
    bool timed_out{false};
    bool termed{false};
    bool killed{false};
};

// Debian 12's glibc 2.36 declares these in <sys/pidfd.h> without extern "C", so C++ cannot
// link against them; the raw syscalls are the same thing.
int pidfd_open(pid_t pid) noexcept { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0u)); }
int pidfd_send_signal(int pidfd, int sig) noexcept {
    return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0u));
}

std::chrono::milliseconds since(clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - t);
}

// The child is unreaped while we signal it, so neither its PID nor its process group id can
// have been reused: we only ever reach processes the hook itself started. pidfd covers a
// hook that moved itself out of its group.
void signal_hook(const child& c, int sig) noexcept {
    ::kill(-c.pid, sig);
    pidfd_send_signal(c.pidfd, sig);
}

std::string key_of(const std::string& kv) { return kv.substr(0, kv.find('=')); }

} // namespace

struct hook_runner::impl {
    std::chrono::milliseconds default_timeout;
    std::atomic<std::uint64_t> next_id{1};
    tbb::concurrent_queue<child> incoming;   // control thread -> reaper
    tbb::concurrent_queue<hook_result> done; // reaper -> poll() on the control thread
    int wake_fd{-1};
    std::atomic<bool> stopping{false};
    mutable std::mutex m;
    std::condition_variable cv;
    std::size_t running{0};
    std::thread reaper;

    void wake() noexcept {
        const std::uint64_t one = 1;
        [[maybe_unused]] auto r = ::write(wake_fd, &one, sizeof one);
    }
    void finish(child& c, hook_result r);
    void reap_loop();
    void spawn(std::uint64_t id, std::string name, const std::vector<std::string>& argv,
               const std::vector<std::string>& env, std::chrono::milliseconds timeout);
};

void hook_runner::impl::finish(child& c, hook_result r) {
    if (c.pidfd >= 0) ::close(c.pidfd);
    c.pidfd = -1;
    done.push(std::move(r));
    {
        std::lock_guard lk(m);
        --running;
    }
    cv.notify_all();
}

void hook_runner::impl::reap_loop() {
    std::vector<child> kids;
    std::vector<pollfd> pfds;
    for (;;) {
        for (child c; incoming.try_pop(c);) kids.push_back(std::move(c));
        const bool stop = stopping.load();
        if (stop && kids.empty() && incoming.empty()) return;

        auto now = clock::now();
        auto next = clock::time_point::max();
        for (auto& c : kids) {
            if (!c.termed && (stop || now >= c.deadline)) {
                c.timed_out = !stop || now >= c.deadline;
                c.termed = true;
                c.kill_at = now + kill_grace;
                signal_hook(c, SIGTERM);
            } else if (c.termed && !c.killed && now >= c.kill_at) {
                c.killed = true;
                signal_hook(c, SIGKILL);
            }
            if (!c.termed) next = std::min(next, c.deadline);
            else if (!c.killed) next = std::min(next, c.kill_at);
        }

        pfds.assign(1, pollfd{wake_fd, POLLIN, 0});
        for (auto& c : kids) pfds.push_back(pollfd{c.pidfd, POLLIN, 0});
        int wait_ms = -1;
        if (next != clock::time_point::max()) {
            const auto d = std::chrono::ceil<std::chrono::milliseconds>(next - now).count();
            wait_ms = static_cast<int>(std::clamp<long long>(d, 0, 60'000));
        }
        if (::poll(pfds.data(), pfds.size(), wait_ms) < 0) continue; // EINTR

        if (pfds[0].revents & POLLIN) {
            std::uint64_t v;
            [[maybe_unused]] auto r = ::read(wake_fd, &v, sizeof v);
        }
        // pfds[i + 1] belongs to kids[i]; erase from the back so indices stay valid.
        for (std::size_t i = kids.size(); i-- > 0;) {
            if (!(pfds[i + 1].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            child& c = kids[i];
            int st = 0;
            const pid_t w = ::waitpid(c.pid, &st, WNOHANG);
            if (w == 0 || (w < 0 && errno == EINTR)) continue;
            hook_result r;
            r.id = c.id;
            r.name = std::move(c.name);
            r.timed_out = c.timed_out;
            r.elapsed = since(c.start);
            if (w < 0) {
                r.error = "exit status lost: " + std::string(std::strerror(errno)) +
                          " (is SIGCHLD ignored?)";
            } else if (WIFEXITED(st)) {
                r.exit_code = WEXITSTATUS(st);
            } else if (WIFSIGNALED(st)) {
                r.term_signal = WTERMSIG(st);
            }
            finish(c, std::move(r));
            kids.erase(kids.begin() + static_cast<std::ptrdiff_t>(i));
        }
    }
}

void hook_runner::impl::spawn(std::uint64_t id, std::string name,
                              const std::vector<std::string>& argv,
                              const std::vector<std::string>& env,
                              std::chrono::milliseconds timeout) {
    auto fail = [&](std::string why) {
        hook_result r;
        r.id = id;
        r.name = std::move(name);
        r.spawn_failed = true;
        r.error = std::move(why);
        done.push(std::move(r));
    };
    if (argv.empty() || argv[0].empty()) return fail("hook '" + name + "': empty command");
    for (const auto& kv : env)
        if (kv.find('=') == std::string::npos || kv.front() == '=')
            return fail("hook '" + name + "': environment entry '" + kv + "' is not KEY=VALUE");

    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);

    std::vector<std::string> keys;
    for (const auto& kv : env) keys.push_back(key_of(kv) + "=");
    std::vector<char*> envp;
    for (char** e = environ; e && *e; ++e) {
        const std::string_view entry{*e};
        const bool overridden = std::any_of(keys.begin(), keys.end(), [&](const std::string& k) {
            return entry.substr(0, k.size()) == k;
        });
        if (!overridden) envp.push_back(*e);
    }
    for (const auto& kv : env) envp.push_back(const_cast<char*>(kv.c_str()));
    envp.push_back(nullptr);

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    // The daemon's sockets, rings and pidfds are none of a hook's business.
    posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETPGROUP);

    child c;
    c.id = id;
    c.start = clock::now();
    const int rc = posix_spawnp(&c.pid, argv[0].c_str(), &fa, &attr, args.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0)
        return fail("hook '" + name + "': cannot run " + argv[0] + ": " + std::strerror(rc));

    c.pidfd = pidfd_open(c.pid);
    if (c.pidfd < 0) {
        const int e = errno;
        if (e != ESRCH) {
            // Still our unreaped child, but we cannot watch it: stop it now rather than
            // leave it untimed.
            ::kill(c.pid, SIGKILL);
            while (::waitpid(c.pid, nullptr, 0) < 0 && errno == EINTR) {}
        }
        return fail("hook '" + name + "': cannot watch pid " + std::to_string(c.pid) +
                    ": pidfd_open: " + std::strerror(e));
    }
    c.name = std::move(name);
    if (timeout.count() > 0) c.deadline = c.start + timeout;
    {
        std::lock_guard lk(m);
        ++running;
    }
    incoming.push(std::move(c));
    wake();
}

void hook_runner::set_default_timeout(std::chrono::milliseconds t) { p_->default_timeout = t; }

hook_runner::hook_runner(std::chrono::milliseconds default_timeout) : p_(std::make_unique<impl>()) {
    p_->default_timeout = default_timeout;
    p_->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p_->wake_fd < 0)
        throw std::system_error(errno, std::generic_category(), "hook_runner: eventfd");
    p_->reaper = std::thread([this] {
        // Process-directed signals (SIGTERM, SIGINT) belong to the daemon's own handling,
        // whatever it sets up after us; never let them land on this thread.
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, nullptr);
        p_->reap_loop();
    });
}

hook_runner::~hook_runner() {
    p_->stopping.store(true);
    p_->wake();
    p_->reaper.join();
    ::close(p_->wake_fd);
}

std::uint64_t hook_runner::run(std::string name, std::vector<std::string> argv,
                               std::vector<std::string> env, std::chrono::milliseconds timeout) {
    const std::uint64_t id = p_->next_id.fetch_add(1);
    p_->spawn(id, std::move(name), argv, env, timeout.count() > 0 ? timeout : p_->default_timeout);
    return id;
}

std::size_t hook_runner::poll(const std::function<void(const hook_result&)>& on_done) {
    std::size_t n = 0;
    for (hook_result r; p_->done.try_pop(r); ++n) on_done(r);
    return n;
}

void hook_runner::wait_all() {
    std::unique_lock lk(p_->m);
    p_->cv.wait(lk, [this] { return p_->running == 0; });
}

std::size_t hook_runner::running() const {
    std::lock_guard lk(p_->m);
    return p_->running;
}

} // namespace heartwire::control
