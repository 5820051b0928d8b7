/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Consumers that die holding a message, through the C API: a child process (fork, then its own
 * shmq_open, as shmq.h requires) receives a message in place with shmq_recv_in_place and is
 * SIGKILLed before shmq_release. The parent, a surviving receiver, then gets the message again
 * with its delivery count at 2 (SHMQ_ON_CONSUMER_DEATH_REDELIVER), or finds it dropped
 * (SHMQ_ON_CONSUMER_DEATH_DROP, or past max_deliveries), and the stats count what happened.
 * Also a producer killed between shmq_reserve and shmq_commit: its slot is skipped.
 * Usage: recovery DIR (an empty scratch directory). Exits 0 only if every check held.
 */
#define _DEFAULT_SOURCE
#include "shmq.h"

#include "check.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define SECOND 1000000000LL

enum child_role { RECEIVE_IN_PLACE, RESERVE };

/* Forks a child that opens `path` itself, claims one message in place (or reserves a slot and
 * writes into it), reports what it got on a pipe, and then waits to be killed. Returns once the
 * child holds its claim; `*deliveries` is the count the child saw (0 for RESERVE). */
static pid_t child_holding(const char *path, enum child_role role, uint32_t *deliveries) {
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        exit(2);
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(2);
    }
    if (pid == 0) {
        /* The child: never touches the parent's handle; it opens its own. */
        close(fds[0]);
        shmq *q;
        uint32_t report = 0;
        int rc = shmq_open(path, &q);
        if (rc == SHMQ_OK && role == RECEIVE_IN_PLACE) {
            shmq_message *m;
            const void *data;
            size_t len;
            rc = shmq_recv_in_place(q, &m, &data, &len, 10 * SECOND);
            if (rc == SHMQ_OK) report = shmq_message_deliveries(m); /* never released */
        } else if (rc == SHMQ_OK) {
            shmq_reservation *r;
            void *data;
            size_t cap;
            rc = shmq_reserve(q, &r, &data, &cap, 10 * SECOND);
            if (rc == SHMQ_OK) memcpy(data, "half-written", 12); /* never committed */
        }
        if (rc != SHMQ_OK) report = UINT32_MAX;
        if (write(fds[1], &report, sizeof report) != (ssize_t)sizeof report) _exit(3);
        for (;;) pause(); /* hold the claim until SIGKILL */
    }
    close(fds[1]);
    uint32_t report = UINT32_MAX;
    if (read(fds[0], &report, sizeof report) != (ssize_t)sizeof report) report = UINT32_MAX;
    close(fds[0]);
    CHECK(report != UINT32_MAX);
    *deliveries = report;
    return pid;
}

