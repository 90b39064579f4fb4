#include "heartwire/state.hpp"
#include "heartwire/replication.hpp"

#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace heartwire::state {

namespace {

std::size_t align64(std::size_t n) noexcept { return (n + 63) & ~std::size_t{63}; }

std::string errno_text(const std::string& what, const std::string& path) {
    return what + " " + path + ": " + std::strerror(errno);
}

} // namespace

std::size_t region_geometry::cell_bytes() const noexcept {
    return align64(sizeof(write_cell) + table.key_max + table.value_max);
}

std::size_t region_geometry::bytes() const noexcept {
    return align64(sizeof(region_header)) + align64(table.region_bytes()) + std::size_t{cells} * cell_bytes() +
           align64(std::size_t{cells} * sizeof(ticket_result));
}

region::region(std::byte* base, std::size_t len, int fd) noexcept
    : base_(base), len_(len), fd_(fd), h_(reinterpret_cast<region_header*>(base)) {
    t_ = replica::table::attach({base_ + h_->table_offset, h_->table_bytes});
    results_ = reinterpret_cast<ticket_result*>(base_ + h_->results_offset);
    struct stat st{};
    if (::fstat(fd_, &st) == 0) {
        dev_ = st.st_dev;
        ino_ = st.st_ino;
    }
}

bool region::is_at(const std::string& path) const noexcept {
    // Inode numbers are not reused while this mapping holds the old file open, so a new file
    // at the path always differs.
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) return false;
    return st.st_dev == dev_ && st.st_ino == ino_;
}

region::~region() {
    if (base_) ::munmap(base_, len_);
    if (fd_ >= 0) ::close(fd_);
}

std::unique_ptr<region> region::create(const std::string& path, const region_geometry& g, bool sync, std::string& error) {
    if (g.cells == 0 || (g.cells & (g.cells - 1)) != 0) {
        error = "state queue length must be a power of two";
        return nullptr;
    }
    const std::size_t len = g.bytes();
    ::unlink(path.c_str()); // a stale region of an earlier run (its readers keep their mapping)
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0660);
    if (fd < 0) {
        error = errno_text("cannot create", path);
        return nullptr;
    }
    if (::ftruncate(fd, static_cast<off_t>(len)) != 0) {
        error = errno_text("cannot size", path);
        ::close(fd);
        ::unlink(path.c_str());
        return nullptr;
    }
    void* m = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        error = errno_text("cannot map", path);
        ::close(fd);
        ::unlink(path.c_str());
        return nullptr;
    }
    auto* base = static_cast<std::byte*>(m);
    auto* h = new (base) region_header{};
    h->magic = region_magic;
    h->version = region_version;
    h->table_offset = align64(sizeof(region_header));
    h->table_bytes = g.table.region_bytes();
    h->cells_offset = h->table_offset + align64(h->table_bytes);
    h->results_offset = h->cells_offset + std::size_t{g.cells} * g.cell_bytes();
    h->cells = g.cells;
    h->cell_bytes = static_cast<std::uint32_t>(g.cell_bytes());
    h->key_max = g.table.key_max;
    h->value_max = g.table.value_max;
    h->sync = sync ? 1 : 0;
    h->writer_pid.store(static_cast<std::uint64_t>(::getpid()));
    if (!replica::table::create({base + h->table_offset, h->table_bytes}, g.table).valid()) {
        error = "invalid table geometry for " + path;
        ::munmap(m, len);
        ::close(fd);
        ::unlink(path.c_str());
        return nullptr;
    }
    for (std::uint32_t i = 0; i < g.cells; ++i) {
        auto* c = new (base + h->cells_offset + std::size_t{i} * g.cell_bytes()) write_cell{};
        c->sequence.store(i, std::memory_order_relaxed);
    }
    for (std::uint32_t i = 0; i < g.cells; ++i) new (base + h->results_offset + i * sizeof(ticket_result)) ticket_result{};
    std::atomic_thread_fence(std::memory_order_release);
    return std::unique_ptr<region>(new region(base, len, fd));
}

