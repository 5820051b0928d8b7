/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * typed_consumer PATH COUNT: receives `struct reading` messages (the struct of
 * examples/c/sensor.c) sent by a Rust process with `shmq::Typed<Reading>`, until the queue is
 * closed; checks that each is exactly one struct, in order, with the sensor's values. Prints
 * "received N" and exits 0 if all COUNT came, else names the first wrong one and exits 1.
 */
#include <shmq.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct reading {
    uint64_t seq;
    double celsius;
    uint32_t sensor;
    uint32_t flags;
};
_Static_assert(sizeof(struct reading) == 24, "struct reading has no padding");

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    long count = strtol(argv[2], NULL, 10);
    shmq *q;
    int rc = shmq_open(argv[1], &q);
    if (rc != SHMQ_OK) {
        fprintf(stderr, "open: %s\n", shmq_strerror(rc));
        return 1;
    }
    long received = 0;
    for (;;) {
        struct reading r;
        size_t len = 0;
        rc = shmq_recv(q, &r, sizeof r, &len, 10000000000LL);
        if (rc != SHMQ_OK) break;
        int last = received == count - 1;
        if (len != sizeof r || r.seq != (uint64_t)received ||
            r.celsius != 20.0 + (double)received / 4.0 || r.sensor != (uint32_t)(received % 4) ||
            r.flags != (last ? 1u : 0u)) {
            fprintf(stderr, "reading %ld is wrong (len %zu, seq %llu)\n", received, len,
                    (unsigned long long)r.seq);
            shmq_detach(q);
            return 1;
        }
        received++;
    }
    shmq_detach(q);
    if (rc != SHMQ_CLOSED || received != count) {
        fprintf(stderr, "ended with %s after %ld of %ld readings\n", shmq_strerror(rc), received,
                count);
        return 1;
    }
    printf("received %ld\n", received);
    return 0;
}
