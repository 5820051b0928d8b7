// SPDX-License-Identifier: MIT OR Apache-2.0
//! Zero-copy calls: reserve a slot, write the message in place, commit (`shmq_reserve`,
//! `shmq_commit`, `shmq_cancel`); receive a message in place and release its slot
//! (`shmq_recv_in_place`, `shmq_release`).
//!
//! The C side holds an opaque pointer to a boxed core guard (`SendGuard` or `RecvGuard`) next to
//! a strong reference to the handle the guard borrows. Detaching the handle first is therefore
//! safe: the mapping stays until the last guard is gone. Each guard costs one small allocation.

use crate::handle::{share, shmq};
use crate::status::{boundary, guarded, status_of, SHMQ_INVALID_ARGUMENT};
use crate::timeout::Wait;
use shmq_core::{Queue, RecvGuard, SendGuard};
use std::ffi::{c_int, c_void};
use std::sync::Arc;

/// A reserved slot, written in place by C (`shmq_reservation *`).
#[allow(non_camel_case_types)]
pub struct shmq_reservation {
    // Field order is drop order: the guard, which borrows `owner`'s queue, goes first.
    guard: SendGuard<'static>,
    owner: Arc<shmq>,
}

/// A received message lent in place (`shmq_message *`).
#[allow(non_camel_case_types)]
pub struct shmq_message {
    // Field order is drop order: the guard, which borrows `owner`'s queue, goes first.
    pub(crate) guard: RecvGuard<'static>,
    owner: Arc<shmq>,
}

/// The queue inside `owner`, borrowed for as long as the caller keeps `owner` alive.
///
/// # Safety
/// The returned reference must not be used after `owner` (this clone of the `Arc`) is dropped.
unsafe fn extend(owner: &Arc<shmq>) -> &'static Queue {
    // SAFETY: the `shmq` lives on the heap, inside the `Arc`, and does not move while any strong
    // reference exists; the caller keeps `owner` at least as long as the reference.
    unsafe { &(*Arc::as_ptr(owner)).queue }
}

/// Validates the output pointers, claims with `take`, and hands the boxed guard to C.
///
/// # Safety
/// `q` is NULL or a live handle; `out`, `data` and `len` are NULL or valid for writing.
unsafe fn claim_c<G, P, B>(
    q: *mut shmq,
    out: *mut *mut B,
    data: *mut *mut P,
    len: *mut usize,
    take: impl FnOnce(&'static Queue) -> shmq_core::Result<G>,
    view: impl FnOnce(&mut G) -> (*mut P, usize),
    wrap: impl FnOnce(G, Arc<shmq>) -> B,
) -> c_int {
    guarded(|| {
        if out.is_null() || data.is_null() || len.is_null() {
            return Err(SHMQ_INVALID_ARGUMENT);
        }
        // SAFETY: `out` is non-NULL and writable by the caller's promise.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: by the caller's promise on `q`.
        let owner = unsafe { share(q) }?;
        // SAFETY: `wrap` stores the guard made from this reference beside `owner`, and the box
        // drops the guard first (field order), so the reference never outlives `owner`.
        let queue = unsafe { extend(&owner) };
        let mut guard = take(queue).map_err(|e| status_of(&e))?;
        let (ptr, n) = view(&mut guard);
        let boxed = Box::into_raw(Box::new(wrap(guard, owner)));
        // SAFETY: all three are non-NULL and writable by the caller's promise.
        unsafe {
            data.write(ptr);
            len.write(n);
            out.write(boxed);
        }
        Ok(())
    })
}

/// # Safety
/// As for [`shmq_reserve`].
unsafe fn reserve_c(
    q: *mut shmq,
    out: *mut *mut shmq_reservation,
    data: *mut *mut c_void,
    capacity: *mut usize,
    wait: Wait,
) -> c_int {
    // SAFETY: the caller's promises are those of `claim_c`.
    unsafe {
        claim_c(
            q,
            out,
            data,
            capacity,
            |q| match wait {
                Wait::No => q.try_reserve(),
                Wait::For(timeout) => q.reserve_timeout(timeout),
                Wait::Forever => q.reserve(),
            },
            // The payload pointer stays valid after the guard moves into its box: it points
            // into the mapping, not into the guard.
            |g: &mut SendGuard<'static>| (g.as_mut_ptr().cast(), g.len()),
            |guard, owner| shmq_reservation { guard, owner },
        )
    }
}

/// Reserves a slot to write in place, if there is room now. See `shmq.h`.
///
/// # Safety
/// `q` is NULL or a live handle; `out`, `data` and `capacity` are NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn shmq_try_reserve(
    q: *mut shmq,
    out: *mut *mut shmq_reservation,
    data: *mut *mut c_void,
    capacity: *mut usize,
) -> c_int {
    // SAFETY: the same promises.
    unsafe { reserve_c(q, out, data, capacity, Wait::No) }
}

