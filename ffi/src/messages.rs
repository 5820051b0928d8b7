// SPDX-License-Identifier: MIT OR Apache-2.0
//! Sending and receiving by copy: one message (`shmq_send`, `shmq_recv` and their `try_` forms,
//! and `shmq_recv_meta`, which also reports the delivery count) or many at once
//! (`shmq_send_batch`, `shmq_recv_batch`).

use crate::handle::{queue, shmq};
use crate::status::{guarded, status_of, SHMQ_BUFFER_TOO_SMALL, SHMQ_INVALID_ARGUMENT};
use crate::timeout::Wait;
use shmq_core::{Error, Queue, Received};
use std::ffi::{c_int, c_void};

/// One message to send in a batch (`shmq_buf` in C).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(non_camel_case_types)]
pub struct shmq_buf {
    /// The message's bytes; may be NULL when `len` is 0.
    pub data: *const c_void,
    /// Length of the message in bytes.
    pub len: usize,
}

/// Called once per message by `shmq_recv_batch`, in order, with the message in place.
#[allow(non_camel_case_types)]
pub type shmq_recv_fn = Option<unsafe extern "C" fn(*mut c_void, *const c_void, usize)>;

/// A `(pointer, length)` pair from C as a slice; NULL is allowed only for an empty one.
///
/// # Safety
/// Unless NULL, `data` is valid for reading `len` bytes that stay unchanged for `'a`.
unsafe fn bytes<'a>(data: *const c_void, len: usize) -> Result<&'a [u8], c_int> {
    if len == 0 {
        return Ok(&[]);
    }
    if data.is_null() || len > isize::MAX as usize {
        return Err(SHMQ_INVALID_ARGUMENT);
    }
    // SAFETY: non-NULL, `len` readable bytes by the caller's promise, `len <= isize::MAX`.
    Ok(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
}

/// A writable C buffer as a slice; NULL is allowed only for an empty one.
///
/// # Safety
/// Unless NULL, `buf` is valid for writing `len` bytes, not otherwise accessed for `'a`.
unsafe fn bytes_mut<'a>(buf: *mut c_void, len: usize) -> Result<&'a mut [u8], c_int> {
    if len == 0 {
        return Ok(&mut []);
    }
    if buf.is_null() {
        return Err(SHMQ_INVALID_ARGUMENT);
    }
    // A buffer may be larger than any message: only `isize::MAX` bytes of it are ever used.
    let len = len.min(isize::MAX as usize);
    // SAFETY: non-NULL, writable for `len` bytes and unaliased by the caller's promise.
    Ok(unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), len) })
}

fn send(q: &Queue, msg: &[u8], wait: Wait) -> shmq_core::Result<()> {
    match wait {
        Wait::No => q.try_send(msg),
        Wait::For(timeout) => q.send_timeout(msg, timeout),
        Wait::Forever => q.send(msg),
    }
}

/// # Safety
/// As for [`shmq_send`].
unsafe fn send_c(q: *mut shmq, data: *const c_void, len: usize, wait: Wait) -> c_int {
    guarded(|| {
        // SAFETY: by the caller's promises on `q`, `data` and `len`.
        let (q, msg) = unsafe { (queue(q)?, bytes(data, len)?) };
        send(q, msg, wait).map_err(|e| status_of(&e))
    })
}

/// Sends one message if there is room now. See `shmq.h`.
///
/// # Safety
/// `q` is NULL or a live handle; `data` is NULL or valid for reading `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn shmq_try_send(q: *mut shmq, data: *const c_void, len: usize) -> c_int {
    // SAFETY: the same promises.
    unsafe { send_c(q, data, len, Wait::No) }
}

/// Sends one message, waiting for room up to `timeout_ns`. See `shmq.h`.
///
/// # Safety
/// `q` is NULL or a live handle; `data` is NULL or valid for reading `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn shmq_send(
    q: *mut shmq,
    data: *const c_void,
    len: usize,
    timeout_ns: i64,
) -> c_int {
    // SAFETY: the same promises.
    unsafe { send_c(q, data, len, Wait::from_ns(timeout_ns)) }
}

fn recv(q: &Queue, buf: &mut [u8], wait: Wait) -> shmq_core::Result<Received> {
    match wait {
        Wait::No => q.try_recv_meta(buf),
        Wait::For(timeout) => q.recv_meta_timeout(buf, timeout),
        Wait::Forever => q.recv_meta(buf),
    }
}

