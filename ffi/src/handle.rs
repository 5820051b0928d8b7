// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `shmq *` handle: creating (with `struct shmq_options` for the `_ex` forms), opening,
//! detaching and closing queues, and `shmq_stats`.
//!
//! A handle is an `Arc<shmq>` turned into a raw pointer: `shmq_detach` drops the C caller's
//! reference, and every reservation and in-place message holds another, so the mapping outlives
//! whatever still points into it.

use crate::status::{guarded, status_of, SHMQ_INVALID_ARGUMENT};
use shmq_core::{OnConsumerDeath, Options, Queue};
use std::ffi::{c_char, c_int, CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

/// The opaque C handle on one open queue (`typedef struct shmq shmq;`).
#[allow(non_camel_case_types)]
pub struct shmq {
    pub(crate) queue: Queue,
}

/// The queue behind a handle pointer, or `SHMQ_INVALID_ARGUMENT` for NULL.
///
/// # Safety
/// `q` is NULL or a handle returned by this library and not yet detached; the handle stays live
/// for `'a` (the C caller promises not to detach it while a call on it runs).
pub(crate) unsafe fn queue<'a>(q: *const shmq) -> Result<&'a Queue, c_int> {
    // SAFETY: by the caller's promise, a non-NULL `q` points at the `shmq` inside a live `Arc`.
    unsafe { q.as_ref() }
        .map(|h| &h.queue)
        .ok_or(SHMQ_INVALID_ARGUMENT)
}

/// A new strong reference to the handle `q`, for guards that must keep the mapping alive.
///
/// # Safety
/// As for [`queue`].
pub(crate) unsafe fn share(q: *const shmq) -> Result<Arc<shmq>, c_int> {
    if q.is_null() {
        return Err(SHMQ_INVALID_ARGUMENT);
    }
    // SAFETY: a live handle is a pointer from `Arc::into_raw` whose reference the C caller still
    // holds, so the count is at least one; we add one and take ownership of that new reference.
    unsafe {
        Arc::increment_strong_count(q);
        Ok(Arc::from_raw(q))
    }
}

/// Converts the C path argument.
///
/// # Safety
/// `path` is NULL or points to a NUL-terminated string that lives for `'a`.
pub(crate) unsafe fn path<'a>(path: *const c_char) -> Result<&'a Path, c_int> {
    if path.is_null() {
        return Err(SHMQ_INVALID_ARGUMENT);
    }
    // SAFETY: non-NULL, and NUL-terminated and live by the caller's promise.
    let bytes = unsafe { CStr::from_ptr(path) }.to_bytes();
    if bytes.is_empty() {
        return Err(SHMQ_INVALID_ARGUMENT);
    }
    Ok(Path::new(OsStr::from_bytes(bytes)))
}

/// Validates the arguments of the open calls, runs `open`, and stores the new handle in `*out`
/// (NULL on failure).
///
/// # Safety
/// `path` as for [`path`]; `out` is NULL or valid for writing a pointer.
unsafe fn open_with(
    path_arg: *const c_char,
    out: *mut *mut shmq,
    open: impl FnOnce(&Path) -> shmq_core::Result<Queue>,
) -> c_int {
    guarded(|| {
        if out.is_null() {
            return Err(SHMQ_INVALID_ARGUMENT);
        }
        // SAFETY: `out` is non-NULL and writable by the caller's promise.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: by the caller's promise on `path_arg`.
        let path = unsafe { path(path_arg) }?;
        let queue = open(path).map_err(|e| status_of(&e))?;
        let handle = Arc::into_raw(Arc::new(shmq { queue })).cast_mut();
        // SAFETY: as above.
        unsafe { out.write(handle) };
        Ok(())
    })
}

/// Creates a queue file at `path` (mode 0600) and opens it. See `shmq.h`.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `out` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn shmq_create(
    path: *const c_char,
    capacity: u32,
    max_message_size: u32,
    out: *mut *mut shmq,
) -> c_int {
    // SAFETY: the caller's promises are those of `open_with`.
    unsafe {
        open_with(path, out, |p| {
            Queue::create(p, Options::new(capacity, max_message_size))
        })
    }
}

