/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * consumer: receives every message of a queue until the producer closes it, reading each one in
 * place (shmq_recv_in_place / shmq_release, no copy), then removes the queue file.
 *
 * Build:  cc -std=c11 examples/c/consumer.c $(pkg-config --cflags --libs shmq) -o consumer
 * Run:    ./producer /dev/shm/shmq-demo 100 & ./consumer /dev/shm/shmq-demo
 */
#define _POSIX_C_SOURCE 200809L
#include <shmq.h>

#include <stdio.h>
#include <time.h>

#define TIMEOUT_NS 5000000000LL /* give up after 5 s without a message */

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "/dev/shm/shmq-demo";

    /* The producer creates the queue: wait up to 5 s for it to appear. */
    shmq *q = NULL;
    int rc = SHMQ_NOT_FOUND;
    for (int tries = 0; tries < 500 && rc == SHMQ_NOT_FOUND; tries++) {
        rc = shmq_open(path, &q);
        if (rc == SHMQ_NOT_FOUND) nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
    }
    if (rc != SHMQ_OK) {
        fprintf(stderr, "consumer: %s: %s\n", path, shmq_strerror(rc));
        return 1;
    }

    long received = 0;
    for (;;) {
        shmq_message *msg;
        const void *data;
        size_t len;
        rc = shmq_recv_in_place(q, &msg, &data, &len, TIMEOUT_NS);
        if (rc != SHMQ_OK) break;
        printf("%.*s\n", (int)len, (const char *)data);
        shmq_release(msg); /* frees the slot for producers */
        received++;
    }

    struct shmq_stats stats = {0};
    shmq_stats(q, &stats);
    shmq_detach(q);
    if (rc != SHMQ_CLOSED) {
        fprintf(stderr, "consumer: receive: %s\n", shmq_strerror(rc));
        return 1;
    }
    printf("consumer: received %ld messages (queue: %llu sent, %llu received); removing %s\n",
           received, (unsigned long long)stats.sent, (unsigned long long)stats.received, path);
    shmq_unlink(path);
    return 0;
}
