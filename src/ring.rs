// SPDX-License-Identifier: MIT OR Apache-2.0
//! The claim protocol: a bounded MPMC ring of slots with one atomic state word per slot.
//!
//! This is Dmitry Vyukov's bounded MPMC queue (as in crossbeam-queue's `ArrayQueue`), changed in
//! one way for shared memory: **a claim is made on the slot's own state word first, and records
//! who made it**; the shared cursor is advanced afterwards, and anyone may help advance it. In the
//! plain algorithm a process that dies between winning the cursor and writing the slot leaves a
//! position that nobody can attribute; here every claimed position names its claimer, so a
//! survivor can ask whether that claimer is still alive and repair the slot.
//!
//! # Positions and slots
//! Messages are numbered by *positions* `0, 1, 2, …`; position `p` lives in slot `p % capacity`.
//! `tail` is the next position a producer will claim and `head` the next a consumer will claim.
//! Both only grow. Bit 63 of `tail` is the *closed* flag: once set, `tail` never changes again.
//!
//! # The state word
//! `state = pos << 24 | owner << 4 | phase`, where `pos` is a position truncated to 40 bits, `owner`
//! is the 20-bit participant token of the claimer and `phase` says what the slot holds for `pos`:
//!
//! | phase     | meaning                                                                   |
//! |-----------|---------------------------------------------------------------------------|
//! | `EMPTY`   | free: the producer of position `pos` may claim it                         |
//! | `WRITING` | claimed by producer `owner`, who is writing the message of position `pos` |
//! | `FULL`    | holds the committed message of position `pos`                             |
//! | `READING` | claimed by consumer `owner`, who is reading the message of `pos`          |
//! | `SKIP`    | position `pos` was claimed but holds no message (a cancelled send)        |
//!
//! A slot's life: `EMPTY(p) → WRITING(p) → FULL(p) | SKIP(p) → READING(p) → EMPTY(p + cap)`.
//! Slot `i` starts as `EMPTY(i)`.
//!
//! # Invariants
//! 1. Every position below `tail` has been claimed by a producer (its slot left `EMPTY(p)`), and
//!    every position below `head` has been claimed by a consumer (its slot left `FULL(p)` or
//!    `SKIP(p)`). Cursors are advanced only past positions whose slot shows such a claim, so a
//!    helper can never skip an unclaimed position.
//! 2. A producer publishes (stores `FULL`) only positions it has seen below an unclosed `tail`.
//!    A position claimed at or beyond a closed `tail` is handed back (`EMPTY(p)` again) and never
//!    holds a message: after `close`, no message can appear.
//! 3. The only writer of a slot in `WRITING` or `READING` is its owner (and, for crash recovery,
//!    whoever has proved the owner dead), so the owner's final store needs no CAS.
//!
//! # Orderings
//! The payload is handed over by the state word alone: a producer's `Release` store of `FULL`
//! pairs with the consumer's `Acquire` claim CAS, so the consumer reads a complete message; the
//! consumer's `Release` store of `EMPTY(p + cap)` pairs with the next producer's `Acquire` claim
//! CAS, so its reads finish before the slot is overwritten.
//!
//! The cursors carry no payload, but they do carry invariant 1: a reader that sees `head == h`
//! must also see every slot claim below `h`, or it would find the slot of `h` looking more than
//! a lap old and call it corrupt (Miri found exactly that with `Relaxed` cursors: on a weakly
//! ordered machine the new cursor can arrive before the slot's new state). So every cursor
//! update is a `Release` RMW made after its maker saw the claim (its own claim CAS, or a
//! helper's `Acquire` load of the slot), and every cursor load is `Acquire`. The cursor's
//! modification order holds only RMWs, so an `Acquire` load synchronizes with every earlier
//! update (a release sequence), and read-read coherence then forbids an older slot state. On
//! x86 these orderings cost nothing: the loads are plain loads and every RMW is locked anyway.
//!
//! # Closing
//! A receiver that finds nothing at `head` must tell "empty" from "closed", which the tail
//! says; but the tail's line belongs to the producers, and a receiver that read it on every
//! empty poll would pull that line away from the producer at every send. So `close` first sets
//! `closing` (a word on the consumers' own line, written once), then the tail's closed flag,
//! and receivers read the tail only once they see `closing`. A closer that dies between the
//! two stores leaves the queue open, with receivers merely reading the tail again; the order
//! never lets the tail be closed unseen. A receiver may see `closing` late and report one
//! more `WouldBlock`, as if it had looked just before the close; a sleeping receiver is woken
//! by `close` after both stores, and the wake's epoch bump (a `Release` that its `Acquire`
//! load of the wait word reads) makes `closing` visible to its retry.
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
    /// Free for the producer of `pos`.
    Empty = 0,
    /// Claimed by producer `owner`, who is writing the message of `pos`.
    Writing = 1,
    /// Holds the committed message of `pos`.
    Full = 2,
    /// Claimed by consumer `owner`, who is reading the message of `pos`.
    Reading = 3,
    /// `pos` was claimed but holds no message (cancelled or abandoned send).
    Skip = 4,
}