/// `SHMQ_ON_CONSUMER_DEATH_REDELIVER`: a dead consumer's message is given back to the queue.
pub const SHMQ_ON_CONSUMER_DEATH_REDELIVER: u32 = 0;
/// `SHMQ_ON_CONSUMER_DEATH_DROP`: a dead consumer's message is dropped.
pub const SHMQ_ON_CONSUMER_DEATH_DROP: u32 = 1;

/// How to create a queue (`struct shmq_options` in C), for the `_ex` calls.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub struct shmq_options {
    /// Number of slots: 1 to 2^24 (any number).
    pub capacity: u32,
    /// Largest message, in bytes (1 to 16 MiB).
    pub max_message_size: u32,
    /// Permission bits of a new file; 0 means the default, 0600.
    pub mode: u32,
    /// `SHMQ_ON_CONSUMER_DEATH_REDELIVER` (0) or `SHMQ_ON_CONSUMER_DEATH_DROP` (1).
    pub on_consumer_death: u32,
    /// With redeliver: drop a message whose consumer dies on this delivery; 0 is unlimited.
    pub max_deliveries: u32,
    /// Non-zero: permit a `mode` with bits for "other" users (recorded in the queue).
    pub allow_other_access: u32,
    // Appended with the visibility timeout; the fields above keep their offsets.
    /// How long a message received in place may be held before it is handed out again, in
    /// nanoseconds (1 ms to 12 h); 0 is none.
    pub visibility_timeout_ns: u64,
    /// The dead-letter queue's path (a NUL-terminated string, at most 1023 bytes), or NULL for
    /// none: a message delivered `max_deliveries` times goes there instead of being dropped.
    pub dead_letter_queue: *const c_char,
}

impl Default for shmq_options {
    fn default() -> Self {
        shmq_options {
            capacity: 0,
            max_message_size: 0,
            mode: 0,
            on_consumer_death: 0,
            max_deliveries: 0,
            allow_other_access: 0,
            visibility_timeout_ns: 0,
            dead_letter_queue: std::ptr::null(),
        }
    }
}

/// The core's options for a C `struct shmq_options`, or `SHMQ_INVALID_ARGUMENT` for a NULL
/// pointer, an unknown policy, or a delivery limit on a queue that drops. (The timeout's range
/// and the dead-letter path's length are checked by `Queue::create`, as `InvalidOptions`, which
/// is `SHMQ_INVALID_ARGUMENT` too.)
///
/// # Safety
/// `opts` is NULL or valid for reading a `struct shmq_options`, whose `dead_letter_queue` is
/// NULL or a NUL-terminated string.
unsafe fn options(opts: *const shmq_options) -> Result<Options, c_int> {
    // SAFETY: a non-NULL `opts` is readable by the caller's promise.
    let o = unsafe { opts.as_ref() }.ok_or(SHMQ_INVALID_ARGUMENT)?;
    let policy = match o.on_consumer_death {
        SHMQ_ON_CONSUMER_DEATH_REDELIVER => OnConsumerDeath::Redeliver,
        SHMQ_ON_CONSUMER_DEATH_DROP if o.max_deliveries == 0 => OnConsumerDeath::Drop,
        _ => return Err(SHMQ_INVALID_ARGUMENT),
    };
    let mode = if o.mode == 0 { 0o600 } else { o.mode };
    let mut options = Options::new(o.capacity, o.max_message_size)
        .mode(mode)
        .on_consumer_death(policy)
        .max_deliveries(o.max_deliveries)
        .allow_other_access(o.allow_other_access != 0);
    if o.visibility_timeout_ns != 0 {
        options =
            options.visibility_timeout(std::time::Duration::from_nanos(o.visibility_timeout_ns));
    }
    if !o.dead_letter_queue.is_null() {
        // SAFETY: a non-NULL `dead_letter_queue` is a NUL-terminated string by the caller's
        // promise; it is only read here, and copied.
        let raw = unsafe { CStr::from_ptr(o.dead_letter_queue) };
        options = options.dead_letter_queue(OsStr::from_bytes(raw.to_bytes()));
    }
    Ok(options)
}

