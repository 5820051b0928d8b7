/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Interop consumer: opens the queue at PATH and receives until the queue is closed, checking
 * that message i (see interop.h) arrives i-th, exactly once. Rotates between the three ways to
 * receive: shmq_recv, shmq_recv_in_place + shmq_release, and shmq_recv_batch.
 * Prints "received N in order" and exits 0 if N == COUNT. Usage: interop_consumer PATH COUNT
 */
#include "interop.h"
#include "shmq.h"

#include <stdio.h>
#include <stdlib.h>

struct cursor {
    uint64_t next; /* the message expected next */
    int bad;       /* set at the first message out of place */
};

static void check(struct cursor *c, const void *data, size_t len) {
    if (!c->bad && !is_message(c->next, data, len)) {
        uint64_t got = 0;
        if (len >= 8) memcpy(&got, data, sizeof got);
        fprintf(stderr, "interop_consumer: expected message %llu, got %llu (%zu bytes)\n",
                (unsigned long long)c->next, (unsigned long long)got, len);
        c->bad = 1;
    }
    c->next++;
}

static void on_message(void *ctx, const void *data, size_t len) { check(ctx, data, len); }

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    uint64_t count = strtoull(argv[2], NULL, 10);
    shmq *q;
    int rc = shmq_open(argv[1], &q);
    if (rc != SHMQ_OK) {
        fprintf(stderr, "interop_consumer: open: %s\n", shmq_strerror(rc));
        return 1;
    }
    struct cursor c = {0, 0};
    unsigned char buf[64];
    while (rc == SHMQ_OK && !c.bad) {
        switch ((c.next / 64) % 3) {
        case 0: {
            size_t len;
            rc = shmq_recv(q, buf, sizeof buf, &len, INTEROP_TIMEOUT_NS);
            if (rc == SHMQ_OK) check(&c, buf, len);
            break;
        }
        case 1: {
            shmq_message *m;
            const void *data;
            size_t len;
            rc = shmq_recv_in_place(q, &m, &data, &len, INTEROP_TIMEOUT_NS);
            if (rc == SHMQ_OK) {
                if (shmq_message_deliveries(m) != 1) c.bad = 1;
                check(&c, data, len);
                shmq_release(m);
            }
            break;
        }
        default: {
            size_t got;
            rc = shmq_recv_batch(q, 64, on_message, &c, &got, INTEROP_TIMEOUT_NS);
            break;
        }
        }
    }
    shmq_detach(q);
    if (rc != SHMQ_CLOSED || c.bad || c.next != count) {
        fprintf(stderr, "interop_consumer: stopped with %s after %llu of %llu messages\n",
                shmq_strerror(rc), (unsigned long long)c.next, (unsigned long long)count);
        return 1;
    }
    printf("received %llu in order\n", (unsigned long long)c.next);
    return 0;
}
