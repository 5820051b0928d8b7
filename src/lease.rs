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
//! 0..40   deadline, in milliseconds of the host's monotonic clock (34 years of uptime; see
//!         `recovery::monotonic_ns`, the same in every time namespace)
//! ```
//!
//! A word with none of the four flags is the deadline of a hold in force. While its holder has
//! not let go, the slot is not reused (it stays `LENT` by the holder, or detached for it), so
//! every flagless value in its lease word is this hold's: written by its begin, its extensions,
//! or a taker's `untake`, which restores the value it took. The holder therefore decides from
//! the word it reads, not from a deadline it remembers.
//!
//! # Life of a hold
//! - **Begin** (the holder, before it stamps `LENT`): `deadline`, no flags. The deadline is made
//!   later than the previous hold's in the same slot, so a lease value never repeats in a slot:
//!   a CAS from a value read for one hold can never succeed on a later hold (no ABA).
//! - **Extend** (the holder): CAS `deadline → later deadline`. Fails once the hold is taken.
//! - **Acknowledge** (the holder): CAS `deadline → deadline | ACKED`, then the holder frees the
//!   slot. Fails once the hold is taken: the caller gets `Expired`.
//!
//!   Both succeed after the deadline too, as long as nobody took the hold: the deadline is the
//!   earliest moment a survivor may take it, and until one does, nobody else has the message
//!   (as SQS deletes with a receipt whose timeout passed, if nobody received the message
//!   since). The CAS is the one atomic step that decides between the holder and a taker.
//! - **Expired is final** for the holder (see [`Hold`]): once an extension or an ack found the
//!   hold taken, the holder never acknowledges it, even if the taker gave it back (`untake`)
//!   meanwhile; it only lets go, and the next scan hands the message out. So `Expired` always
//!   means that someone else has the message or will get it.
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

    /// Acknowledges the hold: `Ok` if it was still the holder's, whatever the clock says (the
    /// caller then frees the slot), `Expired` if it was taken over.
    pub(crate) fn ack(&self) -> Result<(), Expired> {
        self.update(|deadline| deadline | ACKED).map(|_| ())
    }

    /// Moves the hold's deadline to `timeout_ms` after `now_ms` (see [`later_deadline`]);
    /// `Expired` if it was taken over. Returns the new deadline.
    pub(crate) fn extend(&self, now_ms: u64, timeout_ms: u64) -> Result<u64, Expired> {
        self.update(|deadline| later_deadline(deadline, now_ms, timeout_ms))
    }

    /// The holder's one step on its hold in force: replaces the flagless word (this hold's
    /// deadline, see the module doc) by `next(word)` with a CAS from the value read, so that a
    /// taker's CAS and this one cannot both succeed. `Expired` once the word shows a flag. A
    /// failed CAS looks again: the word was taken (a flag now), or extended by another thread of
    /// the holder (still flagless).
    fn update(&self, next: impl Fn(u64) -> u64) -> Result<u64, Expired> {
        let mut seen = self.word.load(Ordering::Acquire);
        loop {
            if seen & (GONE | DONE | TAKEN | ACKED) != 0 {
                return Err(Expired);
            }
            let new = next(seen);
            // AcqRel: a taker that fails its CAS because of this sees the holder's reads as
            // done; Acquire on failure: a taker's word is read with what it wrote before.
            match self
                .word
                .compare_exchange(seen, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(new),
                Err(now) => seen = now,
            }
        }
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

/// The holder's side of one in-place hold with a lease: whether it was told `Expired`. Once
/// told, it is final (see "Life of a hold"): the holder never acknowledges, it only lets go.
/// Handle-local, never in the mapping.
#[derive(Debug, Default)]
pub struct Hold {
    /// An extension found the hold taken over. (Relaxed: set and read by the holder only; a
    /// guard's `ack` and drop come after its extensions, which borrow it.)
    expired: std::sync::atomic::AtomicBool,
}

/// Starts an in-place hold of the claimed position `pos` by `holder`, with a lease on `word`
/// that lapses `timeout_ms` after `now_ms`: the lease first, then the `LENT` stamp that
/// publishes it. The holder keeps the [`Hold`] for [`Hold::extend`] and [`Hold::finish`].
pub fn begin_hold<S: SlotStates>(
    ring: &Ring<'_, S>,
    word: &AtomicU64,
    pos: u64,
    holder: u32,
    now_ms: u64,
    timeout_ms: u64,
) -> Hold {
    Lease::new(word).begin(now_ms, timeout_ms);
    ring.hold(pos, holder, Side::Recv);
    Hold::default()
}

impl Hold {
    /// Extends the hold, whose lease is on `word`, to `timeout_ms` after `now_ms`: the new
    /// deadline, or `None` if it was taken over (now or by an earlier call). A hold whose
    /// deadline passed and that nobody took yet is still the holder's: extended. A deadline is a
    /// whole millisecond and a hold lapses only once the clock is past it, so never before its
    /// full timeout.
    pub fn extend(&self, word: &AtomicU64, now_ms: u64, timeout_ms: u64) -> Option<u64> {
        if self.expired.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let extended = Lease::new(word).extend(now_ms, timeout_ms).ok();
        if extended.is_none() {
            self.expired
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        extended
    }

    /// Ends the hold of `pos` by `holder`, whose lease is on `word`: acknowledges the message
    /// and frees the slot if the hold is still the holder's and it was never told `Expired`
    /// (`true`); otherwise (`false`, the caller reports `Expired`) lets go, and gives the slot
    /// back to the ring if the taker is done with it. Either way the caller wakes senders
    /// afterwards.
    ///
    /// Letting go of a hold that a taker gave back (`untake`) leaves `GONE` on a flagless word:
    /// the next scan finds it due and hands the message out, as a dead holder's.
    pub fn finish<S: SlotStates>(
        &self,
        ring: &Ring<'_, S>,
        word: &AtomicU64,
        pos: u64,
        holder: u32,
    ) -> bool {
        let lease = Lease::new(word);
        if !self.expired.load(std::sync::atomic::Ordering::Relaxed) && lease.ack().is_ok() {
            ring.release(pos);
            return true;
        }
        if lease.let_go() {
            ring.undetach(pos, holder);
        }
        false
    }
}
