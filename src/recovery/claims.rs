// SPDX-License-Identifier: MIT OR Apache-2.0
//! Resolving the claims that dead participants left in the ring: the half of crash recovery that
//! needs nothing but the ring, its slots' metadata, the wait words, and two questions about who
//! is alive.
//!
//! It is written over [`ClaimStore`] rather than over the mapped file, so that one piece of code
//! runs in production (over the mapping, `recovery::Survivor`'s implementation) and under the
//! checkers that cannot map a file: the loom models in `tests/loom.rs` and the heap-ring tests
//! that Miri runs (`ring_tests.rs`) implement the store on the heap and call [`resolve_dead`].
//!
//! # What a dead participant can leave, and how it is found
//! One scan of the slots finds every claim that will never be finished (see `ring`,
//! "Attribution"):
//! - `WRITING(p, owner)` / `RESERVED(p, owner)` / `READING(p, owner)` / `LENT(p, owner)`: a
//!   stamped claim whose owner is dead. A send becomes a tombstone; a message is given back (or
//!   dropped by policy).
//! - `EMPTY(p)` with `p` below the tail: a send claimed and not yet stamped (its claimer died
//!   between its CAS and its stamp). Repaired (a tombstone) only if no *live* participant
//!   announces `p`: a live claimer always does.
//! - `FULL(p)` or `SKIP(p)` with `p` below the head: likewise, a receive claimed and not yet
//!   stamped; given back, or freed, if no live participant announces it.
//! - `WITHHELD(p)` below the tail or `WITHHELD_SKIP(p)` below the head: likewise, a pass over a
//!   withheld slot not yet made; made, if no live participant announces `p`. A withheld slot
//!   whose holder is dead is given back.
//!
//! Every repair is one CAS from the exact word the scan read, so two survivors cannot both
//! succeed, and a live claimer that finishes first makes the CAS fail.

use crate::lease::{self, Lease, ACKED, DONE, GONE, TAKEN};
use crate::ring::{Claimer, Phase, Ring, Side, SlotState, SlotStates};
use crate::sync::{AtomicU32, AtomicU64};
use crate::wait;

/// What resolving dead participants' claims needs from a queue: its ring, the per-slot message
/// metadata (delivery count, length and payload), its crash policy, its two wait words, who is
/// alive, and a place to count what was done.
pub trait ClaimStore {
    /// The claim protocol over this queue's cursors and slots.
    fn ring(&self) -> Ring<'_, impl SlotStates + '_>;
    /// The policy for a dead consumer's message: `true` drops it (`OnConsumerDeath::Drop`),
    /// `false` gives it back to the queue.
    fn drops_on_consumer_death(&self) -> bool;
    /// Deliveries after which a message is dropped rather than given back (0: no limit).
    fn max_deliveries(&self) -> u32;
    /// How many deliveries of the message at `pos` ended with its consumer's death.
    fn failed_deliveries(&self, pos: u64) -> u32;
    /// Adds one to that count, in a slot the caller owns, before it is published again.
    fn count_failed_delivery(&self, pos: u64);
    /// Copies a message (payload, length, id, failed deliveries) between two slots the caller
    /// owns.
    fn copy_message(&self, from: u64, to: u64);
    /// The wait word of receivers ("a message arrived").
    fn recv_wait(&self) -> &AtomicU32;
    /// The wait word of senders ("a slot was freed").
    fn send_wait(&self) -> &AtomicU32;
    /// Counts one resolved claim.
    fn record(&self, what: Resolution);
    /// Whether the participant whose token a stamp records is gone (for good: a dead
    /// participant never comes back).
    fn is_dead(&self, token: u32) -> bool;
    /// Whether some live participant announces position `pos` on `side` (see `ring`,
    /// "Attribution"). Asked only after the caller loaded the cursor that passed `pos`.
    fn live_announces(&self, pos: u64, side: Side) -> bool;
    /// Whether in-place holds have leases (the queue has a visibility timeout; see `lease`).
    fn leases(&self) -> bool;
    /// The lease word of the slot that holds `pos`.
    fn lease(&self, pos: u64) -> &AtomicU64;
    /// Copies the message at `pos` (a slot the caller owns, which it leaves as it is) into the
    /// queue's dead-letter queue as a new message delivered `deliveries` times, recording where
    /// it came from, and publishes it there. A `Failed` attempt is counted
    /// (`dead_letter_failures`) by the store. Stores without a dead-letter queue (the heap
    /// ring and the loom models) keep the default, `NoQueue`.
    fn send_to_dead_letter_queue(&self, pos: u64, deliveries: u32) -> DeadLetterOutcome {
        let _ = (pos, deliveries);
        DeadLetterOutcome::NoQueue
    }
    /// Whether `redrive` committed the message reserved at `pos` (the destination's ledger
    /// names that position, see `redrive`): then a dead reservation there is published, not
    /// tombstoned. The default (the heap ring, the loom models): never.
    fn committed_by_redrive(&self, pos: u64) -> bool {
        let _ = pos;
        false
    }
}

