// SPDX-License-Identifier: MIT OR Apache-2.0
//! Status codes: the one int every call returns, their names for `shmq_strerror`, the mapping
//! from the core's [`Error`], and the boundary that turns a panic into `SHMQ_INTERNAL`.
//!
//! The values are part of the ABI: they equal the `SHMQ_*` enumerators in `include/shmq.h`
//! (checked by `tests/header.rs`), and a value is never reused for another meaning.

use shmq_core::Error;
use std::ffi::{c_char, c_int};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The call did what it was asked.
pub const SHMQ_OK: c_int = 0;
/// The queue holds `capacity` messages; nothing was sent.
pub const SHMQ_FULL: c_int = 1;
/// No message is ready; nothing was received.
pub const SHMQ_EMPTY: c_int = 2;
/// The timeout passed first; nothing was sent or received.
pub const SHMQ_TIMEOUT: c_int = 3;
/// The queue is closed (and, for receivers, drained).
pub const SHMQ_CLOSED: c_int = 4;
/// The message is longer than the queue's maximum message size.
pub const SHMQ_TOO_LARGE: c_int = 5;
/// The receive buffer is shorter than the next message, which stays queued.
pub const SHMQ_BUFFER_TOO_SMALL: c_int = 6;
/// A required pointer is NULL or a value is out of range.
pub const SHMQ_INVALID_ARGUMENT: c_int = 7;
/// No queue file at the path.
pub const SHMQ_NOT_FOUND: c_int = 8;
/// A file already exists at the path.
pub const SHMQ_ALREADY_EXISTS: c_int = 9;
/// The operating system refused access to the file.
pub const SHMQ_PERMISSION_DENIED: c_int = 10;
/// The file or the shared memory holds what no honest shmq process writes.
pub const SHMQ_CORRUPT: c_int = 11;
/// A queue file of another layout version or platform.
pub const SHMQ_INCOMPATIBLE: c_int = 12;
/// Any other operating-system error.
pub const SHMQ_IO: c_int = 13;
/// A bug inside the library (a Rust panic, caught at the boundary).
pub const SHMQ_INTERNAL: c_int = 14;
/// The message's visibility timeout passed and it was handed out again (`shmq_ack`,
/// `shmq_extend`).
pub const SHMQ_EXPIRED: c_int = 15;
/// Every participant entry of the queue is held by an open handle: close one and retry. The
/// queue is fine (not corrupt).
pub const SHMQ_TOO_MANY_HANDLES: c_int = 16;

/// The status code for a core error.
pub(crate) fn status_of(err: &Error) -> c_int {
    match err {
        Error::Full => SHMQ_FULL,
        Error::Empty => SHMQ_EMPTY,
        Error::Timeout => SHMQ_TIMEOUT,
        Error::Closed => SHMQ_CLOSED,
        Error::TooLarge { .. } => SHMQ_TOO_LARGE,
        Error::BufferTooSmall { .. } => SHMQ_BUFFER_TOO_SMALL,
        Error::InvalidOptions(_) => SHMQ_INVALID_ARGUMENT,
        Error::NotFound(_) => SHMQ_NOT_FOUND,
        Error::AlreadyExists(_) => SHMQ_ALREADY_EXISTS,
        Error::PermissionDenied { .. } => SHMQ_PERMISSION_DENIED,
        Error::Corrupt { .. } => SHMQ_CORRUPT,
        Error::Incompatible { .. } => SHMQ_INCOMPATIBLE,
        Error::Io(_) => SHMQ_IO,
        Error::TooManyHandles { .. } => SHMQ_TOO_MANY_HANDLES,
        Error::Expired => SHMQ_EXPIRED,
        // Only the Rust typed receive (`Typed`, `Receiver`) reports it; the C API has none.
        Error::WrongSize { .. } => SHMQ_INTERNAL,
        // `Error` is non-exhaustive: a variant this build does not know is a library bug here.
        _ => SHMQ_INTERNAL,
    }
}

/// Runs the body of an exported function; a panic becomes `on_panic` instead of unwinding into C
/// (which would be undefined behaviour).
///
/// `AssertUnwindSafe` is sound here: after a panic the caller only sees a status code, and the
/// queue's shared state is designed to survive a participant that stops at any point.
pub(crate) fn boundary<T>(on_panic: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(on_panic)
}

/// [`boundary`] for the functions that return a status code.
pub(crate) fn guarded(body: impl FnOnce() -> Result<(), c_int>) -> c_int {
    boundary(SHMQ_INTERNAL, || match body() {
        Ok(()) => SHMQ_OK,
        Err(status) => status,
    })
}

/// A static, NUL-terminated description of `status` that starts with its name; never NULL.
#[no_mangle]
pub extern "C" fn shmq_strerror(status: c_int) -> *const c_char {
    boundary(
        c"SHMQ_INTERNAL: internal error in the shmq library".as_ptr(),
        || describe(status).as_ptr(),
    )
}

