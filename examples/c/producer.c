/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * producer: creates a queue, sends COUNT messages, then closes the queue so that consumers know
 * the stream has ended. Shows a copying send (shmq_send) and a zero-copy one (shmq_reserve,
 * write in the slot, shmq_commit).
 *
 * Build:  cc -std=c11 examples/c/producer.c $(pkg-config --cflags --libs shmq) -o producer
 * Run:    ./producer /dev/shm/shmq-demo 100 & ./consumer /dev/shm/shmq-demo
 */
#include <shmq.h>

#include <stdio.h>
#include <stdlib.h>

#define TIMEOUT_NS 5000000000LL /* give up if no consumer makes room for 5 s */

static int fail(const char *what, int rc) {
    fprintf(stderr, "producer: %s: %s\n", what, shmq_strerror(rc));
    return 1;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "/dev/shm/shmq-demo";
    long count = argc > 2 ? strtol(argv[2], NULL, 10) : 100;

    shmq *q;
    int rc = shmq_create(path, 1024, 256, &q);
    if (rc != SHMQ_OK) return fail(path, rc);

    for (long i = 0; i < count && rc == SHMQ_OK; i++) {
        if (i % 2 == 0) {
            /* By copy: format on the stack, the queue copies it into a slot. */
            char text[64];
            int len = snprintf(text, sizeof text, "message %ld (copied)", i);
            rc = shmq_send(q, text, (size_t)len, TIMEOUT_NS);
        } else {
            /* Zero copy: reserve a slot, format straight into it, publish it. */
            shmq_reservation *slot;
            void *data;
            size_t capacity;
            rc = shmq_reserve(q, &slot, &data, &capacity, TIMEOUT_NS);
            if (rc == SHMQ_OK) {
                int len = snprintf(data, capacity, "message %ld (in place)", i);
                rc = shmq_commit(slot, (size_t)len);
            }
        }
    }
    if (rc != SHMQ_OK) {
        fail("send", rc);
    } else {
        printf("producer: sent %ld messages to %s\n", count, path);
    }
    shmq_close(q); /* receivers drain what was sent, then get SHMQ_CLOSED */
    shmq_detach(q);
    return rc == SHMQ_OK ? 0 : 1;
}