/// What became of a message offered to the dead-letter queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadLetterOutcome {
    /// It was published in the dead-letter queue.
    Sent,
    /// The queue has no dead-letter queue: it is dropped, as before dead-letter queues existed.
    NoQueue,
    /// The dead-letter queue could not take it (missing, not a queue, full, closed, or its
    /// slots too small for the message): it must stay in this queue.
    Failed,
}

/// How one claim of a dead participant was resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// A claim to write became a tombstone that receivers pass over.
    AbandonedSend,
    /// A message was dropped by the `Drop` policy.
    AbandonedReceive,
    /// A message was dropped because it reached the delivery limit.
    DeadLettered,
    /// A message was published again in its own slot (the tail had come round to it).
    RedeliveredInPlace,
    /// A message was copied into the slot at the tail, and its old slot freed.
    RedeliveredByCopy,
    /// A message whose hold lapsed (visibility timeout) was copied into the slot at the tail,
    /// its old slot left to the holder until it lets go.
    Expired,
}

/// What [`resolve_dead`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// No unfinished claim is left that this call could not settle: none waits for room, and
    /// none is announced by a live participant (which may be a loser of the race for it).
    pub all_resolved: bool,
    /// Some claim was resolved by this call.
    pub changed: bool,
}

/// Resolves every claim whose claimer is dead, as survivor `me`. A message may have to wait for
/// room (the queue full of other messages); then `all_resolved` is false, and a later call
/// resolves it.
pub fn resolve_dead<Q: ClaimStore + ?Sized>(queue: &Q, me: Claimer<'_>) -> Outcome {
    let ring = queue.ring();
    let mut outcome = Outcome {
        all_resolved: true,
        changed: false,
    };
    for index in 0..ring.capacity {
        // The cursor first, then the slot (see `ring`, "Attribution").
        let tail = ring.tail_position();
        let head = ring.head_position();
        let word = ring.word_at(index);
        let Some(state) = SlotState::decode(word) else {
            continue;
        };
        let done = match state.phase {
            // A send claimed and never stamped.
            Phase::Empty => match unannounced_below(queue, state, tail, Side::Send) {
                Ok(pos) => abandon_send(queue, &ring, pos, word),
                Err(done) => done,
            },
            Phase::Writing | Phase::Reserved if queue.is_dead(state.owner) => {
                abandon_send(queue, &ring, state.position_near(tail), word)
            }
            // A receive claimed and never stamped; of a tombstone (`SKIP`), never freed.
            Phase::Full | Phase::Skip => match unannounced_below(queue, state, head, Side::Recv) {
                Ok(pos) if state.phase == Phase::Skip => free_tombstone(queue, &ring, pos, word),
                Ok(pos) => resolve_message(queue, &ring, me, pos, word),
                Err(done) => done,
            },
            Phase::Lent if queue.leases() && queue.is_dead(state.owner) => {
                let pos = state.position_near(head);
                resolve_lent(queue, &ring, me, pos, word, true, 0)
            }
            Phase::Reading | Phase::Lent if queue.is_dead(state.owner) => {
                resolve_message(queue, &ring, me, state.position_near(head), word)
            }
            Phase::Writing | Phase::Reading | Phase::Reserved | Phase::Lent => continue,
            Phase::Withheld | Phase::WithheldSkip if queue.is_dead(state.owner) => {
                // Its holder died: nobody will read those bytes again.
                ring.undetach(index, state.owner);
                Some(ring.word_at(index) != word)
            }
            // A producer's pass over a withheld slot, never finished.
            Phase::Withheld => match unannounced_below(queue, state, tail, Side::Send) {
                Ok(pos) => {
                    ring.pass_withheld(pos, word);
                    Some(ring.word_at(index) != word)
                }
                Err(done) => done,
            },
            // A consumer's pass over a withheld slot, never finished.
            Phase::WithheldSkip => match unannounced_below(queue, state, head, Side::Recv) {
                Ok(pos) => {
                    if ring.pass_withheld(pos, word) {
                        wait::wake_if_sleeping(queue.send_wait());
                    }
                    Some(ring.word_at(index) != word)
                }
                Err(done) => done,
            },
        };
        match done {
            Some(changed) => outcome.changed |= changed,
            None => outcome.all_resolved = false,
        }
    }
    outcome
}