/// Receives into `buf`; writes the length to `*msg_len` (on success and on
/// `SHMQ_BUFFER_TOO_SMALL`) and the delivery count to `*deliveries` (on success, if not NULL).
///
/// # Safety
/// As for [`shmq_recv_meta`].
unsafe fn recv_c(
    q: *mut shmq,
    buf: *mut c_void,
    buf_len: usize,
    msg_len: *mut usize,
    deliveries: *mut u32,
    wait: Wait,
) -> c_int {
    guarded(|| {
        // SAFETY: by the caller's promises on `q`, `buf` and `buf_len`.
        let (q, buf) = unsafe { (queue(q)?, bytes_mut(buf, buf_len)?) };
        if msg_len.is_null() {
            return Err(SHMQ_INVALID_ARGUMENT);
        }
        let (len, result) = match recv(q, buf, wait) {
            Ok(received) => {
                if !deliveries.is_null() {
                    // SAFETY: non-NULL, so writable by the caller's promise.
                    unsafe { deliveries.write(received.deliveries) };
                }
                (received.len, Ok(()))
            }
            Err(Error::BufferTooSmall { needed }) => (needed, Err(SHMQ_BUFFER_TOO_SMALL)),
            Err(e) => return Err(status_of(&e)),
        };
        // SAFETY: `msg_len` is non-NULL and writable by the caller's promise.
        unsafe { msg_len.write(len) };
        result
    })
}

/// Receives one message into `buf` if one is ready. See `shmq.h`.
///
/// # Safety
/// `q` is NULL or a live handle; `buf` is NULL or valid for writing `buf_len` bytes; `msg_len` is
/// NULL or valid for writing a `size_t`.
#[no_mangle]
pub unsafe extern "C" fn shmq_try_recv(
    q: *mut shmq,
    buf: *mut c_void,
    buf_len: usize,
    msg_len: *mut usize,
) -> c_int {
    // SAFETY: the same promises.
    unsafe { recv_c(q, buf, buf_len, msg_len, std::ptr::null_mut(), Wait::No) }
}

/// Receives one message into `buf`, waiting up to `timeout_ns`. See `shmq.h`.
///
/// # Safety
/// As for [`shmq_try_recv`].
#[no_mangle]
pub unsafe extern "C" fn shmq_recv(
    q: *mut shmq,
    buf: *mut c_void,
    buf_len: usize,
    msg_len: *mut usize,
    timeout_ns: i64,
) -> c_int {
    // SAFETY: the same promises.
    unsafe {
        recv_c(
            q,
            buf,
            buf_len,
            msg_len,
            std::ptr::null_mut(),
            Wait::from_ns(timeout_ns),
        )
    }
}

/// As [`shmq_recv`], also storing the message's delivery count in `*deliveries` (NULL is fine).
/// See `shmq.h`.
///
/// # Safety
/// As for [`shmq_try_recv`]; `deliveries` is NULL or valid for writing a `uint32_t`.
#[no_mangle]
pub unsafe extern "C" fn shmq_recv_meta(
    q: *mut shmq,
    buf: *mut c_void,
    buf_len: usize,
    msg_len: *mut usize,
    deliveries: *mut u32,
    timeout_ns: i64,
) -> c_int {
    // SAFETY: the same promises.
    unsafe {
        recv_c(
            q,
            buf,
            buf_len,
            msg_len,
            deliveries,
            Wait::from_ns(timeout_ns),
        )
    }
}

/// Sends a prefix of `msgs`: as many as there is room for once room for the first one came.
fn send_batch(q: &Queue, msgs: &[&[u8]], wait: Wait) -> shmq_core::Result<usize> {
    match wait {
        Wait::No => q.try_send_batch(msgs),
        Wait::Forever => q.send_batch(msgs),
        // The core has no timed batch send: wait for room for the first message alone, then add
        // whatever else fits now. Lengths were all checked before, so nothing is half-sent for
        // `TooLarge`; any later failure is reported by the next call.
        Wait::For(timeout) => {
            q.send_timeout(msgs[0], timeout)?;
            Ok(1 + q.try_send_batch(&msgs[1..]).unwrap_or(0))
        }
    }
}

