// SPDX-License-Identifier: MIT OR Apache-2.0
//! The claim protocol: a bounded MPMC ring of slots, claimed on its cursors, with every claim
//! announced by its claimer so that a survivor can tell a claim in progress from one whose
//! claimer died.
//!
//! This is Dmitry Vyukov's bounded MPMC queue (as in crossbeam-queue's `ArrayQueue`): a producer
//! claims a position with one compare-and-swap on the `tail` cursor, writes the slot, and
//! publishes it with a plain `Release` store of the slot's state word; a consumer claims with one
//! CAS on `head`, reads, and frees the slot with a plain store. One locked instruction per
//! message per side, on a line that side owns. Two things are added for shared memory:
//!
//! - **Announcements, for crash recovery.** In the plain algorithm a process that dies between
//!   winning the cursor and writing the slot leaves a position that nobody can attribute. Here a
//!   claimer first stores the run of positions it is about to claim in its [`Announcement`], a
//!   record on a line that only it writes (its entry in the participant table: one per thread of
//!   a handle, so two threads never share one). A survivor that finds a position claimed but not
//!   published (below `tail`, slot still `EMPTY`), or claimed but not released (below `head`,
//!   slot still `FULL`), repairs it only if **no live claimer announces it** (see
//!   "Attribution" below).
//! - **Stamps, for exact `Empty` and `Full` and for long holds.** Right after its CAS, a claimer
//!   stamps each claimed slot with a plain store naming itself (`WRITING` or `READING` and its
//!   token): a store to a line it is about to write anyway, so it costs no extra transfer. A
//!   consumer that finds the slot at the head stamped `WRITING` knows a send is in progress there
//!   and waits for it (rather than report `Empty` while later messages are committed); a
//!   producer that finds the slot at the tail stamped `READING` waits for the consumer to free it
//!   (rather than report `Full` with a slot about to be free). Neither reads the other side's
//!   cursor line: measured, a receiver that read the producers' `tail` on every empty poll cost
//!   1.45x the round trip, and storing an intent in the slot *before* the CAS cost 0.6x the
//!   floor (the slot's line moved one more time per message).
//!
//! # Positions and slots
//! Messages are numbered by *positions* `0, 1, 2, …`; position `p` lives in slot
//! `p % capacity` (any capacity from 1 up; [`SlotStates`] does the modulo). `tail` is the next
//! position a producer claims and `head` the next a consumer claims; both only grow, and
//! `head <= tail`. Bit 63 of `tail` is the *closed* flag: a closed tail never moves again for a
//! send (a producer's CAS expects a value without the flag), so no message appears after
//! `close`; only crash recovery may extend it, for a message sent before the close.
//!
//! # The state word
//! `state = pos << 24 | owner << 4 | phase`, `pos` truncated to 40 bits (compared by signed
//! distance to a cursor, so it wraps harmlessly):
//!
//! | phase      | meaning                                                                        |
//! |------------|--------------------------------------------------------------------------------|
//! | `EMPTY`    | free for the producer of `pos`; claimed by it, not yet stamped, if `pos < tail` |
//! | `WRITING`  | claimed by producer `owner`, who is writing the message of `pos`               |
//! | `RESERVED` | claimed by producer `owner`, who holds it beyond one call (a `SendGuard`)       |
//! | `FULL`     | the committed message of `pos`; claimed, not yet stamped, if `pos < head`      |
//! | `READING`  | claimed by consumer `owner`, who is reading the message of `pos`               |
//! | `LENT`     | claimed by consumer `owner`, who holds it beyond one call (a `RecvGuard`)       |
//! | `SKIP`     | `pos` holds no message (a cancelled send); consumers claim and free it         |
//! | `WITHHELD` | free for the producer of `pos`, but its bytes are lent to `owner`: passed over |
//! | `WITHHELD_SKIP` | `pos` holds no message, bytes lent to `owner`: consumers pass it over     |
//!
//! A slot's life: `EMPTY(p) → [tail passes p] → WRITING(p) (→ RESERVED(p)) → FULL(p) | SKIP(p)
//! → [head passes p] → READING(p) (→ LENT(p)) → EMPTY(p + cap)`. The bracketed steps are the
//! cursor CASes and change nothing in the slot; the stamps right after them are plain stores by
//! the claimer. //! Slot `i` starts as `EMPTY(i)`. Between its claim and its final store, a slot is written only
//! by its claimer, or by a survivor that proved the claimer dead, with a CAS from the exact
//! state the claimer left (so two survivors cannot both repair it).
//!
//! # Attribution
//! A claimer announces `(first, count, side)` with `Release` stores, then makes its cursor CAS
//! (`AcqRel`), then stamps its slots. It does not announce again until every position of that
//! claim is stamped, and it clears the announcement if it returns without a claim (so a
//! live claimer that lost a race never keeps announcing a position someone else won). A survivor
//! loads the cursor (`Acquire`) and finds position `p` below it with the slot still showing the
//! unclaimed state; then it reads every live participant's announcement (`Acquire`). The cases:
//! - **The winner of `p` is alive.** Its announcement of `p` was stored before its CAS, which
//!   the survivor's cursor load synchronised with, so the survivor reads that announcement or a
//!   later one. A later one is stored only after `p` was published or stamped; reading it makes
//!   that store visible too, and the survivor's repair CAS (from the unclaimed state) fails. So a
//!   live winner is never repaired over.
//! - **The winner died** (before or after writing any payload byte). No live announcement covers
//!   `p`: a live *loser* may still show `p` for a moment (then the survivor waits and looks again;
//!   losers clear their announcement before they return), but nobody else's does. The survivor
//!   CASes the slot: a producer's position becomes a tombstone (`SKIP`), a consumer's message is
//!   given back (see `recovery`).
//! - **A claimer died after announcing, before its CAS.** Either nobody won `p` yet (`p` is not
//!   below the cursor, nothing to repair) or somebody else did, and that one is covered above.
//! - **A stale announcement** (a claimer that finished long ago) names positions whose slots
//!   have moved on; positions are never reused, so it covers nothing a survivor asks about.
//! - **A stamped claim** names its owner, who is judged directly: announcements matter only for
//!   the two instructions between a CAS and its stamp.
//!
//! Who is alive is decided by the kernel (see `participant`), never by a timeout.
//!
//! # Exact Empty and Full
//! A consumer that finds `WRITING(h)` at the head, or a producer that finds `READING(p)` in the
//! slot the tail needs, reports `Busy`: the caller waits for that claimer (briefly: a live one
//! finishes within microseconds; a dead one is found by recovery; see `Queue`). A long hold
//! (`RESERVED`, `LENT`) is not waited for: the messages behind a held reservation are not
//! received until it is committed, and a held in-place receive keeps its slot from producers
//! when the tail comes round to it; those calls say so in their docs.
//!
//! Between a claimer's CAS and its stamp (a few instructions) its slot still looks unclaimed.
//! A caller that finds the slot unclaimed therefore also looks at the *next* slot (a line it
//! owns or needs anyway): if the next position is claimed, so is this one, and the caller waits
//! too. What remains inexact is two claimers preempted between CAS and stamp at once, at the
//! cursor and next to it: then `Empty` or `Full` may be reported while they are descheduled.
//!
//! # Withheld slots
//! In a queue with a visibility timeout, a message held in place (`LENT`) past its deadline is
//! handed out again (see `lease` and `recovery::claims`): it is copied to a slot at the tail,
//! and its own slot is *detached*, `LENT(p, holder)` becoming `WITHHELD(p + cap, holder)`. The
//! holder may still be reading those bytes, so nobody may write them until it lets go; yet no
//! producer may wait for a holder that may never let go. So the slot goes round the ring empty:
//! - the producer whose position `q` falls on `WITHHELD(q)` claims `q` with its usual cursor
//!   CAS (announced, like any claim) and turns the slot into `WITHHELD_SKIP(q)`, then goes on to
//!   claim `q + 1`: `q` holds no message;
//! - the consumer whose position `q` falls on `WITHHELD_SKIP(q)` claims it and turns it into
//!   `WITHHELD(q + cap)`, as it would free a tombstone.
//!
//! Each pass is a CAS from the exact word seen after the cursor CAS, so it fails only if the
//! holder gave the slot back meanwhile (`undetach`: `WITHHELD(q)` becomes `EMPTY(q)`,
//! `WITHHELD_SKIP(q)` becomes `SKIP(q)`); then the position is the passer's own ordinary claim,
//! cancelled or freed as usual. A passer that dies between its cursor CAS and its pass leaves
//! `WITHHELD(q)` below the tail (or `WITHHELD_SKIP(q)` below the head) with no live announcement
//! of `q`: a survivor finishes the pass, exactly as it tombstones an unstamped send. A holder
//! that dies leaves its slot withheld for a dead owner: a survivor gives it back. So a hung
//! holder costs the queue one slot, and only while it keeps its guard.
//!
//! If the tail has come round to the held slot itself, the message cannot be copied to the
//! tail; then the taker also takes over the lapsed holds in the slots right after it, and claims
//! with one cursor CAS the run's next positions and as many after them (`claim_past_held`): it
//! copies each message into one of the latter, and detaches each held slot straight to
//! `WITHHELD_SKIP`, its next position passed over. A run of hung holders at the tail therefore
//! needs as many free slots after it; with fewer, the queue is full of messages that cannot be
//! moved yet, and they wait for a holder to let go.
//!
//! # Orderings
//! The payload is handed over by the state word alone: a producer's `Release` store of `FULL`
//! pairs with the consumer's `Acquire` load that saw it; the consumer's `Release` store of
//! `EMPTY(p + cap)` pairs with the next producer's `Acquire` load. The cursor CASes are `AcqRel`:
//! they order the announcement before the claim (see above), and a cursor load is
//! `Acquire`, so that a reader that sees `head == h` also sees the slot states that let it move
//! (otherwise the slot at `h` could look a lap old and be called corrupt). On x86 these cost
//! nothing: loads are plain loads, stores plain stores, and every RMW is locked anyway.
//!
//! # Closing
//! A receiver that finds nothing at `head` must tell "empty" from "closed", which the tail
//! says; but the tail's line belongs to the producers. So `close` first sets `closing` (a word
//! on the consumers' own line, written once), then the tail's closed flag, and receivers read
//! the tail only once they see `closing`. A closer that dies between the two stores leaves the
//! queue open; the order never lets the tail be closed unseen. A sleeping receiver is woken by
//! `close` after both stores.
//!
//! This module never touches payload bytes; the caller writes between `claim_send` and
//! `publish`, and reads between `claim_recv` and `release`.

