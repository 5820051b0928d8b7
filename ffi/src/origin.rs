// SPDX-License-Identifier: MIT OR Apache-2.0
//! `shmq_message_origin`: where a message in a dead-letter queue came from (the source queue's
//! identity, its creation time, and the message's id there).

use crate::status::{guarded, SHMQ_INVALID_ARGUMENT};
use crate::zero_copy::shmq_message;
use std::ffi::c_int;

/// Writes the message's origin to `*queue` and `*id` (both 0 for a message that was not
/// dead-lettered). See `shmq.h`.
///
/// # Safety
/// `m` is NULL or a message from this library, not yet released; `queue` and `id` are NULL or
/// valid for writing a `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn shmq_message_origin(
    m: *const shmq_message,
    queue: *mut u64,
    id: *mut u64,
) -> c_int {
    guarded(|| {
        // SAFETY: a non-NULL `m` points at a live boxed message by the caller's promise.
        let m = unsafe { m.as_ref() }.ok_or(SHMQ_INVALID_ARGUMENT)?;
        if queue.is_null() || id.is_null() {
            return Err(SHMQ_INVALID_ARGUMENT);
        }
        let (from, from_id) = m.guard.origin().map_or((0, 0), |o| (o.queue, o.id));
        // SAFETY: both are non-NULL and valid for writing a `uint64_t` by the caller's promise.
        unsafe {
            queue.write(from);
            id.write(from_id);
        }
        Ok(())
    })
}
