// SPDX-License-Identifier: MIT OR Apache-2.0
//! The lease of a message held in place under a visibility timeout: one word per slot that
//! decides, for each hold, whether the holder's acknowledgement or the hold's expiry wins.
//!
//! A queue created with a visibility timeout gives every in-place receive (`RecvGuard`) a
//! deadline. Three parties race for a held message: its holder acknowledging it (`ack`, or
//! dropping the guard), its holder extending the deadline (`extend`), and a survivor that finds
//! the deadline passed (or the holder dead) and hands the message out again. They all decide on
//! the slot's lease word with a compare-and-swap from the value they read, so for each hold
//! exactly one of "acknowledged" and "taken over" happens, never both and never neither.
//!
//! # The word
//! ```text
//! bit 63  GONE    the holder let go of its guard after its hold was taken over
//! bit 62  DONE    the taker finished: the message was handed out again, and the slot detached
//! bit 61  TAKEN   the hold lapsed (or its holder died) and participant `token` took it over
//! bit 60  ACKED   the holder acknowledged the message in time; it is freeing the slot
//! 40..60  token   the taker's participant token, with TAKEN
//! 0..40   deadline, in milliseconds of the host's monotonic clock (`recovery::monotonic_ms`)
//! ```
//!
//! # Life of a hold
//! - **Begin** (the holder, before it stamps `LENT`): `deadline`, no flags. The deadline is made
//!   later than the previous hold's in the same slot, so a lease value never repeats in a slot:
//!   a CAS from a value read for one hold can never succeed on a later hold (no ABA).
//! - **Extend** (the holder): CAS `deadline → later deadline`. Fails once the hold is taken.
//! - **Acknowledge** (the holder): CAS `deadline → deadline | ACKED`, then the holder frees the
//!   slot. Fails once the hold is taken: the caller gets `Expired`.
//! - **Take** (a survivor; only when the deadline has passed, or the holder is dead): CAS
//!   `deadline → deadline | TAKEN | me`. The taker then hands the message out again. If it
//!   cannot yet (the queue is full of other messages), it gives the hold back
//!   (`untake`: CAS back to `deadline`) for a later sweep. A taker that dies midway is replaced
//!   by any survivor (CAS of the token).
//! - **Let go** after a take (the holder, dropping its guard): `fetch_or(GONE)`. **Done** (the
//!   taker, once the message is out and the slot detached): `fetch_or(DONE)`. Whichever of the
//!   two comes second sees the other's bit and gives the slot back to the ring (`undetach`):
//!   until then the holder's bytes stay where they are, because the holder may still read them.
//!   Both are RMWs of this one word, so they are totally ordered, and exactly one sees the other.

use crate::ring::{Ring, Side, SlotStates};
use crate::sync::{AtomicU64, Ordering};

/// The holder let go of its guard after its hold was taken over.
pub(crate) const GONE: u64 = 1 << 63;
/// The taker handed the message out again and detached the slot.
pub(crate) const DONE: u64 = 1 << 62;
/// The hold was taken over by the participant in the token bits.
pub(crate) const TAKEN: u64 = 1 << 61;
/// The holder acknowledged the message before anyone took the hold.
pub(crate) const ACKED: u64 = 1 << 60;
const TOKEN_SHIFT: u32 = 40;
const TOKEN_MASK: u64 = (1 << 20) - 1;
const DEADLINE_MASK: u64 = (1 << TOKEN_SHIFT) - 1;

/// The deadline of a lease word, in milliseconds.
pub(crate) fn deadline_of(word: u64) -> u64 {
    word & DEADLINE_MASK
}

/// The taker's token of a lease word with [`TAKEN`].
pub(crate) fn taker_of(word: u64) -> u32 {
    ((word >> TOKEN_SHIFT) & TOKEN_MASK) as u32
}

/// A deadline `timeout_ms` after `now_ms` that differs from the lease value `previous` (the
/// slot's previous hold, or this hold before an extension): one more than `previous`'s deadline
/// if the clock has not moved past it (see "Life of a hold"), unless that deadline is absurdly
/// far (written by a hostile peer, or a long extension): then the clock alone decides.
pub(crate) fn later_deadline(previous: u64, now_ms: u64, timeout_ms: u64) -> u64 {
    let previous = deadline_of(previous);
    let wanted = now_ms.saturating_add(timeout_ms) & DEADLINE_MASK;
    if previous >= wanted && previous - wanted <= timeout_ms.max(1) {
        (previous + 1) & DEADLINE_MASK
    } else {
        wanted
    }
}

/// Why a lease operation failed: the hold was taken over (its message handed out again, or
/// about to be).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Expired;

/// A slot's lease word, as seen by the holder of one hold.
#[derive(Debug)]
pub(crate) struct Lease<'a> {
    word: &'a AtomicU64,
}

impl<'a> Lease<'a> {
    pub(crate) fn new(word: &'a AtomicU64) -> Self {
        Lease { word }
    }

