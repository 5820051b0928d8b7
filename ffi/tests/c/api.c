/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * The C API's promises, one process: argument checking, the zero-copy and batch calls, timeouts,
 * stats, guards that outlive their handle, and one handle shared by threads.
 * Usage: api DIR (an empty scratch directory). Exits 0 only if every check held.
 */
#define _DEFAULT_SOURCE
#include "shmq.h"

#include "check.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- every required pointer is checked, and a rejected call does nothing ---- */
static void null_and_invalid_arguments(void) {
    shmq *q = (shmq *)&failures; /* not NULL: the calls must overwrite it */
    CHECK_RC(shmq_create(NULL, 4, 8, &q), SHMQ_INVALID_ARGUMENT);
    CHECK(q == NULL);
    CHECK_RC(shmq_create("", 4, 8, &q), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_create(path_of("n"), 4, 8, NULL), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_create(path_of("n"), 0, 8, &q), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_create(path_of("n"), 4, 0, &q), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_open(NULL, &q), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_open(path_of("n"), NULL), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_open_or_create(NULL, 4, 8, &q), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_open_or_create(path_of("n"), 4, 8, NULL), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_unlink(NULL), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_close(NULL), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_stats(NULL, NULL), SHMQ_INVALID_ARGUMENT);
    CHECK(shmq_capacity(NULL) == 0 && shmq_max_message_size(NULL) == 0);
    CHECK(shmq_is_closed(NULL) == 0 && shmq_message_deliveries(NULL) == 0);
    CHECK(shmq_message_id(NULL) == 0);
    CHECK(shmq_recover(NULL, NULL) == SHMQ_INVALID_ARGUMENT);
    shmq_detach(NULL);
    shmq_cancel(NULL);
    shmq_release(NULL);
    CHECK_RC(shmq_commit(NULL, 0), SHMQ_INVALID_ARGUMENT);

    CHECK_RC(shmq_create(path_of("n"), 4, 8, &q), SHMQ_OK);
    char buf[8];
    size_t n = 7;
    shmq_buf msgs[1] = {{"x", 1}};
    shmq_reservation *r = NULL;
    shmq_message *m = NULL;
    void *data = NULL;
    const void *cdata = NULL;
    CHECK_RC(shmq_try_send(q, NULL, 1), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_send(NULL, "x", 1, 0), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_try_recv(q, NULL, 1, &n), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_try_recv(q, buf, sizeof buf, NULL), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_recv(NULL, buf, sizeof buf, &n, 0), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_try_send_batch(q, NULL, 1, &n), SHMQ_INVALID_ARGUMENT);
    CHECK(n == 0);
    CHECK_RC(shmq_try_send_batch(q, msgs, 1, NULL), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_send_batch(NULL, msgs, 1, &n, 0), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_try_recv_batch(q, 4, NULL, NULL, &n), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_recv_batch(NULL, 4, NULL, NULL, &n, 0), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_try_reserve(q, NULL, &data, &n), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_try_reserve(q, &r, NULL, &n), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_reserve(q, &r, &data, NULL, 0), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_try_recv_in_place(q, NULL, &cdata, &n), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_recv_in_place(q, &m, NULL, &n, 0), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_stats(q, NULL), SHMQ_INVALID_ARGUMENT);
    struct shmq_stats s = stats_of(q);
    CHECK(s.sent == 0 && s.received == 0 && s.cancelled_sends == 0);
    shmq_detach(q);
    CHECK_RC(shmq_unlink(path_of("n")), SHMQ_OK);
    CHECK_RC(shmq_unlink(path_of("n")), SHMQ_NOT_FOUND);
}

