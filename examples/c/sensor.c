/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * sensor: a C producer of typed messages. Creates a queue whose messages are `struct reading`,
 * sends COUNT readings (each one struct, sent as its bytes), then closes the queue. A Rust
 * program receives the same struct with `shmq::Typed<Reading>` (examples/sensor_monitor.rs):
 * both sides declare it with the same fields in the same order, `#[repr(C)]` on the Rust side,
 * and neither has padding, so the bytes mean the same thing to both.
 *
 * Build:  cc -std=c11 examples/c/sensor.c $(pkg-config --cflags --libs shmq) -o sensor
 * Run:    ./sensor /dev/shm/shmq-sensor 1000 & cargo run --example sensor_monitor /dev/shm/shmq-sensor
 */
#include <shmq.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The message. In Rust:
 *   #[repr(C)]
 *   #[derive(Clone, Copy, Pod, Zeroable)]
 *   struct Reading { seq: u64, celsius: f64, sensor: u32, flags: u32 }
 */
struct reading {
    uint64_t seq;    /* 0, 1, 2, ... */
    double celsius;  /* 20 + seq / 4 */
    uint32_t sensor; /* seq % 4 */
    uint32_t flags;  /* READING_LAST on the last reading */
};
#define READING_LAST 1u
_Static_assert(sizeof(struct reading) == 24, "struct reading has no padding");

#define TIMEOUT_NS 5000000000LL /* give up if nobody makes room for 5 s */

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "/dev/shm/shmq-sensor";
    long count = argc > 2 ? strtol(argv[2], NULL, 10) : 1000;

    shmq *q;
    int rc = shmq_create(path, 64, sizeof(struct reading), &q);
    if (rc != SHMQ_OK) {
        fprintf(stderr, "sensor: %s: %s\n", path, shmq_strerror(rc));
        return 1;
    }
    for (long i = 0; i < count && rc == SHMQ_OK; i++) {
        struct reading r = {
            .seq = (uint64_t)i,
            .celsius = 20.0 + (double)i / 4.0,
            .sensor = (uint32_t)(i % 4),
            .flags = i == count - 1 ? READING_LAST : 0,
        };
        rc = shmq_send(q, &r, sizeof r, TIMEOUT_NS);
    }
    if (rc != SHMQ_OK) fprintf(stderr, "sensor: send: %s\n", shmq_strerror(rc));
    shmq_close(q); /* the monitor receives what was sent, then SHMQ_CLOSED / Error::Closed */
    shmq_detach(q);
    return rc == SHMQ_OK ? 0 : 1;
}
