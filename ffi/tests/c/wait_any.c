/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * shmq_wait_any's contract: arguments are checked, a wait of 0 says SHMQ_EMPTY / SHMQ_FULL,
 * a timed wait says SHMQ_TIMEOUT no earlier than asked, a ready queue's index comes back (a
 * message, room, or a closed queue). Usage: wait_any_api DIR. Exits 0 only if every check held.
 */
#define _POSIX_C_SOURCE 200809L
#include "shmq.h"

#include "check.h"

#include <stdint.h>
#include <stdio.h>
#include <time.h>

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    char path[4096];
    shmq *qs[3];
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/q%d", argv[1], i);
        CHECK_RC(shmq_create(path, 2, 16, &qs[i]), SHMQ_OK);
    }
    size_t ready = 99;
    shmq *with_null[2] = {qs[0], NULL};
    CHECK_RC(shmq_wait_any(NULL, 1, 1, 0, &ready), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_wait_any(qs, 0, 1, 0, &ready), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_wait_any(qs, 3, 1, 0, NULL), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_wait_any(with_null, 2, 1, 0, &ready), SHMQ_INVALID_ARGUMENT);
    CHECK(ready == 99);

    /* Empty: no message anywhere; room everywhere. */
    CHECK_RC(shmq_wait_any(qs, 3, 1, 0, &ready), SHMQ_EMPTY);
    int64_t start = now_ns();
    CHECK_RC(shmq_wait_any(qs, 3, 1, 50000000, &ready), SHMQ_TIMEOUT);
    CHECK(now_ns() - start >= 50000000);
    CHECK_RC(shmq_wait_any(qs, 3, 0, 0, &ready), SHMQ_OK);

    /* A message on the third queue. */
    CHECK_RC(shmq_try_send(qs[2], "m", 1), SHMQ_OK);
    CHECK_RC(shmq_wait_any(qs, 3, 1, -1, &ready), SHMQ_OK);
    CHECK(ready == 2);

    /* Room: fill the first two, the third still has room for one. */
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 2; k++) CHECK_RC(shmq_try_send(qs[i], "x", 1), SHMQ_OK);
    CHECK_RC(shmq_try_send(qs[2], "y", 1), SHMQ_OK);
    CHECK_RC(shmq_wait_any(qs, 3, 0, 0, &ready), SHMQ_FULL);
    CHECK_RC(shmq_wait_any(qs, 2, 0, 20000000, &ready), SHMQ_TIMEOUT);

    /* A closed queue is ready (its send then says SHMQ_CLOSED). */
    CHECK_RC(shmq_close(qs[1]), SHMQ_OK);
    CHECK_RC(shmq_wait_any(qs, 3, 0, -1, &ready), SHMQ_OK);
    CHECK(ready == 1);
    CHECK_RC(shmq_try_send(qs[1], "z", 1), SHMQ_CLOSED);

    for (int i = 0; i < 3; i++) shmq_detach(qs[i]);
    printf("wait_any_api: %d failures\n", failures);
    return failures == 0 ? 0 : 1;
}