use crate::sync::{AtomicU64, Ordering};
use std::cell::Cell;

/// Bit 63 of `tail`: the queue is closed.
pub(crate) const CLOSED: u64 = 1 << 63;

const PHASE_BITS: u32 = 4;
const OWNER_BITS: u32 = 20;
const POS_SHIFT: u32 = PHASE_BITS + OWNER_BITS;
const POS_BITS: u32 = 64 - POS_SHIFT;
const POS_MASK: u64 = (1 << POS_BITS) - 1;
const PHASE_MASK: u64 = (1 << PHASE_BITS) - 1;
/// Largest participant token that fits in a state word.
pub(crate) const OWNER_MAX: u32 = (1 << OWNER_BITS) - 1;

/// What a slot holds for the position in its state word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Free for the producer of `pos` (or claimed by it, if the tail has passed `pos`).
    Empty = 0,
    /// Claimed by producer `owner`, who is writing the message of `pos`.
    Writing = 1,
    /// Holds the committed message of `pos` (claimed, if the head has passed `pos`).
    Full = 2,
    /// Claimed by consumer `owner`, who is reading the message of `pos`.
    Reading = 3,
    /// `pos` was claimed but holds no message (cancelled or abandoned send).
    Skip = 4,
    /// Claimed by producer `owner`, who holds it beyond one call (a reservation).
    Reserved = 5,
    /// Claimed by consumer `owner`, who holds it beyond one call (an in-place receive).
    Lent = 6,
    /// Free for the producer of `pos`, but its bytes are still lent to `owner`, whose hold
    /// lapsed and whose message was handed out again: the producer of `pos` passes it over.
    Withheld = 7,
    /// `pos` holds no message, and the slot's bytes are still lent to `owner` (as `Withheld`):
    /// the consumer of `pos` passes it over.
    WithheldSkip = 8,
}

impl Phase {
    /// Whether a slot in this phase names the participant that claimed it.
    pub fn is_stamp(self) -> bool {
        matches!(
            self,
            Phase::Writing | Phase::Reading | Phase::Reserved | Phase::Lent
        )
    }
}

/// A decoded slot state word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotState {
    /// The position, truncated to 40 bits.
    pub pos: u64,
    /// The participant token of the claimer (stamped phases); 0 otherwise.
    pub owner: u32,
    /// What the slot holds for `pos`.
    pub phase: Phase,
}

impl SlotState {
    pub(crate) fn new(pos: u64, owner: u32, phase: Phase) -> Self {
        SlotState {
            pos: pos & POS_MASK,
            owner: owner & OWNER_MAX,
            phase,
        }
    }

    pub(crate) fn encode(self) -> u64 {
        (self.pos << POS_SHIFT) | (u64::from(self.owner) << PHASE_BITS) | self.phase as u64
    }

    /// Decodes a word read from shared memory; `None` for a phase no honest peer writes.
    pub(crate) fn decode(word: u64) -> Option<Self> {
        let phase = match word & PHASE_MASK {
            0 => Phase::Empty,
            1 => Phase::Writing,
            2 => Phase::Full,
            3 => Phase::Reading,
            4 => Phase::Skip,
            5 => Phase::Reserved,
            6 => Phase::Lent,
            7 => Phase::Withheld,
            8 => Phase::WithheldSkip,
            _ => return None,
        };
        Some(SlotState {
            pos: word >> POS_SHIFT,
            owner: ((word >> PHASE_BITS) as u32) & OWNER_MAX,
            phase,
        })
    }