/* ---- timeouts: < 0 forever, 0 is a try, > 0 is bounded ---- */
static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void timeouts(void) {
    shmq *q;
    char buf[8];
    size_t n;
    CHECK_RC(shmq_create(path_of("t"), 2, 8, &q), SHMQ_OK);
    CHECK_RC(shmq_recv(q, buf, sizeof buf, &n, 0), SHMQ_EMPTY);
    double start = now_s();
    CHECK_RC(shmq_recv(q, buf, sizeof buf, &n, 20000000), SHMQ_TIMEOUT);
    CHECK(now_s() - start >= 0.019);
    CHECK_RC(shmq_send(q, "a", 1, -1), SHMQ_OK);
    CHECK_RC(shmq_send(q, "b", 1, 0), SHMQ_OK);
    CHECK_RC(shmq_send(q, "c", 1, 0), SHMQ_FULL);
    CHECK_RC(shmq_send(q, "c", 1, 1000000), SHMQ_TIMEOUT);
    shmq_reservation *r;
    void *data;
    CHECK_RC(shmq_reserve(q, &r, &data, &n, 0), SHMQ_FULL);
    CHECK(r == NULL);
    CHECK_RC(shmq_reserve(q, &r, &data, &n, 1000000), SHMQ_TIMEOUT);
    CHECK_RC(shmq_recv(q, buf, sizeof buf, &n, -1), SHMQ_OK);
    CHECK(n == 1 && buf[0] == 'a');
    struct shmq_stats s = stats_of(q);
    CHECK(s.empty_waits >= 1); /* the 20 ms receive went to sleep */
    shmq_detach(q);
}

/* ---- receive-buffer sizing ---- */
static void buffer_too_small_consumes_nothing(void) {
    shmq *q;
    char buf[8];
    size_t n = 0;
    CHECK_RC(shmq_create(path_of("b"), 4, 8, &q), SHMQ_OK);
    CHECK_RC(shmq_try_send(q, "12345", 5), SHMQ_OK);
    CHECK_RC(shmq_try_recv(q, NULL, 0, &n), SHMQ_BUFFER_TOO_SMALL); /* asks the size */
    CHECK(n == 5);
    n = 0;
    CHECK_RC(shmq_recv(q, buf, 4, &n, -1), SHMQ_BUFFER_TOO_SMALL);
    CHECK(n == 5);
    CHECK(stats_of(q).received == 0);
    CHECK_RC(shmq_try_recv(q, buf, 5, &n), SHMQ_OK);
    CHECK(n == 5 && memcmp(buf, "12345", 5) == 0);
    CHECK_RC(shmq_try_send(q, NULL, 0), SHMQ_OK); /* an empty message */
    n = 99;
    CHECK_RC(shmq_try_recv(q, NULL, 0, &n), SHMQ_OK);
    CHECK(n == 0);
    shmq_detach(q);
}

/* ---- zero copy ---- */
static void zero_copy(void) {
    shmq *q;
    shmq_reservation *r;
    shmq_message *m;
    void *data;
    const void *in;
    size_t cap, len;
    CHECK_RC(shmq_create(path_of("z"), 4, 16, &q), SHMQ_OK);

    CHECK_RC(shmq_try_reserve(q, &r, &data, &cap), SHMQ_OK);
    CHECK(r != NULL && data != NULL && cap == 16);
    memcpy(data, "in place", 8);
    CHECK_RC(shmq_commit(r, 8), SHMQ_OK);

    CHECK_RC(shmq_reserve(q, &r, &data, &cap, -1), SHMQ_OK);
    shmq_cancel(r); /* receivers skip it */

    CHECK_RC(shmq_reserve(q, &r, &data, &cap, 0), SHMQ_OK);
    CHECK_RC(shmq_commit(r, 17), SHMQ_TOO_LARGE); /* consumed: the slot is given back */

    CHECK_RC(shmq_try_send(q, "after", 5), SHMQ_OK);
    CHECK(stats_of(q).cancelled_sends == 2);

    CHECK_RC(shmq_try_recv_in_place(q, &m, &in, &len), SHMQ_OK);
    CHECK(len == 8 && memcmp(in, "in place", 8) == 0);
    CHECK(shmq_message_deliveries(m) == 1);
    uint64_t first_id = shmq_message_id(m);
    shmq_release(m);
    CHECK_RC(shmq_recv_in_place(q, &m, &in, &len, 1000000), SHMQ_OK);
    CHECK(len == 5 && memcmp(in, "after", 5) == 0);
    CHECK(shmq_message_id(m) > first_id); /* ids are positions: later sends, larger ids */
    shmq_release(m);
    CHECK_RC(shmq_try_recv_in_place(q, &m, &in, &len), SHMQ_EMPTY);
    CHECK(m == NULL);
    CHECK_RC(shmq_recv_in_place(q, &m, &in, &len, 1000000), SHMQ_TIMEOUT);

    /* A message and a reservation outlive the handle that made them. */
    CHECK_RC(shmq_try_send(q, "kept", 4), SHMQ_OK);
    CHECK_RC(shmq_try_recv_in_place(q, &m, &in, &len), SHMQ_OK);
    CHECK_RC(shmq_try_reserve(q, &r, &data, &cap), SHMQ_OK);
    shmq_detach(q);
    CHECK(len == 4 && memcmp(in, "kept", 4) == 0);
    memcpy(data, "late", 4);
    CHECK_RC(shmq_commit(r, 4), SHMQ_OK);
    shmq_release(m);
    CHECK_RC(shmq_open(path_of("z"), &q), SHMQ_OK);
    char buf[16];
    CHECK_RC(shmq_try_recv(q, buf, sizeof buf, &len), SHMQ_OK);
    CHECK(len == 4 && memcmp(buf, "late", 4) == 0);
    shmq_detach(q);
}