/// The text `shmq_strerror` returns for `status`.
fn describe(status: c_int) -> &'static std::ffi::CStr {
    match status {
        SHMQ_OK => c"SHMQ_OK: success",
        SHMQ_FULL => c"SHMQ_FULL: the queue is full",
        SHMQ_EMPTY => c"SHMQ_EMPTY: the queue is empty",
        SHMQ_TIMEOUT => c"SHMQ_TIMEOUT: timed out",
        SHMQ_CLOSED => c"SHMQ_CLOSED: the queue is closed",
        SHMQ_TOO_LARGE => c"SHMQ_TOO_LARGE: message exceeds the maximum message size",
        SHMQ_BUFFER_TOO_SMALL => {
            c"SHMQ_BUFFER_TOO_SMALL: receive buffer too small for the next message"
        }
        SHMQ_INVALID_ARGUMENT => c"SHMQ_INVALID_ARGUMENT: NULL or out-of-range argument",
        SHMQ_NOT_FOUND => c"SHMQ_NOT_FOUND: no queue file at this path",
        SHMQ_ALREADY_EXISTS => c"SHMQ_ALREADY_EXISTS: a file already exists at this path",
        SHMQ_PERMISSION_DENIED => c"SHMQ_PERMISSION_DENIED: permission denied",
        SHMQ_CORRUPT => c"SHMQ_CORRUPT: corrupt queue file or shared memory",
        SHMQ_INCOMPATIBLE => c"SHMQ_INCOMPATIBLE: queue file of another version or platform",
        SHMQ_IO => c"SHMQ_IO: operating-system error",
        SHMQ_INTERNAL => c"SHMQ_INTERNAL: internal error in the shmq library",
        SHMQ_EXPIRED => {
            c"SHMQ_EXPIRED: the message's visibility timeout passed and it was handed out again"
        }
        SHMQ_TOO_MANY_HANDLES => {
            c"SHMQ_TOO_MANY_HANDLES: every participant entry of the queue is held by an open \
              handle (one for each thread that uses a handle); close handles that are not needed"
        }
        _ => c"SHMQ_UNKNOWN: unknown status code",
    }
}

/// Panics inside the library on purpose and returns what the boundary made of it:
/// `SHMQ_INTERNAL`. Lets a binding's tests check that no panic crosses into C.
#[no_mangle]
pub extern "C" fn shmq_debug_panic() -> c_int {
    guarded(|| panic!("shmq_debug_panic: a deliberate panic, caught at the C boundary"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    /// Every status code with its name, in value order.
    const ALL: [(c_int, &str); 17] = [
        (SHMQ_OK, "SHMQ_OK"),
        (SHMQ_FULL, "SHMQ_FULL"),
        (SHMQ_EMPTY, "SHMQ_EMPTY"),
        (SHMQ_TIMEOUT, "SHMQ_TIMEOUT"),
        (SHMQ_CLOSED, "SHMQ_CLOSED"),
        (SHMQ_TOO_LARGE, "SHMQ_TOO_LARGE"),
        (SHMQ_BUFFER_TOO_SMALL, "SHMQ_BUFFER_TOO_SMALL"),
        (SHMQ_INVALID_ARGUMENT, "SHMQ_INVALID_ARGUMENT"),
        (SHMQ_NOT_FOUND, "SHMQ_NOT_FOUND"),
        (SHMQ_ALREADY_EXISTS, "SHMQ_ALREADY_EXISTS"),
        (SHMQ_PERMISSION_DENIED, "SHMQ_PERMISSION_DENIED"),
        (SHMQ_CORRUPT, "SHMQ_CORRUPT"),
        (SHMQ_INCOMPATIBLE, "SHMQ_INCOMPATIBLE"),
        (SHMQ_IO, "SHMQ_IO"),
        (SHMQ_INTERNAL, "SHMQ_INTERNAL"),
        (SHMQ_EXPIRED, "SHMQ_EXPIRED"),
        (SHMQ_TOO_MANY_HANDLES, "SHMQ_TOO_MANY_HANDLES"),
    ];

    /// Values no status has (none now; kept for a value reserved in the future).
    const RESERVED: [c_int; 0] = [];

    #[test]
    fn codes_are_distinct_ordered_and_named_by_strerror() {
        let values = (0..).filter(|v| !RESERVED.contains(v));
        for ((code, name), value) in ALL.iter().zip(values) {
            assert_eq!(*code, value, "{name}");
            // SAFETY: shmq_strerror returns a pointer to a static NUL-terminated string.
            let text = unsafe { CStr::from_ptr(shmq_strerror(*code)) };
            assert!(text.to_str().unwrap().starts_with(&format!("{name}: ")));
        }
        let past_the_last = ALL[ALL.len() - 1].0 + 1;
        for unknown in RESERVED
            .into_iter()
            .chain([-1, past_the_last, c_int::MAX, c_int::MIN])
        {
            // SAFETY: as above.
            let text = unsafe { CStr::from_ptr(shmq_strerror(unknown)) };
            assert!(text.to_str().unwrap().starts_with("SHMQ_UNKNOWN"));
        }
    }

    #[test]
    fn a_panic_becomes_internal() {
        assert_eq!(shmq_debug_panic(), SHMQ_INTERNAL);
    }
}