    /// How many positions this state is ahead of `cursor` (negative: behind), modulo 2^40.
    pub(crate) fn distance_from(self, cursor: u64) -> i64 {
        let diff = self.pos.wrapping_sub(cursor) & POS_MASK;
        // Sign-extend the 40-bit difference.
        ((diff << POS_SHIFT) as i64) >> POS_SHIFT
    }

    /// The full position of this state, from its truncated `pos` and a cursor near it.
    pub(crate) fn position_near(self, cursor: u64) -> u64 {
        cursor.wrapping_add(self.distance_from(cursor) as u64)
    }
}

/// The state word of a slot free for the producer of `pos`.
#[inline]
pub fn empty_state(pos: u64) -> u64 {
    SlotState::new(pos, 0, Phase::Empty).encode()
}

/// The state word of a slot holding the committed message of `pos`.
#[inline]
pub fn full_state(pos: u64) -> u64 {
    SlotState::new(pos, 0, Phase::Full).encode()
}

/// The state word of a slot whose position `pos` holds no message.
#[inline]
pub fn skip_state(pos: u64) -> u64 {
    SlotState::new(pos, 0, Phase::Skip).encode()
}

/// Which cursor a claim is made on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Side {
    /// A producer's claim, on `tail`.
    Send = 0,
    /// A consumer's claim, on `head`.
    Recv = 1,
}

/// Where the ring's slots live: in the mapped file in production, on the heap in the tests.
pub trait SlotStates {
    /// The state word of the slot that holds position `pos`.
    fn state(&self, pos: u64) -> &AtomicU64;

    /// A hint, before the cursor CAS of a send that will write the slot of `pos`: start
    /// fetching the slot's lines (other than the state word's, which consumers poll) for
    /// writing. Nothing by default.
    #[inline]
    fn prepare_write(&self, pos: u64) {
        let _ = pos;
    }

    /// The state words of the slots of positions `pos + 1 ..= pos + N`, each loaded with
    /// `Acquire`, in that order (for `Ring::later_claimed`). By default through
    /// [`state`](Self::state); an implementation may find the slots faster in a row.
    #[inline(always)]
    fn states_after<const N: usize>(&self, pos: u64) -> [u64; N] {
        let mut words = [0; N];
        for (ahead, word) in (1..).zip(&mut words) {
            *word = self.state(pos.wrapping_add(ahead)).load(Ordering::Acquire);
        }
        words
    }
}

/// A claimer's record of the claim it is making: the run `first .. first + count` on one side.
/// Written only by its claimer (it lives on the claimer's own line of the participant table);
/// read by survivors (see "Attribution"). `run = count << 1 | side`; a count of 0 announces
/// nothing.
#[repr(C)]
#[derive(Debug)]
pub struct Announcement {
    first: AtomicU64,
    run: AtomicU64,
}

impl Announcement {
    /// An announcement of nothing.
    #[cfg_attr(not(any(test, loom)), allow(dead_code))]
    pub fn new() -> Self {
        Announcement {
            first: AtomicU64::new(0),
            run: AtomicU64::new(0),
        }
    }

    #[inline]
    fn announce(&self, first: u64, count: u64, side: Side) {
        // `Release`: a survivor that reads either word also sees everything this claimer did
        // before, in particular the stores that completed its previous claim.
        self.run.store(count << 1 | side as u64, Ordering::Release);
        self.first.store(first, Ordering::Release);
    }

    /// Withdraws the announcement (a claimer returning without a claim).
    pub fn clear(&self) {
        self.run.store(0, Ordering::Release);
    }

    /// Whether this announcement names position `pos` on `side`.
    pub fn covers(&self, pos: u64, side: Side) -> bool {
        let first = self.first.load(Ordering::Acquire);
        let run = self.run.load(Ordering::Acquire);
        run & 1 == side as u64 && pos.wrapping_sub(first) < run >> 1
    }
}

/// Who makes a claim: a participant token (recorded in stamps) and its announcement record.
#[derive(Clone, Copy, Debug)]
pub struct Claimer<'a> {
    /// The participant token.
    pub token: u32,
    /// The claimer's own announcement record.
    pub announcement: &'a Announcement,
}

/// A run of consecutive positions `first .. first + count` claimed by one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The first claimed position.
    pub first: u64,
    /// How many consecutive positions were claimed (at least 1).
    pub count: u64,
}

impl Claim {
    /// The claimed positions.
    pub fn positions(self) -> impl Iterator<Item = u64> {
        (0..self.count).map(move |i| self.first.wrapping_add(i))
    }
}

/// Why a claim failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimError {
    /// Send: every slot holds a message. Receive: no message is ready.
    WouldBlock,
    /// A claim in progress at the cursor will free the way in a moment (a producer writing the
    /// message at the head, a consumer reading the slot the tail needs): the caller waits for it,
    /// briefly, rather than report `Empty` or `Full`. A claimer that died is found by recovery.
    Busy,
    /// Send: the queue is closed. Receive: the queue is closed and every message was claimed.
    Closed,
    /// Receive: the caller's `accept` refused the message at this position; nothing was claimed.
    Rejected(u64),
    /// A state word holds a value that no honest participant writes.
    Corrupt(&'static str),
}

/// How many slots past the cursor a caller looks for a later claim (see `later_claimed`).
const LOOK_AHEAD: u64 = 4;

/// A claim that runs to its end (every build but the loom models' crash injection).
pub const RUN: u8 = 0;
/// A claim that stops for good after its announcement, before its cursor CAS.
pub const STOP_AFTER_ANNOUNCEMENT: u8 = 1;
/// A claim that stops for good after its cursor CAS, before it stamps its slots.
pub const STOP_AFTER_CAS: u8 = 2;

/// How one CAS for a claim ended.
enum Attempt {
    Won(Claim),
    /// Another claimer moved the cursor first; this is its new value.
    Lost(u64),
    /// No claim: the receive's `accept` refused the message (`Rejected`), or a loom model's
    /// claimer "died" after its announcement (`WouldBlock`, see [`STOP_AFTER_ANNOUNCEMENT`]).
    Failed(ClaimError),
}

/// The claim protocol over a ring's two cursors and its slots.
pub struct Ring<'a, S> {
    pub(crate) tail: &'a AtomicU64,
    pub(crate) head: &'a AtomicU64,
    /// Set by `close` before it closes the tail (see "Closing" in the module doc).
    pub(crate) closing: &'a AtomicU64,
    pub(crate) slots: S,
    pub(crate) capacity: u64,
    /// Counts the tombstones this ring value freed in `claim_recv`: each is a slot given back
    /// to the producers, who must be woken if they sleep on a full queue.
    pub(crate) recycled: Cell<u64>,
    /// The state word of the slot at the cursor when a claim on this ring value last returned
    /// `WouldBlock` (nothing to claim there, and no claim in progress to wait for): what the
    /// caller hands to the stuck-claim watch (`recovery::stuck`), without loading it again.
    pub(crate) blocked_by: Cell<u64>,
}

