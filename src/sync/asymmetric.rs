// SPDX-License-Identifier: MIT OR Apache-2.0
//! Asymmetric fences for the wake-up handshake: the waker, on every message, pays only a
//! compiler fence; the sleeper, once per sleep, pays a system call that puts a full fence into
//! every running thread of every process that uses shmq.
//!
//! # Why
//! A wake-up is a store-load pair on each side (see `wait`'s module doc): the waker stores its
//! progress and loads the sleeper count; the sleeper stores itself into the count and loads the
//! progress. Either side needs a full fence between its store and its load, or both loads may
//! read the old values and the sleeper sleeps through the message. A full fence waits for the
//! store buffer to drain: for a sender, its stores into the slot, whose line the receiver is
//! reading. Measured with `perf record` on `shmq bench --only shmq_tput`, that wait was about
//! half of a sender's time and a fifth of a receiver's. Senders and receivers wake on every
//! message; sleepers sleep rarely, and a sleep costs system calls anyway.
//!
//! # How
//! Linux's `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` makes every running thread of every
//! process that registered for it (`MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED`) execute a full
//! memory barrier before the call returns; a thread that is not running passes one when it is
//! switched back in. So a waker's program order, "store progress; load count", is ordered
//! against the sleeper's call: either the waker's load came after the barrier in its thread, and
//! then it sees the count the sleeper stored before the call, or its store came before the
//! barrier, and then the sleeper's look after the call sees it. This is the pairing of
//! liburcu's and folly's `asymmetric_thread_fence_{light,heavy}`.
//!
//! - A process registers once, when it first opens a queue ([`register_process`]); it uses
//!   the light fence only after its registration succeeded. Registration is inherited across
//!   `fork` (the child shares the parent's registered `mm` state until `exec`, which clears it
//!   and with it this process-global flag).
//! - A process whose registration failed (a kernel older than 4.16, or a seccomp filter) uses
//!   full fences on both sides, so it needs no one else's help.
//! - A sleeper whose `membarrier` call fails cannot make a registered peer's light fence a full
//!   one: [`sleeper`] says so, and the sleeper then sleeps in short slices ([`SHORT_SLICE`]),
//!   so a wake-up that its peer's light fence missed costs at most that long. This needs two
//!   processes on one kernel with different seccomp filters.
//! - The price is paid per sleep, by everyone: the kernel interrupts each CPU that is running
//!   a registered process at that moment (measured on the 2-vCPU reference VM: 0.3 µs with
//!   the other CPU idle, 27 µs with a registered process spinning on it). A blocked call spins
//!   first (about ten microseconds, see `wait`), so sleeps come at most tens of thousands of
//!   times a second per waiter, and only when a queue goes idle.
//! - Under loom and Miri (which model neither the system call nor a barrier injected into
//!   another thread) both sides are plain `SeqCst` fences: the models check the protocol with
//!   the symmetric pairing, which the asymmetric one provides in production.

use std::time::Duration;

/// How long a sleeper that could not run the heavy fence sleeps before looking again.
pub(crate) const SHORT_SLICE: Duration = Duration::from_millis(1);

/// The waker's fence, between making its progress visible and reading the sleeper count.
#[inline(always)]
pub(crate) fn waker() {
    imp::waker()
}

/// The sleeper's fence, between counting itself and looking once more before it sleeps.
/// Returns `false` if it could not order a registered peer's [`waker`] fence: the caller then
/// sleeps no longer than [`SHORT_SLICE`] at a time.
pub(crate) fn sleeper() -> bool {
    imp::sleeper()
}

/// Registers this process for the heavy fence if it is not yet, so that its wakers may use
/// the light one. Call before the process wakes anyone on a queue (when it opens one). (The loom
/// build has no mapping to open.)
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn register_process() {
    imp::register_process()
}

#[cfg(any(loom, miri, not(target_os = "linux")))]
mod imp {
    use crate::sync::{fence, Ordering};

