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
    begin_hold, empty_state, expire_lapsed, resolve_dead, wait_for, wake_all, wake_if_sleeping,
    Announcement, ClaimError, ClaimStore, Claimer, Deadline, Hold, Resolution, Ring, Side,
    SlotStates, Waiter, RUN, STOP_AFTER_ANNOUNCEMENT, STOP_AFTER_CAS,
};
use shmq::model::{AtomicU32, AtomicU64};
use std::sync::atomic::Ordering;

/// A ring of `CAP` slots on the heap, with a `u32` payload and a failed-delivery count per slot,
/// the two wait words, and the crash policy: everything `resolve_claims` needs.
struct Model {
    tail: AtomicU64,
    head: AtomicU64,
    closing: AtomicU64,
    states: Vec<AtomicU64>,
    /// Each participant token's announcement record (tokens are small numbers here).
    lanes: Vec<Announcement>,
    /// Per token, 1 once that participant is dead: the oracle standing in for the kernel's
    /// lock, which loom cannot model. A dying thread sets it as its last act.
    dead: Vec<AtomicU32>,
    payload: Vec<UnsafeCell<u32>>,
    /// Per slot, as the mapping's `deliveries` word: deliveries that ended in a death.
    failed: Vec<AtomicU32>,
    recv_wait: AtomicU32,
    send_wait: AtomicU32,
    /// The crash policy (`OnConsumerDeath::Drop`, and the delivery limit).
    drops: bool,
    max_deliveries: u32,
    /// How many claims `resolve_claims` resolved, by kind (indexed by `Resolution as usize`).
    /// Plain atomics, outside the model: they synchronise nothing and are read after the
    /// threads are joined.
    resolved: [std::sync::atomic::AtomicU32; 6],
    /// Per slot, the lease word of an in-place hold (see `src/lease.rs`), used when `leases`.
    lease_words: Vec<AtomicU64>,
    /// Whether holds have leases (a visibility timeout).
    leases: bool,
}

struct HeapSlots<'a>(&'a [AtomicU64]);

impl SlotStates for HeapSlots<'_> {
    fn state(&self, pos: u64) -> &AtomicU64 {
        &self.0[(pos % self.0.len() as u64) as usize]
    }
}

/// Participant tokens used by the models are below this.
const TOKENS: usize = 5;

const OWNER_A: u32 = 1;
const OWNER_B: u32 = 2;

impl Model {
    fn new(cap: u64) -> Arc<Self> {
        Model::with_policy(cap, false, 0)
    }

    fn with_policy(cap: u64, drops: bool, max_deliveries: u32) -> Arc<Self> {
        Arc::new(Model {
            tail: AtomicU64::new(0),
            head: AtomicU64::new(0),
            closing: AtomicU64::new(0),
            states: (0..cap).map(|i| AtomicU64::new(empty_state(i))).collect(),
            lanes: (0..TOKENS).map(|_| Announcement::new()).collect(),
            dead: (0..TOKENS).map(|_| AtomicU32::new(0)).collect(),
            payload: (0..cap).map(|_| UnsafeCell::new(0)).collect(),
            failed: (0..cap).map(|_| AtomicU32::new(0)).collect(),
            recv_wait: AtomicU32::new(0),
            send_wait: AtomicU32::new(0),
            drops,
            max_deliveries,
            resolved: Default::default(),
            lease_words: (0..cap).map(|_| AtomicU64::new(0)).collect(),
            leases: false,
        })
    }

    /// A ring of `cap` slots whose in-place holds have leases.
    fn with_leases(cap: u64) -> Arc<Self> {
        let mut m = Model::with_policy(cap, false, 0);
        Arc::get_mut(&mut m).unwrap().leases = true;
        m
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

    fn claimer(&self, token: u32) -> Claimer<'_> {
        Claimer {
            token,
            announcement: &self.lanes[token as usize],
        }
    }

    fn index(&self, pos: u64) -> usize {
        (pos % self.states.len() as u64) as usize
    }

    /// One attempt to send `value`: claim, write the payload, publish, wake.
    fn try_send(&self, owner: u32, value: u32) -> Result<(), ClaimError> {
        let ring = self.ring();
        let pos = ring.claim_send(self.claimer(owner), 1)?.first;
        // SAFETY: we own the claimed slot (only its claimer writes it until it publishes);
        // loom checks the access.
        self.payload[self.index(pos)].with_mut(|p| unsafe { *p = value });
        // A new message: no delivery of it has failed (as `Queue::write`).
        self.failed[self.index(pos)].store(0, Ordering::Relaxed);
        ring.publish(pos);
        wake_if_sleeping(&self.recv_wait);
        Ok(())
    }