    /// Starts a hold that lapses `timeout_ms` after `now_ms`; returns its deadline. The holder
    /// calls this before it stamps the slot `LENT` (whose `Release` store publishes it).
    pub(crate) fn begin(&self, now_ms: u64, timeout_ms: u64) -> u64 {
        let deadline = later_deadline(self.word.load(Ordering::Relaxed), now_ms, timeout_ms);
        // Release: a survivor that reads this value also sees the claim that preceded it.
        self.word.store(deadline, Ordering::Release);
        deadline
    }

    /// Acknowledges the hold whose deadline is `deadline`: `Ok` if it was still the holder's
    /// (the caller then frees the slot), `Expired` if it was taken over.
    pub(crate) fn ack(&self, deadline: u64) -> Result<(), Expired> {
        // AcqRel: a taker that fails its CAS because of this sees the holder's reads as done.
        self.word
            .compare_exchange(
                deadline,
                deadline | ACKED,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .map(|_| ())
            .map_err(|_| Expired)
    }

    /// Moves the hold's deadline from `deadline` to `later`; `Expired` if it was taken over.
    pub(crate) fn extend(&self, deadline: u64, later: u64) -> Result<(), Expired> {
        self.word
            .compare_exchange(deadline, later, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(|_| Expired)
    }

    /// The holder lets go of a hold that was taken over. Returns whether the taker is done
    /// already, in which case the caller gives the slot back (`Ring::undetach`).
    pub(crate) fn let_go(&self) -> bool {
        self.word.fetch_or(GONE, Ordering::AcqRel) & DONE != 0
    }

    /// Takes over the hold whose lease word is `seen` (open, lapsed or with a dead holder; or
    /// taken by a dead taker) as participant `me`. Returns the new word on success.
    pub(crate) fn take(&self, seen: u64, me: u32) -> Option<u64> {
        let flags = seen & (GONE | DONE);
        let taken = flags | TAKEN | (u64::from(me) & TOKEN_MASK) << TOKEN_SHIFT | deadline_of(seen);
        self.word
            .compare_exchange(seen, taken, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| taken)
    }

    /// Gives a taken hold back (the taker could not hand the message out yet): the hold is in
    /// force again, as if never taken, for a later sweep. Keeps GONE if the holder let go
    /// meanwhile; returns whether it was set.
    pub(crate) fn untake(&self, taken: u64) -> bool {
        let mut now = taken;
        loop {
            let back = deadline_of(now) | (now & GONE);
            match self
                .word
                .compare_exchange(now, back, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return now & GONE != 0,
                Err(changed) if changed & !GONE == now & !GONE => now = changed,
                Err(_) => return false,
            }
        }
    }

    /// The taker is done (the message handed out again, the slot detached). Returns whether the
    /// holder let go already, in which case the caller gives the slot back (`Ring::undetach`).
    pub(crate) fn done(&self) -> bool {
        self.word.fetch_or(DONE, Ordering::AcqRel) & GONE != 0
    }

    /// The current word.
    pub(crate) fn load(&self) -> u64 {
        self.word.load(Ordering::Acquire)
    }
}

/// Starts an in-place hold of the claimed position `pos` by `holder`, with a lease on `word`
/// that lapses `timeout_ms` after `now_ms`: the lease first, then the `LENT` stamp that
/// publishes it. Returns the deadline, which the holder keeps for `finish_hold` and `extend`.
pub fn begin_hold<S: SlotStates>(
    ring: &Ring<'_, S>,
    word: &AtomicU64,
    pos: u64,
    holder: u32,
    now_ms: u64,
    timeout_ms: u64,
) -> u64 {
    let deadline = Lease::new(word).begin(now_ms, timeout_ms);
    ring.hold(pos, holder, Side::Recv);
    deadline
}

/// Ends the hold of `pos` by `holder`, whose lease on `word` has `deadline`: acknowledges the
/// message and frees the slot if the hold is still the holder's (`true`); otherwise (it was taken
/// over: `false`, the caller reports `Expired`) lets go, and gives the slot back to the ring if
/// the taker is done with it. Either way the caller wakes senders afterwards.
pub fn finish_hold<S: SlotStates>(
    ring: &Ring<'_, S>,
    word: &AtomicU64,
    pos: u64,
    holder: u32,
    deadline: u64,
) -> bool {
    let lease = Lease::new(word);
    if lease.ack(deadline).is_ok() {
        ring.release(pos);
        return true;
    }
    if lease.let_go() {
        ring.undetach(pos, holder);
    }
    false
}

/// Extends a hold whose lease on `word` has `deadline` to `timeout_ms` after `now_ms`: the new
/// deadline, or `None` if the hold lapsed (its deadline is before `now_ms`) or was taken over.
/// A deadline is a whole millisecond and a hold lapses only once the clock is past it, so never
/// before its full timeout.
pub fn extend_hold(word: &AtomicU64, deadline: u64, now_ms: u64, timeout_ms: u64) -> Option<u64> {
    if deadline_of(deadline) < now_ms {
        return None;
    }
    let later = later_deadline(deadline, now_ms, timeout_ms);
    Lease::new(word).extend(deadline, later).ok().map(|_| later)
}
