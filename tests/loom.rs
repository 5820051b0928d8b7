//! loom models of the claim protocol (`src/ring.rs`) and the sleep/wake protocol (`src/wait.rs`).
//!
//! These run the production code: under `--cfg loom` the crate's `sync` facade swaps in loom's
//! atomics and a modelled futex, and the ring's slot states live on the heap instead of in a
//! mapping. Payloads are loom `UnsafeCell`s, so loom also checks that a slot is never written
//! and read at once.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test --release --target-dir target/loom --test loom --no-default-features`
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;
use shmq::model::{
    empty_state, wait_for, wake_all, wake_if_sleeping, ClaimError, Deadline, Phase, Ring,
    SlotStates, Waiter,
};
use shmq::model::{AtomicU32, AtomicU64};
use std::sync::atomic::Ordering;

/// A ring of `CAP` slots on the heap, with a `u32` payload per slot and the two wait words.
struct Model {
    tail: AtomicU64,
    head: AtomicU64,
    closing: AtomicU64,
    states: Vec<AtomicU64>,
    payload: Vec<UnsafeCell<u32>>,
    recv_wait: AtomicU32,
    send_wait: AtomicU32,
}

struct HeapSlots<'a>(&'a [AtomicU64]);

impl SlotStates for HeapSlots<'_> {
    fn state(&self, pos: u64) -> &AtomicU64 {
        &self.0[(pos % self.0.len() as u64) as usize]
    }
}

const OWNER_A: u32 = 1;
const OWNER_B: u32 = 2;

impl Model {
    fn new(cap: u64) -> Arc<Self> {
        Arc::new(Model {
            tail: AtomicU64::new(0),
            head: AtomicU64::new(0),
            closing: AtomicU64::new(0),
            states: (0..cap).map(|i| AtomicU64::new(empty_state(i))).collect(),
            payload: (0..cap).map(|_| UnsafeCell::new(0)).collect(),
            recv_wait: AtomicU32::new(0),
            send_wait: AtomicU32::new(0),
        })
    }

    fn ring(&self) -> Ring<'_, HeapSlots<'_>> {
        Ring::new(
            &self.tail,
            &self.head,
            &self.closing,
            HeapSlots(&self.states),
            self.states.len() as u64,
        )
    }

    fn index(&self, pos: u64) -> usize {
        (pos % self.states.len() as u64) as usize
    }

    /// One attempt to send `value`: claim, write the payload, publish, wake.
    fn try_send(&self, owner: u32, value: u32) -> Result<(), ClaimError> {
        let ring = self.ring();
        let claim = ring.claim_send(owner, 1)?;
        self.payload[self.index(claim.first)].with_mut(|p| unsafe { *p = value });
        ring.publish(claim.first, owner);
        wake_if_sleeping(&self.recv_wait);
        Ok(())
    }

    /// One attempt to receive: claim, read the payload, release, wake.
    fn try_recv(&self, owner: u32) -> Result<u32, ClaimError> {
        let ring = self.ring();
        let claim = ring.claim_recv(owner, 1, |_| true)?;
        let value = self.payload[self.index(claim.first)].with(|p| unsafe { *p });
        ring.release(claim.first);
        wake_if_sleeping(&self.send_wait);
        Ok(value)
    }

    /// Sends a batch of values with one claim; returns how many were sent.
    fn try_send_batch(&self, owner: u32, values: &[u32]) -> Result<usize, ClaimError> {
        let ring = self.ring();
        let claim = ring.claim_send(owner, values.len() as u64)?;
        for (pos, v) in claim.positions().zip(values) {
            self.payload[self.index(pos)].with_mut(|p| unsafe { *p = *v });
            ring.publish(pos, owner);
        }
        wake_if_sleeping(&self.recv_wait);
        Ok(claim.count as usize)
    }

    fn drain(&self, owner: u32) -> Vec<u32> {
        let mut got = vec![];
        while let Ok(v) = self.try_recv(owner) {
            got.push(v);
        }
        got
    }
}

/// Message value: producer in the high bits, sequence in the low.
fn msg(producer: u32, seq: u32) -> u32 {
    producer << 16 | seq
}