    /// One attempt to receive: claim, read the payload, release, wake. The claim is made as
    /// `Queue::try_recv` makes it: a first look (which settles an empty queue), the common
    /// claim alone, and if that did not apply, the whole claim from a fresh look.
    fn try_recv(&self, owner: u32) -> Result<u32, ClaimError> {
        let ring = self.ring();
        let common = match ring.look_recv() {
            Ok(seen) => ring.claim_recv_one(seen, self.claimer(owner), |_| true),
            Err(ClaimError::WouldBlock) => return Err(ClaimError::WouldBlock),
            Err(_) => None,
        };
        let pos = match common {
            Some(pos) => pos,
            None => ring.claim_recv(self.claimer(owner), 1, |_| true)?.first,
        };
        // SAFETY: we own the claimed slot until `release`; loom checks the access.
        let value = self.payload[self.index(pos)].with(|p| unsafe { *p });
        ring.release(pos);
        wake_if_sleeping(&self.send_wait);
        Ok(value)
    }

    /// Sends a batch of values with one claim; returns how many were sent.
    fn try_send_batch(&self, owner: u32, values: &[u32]) -> Result<usize, ClaimError> {
        let ring = self.ring();
        let claim = ring.claim_send(self.claimer(owner), values.len() as u64)?;
        for (pos, v) in claim.positions().zip(values) {
            // SAFETY: we own every claimed slot of the batch; loom checks the access.
            self.payload[self.index(pos)].with_mut(|p| unsafe { *p = *v });
            self.failed[self.index(pos)].store(0, Ordering::Relaxed);
            ring.publish(pos);
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
            (Err(ClaimError::WouldBlock | ClaimError::Busy), Ok(v)) => {
                assert!(sent && v == msg(1, 0))
            }
            (Err(ClaimError::WouldBlock | ClaimError::Busy), Err(ClaimError::Closed)) => {
                assert!(!sent)
            }
            (Err(ClaimError::Closed), Err(ClaimError::Closed)) => assert!(!sent),
            other => panic!("unexpected {other:?} (sent: {sent})"),
        }
        assert!(matches!(
            m.ring().claim_send(m.claimer(OWNER_B), 1),
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
                        Err(ClaimError::WouldBlock | ClaimError::Busy) => None,
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

/// What `one_message_handoff_orders_the_payload` saw, each recorded only by an execution in
/// which it happened: the receive claimed the message (its claim read the publish, and loom
/// checked its payload read against the producer's write), or found nothing (it looked before
/// the publish). Both must occur, or the model never put the receive on both sides of the
/// publish and proves nothing about the hand-off.
///
/// (It cannot claim more: no execution receives the message while the producer's `try_send` is
/// still running, since nothing the producer does after its publish depends on the receiver,
/// and loom's reduction explores only one order of independent steps. An earlier version set
/// a flag on every receive and called it that.)
static HANDOFF_RECEIVED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static HANDOFF_MISSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[test]
fn one_message_handoff_orders_the_payload() {
    loom::model(|| {
        let m = Model::new(2);
        let producer = {
            let m = m.clone();
            thread::spawn(move || m.try_send(OWNER_A, 42).unwrap())
        };
        match m.try_recv(OWNER_B) {
            Ok(v) => {
                assert_eq!(v, 42);
                HANDOFF_RECEIVED.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            Err(ClaimError::WouldBlock | ClaimError::Busy) => {
                HANDOFF_MISSED.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            Err(e) => panic!("{e:?}"),
        }
        producer.join().unwrap();
    });
    assert!(HANDOFF_RECEIVED.load(std::sync::atomic::Ordering::SeqCst));
    assert!(HANDOFF_MISSED.load(std::sync::atomic::Ordering::SeqCst));
}

// Crash recovery. A participant that "dies" is a thread that stops for good at some step of a
// claim (after its announcement, after its cursor CAS, after its stamp), setting its `dead`
// flag as its last act (the kernel dropping its lock). A survivor that finds the queue stuck
// runs `resolve_dead`, the production code of `src/recovery/claims.rs`, which asks the flags
// who is dead and reads the announcements: a claimed, unpublished position becomes a
// tombstone; an unreleased message is redelivered in place when the tail has come round to it,
// or copied to the tail, or dropped by the policy. A live claimer is never repaired over.

const DEAD: u32 = 4;

/// The heap model as the store `resolve_claims` works in.
impl ClaimStore for Model {
    fn ring(&self) -> Ring<'_, impl SlotStates + '_> {
        Model::ring(self)
    }
    fn drops_on_consumer_death(&self) -> bool {
        self.drops
    }
    fn max_deliveries(&self) -> u32 {
        self.max_deliveries
    }
    fn failed_deliveries(&self, pos: u64) -> u32 {
        self.failed[self.index(pos)].load(Ordering::Relaxed)
    }
    fn count_failed_delivery(&self, pos: u64) {
        let failed = &self.failed[self.index(pos)];
        failed.store(failed.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
    fn copy_message(&self, from: u64, to: u64) {
        // SAFETY: recovery owns both slots (the dead claimer's and its own claim at the tail),
        // which are distinct; loom checks the accesses.
        let v = self.payload[self.index(from)].with(|p| unsafe { *p });
        self.payload[self.index(to)].with_mut(|p| unsafe { *p = v });
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
        self.resolved[what as usize].fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    fn is_dead(&self, token: u32) -> bool {
        self.dead[token as usize].load(Ordering::Acquire) == 1
    }
    fn live_announces(&self, pos: u64, side: Side) -> bool {
        (0..TOKENS).any(|t| !self.is_dead(t as u32) && self.lanes[t].covers(pos, side))
    }
    fn leases(&self) -> bool {
        self.leases
    }
    fn lease(&self, pos: u64) -> &AtomicU64 {
        &self.lease_words[self.index(pos)]
    }
}

/// Set when some interleaving redelivered in place / by copy: proof both paths are explored.
static IN_PLACE_SEEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static COPY_SEEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Model {
    /// How many claims were resolved as `what`.
    fn resolved(&self, what: Resolution) -> u32 {
        self.resolved[what as usize].load(std::sync::atomic::Ordering::SeqCst)
    }

    /// One attempt to receive: the value and its delivery number (1 + failed deliveries).
    fn try_recv_counted(&self, owner: u32) -> Result<(u32, u32), ClaimError> {
        let ring = self.ring();
        let claim = ring.claim_recv(self.claimer(owner), 1, |_| true)?;
        // SAFETY: we own the claimed slot until `release`; loom checks the access.
        let value = self.payload[self.index(claim.first)].with(|p| unsafe { *p });
        let deliveries = self.failed[self.index(claim.first)].load(Ordering::Relaxed) + 1;
        ring.release(claim.first);
        wake_if_sleeping(&self.send_wait);
        Ok((value, deliveries))
    }

    fn drain_counted(&self, owner: u32) -> Vec<(u32, u32)> {
        let mut got = vec![];
        while let Ok(v) = self.try_recv_counted(owner) {
            got.push(v);
        }
        got
    }

    /// Receives, resolving the dead's claims when stuck, within `tries` attempts: the value and
    /// its delivery number.
    fn recv_recovering(&self, me: u32, tries: usize) -> Option<(u32, u32)> {
        for _ in 0..tries {
            match self.try_recv_counted(me) {
                Ok(v) => return Some(v),
                Err(_) if self.is_dead(DEAD) => {
                    resolve_dead(self, self.claimer(me));
                }
                Err(_) => {}
            }
        }
        None
    }

    /// The dying thread's last act.
    fn die(&self, token: u32) {
        self.dead[token as usize].store(1, Ordering::Release);
    }

    /// The life of the participant `DEAD`: one claim of one position on `side`, which stops for
    /// good after step `STOP` (`RUN`: the whole claim, so the slot it won is stamped and then
    /// held, never written nor released), then death. Whether the claim went through.
    fn claim_then_die<const STOP: u8>(&self, side: Side) -> bool {
        let r = self.ring();
        let me = self.claimer(DEAD);
        let claimed = match (side, STOP) {
            (Side::Send, RUN) => r.claim_send(me, 1).is_ok(),
            (Side::Send, _) => r.claim_send_stopping::<STOP>(me, 1).is_ok(),
            (Side::Recv, RUN) => r.claim_recv(me, 1, |_| true).is_ok(),
            (Side::Recv, _) => r.claim_recv_stopping::<STOP>(me, 1).is_ok(),
        };
        self.die(DEAD);
        claimed
    }
}

/// Starts the participant `DEAD` of `m` on its [`claim_then_die`](Model::claim_then_die).
fn spawn_dying<const STOP: u8>(m: &Arc<Model>, side: Side) -> thread::JoinHandle<bool> {
    let m = m.clone();
    thread::spawn(move || m.claim_then_die::<STOP>(side))
}

/// A producer claims a slot and dies (the whole claim: the slot is stamped, never written).
/// The same model as `a_producer_dying_after_its_stamp_is_tombstoned_and_a_live_one_never_is`,
/// under the name the README's table of models gives it.
#[test]
fn dead_producer_claim_is_skipped_and_everything_else_arrives_once() {
    producer_dies_at::<RUN>();
}

#[test]
fn dead_consumer_message_is_redelivered_exactly_once() {
    loom::model(|| {
        let m = Model::new(2);
        m.try_send(OWNER_A, msg(1, 0)).unwrap();
        m.try_send(OWNER_A, msg(1, 1)).unwrap();
        let dying = spawn_dying::<RUN>(&m, Side::Recv);
        let survivor = {
            let m = m.clone();
            thread::spawn(move || {
                let mut got = vec![];
                for _ in 0..2 {
                    if let Some(v) = m.recv_recovering(3, 2) {
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
        resolve_dead(&*m, m.claimer(OWNER_B));
        got.extend(m.drain_counted(OWNER_B));
        got.sort_unstable();
        let mut expected = vec![msg(1, 0), msg(1, 1)];
        if third {
            expected.push(msg(1, 2));
        }
        let values: Vec<u32> = got.iter().map(|(v, _)| *v).collect();
        assert_eq!(values, expected, "dead consumer claimed: {claimed}");
        // The message the dead consumer held arrives on its second delivery, by either path.
        let second_deliveries = got.iter().filter(|(_, d)| *d == 2).count();
        assert_eq!(second_deliveries, usize::from(claimed), "{got:?}");
        assert!(got.iter().all(|(_, d)| *d <= 2), "{got:?}");
        let redelivered =
            m.resolved(Resolution::RedeliveredInPlace) + m.resolved(Resolution::RedeliveredByCopy);
        assert_eq!(redelivered, u32::from(claimed));
        if m.resolved(Resolution::RedeliveredInPlace) > 0 {
            IN_PLACE_SEEN.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        if m.resolved(Resolution::RedeliveredByCopy) > 0 {
            COPY_SEEN.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    });
    assert!(IN_PLACE_SEEN.load(std::sync::atomic::Ordering::SeqCst));
    assert!(COPY_SEEN.load(std::sync::atomic::Ordering::SeqCst));
}

/// Two survivors resolve the same dead consumer's claim at once: exactly one of them resolves
/// it, as the policy says, and the queue holds exactly what it should. `cap` 2 with the queue
/// full puts the tail on the dead claim's slot (redelivery in place); `cap` 4 leaves room at
/// the tail (redelivery by copy, where the loser hands its claim at the tail back as a
/// tombstone).
fn two_survivors_resolve_one_claim(cap: u64, drops: bool, max_deliveries: u32, expect: Resolution) {
    loom::model(move || {
        let m = Model::with_policy(cap, drops, max_deliveries);
        m.try_send(OWNER_A, msg(1, 0)).unwrap();
        m.try_send(OWNER_A, msg(1, 1)).unwrap();
        // The dead consumer holds the first message.
        assert!(m.claim_then_die::<RUN>(Side::Recv));
        let survivors: Vec<_> = [OWNER_A, OWNER_B]
            .into_iter()
            .map(|me| {
                let m = m.clone();
                thread::spawn(move || resolve_dead(&*m, m.claimer(me)))
            })
            .collect();
        let outcomes: Vec<_> = survivors.into_iter().map(|s| s.join().unwrap()).collect();
        // (The loser may report the claim unresolved, having found no room for it: the entry
        // then stays marked until a later pass, which finds nothing left.)
        let again = resolve_dead(&*m, m.claimer(3));
        assert!(again.all_resolved && !again.changed, "{again:?}");
        assert_eq!(
            outcomes.iter().filter(|o| o.changed).count(),
            1,
            "exactly one survivor resolves it: {outcomes:?}"
        );
        assert_eq!(m.resolved(expect), 1);
        let total: u32 = (0..6)
            .map(|i| m.resolved[i].load(std::sync::atomic::Ordering::SeqCst))
            .sum();
        assert_eq!(total, 1, "one resolution in all");
        let got = m.drain_counted(3);
        let expected = match expect {
            Resolution::RedeliveredInPlace | Resolution::RedeliveredByCopy => {
                vec![(msg(1, 1), 1), (msg(1, 0), 2)]
            }
            _ => vec![(msg(1, 1), 1)],
        };
        assert_eq!(got, expected);
        // Nothing is left held: a full lap of sends and receives goes through.
        for seq in 2..2 + cap as u32 {
            m.try_send(OWNER_A, msg(1, seq)).unwrap();
        }
        assert_eq!(m.drain_counted(3).len(), cap as usize);
    });
}

#[test]
fn two_survivors_redeliver_in_place_once() {
    two_survivors_resolve_one_claim(2, false, 0, Resolution::RedeliveredInPlace);
}

#[test]
fn two_survivors_redeliver_by_copy_once() {
    two_survivors_resolve_one_claim(4, false, 0, Resolution::RedeliveredByCopy);
}

#[test]
fn two_survivors_drop_by_policy_once() {
    two_survivors_resolve_one_claim(2, true, 0, Resolution::AbandonedReceive);
}

#[test]
fn two_survivors_dead_letter_at_the_limit_once() {
    two_survivors_resolve_one_claim(4, false, 1, Resolution::DeadLettered);
}

/// A producer dies at step `STOP` of its claim (after its announcement, after its cursor CAS,
/// or, with `RUN`, after its stamp) while a live producer sends and a survivor receives,
/// resolving what the dead left: the dead claim is tombstoned once if it went through, the live
/// producer's message arrives exactly once (never tombstoned, though it may be in its claim's
/// window when the survivor looks), and the ring is not wedged.
fn producer_dies_at<const STOP: u8>() {
    loom::model(|| {
        let m = Model::new(2);
        let dying = spawn_dying::<STOP>(&m, Side::Send);
        let producer = {
            let m = m.clone();
            thread::spawn(move || m.try_send(OWNER_A, msg(1, 0)).is_ok())
        };
        let first = m.recv_recovering(OWNER_B, 2);
        let claimed = dying.join().unwrap();
        let sent = producer.join().unwrap();
        // After the death, one resolution pass, then drain.
        resolve_dead(&*m, m.claimer(OWNER_B));
        assert_eq!(
            m.resolved(Resolution::AbandonedSend),
            u32::from(claimed),
            "the dead claim is tombstoned once"
        );
        let mut got: Vec<u32> = first.into_iter().map(|(v, _)| v).collect();
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
fn a_producer_dying_after_its_announcement_leaves_nothing_to_repair() {
    producer_dies_at::<STOP_AFTER_ANNOUNCEMENT>();
}

#[test]
fn a_producer_dying_between_its_cas_and_its_stamp_is_found_by_announcement() {
    producer_dies_at::<STOP_AFTER_CAS>();
}

#[test]
fn a_producer_dying_after_its_stamp_is_tombstoned_and_a_live_one_never_is() {
    producer_dies_at::<RUN>();
}

/// A consumer dies at step `STOP` of its claim (as `producer_dies_at`) while a live consumer
/// (the survivor) receives: every message arrives exactly once, the one the dead had claimed
/// with its second delivery.
fn consumer_dies_at<const STOP: u8>() {
    loom::model(|| {
        let m = Model::new(2);
        m.try_send(OWNER_A, msg(1, 0)).unwrap();
        let dying = spawn_dying::<STOP>(&m, Side::Recv);
        let got = m.recv_recovering(OWNER_B, 2);
        let claimed = dying.join().unwrap();
        resolve_dead(&*m, m.claimer(OWNER_B));
        let mut all: Vec<(u32, u32)> = got.into_iter().collect();
        all.extend(m.drain_counted(OWNER_B));
        assert_eq!(
            all,
            [(msg(1, 0), 1 + u32::from(claimed))],
            "claimed: {claimed}"
        );
    });
}

#[test]
fn a_consumer_dying_after_its_announcement_leaves_the_message_in_place() {
    consumer_dies_at::<STOP_AFTER_ANNOUNCEMENT>();
}

#[test]
fn a_consumer_dying_between_its_cas_and_its_stamp_has_its_message_redelivered_once() {
    consumer_dies_at::<STOP_AFTER_CAS>();
}

#[test]
fn a_consumer_dying_after_its_stamp_has_its_message_redelivered_once() {
    consumer_dies_at::<RUN>();
}

/// Nobody is dead, but a survivor runs recovery while a producer and a consumer are in their
/// claims' windows (a stale view, a sweep started for another reason): it must change
/// nothing, and the message arrives exactly once, on its first delivery.
#[test]
fn recovery_never_repairs_a_live_claim() {
    loom::model(|| {
        let m = Model::new(2);
        let producer = {
            let m = m.clone();
            thread::spawn(move || m.try_send(OWNER_A, msg(1, 0)).is_ok())
        };
        let consumer = {
            let m = m.clone();
            thread::spawn(move || m.try_recv_counted(OWNER_B).ok())
        };
        let outcome = resolve_dead(&*m, m.claimer(3));
        assert!(!outcome.changed, "{outcome:?}");
        let sent = producer.join().unwrap();
        let mut got: Vec<(u32, u32)> = consumer.join().unwrap().into_iter().collect();
        got.extend(m.drain_counted(3));
        assert!(sent);
        assert_eq!(got, [(msg(1, 0), 1)]);
    });
}

// The visibility timeout (`src/lease.rs`): for each in-place hold, exactly one of "the holder's
// acknowledgement succeeds" and "the message is handed out again" happens, and the holder's
// bytes are never written while it holds them. Deadlines are in the models' own milliseconds:
// a hold begun at 0 with a timeout of 10 has lapsed for a survivor scanning at 100.

/// A message held in place by `OWNER_A` in a ring of `cap` slots with leases, its deadline 10.
fn held_message(cap: u64) -> (Arc<Model>, u64, Hold) {
    let m = Model::with_leases(cap);
    m.try_send(OWNER_B, msg(1, 0)).unwrap();
    let r = m.ring();
    let claim = r.claim_recv(m.claimer(OWNER_A), 1, |_| true).unwrap();
    let hold = begin_hold(
        &r,
        &m.lease_words[m.index(claim.first)],
        claim.first,
        OWNER_A,
        0,
        10,
    );
    (m.clone(), claim.first, hold)
}

/// The holder reads its bytes (loom checks that nobody writes them meanwhile), then
/// acknowledges; returns whether the acknowledgement won.
fn hold_then_ack(m: &Model, pos: u64, hold: &Hold) -> bool {
    // SAFETY: the held slot's bytes are the holder's to read until it lets go; loom checks it.
    let value = m.payload[m.index(pos)].with(|p| unsafe { *p });
    assert_eq!(value, msg(1, 0));
    let acked = hold.finish(&m.ring(), &m.lease_words[m.index(pos)], pos, OWNER_A);
    wake_if_sleeping(&m.send_wait);
    acked
}

/// After a holder, a survivor scanning at clock 100 and a producer raced on a ring of two slots:
/// runs one more scan (a survivor that found no room gave the hold back for a later scan: this
/// one) and returns how many times the held message was handed out again.
fn handed_out_after_a_last_scan(m: &Model) -> u32 {
    expire_lapsed(m, m.claimer(3), 100);
    m.resolved(Resolution::Expired)
        + m.resolved(Resolution::RedeliveredInPlace)
        + m.resolved(Resolution::RedeliveredByCopy)
}

/// What such a race leaves: the producer's message if it `sent`, the held one on its second
/// delivery unless it was `acked`, each once; and nothing is withheld any more: a full lap of
/// sends and receives goes through.
fn assert_left_and_not_wedged(m: &Model, sent: bool, acked: bool) {
    let mut got = m.drain_counted(3);
    got.sort();
    let mut want = vec![];
    if sent {
        want.push((msg(2, 0), 1));
    }
    if !acked {
        want.push((msg(1, 0), 2));
    }
    want.sort();
    assert_eq!(got, want);
    for seq in 1..3 {
        m.try_send(OWNER_B, msg(2, seq)).unwrap();
    }
    assert_eq!(m.drain_counted(3).len(), 2);
}

/// A late acknowledgement races a survivor that finds the hold lapsed, while a producer sends
/// into a ring of two slots (the survivor's copy and the producer compete for the free one, and
/// then the producer may come round to the held slot): either the ack wins and the message is
/// gone, or the message is handed out again with its delivery count raised and the ack says
/// so; never both, never neither. The holder's bytes are never written while it reads them
/// (loom checks the payload cell), and afterwards its slot is back in the ring.
#[test]
fn a_late_ack_races_expiry_and_exactly_one_wins() {
    static ACKED_SEEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    static EXPIRED_SEEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    loom::model(|| {
        let (m, pos, hold) = held_message(2);
        let holder = {
            let m = m.clone();
            thread::spawn(move || hold_then_ack(&m, pos, &hold))
        };
        let survivor = {
            let m = m.clone();
            thread::spawn(move || expire_lapsed(&*m, m.claimer(3), 100))
        };
        let producer = {
            let m = m.clone();
            thread::spawn(move || m.try_send(OWNER_B, msg(2, 0)).is_ok())
        };
        let acked = holder.join().unwrap();
        survivor.join().unwrap();
        let sent = producer.join().unwrap();
        let handed_out = handed_out_after_a_last_scan(&m);
        assert_eq!(
            handed_out,
            u32::from(!acked),
            "ack {acked}, handed out {handed_out}"
        );
        let seen = if acked { &ACKED_SEEN } else { &EXPIRED_SEEN };
        seen.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_left_and_not_wedged(&m, sent, acked);
    });
    // Both outcomes were explored.
    assert!(ACKED_SEEN.load(std::sync::atomic::Ordering::SeqCst));
    assert!(EXPIRED_SEEN.load(std::sync::atomic::Ordering::SeqCst));
}

/// The holder extends its hold (at clock `extend_at`) while a survivor scans with a clock past
/// the old deadline but before the new one, and a producer sends into the ring of two slots (so
/// that the survivor may find no room and give the hold back, `untake`, after the holder saw it
/// taken): exactly one wins. Either the extension succeeds and then the ack does, and the
/// message is never handed out; or the extension says `Expired`, and then the ack says so too
/// and deletes nothing (even if the hold was given back meanwhile), and the message is handed
/// out again exactly once.
fn an_extension_at_races_expiry(extend_at: u64) {
    // Which outcomes were explored (outside the model: loom resets its own state per run).
    let seen_extended = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen_expired = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (extended_seen, expired_seen) = (seen_extended.clone(), seen_expired.clone());
    loom::model(move || {
        let (m, pos, hold) = held_message(2);
        let holder = {
            let m = m.clone();
            thread::spawn(move || {
                let word = &m.lease_words[m.index(pos)];
                let extended = hold.extend(word, extend_at, 1000).is_some();
                let acked = hold_then_ack(&m, pos, &hold);
                (extended, acked)
            })
        };
        let survivor = {
            let m = m.clone();
            thread::spawn(move || expire_lapsed(&*m, m.claimer(3), 100))
        };
        let producer = {
            let m = m.clone();
            thread::spawn(move || m.try_send(OWNER_B, msg(2, 0)).is_ok())
        };
        let (extended, acked) = holder.join().unwrap();
        survivor.join().unwrap();
        let sent = producer.join().unwrap();
        let handed_out = handed_out_after_a_last_scan(&m);
        assert_eq!(
            extended, acked,
            "an extended hold is acknowledged, an expired one never"
        );
        assert_eq!(
            handed_out,
            u32::from(!acked),
            "extended {extended}, acked {acked}, handed out {handed_out}"
        );
        let seen = if extended {
            &extended_seen
        } else {
            &expired_seen
        };
        seen.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_left_and_not_wedged(&m, sent, acked);
    });
    assert!(seen_extended.load(std::sync::atomic::Ordering::SeqCst));
    assert!(seen_expired.load(std::sync::atomic::Ordering::SeqCst));
}

/// An extension in time (clock 5, deadline 10) races the scan.
#[test]
fn an_extension_races_expiry_and_exactly_one_wins() {
    an_extension_at_races_expiry(5);
}

/// An extension after the deadline (clock 50, deadline 10) races the scan: the hold is the
/// holder's until a survivor takes it, so the extension still wins whenever it comes first.
#[test]
fn a_late_extension_races_expiry_and_an_expired_holder_never_deletes() {
    an_extension_at_races_expiry(50);
}
