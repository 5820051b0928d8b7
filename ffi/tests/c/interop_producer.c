/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Interop producer: opens the queue at PATH, sends messages 0..COUNT-1 (see interop.h) and closes
 * the queue. Rotates between the three ways to send, 64 messages at a time: shmq_send,
 * shmq_reserve + shmq_commit, and shmq_send_batch. Usage: interop_producer PATH COUNT
 */
#include "interop.h"
#include "shmq.h"

#include <stdio.h>
#include <stdlib.h>

#define CHUNK 64

static int fail(const char *what, uint64_t i, int rc) {
    fprintf(stderr, "interop_producer: %s at message %llu: %s\n", what, (unsigned long long)i,
            shmq_strerror(rc));
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    uint64_t count = strtoull(argv[2], NULL, 10);
    shmq *q;
    int rc = shmq_open(argv[1], &q);
    if (rc != SHMQ_OK) return fail("open", 0, rc);

    static unsigned char bytes[CHUNK][64];
    shmq_buf batch[CHUNK];
    for (uint64_t first = 0; first < count; first += CHUNK) {
        uint64_t end = first + CHUNK < count ? first + CHUNK : count;
        switch ((first / CHUNK) % 3) {
        case 0:
            for (uint64_t i = first; i < end; i++) {
                fill_message(i, bytes[0]);
                rc = shmq_send(q, bytes[0], message_len(i), INTEROP_TIMEOUT_NS);
                if (rc != SHMQ_OK) return fail("shmq_send", i, rc);
            }
            break;
        case 1:
            for (uint64_t i = first; i < end; i++) {
                shmq_reservation *r;
                void *data;
                size_t cap;
                rc = shmq_reserve(q, &r, &data, &cap, INTEROP_TIMEOUT_NS);
                if (rc != SHMQ_OK) return fail("shmq_reserve", i, rc);
                if (cap < message_len(i)) return fail("capacity", i, SHMQ_TOO_LARGE);
                fill_message(i, data);
                rc = shmq_commit(r, message_len(i));
                if (rc != SHMQ_OK) return fail("shmq_commit", i, rc);
            }
            break;
        default:
            for (uint64_t i = first; i < end; i++) {
                fill_message(i, bytes[i - first]);
                batch[i - first].data = bytes[i - first];
                batch[i - first].len = message_len(i);
            }
            for (uint64_t i = first; i < end;) {
                size_t sent = 0;
                rc = shmq_send_batch(q, batch + (i - first), (size_t)(end - i), &sent,
                                     INTEROP_TIMEOUT_NS);
                if (rc != SHMQ_OK) return fail("shmq_send_batch", i, rc);
                i += sent;
            }
        }
    }
    shmq_close(q);
    shmq_detach(q);
    printf("sent %llu\n", (unsigned long long)count);
    return 0;
}