/* ---- batches ---- */
struct collected {
    int count;
    char bytes[64];
};
static void collect(void *ctx, const void *data, size_t len) {
    struct collected *c = ctx;
    if (len == 1) c->bytes[c->count] = *(const char *)data;
    c->count++;
}

static void batches(void) {
    shmq *q;
    size_t sent = 99, got = 99;
    CHECK_RC(shmq_create(path_of("batch"), 4, 8, &q), SHMQ_OK);
    shmq_buf msgs[5] = {{"a", 1}, {"b", 1}, {"c", 1}, {"d", 1}, {"e", 1}};
    shmq_buf too_large[2] = {{"f", 1}, {"123456789", 9}};
    CHECK_RC(shmq_try_send_batch(q, msgs, 0, &sent), SHMQ_OK);
    CHECK(sent == 0);
    CHECK_RC(shmq_try_send_batch(q, too_large, 2, &sent), SHMQ_TOO_LARGE);
    CHECK(sent == 0 && stats_of(q).sent == 0);
    CHECK_RC(shmq_try_send_batch(q, msgs, 5, &sent), SHMQ_OK);
    CHECK(sent == 4); /* capacity 4: the longest prefix that fits */
    CHECK_RC(shmq_try_send_batch(q, msgs + 4, 1, &sent), SHMQ_FULL);
    CHECK_RC(shmq_send_batch(q, msgs + 4, 1, &sent, 1000000), SHMQ_TIMEOUT);
    CHECK(sent == 0);

    struct collected c = {0, {0}};
    CHECK_RC(shmq_try_recv_batch(q, 3, collect, &c, &got), SHMQ_OK);
    CHECK(got == 3 && c.count == 3 && memcmp(c.bytes, "abc", 3) == 0);
    CHECK_RC(shmq_send_batch(q, msgs + 4, 1, &sent, -1), SHMQ_OK);
    CHECK(sent == 1);
    CHECK_RC(shmq_send_batch(q, msgs, 3, &sent, 1000000000), SHMQ_OK);
    CHECK(sent == 2); /* waited for room for one, then took what fit */
    CHECK_RC(shmq_recv_batch(q, 64, collect, &c, &got, -1), SHMQ_OK);
    CHECK(got == 4 && c.count == 7 && memcmp(c.bytes, "abcdeab", 7) == 0);
    CHECK_RC(shmq_try_recv_batch(q, 64, collect, &c, &got), SHMQ_EMPTY);
    CHECK(got == 0);
    CHECK_RC(shmq_recv_batch(q, 64, collect, &c, &got, 1000000), SHMQ_TIMEOUT);
    CHECK_RC(shmq_try_recv_batch(q, 0, collect, &c, &got), SHMQ_OK);
    CHECK(got == 0);
    CHECK_RC(shmq_close(q), SHMQ_OK);
    CHECK_RC(shmq_close(q), SHMQ_OK); /* idempotent */
    CHECK(shmq_is_closed(q) == 1);
    CHECK_RC(shmq_try_send_batch(q, msgs, 1, &sent), SHMQ_CLOSED);
    CHECK_RC(shmq_recv_batch(q, 64, collect, &c, &got, -1), SHMQ_CLOSED);
    shmq_detach(q);
}