/// Asserts that `received` holds every value of `sent` exactly once and that each producer's
/// values appear in increasing order within every stream.
fn assert_exactly_once_in_order(sent: &[u32], streams: &[Vec<u32>]) {
    let mut all: Vec<u32> = streams.iter().flatten().copied().collect();
    all.sort_unstable();
    let mut expected = sent.to_vec();
    expected.sort_unstable();
    assert_eq!(all, expected, "streams {streams:?}");
    for stream in streams {
        for producer in [1, 2] {
            let seqs: Vec<u32> = stream
                .iter()
                .filter(|v| *v >> 16 == producer)
                .collect::<Vec<_>>()
                .into_iter()
                .copied()
                .collect();
            assert!(
                seqs.windows(2).all(|w| w[0] < w[1]),
                "order broken in {stream:?}"
            );
        }
    }
}

#[test]
fn two_producers_one_consumer_exactly_once_in_order() {
    loom::model(|| {
        let m = Model::new(2);
        let producers: Vec<_> = [(1, OWNER_A), (2, OWNER_B)]
            .into_iter()
            .map(|(p, owner)| {
                let m = m.clone();
                thread::spawn(move || {
                    let mut sent = vec![];
                    for seq in 0..2 {
                        // One bounded attempt per message: a full queue skips it (recorded as
                        // not sent), which keeps the model finite.
                        if m.try_send(owner, msg(p, seq)).is_ok() {
                            sent.push(msg(p, seq));
                        }
                    }
                    sent
                })
            })
            .collect();
        let mut stream = vec![];
        for _ in 0..2 {
            if let Ok(v) = m.try_recv(3) {
                stream.push(v);
            }
        }
        let sent: Vec<u32> = producers
            .into_iter()
            .flat_map(|p| p.join().unwrap())
            .collect();
        stream.extend(m.drain(3));
        assert_exactly_once_in_order(&sent, &[stream]);
    });
}

#[test]
fn one_producer_two_consumers_wrapping_exactly_once_in_order() {
    loom::model(|| {
        let m = Model::new(2);
        let consumers: Vec<_> = [OWNER_A, OWNER_B]
            .into_iter()
            .map(|owner| {
                let m = m.clone();
                thread::spawn(move || {
                    let mut got = vec![];
                    for _ in 0..2 {
                        if let Ok(v) = m.try_recv(owner) {
                            got.push(v);
                        }
                    }
                    got
                })
            })
            .collect();
        // Three messages through two slots: the third wraps when a slot has been freed.
        let mut sent = vec![];
        for seq in 0..3 {
            if m.try_send(3, msg(1, seq)).is_ok() {
                sent.push(msg(1, seq));
            }
        }
        let mut streams: Vec<Vec<u32>> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
        streams.push(m.drain(3));
        assert_exactly_once_in_order(&sent, &streams);
    });
}

#[test]
fn batch_claims_race_with_single_claims() {
    loom::model(|| {
        let m = Model::new(4);
        let batcher = {
            let m = m.clone();
            thread::spawn(move || {
                let values = [msg(1, 0), msg(1, 1), msg(1, 2)];
                match m.try_send_batch(OWNER_A, &values) {
                    Ok(n) => values[..n].to_vec(),
                    Err(_) => vec![],
                }
            })
        };
        let mut sent = vec![];
        if m.try_send(OWNER_B, msg(2, 0)).is_ok() {
            sent.push(msg(2, 0));
        }
        let got = m.try_recv(3).into_iter().collect::<Vec<_>>();
        sent.extend(batcher.join().unwrap());
        let mut stream = got;
        stream.extend(m.drain(3));
        assert_exactly_once_in_order(&sent, &[stream]);
    });
}

#[test]
fn close_races_with_send_and_no_message_appears_after_closed() {
    loom::model(|| {
        let m = Model::new(2);
        let sender = {
            let m = m.clone();
            thread::spawn(move || m.try_send(OWNER_A, msg(1, 0)).is_ok())
        };
        let closer = {
            let m = m.clone();
            thread::spawn(move || assert!(m.ring().close()))
        };
        // A receiver that sees Closed must never find a message later.
        let first = m.try_recv(3);
        let sent = sender.join().unwrap();
        closer.join().unwrap();
        let rest = m.try_recv(3);
        match (first, rest) {
            (Ok(v), Err(ClaimError::Closed)) => assert!(sent && v == msg(1, 0)),
            (Err(ClaimError::WouldBlock), Ok(v)) => assert!(sent && v == msg(1, 0)),
            (Err(ClaimError::WouldBlock), Err(ClaimError::Closed)) => assert!(!sent),
            (Err(ClaimError::Closed), Err(ClaimError::Closed)) => assert!(!sent),
            other => panic!("unexpected {other:?} (sent: {sent})"),
        }
        assert!(matches!(
            m.ring().claim_send(OWNER_B, 1),
            Err(ClaimError::Closed)
        ));
    });
}

