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
pub use loom::sync::atomic::AtomicU32;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, Ordering};
#[cfg(loom)]
pub use model_atomics::AtomicU64;

/// loom's atomics, with every `load` performed as a compare-exchange that cannot succeed.
///
/// Why: loom 0.7's partial-order reduction remembers only the *last* access to each atomic and
/// treats plain loads as independent of one another. When thread B loads a word and then CASes
/// it, B's own load erases the record of an earlier load of the same word by thread A, so loom
/// never tries B's CAS before A's load: the "peek, then claim" race at the heart of this queue
/// went unexplored (a model of one send racing one receive completed in a single iteration, and
/// a `Relaxed` publish passed unnoticed). A compare-exchange is recorded as a read-modify-write,
/// so every access becomes dependent and every interleaving is explored. It fails (the expected
/// value is one no honest participant stores), so it writes nothing and synchronises exactly
/// as a load of the same ordering would. (A `fetch_add(0)` would also be recorded, but it
/// *writes*, and loom's modification order lets a concurrent plain store be lost behind it.)
/// The cost: a modelled load reads only the newest values, never a stale one. That is why only
/// the ring's 64-bit words are wrapped: the 32-bit wait words keep loom's plain loads, so a waker
/// that reads a stale sleeper count (the lost wake-up that the `SeqCst` fences in `wait` exist
/// to prevent) is still explored.
#[cfg(loom)]
mod model_atomics {
    use super::Ordering;

    macro_rules! model_atomic {
        ($name:ident, $int:ty) => {
            /// See the module doc.
            #[derive(Debug)]
            pub struct $name(loom::sync::atomic::$name);

            impl $name {
                /// A new atomic.
                pub fn new(v: $int) -> Self {
                    $name(loom::sync::atomic::$name::new(v))
                }
                /// A load, modelled as a compare-exchange that fails.
                pub fn load(&self, order: Ordering) -> $int {
                    const NEVER_STORED: $int = <$int>::MAX;
                    match self
                        .0
                        .compare_exchange(NEVER_STORED, NEVER_STORED, order, order)
                    {
                        Ok(v) | Err(v) => v,
                    }
                }
                /// As `std`.
                pub fn store(&self, v: $int, order: Ordering) {
                    self.0.store(v, order)
                }
                /// As `std`.
                pub fn compare_exchange(
                    &self,
                    current: $int,
                    new: $int,
                    success: Ordering,
                    failure: Ordering,
                ) -> Result<$int, $int> {
                    self.0.compare_exchange(current, new, success, failure)
                }
                /// As `std`.
                pub fn fetch_add(&self, v: $int, order: Ordering) -> $int {
                    self.0.fetch_add(v, order)
                }
                /// As `std`.
                pub fn fetch_sub(&self, v: $int, order: Ordering) -> $int {
                    self.0.fetch_sub(v, order)
                }
                /// As `std`.
                pub fn fetch_or(&self, v: $int, order: Ordering) -> $int {
                    self.0.fetch_or(v, order)
                }
            }
        };
    }

    model_atomic!(AtomicU64, u64);
}

/// A hint to the CPU that we are busy-waiting (a `pause` on x86); under loom, a yield so that the
/// model lets other threads run.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Gives the CPU to another runnable thread, if there is one (`sched_yield`); under loom, a
/// yield of the model.
#[inline]
pub(crate) fn yield_thread() {
    #[cfg(not(loom))]
    std::thread::yield_now();
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

    /// Wakes every thread, in any process, sleeping on `word`. Returns how many it woke.
    pub(crate) fn futex_wake_all(word: &AtomicU32) -> u32 {
        // SAFETY: as above, `word` is a live aligned atomic; FUTEX_WAKE does not access memory
        // through the pointer beyond using its address as the key.
        let woken = unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAKE,
                i32::MAX,
                std::ptr::null::<libc::timespec>(),
                std::ptr::null::<u32>(),
                0u32,
            )
        };
        // -1 (an error: EFAULT/EINVAL cannot happen on a live word) counts as nobody.
        u32::try_from(woken).unwrap_or(0)
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

    /// The model cannot count who it wakes: it says one, so that no repair is modelled here.
    pub(crate) fn futex_wake_all(_word: &AtomicU32) -> u32 {
        let (lock, cvar) = &*PARKING;
        let _guard = lock.lock().unwrap();
        cvar.notify_all();
        1
    }
}