static void kill_and_reap(pid_t pid) {
    int status = 0;
    CHECK(kill(pid, SIGKILL) == 0);
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static shmq *create(const char *name, uint32_t policy, uint32_t max_deliveries) {
    struct shmq_options opts;
    memset(&opts, 0, sizeof opts);
    opts.capacity = 8;
    opts.max_message_size = 64;
    opts.on_consumer_death = policy;
    opts.max_deliveries = max_deliveries;
    shmq *q = NULL;
    CHECK_RC(shmq_create_ex(path_of(name), &opts, &q), SHMQ_OK);
    if (q == NULL) exit(1);
    return q;
}

/* The default: a killed consumer's message comes back, delivery count 2, before nothing is
 * lost; a message sent after it is not held up. */
static void redelivered_with_its_count_raised(void) {
    shmq *q = create("redeliver", SHMQ_ON_CONSUMER_DEATH_REDELIVER, 0);
    CHECK_RC(shmq_try_send(q, "precious", 8), SHMQ_OK);
    uint32_t seen = 0;
    pid_t child = child_holding(path_of("redeliver"), RECEIVE_IN_PLACE, &seen);
    CHECK(seen == 1);
    CHECK_RC(shmq_try_send(q, "after", 5), SHMQ_OK);
    kill_and_reap(child);

    char buf[64];
    size_t n = 0;
    uint32_t deliveries = 0;
    int got_precious = 0, got_after = 0;
    for (int i = 0; i < 2; i++) {
        CHECK_RC(shmq_recv_meta(q, buf, sizeof buf, &n, &deliveries, 10 * SECOND), SHMQ_OK);
        if (n == 8 && memcmp(buf, "precious", 8) == 0) {
            got_precious++;
            CHECK(deliveries == 2);
        } else if (n == 5 && memcmp(buf, "after", 5) == 0) {
            got_after++;
            CHECK(deliveries == 1);
        }
    }
    CHECK(got_precious == 1 && got_after == 1);
    CHECK_RC(shmq_recv_meta(q, buf, sizeof buf, &n, &deliveries, 0), SHMQ_EMPTY);
    struct shmq_stats s = stats_of(q);
    CHECK(s.redelivered == 1 && s.len == 0);
    CHECK(s.abandoned_sends == 0 && s.abandoned_receives == 0 && s.dead_lettered == 0);
    printf("redeliver: message back with deliveries 2, redelivered %llu\n",
           (unsigned long long)s.redelivered);

    /* Killed again holding it in place: the zero-copy receive sees the count too. */
    CHECK_RC(shmq_try_send(q, "again", 5), SHMQ_OK);
    child = child_holding(path_of("redeliver"), RECEIVE_IN_PLACE, &seen);
    CHECK(seen == 1);
    kill_and_reap(child);
    shmq_message *m = NULL;
    const void *data;
    CHECK_RC(shmq_recv_in_place(q, &m, &data, &n, 10 * SECOND), SHMQ_OK);
    CHECK(n == 5 && memcmp(data, "again", 5) == 0 && shmq_message_deliveries(m) == 2);
    shmq_release(m);
    CHECK(stats_of(q).redelivered == 2);

    /* A busy poller that never blocks: shmq_recover gives the message back at once, and a
     * second call finds nothing left to do. */
    CHECK_RC(shmq_try_send(q, "polled", 6), SHMQ_OK);
    child = child_holding(path_of("redeliver"), RECEIVE_IN_PLACE, &seen);
    CHECK(seen == 1);
    kill_and_reap(child);
    int changed = -1;
    CHECK_RC(shmq_recover(q, &changed), SHMQ_OK);
    CHECK(changed == 1);
    CHECK_RC(shmq_recover(q, &changed), SHMQ_OK);
    CHECK(changed == 0);
    CHECK_RC(shmq_recv_meta(q, buf, sizeof buf, &n, &deliveries, 0), SHMQ_OK);
    CHECK(n == 6 && memcmp(buf, "polled", 6) == 0 && deliveries == 2);
    CHECK(stats_of(q).redelivered == 3);
    shmq_detach(q);
}

/* SHMQ_ON_CONSUMER_DEATH_DROP, and max_deliveries: the message is gone and counted. */
static void dropped_by_policy_or_limit(void) {
    struct {
        const char *name;
        uint32_t policy, max_deliveries, kills;
    } cases[] = {
        {"drop", SHMQ_ON_CONSUMER_DEATH_DROP, 0, 1},
        {"limit", SHMQ_ON_CONSUMER_DEATH_REDELIVER, 2, 2},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        shmq *q = create(cases[c].name, cases[c].policy, cases[c].max_deliveries);
        CHECK_RC(shmq_try_send(q, "poison", 6), SHMQ_OK);
        for (uint32_t k = 1; k <= cases[c].kills; k++) {
            uint32_t seen = 0;
            pid_t child = child_holding(path_of(cases[c].name), RECEIVE_IN_PLACE, &seen);
            CHECK(seen == k); /* 1, then 2 on the redelivery */
            kill_and_reap(child);
        }
        char buf[64];
        size_t n;
        uint32_t deliveries;
        /* Waiting on the empty queue sweeps: the message is found and dropped, not delivered. */
        CHECK_RC(shmq_recv_meta(q, buf, sizeof buf, &n, &deliveries, SECOND / 4), SHMQ_TIMEOUT);
        struct shmq_stats s = stats_of(q);
        if (cases[c].policy == SHMQ_ON_CONSUMER_DEATH_DROP) {
            CHECK(s.abandoned_receives == 1 && s.dead_lettered == 0 && s.redelivered == 0);
        } else {
            CHECK(s.dead_lettered == 1 && s.abandoned_receives == 0 && s.redelivered == 1);
        }
        CHECK(s.len == 0);
        printf("%s: dropped after %u kill(s): abandoned_receives %llu, dead_lettered %llu\n",
               cases[c].name, cases[c].kills, (unsigned long long)s.abandoned_receives,
               (unsigned long long)s.dead_lettered);
        /* The queue works on: every slot is free again. */
        for (int i = 0; i < 8; i++) CHECK_RC(shmq_try_send(q, "ok", 2), SHMQ_OK);
        shmq_detach(q);
    }
}

/* With a dead-letter queue: a consumer killed on the last allowed delivery sends the message
 * there, with its delivery count and its origin (shmq_message_origin); the stats count it. */
static void dead_lettered_into_the_dead_letter_queue(void) {
    shmq *dlq = create("dlq", SHMQ_ON_CONSUMER_DEATH_REDELIVER, 0);
    struct shmq_options opts;
    memset(&opts, 0, sizeof opts);
    opts.capacity = 8;
    opts.max_message_size = 64;
    opts.max_deliveries = 2;
    opts.dead_letter_queue = path_of("dlq");
    opts.visibility_timeout_ns = 30 * SECOND;
    shmq *q = NULL;
    CHECK_RC(shmq_create_ex(path_of("with-dlq"), &opts, &q), SHMQ_OK);
    if (q == NULL) exit(1);
    CHECK(stats_of(q).visibility_timeout_ns == 30 * SECOND);
    CHECK_RC(shmq_try_send(q, "poison", 6), SHMQ_OK);
    for (uint32_t k = 1; k <= 2; k++) {
        uint32_t seen = 0;
        pid_t child = child_holding(path_of("with-dlq"), RECEIVE_IN_PLACE, &seen);
        CHECK(seen == k);
        kill_and_reap(child);
    }
    char buf[64];
    size_t n;
    uint32_t deliveries;
    CHECK_RC(shmq_recv_meta(q, buf, sizeof buf, &n, &deliveries, SECOND / 4), SHMQ_TIMEOUT);
    struct shmq_stats s = stats_of(q);
    CHECK(s.dead_lettered == 1 && s.dead_letter_failures == 0 && s.redelivered == 1);
    CHECK(s.in_flight == 0 && s.expired == 0);

    shmq_message *m = NULL;
    const void *data;
    CHECK_RC(shmq_recv_in_place(dlq, &m, &data, &n, SECOND), SHMQ_OK);
    CHECK(n == 6 && memcmp(data, "poison", 6) == 0 && shmq_message_deliveries(m) == 2);
    uint64_t from = 1, id = 1;
    CHECK_RC(shmq_message_origin(m, &from, &id), SHMQ_OK);
    CHECK(from == s.created_unix_ns && id == 0);
    CHECK_RC(shmq_message_origin(m, NULL, &id), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_message_origin(NULL, &from, &id), SHMQ_INVALID_ARGUMENT);
    CHECK(stats_of(dlq).in_flight == 1);
    shmq_release(m);
    /* An ordinary message has no origin. */
    CHECK_RC(shmq_try_send(dlq, "plain", 5), SHMQ_OK);
    CHECK_RC(shmq_recv_in_place(dlq, &m, &data, &n, SECOND), SHMQ_OK);
    CHECK_RC(shmq_message_origin(m, &from, &id), SHMQ_OK);
    CHECK(from == 0 && id == 0);
    shmq_release(m);
    printf("dead-letter queue: poison moved with deliveries 2 and its origin\n");
    shmq_detach(q);
    shmq_detach(dlq);
}

/* A producer killed between shmq_reserve and shmq_commit: receivers skip its slot. */
static void abandoned_reservation_is_skipped(void) {
    shmq *q = create("reserve", SHMQ_ON_CONSUMER_DEATH_REDELIVER, 0);
    uint32_t unused;
    pid_t child = child_holding(path_of("reserve"), RESERVE, &unused);
    CHECK_RC(shmq_try_send(q, "behind", 6), SHMQ_OK);
    kill_and_reap(child);
    char buf[64];
    size_t n = 0;
    uint32_t deliveries = 0;
    CHECK_RC(shmq_recv_meta(q, buf, sizeof buf, &n, &deliveries, 10 * SECOND), SHMQ_OK);
    CHECK(n == 6 && memcmp(buf, "behind", 6) == 0 && deliveries == 1);
    struct shmq_stats s = stats_of(q);
    CHECK(s.abandoned_sends == 1 && s.redelivered == 0);
    printf("reserve: abandoned_sends %llu\n", (unsigned long long)s.abandoned_sends);
    shmq_detach(q);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: recovery DIR\n");
        return 2;
    }
    snprintf(dir, sizeof dir, "%s", argv[1]);
    redelivered_with_its_count_raised();
    dropped_by_policy_or_limit();
    abandoned_reservation_is_skipped();
    dead_lettered_into_the_dead_letter_queue();
    printf("recovery: %d failures\n", failures);
    return failures == 0 ? 0 : 1;
}