/// Reserves a slot to write in place, waiting up to `timeout_ns` for room. See `shmq.h`.
///
/// # Safety
/// As for [`shmq_try_reserve`].
#[no_mangle]
pub unsafe extern "C" fn shmq_reserve(
    q: *mut shmq,
    out: *mut *mut shmq_reservation,
    data: *mut *mut c_void,
    capacity: *mut usize,
    timeout_ns: i64,
) -> c_int {
    // SAFETY: the same promises.
    unsafe { reserve_c(q, out, data, capacity, Wait::from_ns(timeout_ns)) }
}

/// Publishes the first `len` bytes of the reservation as one message; always consumes `r`.
/// See `shmq.h`.
///
/// # Safety
/// `r` is NULL or a reservation from this library, not yet committed or cancelled, and not used
/// by another thread during the call.
#[no_mangle]
pub unsafe extern "C" fn shmq_commit(r: *mut shmq_reservation, len: usize) -> c_int {
    guarded(|| {
        if r.is_null() {
            return Err(SHMQ_INVALID_ARGUMENT);
        }
        // SAFETY: `r` came from `Box::into_raw` and the caller gives it back.
        let shmq_reservation { guard, owner } = *unsafe { Box::from_raw(r) };
        // On `TooLarge` the guard is dropped, which cancels the send.
        let result = guard.commit(len).map_err(|e| status_of(&e));
        drop(owner);
        result
    })
}

/// Gives the reserved slot back unwritten; NULL is ignored. See `shmq.h`.
///
/// # Safety
/// As for [`shmq_commit`].
#[no_mangle]
pub unsafe extern "C" fn shmq_cancel(r: *mut shmq_reservation) {
    boundary((), || {
        if !r.is_null() {
            // SAFETY: `r` came from `Box::into_raw` and the caller gives it back; dropping the
            // guard cancels the send.
            drop(unsafe { Box::from_raw(r) });
        }
    })
}

/// # Safety
/// As for [`shmq_recv_in_place`].
unsafe fn recv_in_place_c(
    q: *mut shmq,
    out: *mut *mut shmq_message,
    data: *mut *const c_void,
    len: *mut usize,
    wait: Wait,
) -> c_int {
    // SAFETY: the caller's promises are those of `claim_c`; the message is only read through
    // `*data` (the C type is `const void *`), the cast to `*mut` is only for the shared helper.
    unsafe {
        claim_c(
            q,
            out,
            data.cast::<*mut c_void>(),
            len,
            |q| match wait {
                Wait::No => q.try_recv_in_place(),
                Wait::For(timeout) => q.recv_in_place_timeout(timeout),
                Wait::Forever => q.recv_in_place(),
            },
            // As for reservations, the bytes are in the mapping, not in the guard.
            |g: &mut RecvGuard<'static>| (g.as_ptr().cast_mut().cast(), g.len()),
            |guard, owner| shmq_message { guard, owner },
        )
    }
}

/// Receives the next message in place, if one is ready. See `shmq.h`.
///
/// # Safety
/// `q` is NULL or a live handle; `out`, `data` and `len` are NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn shmq_try_recv_in_place(
    q: *mut shmq,
    out: *mut *mut shmq_message,
    data: *mut *const c_void,
    len: *mut usize,
) -> c_int {
    // SAFETY: the same promises.
    unsafe { recv_in_place_c(q, out, data, len, Wait::No) }
}

