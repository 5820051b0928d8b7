/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Produces every status code of the contract by a real call and checks that shmq_strerror names
 * it. Usage: status_codes DIR (an empty scratch directory). Prints one line per code:
 *   "SHMQ_FULL = 1 from shmq_try_send(q, "c", 1): SHMQ_FULL: the queue is full"
 * and exits 0 only if every expectation held.
 */
#define _DEFAULT_SOURCE
#include "shmq.h"

#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CODES 17     /* values 0 to 16 */
#define RESERVED -1  /* no value is reserved now */
#define PARTICIPANTS 512
static int failures;
static int produced[CODES];

static void expect(int got, int want, const char *name, const char *call) {
    const char *text = shmq_strerror(got);
    size_t n = strlen(name);
    if (got != want) {
        fprintf(stderr, "FAIL %s returned %d (%s), expected %s\n", call, got, text, name);
        failures++;
        return;
    }
    if (text == NULL || strncmp(text, name, n) != 0 || text[n] != ':') {
        fprintf(stderr, "FAIL shmq_strerror(%s) = \"%s\" does not name it\n", name,
                text ? text : "(null)");
        failures++;
        return;
    }
    if (want >= 0 && want < CODES) produced[want] = 1;
    printf("%s = %d from %s: %s\n", name, got, call, text);
}
#define EXPECT(call, code) expect((call), (code), #code, #call)

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "FAIL %s\n", what);
        failures++;
    }
}

static void write_file(const char *path, const void *bytes, size_t len, size_t total) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(2);
    }
    fwrite(bytes, 1, len, f);
    for (size_t i = len; i < total; i++) fputc(0, f);
    fclose(f);
}

/* Opening a mode-0600 file that another user owns, as that other user. Root (as in CI
 * containers) may open anything, so a forked child drops to "nobody" first; the child opens its
 * own handle, as the fork rules require. */
