/* The replicated state store's C ABI (issue 10 item 3), for applications not written in
 * C++: the same shared region as heartwire/state.hpp, the same semantics.
 *
 *   char err[256];
 *   hw_state* s = hw_state_open("/dev/shm/heartwire-node1-app", err, sizeof err);
 *   uint64_t t = hw_state_put(s, "session:42", 10, value, value_len);
 *   if (t == 0 || !hw_state_wait(s, t, 1000000)) { ... }   // replicated within 1 ms?
 *   long n = hw_state_get(s, "session:42", 10, buf, sizeof buf);
 *   if (hw_state_replaced(s)) hw_state_reopen(s, err, sizeof err);  // heartwired restarted
 *   hw_state_close(s);
 */
#ifndef HEARTWIRE_STATE_H
#define HEARTWIRE_STATE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hw_state hw_state;

/* NULL on failure, with the reason in err (NUL-terminated, truncated to err_len). */
hw_state* hw_state_open(const char* path, char* err, size_t err_len);
void hw_state_close(hw_state* s);
/* A ticket (never 0), or 0 when refused at once (too large, the queue full). */
uint64_t hw_state_put(hw_state* s, const char* key, size_t key_len, const void* value, size_t value_len);
uint64_t hw_state_erase(hw_state* s, const char* key, size_t key_len);
/* 1 once the write is complete (replicated in synchronous mode, applied in asynchronous
 * mode), 0 on timeout or a refused write. */
int hw_state_wait(const hw_state* s, uint64_t ticket, uint64_t timeout_ns);
/* The value's length (up to cap bytes copied), -1 when there is no such key. */
long hw_state_get(const hw_state* s, const char* key, size_t key_len, void* out, size_t cap);
/* 1 while the replica is in sync with the monitor. */
int hw_state_in_sync(const hw_state* s);
/* 1 when the file at the path opened is no longer the one mapped (heartwired restarted and
 * made a new one, or stopped): the copy read no longer changes and writes time out. One
 * stat(2): check it every few tens of milliseconds or after a timed-out wait, not per call. */
int hw_state_replaced(const hw_state* s);
/* Maps the file now at the path in place of the old one: 1, or 0 (the old mapping kept, the
 * reason in err) when there is none yet. Tickets of the old mapping mean nothing after it. */
int hw_state_reopen(hw_state* s, char* err, size_t err_len);

#ifdef __cplusplus
}
#endif

#endif