/// A decoded slot state word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotState {
    /// The position, truncated to 40 bits.
    pub pos: u64,
    /// The participant token of the claimer (meaningful in `Writing` and `Reading`).
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
            _ => return None,
        };
        Some(SlotState {
            pos: word >> POS_SHIFT,
            owner: ((word >> PHASE_BITS) as u32) & OWNER_MAX,
            phase,
        })
    }

    /// How many positions this state is ahead of `cursor` (negative: behind), modulo 2^40.
    fn distance_from(self, cursor: u64) -> i64 {
        let diff = self.pos.wrapping_sub(cursor) & POS_MASK;
        // Sign-extend the 40-bit difference.
        ((diff << POS_SHIFT) as i64) >> POS_SHIFT
    }
}

/// The state word a slot has when it is free for the producer of `pos`.
pub fn empty_state(pos: u64) -> u64 {
    SlotState::new(pos, 0, Phase::Empty).encode()
}

/// Where the slot state words live: in the mapped file in production, on the heap under loom.
pub trait SlotStates {
    /// The state word of the slot that holds position `pos`.
    fn state(&self, pos: u64) -> &AtomicU64;
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
    /// Send: the queue is closed. Receive: the queue is closed and every message was claimed.
    Closed,
    /// Receive: the caller's `accept` refused the message at this position; nothing was claimed.
    Rejected(u64),
    /// A state word holds a value that no honest participant writes.
    Corrupt(&'static str),
}

/// The claim protocol over a ring's two cursors and its slot state words.
pub struct Ring<'a, S> {
    pub(crate) tail: &'a AtomicU64,
    pub(crate) head: &'a AtomicU64,
    /// Set by `close` before it closes the tail (see "Closing" in the module doc).
    pub(crate) closing: &'a AtomicU64,
    pub(crate) slots: S,
    pub(crate) capacity: u64,
    /// Counts the cancelled positions this ring value freed in `claim_recv`: each is a slot
    /// given back to the producers, who must be woken if they sleep on a full queue.
    pub(crate) recycled: Cell<u64>,
}

