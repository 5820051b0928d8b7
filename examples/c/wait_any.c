/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * wait_any: one thread serves many queues with shmq_wait_any. It creates N queues, forks a
 * producer process that sends MESSAGES numbered messages spread over them (a few milliseconds
 * apart, so the server is asleep before most), and receives every one: shmq_wait_any says which
 * queue has a message, shmq_try_recv takes it. The thread sleeps in between (no busy loop);
 * a message on any queue wakes it.
 *
 * Build:  cc -std=c11 examples/c/wait_any.c $(pkg-config --cflags --libs shmq) -o wait_any
 * Run:    ./wait_any /dev/shm [N] [MESSAGES]
 * Exits 0 once every message came exactly once.
 */
#define _POSIX_C_SOURCE 200809L
#include <shmq.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_QUEUES 4096
#define TIMEOUT_NS 10000000000LL /* give up after 10 s without a message */

static void queue_path(char *out, size_t len, const char *dir, int i) {
    snprintf(out, len, "%s/wait-any-%d-q%d", dir, (int)getpid(), i);
}

/* The producer: its own handles (a forked child must open the queues itself, see shmq.h). */
static int produce(const char *dir, pid_t parent, int n, int messages) {
    static shmq *qs[MAX_QUEUES];
    char path[4096];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/wait-any-%d-q%d", dir, (int)parent, i);
        int rc = shmq_open(path, &qs[i]);
        if (rc != SHMQ_OK) {
            fprintf(stderr, "producer: %s: %s\n", path, shmq_strerror(rc));
            return 1;
        }
    }
    for (uint32_t k = 0; k < (uint32_t)messages; k++) {
        nanosleep(&(struct timespec){.tv_nsec = 2000000}, NULL);
        int rc = shmq_send(qs[(k * 337u) % (uint32_t)n], &k, sizeof k, TIMEOUT_NS);
        if (rc != SHMQ_OK) {
            fprintf(stderr, "producer: send %u: %s\n", k, shmq_strerror(rc));
            return 1;
        }
    }
    for (int i = 0; i < n; i++) shmq_detach(qs[i]);
    return 0;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/dev/shm";
    int n = argc > 2 ? atoi(argv[2]) : 100;
    int messages = argc > 3 ? atoi(argv[3]) : 1000;
    if (n < 1 || n > MAX_QUEUES || messages < 1) {
        fprintf(stderr, "usage: wait_any DIR [N 1..%d] [MESSAGES]\n", MAX_QUEUES);
        return 2;
    }
    static shmq *qs[MAX_QUEUES];
    char path[4096];
    for (int i = 0; i < n; i++) {
        queue_path(path, sizeof path, dir, i);
        int rc = shmq_create(path, 64, 64, &qs[i]);
        if (rc != SHMQ_OK) {
            fprintf(stderr, "wait_any: %s: %s\n", path, shmq_strerror(rc));
            return 1;
        }
    }
    /* Nothing is ready yet: a wait of 0 says so at once. */
    size_t ready;
    int rc = shmq_wait_any(qs, (size_t)n, 1, 0, &ready);
    if (rc != SHMQ_EMPTY) {
        fprintf(stderr, "wait_any: expected SHMQ_EMPTY, got %s\n", shmq_strerror(rc));
        return 1;
    }
    /* Fork before this process waits (and so before it has helper threads). */
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) _exit(produce(dir, parent, n, messages));

    unsigned char *seen = calloc((size_t)messages, 1);
    int received = 0, failures = 0;
    while (received < messages) {
        rc = shmq_wait_any(qs, (size_t)n, 1, TIMEOUT_NS, &ready);
        if (rc != SHMQ_OK) {
            fprintf(stderr, "wait_any: %s after %d messages\n", shmq_strerror(rc), received);
            failures++;
            break;
        }
        uint32_t k;
        size_t len;
        rc = shmq_try_recv(qs[ready], &k, sizeof k, &len);
        if (rc == SHMQ_EMPTY) continue; /* someone else took it: wait again */
        if (rc != SHMQ_OK || len != sizeof k || k >= (uint32_t)messages || seen[k]++) {
            fprintf(stderr, "wait_any: bad receive on queue %zu: %s\n", ready, shmq_strerror(rc));
            failures++;
            break;
        }
        if ((k * 337u) % (uint32_t)n != ready) {
            fprintf(stderr, "wait_any: message %u came on queue %zu\n", k, ready);
            failures++;
        }
        received++;
    }
    int status = 0;
    waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failures++;
    for (int i = 0; i < n; i++) {
        queue_path(path, sizeof path, dir, i);
        shmq_unlink(path);
        shmq_detach(qs[i]);
    }
    free(seen);
    printf("wait_any: received %d messages from %d queues, %d failures\n", received, n, failures);
    return failures == 0 ? 0 : 1;
}