/// The position of an abandoned claim: a slot that still shows its unclaimed state on `side`
/// (`state`: `EMPTY` or `WITHHELD` for the tail, `FULL`, `SKIP` or `WITHHELD_SKIP` for the
/// head) although `cursor`, that side's cursor loaded before the slot, has passed its position,
/// and whose position no live participant announces. Its claimer made the cursor CAS and died
/// before its stamp or its pass, since a live claimer announces its position until then (see
/// `ring`, "Attribution"); the caller repairs the slot with one CAS from the word it read.
/// Otherwise there is nothing to repair, and the slot's outcome for [`resolve_dead`] is
/// returned: `Err(Some(false))` if the cursor has not passed it (nobody claimed it),
/// `Err(None)` if a live participant announces it (its claimer, which finishes it, or a loser
/// of the race for it, which withdraws: a later call looks again).
fn unannounced_below<Q: ClaimStore + ?Sized>(
    queue: &Q,
    state: SlotState,
    cursor: u64,
    side: Side,
) -> Result<u64, Option<bool>> {
    if state.distance_from(cursor) >= 0 {
        return Err(Some(false));
    }
    let pos = state.position_near(cursor);
    if queue.live_announces(pos, side) {
        return Err(None);
    }
    Ok(pos)
}

/// Hands out again every message held in place past its deadline (`now_ms`, milliseconds of
/// the host's monotonic clock) by a live holder, as survivor `me` (see `lease`). A message may
/// have to wait for room; then `all_resolved` is false and a later call tries again.
pub fn expire_lapsed<Q: ClaimStore + ?Sized>(queue: &Q, me: Claimer<'_>, now_ms: u64) -> Outcome {
    let ring = queue.ring();
    let mut outcome = Outcome {
        all_resolved: true,
        changed: false,
    };
    if !queue.leases() {
        return outcome;
    }
    for index in 0..ring.capacity {
        let head = ring.head_position();
        let word = ring.word_at(index);
        let Some(state) = SlotState::decode(word) else {
            continue;
        };
        if state.phase != Phase::Lent {
            continue;
        }
        let pos = state.position_near(head);
        match resolve_lent(queue, &ring, me, pos, word, false, now_ms) {
            Some(changed) => outcome.changed |= changed,
            None => outcome.all_resolved = false,
        }
    }
    outcome
}