static int open_as_other_user(const char *path) {
    if (geteuid() != 0) {
        chmod(path, 0);
        shmq *q = NULL;
        int rc = shmq_open(path, &q);
        shmq_detach(q);
        chmod(path, 0600);
        return rc;
    }
    pid_t child = fork();
    if (child == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0) _exit(100);
        shmq *q = NULL;
        int rc = shmq_open(path, &q);
        shmq_detach(q);
        _exit(rc);
    }
    int status = 0;
    if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status)) return -1;
    if (WEXITSTATUS(status) == 100) fprintf(stderr, "FAIL cannot drop privileges\n");
    return WEXITSTATUS(status);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: status_codes DIR\n");
        return 2;
    }
    char path[4096], other[4096], garbage[4096], old[4096], missing[4096], under_file[4096];
    snprintf(path, sizeof path, "%s/q", argv[1]);
    snprintf(other, sizeof other, "%s/other", argv[1]);
    snprintf(garbage, sizeof garbage, "%s/garbage", argv[1]);
    snprintf(old, sizeof old, "%s/old-version", argv[1]);
    snprintf(missing, sizeof missing, "%s/missing", argv[1]);
    snprintf(under_file, sizeof under_file, "%s/garbage/q", argv[1]);
    shmq *q = NULL, *q2 = NULL;
    char buf[16];
    size_t len = 0;

    EXPECT(shmq_create(path, 2, 8, &q), SHMQ_OK);
    EXPECT(shmq_try_send(q, "too large", 9), SHMQ_TOO_LARGE);
    EXPECT(shmq_try_recv(q, buf, sizeof buf, &len), SHMQ_EMPTY);
    EXPECT(shmq_recv(q, buf, sizeof buf, &len, 1000000), SHMQ_TIMEOUT);
    EXPECT(shmq_try_send(q, "ab", 2), SHMQ_OK);
    EXPECT(shmq_try_send(q, "b", 1), SHMQ_OK);
    EXPECT(shmq_try_send(q, "c", 1), SHMQ_FULL);
    EXPECT(shmq_try_recv(q, buf, 1, &len), SHMQ_BUFFER_TOO_SMALL);
    check(len == 2, "SHMQ_BUFFER_TOO_SMALL reports the needed size in *msg_len");
    EXPECT(shmq_try_recv(q, buf, sizeof buf, &len), SHMQ_OK);
    check(len == 2 && memcmp(buf, "ab", 2) == 0, "SHMQ_BUFFER_TOO_SMALL consumed nothing");
    EXPECT(shmq_try_send(NULL, "x", 1), SHMQ_INVALID_ARGUMENT);
    EXPECT(shmq_create(other, 0, 8, &q2), SHMQ_INVALID_ARGUMENT);
    EXPECT(shmq_create(path, 2, 8, &q2), SHMQ_ALREADY_EXISTS);
    EXPECT(shmq_open(missing, &q2), SHMQ_NOT_FOUND);
    EXPECT(open_as_other_user(path), SHMQ_PERMISSION_DENIED);

    char text[1024];
    memset(text, 'x', sizeof text);
    write_file(garbage, text, sizeof text, sizeof text);
    EXPECT(shmq_open(garbage, &q2), SHMQ_CORRUPT);
    unsigned char header[12] = {'S', 'H', 'M', 'Q', 'U', 'E', 'U', 'E'};
    uint32_t version = 999;
    memcpy(header + 8, &version, sizeof version);
    write_file(old, header, sizeof header, 4096);
    EXPECT(shmq_open(old, &q2), SHMQ_INCOMPATIBLE);
    EXPECT(shmq_open(under_file, &q2), SHMQ_IO); /* ENOTDIR: a path through a regular file */

    EXPECT(shmq_close(q), SHMQ_OK);
    EXPECT(shmq_try_send(q, "d", 1), SHMQ_CLOSED);
    EXPECT(shmq_try_recv(q, buf, sizeof buf, &len), SHMQ_OK); /* "b" was sent before close */
    EXPECT(shmq_try_recv(q, buf, sizeof buf, &len), SHMQ_CLOSED);
    EXPECT(shmq_debug_panic(), SHMQ_INTERNAL);
    shmq_detach(q);
    EXPECT(shmq_unlink(path), SHMQ_OK);

    /* A hold past the queue's visibility timeout: until another receiver takes it the hold is
     * still the holder's (a late extension succeeds); once one has, the holder's extension and
     * acknowledgement say SHMQ_EXPIRED. */
    {
        struct shmq_options opts = {0};
        opts.capacity = 4;
        opts.max_message_size = 8;
        opts.visibility_timeout_ns = 20 * 1000 * 1000;
        shmq *vq = NULL, *vq2 = NULL;
        shmq_message *held = NULL;
        const void *data;
        size_t held_len;
        EXPECT(shmq_create_ex(path, &opts, &vq), SHMQ_OK);
        EXPECT(shmq_open(path, &vq2), SHMQ_OK);
        EXPECT(shmq_try_send(vq, "job", 3), SHMQ_OK);
        EXPECT(shmq_try_recv_in_place(vq, &held, &data, &held_len), SHMQ_OK);
        EXPECT(shmq_extend(held, 10 * 1000 * 1000), SHMQ_OK);
        usleep(40 * 1000);
        /* Past the deadline, nobody scanned: still the holder's. */
        EXPECT(shmq_extend(held, 10 * 1000 * 1000), SHMQ_OK);
        usleep(40 * 1000);
        /* A blocked receive scans for lapsed holds before it sleeps, and takes this one. */
        EXPECT(shmq_recv(vq2, buf, sizeof buf, &len, 2000LL * 1000 * 1000), SHMQ_OK);
        check(len == 3 && memcmp(buf, "job", 3) == 0, "the expired message is received again");
        EXPECT(shmq_extend(held, 10 * 1000 * 1000), SHMQ_EXPIRED);
        check(held_len == 3 && memcmp(data, "job", 3) == 0, "the holder's bytes stay valid");
        EXPECT(shmq_ack(held), SHMQ_EXPIRED);
        EXPECT(shmq_ack(NULL), SHMQ_INVALID_ARGUMENT);
        /* Acknowledged in time: SHMQ_OK, and the message is gone. */
        EXPECT(shmq_try_send(vq, "next", 4), SHMQ_OK);
        EXPECT(shmq_try_recv_in_place(vq2, &held, &data, &held_len), SHMQ_OK);
        EXPECT(shmq_ack(held), SHMQ_OK);
        EXPECT(shmq_try_recv(vq, buf, sizeof buf, &len), SHMQ_EMPTY);
        shmq_detach(vq2);
        shmq_detach(vq);
        EXPECT(shmq_unlink(path), SHMQ_OK);
    }

    /* 512 open handles take every participant entry; the 513th open is refused, and succeeds
     * again once one handle is detached. */
    static shmq *handles[PARTICIPANTS];
    EXPECT(shmq_create(path, 2, 8, &handles[0]), SHMQ_OK);
    int opened = 1;
    while (opened < PARTICIPANTS && shmq_open(path, &handles[opened]) == SHMQ_OK) opened++;
    check(opened == PARTICIPANTS, "512 handles can be open on one queue");
    EXPECT(shmq_open(path, &q2), SHMQ_TOO_MANY_HANDLES);
    check(q2 == NULL, "a refused open sets *out to NULL");
    shmq_detach(handles[--opened]);
    EXPECT(shmq_open(path, &q2), SHMQ_OK);
    shmq_detach(q2);
    while (opened > 0) shmq_detach(handles[--opened]);
    EXPECT(shmq_unlink(path), SHMQ_OK);

    /* Every code was produced, the values are distinct, and unknown values are named too. */
    for (int c = 0; c < CODES; c++) {
        if (c != RESERVED && !produced[c]) {
            fprintf(stderr, "FAIL status %d (%s) was never produced\n", c, shmq_strerror(c));
            failures++;
        }
    }
    int unknown[] = {-1, RESERVED, CODES, 1000, INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *t = shmq_strerror(unknown[i]);
        check(t != NULL && strncmp(t, "SHMQ_UNKNOWN:", 13) == 0, "unknown codes are named");
    }
    printf("%d codes produced, %d failures\n", CODES, failures);
    return failures == 0 ? 0 : 1;
}
