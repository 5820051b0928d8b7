// SPDX-License-Identifier: MIT OR Apache-2.0
//! Sleeping and waking: spin briefly, then sleep on a shared futex word, with the sleepers
//! counted in that same word so that a waker pays for `FUTEX_WAKE` only when someone sleeps.
//!
//! # The wait word
//! One `u32` per direction ("a message arrived", "a slot was freed") lives in the mapping:
//! the low 16 bits count sleepers, the high 16 bits are a wake epoch.
//!
//! # No lost wake-up
//! The waker makes progress visible (publishes a message, frees a slot), then executes a `SeqCst`
//! fence and reads the word. The sleeper adds itself to the count, executes a `SeqCst` fence, and
//! tries its operation once more before sleeping. The two fences are ordered one way or the
//! other: either the sleeper's retry sees the progress, or the waker's read sees the sleeper and
//! wakes it.
//!
//! The waker's fence does a second job: a send or receive returns only once its publish or
//! release has left the store buffer, so that any call that starts after it returns sees it.
//! `Empty` and `Full` rely on that (`ring`'s exact-`Empty` check reads slot stamps, not the other
//! side's cursor). An asymmetric pair (a compiler fence here, `membarrier` in the sleeper) was
//! tried and measured 10 % faster, but it let a completed send stay invisible to other threads
//! for a moment: `tests/linearizable.rs` saw a false `Empty` under AddressSanitizer.
//!
//! The waker bumps the epoch before `FUTEX_WAKE`, and the sleeper sleeps only while the epoch is
//! the one it registered under, so a wake that lands between its retry and its `FUTEX_WAIT` makes
//! the wait return at once (the kernel compares the word before sleeping).
//!
//! Waking is broadcast (`FUTEX_WAKE` of everyone): a sleeper that was woken but then timed out
//! cannot swallow a wake-up meant for another.

use crate::sync::{
    fence, futex_wait, futex_wake_all, spin_hint, yield_thread, AtomicU32, Ordering,
};
use std::time::{Duration, Instant};

const SLEEPER_ONE: u32 = 1;
/// Mask of the sleeper count in a wait word (the rest is the epoch).
pub(crate) const SLEEPERS_MASK: u32 = 0xFFFF;
const EPOCH_ONE: u32 = 1 << 16;

/// How long to wait for an operation that cannot complete now.
#[derive(Clone, Copy, Debug)]
pub enum Deadline {
    /// Do not wait: fail at once.
    Now,
    /// Wait until this instant.
    At(Instant),
    /// Wait as long as it takes.
    Never,
}

impl Deadline {
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn after(timeout: Duration) -> Self {
        Instant::now()
            .checked_add(timeout)
            .map_or(Deadline::Never, Deadline::At)
    }
}

/// How many times to retry, with a CPU pause between tries, before going to sleep. About ten
/// microseconds on current hardware: long enough to catch a peer that answers at once (the
/// ping-pong case), short enough not to burn a core for an idle queue.
#[cfg(not(loom))]
const SPIN_TRIES: u32 = 4096;
#[cfg(loom)]
const SPIN_TRIES: u32 = 1;

/// How many of those tries between two `sched_yield`s. With more processes than CPUs, the peer
/// that would end the wait may be waiting for this very CPU: a pure spin burns the rest of the
/// time slice, a yield hands it over. With a CPU to spare the yield returns at once. Measured
/// with `shmq bench` (blocking `send`/`recv`, 2 CPUs): `shmq_tput_4p4c` went from 3.7-4.5 M to
/// 13-14 M msgs/s and `shmq_tput_2p2c` from 7-9 M to 14-17 M, with `shmq_blocking`'s round trip
/// unchanged (1.59-1.72x floor against 1.71-1.72x).
const YIELD_EVERY: u32 = 128;

/// Number of sleepers counted in a wait word.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn sleepers(word: &AtomicU32) -> u32 {
    word.load(Ordering::Relaxed) & SLEEPERS_MASK
}

/// Wakes every sleeper on `word`, if there is one. Call after making progress visible.
///
/// Returns `true` if the count said someone sleeps but the kernel woke nobody: a sleeper that
/// died asleep, or one between counting itself and sleeping (it sees the new epoch and does not
/// sleep). The queue then runs a sweep, which lowers a count that includes the dead, so that
/// wakers do not pay for `FUTEX_WAKE` forever.
#[inline]
pub fn wake_if_sleeping(word: &AtomicU32) -> bool {
    // Order the caller's progress (a store) before the read of the sleeper count; pairs with the
    // sleeper's fence in `wait_for`, and makes the progress visible before the caller returns
    // (see the module doc).
    fence(Ordering::SeqCst);
    word.load(Ordering::Relaxed) & SLEEPERS_MASK != 0 && wake_all(word) == 0
}

/// Wakes every sleeper on `word`, unconditionally (used by `close`). Returns how many the
/// kernel woke.
pub fn wake_all(word: &AtomicU32) -> u32 {
    word.fetch_add(EPOCH_ONE, Ordering::Release);
    futex_wake_all(word)
}

/// Bits of one side (receivers or senders) in a participant's `sleeping` word: a 15-bit count
/// of its threads asleep on that side, and a flag set while it changes the shared count.
const MINE_ONE: u32 = 1;
const MINE_TRANSIT: u32 = 1 << 15;
/// Mask of one side's count in a participant's `sleeping` word (before shifting).
#[cfg_attr(loom, allow(dead_code))]
pub(crate) const MINE_COUNT_MASK: u32 = MINE_TRANSIT - 1;
/// Mask of one side's mid-update flag in a participant's `sleeping` word (before shifting).
#[cfg_attr(loom, allow(dead_code))]
pub(crate) const MINE_TRANSIT_FLAG: u32 = MINE_TRANSIT;