/// A message held in place (`LENT(pos, holder)`, the slot showing `word`) in a queue whose holds
/// have leases: hands it out again if its hold is due, that is if the holder is gone
/// (`holder_gone`: dead, or its handle closing), let go after losing, or its deadline is before
/// after `now_ms`. The lease decides against the holder's acknowledgement (see `lease`).
/// Returns as [`resolve_message`] does; `Some(false)` when nothing was due.
fn resolve_lent<Q: ClaimStore + ?Sized, S: SlotStates>(
    queue: &Q,
    ring: &Ring<'_, S>,
    me: Claimer<'_>,
    pos: u64,
    word: u64,
    holder_gone: bool,
    now_ms: u64,
) -> Option<bool> {
    let lease = Lease::new(queue.lease(pos));
    let seen = lease.load();
    if seen & ACKED != 0 {
        // Acknowledged in time: the holder frees the slot, unless it died before it could.
        if !holder_gone || !ring.drop_claimed(pos, word) {
            return Some(false);
        }
        wait::wake_if_sleeping(queue.send_wait());
        return Some(true);
    }
    if seen & DONE != 0 {
        return Some(false); // handed out already; the slot is detached or about to be
    }
    if seen & TAKEN != 0 {
        if !queue.is_dead(lease::taker_of(seen)) {
            // A live taker is handing it out.
            return if holder_gone { None } else { Some(false) };
        }
    } else if !(holder_gone || seen & GONE != 0 || lease::deadline_of(seen) < now_ms) {
        return Some(false); // in force
    }
    let Some(taken) = lease.take(seen, me.token) else {
        return Some(false); // acknowledged, extended or taken meanwhile
    };
    // The lease we took is this hold's only if the slot still shows it (a lease value read
    // for an earlier hold of this slot can only match by a clock coincidence; then give it
    // back at once).
    if ring.word_at(pos) != word {
        lease.untake(taken);
        return Some(false);
    }
    if holder_gone || taken & GONE != 0 {
        // Nobody will read the bytes again: as for a dead consumer (in place, or by copy).
        let done = resolve_message(queue, ring, me, pos, word);
        if done.is_none() {
            lease.untake(taken);
        } else {
            lease.done();
        }
        return done;
    }
    // The holder is alive and may still read the bytes: copy the message out, then detach the
    // slot, which stays the holder's until it lets go. An expiry counts as a delivery: at the
    // limit the copy goes to the dead-letter queue (or nowhere, without one) instead.
    let deliveries = queue.failed_deliveries(pos).saturating_add(1);
    let limit = queue.max_deliveries();
    if limit != 0
        && deliveries >= limit
        && send_to_dead_letter(queue, pos, deliveries) != DeadLetterOutcome::Failed
    {
        detach_lapsed(ring, &lease, pos, word);
        queue.record(Resolution::DeadLettered);
        return Some(true);
    }
    if let Some(to) = ring.claim_for_redelivery(me) {
        queue.copy_message(pos, to);
        queue.count_failed_delivery(to);
        ring.publish(to);
        detach_lapsed(ring, &lease, pos, word);
        queue.record(Resolution::Expired);
        wait::wake_if_sleeping(queue.recv_wait());
        return Some(true);
    }
    // No room at the tail. If the tail has come round to this very slot, the held slot and
    // perhaps the lapsed holds right after it are all that stops the producers: move them all
    // past themselves (see `move_lapsed_run`).
    if ring.tail_position() == pos.wrapping_add(ring.capacity) {
        if let Some(moved) = move_lapsed_run(queue, ring, me, (pos, word, taken), now_ms) {
            return Some(moved);
        }
    }
    // Full of other messages: give the hold back, for a later sweep.
    if lease.untake(taken) {
        // The holder let go meanwhile: the bytes are free after all; the next sweep sees it.
        return Some(false);
    }
    None
}

/// With the tail come round to the slot of the lapsed hold `first` (position, `LENT` word, and
/// the lease value the caller took it with): takes over the lapsed holds in the slots right
/// after it too (holds whose lease is due: lapsed, let go, or of a dead holder), as long as
/// there are as many free slots after them, and moves them all at once: one cursor CAS claims
/// the run's next positions (passed over) and as many after them for the copies
/// (`Ring::claim_past_held`). So a run of hung holders costs the queue their slots and never
/// wedges it, whatever else is free. Returns `None`, having given back every hold it took but
/// the first, if there is no room.
fn move_lapsed_run<Q: ClaimStore + ?Sized, S: SlotStates>(
    queue: &Q,
    ring: &Ring<'_, S>,
    me: Claimer<'_>,
    first: (u64, u64, u64),
    now_ms: u64,
) -> Option<bool> {
    let mut run = vec![first];
    while (run.len() as u64) < ring.capacity / 2 {
        let pos = first.0.wrapping_add(run.len() as u64);
        let word = ring.word_at(pos);
        let lent = SlotState::decode(word).is_some_and(|s| {
            s.phase == Phase::Lent && s.pos == SlotState::new(pos, 0, s.phase).pos
        });
        if !lent {
            break;
        }
        let lease = Lease::new(queue.lease(pos));
        let seen = lease.load();
        let owner = SlotState::decode(word).map_or(0, |s| s.owner);
        let due = seen & (ACKED | DONE | TAKEN) == 0
            && (seen & GONE != 0 || lease::deadline_of(seen) < now_ms || queue.is_dead(owner));
        let Some(taken) = due.then(|| lease.take(seen, me.token)).flatten() else {
            break;
        };
        if ring.word_at(pos) != word {
            lease.untake(taken);
            break;
        }
        run.push((pos, word, taken));
    }
    let Some(to) = ring.claim_past_held(first.0, run.len() as u64, me) else {
        for &(pos, _, taken) in &run[1..] {
            Lease::new(queue.lease(pos)).untake(taken);
        }
        return None;
    };
    for (i, &(pos, word, _)) in run.iter().enumerate() {
        let copy = to.wrapping_add(i as u64);
        queue.copy_message(pos, copy);
        queue.count_failed_delivery(copy);
        ring.publish(copy);
        detach_lapsed(ring, &Lease::new(queue.lease(pos)), pos, word);
        queue.record(Resolution::Expired);
    }
    wait::wake_if_sleeping(queue.recv_wait());
    Some(true)
}