    #[inline(always)]
    pub(super) fn waker() {
        fence(Ordering::SeqCst);
    }

    pub(super) fn sleeper() -> bool {
        fence(Ordering::SeqCst);
        true
    }

    #[cfg_attr(loom, allow(dead_code))]
    pub(super) fn register_process() {}

    pub(super) fn waker_is_light() -> bool {
        false
    }
}

#[cfg(not(any(loom, miri, not(target_os = "linux"))))]
mod imp {
    use crate::sync::{fence, Ordering};
    use std::sync::atomic::{compiler_fence, AtomicU8};

    // From <linux/membarrier.h>.
    const MEMBARRIER_CMD_QUERY: libc::c_int = 0;
    const MEMBARRIER_CMD_GLOBAL_EXPEDITED: libc::c_int = 1 << 1;
    const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED: libc::c_int = 1 << 2;

    /// Not asked yet: wakers use full fences.
    const UNKNOWN: u8 = 0;
    /// Registered: wakers use compiler fences, sleepers the system call.
    const REGISTERED: u8 = 1;
    /// The kernel has no expedited global membarrier: no process on it can have registered, so
    /// full fences on both sides and nothing to fall back from.
    const UNSUPPORTED: u8 = 2;
    /// The kernel has it but refused us (a seccomp filter): full fences here; a peer may have
    /// registered, so our sleepers cannot rely on the system call either.
    const REFUSED: u8 = 3;

    /// This process's registration, one of the above.
    static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);

    fn membarrier(cmd: libc::c_int) -> libc::c_long {
        // SAFETY: membarrier takes two integers (command, flags) and a CPU id that the
        // commands used here ignore; it reads and writes no memory of ours.
        unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                cmd,
                0 as libc::c_uint,
                0 as libc::c_int,
            )
        }
    }

    #[inline(always)]
    pub(super) fn waker() {
        // A relaxed load of a process-local flag that never changes after the first open: it
        // stays in this core's cache, and the branch is always predicted.
        if waker_is_light() {
            // Orders the compiler only; the CPU's order comes from a sleeper's membarrier.
            compiler_fence(Ordering::SeqCst);
        } else {
            fence(Ordering::SeqCst);
        }
    }

    pub(super) fn sleeper() -> bool {
        // Our own store-load order, whatever the system call does.
        fence(Ordering::SeqCst);
        match STATE.load(Ordering::Relaxed) {
            UNSUPPORTED => true,
            REFUSED => false,
            _ => membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0,
        }
    }

    pub(super) fn waker_is_light() -> bool {
        STATE.load(Ordering::Relaxed) == REGISTERED
    }

    pub(super) fn register_process() {
        if STATE.load(Ordering::Acquire) != UNKNOWN {
            return;
        }
        let supported = membarrier(MEMBARRIER_CMD_QUERY);
        let state = if supported >= 0
            && supported & libc::c_long::from(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0
        {
            UNSUPPORTED
        } else if membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0 {
            REGISTERED
        } else {
            REFUSED
        };
        // A full fence before the first light one: whatever this thread did before (opening
        // the queue, counting itself in) is ordered before any wake it does after.
        fence(Ordering::SeqCst);
        // Racing threads compute the same answer; the registration is idempotent.
        STATE.store(state, Ordering::Release);
    }
}

/// Whether this process's wakers use the light fence (it registered for the heavy one).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn waker_is_light() -> bool {
    imp::waker_is_light()
}

#[cfg(all(test, not(loom), not(miri), target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_process_that_opened_a_queue_wakes_with_the_light_fence() {
        // The hot path's figures assume this (Linux 4.16 or later, membarrier not filtered):
        // if it fails, every send and receive pays a full fence again.
        register_process();
        assert!(waker_is_light());
        // And a sleeper's heavy fence goes through.
        assert!(sleeper());
    }
}