/* ---- stats: every field lands where the header says ---- */
static void stats_layout(void) {
    shmq *q, *other;
    char buf[64];
    size_t n;
    CHECK_RC(shmq_create(path_of("s"), 8, 64, &q), SHMQ_OK);
    CHECK_RC(shmq_open(path_of("s"), &other), SHMQ_OK);
    CHECK(shmq_capacity(q) == 8 && shmq_max_message_size(other) == 64);
    for (int i = 0; i < 3; i++) CHECK_RC(shmq_try_send(q, "m", 1), SHMQ_OK);
    CHECK_RC(shmq_try_recv(other, buf, sizeof buf, &n), SHMQ_OK);
    shmq_reservation *r;
    void *data;
    CHECK_RC(shmq_try_reserve(q, &r, &data, &n), SHMQ_OK);
    shmq_cancel(r);
    CHECK_RC(shmq_close(other), SHMQ_OK);
    struct shmq_stats s = stats_of(q);
    CHECK(s.capacity == 8);
    CHECK(s.max_message_size == 64);
    CHECK(s.file_len >= 8 * 64 && s.file_len < (1u << 20));
    CHECK(s.created_unix_ns > 1600000000ull * 1000000000ull &&
          s.created_unix_ns < 4000000000ull * 1000000000ull);
    CHECK(s.len == 3);
    CHECK(s.sent == 4);
    CHECK(s.received == 1);
    CHECK(s.cancelled_sends == 1);
    CHECK(s.full_waits == 0 && s.empty_waits == 0);
    CHECK(s.send_sleepers == 0 && s.recv_sleepers == 0);
    CHECK(s.participants == 2);
    CHECK(s.live_participants == 2);
    CHECK(s.closed == 1);
    CHECK(s.reserved == 0);
    CHECK(s.abandoned_sends == 0 && s.abandoned_receives == 0);
    CHECK(s.redelivered == 0 && s.dead_lettered == 0);
    CHECK(s.on_consumer_death == SHMQ_ON_CONSUMER_DEATH_REDELIVER && s.max_deliveries == 0);
    CHECK(s.expired == 0 && s.dead_letter_failures == 0 && s.in_flight == 0);
    CHECK(s.oldest_hold_ns == 0 && s.visibility_timeout_ns == 0);
    shmq_detach(other);
    CHECK(stats_of(q).participants == 1);
    shmq_detach(q);
}

/* ---- the layouts the library writes (the same numbers are asserted in ffi/src/handle.rs) ---- */
_Static_assert(offsetof(struct shmq_stats, closed) == 88, "stats layout");
_Static_assert(offsetof(struct shmq_stats, reserved) == 92, "stats layout");
_Static_assert(offsetof(struct shmq_stats, abandoned_sends) == 96, "stats layout");
_Static_assert(offsetof(struct shmq_stats, dead_lettered) == 120, "stats layout");
_Static_assert(offsetof(struct shmq_stats, on_consumer_death) == 128, "stats layout");
_Static_assert(offsetof(struct shmq_stats, max_deliveries) == 132, "stats layout");
_Static_assert(offsetof(struct shmq_stats, expired) == 136, "stats layout");
_Static_assert(offsetof(struct shmq_stats, dead_letter_failures) == 144, "stats layout");
_Static_assert(offsetof(struct shmq_stats, in_flight) == 152, "stats layout");
_Static_assert(offsetof(struct shmq_stats, oldest_hold_ns) == 160, "stats layout");
_Static_assert(offsetof(struct shmq_stats, visibility_timeout_ns) == 168, "stats layout");
_Static_assert(sizeof(struct shmq_stats) == 176, "stats layout");
_Static_assert(offsetof(struct shmq_options, max_deliveries) == 16, "options layout");
_Static_assert(offsetof(struct shmq_options, allow_other_access) == 20, "options layout");
_Static_assert(offsetof(struct shmq_options, visibility_timeout_ns) == 24, "options layout");
_Static_assert(offsetof(struct shmq_options, dead_letter_queue) == 32, "options layout");
_Static_assert(sizeof(struct shmq_options) == 40, "options layout");