#[test]
fn sleeping_receiver_is_woken_by_send() {
    loom::model(|| {
        let m = Model::new(2);
        let receiver = {
            let m = m.clone();
            thread::spawn(move || {
                wait_for(
                    &Waiter::on(&m.recv_wait),
                    Deadline::Never,
                    || {},
                    || {},
                    || m.try_recv(OWNER_B).ok(),
                )
            })
        };
        m.try_send(OWNER_A, 7).unwrap();
        // A lost wake-up would leave the receiver asleep forever: loom reports a deadlock.
        assert_eq!(receiver.join().unwrap(), Some(7));
        assert_eq!(
            m.recv_wait.load(Ordering::Relaxed) & 0xFFFF,
            0,
            "sleeper count restored"
        );
    });
}

#[test]
fn sleeping_sender_is_woken_by_recv() {
    loom::model(|| {
        let m = Model::new(2);
        m.try_send(OWNER_A, 1).unwrap();
        m.try_send(OWNER_A, 2).unwrap();
        let sender = {
            let m = m.clone();
            thread::spawn(move || {
                wait_for(
                    &Waiter::on(&m.send_wait),
                    Deadline::Never,
                    || {},
                    || {},
                    || m.try_send(OWNER_A, 3).ok(),
                )
            })
        };
        assert_eq!(m.try_recv(OWNER_B).unwrap(), 1);
        assert_eq!(sender.join().unwrap(), Some(()));
        assert_eq!(m.drain(OWNER_B), [2, 3]);
    });
}

#[test]
fn close_wakes_a_sleeping_receiver() {
    loom::model(|| {
        let m = Model::new(2);
        let receiver = {
            let m = m.clone();
            thread::spawn(move || {
                wait_for(
                    &Waiter::on(&m.recv_wait),
                    Deadline::Never,
                    || {},
                    || {},
                    || match m.try_recv(OWNER_B) {
                        Err(ClaimError::WouldBlock) => None,
                        other => Some(other),
                    },
                )
            })
        };
        m.ring().close();
        wake_all(&m.recv_wait);
        assert_eq!(receiver.join().unwrap(), Some(Err(ClaimError::Closed)));
    });
}

