// SPDX-License-Identifier: MIT OR Apache-2.0
//! The synchronisation facade: every atomic, fence and cell the queue uses comes from here.
//!
//! In a normal build these are `std`'s atomics and the real shared futex (a `FUTEX_WAIT` /
//! `FUTEX_WAKE` pair without `FUTEX_PRIVATE_FLAG`, so that a waker in another process finds a
//! sleeper keyed by file and offset). Under `--cfg loom` they are loom's atomics and a modelled
//! futex, so the loom tests check the very code that runs in production, the way tokio and
//! crossbeam do it.
//!
//! loom's atomics cannot live inside an `mmap`ed file; the protocol code is therefore written over
//! references (`&AtomicU64`, `&AtomicU32`) that point into the mapping in production and into the
//! heap under loom.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// A hint to the CPU that we are busy-waiting (a `pause` on x86); under loom, a yield so that the
/// model lets other threads run.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

#[cfg(not(loom))]
pub(crate) use real_futex::{futex_wait, futex_wake_all};

#[cfg(loom)]
pub(crate) use model_futex::{futex_wait, futex_wake_all};

/// The kernel's shared futex, on a 32-bit word that may live in a file mapping.
#[cfg(not(loom))]
mod real_futex {
    use super::AtomicU32;
    use std::time::Duration;

    /// Sleeps while `*word == expected`, for at most `timeout` (forever if `None`).
    ///
    /// Returns early, without sleeping, if the word no longer holds `expected`; also returns on a
    /// wake, a signal, or spuriously: callers re-check their condition in a loop.
    pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        let ts = timeout.map(|d| libc::timespec {
            tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: d.subsec_nanos() as libc::c_long,
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `word` is a live, 4-byte aligned atomic for the duration of the call (it borrows
        // from the mapping, which outlives it); `ts_ptr` is null or points at `ts` on this stack.
        // FUTEX_WAIT only reads the word and the timespec. The error cases (EAGAIN: value
        // changed, EINTR, ETIMEDOUT) are all "return and let the caller re-check".
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT,
                expected,
                ts_ptr,
                std::ptr::null::<u32>(),
                0u32,
            );
        }
    }

    /// Wakes every thread, in any process, sleeping on `word`.
    pub(crate) fn futex_wake_all(word: &AtomicU32) {
        // SAFETY: as above, `word` is a live aligned atomic; FUTEX_WAKE does not access memory
        // through the pointer beyond using its address as the key.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAKE,
                i32::MAX,
                std::ptr::null::<libc::timespec>(),
                std::ptr::null::<u32>(),
                0u32,
            );
        }
    }
}

/// A futex modelled with a loom mutex and condition variable: `wait` re-checks the word under the
/// lock, `wake_all` takes the lock before notifying, so a lost wake-up shows as a loom deadlock.
/// Timeouts are not modelled (loom has no clock): a model that relies on one would deadlock.
#[cfg(loom)]
mod model_futex {
    use super::{AtomicU32, Ordering};
    use loom::sync::{Condvar, Mutex};
    use std::time::Duration;

    loom::lazy_static! {
        static ref PARKING: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());
    }

    pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, _timeout: Option<Duration>) {
        let (lock, cvar) = &*PARKING;
        let guard = lock.lock().unwrap();
        if word.load(Ordering::SeqCst) == expected {
            drop(cvar.wait(guard).unwrap());
        }
    }

    pub(crate) fn futex_wake_all(_word: &AtomicU32) {
        let (lock, cvar) = &*PARKING;
        let _guard = lock.lock().unwrap();
        cvar.notify_all();
    }
}
