// SPDX-License-Identifier: MIT OR Apache-2.0
//! The claim protocol over heap-allocated slot states, with threads: the tests that Miri and
//! ThreadSanitizer can run (they cannot map files).
//!
//! Miri runs them over many seeds (`.ci/checkers`): each seed is another thread schedule and
//! another choice among the values weak memory lets a load return, which is how a weakened
//! ordering shows (loom's loads always read the newest value, see `sync`). They cover every
//! operation of the ring: single and batch claims, cancelled sends, close, and the recovery
//! operations, which they reach through `recovery::claims::resolve_claims`, the code `Queue`
//! runs. Message counts are small under Miri (it is ~1000 times slower) and large otherwise.

use super::*;
use crate::recovery::claims::{resolve_dead, ClaimStore, Resolution};
use crate::sync::AtomicU32;
use std::sync::Arc;
use std::thread::{self, yield_now};

/// A ring's words on the heap, with one `u64` payload and a failed-delivery count per slot, and
/// the two wait words: everything the ring and `resolve_claims` need.
struct HeapRing {
    tail: AtomicU64,
    head: AtomicU64,
    closing: AtomicU64,
    states: Vec<AtomicU64>,
    /// Each participant token's announcement record (tokens are small numbers here).
    lanes: Vec<Announcement>,
    /// Which tokens are dead (in production, the kernel's locks say so).
    dead: Vec<std::sync::atomic::AtomicBool>,
    payload: Vec<std::cell::UnsafeCell<u64>>,
    /// As the mapping's `deliveries` word: deliveries of the slot's message that ended in death.
    failed: Vec<AtomicU32>,
    recv_wait: AtomicU32,
    send_wait: AtomicU32,
    /// Claims resolved by `resolve_claims`, by kind (`Resolution as usize`).
    resolved: [AtomicU64; 6],
    /// Each slot's lease word (see `lease`), used when `leases` is set.
    leases: Vec<AtomicU64>,
    /// Whether in-place holds have leases (a visibility timeout).
    with_leases: bool,
}

// SAFETY: the payload cells are only accessed by the owner of the slot's claim (ring
// invariant 3), which the protocol hands from thread to thread with Release/Acquire.
unsafe impl Sync for HeapRing {}

struct Slots<'a>(&'a [AtomicU64]);

impl SlotStates for Slots<'_> {
    fn state(&self, pos: u64) -> &AtomicU64 {
        &self.0[(pos % self.0.len() as u64) as usize]
    }
}

/// Tokens that tests use: below this.
const TOKENS: usize = 32;

/// Participant tokens: producers, consumers, the dead.
const PRODUCER: u32 = 1;
const CONSUMER: u32 = 10;
const DEAD_PRODUCER: u32 = 20;
const DEAD_CONSUMER: u32 = 21;

/// Messages per producer: enough laps of a small ring for Miri to find a bad schedule, few
/// enough that 64 seeds of every test take a few minutes. Natively (and under ThreadSanitizer)
/// more, but few enough for a loaded 2-core machine, where yielding threads take turns slowly.
const PER_PRODUCER: u64 = if cfg!(miri) { 24 } else { 500 };

impl HeapRing {
    fn new(capacity: u64) -> Arc<Self> {
        Arc::new(HeapRing {
            tail: AtomicU64::new(0),
            head: AtomicU64::new(0),
            closing: AtomicU64::new(0),
            states: (0..capacity)
                .map(|i| AtomicU64::new(empty_state(i)))
                .collect(),
            lanes: (0..TOKENS).map(|_| Announcement::new()).collect(),
            dead: (0..TOKENS)
                .map(|_| std::sync::atomic::AtomicBool::new(false))
                .collect(),
            payload: (0..capacity)
                .map(|_| std::cell::UnsafeCell::new(0))
                .collect(),
            failed: (0..capacity).map(|_| AtomicU32::new(0)).collect(),
            recv_wait: AtomicU32::new(0),
            send_wait: AtomicU32::new(0),
            resolved: Default::default(),
            leases: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            with_leases: false,
        })
    }

