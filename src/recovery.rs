// SPDX-License-Identifier: MIT OR Apache-2.0
//! Crash recovery: finding participants that died and resolving what they left behind.
//!
//! A process can die at any instant. What it can leave in the mapping:
//! - a position claimed to write and never published (the slot still `EMPTY(p)` below the tail,
//!   or stamped `WRITING(p, dead)`): receivers would wait at `p` forever. It becomes a tombstone
//!   (`SKIP`) that receivers pass over (`abandoned_sends`).
//! - a message claimed and never released (the slot still `FULL(p)` below the head, or stamped
//!   `READING(p, dead)`): the message is still in the slot.
//!   By default it is given back to the queue with its delivery count raised (the next
//!   receiver sees one more delivery; `redelivered`), or dropped once it has been delivered
//!   `max_deliveries` times (`dead_lettered`); a queue created with `OnConsumerDeath::Drop`
//!   drops it (`abandoned_receives`).
//! - sleeper counts that include threads that will never wake up: recounted from the live
//!   participants' own records, so wakers stop paying for `FUTEX_WAKE` and none is skipped.
//!
//! Who is dead is decided by the kernel (the participant's lock, see `participant`), never by a
//! timeout: a slow or stopped process is never declared dead. A claim in progress names its
//! claimer only in the claimer's announcement (see `ring`, "Attribution"): a claim is repaired
//! only when no live participant announces it. Recovery runs on slow paths only:
//! - a blocked call sweeps before each sleep slice (at most every [`SWEEP_INTERVAL_NS`] across
//!   all processes), so a death is noticed within a sweep interval plus a sleep slice by anyone
//!   blocked on the queue;
//! - a non-blocking call that fails because the slot at its cursor is claimed by someone else
//!   asks about that claimer once the claim has stood unchanged for [`STUCK_NS`] (`unstick`):
//!   the non-blocking path makes no system call in normal running, and a busy-polling peer
//!   still notices the death that blocks it within a millisecond or so;
//! - a receiver sweeps before it reports `Closed` if any slot is still held by someone else;
//! - a new handle that takes over a dead participant's table entry resolves its claims;
//! - and `Queue::recover`, for programs that only busy-poll an idle queue (a message held by a
//!   dead consumer away from both cursors blocks nobody until the ring comes round to it).
//!
//! Giving a message back needs a slot: normally the one at the tail, into which the message is
//! copied. If the queue is full, it may be full *because* of this very slot; then the tail has
//! come round to it and the message is published again in place (no copy, no extra space). If
//! the queue is full of other messages, the message waits for a later sweep, and the dead
//! participant's table entry stays marked until it is resolved, so nothing is forgotten.
//!
//! What to do with a dead participant's claims is in [`claims`]: it needs only the ring, so it
//! is written over a small store trait, and the loom models and the heap-ring tests under Miri
//! run it too. This file decides who is dead and when to look. It works over the mapped file
//! (`mapping`), the ring and the participant table, never over `Queue`: a handle lends it a
//! [`Survivor`] (its mapping and its liveness question), asks it whether a sweep is due
//! ([`stuck`], [`held_before_closed`], [`sweep_due`]), and then has it [`sweep`] with the
//! calling thread's lane as the claimer.

pub(crate) mod claims;

use crate::layout::{Header, FLAG_DROP_ON_CONSUMER_DEATH};
use crate::mapping::Mapping;
use crate::participant::{self, Liveness, Registration};
use crate::ring::{Claimer, Phase, Ring, Side, SlotState, SlotStates};
use crate::sync::{AtomicU32, AtomicU64 as SharedU64, Ordering};
use crate::test_hooks;
use crate::wait;
use claims::{ClaimStore, Resolution};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering as StdOrdering};

/// Least time between two sweeps started by slow paths (shared by all processes).
pub(crate) const SWEEP_INTERVAL_NS: u64 = 20_000_000;
/// Longest single sleep of a blocked call before it runs a sweep.
pub(crate) const SLEEP_SLICE: std::time::Duration = std::time::Duration::from_millis(50);