std::unique_ptr<region> region::attach(const std::string& path, std::string& error) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        error = errno_text("cannot open", path);
        return nullptr;
    }
    struct stat st{};
    if (::fstat(fd, &st) != 0 || static_cast<std::size_t>(st.st_size) < sizeof(region_header)) {
        error = path + " is not a heartwire state region (too small)";
        ::close(fd);
        return nullptr;
    }
    const auto len = static_cast<std::size_t>(st.st_size);
    void* m = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        error = errno_text("cannot map", path);
        ::close(fd);
        return nullptr;
    }
    const auto* h = static_cast<const region_header*>(m);
    const bool fits = h->magic == region_magic && h->version == region_version && h->cells != 0 &&
                      (h->cells & (h->cells - 1)) == 0 && h->results_offset + std::size_t{h->cells} * sizeof(ticket_result) <= len &&
                      h->table_offset + h->table_bytes <= h->cells_offset &&
                      h->cells_offset + std::size_t{h->cells} * h->cell_bytes <= h->results_offset &&
                      h->cell_bytes >= sizeof(write_cell) + h->key_max + h->value_max;
    if (!fits) {
        error = path + " is not a heartwire state region of version " + std::to_string(region_version);
        ::munmap(m, len);
        ::close(fd);
        return nullptr;
    }
    auto r = std::unique_ptr<region>(new region(static_cast<std::byte*>(m), len, fd));
    if (!r->t_.valid()) {
        error = path + ": its table is damaged";
        return nullptr;
    }
    return r;
}

write_cell* region::cell(std::uint64_t pos) const noexcept {
    return reinterpret_cast<write_cell*>(base_ + h_->cells_offset + (pos & (h_->cells - 1)) * std::size_t{h_->cell_bytes});
}

std::uint64_t region::enqueue(std::uint8_t op, std::string_view key, std::span<const std::byte> value,
                              std::chrono::nanoseconds patience) noexcept {
    if (key.empty() || key.size() > h_->key_max || value.size() > h_->value_max) return 0;
    // Vyukov's bounded queue: a position is claimed only once its cell is free, so a
    // producer that gives up (the queue full for `patience`: the engine stopped or wedged)
    // leaves no hole the engine would wait on.
    const auto deadline = std::chrono::steady_clock::now() + patience;
    std::uint64_t pos = h_->enqueue_pos.load(std::memory_order_relaxed);
    write_cell* c = nullptr;
    for (std::uint32_t spins = 0;; ++spins) {
        c = cell(pos);
        const std::uint64_t seq = c->sequence.load(std::memory_order_acquire);
        if (seq == pos) {
            if (h_->enqueue_pos.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) break;
            continue; // another producer took it; pos holds the current value
        }
        if (seq < pos) { // full: the engine has not drained the last lap
            if ((spins & 1023) == 1023) {
                if (std::chrono::steady_clock::now() > deadline) return 0;
                std::this_thread::yield();
            }
        }
        pos = h_->enqueue_pos.load(std::memory_order_relaxed);
    }
    c->op = op;
    c->key_len = static_cast<std::uint8_t>(key.size());
    c->value_len = static_cast<std::uint16_t>(value.size());
    auto* p = reinterpret_cast<std::byte*>(c) + sizeof(write_cell);
    std::memcpy(p, key.data(), key.size());
    if (!value.empty()) std::memcpy(p + h_->key_max, value.data(), value.size());
    c->sequence.store(pos + 1, std::memory_order_release);
    // Against the engine's arm_doorbell (store, fence, look at the queue): one of the two
    // sees the other's store, so a write is never left to an idle sleep's end.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (h_->engine_asleep.load(std::memory_order_relaxed) != 0 && h_->engine_asleep.exchange(0, std::memory_order_relaxed) != 0)
        ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&h_->engine_asleep), FUTEX_WAKE, 1, nullptr, nullptr, 0);
    return pos + 1;
}

bool region::arm_doorbell(bool ready_counts) noexcept {
    h_->engine_asleep.store(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!ready_counts) return true;
    const std::uint64_t head = h_->dequeue_pos.load(std::memory_order_relaxed);
    if (cell(head)->sequence.load(std::memory_order_acquire) == head + 1) {
        h_->engine_asleep.store(0, std::memory_order_relaxed);
        return false;
    }
    return true;
}