    fn ring(&self) -> Ring<'_, Slots<'_>> {
        Ring::new(
            &self.tail,
            &self.head,
            &self.closing,
            Slots(&self.states),
            self.states.len() as u64,
        )
    }

    fn claimer(&self, token: u32) -> Claimer<'_> {
        Claimer {
            token,
            announcement: &self.lanes[token as usize],
        }
    }

    fn index(&self, pos: u64) -> usize {
        (pos % self.states.len() as u64) as usize
    }

    fn cell(&self, pos: u64) -> *mut u64 {
        self.payload[self.index(pos)].get()
    }

    fn try_send(&self, owner: u32, value: u64) -> Result<(), ClaimError> {
        self.try_send_batch(owner, &[value]).map(|_| ())
    }

    /// Sends a prefix of `values` with one claim; returns how many were sent.
    fn try_send_batch(&self, owner: u32, values: &[u64]) -> Result<usize, ClaimError> {
        let ring = self.ring();
        let claim = ring.claim_send(self.claimer(owner), values.len() as u64)?;
        for (pos, value) in claim.positions().zip(values) {
            // SAFETY: we own the claimed slot until `publish`.
            unsafe { *self.cell(pos) = *value };
            // A new message: no delivery of it has failed (as `Queue::write`).
            self.failed[self.index(pos)].store(0, Ordering::Relaxed);
            ring.publish(pos);
        }
        Ok(claim.count as usize)
    }

    fn try_recv(&self, owner: u32) -> Result<u64, ClaimError> {
        let mut got = vec![];
        self.try_recv_batch(owner, 1, &mut got)?;
        Ok(got[0].0)
    }

    /// Receives up to `max` messages with one claim, appending each with its delivery number.
    fn try_recv_batch(
        &self,
        owner: u32,
        max: u64,
        into: &mut Vec<(u64, u32)>,
    ) -> Result<(), ClaimError> {
        let ring = self.ring();
        let claim = ring.claim_recv(self.claimer(owner), max, |_| true)?;
        for pos in claim.positions() {
            // SAFETY: we own the claimed slot until `release`.
            let value = unsafe { *self.cell(pos) };
            let failed = self.failed[self.index(pos)].load(Ordering::Relaxed);
            into.push((value, failed + 1));
            ring.release(pos);
        }
        Ok(())
    }

    fn resolved(&self, what: Resolution) -> u64 {
        self.resolved[what as usize].load(Ordering::Relaxed)
    }
}