/// The host's monotonic clock in nanoseconds: one clock for every process on the host, in
/// whatever time namespace, for every time stamp in the mapping that another process compares
/// (hold deadlines, the header's sweep and scan stamps). Read through the vDSO: not a system
/// call.
///
/// CLOCK_MONOTONIC (like CLOCK_BOOTTIME and their variants) is per time namespace (Linux 5.6+;
/// `unshare --time`, containers restored by CRIU): a namespace's clock is the host's plus the
/// namespace's offset, which `/proc/self/timens_offsets` shows relative to the initial
/// namespace. So this is CLOCK_MONOTONIC less that offset (see [`time_namespace_offset_ns`]).
pub(crate) fn monotonic_ns() -> u64 {
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let local = (ts.tv_sec as i64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as i64);
    local.wrapping_sub(time_namespace_offset_ns()).max(0) as u64
}

/// The monotonic offset of this process's time namespace, in nanoseconds, read once.
///
/// Reading it once is sound: a namespace's offsets are fixed once a process is in it (the kernel
/// refuses writes to `timens_offsets` then), and a process changes namespace only by entering
/// its `time_for_children` one, at exec or by `setns`, which the kernel allows a single-threaded
/// process only. No file (a kernel before 5.6, or no /proc): no time namespaces, offset 0.
///
/// The file shows the offsets of the namespace of the process's *children*, which is its own
/// except between its own `unshare(CLONE_NEWTIME)` and its exec: then (the two `ns` links
/// differ) its own offsets cannot be read, and it is taken to be in the initial namespace.
fn time_namespace_offset_ns() -> i64 {
    static OFFSET_NS: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *OFFSET_NS.get_or_init(|| {
        let own = std::fs::read_link("/proc/self/ns/time");
        let children = std::fs::read_link("/proc/self/ns/time_for_children");
        if let (Ok(own), Ok(children)) = (own, children) {
            if own != children {
                return 0;
            }
        }
        std::fs::read_to_string("/proc/self/timens_offsets")
            .ok()
            .and_then(|text| monotonic_offset_ns(&text))
            .unwrap_or(0)
    })
}

/// The monotonic offset in the text of a `timens_offsets` file (`monotonic <secs> <nanos>`
/// lines, the seconds possibly negative); `None` if it has none or it does not parse.
fn monotonic_offset_ns(text: &str) -> Option<i64> {
    text.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        if fields.next()? != "monotonic" {
            return None;
        }
        let secs: i64 = fields.next()?.parse().ok()?;
        let nanos: i64 = fields.next()?.parse().ok()?;
        secs.checked_mul(1_000_000_000)?.checked_add(nanos)
    })
}

/// What recovery needs from one handle: the mapped file it repairs (whose header copy also
/// holds the queue's crash policy), and the handle's liveness question (its lock-probing file
/// description, and which entries are its own). `Queue` builds one whenever it needs a sweep.
#[derive(Clone, Copy)]
pub(crate) struct Survivor<'a> {
    /// The handle's mapped file: header, participant table, slots.
    pub(crate) mapping: &'a Mapping,
    /// Who is alive, as the handle asks it (its own entries are alive by definition).
    pub(crate) liveness: &'a Liveness,
    /// The handle's dead-letter queue, opened when a message first goes there.
    pub(crate) dead_letter: &'a crate::dead_letter::DeadLetterCell,
}

impl Survivor<'_> {
    /// Whether the participant with `token` is gone (the kernel's lock says so).
    fn is_dead(&self, token: u32) -> bool {
        self.liveness.is_dead(self.mapping.participants(), token)
    }

    /// Whether `token` is one of the handle's own lanes (alive, whatever a probe says).
    fn is_own_token(&self, token: u32) -> bool {
        self.liveness
            .is_own_token(self.mapping.participants(), token)
    }
}