static mode_t umask_now(void) {
    mode_t mask = umask(0);
    umask(mask);
    return mask;
}

/* ---- creation options, the receive with metadata, the crash-recovery fields of stats ---- */
static void options_and_metadata(void) {
    shmq *q = (shmq *)&failures;
    struct shmq_options opts;
    memset(&opts, 0, sizeof opts);
    opts.capacity = 4;
    opts.max_message_size = 16;
    CHECK_RC(shmq_create_ex(NULL, &opts, &q), SHMQ_INVALID_ARGUMENT);
    CHECK(q == NULL);
    CHECK_RC(shmq_create_ex(path_of("o"), NULL, &q), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_create_ex(path_of("o"), &opts, NULL), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_open_or_create_ex(path_of("o"), NULL, &q), SHMQ_INVALID_ARGUMENT);
    opts.on_consumer_death = 2; /* no such policy */
    CHECK_RC(shmq_create_ex(path_of("o"), &opts, &q), SHMQ_INVALID_ARGUMENT);
    opts.on_consumer_death = SHMQ_ON_CONSUMER_DEATH_DROP;
    opts.max_deliveries = 3; /* a limit means nothing when messages are dropped */
    CHECK_RC(shmq_create_ex(path_of("o"), &opts, &q), SHMQ_INVALID_ARGUMENT);
    opts.max_deliveries = 0;
    opts.mode = 010000; /* not a permission mode */
    CHECK_RC(shmq_create_ex(path_of("o"), &opts, &q), SHMQ_INVALID_ARGUMENT);
    opts.mode = 04600; /* setuid: permission bits only */
    CHECK_RC(shmq_create_ex(path_of("o"), &opts, &q), SHMQ_INVALID_ARGUMENT);
    opts.mode = 0400; /* the owner must be able to read and write */
    CHECK_RC(shmq_create_ex(path_of("o"), &opts, &q), SHMQ_INVALID_ARGUMENT);
    opts.mode = 0606; /* "other" access needs allow_other_access */
    CHECK_RC(shmq_create_ex(path_of("o"), &opts, &q), SHMQ_INVALID_ARGUMENT);
    opts.mode = 0;
    opts.visibility_timeout_ns = 999999; /* under 1 ms */
    CHECK_RC(shmq_create_ex(path_of("o"), &opts, &q), SHMQ_INVALID_ARGUMENT);
    opts.visibility_timeout_ns = 12ull * 3600 * 1000000000 + 1; /* over 12 h */
    CHECK_RC(shmq_create_ex(path_of("o"), &opts, &q), SHMQ_INVALID_ARGUMENT);
    opts.visibility_timeout_ns = 0;
    opts.dead_letter_queue = ""; /* empty path */
    CHECK_RC(shmq_create_ex(path_of("o"), &opts, &q), SHMQ_INVALID_ARGUMENT);
    {
        static char long_path[1100];
        memset(long_path, 'x', sizeof long_path - 1);
        long_path[0] = '/';
        opts.dead_letter_queue = long_path; /* longer than 1023 bytes */
        CHECK_RC(shmq_create_ex(path_of("o"), &opts, &q), SHMQ_INVALID_ARGUMENT);
    }
    opts.dead_letter_queue = NULL;
    opts.mode = 0606;
    CHECK(access(path_of("o"), F_OK) != 0); /* nothing left behind */
    opts.allow_other_access = 1;
    CHECK_RC(shmq_create_ex(path_of("shared"), &opts, &q), SHMQ_OK);
    shmq_detach(q);
    opts.allow_other_access = 0;
    opts.mode = 0;
    opts.capacity = 0;
    CHECK_RC(shmq_create_ex(path_of("o"), &opts, &q), SHMQ_INVALID_ARGUMENT);
    CHECK(q == NULL);
    opts.capacity = 4;

    /* A visibility timeout and a dead-letter queue are accepted (and recorded: see stats). */
    opts.visibility_timeout_ns = 30ull * 1000000000;
    opts.dead_letter_queue = path_of("vt-dlq");
    CHECK_RC(shmq_create_ex(path_of("vt"), &opts, &q), SHMQ_OK);
    shmq_detach(q);
    opts.visibility_timeout_ns = 0;
    opts.dead_letter_queue = NULL;

    /* A dropping queue; the zero mode is the default 0600; stats report the policy. */
    CHECK_RC(shmq_create_ex(path_of("o"), &opts, &q), SHMQ_OK);
    CHECK_RC(shmq_create_ex(path_of("o"), &opts, &q), SHMQ_ALREADY_EXISTS);
    CHECK(q == NULL);
    CHECK_RC(shmq_open(path_of("o"), &q), SHMQ_OK);
    struct shmq_stats s = stats_of(q);
    CHECK(s.capacity == 4 && s.max_message_size == 16);
    CHECK(s.on_consumer_death == SHMQ_ON_CONSUMER_DEATH_DROP && s.max_deliveries == 0);
    CHECK(s.abandoned_sends == 0 && s.abandoned_receives == 0);
    CHECK(s.redelivered == 0 && s.dead_lettered == 0);
    shmq_detach(q);
    struct stat st;
    CHECK(stat(path_of("o"), &st) == 0 && (st.st_mode & 07777) == 0600);

    /* open_or_create_ex opens an existing queue with its own options... */
    struct shmq_options other;
    memset(&other, 0, sizeof other);
    other.capacity = 8;
    other.max_message_size = 32;
    other.max_deliveries = 5;
    CHECK_RC(shmq_open_or_create_ex(path_of("o"), &other, &q), SHMQ_OK);
    s = stats_of(q);
    CHECK(s.capacity == 4 && s.on_consumer_death == SHMQ_ON_CONSUMER_DEATH_DROP);
    shmq_detach(q);
    /* ...and creates a missing one with the given ones (mode included). */
    other.mode = 0640;
    CHECK_RC(shmq_open_or_create_ex(path_of("o2"), &other, &q), SHMQ_OK);
    s = stats_of(q);
    CHECK(s.capacity == 8 && s.max_message_size == 32);
    CHECK(s.on_consumer_death == SHMQ_ON_CONSUMER_DEATH_REDELIVER && s.max_deliveries == 5);
    CHECK(stat(path_of("o2"), &st) == 0 && (st.st_mode & 0777) == (0640 & ~umask_now()));
    shmq_detach(q);
    /* A mode widened for "other" after creation, and a symbolic link, are refused on open. */
    CHECK(chmod(path_of("o2"), 0644) == 0);
    CHECK_RC(shmq_open(path_of("o2"), &q), SHMQ_PERMISSION_DENIED);
    CHECK(q == NULL);
    CHECK(chmod(path_of("o2"), 0640) == 0);
    CHECK(symlink(path_of("o2"), path_of("link")) == 0);
    CHECK_RC(shmq_open(path_of("link"), &q), SHMQ_PERMISSION_DENIED);
    CHECK_RC(shmq_open(path_of("o2"), &q), SHMQ_OK);

    /* shmq_recv_meta: the delivery count, NULL allowed, sizing as shmq_recv, 0 is a try. */
    char buf[32];
    size_t n = 0;
    uint32_t deliveries = 99;
    CHECK_RC(shmq_recv_meta(q, buf, sizeof buf, &n, &deliveries, 0), SHMQ_EMPTY);
    CHECK(deliveries == 99);
    CHECK_RC(shmq_recv_meta(q, buf, sizeof buf, &n, &deliveries, 1000000), SHMQ_TIMEOUT);
    CHECK_RC(shmq_recv_meta(NULL, buf, sizeof buf, &n, &deliveries, 0), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_recv_meta(q, buf, sizeof buf, NULL, &deliveries, 0), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_recv_meta(q, NULL, 1, &n, &deliveries, 0), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_try_send(q, "first", 5), SHMQ_OK);
    CHECK_RC(shmq_try_send(q, "second", 6), SHMQ_OK);
    CHECK_RC(shmq_recv_meta(q, buf, 2, &n, &deliveries, -1), SHMQ_BUFFER_TOO_SMALL);
    CHECK(n == 5 && deliveries == 99);
    CHECK_RC(shmq_recv_meta(q, buf, sizeof buf, &n, &deliveries, 0), SHMQ_OK);
    CHECK(n == 5 && memcmp(buf, "first", 5) == 0 && deliveries == 1);
    CHECK_RC(shmq_recv_meta(q, buf, sizeof buf, &n, NULL, 1000000000), SHMQ_OK);
    CHECK(n == 6 && memcmp(buf, "second", 6) == 0);
    CHECK_RC(shmq_close(q), SHMQ_OK);
    CHECK_RC(shmq_recv_meta(q, buf, sizeof buf, &n, &deliveries, -1), SHMQ_CLOSED);
    shmq_detach(q);
}