/// As [`open_with`], with the creation options read from `opts`: a NULL `opts`, an unknown
/// policy or a delivery limit with `SHMQ_ON_CONSUMER_DEATH_DROP` gives `SHMQ_INVALID_ARGUMENT`
/// (and `*out` NULL, as on every failure).
///
/// # Safety
/// As for [`open_with`]; `opts` is NULL or valid for reading a `struct shmq_options`.
unsafe fn open_with_options(
    path_arg: *const c_char,
    opts: *const shmq_options,
    out: *mut *mut shmq,
    open: impl FnOnce(&Path, Options) -> shmq_core::Result<Queue>,
) -> c_int {
    // SAFETY: the caller's promises are those of `open_with`, and the one on `opts` is that of
    // `options`.
    unsafe {
        open_with(path_arg, out, |p| match options(opts) {
            Ok(options) => open(p, options),
            Err(_) => Err(shmq_core::Error::InvalidOptions(
                "invalid struct shmq_options".into(),
            )),
        })
    }
}

/// Creates a queue file at `path` with the options in `*opts`, and opens it. See `shmq.h`.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `opts` is NULL or valid for reading a
/// `struct shmq_options`; `out` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn shmq_create_ex(
    path: *const c_char,
    opts: *const shmq_options,
    out: *mut *mut shmq,
) -> c_int {
    // SAFETY: the same promises.
    unsafe { open_with_options(path, opts, out, |p, o| Queue::create(p, o)) }
}

/// Opens the queue at `path`, creating it with `*opts` if no file exists. See `shmq.h`.
///
/// # Safety
/// As for [`shmq_create_ex`].
#[no_mangle]
pub unsafe extern "C" fn shmq_open_or_create_ex(
    path: *const c_char,
    opts: *const shmq_options,
    out: *mut *mut shmq,
) -> c_int {
    // SAFETY: the same promises.
    unsafe { open_with_options(path, opts, out, |p, o| Queue::open_or_create(p, o)) }
}

/// Opens an existing queue file. See `shmq.h`.
///
/// # Safety
/// As for [`shmq_create`].
#[no_mangle]
pub unsafe extern "C" fn shmq_open(path: *const c_char, out: *mut *mut shmq) -> c_int {
    // SAFETY: the caller's promises are those of `open_with`.
    unsafe { open_with(path, out, |p| Queue::open(p)) }
}

/// Opens the queue at `path`, creating it if no file exists. See `shmq.h`.
///
/// # Safety
/// As for [`shmq_create`].
#[no_mangle]
pub unsafe extern "C" fn shmq_open_or_create(
    path: *const c_char,
    capacity: u32,
    max_message_size: u32,
    out: *mut *mut shmq,
) -> c_int {
    // SAFETY: the caller's promises are those of `open_with`.
    unsafe {
        open_with(path, out, |p| {
            Queue::open_or_create(p, Options::new(capacity, max_message_size))
        })
    }
}

/// Releases the caller's handle; NULL is ignored. See `shmq.h`.
///
/// # Safety
/// `q` is NULL or a live handle that no other thread uses during or after this call.
#[no_mangle]
pub unsafe extern "C" fn shmq_detach(q: *mut shmq) {
    crate::status::boundary((), || {
        if !q.is_null() {
            // SAFETY: `q` came from `Arc::into_raw`, and the caller gives its reference back.
            drop(unsafe { Arc::from_raw(q.cast_const()) });
        }
    })
}

/// Removes the queue file at `path`. See `shmq.h`.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn shmq_unlink(path: *const c_char) -> c_int {
    guarded(|| {
        // SAFETY: by the caller's promise on `path`.
        let path = unsafe { self::path(path) }?;
        Queue::unlink(path).map_err(|e| status_of(&e))
    })
}