/// Takes a participant entry for a new handle or a new thread of one. If every table entry was
/// taken and it had to displace a dead participant whose claims were not resolved yet, it
/// resolves them now, as a sweep would. (Should some message of the displaced participant still
/// find no room, the next sweep finds it again: claims are found by scanning the slots, not by
/// the entry.)
pub(crate) fn register(survivor: Survivor<'_>) -> crate::Result<Registration> {
    let participants = survivor.mapping.participants();
    let (me, displaced) = participant::register(survivor.liveness.file(), participants)?;
    if displaced.is_some() {
        let announcement = &participants[me.index as usize].announcement;
        claims::resolve_dead(
            &survivor,
            Claimer {
                token: me.token,
                announcement,
            },
        );
    }
    Ok(me)
}

/// Resolves the long holds that the handle's lanes still stamp as it closes (guards leaked with
/// `mem::forget`; see `Queue::drop`). Returns whether none is left: a message it held may find
/// no room to be given back (the slot at the tail held by another live consumer), and then the
/// caller must leave its participant entries marked, so that a later sweep, which sees their
/// locks gone, resolves it as it would a dead participant's.
pub(crate) fn abandon_own_claims(survivor: Survivor<'_>, lanes: &[Registration]) -> bool {
    let Some(first) = lanes.first() else {
        return true;
    };
    let claimer = Claimer {
        token: first.token,
        announcement: &survivor.mapping.participants()[first.index as usize].announcement,
    };
    lanes
        .iter()
        .all(|lane| claims::resolve_stamps_of(&survivor, lane.token, claimer))
}

/// How long the slot at a cursor must stay claimed, unchanged, before a non-blocking call asks
/// the kernel whether that claimer is alive. A live claimer holds a slot for well under a
/// microsecond, so this is only ever reached by the dead, the descheduled, and guards held on
/// purpose; for those one sweep a millisecond is nothing.
pub(crate) const STUCK_NS: u64 = 1_000_000;

/// The host's monotonic clock ([`monotonic_ns`]) in milliseconds, the unit of hold deadlines
/// (see `lease`).
pub(crate) fn monotonic_ms() -> u64 {
    monotonic_ns() / 1_000_000
}

/// Least time between two scans for lapsed holds (shared by all processes): with the sleep
/// slice, an expired message is receivable within its timeout plus 100 ms by anyone blocked on
/// the queue, and by a poller (which looks every [`EXPIRY_POLLS`] polls).
pub(crate) const EXPIRY_INTERVAL_NS: u64 = 20_000_000;
/// How many fruitless non-blocking calls of one handle go by between two looks at the clock for
/// an expiry scan.
pub(crate) const EXPIRY_POLLS: u64 = 64;