/// Once a lapsed hold's message is out (handed out again or dead-lettered): detaches its slot,
/// `word` showing `LENT(pos, holder)`, and gives it back at once if the holder let go already
/// (see `lease`, "Life of a hold").
fn detach_lapsed<S: SlotStates>(ring: &Ring<'_, S>, lease: &Lease<'_>, pos: u64, word: u64) {
    let holder = SlotState::decode(word).map_or(0, |state| state.owner);
    ring.detach(pos, holder);
    if lease.done() {
        ring.undetach(pos, holder);
    }
}

/// Resolves the stamped long holds of `owner` (a handle closing with guards it leaked), as if
/// `owner` were dead; claims in progress cannot exist then (the handle is being dropped). Returns
/// whether every one was settled. (The loom build models recovery without handles.)
#[cfg_attr(loom, allow(dead_code))]
pub fn resolve_stamps_of<Q: ClaimStore + ?Sized>(queue: &Q, owner: u32, me: Claimer<'_>) -> bool {
    let ring = queue.ring();
    let mut all = true;
    for index in 0..ring.capacity {
        let word = ring.word_at(index);
        let Some(state) = SlotState::decode(word) else {
            continue;
        };
        if state.owner != owner {
            continue;
        }
        let done = match state.phase {
            Phase::Writing | Phase::Reserved => abandon_send(
                queue,
                &ring,
                state.position_near(ring.tail_position()),
                word,
            ),
            Phase::Lent if queue.leases() => {
                let pos = state.position_near(ring.head_position());
                resolve_lent(queue, &ring, me, pos, word, true, 0)
            }
            Phase::Reading | Phase::Lent => {
                let pos = state.position_near(ring.head_position());
                resolve_message(queue, &ring, me, pos, word)
            }
            Phase::Withheld | Phase::WithheldSkip => {
                ring.undetach(index, owner);
                Some(ring.word_at(index) != word)
            }
            _ => continue,
        };
        all &= done.is_some();
    }
    all
}

/// A send that will never be published becomes a tombstone, unless `redrive` had committed it
/// (its message complete in the slot, and the destination's ledger naming `pos`): then it is
/// published, as the dead redrive would have done next (see `redrive`).
fn abandon_send<Q: ClaimStore + ?Sized, S: SlotStates>(
    queue: &Q,
    ring: &Ring<'_, S>,
    pos: u64,
    word: u64,
) -> Option<bool> {
    let reserved = SlotState::decode(word)
        .is_some_and(|state| matches!(state.phase, Phase::Reserved | Phase::Writing));
    if reserved && queue.committed_by_redrive(pos) {
        if !ring.publish_abandoned(pos, word) {
            return Some(false);
        }
        wait::wake_if_sleeping(queue.recv_wait());
        return Some(true);
    }
    if !ring.abandon_send(pos, word) {
        return Some(false);
    }
    queue.record(Resolution::AbandonedSend);
    wait::wake_if_sleeping(queue.recv_wait());
    Some(true)
}

/// A tombstone claimed by a consumer that died before freeing it: free it.
fn free_tombstone<Q: ClaimStore + ?Sized, S: SlotStates>(
    queue: &Q,
    ring: &Ring<'_, S>,
    pos: u64,
    word: u64,
) -> Option<bool> {
    if !ring.drop_claimed(pos, word) {
        return Some(false);
    }
    wait::wake_if_sleeping(queue.send_wait());
    Some(true)
}