/// Set when some interleaving of `one_message_handoff_orders_the_payload` received the message
/// while the producer was running: proof that the model explores the race it is about.
static HANDOFF_SEEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[test]
fn one_message_handoff_orders_the_payload() {
    loom::model(|| {
        let m = Model::new(2);
        let producer = {
            let m = m.clone();
            thread::spawn(move || m.try_send(OWNER_A, 42).unwrap())
        };
        if let Ok(v) = m.try_recv(OWNER_B) {
            assert_eq!(v, 42);
            HANDOFF_SEEN.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        producer.join().unwrap();
    });
    assert!(HANDOFF_SEEN.load(std::sync::atomic::Ordering::SeqCst));
}

// Crash recovery. A participant that "dies" is a thread that claims and then stops for good,
// setting its `dead` flag as its last act (the kernel dropping its lock). A survivor that finds
// the queue stuck checks the flag (the oracle) and resolves the dead owner's claims with the
// ring's recovery operations, as `src/recovery.rs` does: `WRITING` becomes a tombstone,
// `READING` is redelivered in place when the tail has come round to it, or copied to the tail.

const DEAD: u32 = 9;

/// Set when some interleaving redelivered in place / by copy: proof both paths are explored.
static IN_PLACE_SEEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static COPY_SEEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Model {
    /// One recovery pass over every slot for the claims of owner `DEAD`. Returns how many
    /// claims it resolved.
    fn resolve_dead(&self, me: u32) -> u32 {
        let ring = self.ring();
        let mut resolved = 0;
        for index in 0..self.states.len() as u64 {
            let Some(state) = ring.state_at(index) else {
                continue;
            };
            if state.owner != DEAD {
                continue;
            }
            match state.phase {
                Phase::Writing => {
                    if ring.abandon_send(state).is_some() {
                        resolved += 1;
                        wake_if_sleeping(&self.recv_wait);
                    }
                }
                Phase::Reading => {
                    if let Some(pos) = ring.reclaim_in_place(state, me) {
                        ring.publish(pos, me);
                        IN_PLACE_SEEN.store(true, std::sync::atomic::Ordering::SeqCst);
                        resolved += 1;
                    } else if let Some(to) = ring.claim_for_redelivery(me) {
                        match ring.take_over(state, me) {
                            Some(from) => {
                                let v = self.payload[self.index(from)].with(|p| unsafe { *p });
                                self.payload[self.index(to)].with_mut(|p| unsafe { *p = v });
                                ring.publish(to, me);
                                ring.release(from);
                                COPY_SEEN.store(true, std::sync::atomic::Ordering::SeqCst);
                                resolved += 1;
                            }
                            None => ring.cancel(to, me),
                        }
                    }
                    wake_if_sleeping(&self.recv_wait);
                    wake_if_sleeping(&self.send_wait);
                }
                _ => {}
            }
        }
        resolved
    }

    /// Receives, resolving the dead's claims when stuck, within `tries` attempts.
    fn recv_recovering(&self, me: u32, dead: &AtomicU32, tries: usize) -> Option<u32> {
        for _ in 0..tries {
            match self.try_recv(me) {
                Ok(v) => return Some(v),
                Err(_) if dead.load(Ordering::Acquire) == 1 => {
                    self.resolve_dead(me);
                }
                Err(_) => {}
            }
        }
        None
    }
}

#[test]
fn dead_producer_claim_is_skipped_and_everything_else_arrives_once() {
    loom::model(|| {
        let m = Model::new(2);
        let dead = Arc::new(AtomicU32::new(0));
        let dying = {
            let (m, dead) = (m.clone(), dead.clone());
            thread::spawn(move || {
                // Claim a slot, write nothing, die.
                let claimed = m.ring().claim_send(DEAD, 1).is_ok();
                dead.store(1, Ordering::Release);
                claimed
            })
        };
        let producer = {
            let m = m.clone();
            thread::spawn(move || m.try_send(OWNER_A, msg(1, 0)).is_ok())
        };
        let first = m.recv_recovering(OWNER_B, &dead, 2);
        let claimed = dying.join().unwrap();
        let sent = producer.join().unwrap();
        // After the death, one resolution pass, then drain.
        m.resolve_dead(OWNER_B);
        let mut got: Vec<u32> = first.into_iter().collect();
        got.extend(m.drain(OWNER_B));
        assert_eq!(
            got,
            if sent { vec![msg(1, 0)] } else { vec![] },
            "claimed: {claimed}"
        );
        // The ring is not wedged: a full lap of sends and receives goes through.
        for seq in 1..3 {
            m.try_send(OWNER_A, msg(1, seq)).unwrap();
        }
        assert_eq!(m.drain(OWNER_B), [msg(1, 1), msg(1, 2)]);
    });
}

#[test]
fn dead_consumer_message_is_redelivered_exactly_once() {
    loom::model(|| {
        let m = Model::new(2);
        m.try_send(OWNER_A, msg(1, 0)).unwrap();
        m.try_send(OWNER_A, msg(1, 1)).unwrap();
        let dead = Arc::new(AtomicU32::new(0));
        let dying = {
            let (m, dead) = (m.clone(), dead.clone());
            thread::spawn(move || {
                // Claim a message, never release it, die.
                let claimed = m.ring().claim_recv(DEAD, 1, |_| true).is_ok();
                dead.store(1, Ordering::Release);
                claimed
            })
        };
        let survivor = {
            let (m, dead) = (m.clone(), dead.clone());
            thread::spawn(move || {
                let mut got = vec![];
                for _ in 0..2 {
                    if let Some(v) = m.recv_recovering(3, &dead, 2) {
                        got.push(v);
                    }
                }
                got
            })
        };
        // A producer comes round: with the queue full of the dead claim it may find the tail
        // on the very slot, where a survivor redelivers in place.
        let third = m.try_send(OWNER_A, msg(1, 2)).is_ok();
        let claimed = dying.join().unwrap();
        let mut got = survivor.join().unwrap();
        m.resolve_dead(OWNER_B);
        got.extend(m.drain(OWNER_B));
        got.sort_unstable();
        let mut expected = vec![msg(1, 0), msg(1, 1)];
        if third {
            expected.push(msg(1, 2));
        }
        assert_eq!(got, expected, "dead consumer claimed: {claimed}");
    });
    assert!(IN_PLACE_SEEN.load(std::sync::atomic::Ordering::SeqCst));
    assert!(COPY_SEEN.load(std::sync::atomic::Ordering::SeqCst));
}