/// # Safety
/// As for [`shmq_send_batch`].
unsafe fn send_batch_c(
    q: *mut shmq,
    msgs: *const shmq_buf,
    count: usize,
    sent: *mut usize,
    wait: Wait,
) -> c_int {
    guarded(|| {
        // SAFETY: by the caller's promise on `q`.
        let q = unsafe { queue(q) }?;
        if sent.is_null() {
            return Err(SHMQ_INVALID_ARGUMENT);
        }
        // SAFETY: `sent` is non-NULL and writable by the caller's promise.
        unsafe { sent.write(0) };
        if count == 0 {
            return Ok(());
        }
        if msgs.is_null() || count > isize::MAX as usize / std::mem::size_of::<shmq_buf>() {
            return Err(SHMQ_INVALID_ARGUMENT);
        }
        // SAFETY: non-NULL, an array of `count` entries by the caller's promise, and at most
        // `isize::MAX` bytes (checked above).
        let entries = unsafe { std::slice::from_raw_parts(msgs, count) };
        let max = q.max_message_size();
        let mut views = Vec::with_capacity(count);
        for entry in entries {
            // SAFETY: every entry's `data` is NULL or readable for `len` bytes (caller's promise).
            let msg = unsafe { bytes(entry.data, entry.len) }?;
            if msg.len() > max {
                return Err(status_of(&Error::TooLarge {
                    len: msg.len(),
                    max,
                }));
            }
            views.push(msg);
        }
        let n = send_batch(q, &views, wait).map_err(|e| status_of(&e))?;
        // SAFETY: as above.
        unsafe { sent.write(n) };
        Ok(())
    })
}

/// Sends as many of `msgs` as there is room for now. See `shmq.h`.
///
/// # Safety
/// `q` is NULL or a live handle; `msgs` is NULL or an array of `count` `shmq_buf` whose `data`
/// is NULL or readable for `len` bytes; `sent` is NULL or valid for writing a `size_t`.
#[no_mangle]
pub unsafe extern "C" fn shmq_try_send_batch(
    q: *mut shmq,
    msgs: *const shmq_buf,
    count: usize,
    sent: *mut usize,
) -> c_int {
    // SAFETY: the same promises.
    unsafe { send_batch_c(q, msgs, count, sent, Wait::No) }
}

/// Sends a prefix of `msgs`, waiting up to `timeout_ns` for room for the first. See `shmq.h`.
///
/// # Safety
/// As for [`shmq_try_send_batch`].
#[no_mangle]
pub unsafe extern "C" fn shmq_send_batch(
    q: *mut shmq,
    msgs: *const shmq_buf,
    count: usize,
    sent: *mut usize,
    timeout_ns: i64,
) -> c_int {
    // SAFETY: the same promises.
    unsafe { send_batch_c(q, msgs, count, sent, Wait::from_ns(timeout_ns)) }
}

/// # Safety
/// As for [`shmq_recv_batch`].
unsafe fn recv_batch_c(
    q: *mut shmq,
    max: usize,
    each: shmq_recv_fn,
    ctx: *mut c_void,
    received: *mut usize,
    wait: Wait,
) -> c_int {
    guarded(|| {
        // SAFETY: by the caller's promise on `q`.
        let q = unsafe { queue(q) }?;
        let (Some(each), false) = (each, received.is_null()) else {
            return Err(SHMQ_INVALID_ARGUMENT);
        };
        let mut calls = 0usize;
        let call = |msg: &[u8]| {
            calls += 1;
            // SAFETY: `each` is a C function that takes any `ctx` the caller gave us and reads
            // the `len` bytes at `data` only during the call, while we hold the slot.
            unsafe { each(ctx, msg.as_ptr().cast(), msg.len()) }
        };
        let result = match wait {
            Wait::No => q.try_recv_batch(max, call),
            Wait::For(timeout) => q.recv_batch_timeout(max, timeout, call),
            Wait::Forever => q.recv_batch(max, call),
        };
        // SAFETY: `received` is non-NULL and writable by the caller's promise.
        unsafe { received.write(calls) };
        result.map(drop).map_err(|e| status_of(&e))
    })
}

/// Receives up to `max` ready messages, calling `each` on every one in place. See `shmq.h`.
///
/// # Safety
/// `q` is NULL or a live handle; `each` is NULL or a function that does not unwind; `received`
/// is NULL or valid for writing a `size_t`.
#[no_mangle]
pub unsafe extern "C" fn shmq_try_recv_batch(
    q: *mut shmq,
    max: usize,
    each: shmq_recv_fn,
    ctx: *mut c_void,
    received: *mut usize,
) -> c_int {
    // SAFETY: the same promises.
    unsafe { recv_batch_c(q, max, each, ctx, received, Wait::No) }
}

/// Like [`shmq_try_recv_batch`], waiting up to `timeout_ns` for the first message. See `shmq.h`.
///
/// # Safety
/// As for [`shmq_try_recv_batch`].
#[no_mangle]
pub unsafe extern "C" fn shmq_recv_batch(
    q: *mut shmq,
    max: usize,
    each: shmq_recv_fn,
    ctx: *mut c_void,
    received: *mut usize,
    timeout_ns: i64,
) -> c_int {
    // SAFETY: the same promises.
    unsafe { recv_batch_c(q, max, each, ctx, received, Wait::from_ns(timeout_ns)) }
}
