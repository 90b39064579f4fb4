// heartwire/state.h over heartwire::state::client.
#include "heartwire/state.h"

#include <cstring>
#include <exception>
#include <new>
#include <string>

#include "heartwire/state.hpp"

struct hw_state {
    heartwire::state::client c;
};

namespace {

std::string_view key_view(const char* key, size_t len) { return {key, len}; }

void copy_error(const std::string& e, char* err, size_t err_len) {
    if (err && err_len) {
        std::strncpy(err, e.c_str(), err_len - 1);
        err[err_len - 1] = '\0';
    }
}

} // namespace

extern "C" {

hw_state* hw_state_open(const char* path, char* err, size_t err_len) {
    std::string e;
    auto c = path ? heartwire::state::client::open(path, e) : std::nullopt;
    if (!c) {
        if (!path) e = "no path";
        copy_error(e, err, err_len);
        return nullptr;
    }
    return new (std::nothrow) hw_state{std::move(*c)};
}

void hw_state_close(hw_state* s) { delete s; }

uint64_t hw_state_put(hw_state* s, const char* key, size_t key_len, const void* value, size_t value_len) {
    if (!s || !key || (!value && value_len)) return 0;
    return s->c.put(key_view(key, key_len), {static_cast<const std::byte*>(value), value_len});
}

uint64_t hw_state_erase(hw_state* s, const char* key, size_t key_len) {
    return s && key ? s->c.erase(key_view(key, key_len)) : 0;
}

int hw_state_wait(const hw_state* s, uint64_t ticket, uint64_t timeout_ns) {
    return s && s->c.wait(ticket, std::chrono::nanoseconds{timeout_ns}) ? 1 : 0;
}

long hw_state_get(const hw_state* s, const char* key, size_t key_len, void* out, size_t cap) {
    if (!s || !key || (!out && cap)) return -1;
    return s->c.get(key_view(key, key_len), {static_cast<std::byte*>(out), cap});
}

int hw_state_in_sync(const hw_state* s) { return s && s->c.in_sync() ? 1 : 0; }

int hw_state_replaced(const hw_state* s) { return s && s->c.replaced() ? 1 : 0; }

int hw_state_reopen(hw_state* s, char* err, size_t err_len) {
    std::string e = "no handle";
    try { // no exception crosses into C
        if (s && s->c.reopen(e)) return 1;
    } catch (const std::exception& x) {
        e = x.what();
    }
    copy_error(e, err, err_len);
    return 0;
}

} // extern "C"