impl<'a, S: SlotStates> Ring<'a, S> {
    /// The protocol over these cursors, closing hint and slots of `capacity` (at least 1).
    pub fn new(
        tail: &'a AtomicU64,
        head: &'a AtomicU64,
        closing: &'a AtomicU64,
        slots: S,
        capacity: u64,
    ) -> Self {
        Ring {
            tail,
            head,
            closing,
            slots,
            capacity,
            recycled: Cell::new(0),
            blocked_by: Cell::new(0),
        }
    }

    fn decode(word: u64) -> Result<SlotState, ClaimError> {
        SlotState::decode(word).ok_or(ClaimError::Corrupt("slot state has an unknown phase"))
    }

    /// Claims up to `max` consecutive positions for writing.
    ///
    /// On success the caller owns the claimed slots: it writes each message and then calls
    /// [`publish`](Self::publish) (or [`cancel`](Self::cancel)) for every position.
    #[inline]
    pub fn claim_send(&self, me: Claimer<'_>, max: u64) -> Result<Claim, ClaimError> {
        let result = self.claim_send_inner::<RUN>(me, max);
        if result.is_err() {
            // Never leave a live announcement of a position someone else won (see
            // "Attribution"); a no-op store on a line we own when we announced nothing.
            me.announcement.clear();
        }
        result
    }

    /// The common receive claim alone, after the first look (`seen`, from
    /// [`look_recv`](Self::look_recv)): a committed message at the head that `accept` takes,
    /// and a CAS that wins. Returns the claimed position, or `None` for anything else; then
    /// nothing is claimed, no announcement is left live, and the caller makes the whole claim
    /// ([`claim_recv`](Self::claim_recv)) from a fresh look.
    ///
    /// Apart from the claim loop so that a caller can run this inline and the loop out of
    /// line: the values the compiler prepares for the loop's rare cases (and keeps on the
    /// stack for lack of registers) then cost the common claim nothing.
    #[inline(always)]
    pub fn claim_recv_one(
        &self,
        (head, word): (u64, u64),
        me: Claimer<'_>,
        mut accept: impl FnMut(u64) -> bool,
    ) -> Option<u64> {
        if word != full_state(head) {
            return None;
        }
        match self.claim_full::<RUN>(me, 1, head, &mut accept) {
            Attempt::Won(claim) => Some(claim.first),
            Attempt::Lost(_) | Attempt::Failed(_) => {
                me.announcement.clear();
                None
            }
        }
    }

    /// A claim that stops for good after step `STOP` (see [`STOP_AFTER_CAS`]) when a loom
    /// model says so: the claimer "dies" there, leaving what it wrote. In every other build
    /// `STOP` is [`RUN`] and the checks compile to nothing.
    #[cfg(loom)]
    pub fn claim_send_stopping<const STOP: u8>(
        &self,
        me: Claimer<'_>,
        max: u64,
    ) -> Result<Claim, ClaimError> {
        self.claim_send_inner::<STOP>(me, max)
    }

    /// As [`claim_send_stopping`](Self::claim_send_stopping), for a receive.
    #[cfg(loom)]
    pub fn claim_recv_stopping<const STOP: u8>(
        &self,
        me: Claimer<'_>,
        max: u64,
    ) -> Result<Claim, ClaimError> {
        let seen = self.look_recv()?;
        self.claim_recv_inner::<STOP>(seen, me, max, |_| true)
    }