/// Who waits, and on what.
pub struct Waiter<'a> {
    /// The shared futex word of this side.
    pub word: &'a AtomicU32,
    /// This participant's own record of its sleepers (its `sleeping` word) and the shift of this
    /// side in it (0 receivers, 16 senders). A survivor recounts the shared sleeper count from
    /// these records when a participant dies asleep; `None` in models that need no repair.
    pub mine: Option<(&'a AtomicU32, u32)>,
    /// The longest single sleep: between sleeps the waiter runs `maintain` (crash recovery), so
    /// that a claim left behind by a dead process cannot keep it asleep forever.
    pub slice: Option<Duration>,
}

impl<'a> Waiter<'a> {
    /// A waiter on `word` with no participant record and no slice (the loom models).
    #[cfg_attr(not(loom), allow(dead_code))]
    pub fn on(word: &'a AtomicU32) -> Self {
        Waiter {
            word,
            mine: None,
            slice: None,
        }
    }

    /// Counts this thread as a sleeper, in the shared word and in the participant's record.
    /// Returns the shared word after the increment.
    ///
    /// The record is updated around the shared count with a mid-update flag set, so that a
    /// recount never reads a record that disagrees with the shared word without knowing it.
    pub(crate) fn register(&self) -> u32 {
        if let Some((mine, shift)) = self.mine {
            mine.fetch_add((MINE_TRANSIT | MINE_ONE) << shift, Ordering::SeqCst);
        }
        // Wrapping: the word is shared memory, and a hostile writer may have left it at
        // `u32::MAX` (the atomic wraps; so must the copy, rather than panic).
        let registered = self
            .word
            .fetch_add(SLEEPER_ONE, Ordering::SeqCst)
            .wrapping_add(SLEEPER_ONE);
        if let Some((mine, shift)) = self.mine {
            mine.fetch_and(!(MINE_TRANSIT << shift), Ordering::SeqCst);
        }
        registered
    }

    /// Undoes `register`.
    pub(crate) fn deregister(&self) {
        if let Some((mine, shift)) = self.mine {
            // Sets the mid-update flag and takes one off the count in one step (the flag is
            // clear and the count at least 1, so nothing borrows across the fields).
            mine.fetch_add((MINE_TRANSIT - MINE_ONE) << shift, Ordering::SeqCst);
        }
        self.word.fetch_sub(SLEEPER_ONE, Ordering::SeqCst);
        if let Some((mine, shift)) = self.mine {
            mine.fetch_and(!(MINE_TRANSIT << shift), Ordering::SeqCst);
        }
    }
}

/// Calls `attempt` until it returns `Some` or `deadline` passes, spinning first and then sleeping
/// on the waiter's word. Returns `None` on timeout (or at once for `Deadline::Now` when the first
/// attempt fails). `on_sleep` is called once, the first time the caller is about to sleep
/// (statistics); `maintain` before every sleep (crash recovery).
pub fn wait_for<T>(
    waiter: &Waiter<'_>,
    deadline: Deadline,
    on_sleep: impl FnOnce(),
    mut maintain: impl FnMut(),
    mut attempt: impl FnMut() -> Option<T>,
) -> Option<T> {
    if let Some(done) = attempt() {
        return Some(done);
    }
    let until = match deadline {
        Deadline::Now => return None,
        Deadline::At(at) => Some(at),
        Deadline::Never => None,
    };
    // The tests may remove the spin phase (`test_hooks::spin_tries`); loom has no test hooks.
    #[cfg(not(loom))]
    let spin_tries = crate::test_hooks::spin_tries(SPIN_TRIES);
    #[cfg(loom)]
    let spin_tries = SPIN_TRIES;
    for tries in 1..=spin_tries {
        spin_hint();
        if tries % YIELD_EVERY == 0 {
            yield_thread();
        }
        if let Some(done) = attempt() {
            return Some(done);
        }
    }
    on_sleep();
    let word = waiter.word;
    loop {
        maintain();
        // Register as a sleeper, then look once more (see the module doc).
        let registered = waiter.register();
        fence(Ordering::SeqCst);
        if let Some(done) = attempt() {
            waiter.deregister();
            return Some(done);
        }
        let epoch = registered & !SLEEPERS_MASK;
        let slice_end = waiter.slice.map(|slice| Instant::now() + slice);
        let timed_out = loop {
            let now = Instant::now();
            let remaining = match until {
                None => None,
                Some(at) => match at.checked_duration_since(now) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => break true,
                },
            };
            let remaining = match slice_end {
                None => remaining,
                Some(end) => match end.checked_duration_since(now) {
                    // The slice is over: wake up to run `maintain`.
                    Some(left) if !left.is_zero() => Some(remaining.map_or(left, |r| r.min(left))),
                    _ => break false,
                },
            };
            let current = word.load(Ordering::Acquire);
            if current & !SLEEPERS_MASK != epoch {
                break false;
            }
            futex_wait(word, current, remaining);
        };
        waiter.deregister();
        if timed_out {
            // One last look: the deadline is not a reason to miss what is already there.
            return attempt();
        }
        if let Some(done) = attempt() {
            return Some(done);
        }
    }
}