/* ---- one handle, many threads ---- */
#define PRODUCERS 2
#define CONSUMERS 2
#define PER_PRODUCER 20000
static shmq *shared;
static unsigned char seen[PRODUCERS][PER_PRODUCER];

static void *produce(void *arg) {
    uint32_t id = (uint32_t)(uintptr_t)arg;
    for (uint32_t i = 0; i < PER_PRODUCER; i++) {
        uint32_t msg[2] = {id, i};
        if (shmq_send(shared, msg, sizeof msg, 5000000000LL) != SHMQ_OK) return (void *)1;
    }
    return NULL;
}

static void *consume(void *arg) {
    (void)arg;
    int64_t last[PRODUCERS] = {-1, -1};
    for (;;) {
        uint32_t msg[2];
        size_t n;
        int rc = shmq_recv(shared, msg, sizeof msg, &n, 5000000000LL);
        if (rc == SHMQ_CLOSED) return NULL;
        if (rc != SHMQ_OK || n != sizeof msg || msg[0] >= PRODUCERS || msg[1] >= PER_PRODUCER)
            return (void *)1;
        if ((int64_t)msg[1] <= last[msg[0]]) return (void *)2; /* per-producer order */
        last[msg[0]] = msg[1];
        seen[msg[0]][msg[1]]++; /* each (id, i) is written by one consumer only once */
    }
}

