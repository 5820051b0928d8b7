/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * The C topic API (fanout): arguments checked, bad input named by its status, publish to BLOCK
 * and DROP subscriptions with a prefix filter, all-or-nothing try and timed publishes, and
 * unsubscribe. Usage: topic DIR (an empty scratch directory). Exits 0 only if every check held.
 */
#include "shmq.h"

#include "check.h"

#include <stdio.h>
#include <string.h>

/* Receives every message waiting in `q` into `out` (joined by ','), returns how many. */
static int drain(shmq *q, char *out, size_t cap) {
    char buf[64];
    size_t n;
    int count = 0;
    out[0] = 0;
    while (shmq_recv(q, buf, sizeof buf, &n, 0) == SHMQ_OK) {
        if (count++) strncat(out, ",", cap - strlen(out) - 1);
        strncat(out, buf, n < cap - strlen(out) - 1 ? n : cap - strlen(out) - 1);
    }
    return count;
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    snprintf(dir, sizeof dir, "%s", argv[1]);
    const char *tp = path_of("orders"), *a = path_of("a"), *b = path_of("b");
    const char *plain = path_of("plain");
    shmq_topic *t = (shmq_topic *)&failures;

    /* Arguments and bad input. */
    CHECK_RC(shmq_topic_create(NULL, 64, &t), SHMQ_INVALID_ARGUMENT);
    CHECK(t == NULL);
    CHECK_RC(shmq_topic_create(tp, 64, NULL), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_topic_create(tp, 0, &t), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_topic_open(tp, &t), SHMQ_NOT_FOUND);
    shmq *q;
    CHECK_RC(shmq_create(plain, 4, 16, &q), SHMQ_OK);
    CHECK_RC(shmq_topic_open(plain, &t), SHMQ_CORRUPT);
    CHECK(t == NULL);
    CHECK_RC(shmq_topic_create(tp, 64, &t), SHMQ_OK);
    CHECK_RC(shmq_topic_create(tp, 64, &t), SHMQ_ALREADY_EXISTS);
    CHECK_RC(shmq_topic_open(tp, &t), SHMQ_OK);

    struct shmq_subscription_options sa = {0}, sb = {0};
    sa.capacity = 4;
    sa.max_message_size = 64;
    CHECK_RC(shmq_topic_subscribe(NULL, a, &sa), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_topic_subscribe(t, a, NULL), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_topic_subscribe(t, plain, &sa), SHMQ_INVALID_ARGUMENT); /* 16 < 64 bytes */
    sb = sa;
    sb.when_full = 7;
    CHECK_RC(shmq_topic_subscribe(t, b, &sb), SHMQ_INVALID_ARGUMENT);
    sb.when_full = SHMQ_WHEN_FULL_DROP;
    sb.capacity = 2;
    sb.prefix_len = 1;
    CHECK_RC(shmq_topic_subscribe(t, b, &sb), SHMQ_INVALID_ARGUMENT); /* NULL prefix */
    sb.prefix = "o";
    CHECK_RC(shmq_topic_subscribe(t, a, &sa), SHMQ_OK);
    CHECK_RC(shmq_topic_subscribe(t, a, &sa), SHMQ_ALREADY_EXISTS);
    CHECK_RC(shmq_topic_subscribe(t, b, &sb), SHMQ_OK);

    /* Publish: A (BLOCK, 4 slots) gets all, B (DROP, 2 slots, prefix "o") the first two o's. */
    const char *msgs[] = {"o1", "x2", "o3", "o4"};
    for (int i = 0; i < 4; i++) CHECK_RC(shmq_topic_publish(t, msgs[i], 2, -1), SHMQ_OK);
    CHECK_RC(shmq_topic_try_publish(t, "o5", 2), SHMQ_FULL);
    CHECK_RC(shmq_topic_publish(t, "o5", 2, 0), SHMQ_FULL);
    CHECK_RC(shmq_topic_publish(t, "o5", 2, 1000000), SHMQ_TIMEOUT);
    CHECK_RC(shmq_topic_try_publish(t, NULL, 1), SHMQ_INVALID_ARGUMENT);
    char big[65] = {0};
    CHECK_RC(shmq_topic_try_publish(t, big, sizeof big), SHMQ_TOO_LARGE);

    shmq *qa, *qb;
    char got[256];
    CHECK_RC(shmq_open(a, &qa), SHMQ_OK);
    CHECK_RC(shmq_open(b, &qb), SHMQ_OK);
    CHECK(drain(qa, got, sizeof got) == 4 && strcmp(got, "o1,x2,o3,o4") == 0);
    CHECK(drain(qb, got, sizeof got) == 2 && strcmp(got, "o1,o3") == 0);

    /* Room again: the next publish reaches both; after unsubscribe, only B. */
    CHECK_RC(shmq_topic_try_publish(t, "o6", 2), SHMQ_OK);
    CHECK_RC(shmq_topic_unsubscribe(t, a), SHMQ_OK);
    CHECK_RC(shmq_topic_unsubscribe(t, a), SHMQ_INVALID_ARGUMENT);
    CHECK_RC(shmq_topic_publish(t, "o7", 2, -1), SHMQ_OK);
    CHECK(drain(qa, got, sizeof got) == 1 && strcmp(got, "o6") == 0);
    CHECK(drain(qb, got, sizeof got) == 2 && strcmp(got, "o6,o7") == 0);

    shmq_topic_detach(t);
    shmq_topic_detach(NULL);
    shmq_detach(qa);
    shmq_detach(qb);
    shmq_detach(q);
    printf("topic: %d failures\n", failures);
    return failures != 0;
}