/// Receives the next message in place, waiting up to `timeout_ns`. See `shmq.h`.
///
/// # Safety
/// As for [`shmq_try_recv_in_place`].
#[no_mangle]
pub unsafe extern "C" fn shmq_recv_in_place(
    q: *mut shmq,
    out: *mut *mut shmq_message,
    data: *mut *const c_void,
    len: *mut usize,
    timeout_ns: i64,
) -> c_int {
    // SAFETY: the same promises.
    unsafe { recv_in_place_c(q, out, data, len, Wait::from_ns(timeout_ns)) }
}

/// How many times a consumer has claimed this message, this time included; 0 for NULL.
/// See `shmq.h`.
///
/// # Safety
/// `m` is NULL or a message from this library, not yet released.
#[no_mangle]
pub unsafe extern "C" fn shmq_message_deliveries(m: *const shmq_message) -> u32 {
    boundary(0, || {
        // SAFETY: a non-NULL `m` points at a live boxed message by the caller's promise.
        unsafe { m.as_ref() }.map_or(0, |m| m.guard.deliveries())
    })
}

/// The message's id, unique within the queue file and the same on every delivery; 0 for NULL.
/// See `shmq.h`.
///
/// # Safety
/// `m` is NULL or a message from this library, not yet released.
#[no_mangle]
pub unsafe extern "C" fn shmq_message_id(m: *const shmq_message) -> u64 {
    boundary(0, || {
        // SAFETY: a non-NULL `m` points at a live boxed message by the caller's promise.
        unsafe { m.as_ref() }.map_or(0, |m| m.guard.id())
    })
}

/// Frees the message's slot for producers; NULL is ignored. See `shmq.h`.
///
/// # Safety
/// `m` is NULL or a message from this library, not yet released, and not used by another thread
/// during the call.
#[no_mangle]
pub unsafe extern "C" fn shmq_release(m: *mut shmq_message) {
    boundary((), || {
        if !m.is_null() {
            // SAFETY: `m` came from `Box::into_raw` and the caller gives it back.
            let shmq_message { guard, owner } = *unsafe { Box::from_raw(m) };
            // Free the slot, then let go of the handle the guard borrowed.
            drop(guard);
            drop(owner);
        }
    })
}

/// Acknowledges the message and frees its slot; `SHMQ_EXPIRED` if it was handed out again
/// first. See `shmq.h`.
///
/// # Safety
/// `m` is NULL or a message from this library, not yet released, and not used by another thread
/// during the call.
#[no_mangle]
pub unsafe extern "C" fn shmq_ack(m: *mut shmq_message) -> c_int {
    guarded(|| {
        if m.is_null() {
            return Err(SHMQ_INVALID_ARGUMENT);
        }
        // SAFETY: `m` came from `Box::into_raw` and the caller gives it back.
        let shmq_message { guard, owner } = *unsafe { Box::from_raw(m) };
        let acked = guard.ack();
        drop(owner);
        acked.map_err(|e| status_of(&e))
    })
}

/// Resets the hold's timer to `timeout_ns` from now. See `shmq.h`.
///
/// # Safety
/// `m` is NULL or a message from this library, not yet released.
#[no_mangle]
pub unsafe extern "C" fn shmq_extend(m: *const shmq_message, timeout_ns: i64) -> c_int {
    guarded(|| {
        // SAFETY: a non-NULL `m` points at a live boxed message by the caller's promise.
        let Some(m) = (unsafe { m.as_ref() }) else {
            return Err(SHMQ_INVALID_ARGUMENT);
        };
        let Ok(ns) = u64::try_from(timeout_ns) else {
            return Err(SHMQ_INVALID_ARGUMENT);
        };
        m.guard
            .extend(std::time::Duration::from_nanos(ns))
            .map_err(|e| status_of(&e))
    })
}
