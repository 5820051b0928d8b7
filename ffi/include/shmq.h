/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * shmq.h: the C API of shmq, a lock-free, bounded, multi-producer multi-consumer message queue
 * in a memory-mapped file, shared by the processes of one host. Link with -lshmq
 * (pkg-config --cflags --libs shmq); C11 or C++ (any standard).
 *
 *     shmq *q;
 *     int rc = shmq_open_or_create("/dev/shm/jobs", 1024, 256, &q);
 *     if (rc != SHMQ_OK) { fprintf(stderr, "%s\n", shmq_strerror(rc)); return 1; }
 *     shmq_send(q, "resize 42", 9, -1);                  // wait for room as long as needed
 *     char buf[256]; size_t n;
 *     rc = shmq_recv(q, buf, sizeof buf, &n, 1000000000); // wait up to 1 s
 *     shmq_detach(q);
 *
 * THE CONTRACT
 * - Status codes. Every call that can fail returns an int: SHMQ_OK (0) or one of the SHMQ_*
 *   codes below, never anything else. A call that fails did nothing: nothing sent, nothing
 *   consumed, no output written except where its documentation says so.
 * - Arguments. Every pointer argument is required unless its documentation says NULL is fine; a
 *   NULL required pointer, an empty path, or a size out of range returns SHMQ_INVALID_ARGUMENT
 *   before anything happens. (Dangling pointers cannot be detected; they are undefined
 *   behaviour, as everywhere in C.)
 * - Timeouts. `timeout_ns` < 0 waits as long as it takes; 0 does not wait (the call behaves
 *   exactly as its shmq_try_* form and returns SHMQ_FULL or SHMQ_EMPTY); > 0 waits at most that
 *   many nanoseconds and then returns SHMQ_TIMEOUT. Every wait ends early when the queue is
 *   closed.
 * - Non-blocking. The shmq_try_* calls never block and make no system call, except to wake a
 *   peer that sleeps.
 * - No exception or panic crosses this boundary: a bug inside the library is caught and returned
 *   as SHMQ_INTERNAL.
 * - Threads. A `shmq *` handle is thread-safe: any number of threads may call any function on
 *   it at the same time, except shmq_detach, which must be the last call on that handle. A
 *   reservation or message belongs to one thread at a time (it may be handed to another thread;
 *   two threads must not use the same one concurrently).
 * - Processes and fork. Open one handle per process, with shmq_open (or create): the queue file
 *   is what processes share. A child created by fork() must not use a handle, reservation or
 *   message inherited from its parent -- not even to detach, commit or release it (that would
 *   act on the parent's registration) -- and must call shmq_open itself; it may simply forget the
 *   inherited ones. The parent's handles are unaffected by the fork, except that the child's
 *   copy of the descriptor keeps the parent's registration looking alive until the child exits
 *   or calls exec() (the descriptor is close-on-exec; nothing else survives exec).
 * - Ownership. A reservation (shmq_reservation *) and an in-place message (shmq_message *) keep
 *   their queue mapped: detaching the handle first is allowed, and the mapping goes when the last
 *   of them is committed, cancelled or released. Each must be finished exactly once.
 * - Messages are claimed exactly once, in the order their sends claimed slots: the messages of
 *   one producer keep their order for every consumer.
 * - Processes that die. A process killed at any instant (SIGKILL included) never wedges the
 *   queue: the others notice through a kernel lock that dies with it (never by a timeout) while
 *   they wait on the queue, and repair what it left. A slot it had reserved and not committed is
 *   skipped (counted in abandoned_sends). A message it had received in place (or was receiving)
 *   and not released is, by default, given back to the queue and delivered again, with its
 *   delivery count raised (shmq_message_deliveries, shmq_recv_meta; counted in redelivered):
 *   at-least-once delivery. A queue created with SHMQ_ON_CONSUMER_DEATH_DROP drops it instead
 *   (abandoned_receives; at-most-once), and one created with max_deliveries N drops a message
 *   whose consumer dies on its Nth delivery (dead_lettered). See struct shmq_options.
 * - Security. Keep queue files mode 0600 (the default) or share them with a group (0660): a
 *   process that can write the file can make its peers fail (SHMQ_CORRUPT) or, by truncating
 *   it, crash them. Modes with bits for "other" need opts.allow_other_access. Symbolic links are
 *   refused (SHMQ_PERMISSION_DENIED), and shmq_open_or_create refuses an existing file owned by
 *   another user (SHMQ_PERMISSION_DENIED).
 */
#ifndef SHMQ_H
#define SHMQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Types
 * ------------------------------------------------------------------------------------------- */

/** An open queue: opaque, thread-safe. From shmq_create / shmq_open / shmq_open_or_create;
 *  released with shmq_detach. */
typedef struct shmq shmq;

/** A slot reserved by shmq_reserve / shmq_try_reserve and written in place; finished by exactly
 *  one shmq_commit or shmq_cancel. */
typedef struct shmq_reservation shmq_reservation;

/** A message received in place by shmq_recv_in_place / shmq_try_recv_in_place; its bytes stay
 *  valid (and its slot taken) until shmq_release. */
typedef struct shmq_message shmq_message;

/** One message of a batch send: `len` bytes at `data` (`data` may be NULL when `len` is 0). */
typedef struct shmq_buf {
    const void *data;
    size_t len;
} shmq_buf;

/** Called by shmq_recv_batch for every message, in order, with the message in place: `data` is
 *  valid only during the call. Must return normally (no longjmp, no C++ exception). */
typedef void (*shmq_recv_fn)(void *ctx, const void *data, size_t len);

/** What a queue does with a message whose consumer dies after receiving it and before
 *  releasing it (fixed when the queue is created; see struct shmq_options). */
enum shmq_on_consumer_death {
    /** Give it back to the queue; the next receiver sees its delivery count one higher
     *  (at-least-once delivery; the default). */
    SHMQ_ON_CONSUMER_DEATH_REDELIVER = 0,
    /** Drop it and count it in abandoned_receives (at-most-once delivery). */
    SHMQ_ON_CONSUMER_DEATH_DROP = 1
};

/** How to create a queue, for shmq_create_ex and shmq_open_or_create_ex. Zero-initialize it and
 *  set capacity and max_message_size; the zero value of every other field is the default:
 *
 *      struct shmq_options opts = {0};
 *      opts.capacity = 1024;
 *      opts.max_message_size = 256;
 *      opts.max_deliveries = 5;      // a message whose consumer dies 5 times is dropped
 *      rc = shmq_create_ex("/dev/shm/jobs", &opts, &q);
 */
struct shmq_options {
    uint32_t capacity;          /**< number of slots: 1 to 2^24 (any number) */
    uint32_t max_message_size;  /**< largest message in bytes, 1 to 16 MiB */
    uint32_t mode;              /**< permission bits of a new file; 0 means 0600 */
    uint32_t on_consumer_death; /**< an enum shmq_on_consumer_death value; 0 is REDELIVER */
    uint32_t max_deliveries;    /**< with REDELIVER: a message whose consumer dies on this
                                     delivery is dropped (dead_lettered) instead of given back,
                                     so a poison message cannot kill consumers forever;
                                     0 = unlimited. Must be 0 with DROP. */
    uint32_t allow_other_access; /**< nonzero: permit a mode with bits for "other" users
                                     (recorded in the queue). Without it such a mode gives
                                     SHMQ_INVALID_ARGUMENT, and opening a file whose mode was
                                     widened later SHMQ_PERMISSION_DENIED: anyone who can read a
                                     queue can keep handles from registering, anyone who can
                                     write it can corrupt it. Share with a group (0660). */
    /* Appended with the visibility timeout; the fields above keep their offsets. */
    uint64_t visibility_timeout_ns; /**< how long a message received in place may be held
                                     before it is handed out again with its delivery count
                                     raised (SQS's visibility timeout): 1 ms to 12 h in ns;
                                     0 = none (held until released or its holder dies). A
                                     copying receive deletes the message, so it never applies. */
    const char *dead_letter_queue; /**< NULL = none; else the path (at most 1023 bytes, made
                                     absolute) of a queue that a message delivered
                                     max_deliveries times is sent to instead of being dropped.
                                     If it is missing or full when that happens, the message
                                     stays here and dead_letter_failures counts it. */
};

/** A snapshot of a queue's configuration and counters, filled by shmq_stats(). The tag and the
 *  function share their name, like `struct stat` and stat(): write `struct shmq_stats`. Fields
 *  are only ever appended (the crash-recovery ones come after `reserved`). */
struct shmq_stats {
    uint32_t capacity;          /**< number of slots */
    uint32_t max_message_size;  /**< largest message, in bytes */
    uint64_t file_len;          /**< bytes of the queue file */
    uint64_t created_unix_ns;   /**< creation time, ns since the Unix epoch */
    uint64_t len;               /**< messages queued, approximately (exact when idle) */
    uint64_t sent;              /**< slots claimed by senders since creation */
    uint64_t received;          /**< slots claimed by receivers since creation */
    uint64_t cancelled_sends;   /**< reservations cancelled instead of committed */
    uint64_t full_waits;        /**< times a sender found the queue full and slept */
    uint64_t empty_waits;       /**< times a receiver found the queue empty and slept */
    uint32_t send_sleepers;     /**< senders asleep now */
    uint32_t recv_sleepers;     /**< receivers asleep now */
    uint32_t participants;      /**< handles open on the queue, or held by a process that died */
    uint32_t live_participants; /**< of those, handles whose process is alive */
    uint32_t closed;            /**< 1 if the queue is closed, else 0 */
    uint32_t reserved;          /**< always 0 */
    uint64_t abandoned_sends;   /**< reservations whose process died before commit or cancel
                                     (skipped by receivers) */
    uint64_t abandoned_receives;/**< messages dropped because their consumer died
                                     (SHMQ_ON_CONSUMER_DEATH_DROP) */
    uint64_t redelivered;       /**< messages given back to the queue because their consumer
                                     died */
    uint64_t dead_lettered;     /**< messages that reached max_deliveries (their consumer died
                                     on that delivery) and left the queue: sent to its
                                     dead-letter queue, or dropped if it has none */
    uint32_t on_consumer_death; /**< the queue's enum shmq_on_consumer_death */
    uint32_t max_deliveries;    /**< the queue's delivery limit; 0 = unlimited */
    /* Appended with the visibility timeout and the dead-letter queue. */
    uint64_t expired;           /**< messages held in place past the visibility timeout and
                                     handed out again */
    uint64_t dead_letter_failures; /**< messages that reached max_deliveries but could not be
                                     sent to the dead-letter queue (missing, full, not a queue,
                                     slots too small): kept here and delivered again */
    uint64_t in_flight;         /**< messages received and not yet released (in place, or a
                                     receive in progress) */
    uint64_t oldest_hold_ns;    /**< age of the oldest hold, per handle (0: none) */
    uint64_t visibility_timeout_ns; /**< the queue's visibility timeout; 0 = none */
};

/* ---------------------------------------------------------------------------------------------
 * Status codes: all distinct, SHMQ_OK == 0. Values never change meaning.
 * ------------------------------------------------------------------------------------------- */

enum shmq_status {
    SHMQ_OK = 0,                /**< success */
    SHMQ_FULL = 1,              /**< the queue holds `capacity` messages; nothing sent */
    SHMQ_EMPTY = 2,             /**< no message ready; nothing received */
    SHMQ_TIMEOUT = 3,           /**< the timeout passed first; nothing sent or received */
    SHMQ_CLOSED = 4,            /**< closed: no sends; receivers get this once it is drained */
    SHMQ_TOO_LARGE = 5,         /**< message longer than the maximum message size */
    SHMQ_BUFFER_TOO_SMALL = 6,  /**< buffer shorter than the next message; *msg_len = needed,
                                     nothing consumed */
    SHMQ_INVALID_ARGUMENT = 7,  /**< NULL required pointer, empty path, or value out of range */
    SHMQ_NOT_FOUND = 8,         /**< no queue file at this path */
    SHMQ_ALREADY_EXISTS = 9,    /**< a file already exists at this path */
    SHMQ_PERMISSION_DENIED = 10,/**< the operating system refused access to the file */
    SHMQ_CORRUPT = 11,          /**< not a queue file, or the shared memory holds what no honest
                                     shmq process writes */
    SHMQ_INCOMPATIBLE = 12,     /**< a queue file of another layout version or platform */
    SHMQ_IO = 13,               /**< any other operating-system error */
    SHMQ_INTERNAL = 14,         /**< a bug in the library, caught at the boundary */
    SHMQ_EXPIRED = 15,          /**< the message's visibility timeout passed and another consumer
                                     took it (shmq_ack, shmq_extend): its work may be done twice */
    SHMQ_TOO_MANY_HANDLES = 16  /**< every participant entry (512) is held by an open handle: close
                                     one and retry; the queue is not corrupt */
};

/** A static, NUL-terminated description of `status` that starts with its name
 *  ("SHMQ_FULL: the queue is full"). Never NULL: an unknown value gives "SHMQ_UNKNOWN: ...". */
const char *shmq_strerror(int status);

/* ---------------------------------------------------------------------------------------------
 * Opening and closing
 * ------------------------------------------------------------------------------------------- */

/** Creates a queue file at `path` (mode 0600; usually under /dev/shm) with `capacity` slots (a
 *  1 to 2^24) of up to `max_message_size` bytes (1 to 16 MiB) each, and opens it
 *  into `*out`. The file appears complete or not at all, with every byte allocated: a full
 *  filesystem gives SHMQ_IO (ENOSPC) and leaves nothing behind, never a SIGBUS later.
 *  SHMQ_ALREADY_EXISTS if `path` exists; SHMQ_INVALID_ARGUMENT for out-of-range sizes. On
 *  failure `*out` is set to NULL. */
int shmq_create(const char *path, uint32_t capacity, uint32_t max_message_size, shmq **out);

/** As shmq_create, with every creation option in `*opts` (see struct shmq_options): also the
 *  permission bits and what happens to the messages of consumers that die. SHMQ_INVALID_ARGUMENT
 *  if `opts` is NULL, a size is out of range, the mode has bits outside 0777, lacks owner read and
 *  write (0600), or has bits for "other" without `allow_other_access`,
 *  `on_consumer_death` is not an enum shmq_on_consumer_death value, or `max_deliveries` is not 0
 *  with SHMQ_ON_CONSUMER_DEATH_DROP. On failure `*out` is set to NULL. */
int shmq_create_ex(const char *path, const struct shmq_options *opts, shmq **out);

/** Opens the existing queue file at `path` into `*out`, validating its header. SHMQ_NOT_FOUND,
 *  SHMQ_PERMISSION_DENIED (also for a symbolic link, and for a mode with bits for "other" on a
 *  queue not created with allow_other_access), SHMQ_CORRUPT (not a queue file),
 *  SHMQ_INCOMPATIBLE (another version or platform), SHMQ_TOO_MANY_HANDLES (512 handles are
 *  open on the queue already), SHMQ_IO. On failure `*out` is set to NULL. */
int shmq_open(const char *path, shmq **out);

/** Opens the queue at `path`, creating it as shmq_create does if no file exists. If another
 *  process creates it at the same moment, opens theirs (whose sizes may differ: check
 *  shmq_capacity / shmq_max_message_size). On failure `*out` is set to NULL. */
int shmq_open_or_create(const char *path, uint32_t capacity, uint32_t max_message_size,
                        shmq **out);

/** As shmq_open_or_create, creating the queue with `*opts` (checked as by shmq_create_ex, even
 *  when the file exists). An existing queue keeps the options it was created with: read them
 *  with shmq_stats (on_consumer_death, max_deliveries). On failure `*out` is set to NULL. */
int shmq_open_or_create_ex(const char *path, const struct shmq_options *opts, shmq **out);

/** Releases this handle (NULL is fine). The queue and its messages stay in the file for other
 *  handles and processes; outstanding reservations and messages stay usable. Must be the last
 *  call on `q`, made by one thread. */
void shmq_detach(shmq *q);

/** Removes the queue file at `path`. Handles already open keep working; new opens get
 *  SHMQ_NOT_FOUND. */
int shmq_unlink(const char *path);

/** Closes the queue for every process: sends fail with SHMQ_CLOSED from now on; receivers get
 *  the messages already sent, then SHMQ_CLOSED. Wakes every waiter. Permanent for the file, and
 *  idempotent: closing a closed queue returns SHMQ_OK. */
int shmq_close(shmq *q);

/** Looks for participants that died and resolves what they left: abandoned sends become
 *  tombstones, messages held by dead consumers are given back (or dropped, per the queue's
 *  policy), sleeper counts are repaired. Blocked calls do this while they wait, and non-blocking
 *  calls do it when a claim at the cursor has stood for over a millisecond; a program that only
 *  busy-polls an idle queue calls this now and then (it costs one fcntl per participant).
 *  `*changed` (if `changed` is not NULL) is set to 1 if anything was repaired, else 0.
 *  SHMQ_INVALID_ARGUMENT if `q` is NULL. */
int shmq_recover(shmq *q, int *changed);

/** Waits until one of the `n` queues in `queues` has a message (`want_recv` != 0) or room for
 *  one (`want_recv` == 0), as `timeout_ns` allows (< 0: forever; 0: do not wait, SHMQ_EMPTY or
 *  SHMQ_FULL if none is ready; > 0: then SHMQ_TIMEOUT), and stores its index in `*ready`.
 *  Nothing is received or sent: call shmq_try_recv / shmq_try_send on `queues[*ready]` next,
 *  and loop if another consumer (or producer) got there first (SHMQ_EMPTY / SHMQ_FULL). A
 *  closed queue counts as ready (its calls then say SHMQ_CLOSED): take it out of the set.
 *  The thread sleeps while it waits, with no busy loop; the library's helper threads (one per
 *  127 queues waited on; one per queue on Linux before 5.16) watch the queues and exit once
 *  nothing is waited on for 250 ms. SHMQ_INVALID_ARGUMENT if `queues` or `ready` is NULL, `n`
 *  is 0 or an entry is NULL; SHMQ_IO if a helper thread cannot be started. */
int shmq_wait_any(shmq *const *queues, size_t n, int want_recv, int64_t timeout_ns,
                  size_t *ready);

/** 1 if the queue is closed, 0 if not (or if `q` is NULL). */
int shmq_is_closed(const shmq *q);

/** Number of slots (0 if `q` is NULL). */
uint32_t shmq_capacity(const shmq *q);

/** Largest message, in bytes (0 if `q` is NULL). */
uint32_t shmq_max_message_size(const shmq *q);

/** Fills `*out` with a snapshot of the queue's configuration and counters. */
int shmq_stats(const shmq *q, struct shmq_stats *out);

/* ---------------------------------------------------------------------------------------------
 * Sending and receiving by copy
 * ------------------------------------------------------------------------------------------- */

/** Sends the `len` bytes at `data` (NULL is fine when `len` is 0) if there is room now;
 *  SHMQ_FULL otherwise. Also SHMQ_CLOSED, SHMQ_TOO_LARGE. */
int shmq_try_send(shmq *q, const void *data, size_t len);

/** Sends the `len` bytes at `data`, waiting for room as `timeout_ns` allows (< 0: forever;
 *  0: as shmq_try_send). SHMQ_TIMEOUT, SHMQ_CLOSED, SHMQ_TOO_LARGE. */
int shmq_send(shmq *q, const void *data, size_t len, int64_t timeout_ns);

/** Receives the next message into `buf` (`buf_len` bytes; NULL is fine when `buf_len` is 0) and
 *  stores its length in `*msg_len`, if one is ready; SHMQ_EMPTY otherwise. If the message is
 *  longer than `buf_len`: SHMQ_BUFFER_TOO_SMALL, `*msg_len` = its length, and it stays queued
 *  (so a call with `buf_len` 0 asks the size of the next message). SHMQ_CLOSED once the queue is
 *  closed and drained. `*msg_len` is written only on SHMQ_OK and SHMQ_BUFFER_TOO_SMALL. */
int shmq_try_recv(shmq *q, void *buf, size_t buf_len, size_t *msg_len);

/** As shmq_try_recv, waiting for a message as `timeout_ns` allows (< 0: forever; 0: as
 *  shmq_try_recv; > 0: then SHMQ_TIMEOUT). */
int shmq_recv(shmq *q, void *buf, size_t buf_len, size_t *msg_len, int64_t timeout_ns);

/** As shmq_recv, and on SHMQ_OK also stores the message's delivery count in `*deliveries` (NULL
 *  is fine): how many times a consumer has received this message, this time included -- 1
 *  unless earlier consumers died holding it (see "Processes that die" above). `timeout_ns` 0
 *  makes it a try. `*deliveries` is written only on SHMQ_OK. */
int shmq_recv_meta(shmq *q, void *buf, size_t buf_len, size_t *msg_len, uint32_t *deliveries,
                   int64_t timeout_ns);

/* ---------------------------------------------------------------------------------------------
 * Batches: many messages for one move of the shared cursor
 * ------------------------------------------------------------------------------------------- */

/** Sends the longest prefix of the `count` messages in `msgs` that fits now, in order, and
 *  stores how many were sent (at least 1) in `*sent`; SHMQ_FULL if none fits. Every length is
 *  checked first: SHMQ_TOO_LARGE sends nothing. `count` 0 returns SHMQ_OK with `*sent` = 0
 *  (`msgs` may then be NULL). `*sent` is 0 on every failure. */
int shmq_try_send_batch(shmq *q, const shmq_buf *msgs, size_t count, size_t *sent);

/** As shmq_try_send_batch, first waiting for room for one message as `timeout_ns` allows;
 *  returns once at least one message is sent (SHMQ_TIMEOUT if none could be). */
int shmq_send_batch(shmq *q, const shmq_buf *msgs, size_t count, size_t *sent,
                    int64_t timeout_ns);

/** Receives up to `max` ready messages at once and calls `each(ctx, data, len)` on every one, in
 *  order, in place (no copy; `data` is valid only during the call). Stores the number of calls
 *  made in `*received` (also on failure). SHMQ_EMPTY if none is ready, SHMQ_CLOSED once closed
 *  and drained. `max` 0 returns SHMQ_OK at once with `*received` = 0. `each` may call shmq
 *  functions, but must not throw or longjmp. */
int shmq_try_recv_batch(shmq *q, size_t max, shmq_recv_fn each, void *ctx, size_t *received);

/** As shmq_try_recv_batch, waiting for the first message as `timeout_ns` allows. */
int shmq_recv_batch(shmq *q, size_t max, shmq_recv_fn each, void *ctx, size_t *received,
                    int64_t timeout_ns);

/* ---------------------------------------------------------------------------------------------
 * Zero copy: write a message in its slot, read a message in its slot
 * ------------------------------------------------------------------------------------------- */

/** Reserves the next slot, if there is room now: `*out` is the reservation, `*data` its payload
 *  area and `*capacity` that area's size (the maximum message size). Write the message there,
 *  then shmq_commit or shmq_cancel. Receivers wait for this slot while it is reserved, so keep
 *  reservations short. SHMQ_FULL, SHMQ_CLOSED. On failure `*out` is set to NULL. */
int shmq_try_reserve(shmq *q, shmq_reservation **out, void **data, size_t *capacity);

/** As shmq_try_reserve, waiting for room as `timeout_ns` allows. */
int shmq_reserve(shmq *q, shmq_reservation **out, void **data, size_t *capacity,
                 int64_t timeout_ns);

/** Publishes the first `len` bytes written at the reservation's `data` as one message. Always
 *  consumes `r`: on SHMQ_TOO_LARGE (`len` > capacity) the slot is given back, as by
 *  shmq_cancel. SHMQ_INVALID_ARGUMENT if `r` is NULL. */
int shmq_commit(shmq_reservation *r, size_t len);

/** Gives the reserved slot back unwritten (receivers skip it); NULL is fine. Consumes `r`. */
void shmq_cancel(shmq_reservation *r);

/** Claims the next message, if one is ready, and lends it in place: `*data` and `*len` are its
 *  bytes, valid until shmq_release(*out). Producers cannot reuse the slot until then, so
 *  release promptly. SHMQ_EMPTY, SHMQ_CLOSED. On failure `*out` is set to NULL. */
int shmq_try_recv_in_place(shmq *q, shmq_message **out, const void **data, size_t *len);

/** As shmq_try_recv_in_place, waiting for a message as `timeout_ns` allows. */
int shmq_recv_in_place(shmq *q, shmq_message **out, const void **data, size_t *len,
                       int64_t timeout_ns);

/** How many times a consumer has received this message, this delivery included: 1 the first
 *  time, more if consumers died holding it and it was redelivered (0 if `m` is NULL). */
uint32_t shmq_message_deliveries(const shmq_message *m);

/** The message's id: unique within the queue file, and the same on every delivery of the
 *  message, redeliveries after a consumer's death included (it is the position of the
 *  message's first send). A consumer that must not act twice keys on it. 0 if `m` is NULL. */
uint64_t shmq_message_id(const shmq_message *m);

/** Where a message of a dead-letter queue came from: writes the identity of the queue that
 *  dead-lettered it (that queue's creation time, `created_unix_ns` in its struct shmq_stats)
 *  to `*queue` and the message's id there (its shmq_message_id in that queue) to `*id`; both 0
 *  for a message that was not dead-lettered. SHMQ_INVALID_ARGUMENT if any pointer is NULL. */
int shmq_message_origin(const shmq_message *m, uint64_t *queue, uint64_t *id);

/** Frees the message's slot for producers; its bytes are no longer valid. NULL is fine.
 *  Consumes `m`. Acknowledges the message as shmq_ack does, ignoring the result. */
void shmq_release(shmq_message *m);

/** Acknowledges (deletes) the message and frees its slot; its bytes are no longer valid.
 *  Consumes `m`. SHMQ_OK (also past the deadline if nobody took the message yet), or
 *  SHMQ_EXPIRED if the queue's visibility timeout passed and another consumer's expiry scan took
 *  the message first, or an earlier shmq_extend on `m` said SHMQ_EXPIRED: then nothing is
 *  deleted (another consumer may do the same work; for each hold exactly one of the two
 *  happens). Without a visibility timeout always SHMQ_OK.
 *  SHMQ_INVALID_ARGUMENT if `m` is NULL. */
int shmq_ack(shmq_message *m);

/** Resets the hold's timer: the message stays `m`'s for `timeout_ns` from now (0: gives it up
 *  at the next scan), also past the deadline if nobody took it yet. SHMQ_EXPIRED if another
 *  consumer's expiry scan took it (final: a later shmq_ack on `m` deletes nothing and says
 *  SHMQ_EXPIRED too); SHMQ_INVALID_ARGUMENT if
 *  `m` is NULL or `timeout_ns` is negative or over 12 hours. Does nothing (SHMQ_OK) in a queue
 *  without a visibility timeout. */
int shmq_extend(shmq_message *m, int64_t timeout_ns);

/* ---------------------------------------------------------------------------------------------
 * Topics (fanout): every published message goes to one shmq queue per subscription
 *
 *     shmq_topic *t;
 *     shmq_topic_create("/dev/shm/orders", 256, &t);
 *     struct shmq_subscription_options billing = {0};
 *     billing.capacity = 1024; billing.max_message_size = 256;   // if the queue is created
 *     shmq_topic_subscribe(t, "/dev/shm/billing", &billing);
 *     shmq_topic_publish(t, "order 42", 8, -1);                  // consumers: shmq_recv on billing
 *     shmq_topic_detach(t);
 *
 * A publish that returns SHMQ_OK has put the message in every matching SHMQ_WHEN_FULL_BLOCK
 * subscription and in every matching SHMQ_WHEN_FULL_DROP one that had room (the others count a
 * drop); shmq_topic_try_publish and a shmq_topic_publish with a timeout are all-or-nothing across
 * the BLOCK subscriptions: SHMQ_FULL or SHMQ_TIMEOUT means the message went nowhere. Each
 * publisher's messages keep their order in every subscription. A closed subscription queue is
 * skipped (its drops counted); one whose file was removed leaves the topic. A shmq_topic * is
 * thread-safe (threads sharing one publish one at a time); open one per process. The full
 * contract is the Rust module doc of shmq::topic and the README.
 * ------------------------------------------------------------------------------------------- */

/** An open topic: opaque, thread-safe. From shmq_topic_create / shmq_topic_open; released with
 *  shmq_topic_detach. */
typedef struct shmq_topic shmq_topic;

/** What a subscription does with a message when its queue is full. */
enum shmq_when_full {
    /** Publishers wait for room (or fail as a whole: SHMQ_FULL, SHMQ_TIMEOUT). The default. */
    SHMQ_WHEN_FULL_BLOCK = 0,
    /** The message is not put in this subscription and counts a drop; never waits. */
    SHMQ_WHEN_FULL_DROP = 1
};

/** How to subscribe a queue, for shmq_topic_subscribe. Zero-initialize it; `capacity` and
 *  `max_message_size` are used only if the queue does not exist yet (an existing queue is
 *  subscribed as it is, and must hold messages at least as long as the topic's). */
struct shmq_subscription_options {
    /** Slots of a queue created for the subscription: 1 to 2^24. */
    uint32_t capacity;
    /** Largest message of a queue created for the subscription; at least the topic's. */
    uint32_t max_message_size;
    /** An enum shmq_when_full value. */
    uint32_t when_full;
    /** Deliver only messages that start with these `prefix_len` bytes (NULL if 0; at most 192). */
    const void *prefix;
    size_t prefix_len;
};

/** Creates a topic file at `path` (mode 0600) for messages of up to `max_message_size` bytes
 *  (1 to 16 MiB), and opens it into `*out`. SHMQ_ALREADY_EXISTS if `path` exists. On failure
 *  `*out` is set to NULL. */
int shmq_topic_create(const char *path, uint32_t max_message_size, shmq_topic **out);

/** Opens the existing topic file at `path` into `*out`. SHMQ_NOT_FOUND; SHMQ_CORRUPT for a file
 *  that is not a topic (a queue, say); SHMQ_INCOMPATIBLE; SHMQ_PERMISSION_DENIED. On failure
 *  `*out` is set to NULL. */
int shmq_topic_open(const char *path, shmq_topic **out);

/** Releases this handle (NULL is fine); must be the last call on `t`. */
void shmq_topic_detach(shmq_topic *t);

/** Subscribes the queue at `queue_path`, creating it with `opts`' sizes if there is none.
 *  SHMQ_ALREADY_EXISTS if it is subscribed already; SHMQ_INVALID_ARGUMENT for a queue whose
 *  maximum message size is smaller than the topic's, a prefix longer than 192 bytes, a full
 *  subscription table (64 subscriptions), or bad options. */
int shmq_topic_subscribe(shmq_topic *t, const char *queue_path,
                         const struct shmq_subscription_options *opts);

/** Removes the subscription of the queue at `queue_path` (the queue and its messages stay).
 *  SHMQ_INVALID_ARGUMENT if it is not subscribed. */
int shmq_topic_unsubscribe(shmq_topic *t, const char *queue_path);

/** Publishes `len` bytes at `data` if every matching BLOCK subscription has room now, else
 *  SHMQ_FULL and the message went nowhere. SHMQ_TOO_LARGE beyond the topic's maximum. */
int shmq_topic_try_publish(shmq_topic *t, const void *data, size_t len);

/** Publishes `len` bytes at `data`, waiting as `timeout_ns` says (see THE CONTRACT) for room in
 *  every matching BLOCK subscription; SHMQ_TIMEOUT (or SHMQ_FULL for 0) means the message went
 *  nowhere. */
int shmq_topic_publish(shmq_topic *t, const void *data, size_t len, int64_t timeout_ns);

/* ---------------------------------------------------------------------------------------------
 * Diagnostics
 * ------------------------------------------------------------------------------------------- */

/** Raises a panic inside the library on purpose and returns what the boundary turned it into:
 *  SHMQ_INTERNAL (the panic message goes to stderr). Lets a binding's tests check that no panic
 *  crosses into C; has no other effect. */
int shmq_debug_panic(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SHMQ_H */