static void threads_share_one_handle(void) {
    CHECK_RC(shmq_create(path_of("mt"), 64, 8, &shared), SHMQ_OK);
    pthread_t p[PRODUCERS], c[CONSUMERS];
    for (uintptr_t i = 0; i < CONSUMERS; i++) pthread_create(&c[i], NULL, consume, NULL);
    for (uintptr_t i = 0; i < PRODUCERS; i++) pthread_create(&p[i], NULL, produce, (void *)i);
    for (int i = 0; i < PRODUCERS; i++) {
        void *res;
        pthread_join(p[i], &res);
        CHECK(res == NULL);
    }
    CHECK_RC(shmq_close(shared), SHMQ_OK);
    for (int i = 0; i < CONSUMERS; i++) {
        void *res;
        pthread_join(c[i], &res);
        CHECK(res == NULL);
    }
    int once = 1;
    for (int id = 0; id < PRODUCERS; id++)
        for (int i = 0; i < PER_PRODUCER; i++) once &= seen[id][i] == 1;
    CHECK(once);
    shmq_detach(shared);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: api DIR\n");
        return 2;
    }
    snprintf(dir, sizeof dir, "%s", argv[1]);
    null_and_invalid_arguments();
    timeouts();
    buffer_too_small_consumes_nothing();
    zero_copy();
    batches();
    stats_layout();
    options_and_metadata();
    threads_share_one_handle();
    printf("api: %d failures\n", failures);
    return failures == 0 ? 0 : 1;
}