/// Closes the queue for every process. See `shmq.h`.
///
/// # Safety
/// `q` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn shmq_close(q: *mut shmq) -> c_int {
    guarded(|| {
        // SAFETY: by the caller's promise on `q`.
        unsafe { queue(q) }?.close();
        Ok(())
    })
}

/// Sweeps for dead participants and resolves what they left. See `shmq.h`.
///
/// # Safety
/// `q` is NULL or a live handle; `changed` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmq_recover(q: *mut shmq, changed: *mut c_int) -> c_int {
    guarded(|| {
        // SAFETY: by the caller's promise on `q`.
        let did = unsafe { queue(q) }?.recover();
        if !changed.is_null() {
            // SAFETY: non-NULL, so writable by the caller's promise.
            unsafe { changed.write(c_int::from(did)) };
        }
        Ok(())
    })
}

/// 1 if the queue is closed, 0 if not or if `q` is NULL. See `shmq.h`.
///
/// # Safety
/// `q` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn shmq_is_closed(q: *const shmq) -> c_int {
    crate::status::boundary(0, || {
        // SAFETY: by the caller's promise on `q`.
        unsafe { queue(q) }.map_or(0, |q| c_int::from(q.is_closed()))
    })
}

/// Number of slots; 0 if `q` is NULL. See `shmq.h`.
///
/// # Safety
/// `q` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn shmq_capacity(q: *const shmq) -> u32 {
    crate::status::boundary(0, || {
        // SAFETY: by the caller's promise on `q`.
        unsafe { queue(q) }.map_or(0, |q| q.capacity())
    })
}

/// Largest message in bytes; 0 if `q` is NULL. See `shmq.h`.
///
/// # Safety
/// `q` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn shmq_max_message_size(q: *const shmq) -> u32 {
    crate::status::boundary(0, || {
        // SAFETY: by the caller's promise on `q`.
        unsafe { queue(q) }.map_or(0, |q| q.max_message_size() as u32)
    })
}

/// A snapshot of a queue's configuration and counters (`struct shmq_stats` in C; the struct tag
/// and the function share the name, as `struct stat` and `stat()` do).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub struct shmq_stats {
    /// Number of slots.
    pub capacity: u32,
    /// Largest message, in bytes.
    pub max_message_size: u32,
    /// Bytes of the file.
    pub file_len: u64,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created_unix_ns: u64,
    /// Messages in the queue, approximately (exact when nothing is in flight).
    pub len: u64,
    /// Positions claimed by senders since creation (committed or cancelled).
    pub sent: u64,
    /// Positions claimed by receivers since creation.
    pub received: u64,
    /// Reservations cancelled instead of committed.
    pub cancelled_sends: u64,
    /// Times a sender found the queue full and went to sleep.
    pub full_waits: u64,
    /// Times a receiver found the queue empty and went to sleep.
    pub empty_waits: u64,
    /// Senders asleep now.
    pub send_sleepers: u32,
    /// Receivers asleep now.
    pub recv_sleepers: u32,
    /// Handles that have the queue open, or held it when their process died.
    pub participants: u32,
    /// Of those, handles whose process is alive.
    pub live_participants: u32,
    /// 1 if the queue is closed, else 0.
    pub closed: u32,
    /// Always 0; keeps the size a multiple of 8 without hidden padding.
    pub reserved: u32,
    // Appended with crash recovery; the fields above keep their offsets.
    /// Sends whose producer died between claiming a slot and publishing it (skipped).
    pub abandoned_sends: u64,
    /// Messages dropped because their consumer died (`SHMQ_ON_CONSUMER_DEATH_DROP`).
    pub abandoned_receives: u64,
    /// Messages given back to the queue because their consumer died.
    pub redelivered: u64,
    /// Messages dropped because their consumer died on delivery `max_deliveries`.
    pub dead_lettered: u64,
    /// The queue's policy: `SHMQ_ON_CONSUMER_DEATH_REDELIVER` or `SHMQ_ON_CONSUMER_DEATH_DROP`.
    pub on_consumer_death: u32,
    /// The queue's delivery limit; 0 is unlimited.
    pub max_deliveries: u32,
    // Appended with the visibility timeout and the dead-letter queue.
    /// Messages held in place past the visibility timeout and handed out again.
    pub expired: u64,
    /// Messages that reached `max_deliveries` but could not be sent to the dead-letter queue.
    pub dead_letter_failures: u64,
    /// Messages received and not yet released.
    pub in_flight: u64,
    /// Age of the oldest hold, in nanoseconds (0: none).
    pub oldest_hold_ns: u64,
    /// The queue's visibility timeout in nanoseconds; 0 is none.
    pub visibility_timeout_ns: u64,
}