impl ClaimStore for HeapRing {
    fn ring(&self) -> Ring<'_, impl SlotStates + '_> {
        HeapRing::ring(self)
    }
    fn drops_on_consumer_death(&self) -> bool {
        false
    }
    fn max_deliveries(&self) -> u32 {
        0
    }
    fn failed_deliveries(&self, pos: u64) -> u32 {
        self.failed[self.index(pos)].load(Ordering::Relaxed)
    }
    fn count_failed_delivery(&self, pos: u64) {
        let failed = &self.failed[self.index(pos)];
        failed.store(failed.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
    fn copy_message(&self, from: u64, to: u64) {
        // SAFETY: the caller owns both claimed slots, which are distinct.
        unsafe { *self.cell(to) = *self.cell(from) };
        let failed = self.failed[self.index(from)].load(Ordering::Relaxed);
        self.failed[self.index(to)].store(failed, Ordering::Relaxed);
    }
    fn recv_wait(&self) -> &AtomicU32 {
        &self.recv_wait
    }
    fn send_wait(&self) -> &AtomicU32 {
        &self.send_wait
    }
    fn record(&self, what: Resolution) {
        self.resolved[what as usize].fetch_add(1, Ordering::Relaxed);
    }
    fn is_dead(&self, token: u32) -> bool {
        self.dead[token as usize].load(Ordering::Acquire)
    }
    fn live_announces(&self, pos: u64, side: Side) -> bool {
        (0..TOKENS).any(|t| !self.is_dead(t as u32) && self.lanes[t].covers(pos, side))
    }
    fn leases(&self) -> bool {
        self.with_leases
    }
    fn lease(&self, pos: u64) -> &AtomicU64 {
        &self.leases[self.index(pos)]
    }
}

/// A message: its producer in the high bits, its sequence number in the low ones.
fn msg(producer: u64, seq: u64) -> u64 {
    producer << 32 | seq
}

/// Asserts that the streams hold exactly the messages `sent`, each once, and that each
/// producer's messages are in increasing order within every stream.
fn assert_exactly_once_in_order(sent: &[u64], streams: &[Vec<u64>]) {
    let mut all: Vec<u64> = streams.iter().flatten().copied().collect();
    all.sort_unstable();
    let mut expected = sent.to_vec();
    expected.sort_unstable();
    assert_eq!(all, expected, "every message sent is received exactly once");
    for stream in streams {
        let mut last = std::collections::HashMap::new();
        for v in stream {
            if let Some(prev) = last.insert(v >> 32, *v) {
                assert!(prev < *v, "producer {} out of order: {stream:?}", v >> 32);
            }
        }
    }
}

/// Receives until the ring is closed and drained, `batch` messages per claim at most.
fn drain_until_closed(ring: &HeapRing, owner: u32, batch: u64) -> Vec<u64> {
    let mut got = vec![];
    loop {
        match ring.try_recv_batch(owner, batch, &mut got) {
            Ok(()) => {}
            Err(ClaimError::WouldBlock | ClaimError::Busy) => yield_now(),
            Err(ClaimError::Closed) => break,
            Err(e) => panic!("{e:?}"),
        }
    }
    got.into_iter().map(|(v, _)| v).collect()
}

#[test]
fn threads_exchange_every_message_exactly_once_in_order() {
    const PER_PRODUCER: u64 = if cfg!(miri) { 50 } else { 20_000 };
    let ring = HeapRing::new(4);
    let producers: Vec<_> = (0..2u64)
        .map(|p| {
            let ring = ring.clone();
            thread::spawn(move || {
                for i in 0..PER_PRODUCER {
                    while ring.try_send(PRODUCER + p as u32, msg(p, i)).is_err() {
                        yield_now();
                    }
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|c| {
            let ring = ring.clone();
            thread::spawn(move || drain_until_closed(&ring, CONSUMER + c, 1))
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    ring.ring().close();
    let streams: Vec<Vec<u64>> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
    let sent: Vec<u64> = (0..2)
        .flat_map(|p| (0..PER_PRODUCER).map(move |i| msg(p, i)))
        .collect();
    assert_exactly_once_in_order(&sent, &streams);
}

/// Batch claims of up to three positions, on both sides, race with single claims on a ring of
/// two slots, so that every batch is cut short by a lap and helpers advance cursors past runs.
#[test]
fn batches_race_with_single_claims_exactly_once_in_order() {
    let ring = HeapRing::new(2);
    let producers: Vec<_> = [1u64, 3]
        .into_iter()
        .enumerate()
        .map(|(p, batch)| {
            let ring = ring.clone();
            thread::spawn(move || {
                let p = p as u64;
                let values: Vec<u64> = (0..PER_PRODUCER).map(|i| msg(p, i)).collect();
                let mut next = 0;
                while next < values.len() {
                    let end = (next + batch as usize).min(values.len());
                    match ring.try_send_batch(PRODUCER + p as u32, &values[next..end]) {
                        Ok(n) => next += n,
                        Err(ClaimError::WouldBlock | ClaimError::Busy) => yield_now(),
                        Err(e) => panic!("{e:?}"),
                    }
                }
            })
        })
        .collect();
    let consumers: Vec<_> = [1u64, 3]
        .into_iter()
        .enumerate()
        .map(|(c, batch)| {
            let ring = ring.clone();
            thread::spawn(move || drain_until_closed(&ring, CONSUMER + c as u32, batch))
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    ring.ring().close();
    let streams: Vec<Vec<u64>> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
    let sent: Vec<u64> = (0..2)
        .flat_map(|p| (0..PER_PRODUCER).map(move |i| msg(p, i)))
        .collect();
    assert_exactly_once_in_order(&sent, &streams);
}

/// Producers cancel every third claim (a send given up without a message): receivers pass over
/// the tombstones and free their slots, and receive exactly the published messages. The
/// consumer on the side polls rarely, so its view of the slots lags the cursors by laps.
#[test]
fn cancelled_sends_are_skipped_and_their_slots_reused() {
    let ring = HeapRing::new(2);
    let producers: Vec<_> = (0..2u64)
        .map(|p| {
            let ring = ring.clone();
            thread::spawn(move || {
                let r = ring.ring();
                let mut sent = vec![];
                for i in 0..PER_PRODUCER {
                    let owner = PRODUCER + p as u32;
                    let claim = loop {
                        match r.claim_send(ring.claimer(owner), 1) {
                            Ok(claim) => break claim,
                            Err(ClaimError::WouldBlock | ClaimError::Busy) => yield_now(),
                            Err(e) => panic!("{e:?}"),
                        }
                    };
                    if i % 3 == 2 {
                        r.cancel(claim.first);
                    } else {
                        // SAFETY: we own the claimed slot until `publish`.
                        unsafe { *ring.cell(claim.first) = msg(p, i) };
                        r.publish(claim.first);
                        sent.push(msg(p, i));
                    }
                }
                sent
            })
        })
        .collect();
    let busy = {
        let ring = ring.clone();
        thread::spawn(move || drain_until_closed(&ring, CONSUMER, 1))
    };
    let lagging = {
        let ring = ring.clone();
        thread::spawn(move || {
            let mut got = vec![];
            loop {
                match ring.try_recv(CONSUMER + 1) {
                    Ok(v) => got.push(v),
                    Err(ClaimError::WouldBlock | ClaimError::Busy) => {}
                    Err(ClaimError::Closed) => break got,
                    Err(e) => panic!("{e:?}"),
                }
                for _ in 0..4 {
                    yield_now();
                }
            }
        })
    };
    let sent: Vec<u64> = producers
        .into_iter()
        .flat_map(|p| p.join().unwrap())
        .collect();
    ring.ring().close();
    let streams = [busy.join().unwrap(), lagging.join().unwrap()];
    assert_exactly_once_in_order(&sent, &streams);
}

/// `close` races with sends and receives: every send that succeeded is received exactly once,
/// every send after the close fails, and a receiver that saw `Closed` never finds a message.
#[test]
fn close_races_with_sends_and_loses_nothing() {
    let ring = HeapRing::new(2);
    let producers: Vec<_> = [1u64, 2]
        .into_iter()
        .enumerate()
        .map(|(p, batch)| {
            let ring = ring.clone();
            thread::spawn(move || {
                let p = p as u64;
                let mut sent = vec![];
                let mut i = 0;
                loop {
                    let values = [msg(p, i), msg(p, i + 1)];
                    match ring.try_send_batch(PRODUCER + p as u32, &values[..batch as usize]) {
                        Ok(n) => {
                            sent.extend_from_slice(&values[..n]);
                            i += n as u64;
                        }
                        Err(ClaimError::WouldBlock | ClaimError::Busy) => yield_now(),
                        Err(ClaimError::Closed) => break sent,
                        Err(e) => panic!("{e:?}"),
                    }
                }
            })
        })
        .collect();
    let consumers: Vec<_> = [1u64, 2]
        .into_iter()
        .enumerate()
        .map(|(c, batch)| {
            let ring = ring.clone();
            thread::spawn(move || {
                let got = drain_until_closed(&ring, CONSUMER + c as u32, batch);
                // Closed is final: nothing arrives after it.
                assert_eq!(ring.try_recv(CONSUMER + c as u32), Err(ClaimError::Closed));
                got
            })
        })
        .collect();
    // Close once the messages have gone round the ring a few times.
    while ring.head.load(Ordering::Acquire) < PER_PRODUCER {
        yield_now();
    }
    assert!(ring.ring().close());
    assert!(
        !ring.ring().close(),
        "closing twice reports the first close only"
    );
    let sent: Vec<u64> = producers
        .into_iter()
        .flat_map(|p| p.join().unwrap())
        .collect();
    let streams: Vec<Vec<u64>> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
    assert_exactly_once_in_order(&sent, &streams);
    assert_eq!(ring.try_send(PRODUCER, 0), Err(ClaimError::Closed));
}

/// Crash recovery over the heap ring, with threads. Before they start, a consumer dies holding
/// the first message and a producer dies holding the next position, so the ring is stuck at
/// once; then a producer sends the rest while two consumers, finding nothing, resolve the dead
/// claims with `resolve_dead` (both at once, sometimes, and racing the producer's claims at
/// the tail): the dead send becomes a tombstone, the dead consumer's message is given back (in
/// place if the tail has come round to it, else by copy) with its delivery count raised, and
/// every message arrives exactly once.
#[test]
fn dead_claims_are_resolved_while_others_run() {
    let ring = HeapRing::new(4);
    ring.try_send(PRODUCER, msg(0, 0)).unwrap();
    let r = ring.ring();
    let dead_consumer = ring.claimer(DEAD_CONSUMER);
    assert_eq!(r.claim_recv(dead_consumer, 1, |_| true).unwrap().first, 0);
    assert_eq!(
        r.claim_send(ring.claimer(DEAD_PRODUCER), 1).unwrap().first,
        1
    );
    // Both die in their claims' windows (claimed, nothing written to the slots).
    ring.dead[DEAD_CONSUMER as usize].store(true, Ordering::Release);
    ring.dead[DEAD_PRODUCER as usize].store(true, Ordering::Release);
    let producer = {
        let ring = ring.clone();
        thread::spawn(move || {
            for i in 1..PER_PRODUCER {
                while ring.try_send(PRODUCER, msg(0, i)).is_err() {
                    yield_now();
                }
            }
        })
    };
    let received = Arc::new(AtomicU64::new(0));
    let consumers: Vec<_> = (0..2)
        .map(|c| {
            let (ring, received) = (ring.clone(), received.clone());
            thread::spawn(move || {
                let mut got = vec![];
                while received.load(Ordering::Relaxed) < PER_PRODUCER {
                    let before = got.len();
                    match ring.try_recv_batch(CONSUMER + c, 1, &mut got) {
                        Ok(()) => {
                            received.fetch_add((got.len() - before) as u64, Ordering::Relaxed);
                        }
                        Err(ClaimError::WouldBlock | ClaimError::Busy) => {
                            resolve_dead(&*ring, ring.claimer(CONSUMER + c));
                            yield_now();
                        }
                        Err(e) => panic!("{e:?}"),
                    }
                }
                got
            })
        })
        .collect();
    producer.join().unwrap();
    let got: Vec<(u64, u32)> = consumers
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    let mut values: Vec<u64> = got.iter().map(|(v, _)| *v).collect();
    values.sort_unstable();
    let expected: Vec<u64> = (0..PER_PRODUCER).map(|i| msg(0, i)).collect();
    assert_eq!(values, expected, "every message exactly once");
    for (value, deliveries) in &got {
        let expected = if *value == msg(0, 0) { 2 } else { 1 };
        assert_eq!(*deliveries, expected, "deliveries of message {value:#x}");
    }
    assert_eq!(ring.resolved(Resolution::AbandonedSend), 1);
    let in_place = ring.resolved(Resolution::RedeliveredInPlace);
    assert_eq!(in_place + ring.resolved(Resolution::RedeliveredByCopy), 1);
}
