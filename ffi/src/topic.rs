// SPDX-License-Identifier: MIT OR Apache-2.0
//! Topics (fanout, `shmq_core::Topic`) for C: `shmq_topic_create`, `shmq_topic_open`,
//! `shmq_topic_detach`, `shmq_topic_subscribe` (with `struct shmq_subscription_options`),
//! `shmq_topic_unsubscribe`, `shmq_topic_try_publish` and `shmq_topic_publish`.
//!
//! A `shmq_topic *` is a `Box` holding the core's `Topic` behind a mutex: the core's handle is
//! one publisher (not `Sync`), and the C contract makes every handle thread-safe, so threads
//! sharing one C handle publish one at a time (each thread's messages still keep their order).

use crate::handle::path;
use crate::status::{guarded, status_of, SHMQ_INVALID_ARGUMENT};
use crate::timeout::Wait;
use shmq_core::{Subscription, Topic, TopicOptions, WhenFull};
use std::ffi::{c_char, c_int, c_void};
use std::sync::Mutex;

/// The opaque C handle on one open topic (`typedef struct shmq_topic shmq_topic;`).
#[allow(non_camel_case_types)]
pub struct shmq_topic {
    topic: Mutex<Topic>,
}

/// `SHMQ_WHEN_FULL_BLOCK`: publishers wait for room in the subscription.
pub const SHMQ_WHEN_FULL_BLOCK: u32 = 0;
/// `SHMQ_WHEN_FULL_DROP`: a message that finds the subscription full is dropped there.
pub const SHMQ_WHEN_FULL_DROP: u32 = 1;

/// How to subscribe a queue (`struct shmq_subscription_options` in C).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(non_camel_case_types)]
pub struct shmq_subscription_options {
    /// Slots of the queue if it is created (1 to 2^24).
    pub capacity: u32,
    /// Largest message of the queue if it is created; at least the topic's.
    pub max_message_size: u32,
    /// `SHMQ_WHEN_FULL_BLOCK` (0) or `SHMQ_WHEN_FULL_DROP` (1).
    pub when_full: u32,
    /// Deliver only messages that start with these `prefix_len` bytes (NULL if 0).
    pub prefix: *const c_void,
    /// Bytes of `prefix`.
    pub prefix_len: usize,
}

/// The topic behind a handle, locked, or `SHMQ_INVALID_ARGUMENT` for NULL.
///
/// # Safety
/// `t` is NULL or a handle from this library not yet detached, live for `'a`.
unsafe fn topic<'a>(t: *const shmq_topic) -> Result<std::sync::MutexGuard<'a, Topic>, c_int> {
    // SAFETY: by the caller's promise, a non-NULL `t` points at a live `shmq_topic`.
    let handle = unsafe { t.as_ref() }.ok_or(SHMQ_INVALID_ARGUMENT)?;
    // A panic inside a publish (a bug) poisons the mutex; the topic's shared state survives a
    // publisher that stops anywhere, so go on with it.
    Ok(handle.topic.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Stores a new handle for `open(path)` in `*out` (NULL on failure).
///
/// # Safety
/// `path_arg` is NULL or NUL-terminated; `out` is NULL or valid for writing a pointer.
unsafe fn open_with(
    path_arg: *const c_char,
    out: *mut *mut shmq_topic,
    open: impl FnOnce(&std::path::Path) -> shmq_core::Result<Topic>,
) -> c_int {
    guarded(|| {
        if out.is_null() {
            return Err(SHMQ_INVALID_ARGUMENT);
        }
        // SAFETY: `out` is non-NULL and writable by the caller's promise.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: by the caller's promise on `path_arg`.
        let p = unsafe { path(path_arg) }?;
        let topic = open(p).map_err(|e| status_of(&e))?;
        let handle = Box::into_raw(Box::new(shmq_topic {
            topic: Mutex::new(topic),
        }));
        // SAFETY: as above.
        unsafe { out.write(handle) };
        Ok(())
    })
}

/// Creates a topic file at `path` (mode 0600) for messages of up to `max_message_size` bytes,
/// and opens it. See `shmq.h`.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `out` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn shmq_topic_create(
    path: *const c_char,
    max_message_size: u32,
    out: *mut *mut shmq_topic,
) -> c_int {
    // SAFETY: the caller's promises are those of `open_with`.
    unsafe {
        open_with(path, out, |p| {
            Topic::create(p, TopicOptions::new(max_message_size))
        })
    }
}

/// Opens the topic file at `path`. See `shmq.h`.
///
/// # Safety
/// As for [`shmq_topic_create`].
#[no_mangle]
pub unsafe extern "C" fn shmq_topic_open(path: *const c_char, out: *mut *mut shmq_topic) -> c_int {
    // SAFETY: the caller's promises are those of `open_with`.
    unsafe { open_with(path, out, |p| Topic::open(p)) }
}

/// Releases the handle (NULL is fine); must be its last use.
///
/// # Safety
/// `t` is NULL or a handle from this library, not used again.
#[no_mangle]
pub unsafe extern "C" fn shmq_topic_detach(t: *mut shmq_topic) {
    crate::status::boundary((), || {
        if !t.is_null() {
            // SAFETY: `t` came from `Box::into_raw` in `open_with`, and this is its last use.
            drop(unsafe { Box::from_raw(t) });
        }
    })
}

/// Subscribes the queue at `queue_path` (created with `opts`' sizes if missing). See `shmq.h`.
///
/// # Safety
/// `t` as for [`shmq_topic_detach`] (not yet detached); `queue_path` NULL or NUL-terminated;
/// `opts` NULL or valid for reading, with `prefix` valid for `prefix_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn shmq_topic_subscribe(
    t: *mut shmq_topic,
    queue_path: *const c_char,
    opts: *const shmq_subscription_options,
) -> c_int {
    guarded(|| {
        // SAFETY: by the caller's promises.
        let (topic, queue, o) = unsafe {
            (
                topic(t)?,
                path(queue_path)?,
                opts.as_ref().ok_or(SHMQ_INVALID_ARGUMENT)?,
            )
        };
        let when_full = match o.when_full {
            SHMQ_WHEN_FULL_BLOCK => WhenFull::Block,
            SHMQ_WHEN_FULL_DROP => WhenFull::Drop,
            _ => return Err(SHMQ_INVALID_ARGUMENT),
        };
        let prefix: &[u8] = match (o.prefix.is_null(), o.prefix_len) {
            (_, 0) => &[],
            (true, _) => return Err(SHMQ_INVALID_ARGUMENT),
            // SAFETY: non-NULL and valid for `prefix_len` bytes by the caller's promise.
            (false, n) => unsafe { std::slice::from_raw_parts(o.prefix as *const u8, n) },
        };
        let subscription = Subscription::new(o.capacity, o.max_message_size)
            .when_full(when_full)
            .prefix(prefix);
        topic
            .subscribe(queue, subscription)
            .map_err(|e| status_of(&e))
    })
}

