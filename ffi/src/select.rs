// SPDX-License-Identifier: MIT OR Apache-2.0
//! Waiting on many queues at once: `shmq_wait_any`, the C face of `shmq::Select`.

use crate::handle::{queue, shmq};
use crate::status::{guarded, status_of, SHMQ_EMPTY, SHMQ_FULL, SHMQ_INVALID_ARGUMENT};
use crate::timeout::Wait;
use shmq_core::{Error, Select};
use std::ffi::c_int;

/// Waits until one of `n` queues has a message (`want_recv` != 0) or room (`want_recv` == 0),
/// as `timeout_ns` allows, and stores its index in `*ready`. See `shmq.h`.
///
/// # Safety
/// `queues` is NULL or points at `n` handle pointers, each NULL or a live handle; `ready` is
/// NULL or valid for writing a `size_t`.
#[no_mangle]
pub unsafe extern "C" fn shmq_wait_any(
    queues: *const *mut shmq,
    n: usize,
    want_recv: c_int,
    timeout_ns: i64,
    ready: *mut usize,
) -> c_int {
    guarded(|| {
        if queues.is_null() || ready.is_null() || n == 0 || n > isize::MAX as usize / 8 {
            return Err(SHMQ_INVALID_ARGUMENT);
        }
        // SAFETY: non-NULL, and by the caller's promise `n` readable handle pointers.
        let handles = unsafe { std::slice::from_raw_parts(queues, n) };
        let mut select = Select::new();
        for &h in handles {
            // SAFETY: each entry is NULL (refused here) or a live handle, by the same promise.
            let q = unsafe { queue(h)? };
            if want_recv != 0 {
                select.recv(q);
            } else {
                select.send(q);
            }
        }
        let index = match Wait::from_ns(timeout_ns) {
            Wait::No => select.try_ready().ok_or(if want_recv != 0 {
                SHMQ_EMPTY
            } else {
                SHMQ_FULL
            })?,
            Wait::For(timeout) => select
                .ready_timeout(timeout)
                .map_err(|e: Error| status_of(&e))?,
            Wait::Forever => select.ready().map_err(|e| status_of(&e))?,
        };
        // SAFETY: `ready` is non-NULL and writable by the caller's promise.
        unsafe { ready.write(index) };
        Ok(())
    })
}