/// Whether a scan for lapsed holds is due: the queue has a visibility timeout, and none ran in
/// the last [`EXPIRY_INTERVAL_NS`] (by any process). If so, this caller has taken the turn.
pub(crate) fn expiry_due(mapping: &Mapping) -> bool {
    if mapping.visibility_timeout_ns() == 0 {
        return false;
    }
    let last = &mapping.header().counters.0.last_expiry_ns;
    let now = monotonic_ns();
    let before = last.load(Ordering::Relaxed);
    now.wrapping_sub(before) >= EXPIRY_INTERVAL_NS
        && last
            .compare_exchange(before, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// Hands out again every message whose hold lapsed (see `lease`), claiming through `me`.
/// Returns whether it changed anything.
pub(crate) fn expire(survivor: Survivor<'_>, me: Claimer<'_>) -> bool {
    claims::expire_lapsed(&survivor, me, monotonic_ms()).changed
}

/// What one handle last saw blocking it at one cursor: the slot's state word and when it first
/// saw that word there. Handle-local (never in the mapping); racing threads of one handle can
/// only delay a check by one interval.
#[derive(Debug)]
pub(crate) struct StuckWatch {
    word: AtomicU64,
    /// How many times in a row `word` was seen; the clock is read once every
    /// [`CLOCK_EVERY`] sightings, so a busy poller that catches a live producer mid-write does
    /// not pay for a clock read on every poll.
    sightings: AtomicU64,
    /// When the clock was first read for `word` (0: not yet).
    since_ns: AtomicU64,
    /// The state word of a claim in progress that a non-blocking call waited out in vain (see
    /// `Queue::wait_out_busy`): calls that find it still there do not wait again.
    gave_up: AtomicU64,
}

impl Default for StuckWatch {
    fn default() -> Self {
        StuckWatch {
            word: AtomicU64::new(0),
            sightings: AtomicU64::new(0),
            since_ns: AtomicU64::new(0),
            // No state word has phase 15: nothing was given up on yet.
            gave_up: AtomicU64::new(u64::MAX),
        }
    }
}

impl StuckWatch {
    /// Whether a call already waited in vain for the claim whose slot shows `word`.
    pub(crate) fn gave_up_on(&self, word: u64) -> bool {
        self.gave_up.load(StdOrdering::Relaxed) == word
    }

    /// Remembers that a call waited in vain for the claim whose slot shows `word`.
    pub(crate) fn give_up_on(&self, word: u64) {
        self.gave_up.store(word, StdOrdering::Relaxed);
    }
}

/// See [`StuckWatch::sightings`].
const CLOCK_EVERY: u64 = 64;

/// Called by a non-blocking call that found the queue full or empty, or a claim in progress at
/// its cursor, with the state word of the slot there. The non-blocking path makes no system
/// call for this unless that slot has stayed claimed (or held) by someone, unchanged, for
/// [`STUCK_NS`]: then this returns true, and the caller sweeps (one `fcntl` per participant)
/// and, if the sweep changed anything, looks again.
pub(crate) fn stuck(survivor: Survivor<'_>, word: u64, claimed: bool, watch: &StuckWatch) -> bool {
    let held = claimed
        || SlotState::decode(word)
            .is_some_and(|s| s.phase.is_stamp() && !survivor.is_own_token(s.owner));
    if !held {
        return false;
    }
    if watch.word.load(StdOrdering::Relaxed) != word {
        watch.word.store(word, StdOrdering::Relaxed);
        watch.sightings.store(0, StdOrdering::Relaxed);
        watch.since_ns.store(0, StdOrdering::Relaxed);
        return false;
    }
    let seen = watch.sightings.load(StdOrdering::Relaxed).wrapping_add(1);
    watch.sightings.store(seen, StdOrdering::Relaxed);
    if !seen.is_multiple_of(CLOCK_EVERY) {
        return false;
    }
    // `max(1)`: 0 means "not read yet".
    let now = monotonic_ns().max(1);
    let since = watch.since_ns.load(StdOrdering::Relaxed);
    if since == 0 {
        watch.since_ns.store(now, StdOrdering::Relaxed);
        return false;
    }
    if now.wrapping_sub(since) < STUCK_NS {
        return false;
    }
    watch.since_ns.store(now, StdOrdering::Relaxed);
    true
}

/// Called before a receiver reports `Closed`: nothing is left to deliver only once no message is
/// held by a dead consumer. Scans the slot states (loads only) and returns whether a slot is
/// still held or claimed: then the caller sweeps, and looks again if that gave anything back.
/// Once a scan of a closed, drained queue finds nothing held, nothing can ever be delivered
/// again, and `settled` remembers it.
pub(crate) fn held_before_closed(mapping: &Mapping, settled: &AtomicBool) -> bool {
    if settled.load(StdOrdering::Relaxed) {
        return false;
    }
    let ring = mapping.ring();
    let head = ring.head_position();
    let held = (0..u64::from(mapping.capacity())).any(|index| {
        SlotState::decode(ring.word_at(index)).is_some_and(|s| match s.phase {
            Phase::Writing | Phase::Reading | Phase::Reserved | Phase::Lent => true,
            // Claimed by a consumer that has not released it yet.
            Phase::Full | Phase::Skip => s.distance_from(head) < 0,
            Phase::Empty | Phase::Withheld | Phase::WithheldSkip => false,
        })
    });
    if !held {
        settled.store(true, StdOrdering::Relaxed);
        return false;
    }
    true
}

/// Whether a sweep is due: none ran in the last [`SWEEP_INTERVAL_NS`] (by any process). If so,
/// this caller has taken the turn (the header's `last_sweep_ns` now says so) and sweeps.
pub(crate) fn sweep_due(header: &Header) -> bool {
    let last = &header.counters.0.last_sweep_ns;
    let now = monotonic_ns();
    let before = last.load(Ordering::Relaxed);
    now.wrapping_sub(before) >= SWEEP_INTERVAL_NS
        && last
            .compare_exchange(before, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// Looks for dead participants and resolves everything they left, claiming through `me` (the
/// calling thread's lane) where a message must be given back. Returns whether it changed
/// anything (a claim resolved, or a sleeper count repaired).
pub(crate) fn sweep(survivor: Survivor<'_>, me: Claimer<'_>) -> bool {
    let participants = survivor.mapping.participants();
    let dead: Vec<(usize, u32)> = (0u32..)
        .zip(participants)
        .filter_map(|(index, entry)| {
            let word = entry.token.load(Ordering::Acquire);
            let token = participant::token_of(index, word);
            (word & 1 == 1 && survivor.is_dead(token)).then_some((index as usize, word))
        })
        .collect();
    if dead.is_empty() {
        return false;
    }
    let outcome = claims::resolve_dead(&survivor, me);
    if outcome.all_resolved {
        // Nothing of theirs is left: free their entries. (A new holder that took a lock
        // meanwhile has changed the word, and then this does nothing.)
        for (index, word) in dead {
            let _ = participants[index].token.compare_exchange(
                word,
                word & !1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
    }
    recount_sleepers(survivor) | outcome.changed
}

/// The mapped queue as the store that `claims` resolves claims in.
impl ClaimStore for Survivor<'_> {
    fn ring(&self) -> Ring<'_, impl SlotStates + '_> {
        self.mapping.ring()
    }
    fn drops_on_consumer_death(&self) -> bool {
        self.mapping.flags() & FLAG_DROP_ON_CONSUMER_DEATH != 0
    }
    fn max_deliveries(&self) -> u32 {
        self.mapping.max_deliveries()
    }
    fn failed_deliveries(&self, pos: u64) -> u32 {
        self.mapping.failed_deliveries(pos)
    }
    fn count_failed_delivery(&self, pos: u64) {
        self.mapping.count_failed_delivery(pos)
    }
    fn copy_message(&self, from: u64, to: u64) {
        self.mapping.copy_message(from, to)
    }
    fn recv_wait(&self) -> &AtomicU32 {
        &self.mapping.header().recv_wait.0
    }
    fn send_wait(&self) -> &AtomicU32 {
        &self.mapping.header().send_wait.0
    }
    fn record(&self, what: Resolution) {
        let counters = &self.mapping.header().counters.0;
        let counter = match what {
            Resolution::AbandonedSend => &counters.abandoned_sends,
            Resolution::AbandonedReceive => &counters.abandoned_receives,
            Resolution::DeadLettered => &counters.dead_lettered,
            Resolution::RedeliveredInPlace | Resolution::RedeliveredByCopy => &counters.redelivered,
            Resolution::Expired => &counters.expired,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        // Which redelivery path ran, for the chaos test (nothing without `test-hooks`).
        match what {
            Resolution::RedeliveredInPlace => test_hooks::event("redelivered-in-place"),
            Resolution::RedeliveredByCopy => test_hooks::event("redelivered-copy"),
            _ => {}
        }
    }
    fn is_dead(&self, token: u32) -> bool {
        Survivor::is_dead(self, token)
    }
    fn leases(&self) -> bool {
        self.mapping.visibility_timeout_ns() != 0
    }
    fn lease(&self, pos: u64) -> &SharedU64 {
        &self.mapping.slot(pos).lease
    }
    fn live_announces(&self, pos: u64, side: Side) -> bool {
        (0u32..)
            .zip(self.mapping.participants())
            .any(|(index, entry)| {
                let word = entry.token.load(Ordering::Acquire);
                word & 1 == 1
                    && entry.announcement.covers(pos, side)
                    && !Survivor::is_dead(self, participant::token_of(index, word))
            })
    }
    fn send_to_dead_letter_queue(&self, pos: u64, deliveries: u32) -> claims::DeadLetterOutcome {
        crate::dead_letter::send(
            self.mapping,
            self.liveness.file(),
            self.dead_letter,
            pos,
            deliveries,
        )
    }
    fn committed_by_redrive(&self, pos: u64) -> bool {
        self.mapping
            .header()
            .redrive
            .0
            .position
            .load(Ordering::Acquire)
            == pos
    }
}

/// Recomputes both shared sleeper counts from the live participants' records, lowering a count
/// that includes sleepers who died. Returns whether it changed a count.
///
/// Exact without locks: every live sleeper marks its record "mid-update" around its change of
/// the shared count, so a record read while unmarked agrees with the shared word; the shared
/// word is read first and replaced by CAS, so any change made meanwhile makes the CAS fail and
/// the repair wait for the next sweep. The count is only ever lowered, and only to what the live
/// records say, so no live sleeper is ever forgotten (which would lose its wake-up).
fn recount_sleepers(survivor: Survivor<'_>) -> bool {
    let header = survivor.mapping.header();
    let mut changed = false;
    for (word, shift) in [(&header.recv_wait.0, 0u32), (&header.send_wait.0, 16u32)] {
        let shared = word.load(Ordering::SeqCst);
        let mut live = 0u32;
        let mut alive_cache = HashMap::new();
        let mut consistent = true;
        for (index, entry) in (0u32..).zip(survivor.mapping.participants()) {
            let token_word = entry.token.load(Ordering::SeqCst);
            if token_word & 1 == 0 {
                continue;
            }
            let token = participant::token_of(index, token_word);
            let alive = *alive_cache
                .entry(token)
                .or_insert_with(|| !survivor.is_dead(token));
            if !alive {
                continue;
            }
            let mine = entry.sleeping.load(Ordering::SeqCst) >> shift;
            if mine & wait::MINE_TRANSIT_FLAG != 0 {
                consistent = false;
                break;
            }
            live += mine & wait::MINE_COUNT_MASK;
        }
        let counted = wait::sleepers(word);
        if consistent && counted > live {
            let repaired = (shared & !0xFFFF) | live;
            changed |= word
                .compare_exchange(shared, repaired, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok();
        }
    }
    changed
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::monotonic_offset_ns;

    #[test]
    fn the_monotonic_offset_of_a_time_namespace_is_read_with_its_sign() {
        let file = |mono: &str| format!("monotonic {mono}\nboottime 7 0\n");
        assert_eq!(monotonic_offset_ns(&file("0 0")), Some(0));
        assert_eq!(
            monotonic_offset_ns(&file("3600         250")),
            Some(3_600_000_000_250)
        );
        // A negative offset: seconds negative, nanoseconds never.
        assert_eq!(
            monotonic_offset_ns(&file("-5 500000000")),
            Some(-4_500_000_000)
        );
        assert_eq!(monotonic_offset_ns("boottime 1 0\n"), None);
        assert_eq!(monotonic_offset_ns("monotonic x 0\n"), None);
        assert_eq!(
            monotonic_offset_ns(&file("9223372036854775807 0")),
            None,
            "out of range"
        );
    }
}