    #[inline(always)]
    fn claim_send_inner<const STOP: u8>(
        &self,
        me: Claimer<'_>,
        max: u64,
    ) -> Result<Claim, ClaimError> {
        debug_assert!(max >= 1);
        let cap = self.capacity;
        let mut tail = self.tail.load(Ordering::Acquire);
        // The common case first, outside the loop: a free slot at the tail, and a CAS that
        // wins. The loop's preparations for the rare cases (values the compiler computes
        // before entering it) are then paid by those cases alone.
        if tail & CLOSED == 0 && self.slots.state(tail).load(Ordering::Acquire) == empty_state(tail)
        {
            match self.claim_free::<STOP>(me, max, tail) {
                Attempt::Won(claim) => return Ok(claim),
                Attempt::Lost(now) => tail = now,
                Attempt::Failed(e) => return Err(e),
            }
        }
        loop {
            if tail & CLOSED != 0 {
                return Err(ClaimError::Closed);
            }
            let word = self.slots.state(tail).load(Ordering::Acquire);
            if word == empty_state(tail) {
                match self.claim_free::<STOP>(me, max, tail) {
                    Attempt::Won(claim) => return Ok(claim),
                    Attempt::Lost(now) => tail = now,
                    Attempt::Failed(e) => return Err(e),
                }
                continue;
            }
            let state = Self::decode(word)?;
            let distance = state.distance_from(tail);
            if distance == 0 && state.phase == Phase::Withheld {
                // Free for us but for its bytes, still lent to a holder whose hold lapsed:
                // claim the position and pass it over (see "Withheld slots").
                me.announcement.announce(tail, 1, Side::Send);
                match self.tail.compare_exchange(
                    tail,
                    tail.wrapping_add(1),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        self.pass_withheld(tail, word);
                        tail = tail.wrapping_add(1);
                    }
                    Err(now) => tail = now,
                }
                continue;
            }
            if distance < 0 && distance >= -(cap as i64) {
                // The slot still serves the previous lap: the queue is full, unless a consumer
                // is reading that message and is about to free the slot (or has claimed it and
                // not stamped it yet, which shows as the next slot claimed).
                if state.phase == Phase::Reading
                    || (matches!(state.phase, Phase::Full | Phase::Skip | Phase::WithheldSkip)
                        && self.later_claimed(tail.wrapping_sub(cap), Phase::Reading))
                {
                    return Err(ClaimError::Busy);
                }
                let now = self.tail.load(Ordering::Acquire);
                if now == tail {
                    self.blocked_by.set(word);
                    return Err(ClaimError::WouldBlock);
                }
                tail = now;
            } else if distance >= 0 && distance <= cap as i64 {
                // The slot is already at or past our position: our reading of the tail is
                // stale (a claim's CAS comes before anything it writes to the slot).
                tail =
                    self.stale_or_corrupt(self.tail, tail, "slot state disagrees with the tail")?;
            } else {
                tail = self.stale_or_corrupt(
                    self.tail,
                    tail,
                    "slot state is more than a lap away from the tail",
                )?;
            }
        }
    }

    /// Claims the run of free slots from `tail` (whose slot is `EMPTY(tail)`), up to `max`.
    #[inline(always)]
    fn claim_free<const STOP: u8>(&self, me: Claimer<'_>, max: u64, tail: u64) -> Attempt {
        let count = self.free_run(tail, max.min(self.capacity));
        self.slots.prepare_write(tail);
        self.claim_run::<STOP>(me, Side::Send, tail, count)
    }

    /// Claims `first .. first + count` on `side`'s cursor, which the caller read as `first`:
    /// announce, CAS the cursor, stamp (`WRITING` or `READING`).
    #[inline(always)]
    fn claim_run<const STOP: u8>(
        &self,
        me: Claimer<'_>,
        side: Side,
        first: u64,
        count: u64,
    ) -> Attempt {
        let (cursor, phase) = match side {
            Side::Send => (self.tail, Phase::Writing),
            Side::Recv => (self.head, Phase::Reading),
        };
        me.announcement.announce(first, count, side);
        if STOP == STOP_AFTER_ANNOUNCEMENT {
            return Attempt::Failed(ClaimError::WouldBlock);
        }
        match cursor.compare_exchange(
            first,
            first.wrapping_add(count),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => {
                let claim = Claim { first, count };
                if STOP != STOP_AFTER_CAS {
                    self.stamp_run(claim, me.token, phase);
                }
                Attempt::Won(claim)
            }
            Err(now) => Attempt::Lost(now),
        }
    }

    /// Whether some position after `pos`, within [`LOOK_AHEAD`] slots, is claimed on the side
    /// whose stamp is `stamp` (`Writing`: by a producer; `Reading`: by a consumer). Claims are
    /// made in order, so that proves `pos` claimed too: its claimer is between its CAS and its
    /// stamp. Reads slots whose lines the caller owns or will need anyway; never a cursor.
    /// (More claimers than that, all between CAS and stamp at once, still look unclaimed: see
    /// "Exact Empty and Full".)
    #[inline(always)]
    fn later_claimed(&self, pos: u64, stamp: Phase) -> bool {
        // The state of slot `next` when nobody has claimed it: free for its producer, or
        // holding its message for its consumer.
        let unclaimed = |next: u64| match stamp {
            Phase::Writing => empty_state(next),
            _ => full_state(next.wrapping_sub(self.capacity)),
        };
        // The common answer first: every slot of the span unclaimed, found with one branch
        // (an empty poll pays for this on every call). Anything else is looked at below, slot
        // by slot, from loads made afresh.
        if self.capacity > LOOK_AHEAD {
            let words = self.slots.states_after::<{ LOOK_AHEAD as usize }>(pos);
            let mut differ = 0;
            for (ahead, word) in (1..).zip(words) {
                differ |= word ^ unclaimed(pos.wrapping_add(ahead));
            }
            if differ == 0 {
                return false;
            }
        }
        let span = LOOK_AHEAD.min(self.capacity - 1);
        for ahead in 1..span + 1 {
            let next = pos.wrapping_add(ahead);
            let word = self.slots.state(next).load(Ordering::Acquire);
            // The common answers first, without decoding.
            if word == unclaimed(next) {
                continue;
            }
            let Some(state) = SlotState::decode(word) else {
                return false;
            };
            let distance = state.distance_from(next);
            let claimed = match stamp {
                // Claimed by a producer: stamped, already committed, or passed over.
                Phase::Writing => {
                    distance == 0
                        && matches!(
                            state.phase,
                            Phase::Writing
                                | Phase::Reserved
                                | Phase::Full
                                | Phase::Skip
                                | Phase::WithheldSkip
                        )
                }
                // Claimed by a consumer: stamped, or already freed (or passed) for the next lap.
                _ => {
                    (distance == 0 && matches!(state.phase, Phase::Reading | Phase::Lent))
                        || (distance == self.capacity as i64
                            && matches!(state.phase, Phase::Empty | Phase::Withheld))
                }
            };
            if claimed {
                return true;
            }
            // A slot that still serves an earlier lap (for a producer's question) cannot have
            // been claimed, nor anything after it: stop.
            if distance < 0 {
                return false;
            }
        }
        false
    }

    /// How many consecutive slots from `first` (which is free) are free for their positions, up
    /// to `max`.
    fn free_run(&self, first: u64, max: u64) -> u64 {
        let mut count = 1;
        while count < max {
            let pos = first.wrapping_add(count);
            if self.slots.state(pos).load(Ordering::Acquire) != empty_state(pos) {
                break;
            }
            count += 1;
        }
        count
    }

    /// A slot disagreed with our reading `seen` of `cursor`: if the cursor has moved since, our
    /// reading was stale and the caller retries with the new value; if not, the slot is corrupt.
    fn stale_or_corrupt(
        &self,
        cursor: &AtomicU64,
        seen: u64,
        what: &'static str,
    ) -> Result<u64, ClaimError> {
        let now = cursor.load(Ordering::Acquire);
        if now == seen {
            Err(ClaimError::Corrupt(what))
        } else {
            Ok(now)
        }
    }

    /// Commits the message written at a claimed position: consumers may now claim it.
    #[inline]
    pub fn publish(&self, pos: u64) {
        self.slots
            .state(pos)
            .store(full_state(pos), Ordering::Release);
    }

    /// Gives up a claimed position without a message: consumers skip it.
    pub fn cancel(&self, pos: u64) {
        self.slots
            .state(pos)
            .store(skip_state(pos), Ordering::Release);
    }

    /// Stamps every slot of a fresh claim with its claimer (see "Attribution"). A plain store:
    /// between the CAS and this, only the claimer writes these slots.
    #[inline]
    fn stamp_run(&self, claim: Claim, owner: u32, phase: Phase) {
        for pos in claim.positions() {
            // Release: a survivor that sees the stamp sees the claim it replaces.
            self.slots.state(pos).store(
                SlotState::new(pos, owner, phase).encode(),
                Ordering::Release,
            );
        }
    }

    /// Marks a claimed position as held beyond one call by `owner` (a reservation or an
    /// in-place receive; `side` says which): peers do not wait for it (see "Exact Empty and
    /// Full").
    pub fn hold(&self, pos: u64, owner: u32, side: Side) {
        let phase = match side {
            Side::Send => Phase::Reserved,
            Side::Recv => Phase::Lent,
        };
        self.slots.state(pos).store(
            SlotState::new(pos, owner, phase).encode(),
            Ordering::Release,
        );
    }

    /// Detaches the slot of a lapsed hold from the message it held, once that message was
    /// handed out again elsewhere: `LENT(pos, holder)` becomes `Withheld(pos + cap, holder)`,
    /// which producers and consumers pass over (see "Withheld slots") until the holder lets go;
    /// or `WithheldSkip(pos + cap, holder)` if position `pos + cap` was claimed already (by
    /// [`claim_past_held`](Self::claim_past_held): nobody else can claim it while the slot is
    /// lent). `false` if the slot no longer shows that hold.
    pub fn detach(&self, pos: u64, holder: u32) -> bool {
        let lent = SlotState::new(pos, holder, Phase::Lent).encode();
        let next = pos.wrapping_add(self.capacity);
        let passed = self.tail_position().wrapping_sub(next) as i64 > 0;
        let phase = if passed {
            Phase::WithheldSkip
        } else {
            Phase::Withheld
        };
        self.slots
            .state(pos)
            .compare_exchange(
                lent,
                SlotState::new(next, holder, phase).encode(),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// With the tail come round to the slot of `held` (lent to a holder whose hold lapsed, which
    /// the caller has taken over, as it has the `run - 1` lapsed holds in the slots right after
    /// it): claims the run's next positions `held + cap ..` (to pass them over once the messages
    /// are out, see [`detach`](Self::detach)) and as many positions after them, for the copies,
    /// with one cursor CAS. Returns the first copy's position, or `None` if the tail is
    /// elsewhere or the copies' slots are not all free. So hung holders cost the queue their
    /// slots, never a wedge. With a capacity of 1 there is no other slot: the message waits for
    /// its holder to let go.
    pub fn claim_past_held(&self, held: u64, run: u64, me: Claimer<'_>) -> Option<u64> {
        let past = held.wrapping_add(self.capacity);
        let copies = past.wrapping_add(run);
        let tail = self.tail.load(Ordering::Acquire);
        if run == 0
            || 2 * run > self.capacity
            || tail & !CLOSED != past
            || (0..run).any(|i| {
                let pos = copies.wrapping_add(i);
                self.slots.state(pos).load(Ordering::Acquire) != empty_state(pos)
            })
        {
            return None;
        }
        me.announcement.announce(past, 2 * run, Side::Send);
        let claimed = self
            .tail
            .compare_exchange(
                tail,
                copies.wrapping_add(run) | (tail & CLOSED),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok();
        if !claimed {
            me.announcement.clear();
            return None;
        }
        self.stamp_run(
            Claim {
                first: copies,
                count: run,
            },
            me.token,
            Phase::Writing,
        );
        Some(copies)
    }

    /// Gives the slot that holds (or held) `pos` back to the ring, if it is withheld for
    /// `holder`: `Withheld(q)` becomes `EMPTY(q)`, `WithheldSkip(q)` becomes `SKIP(q)`, whatever
    /// lap `q` the passers have brought it to. Called once the holder has let go and its
    /// message is out (see `lease`), or by recovery when the holder died.
    pub fn undetach(&self, pos: u64, holder: u32) {
        let state = self.slots.state(pos);
        let mut word = state.load(Ordering::Acquire);
        loop {
            let Some(seen) = SlotState::decode(word) else {
                return;
            };
            let back = match seen.phase {
                Phase::Withheld if seen.owner == holder => empty_state(seen.pos),
                Phase::WithheldSkip if seen.owner == holder => skip_state(seen.pos),
                _ => return,
            };
            match state.compare_exchange(word, back, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return,
                Err(now) => word = now,
            }
        }
    }

    /// Passes over a withheld slot at `pos`, whose cursor (tail or head) the caller has just
    /// moved past `pos`; `word` is the slot's state before (`Withheld(pos)` or
    /// `WithheldSkip(pos)`). The slot goes on to the other side: `WithheldSkip(pos)` or
    /// `Withheld(pos + cap)`. If the holder gave the slot back meanwhile, it shows `EMPTY(pos)`
    /// or `SKIP(pos)` and is the caller's: a producer's pass cancels it (a tombstone), a
    /// consumer's frees it for the next lap, and then this returns `true` (a slot given back to
    /// the producers, who may need waking).
    #[inline]
    pub fn pass_withheld(&self, pos: u64, word: u64) -> bool {
        pass_withheld(self.slots.state(pos), pos, word, self.capacity)
    }
    /// Claims up to `max` consecutive committed messages for reading.
    ///
    /// `accept(pos)` is asked about the first message before it is claimed (the caller checks
    /// that its buffer is large enough); if it refuses, nothing is claimed and the result is
    /// `Rejected(pos)`. Later messages of a batch are claimed without asking. Tombstones met at
    /// the head are claimed and freed on the way.
    #[inline]
    pub fn claim_recv(
        &self,
        me: Claimer<'_>,
        max: u64,
        accept: impl FnMut(u64) -> bool,
    ) -> Result<Claim, ClaimError> {
        let seen = self.look_recv()?;
        self.claim_recv_after(seen, me, max, accept)
    }

    /// A receive's first look: the head and the state word of its slot, unless those already
    /// settle the receive without a claim, and so without a claimer (a caller looks its
    /// claimer up only after this). They do when the slot is free for the producer of `head`
    /// (the common empty poll): then the result is `WouldBlock` or `Closed`, or `Busy` if a
    /// later slot shows a send in progress (see `later_claimed`). So `WouldBlock` from here
    /// always means that the slot at the head shows `EMPTY(head)`, which names no claimer.
    #[inline(always)]
    pub fn look_recv(&self) -> Result<(u64, u64), ClaimError> {
        let head = self.head.load(Ordering::Acquire);
        let word = self.slots.state(head).load(Ordering::Acquire);
        if word == empty_state(head) {
            // Nothing at the head. But if the next position is claimed, so is this one, by a
            // producer between its CAS and its stamp: wait for it.
            if self.later_claimed(head, Phase::Writing) {
                return Err(ClaimError::Busy);
            }
            return self.empty_or_closed(head, word);
        }
        Ok((head, word))
    }

    /// [`claim_recv`](Self::claim_recv) after its first look (`seen`, from
    /// [`look_recv`](Self::look_recv)).
    #[inline(always)]
    pub fn claim_recv_after(
        &self,
        seen: (u64, u64),
        me: Claimer<'_>,
        max: u64,
        accept: impl FnMut(u64) -> bool,
    ) -> Result<Claim, ClaimError> {
        let result = self.claim_recv_inner::<RUN>(seen, me, max, accept);
        if result.is_err() {
            me.announcement.clear();
        }
        result
    }

    #[inline(always)]
    fn claim_recv_inner<const STOP: u8>(
        &self,
        (mut head, mut word): (u64, u64),
        me: Claimer<'_>,
        max: u64,
        mut accept: impl FnMut(u64) -> bool,
    ) -> Result<Claim, ClaimError> {
        debug_assert!(max >= 1);
        let cap = self.capacity;
        // The state word of the slot at `head`, looked at again once `head` has moved.
        let look = |head: u64| self.slots.state(head).load(Ordering::Acquire);
        // The common case first, outside the loop (as in `claim_send_inner`): a committed
        // message at the head, and a CAS that wins.
        if word == full_state(head) {
            match self.claim_full::<STOP>(me, max, head, &mut accept) {
                Attempt::Won(claim) => return Ok(claim),
                Attempt::Lost(now) => head = now,
                Attempt::Failed(e) => return Err(e),
            }
            word = look(head);
        }
        loop {
            if word == full_state(head) {
                match self.claim_full::<STOP>(me, max, head, &mut accept) {
                    Attempt::Won(claim) => return Ok(claim),
                    Attempt::Lost(now) => head = now,
                    Attempt::Failed(e) => return Err(e),
                }
                word = look(head);
                continue;
            }
            if word == skip_state(head) {
                // A tombstone: claim it, free its slot for the next lap, and go on.
                me.announcement.announce(head, 1, Side::Recv);
                if STOP == STOP_AFTER_ANNOUNCEMENT {
                    return Err(ClaimError::WouldBlock);
                }
                match self.head.compare_exchange(
                    head,
                    head.wrapping_add(1),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        self.release(head);
                        self.recycled.set(self.recycled.get() + 1);
                        head = head.wrapping_add(1);
                    }
                    Err(now) => head = now,
                }
                word = look(head);
                continue;
            }
            // The common empty poll without decoding: the slot free for the producer of `head`.
            let (state, distance) = if word == empty_state(head) {
                (SlotState::new(head, 0, Phase::Empty), 0)
            } else {
                let state = Self::decode(word)?;
                (state, state.distance_from(head))
            };
            if distance == 0 && state.phase == Phase::WithheldSkip {
                // No message, and bytes still lent to a lapsed holder: claim the position and
                // pass it over (see "Withheld slots").
                me.announcement.announce(head, 1, Side::Recv);
                match self.head.compare_exchange(
                    head,
                    head.wrapping_add(1),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        if self.pass_withheld(head, word) {
                            self.recycled.set(self.recycled.get() + 1);
                        }
                        head = head.wrapping_add(1);
                    }
                    Err(now) => head = now,
                }
                word = look(head);
                continue;
            }
            if distance == 0 && state.phase == Phase::Writing {
                // A send in progress at the head: wait for it rather than report `Empty`.
                return Err(ClaimError::Busy);
            } else if distance == 0 && matches!(state.phase, Phase::Empty | Phase::Withheld) {
                // Nothing at the head. But if the next position is claimed, so is this one, by
                // a producer between its CAS and its stamp: wait for it.
                if self.later_claimed(head, Phase::Writing) {
                    return Err(ClaimError::Busy);
                }
                return self.empty_or_closed(head, word);
            } else if distance == 0 && state.phase == Phase::Reserved {
                // A reservation held at the head: the messages behind it wait for its commit.
                return self.empty_or_closed(head, word);
            } else if distance < 0 && distance >= -(cap as i64) {
                // The slot still serves the previous lap, so nobody can have claimed `head` to
                // write it: the queue is empty.
                return self.empty_or_closed(head, word);
            } else if distance >= 0 && distance <= cap as i64 {
                // Already claimed by a consumer (stamped), or the slot moved past our position:
                // our reading of the head is stale.
                head =
                    self.stale_or_corrupt(self.head, head, "slot state disagrees with the head")?;
            } else {
                head = self.stale_or_corrupt(
                    self.head,
                    head,
                    "slot state is more than a lap away from the head",
                )?;
            }
            word = look(head);
        }
    }

    /// Claims the run of committed messages from `head` (whose slot is `FULL(head)`), up to
    /// `max`, if `accept` takes the first.
    #[inline(always)]
    fn claim_full<const STOP: u8>(
        &self,
        me: Claimer<'_>,
        max: u64,
        head: u64,
        accept: &mut impl FnMut(u64) -> bool,
    ) -> Attempt {
        if !accept(head) {
            return Attempt::Failed(ClaimError::Rejected(head));
        }
        let count = self.full_run(head, max.min(self.capacity));
        self.claim_run::<STOP>(me, Side::Recv, head, count)
    }

    /// How many consecutive slots from `first` (which holds a message) hold committed messages,
    /// up to `max`.
    fn full_run(&self, first: u64, max: u64) -> u64 {
        let mut count = 1;
        while count < max {
            let pos = first.wrapping_add(count);
            if self.slots.state(pos).load(Ordering::Acquire) != full_state(pos) {
                break;
            }
            count += 1;
        }
        count
    }

    /// Nothing to claim at `head`, whose slot shows `word`: `Closed` if the queue is closed at
    /// or before it (read from the tail only once a close has begun, see "Closing"), else
    /// `WouldBlock`.
    #[inline(always)]
    fn empty_or_closed<T>(&self, head: u64, word: u64) -> Result<T, ClaimError> {
        if self.closing.load(Ordering::Acquire) != 0 {
            let tail = self.tail.load(Ordering::Acquire);
            if tail & CLOSED != 0 && tail & !CLOSED <= head {
                return Err(ClaimError::Closed);
            }
        }
        self.blocked_by.set(word);
        Err(ClaimError::WouldBlock)
    }

    /// Frees a slot after its message was read: the producer one lap later may claim it.
    #[inline]
    pub fn release(&self, pos: u64) {
        self.slots.state(pos).store(
            empty_state(pos.wrapping_add(self.capacity)),
            Ordering::Release,
        );
    }

    // Crash recovery. The caller has proved that the claimer of a slot is gone (a dead stamp
    // owner, or no live announcement of the position: see "Attribution"); that makes the caller
    // the slot's owner, and every repair below is one CAS from the exact state the claimer left,
    // so two survivors repairing at once cannot both succeed.

    /// Turns an unpublished send (`EMPTY(pos)` below the tail, or `WRITING(pos, dead)`) into a
    /// tombstone that receivers pass over. `false` if the slot changed.
    pub fn abandon_send(&self, pos: u64, word: u64) -> bool {
        self.slots
            .state(pos)
            .compare_exchange(word, skip_state(pos), Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Publishes a send whose claimer died after writing its message in full (`RESERVED(pos,
    /// dead)`, known complete by other means: see `redrive`). `false` if the slot changed.
    pub fn publish_abandoned(&self, pos: u64, word: u64) -> bool {
        self.slots
            .state(pos)
            .compare_exchange(word, full_state(pos), Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Frees the slot of a claim that will never be released (`FULL(pos)` or `SKIP(pos)` below
    /// the head, or `READING(pos, dead)`), dropping its message.
    pub fn drop_claimed(&self, pos: u64, word: u64) -> bool {
        let next_lap = empty_state(pos.wrapping_add(self.capacity));
        self.slots
            .state(pos)
            .compare_exchange(word, next_lap, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Takes over an unreleased message (`FULL(pos)` below the head, or `READING(pos, dead)`):
    /// it becomes `READING(pos, owner)`, ours to give back.
    pub fn take_over(&self, pos: u64, word: u64, owner: u32) -> bool {
        let mine = SlotState::new(pos, owner, Phase::Reading).encode();
        self.slots
            .state(pos)
            .compare_exchange(word, mine, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Undoes [`take_over`](Self::take_over) when the message found no room: the slot shows
    /// `word` again, for a later sweep.
    pub fn untake(&self, pos: u64, owner: u32, word: u64) {
        let mine = SlotState::new(pos, owner, Phase::Reading).encode();
        let _ =
            self.slots
                .state(pos)
                .compare_exchange(mine, word, Ordering::AcqRel, Ordering::Relaxed);
    }

    /// With a message taken over at `pos` (`READING(pos, me)`): if the tail has come round to
    /// this very slot (the queue is full because of it), claims position `pos + cap` for it, so
    /// the message can be published again in place, without a copy. Returns the new position,
    /// or `None` if the tail is elsewhere.
    ///
    /// The tail may be extended past a closed tail here: the message was sent before the close
    /// (and no new send can claim past a closed tail).
    pub fn reclaim_in_place(&self, pos: u64, me: Claimer<'_>) -> Option<u64> {
        let again = pos.wrapping_add(self.capacity);
        let tail = self.tail.load(Ordering::Acquire);
        if tail & !CLOSED != again {
            return None;
        }
        me.announcement.announce(again, 1, Side::Send);
        let claimed = self
            .tail
            .compare_exchange(
                tail,
                again.wrapping_add(1) | (tail & CLOSED),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok();
        if !claimed {
            me.announcement.clear();
            return None;
        }
        let claim = Claim {
            first: again,
            count: 1,
        };
        self.stamp_run(claim, me.token, Phase::Writing);
        Some(again)
    }

    /// Claims the slot at the tail to redeliver a message into (even if the queue is closed, for
    /// the reason given at `reclaim_in_place`). `None` if the queue is full (or a claim at the
    /// tail is in progress). The caller then copies the message, publishes, and frees the old
    /// slot.
    pub fn claim_for_redelivery(&self, me: Claimer<'_>) -> Option<u64> {
        let mut tail = self.tail.load(Ordering::Acquire);
        for _ in 0..64 {
            let t = tail & !CLOSED;
            if self.slots.state(t).load(Ordering::Acquire) != empty_state(t) {
                let now = self.tail.load(Ordering::Acquire);
                if now == tail {
                    break;
                }
                tail = now;
                continue;
            }
            me.announcement.announce(t, 1, Side::Send);
            match self.tail.compare_exchange(
                tail,
                t.wrapping_add(1) | (tail & CLOSED),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.stamp_run(Claim { first: t, count: 1 }, me.token, Phase::Writing);
                    return Some(t);
                }
                Err(now) => tail = now,
            }
        }
        me.announcement.clear();
        None
    }

    /// The state word of the slot at index `index`, for scans.
    pub fn word_at(&self, index: u64) -> u64 {
        self.slots.state(index).load(Ordering::Acquire)
    }

    /// The tail position (without the closed flag), and whether the ring is closed.
    pub fn tail_position(&self) -> u64 {
        self.tail.load(Ordering::Acquire) & !CLOSED
    }

    /// The head position.
    pub fn head_position(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// Closes the ring: no position at or beyond the current tail will ever hold a new message.
    /// Returns `false` if it was already closed.
    pub fn close(&self) -> bool {
        self.closing.store(1, Ordering::Release);
        self.tail.fetch_or(CLOSED, Ordering::AcqRel) & CLOSED == 0
    }

    /// Whether a receive would not block now: the slot at the head holds a message or a
    /// tombstone, or a send is in progress there, or the ring is closed. It may say yes for a
    /// message another consumer takes first; it never says no while a receive would complete,
    /// which is what a waiter on many queues needs (`Select`).
    pub fn recv_ready(&self) -> bool {
        let head = self.head.load(Ordering::Acquire);
        let word = self.slots.state(head).load(Ordering::Acquire);
        let Some(state) = SlotState::decode(word) else {
            return true; // corrupt: a receive reports it
        };
        let distance = state.distance_from(head);
        let waits = (distance == 0
            && matches!(
                state.phase,
                Phase::Empty | Phase::Reserved | Phase::Withheld
            ))
            || (distance < 0 && distance >= -(self.capacity as i64));
        !waits || self.is_closed()
    }

    /// Whether a send would not block now: the slot at the tail is free for it, or the ring is
    /// closed. As [`recv_ready`](Self::recv_ready), never a false no.
    pub fn send_ready(&self) -> bool {
        let tail = self.tail.load(Ordering::Acquire);
        if tail & CLOSED != 0 {
            return true;
        }
        let Some(state) = SlotState::decode(self.slots.state(tail).load(Ordering::Acquire)) else {
            return true;
        };
        let distance = state.distance_from(tail);
        !(distance < 0 && distance >= -(self.capacity as i64)) || state.phase == Phase::Reading
    }

    /// Whether the ring is closed.
    pub fn is_closed(&self) -> bool {
        self.tail.load(Ordering::Acquire) & CLOSED != 0
    }
}

/// [`Ring::pass_withheld`], given the slot's state word and the ring's capacity. Out of line
/// and without the ring: a call that took `&Ring` would make the claim loops keep the ring in
/// memory and load its fields again after every atomic (measured with `.ci/callgrind`).
#[inline(never)]
fn pass_withheld(state: &AtomicU64, pos: u64, word: u64, capacity: u64) -> bool {
    let Some(seen) = SlotState::decode(word) else {
        return false;
    };
    let next = match seen.phase {
        Phase::Withheld => SlotState::new(pos, seen.owner, Phase::WithheldSkip),
        _ => SlotState::new(pos.wrapping_add(capacity), seen.owner, Phase::Withheld),
    };
    if state
        .compare_exchange(word, next.encode(), Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
    {
        return false;
    }
    // Given back meanwhile (`undetach`): an ordinary claim of ours now. Each repair is a CAS
    // from the exact word `undetach` leaves, so a survivor finishing the same pass for a
    // dead passer cannot both succeed with us.
    match seen.phase {
        Phase::Withheld => {
            let _ = state.compare_exchange(
                empty_state(pos),
                skip_state(pos),
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
            false
        }
        _ => state
            .compare_exchange(
                skip_state(pos),
                empty_state(pos.wrapping_add(capacity)),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok(),
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn state_word_round_trips() {
        let s = SlotState::new(123_456_789, 0xABCDE, Phase::Reading);
        assert_eq!(SlotState::decode(s.encode()), Some(s));
        assert_eq!(SlotState::decode(9), None);
    }

    #[test]
    fn distance_is_signed_and_wraps_at_40_bits() {
        let s = SlotState::new(5, 0, Phase::Empty);
        assert_eq!(s.distance_from(5), 0);
        assert_eq!(s.distance_from(7), -2);
        assert_eq!(s.distance_from(3), 2);
        let wrapped = SlotState::new(POS_MASK + 2, 0, Phase::Empty); // truncates to 1
        assert_eq!(wrapped.distance_from(POS_MASK), 2);
        assert_eq!(wrapped.position_near(POS_MASK), POS_MASK + 2);
    }

    #[test]
    fn announcements_cover_their_run_on_their_side_only() {
        let a = Announcement::new();
        assert!(!a.covers(0, Side::Send));
        a.announce(10, 3, Side::Recv);
        assert!(a.covers(10, Side::Recv) && a.covers(12, Side::Recv));
        assert!(!a.covers(13, Side::Recv) && !a.covers(9, Side::Recv));
        assert!(!a.covers(11, Side::Send));
        a.clear();
        assert!(!a.covers(10, Side::Recv));
    }
}

#[cfg(all(test, not(loom)))]
#[path = "ring_tests.rs"]
mod heap_tests;