bool region::note_waiter() noexcept {
    const std::uint32_t engine = h_->engine_cpu.load(std::memory_order_relaxed);
    if (engine == 0) return false;
    const std::uint32_t cpu = cpu_word(::sched_getcpu()); // the vDSO's: no system call
    const bool shared = cpu == engine;
    // Only a waiter there writes (once): two threads on two CPUs do not undo each other, and
    // the engine finds out itself when nobody there sees its completions any more.
    if (shared && h_->waiter_cpu.load(std::memory_order_relaxed) != engine) h_->waiter_cpu.store(engine, std::memory_order_relaxed);
    return shared;
}

std::uint64_t region::seq_of(std::uint64_t ticket) const noexcept {
    if (ticket == 0) return ~0ull;
    const ticket_result& r = results_[(ticket - 1) & (h_->cells - 1)];
    const std::uint64_t t = r.ticket.load(std::memory_order_acquire);
    if (t == ticket) return r.seq.load(std::memory_order_relaxed);
    return t > ticket ? ~0ull : 0; // overwritten by a later lap: too old to know
}

void region::forfeit_above(std::uint64_t complete) noexcept {
    for (std::uint32_t i = 0; i < h_->cells; ++i) {
        const std::uint64_t s = results_[i].seq.load(std::memory_order_relaxed);
        if (s != ~0ull && s > complete) results_[i].seq.store(~0ull, std::memory_order_relaxed);
    }
    // Ordered for readers by the engine's next replicated_seq store (a release).
}

std::optional<client> client::open(const std::string& path, std::string& error) {
    auto r = region::attach(path, error);
    if (!r) return std::nullopt;
    return client(std::move(r), path);
}

bool client::replaced() const noexcept { return !r_->is_at(path_); }

namespace {

// The wait of wait() and wait_seq(): spins on `check` (done: the complete_seq() it saw; fail;
// or not yet), a yield every 256 turns, until `timeout`. A waiter on the engine's CPU says so
// (even one that finds its write done: it waited there) and what it saw complete.
enum class step { not_yet, done, fail };
template <class Check>
bool spin_wait(region& r, std::chrono::nanoseconds timeout, Check check) noexcept {
    bool shared = r.note_waiter();
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (std::uint32_t spins = 0;; ++spins) {
        std::uint64_t done = 0;
        switch (check(done)) {
        case step::done:
            if (shared) r.note_seen(done);
            return true;
        case step::fail:
            return false;
        case step::not_yet:
            break;
        }
        if ((spins & 255) == 255) {
            if (std::chrono::steady_clock::now() > deadline) return false;
            std::this_thread::yield();
            shared = r.note_waiter(); // the yield may have moved it
        }
    }
}

} // namespace

bool client::wait_seq(std::uint64_t seq, std::chrono::nanoseconds timeout) const noexcept {
    return spin_wait(*r_, timeout, [&](std::uint64_t& done) { return (done = complete_seq()) >= seq ? step::done : step::not_yet; });
}

bool client::reopen(std::string& error) {
    auto r = region::attach(path_, error);
    if (!r) return false;
    r_ = std::move(r);
    return true;
}

std::uint64_t client::put(std::string_view key, std::span<const std::byte> value) noexcept {
    return r_->enqueue(replica::op_put, key, value);
}

std::uint64_t client::erase(std::string_view key) noexcept { return r_->enqueue(replica::op_erase, key, {}); }

bool client::wait(std::uint64_t ticket, std::chrono::nanoseconds timeout) const noexcept {
    return spin_wait(*r_, timeout, [&](std::uint64_t& done) {
        const std::uint64_t seq = r_->seq_of(ticket);
        if (seq == ~0ull) return step::fail;
        // Read again after the completion: a ticket forfeited meanwhile (this node stopped
        // leading) reads ~0 now, since replicated_seq moves only after the forfeit.
        done = complete_seq();
        return seq != 0 && done >= seq && r_->seq_of(ticket) == seq ? step::done : step::not_yet;
    });
}

} // namespace heartwire::state