/// Gives back or drops the message of a dead consumer, whose slot shows `word`. Returns
/// `Some(true)` if this call did it, `Some(false)` if someone else did first, `None` if it must
/// wait for room.
fn resolve_message<Q: ClaimStore + ?Sized, S: SlotStates>(
    queue: &Q,
    ring: &Ring<'_, S>,
    me: Claimer<'_>,
    pos: u64,
    word: u64,
) -> Option<bool> {
    // Deliveries so far: the earlier ones that ended in death, and the dead consumer's.
    let deliveries = queue.failed_deliveries(pos).saturating_add(1);
    let limit = queue.max_deliveries();
    let drops = queue.drops_on_consumer_death();
    if drops {
        if !ring.drop_claimed(pos, word) {
            return Some(false);
        }
        queue.record(Resolution::AbandonedReceive);
        wait::wake_if_sleeping(queue.send_wait());
        return Some(true);
    }
    if limit != 0 && deliveries >= limit {
        if let Some(done) = dead_letter(queue, ring, me, pos, word, deliveries) {
            return done;
        }
        // The dead-letter queue refused it: given back below, as if under the limit.
    }
    // Take the message over, so that only one survivor goes on.
    if !ring.take_over(pos, word, me.token) {
        return Some(false);
    }
    // The tail has come round to this very slot: publish it again where it is.
    if let Some(again) = ring.reclaim_in_place(pos, me) {
        queue.count_failed_delivery(again);
        ring.publish(again);
        queue.record(Resolution::RedeliveredInPlace);
        wait::wake_if_sleeping(queue.recv_wait());
        return Some(true);
    }
    // Otherwise copy it into the slot at the tail, then free its old slot.
    let Some(to) = ring.claim_for_redelivery(me) else {
        // Full of other messages: put the slot back as it was, for a later sweep.
        ring.untake(pos, me.token, word);
        return None;
    };
    queue.copy_message(pos, to);
    queue.count_failed_delivery(to);
    ring.publish(to);
    ring.release(pos);
    queue.record(Resolution::RedeliveredByCopy);
    wait::wake_if_sleeping(queue.recv_wait());
    wait::wake_if_sleeping(queue.send_wait());
    Some(true)
}

/// A message of a dead consumer that reached `max_deliveries` (this was delivery
/// `deliveries`), whose slot shows `word`: it leaves the queue for the dead-letter queue, or
/// is dropped if there is none (counted in `dead_lettered` either way). Returns as
/// [`resolve_message`] does, or `None` if the dead-letter queue could not take it: then the
/// slot shows `word` again and the caller gives the message back to this queue as if it were
/// under the limit, so nothing is lost silently (the failure is counted in
/// `dead_letter_failures`), and the message's next death or expiry tries again.
///
/// The message is taken over (`READING(pos, me)`) before it is copied, so that of two
/// survivors only one copies it. A survivor that dies between its copy's publication in the
/// dead-letter queue and the release here leaves `READING(pos, dead)`, and the next survivor
/// dead-letters the message again: the dead-letter queue is at-least-once (both copies carry
/// the same origin, by which a consumer can tell them apart).
fn dead_letter<Q: ClaimStore + ?Sized, S: SlotStates>(
    queue: &Q,
    ring: &Ring<'_, S>,
    me: Claimer<'_>,
    pos: u64,
    word: u64,
    deliveries: u32,
) -> Option<Option<bool>> {
    if !ring.take_over(pos, word, me.token) {
        return Some(Some(false));
    }
    if send_to_dead_letter(queue, pos, deliveries) == DeadLetterOutcome::Failed {
        ring.untake(pos, me.token, word);
        return None;
    }
    ring.release(pos);
    queue.record(Resolution::DeadLettered);
    wait::wake_if_sleeping(queue.send_wait());
    Some(Some(true))
}

/// Copies the message at `pos`, delivered `deliveries` times, into the dead-letter queue (see
/// [`ClaimStore::send_to_dead_letter_queue`]). The caller owns the slot and decides what
/// becomes of it: only the copy is made here.
fn send_to_dead_letter<Q: ClaimStore + ?Sized>(
    queue: &Q,
    pos: u64,
    deliveries: u32,
) -> DeadLetterOutcome {
    queue.send_to_dead_letter_queue(pos, deliveries)
}
