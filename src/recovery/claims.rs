// SPDX-License-Identifier: MIT OR Apache-2.0
//! Resolving the claims a dead participant left in the ring: the half of crash recovery that
//! needs nothing but the ring, its slots' metadata and the wait words.
//!
//! It is written over [`ClaimStore`] rather than over `Queue`, so that one piece of code runs
//! in production (over the mapping, `Queue`'s implementation in `recovery`) and under the
//! checkers that cannot map a file: the loom models in `tests/loom.rs` and the heap-ring tests
//! that Miri runs (`ring_tests.rs`) implement the store on the heap and call [`resolve_claims`].
//!
//! Who is dead is the caller's decision (in production the kernel's lock, see `participant`);
//! it is passed in as a token. Having proved `dead` gone, the caller owns its claims (ring
//! invariant 3), and every repair is one CAS from the exact state `dead` left, so two survivors
//! resolving the same claim at once cannot both succeed.

use crate::ring::{Phase, Ring, SlotState, SlotStates};
use crate::sync::AtomicU32;
use crate::wait;

/// What resolving a dead participant's claims needs from a queue: its ring, the per-slot
/// message metadata (delivery count, length and payload), its crash policy, its two wait words,
/// and a place to count what was done.
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
    /// Copies a message (payload, length, failed deliveries) between two slots the caller owns.
    fn copy_message(&self, from: u64, to: u64);
    /// The wait word of receivers ("a message arrived").
    fn recv_wait(&self) -> &AtomicU32;
    /// The wait word of senders ("a slot was freed").
    fn send_wait(&self) -> &AtomicU32;
    /// Counts one resolved claim.
    fn record(&self, what: Resolution);
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
}

/// What [`resolve_claims`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// No claim of the dead participant is left.
    pub all_resolved: bool,
    /// Some claim was resolved by this call.
    pub changed: bool,
}

/// Resolves every claim that the dead participant `dead` holds, as participant `me`. A message
/// it held may have to wait for room (the queue full of other messages); then `all_resolved`
/// is false, and a later call resolves it.
pub fn resolve_claims<Q: ClaimStore + ?Sized>(queue: &Q, me: u32, dead: u32) -> Outcome {
    let ring = queue.ring();
    let mut all_resolved = true;
    let mut changed = false;
    for index in 0..ring.capacity {
        let Some(state) = ring.state_at(index) else {
            continue;
        };
        if state.owner != dead {
            continue;
        }
        match state.phase {
            Phase::Writing => {
                if let Some(abandoned) = ring.abandon_send(state) {
                    changed = true;
                    if abandoned {
                        queue.record(Resolution::AbandonedSend);
                    }
                    wait::wake_if_sleeping(queue.recv_wait());
                }
            }
            Phase::Reading => match resolve_message(queue, &ring, me, state) {
                Some(done) => changed |= done,
                None => all_resolved = false,
            },
            _ => {}
        }
    }
    Outcome {
        all_resolved,
        changed,
    }
}

/// Gives back or drops the message of a dead consumer. Returns `Some(true)` if this call did it,
/// `Some(false)` if someone else did first, `None` if it must wait for room.
fn resolve_message<Q: ClaimStore + ?Sized, S: SlotStates>(
    queue: &Q,
    ring: &Ring<'_, S>,
    me: u32,
    state: SlotState,
) -> Option<bool> {
    // Deliveries so far: the earlier ones that ended in death, and the dead consumer's.
    let deliveries = queue.failed_deliveries(state.pos).saturating_add(1);
    let limit = queue.max_deliveries();
    let drop_it = queue.drops_on_consumer_death() || (limit != 0 && deliveries >= limit);
    if drop_it {
        if !ring.drop_claimed(state) {
            return Some(false);
        }
        queue.record(if queue.drops_on_consumer_death() {
            Resolution::AbandonedReceive
        } else {
            Resolution::DeadLettered
        });
        wait::wake_if_sleeping(queue.send_wait());
        return Some(true);
    }
    // The tail has come round to this very slot: publish it again where it is.
    if let Some(pos) = ring.reclaim_in_place(state, me) {
        queue.count_failed_delivery(pos);
        ring.publish(pos, me);
        queue.record(Resolution::RedeliveredInPlace);
        wait::wake_if_sleeping(queue.recv_wait());
        return Some(true);
    }
    // Otherwise copy it into the slot at the tail, then free its old slot.
    let to = ring.claim_for_redelivery(me)?; // None: full of other messages, for later
    let Some(from) = ring.take_over(state, me) else {
        // Someone else resolved it first: give our claim back as a tombstone.
        ring.cancel(to, me);
        wait::wake_if_sleeping(queue.recv_wait());
        return Some(false);
    };
    queue.copy_message(from, to);
    queue.count_failed_delivery(to);
    ring.publish(to, me);
    ring.release(from);
    queue.record(Resolution::RedeliveredByCopy);
    wait::wake_if_sleeping(queue.recv_wait());
    wait::wake_if_sleeping(queue.send_wait());
    Some(true)
}
