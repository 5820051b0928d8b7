/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * What the C test programs of tests/c/ check with. CHECK(cond) and CHECK_RC(call, want) count a
 * failure in `failures` and name it on stderr instead of stopping, so that one run reports every
 * broken promise; `main` prints "<name>: N failures" and exits non-zero unless N is 0.
 * path_of(name) is `name` inside the scratch directory `dir` (copied from argv[1] by `main`); the
 * last 8 results stay valid. stats_of(q) is q's stats, checked.
 */
#ifndef CHECK_H
#define CHECK_H

#include "shmq.h"

#include <stdio.h>
#include <string.h>

static int failures;

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                      \
        }                                                                    \
    } while (0)

#define CHECK_RC(call, want)                                                       \
    do {                                                                           \
        int rc_ = (call);                                                          \
        if (rc_ != (want)) {                                                       \
            fprintf(stderr, "FAIL %s:%d: %s returned %s, expected %s\n", __FILE__, \
                    __LINE__, #call, shmq_strerror(rc_), shmq_strerror(want));     \
            failures++;                                                            \
        }                                                                          \
    } while (0)

static char dir[4096];

static inline const char *path_of(const char *name) {
    static char paths[8][4200];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", dir, name);
    return p;
}

static inline struct shmq_stats stats_of(shmq *q) {
    struct shmq_stats s;
    memset(&s, 0xAB, sizeof s);
    CHECK_RC(shmq_stats(q, &s), SHMQ_OK);
    return s;
}

#endif
