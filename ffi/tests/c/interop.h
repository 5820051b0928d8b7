/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The message stream of the interop tests, shared with tests/interop.rs: message `i` is
 * 8 + i % 57 bytes: `i` as a native-endian uint64_t, then bytes (uint8_t)(i + k). */
#ifndef INTEROP_H
#define INTEROP_H

#include <stdint.h>
#include <string.h>

#define INTEROP_TIMEOUT_NS 10000000000LL /* a peer silent for 10 s has failed */

static inline size_t message_len(uint64_t i) { return 8 + (size_t)(i % 57); }

static inline void fill_message(uint64_t i, unsigned char *out) {
    memcpy(out, &i, sizeof i);
    for (size_t k = 0; k < message_len(i) - 8; k++) out[8 + k] = (unsigned char)(i + k);
}

/* 1 if `data` is exactly message `i`. */
static inline int is_message(uint64_t i, const unsigned char *data, size_t len) {
    unsigned char want[64];
    if (len != message_len(i)) return 0;
    fill_message(i, want);
    return memcmp(want, data, len) == 0;
}

#endif