// The layout `shmq.h` declares (checked from C by `tests/c/api.c` against the same numbers).
const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(offset_of!(shmq_stats, closed) == 88);
    assert!(offset_of!(shmq_stats, reserved) == 92);
    assert!(offset_of!(shmq_stats, abandoned_sends) == 96);
    assert!(offset_of!(shmq_stats, dead_lettered) == 120);
    assert!(offset_of!(shmq_stats, on_consumer_death) == 128);
    assert!(offset_of!(shmq_stats, max_deliveries) == 132);
    assert!(offset_of!(shmq_stats, expired) == 136);
    assert!(offset_of!(shmq_stats, visibility_timeout_ns) == 168);
    assert!(size_of::<shmq_stats>() == 176);
    assert!(offset_of!(shmq_options, max_deliveries) == 16);
    assert!(offset_of!(shmq_options, allow_other_access) == 20);
    assert!(offset_of!(shmq_options, visibility_timeout_ns) == 24);
    assert!(offset_of!(shmq_options, dead_letter_queue) == 32);
    assert!(size_of::<shmq_options>() == 40);
};

/// Fills `*out` with a snapshot of the queue's counters. See `shmq.h`.
///
/// # Safety
/// `q` is NULL or a live handle; `out` is NULL or valid for writing a `struct shmq_stats`.
#[no_mangle]
pub unsafe extern "C" fn shmq_stats(q: *const shmq, out: *mut shmq_stats) -> c_int {
    guarded(|| {
        // SAFETY: by the caller's promise on `q`.
        let q = unsafe { queue(q) }?;
        if out.is_null() {
            return Err(SHMQ_INVALID_ARGUMENT);
        }
        let s = q.stats();
        let stats = shmq_stats {
            capacity: s.capacity,
            max_message_size: s.max_message_size,
            file_len: s.file_len,
            created_unix_ns: s.created_unix_ns,
            len: s.len,
            sent: s.sent,
            received: s.received,
            cancelled_sends: s.cancelled_sends,
            full_waits: s.full_waits,
            empty_waits: s.empty_waits,
            send_sleepers: s.send_sleepers,
            recv_sleepers: s.recv_sleepers,
            participants: s.participants.len() as u32,
            live_participants: s.participants.iter().filter(|p| p.alive).count() as u32,
            closed: u32::from(s.closed),
            reserved: 0,
            abandoned_sends: s.abandoned_sends,
            abandoned_receives: s.abandoned_receives,
            redelivered: s.redelivered,
            dead_lettered: s.dead_lettered,
            on_consumer_death: match s.on_consumer_death {
                OnConsumerDeath::Redeliver => SHMQ_ON_CONSUMER_DEATH_REDELIVER,
                OnConsumerDeath::Drop => SHMQ_ON_CONSUMER_DEATH_DROP,
            },
            max_deliveries: s.max_deliveries,
            expired: s.expired,
            dead_letter_failures: s.dead_letter_failures,
            in_flight: s.in_flight,
            oldest_hold_ns: s.oldest_hold_ns,
            visibility_timeout_ns: s.visibility_timeout_ns,
        };
        // SAFETY: `out` is non-NULL and valid for writing a `struct shmq_stats` (aligned, as C
        // aligns every object of the type) by the caller's promise; the layouts are equal.
        unsafe { out.write(stats) };
        Ok(())
    })
}