impl<'a, S: SlotStates> Ring<'a, S> {
    /// The protocol over these cursors, closing hint and slots; `capacity` is a power of two.
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
        }
    }

    fn load(&self, pos: u64) -> Result<SlotState, ClaimError> {
        SlotState::decode(self.slots.state(pos).load(Ordering::Acquire))
            .ok_or(ClaimError::Corrupt("slot state has an unknown phase"))
    }

    /// Claims up to `max` consecutive positions for writing, as participant `owner`.
    ///
    /// On success the caller owns the claimed slots: it writes each message and then calls
    /// [`publish`](Self::publish) (or [`cancel`](Self::cancel)) for every position.
    pub fn claim_send(&self, owner: u32, max: u64) -> Result<Claim, ClaimError> {
        debug_assert!(max >= 1);
        let mut tail = self.tail.load(Ordering::Acquire);
        loop {
            if tail & CLOSED != 0 {
                return Err(ClaimError::Closed);
            }
            let state = self.load(tail)?;
            let distance = state.distance_from(tail);
            if distance == 0 && state.phase == Phase::Empty {
                // The slot is free for our position: claim it in its own state word.
                let claimed = SlotState::new(tail, owner, Phase::Writing).encode();
                match self.slots.state(tail).compare_exchange(
                    state.encode(),
                    claimed,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        let count = self.claim_more(tail, owner, max, Phase::Empty, Phase::Writing);
                        return self.advance_tail(Claim { first: tail, count });
                    }
                    Err(_) => tail = self.tail.load(Ordering::Acquire),
                }
            } else if distance > self.capacity as i64 {
                // No honest slot is more than a lap ahead of the current tail (position
                // `tail + cap` can only be claimed once the tail has reached it).
                tail = self.stale_or_corrupt(
                    self.tail,
                    tail,
                    "slot state is more than a lap ahead of the tail",
                )?;
            } else if distance >= 0 {
                // Position `tail` is already claimed (its slot shows it or has moved past it):
                // help the tail past it, as its claimer may be descheduled.
                tail = self.help_advance(self.tail, tail);
            } else if distance >= -(self.capacity as i64) {
                // The slot still serves the previous lap: the queue is full, unless the tail moved.
                let now = self.tail.load(Ordering::Acquire);
                if now == tail {
                    return Err(ClaimError::WouldBlock);
                }
                tail = now;
            } else {
                return Err(ClaimError::Corrupt(
                    "slot state is more than a lap behind the tail",
                ));
            }
        }
    }

    /// After claiming `first`, claims the following positions while their slots are in `from`,
    /// up to `max` in all. Returns how many positions are claimed.
    fn claim_more(&self, first: u64, owner: u32, max: u64, from: Phase, to: Phase) -> u64 {
        let mut count = 1;
        while count < max.min(self.capacity) {
            let pos = first.wrapping_add(count);
            let expected = SlotState::new(pos, 0, from);
            let word = self.slots.state(pos).load(Ordering::Relaxed);
            match SlotState::decode(word) {
                Some(s) if s.pos == expected.pos && s.phase == from => {}
                _ => break,
            }
            let claimed = SlotState::new(pos, owner, to).encode();
            if self
                .slots
                .state(pos)
                .compare_exchange(word, claimed, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                break;
            }
            count += 1;
        }
        count
    }

    /// Moves `tail` past a freshly claimed run. If the queue was closed first, hands back the
    /// positions at or beyond the closed tail (invariant 2) and keeps the rest.
    fn advance_tail(&self, claim: Claim) -> Result<Claim, ClaimError> {
        let end = claim.first.wrapping_add(claim.count);
        let mut cur = self.tail.load(Ordering::Acquire);
        loop {
            let pos = cur & !CLOSED;
            if pos >= end {
                return Ok(claim);
            }
            if cur & CLOSED != 0 {
                let kept_end = pos.max(claim.first);
                let count = kept_end.wrapping_sub(claim.first);
                for p in claim.positions().skip(count as usize) {
                    // We own these slots (invariant 3), and nobody may claim them now.
                    self.slots.state(p).store(empty_state(p), Ordering::Release);
                }
                return if count == 0 {
                    Err(ClaimError::Closed)
                } else {
                    Ok(Claim {
                        first: claim.first,
                        count,
                    })
                };
            }
            match self
                .tail
                .compare_exchange(cur, end, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(claim),
                Err(now) => cur = now,
            }
        }
    }

    /// Tries once to move `cursor` from `from` to `from + 1`; returns the cursor's value after.
    fn help_advance(&self, cursor: &AtomicU64, from: u64) -> u64 {
        let next = from.wrapping_add(1);
        match cursor.compare_exchange(from, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => next,
            Err(now) => now,
        }
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
    pub fn publish(&self, pos: u64, owner: u32) {
        let full = SlotState::new(pos, owner, Phase::Full).encode();
        self.slots.state(pos).store(full, Ordering::Release);
    }

    /// Gives up a claimed position without a message: consumers skip it.
    pub fn cancel(&self, pos: u64, owner: u32) {
        let skip = SlotState::new(pos, owner, Phase::Skip).encode();
        self.slots.state(pos).store(skip, Ordering::Release);
    }

    /// Claims up to `max` consecutive committed messages for reading, as participant `owner`.
    ///
    /// `accept(pos)` is asked about the first message before it is claimed (the caller checks
    /// that its buffer is large enough); if it refuses, nothing is claimed and the result is
    /// `Rejected(pos)`. Later messages of a batch are claimed without asking.
    pub fn claim_recv(
        &self,
        owner: u32,
        max: u64,
        mut accept: impl FnMut(u64) -> bool,
    ) -> Result<Claim, ClaimError> {
        debug_assert!(max >= 1);
        let mut head = self.head.load(Ordering::Acquire);
        loop {
            let state = self.load(head)?;
            let distance = state.distance_from(head);
            if distance == 0 && state.phase == Phase::Full {
                if !accept(head) {
                    return Err(ClaimError::Rejected(head));
                }
                let claimed = SlotState::new(head, owner, Phase::Reading).encode();
                match self.slots.state(head).compare_exchange(
                    state.encode(),
                    claimed,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        let count = self.claim_more(head, owner, max, Phase::Full, Phase::Reading);
                        self.advance_head(head.wrapping_add(count));
                        return Ok(Claim { first: head, count });
                    }
                    Err(_) => head = self.head.load(Ordering::Acquire),
                }
            } else if distance == 0 && state.phase == Phase::Skip {
                // A cancelled send: free the slot for the next lap, as a consumer would.
                let next_lap = empty_state(head.wrapping_add(self.capacity));
                if self
                    .slots
                    .state(head)
                    .compare_exchange(
                        state.encode(),
                        next_lap,
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    self.recycled.set(self.recycled.get() + 1);
                    head = self.help_advance(self.head, head);
                } else {
                    head = self.head.load(Ordering::Acquire);
                }
            } else if distance > self.capacity as i64 {
                // As for the tail: no honest slot is more than a lap ahead of the current head.
                head = self.stale_or_corrupt(
                    self.head,
                    head,
                    "slot state is more than a lap ahead of the head",
                )?;
            } else if distance > 0 || (distance == 0 && state.phase == Phase::Reading) {
                // Position `head` is already claimed by a consumer: help the head past it.
                head = self.help_advance(self.head, head);
            } else if distance >= -(self.capacity as i64) {
                // Position `head` is not committed yet (its slot is `EMPTY(head)`, `WRITING(head)`,
                // or still busy with the previous lap). Nothing will ever come once the queue
                // is closed at or before `head` (invariant 2). The tail is read only once a close
                // has begun (see "Closing").
                if self.closing.load(Ordering::Acquire) != 0 {
                    let tail = self.tail.load(Ordering::Acquire);
                    if tail & CLOSED != 0 && tail & !CLOSED <= head {
                        return Err(ClaimError::Closed);
                    }
                }
                return Err(ClaimError::WouldBlock);
            } else {
                return Err(ClaimError::Corrupt(
                    "slot state is more than a lap behind the head",
                ));
            }
        }
    }

    fn advance_head(&self, end: u64) {
        let mut cur = self.head.load(Ordering::Acquire);
        while cur < end {
            match self
                .head
                .compare_exchange(cur, end, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
    }

    /// Frees a slot after its message was read: the producer one lap later may claim it.
    pub fn release(&self, pos: u64) {
        self.slots.state(pos).store(
            empty_state(pos.wrapping_add(self.capacity)),
            Ordering::Release,
        );
    }

    // Crash recovery. The caller has proved that participant `dead` is gone (see `recovery`);
    // that makes the caller the owner of `dead`'s claims (invariant 3), and every repair below is
    // one CAS from the exact state `dead` left, so two survivors repairing at once cannot both
    // succeed.

    /// The full position of a slot state, from its truncated `pos` and the current tail.
    fn full_position(&self, state: SlotState, tail: u64) -> u64 {
        tail.wrapping_add(state.distance_from(tail) as u64)
    }

    /// Resolves a claim to write, `WRITING(pos, dead)`, left by a dead producer: a position below
    /// the tail becomes `SKIP` (receivers pass over it); one at or beyond a closed tail is handed
    /// back to `EMPTY` (invariant 2). Returns `Some(true)` if a send was abandoned, `Some(false)`
    /// if a doomed claim was handed back, `None` if the slot had changed.
    pub fn abandon_send(&self, state: SlotState) -> Option<bool> {
        debug_assert_eq!(state.phase, Phase::Writing);
        let tail = self.tail.load(Ordering::Acquire);
        let pos = self.full_position(state, tail & !CLOSED);
        let doomed = tail & CLOSED != 0 && pos >= tail & !CLOSED;
        let to = if doomed {
            empty_state(pos)
        } else {
            SlotState::new(pos, state.owner, Phase::Skip).encode()
        };
        self.slots
            .state(pos)
            .compare_exchange(state.encode(), to, Ordering::AcqRel, Ordering::Relaxed)
            .ok()?;
        if !doomed {
            // The producer may have died before moving the tail past its claim.
            self.help_advance(self.tail, pos);
        }
        Some(!doomed)
    }

    /// Frees the slot of a message claimed by a dead consumer, dropping the message.
    pub fn drop_claimed(&self, state: SlotState) -> bool {
        debug_assert_eq!(state.phase, Phase::Reading);
        let head = self.head.load(Ordering::Acquire);
        let pos = self.full_position(state, head);
        let next_lap = empty_state(pos.wrapping_add(self.capacity));
        self.slots
            .state(pos)
            .compare_exchange(
                state.encode(),
                next_lap,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Claims again, for the tail's position, the slot of a message held by a dead consumer,
    /// when the tail has come round to that very slot (the queue is full because of it): the
    /// message can then be given back without moving it. The caller owns the slot as a send
    /// would (payload, length and delivery count untouched) and publishes it. Returns the new
    /// position, or `None` if the tail is elsewhere or the slot changed.
    ///
    /// The tail may be extended past a closed tail here: the message was sent before the close,
    /// and we own the slot at the tail, so no doomed send can be there (invariant 2 holds for
    /// every *new* send).
    pub fn reclaim_in_place(&self, state: SlotState, owner: u32) -> Option<u64> {
        debug_assert_eq!(state.phase, Phase::Reading);
        let tail = self.tail.load(Ordering::Acquire);
        let t = tail & !CLOSED;
        let pos = self.full_position(state, t);
        if pos.wrapping_add(self.capacity) != t {
            return None;
        }
        let claimed = SlotState::new(t, owner, Phase::Writing).encode();
        self.slots
            .state(pos)
            .compare_exchange(state.encode(), claimed, Ordering::AcqRel, Ordering::Relaxed)
            .ok()?;
        self.extend_tail_past(t);
        Some(t)
    }

    /// Claims the slot at the tail to redeliver a dead consumer's message into it (even if the
    /// queue is closed, for the reason given at `reclaim_in_place`). `None` if the queue is
    /// full. The caller then copies the message, publishes, and frees the old slot.
    pub fn claim_for_redelivery(&self, owner: u32) -> Option<u64> {
        let mut tail = self.tail.load(Ordering::Acquire);
        loop {
            let t = tail & !CLOSED;
            let state = self.load(t).ok()?;
            let distance = state.distance_from(t);
            if distance == 0 && state.phase == Phase::Empty {
                let claimed = SlotState::new(t, owner, Phase::Writing).encode();
                if self
                    .slots
                    .state(t)
                    .compare_exchange(
                        state.encode(),
                        claimed,
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    self.extend_tail_past(t);
                    return Some(t);
                }
                tail = self.tail.load(Ordering::Acquire);
            } else if (0..=self.capacity as i64).contains(&distance) && tail & CLOSED == 0 {
                tail = self.help_advance(self.tail, tail);
            } else {
                // Full, or a doomed send sits at a closed tail (it will hand its slot back).
                return None;
            }
        }
    }

    /// Takes over a dead consumer's claim: `READING(pos, dead)` becomes `READING(pos, owner)`.
    pub fn take_over(&self, state: SlotState, owner: u32) -> Option<u64> {
        let head = self.head.load(Ordering::Acquire);
        let pos = self.full_position(state, head);
        let mine = SlotState::new(pos, owner, Phase::Reading).encode();
        self.slots
            .state(pos)
            .compare_exchange(state.encode(), mine, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        Some(pos)
    }

    /// Moves the tail past position `t`, keeping the closed flag as it is.
    fn extend_tail_past(&self, t: u64) {
        let mut cur = self.tail.load(Ordering::Acquire);
        while (cur & !CLOSED) <= t {
            let next = t.wrapping_add(1) | (cur & CLOSED);
            match self
                .tail
                .compare_exchange(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
    }

    /// The decoded state of the slot at index `index`, for scans.
    pub fn state_at(&self, index: u64) -> Option<SlotState> {
        SlotState::decode(self.slots.state(index).load(Ordering::Acquire))
    }

    /// Closes the ring: no position at or beyond the current tail will ever hold a message.
    /// Returns `false` if it was already closed.
    pub fn close(&self) -> bool {
        self.closing.store(1, Ordering::Release);
        self.tail.fetch_or(CLOSED, Ordering::AcqRel) & CLOSED == 0
    }

    /// Whether a receive would not block now: the slot at the head holds a message (or a
    /// tombstone to pass, or a claim to help past), or the ring is closed. It may say yes for
    /// a message another consumer takes first; it never says no while a receive would
    /// complete, which is what a waiter on many queues needs (`Select`).
    pub fn recv_ready(&self) -> bool {
        let head = self.head.load(Ordering::Acquire);
        let Ok(state) = self.load(head) else {
            return true; // corrupt: a receive reports it
        };
        let distance = state.distance_from(head);
        let waits = (distance == 0 && matches!(state.phase, Phase::Empty | Phase::Writing))
            || (distance < 0 && distance >= -(self.capacity as i64));
        !waits || self.is_closed()
    }

    /// Whether a send would not block now: the slot at the tail is free for it (or the tail
    /// can be helped on), or the ring is closed. As [`recv_ready`](Self::recv_ready), never a
    /// false no.
    pub fn send_ready(&self) -> bool {
        let tail = self.tail.load(Ordering::Acquire);
        if tail & CLOSED != 0 {
            return true;
        }
        let Ok(state) = self.load(tail) else {
            return true;
        };
        let distance = state.distance_from(tail);
        !(distance < 0 && distance >= -(self.capacity as i64))
    }

    /// Whether the ring is closed.
    pub fn is_closed(&self) -> bool {
        self.tail.load(Ordering::Acquire) & CLOSED != 0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn state_word_round_trips() {
        let s = SlotState::new(123_456_789, 0xABCDE, Phase::Reading);
        assert_eq!(SlotState::decode(s.encode()), Some(s));
        assert_eq!(SlotState::decode(7), None);
    }

    #[test]
    fn distance_is_signed_and_wraps_at_40_bits() {
        let s = SlotState::new(5, 0, Phase::Empty);
        assert_eq!(s.distance_from(5), 0);
        assert_eq!(s.distance_from(7), -2);
        assert_eq!(s.distance_from(3), 2);
        let wrapped = SlotState::new(POS_MASK + 2, 0, Phase::Empty); // truncates to 1
        assert_eq!(wrapped.distance_from(POS_MASK), 2);
    }
}

#[cfg(all(test, not(loom)))]
#[path = "ring_tests.rs"]
mod heap_tests;