/// Removes the subscription of the queue at `queue_path`. See `shmq.h`.
///
/// # Safety
/// As for [`shmq_topic_subscribe`].
#[no_mangle]
pub unsafe extern "C" fn shmq_topic_unsubscribe(
    t: *mut shmq_topic,
    queue_path: *const c_char,
) -> c_int {
    guarded(|| {
        // SAFETY: by the caller's promises.
        let (topic, queue) = unsafe { (topic(t)?, path(queue_path)?) };
        topic.unsubscribe(queue).map_err(|e| status_of(&e))
    })
}

/// The message argument: `len` bytes at `data` (NULL allowed when `len` is 0).
///
/// # Safety
/// `data` is NULL or valid for reading `len` bytes for `'a`.
unsafe fn message<'a>(data: *const c_void, len: usize) -> Result<&'a [u8], c_int> {
    match (data.is_null(), len) {
        (_, 0) => Ok(&[]),
        (true, _) => Err(SHMQ_INVALID_ARGUMENT),
        // SAFETY: non-NULL and readable for `len` bytes by the caller's promise.
        (false, n) => Ok(unsafe { std::slice::from_raw_parts(data as *const u8, n) }),
    }
}

/// Publishes to every matching subscription if every matching `Block` one has room now;
/// `SHMQ_FULL` (the message went nowhere) otherwise. See `shmq.h`.
///
/// # Safety
/// `t` as for [`shmq_topic_subscribe`]; `data` NULL or valid for reading `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn shmq_topic_try_publish(
    t: *mut shmq_topic,
    data: *const c_void,
    len: usize,
) -> c_int {
    // SAFETY: the same promises.
    unsafe { shmq_topic_publish(t, data, len, 0) }
}

/// Publishes, waiting as `timeout_ns` says for room in every matching `Block` subscription
/// (`SHMQ_TIMEOUT`: the message went nowhere). See `shmq.h`.
///
/// # Safety
/// As for [`shmq_topic_try_publish`].
#[no_mangle]
pub unsafe extern "C" fn shmq_topic_publish(
    t: *mut shmq_topic,
    data: *const c_void,
    len: usize,
    timeout_ns: i64,
) -> c_int {
    guarded(|| {
        // SAFETY: by the caller's promises.
        let (topic, msg) = unsafe { (topic(t)?, message(data, len)?) };
        match Wait::from_ns(timeout_ns) {
            Wait::No => topic.try_publish(msg),
            Wait::For(d) => topic.publish_timeout(msg, d),
            Wait::Forever => topic.publish(msg),
        }
        .map_err(|e| status_of(&e))
    })
}
