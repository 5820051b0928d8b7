// SPDX-License-Identifier: MIT OR Apache-2.0
//! Chaos: 4 producer and 4 consumer processes share a 64-slot queue for `SHMQ_CHAOS_SECS`
//! seconds (default 20, at least 6) while the parent SIGKILLs a random one about every 50 ms and
//! restarts it (same role and id, a new process). Then the parent closes the queue and the
//! consumers drain it. Which child dies when comes from a seed, printed with the results (and
//! shown when the test fails); `SHMQ_CHAOS_SEED=<seed>` replays the same choice of victims.
//!
//! The run alternates one-second phases, so that both ways of giving back a dead consumer's
//! message run:
//! - **full**: producers send flat out and consumers hold each message for [`HOLD_CLAIM`], so
//!   the queue stays full and the tail comes round to a dead consumer's slot: its message is
//!   redelivered *in place*;
//! - **sparse**: producers pause [`SPARSE_SEND_PAUSE`] before each send and consumers hold each
//!   message for [`SPARSE_HOLD`], so the queue is nearly empty while consumers often hold a
//!   message when killed (only consumers are killed in this phase): it is redelivered *by copy*
//!   into the slot at the tail.
//!
//! The children record each redelivery by path (the `test-hooks` events file,
//! `shmq::testing::EVENTS_VAR`), and the run must have used both paths, with their sum equal to
//! the queue's `redelivered` counter.
//!
//! - every message whose send returned `Ok` (producers log it right after) was logged by a
//!   consumer before it released the message, at least once;
//! - a message seen more than once was redelivered after a consumer died holding it, and each
//!   later copy says so with a higher delivery count;
//! - nothing is received that was never sent (a send whose `Ok` went unlogged because its
//!   producer died right after may appear: at most one per producer process, with the next
//!   sequence number);
//! - throughput never stalls for more than a second (longest gap between consecutive receives,
//!   across all consumers, while the run lasts);
//! - both redelivery paths ran (see above).
//!
//! Producers log `(producer, incarnation, seq, time)` and consumers `(producer, incarnation, seq,
//! deliveries, consumer, time)`, one `write(2)` of a fixed-size record each, to append-only files;
//! a restarted producer reads its own log and continues after the last sequence number logged.
//! The incarnation (how many times this producer id was started) tells apart a message whose
//! `Ok` went unlogged from the restarted producer's message with the same sequence number.
//!
//! Children run [`producer`] and [`consumer`] (entry point: the `child` test, see `common`).

mod common;

use common::{Child, Rng, Role};
use shmq::testing::EVENTS_VAR;
use shmq::{Error, Options, Queue};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PRODUCERS: u32 = 4;
const CONSUMERS: u32 = 4;
const CAPACITY: u32 = 64;
const MAX_MESSAGE: u32 = 64;
const DEFAULT_SECS: u64 = 20;
const KILL_EVERY: Duration = Duration::from_millis(50);
const STALL_LIMIT: Duration = Duration::from_secs(1);
/// Bound on the drain after the close (every child must have exited by then).
const DRAIN_BOUND: Duration = Duration::from_secs(30);
/// How long a child's blocking call waits before it looks again (it never needs to: a bound).
const CALL_SLICE: Duration = Duration::from_millis(100);
/// How long a producer holds a slot claimed before publishing it (on its in-place sends), and a
/// consumer a message before releasing it.
const HOLD_CLAIM: Duration = Duration::from_micros(20);
/// Length of each phase (full, then sparse, and so on).
const PHASE: Duration = Duration::from_secs(1);
/// In a sparse phase, each producer's pause before each send: 4 producers send at most about
/// 800 messages a second, well within what even two consumers (the others being restarted)
/// holding each for [`SPARSE_HOLD`] can take, so that the queue stays nearly empty.
const SPARSE_SEND_PAUSE: Duration = Duration::from_millis(5);
/// In a sparse phase, how long a consumer holds each message: long enough that a consumer is
/// often killed holding one.
const SPARSE_HOLD: Duration = Duration::from_millis(1);

/// Both logs' record size: a divisor of the page size, so that a record never straddles a page
/// and one `write(2)` of it is never torn by a SIGKILL.
const RECORD: usize = 32;
/// A message: producer u32, incarnation u32, seq u64, checksum u64.
const MESSAGE: usize = 24;
/// Flag in a consumer record's consumer field: the payload was damaged.
const DAMAGED: u32 = 1 << 31;

/// Not a property: the entry point of the child processes these tests spawn (see `common`).
/// Ignored, so that a test run does not count it; the children run it with `--ignored`.
#[test]
#[ignore = "the entry point of child processes, not a test"]
fn child() {
    common::child_main(|role| match role.name() {
        "producer" => producer(role),
        "consumer" => consumer(role),
        other => panic!("unknown role {other}"),
    });
}

/// Which phase the run is in: the parent passes the run's start, every child computes it.
struct Schedule {
    start_ns: u64,
}

impl Schedule {
    fn from_role(role: &Role) -> Schedule {
        Schedule {
            start_ns: role.arg("start_ns"),
        }
    }

    fn sparse(&self) -> bool {
        let since = common::monotonic_ns().saturating_sub(self.start_ns);
        (since / PHASE.as_nanos() as u64) % 2 == 1
    }
}

/// A message's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Id {
    producer: u32,
    incarnation: u32,
    seq: u64,
}

fn checksum(id: Id) -> u64 {
    (u64::from(id.producer) << 48 ^ u64::from(id.incarnation) << 32 ^ id.seq)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ 0xA5A5
}

fn encode(id: Id) -> [u8; MESSAGE] {
    let mut m = [0u8; MESSAGE];
    m[0..4].copy_from_slice(&id.producer.to_le_bytes());
    m[4..8].copy_from_slice(&id.incarnation.to_le_bytes());
    m[8..16].copy_from_slice(&id.seq.to_le_bytes());
    m[16..24].copy_from_slice(&checksum(id).to_le_bytes());
    m
}

/// The message's identity, or `None` if it is damaged.
fn decode(m: &[u8]) -> Option<Id> {
    if m.len() != MESSAGE {
        return None;
    }
    let id = Id {
        producer: u32::from_le_bytes(m[0..4].try_into().ok()?),
        incarnation: u32::from_le_bytes(m[4..8].try_into().ok()?),
        seq: u64::from_le_bytes(m[8..16].try_into().ok()?),
    };
    (u64::from_le_bytes(m[16..24].try_into().ok()?) == checksum(id)).then_some(id)
}

fn u32_at(r: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(r[at..at + 4].try_into().unwrap())
}

fn u64_at(r: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(r[at..at + 8].try_into().unwrap())
}

/// Opens an append-only log, dropping a trailing partial record (none is expected; it would
/// misalign every later record).
fn open_log(path: &Path) -> File {
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .expect("open log");
    let len = file.metadata().expect("log metadata").len();
    let whole = len - len % RECORD as u64;
    if whole != len {
        file.set_len(whole).expect("truncate a partial record");
    }
    file
}

/// Appends one record with a single `write(2)`.
fn append(log: &mut File, record: &[u8; RECORD]) {
    let n = log.write(record).expect("write log record");
    assert_eq!(n, RECORD, "short write to the log");
}

/// The bytes of a log (empty if it does not exist); its records are `chunks_exact(RECORD)`.
fn read_log(path: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Ok(mut f) = File::open(path) {
        f.read_to_end(&mut bytes).expect("read log");
    }
    bytes
}

/// Producer `id`, incarnation `incarnation`: sends consecutive sequence numbers, starting after
/// the last one its earlier incarnations logged, until the queue is closed; logs each send that
/// returned `Ok`.
///
/// Every other message is written in place (`reserve_timeout`, then `commit`) with the slot held
/// for [`HOLD_CLAIM`], so that some kills land between a claim and its publication (the other
/// path, `send_timeout`, holds a claim for a few nanoseconds only).
fn producer(role: &Role) {
    let q = Queue::open(role.path("queue")).expect("open the queue");
    let producer: u32 = role.arg("id");
    let incarnation: u32 = role.arg("incarnation");
    let schedule = Schedule::from_role(role);
    let log_path = role.path("log");
    let mut log = open_log(&log_path);
    let mut seq = read_log(&log_path)
        .chunks_exact(RECORD)
        .map(|r| u64_at(r, 8))
        .max()
        .map_or(0, |last| last + 1);
    loop {
        let id = Id {
            producer,
            incarnation,
            seq,
        };
        let msg = encode(id);
        if schedule.sparse() {
            std::thread::sleep(SPARSE_SEND_PAUSE);
        }
        let sent = if seq % 2 == 0 {
            q.send_timeout(&msg, CALL_SLICE)
        } else {
            q.reserve_timeout(CALL_SLICE).and_then(|mut slot| {
                slot[..MESSAGE].copy_from_slice(&msg);
                spin_for(HOLD_CLAIM);
                slot.commit(MESSAGE)
            })
        };
        match sent {
            Ok(()) => {
                let mut record = [0u8; RECORD];
                record[..MESSAGE].copy_from_slice(&msg);
                record[MESSAGE..].copy_from_slice(&common::monotonic_ns().to_le_bytes());
                append(&mut log, &record);
                seq += 1;
            }
            Err(Error::Timeout) => continue,
            Err(Error::Closed) => break,
            Err(e) => panic!("producer {producer}: send: {e}"),
        }
    }
    role.report("done");
}

/// Busy-waits for `d` (a process holding a claim while it works).
fn spin_for(d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// Consumer `id`: receives in place until the queue is closed and drained; logs each message
/// (with its delivery count) before releasing it.
fn consumer(role: &Role) {
    let q = Queue::open(role.path("queue")).expect("open the queue");
    let consumer: u32 = role.arg("id");
    let schedule = Schedule::from_role(role);
    let mut log = open_log(&role.path("log"));
    loop {
        match q.recv_in_place_timeout(CALL_SLICE) {
            Ok(guard) => {
                let mut record = [0u8; RECORD];
                let mut who = consumer;
                match decode(&guard) {
                    Some(id) => {
                        record[0..4].copy_from_slice(&id.producer.to_le_bytes());
                        record[4..8].copy_from_slice(&id.incarnation.to_le_bytes());
                        record[8..16].copy_from_slice(&id.seq.to_le_bytes());
                    }
                    None => who |= DAMAGED,
                }
                record[16..20].copy_from_slice(&guard.deliveries().to_le_bytes());
                record[20..24].copy_from_slice(&who.to_le_bytes());
                record[24..32].copy_from_slice(&common::monotonic_ns().to_le_bytes());
                append(&mut log, &record);
                // "Process" the message for a moment, so that some kills land while a consumer
                // holds one; then release it (only now, once logged).
                spin_for(if schedule.sparse() {
                    SPARSE_HOLD
                } else {
                    HOLD_CLAIM
                });
                drop(guard);
            }
            Err(Error::Timeout) => continue,
            Err(Error::Closed) => break,
            Err(e) => panic!("consumer {consumer}: recv: {e}"),
        }
    }
    role.report("done");
}

/// One child slot: a producer or consumer id, its current process and how often it started.
struct Member {
    role: &'static str,
    id: u32,
    log: PathBuf,
    incarnation: u32,
    process: Option<Child>,
}

impl Member {
    fn start(&mut self, dir: &Path, queue: &Path, start_ns: u64, events: &Path) {
        let queue = queue.display();
        let log = self.log.display();
        let events = events.display().to_string();
        self.process = Some(Child::spawn_with_env(
            dir,
            self.role,
            &[
                ("queue", &queue),
                ("id", &self.id),
                ("incarnation", &self.incarnation),
                ("log", &log),
                ("start_ns", &start_ns),
            ],
            &[(EVENTS_VAR, &events)],
        ));
    }
}

#[test]
fn every_sent_message_is_released_despite_sigkills_every_50ms() {
    let secs: u64 = std::env::var("SHMQ_CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SECS);
    assert!(
        secs >= 6,
        "SHMQ_CHAOS_SECS={secs}: a run needs at least three full and three sparse phases"
    );
    let seed = match std::env::var("SHMQ_CHAOS_SEED") {
        Ok(text) => parse_seed(&text),
        Err(_) => common::monotonic_ns() | 1,
    };
    // Shown if the test fails (the harness prints a failed test's output).
    println!("chaos seed {seed:#x} (replay the victims with SHMQ_CHAOS_SEED={seed:#x})");
    let dir = common::tempdir();
    let events = dir.path().join("events");
    let path = dir.path().join("q");
    let q = Queue::create(&path, Options::new(CAPACITY, MAX_MESSAGE)).expect("create the queue");

    let mut members: Vec<Member> = (0..PRODUCERS)
        .map(|id| ("producer", id))
        .chain((0..CONSUMERS).map(|id| ("consumer", id)))
        .map(|(role, id)| Member {
            role,
            id,
            log: dir.path().join(format!("{role}-{id}.log")),
            incarnation: 0,
            process: None,
        })
        .collect();
    let start_ns = common::monotonic_ns();
    let schedule = Schedule { start_ns };
    for m in &mut members {
        m.start(dir.path(), &path, start_ns, &events);
    }

    let mut rng = Rng(seed);
    let started = Instant::now();
    let (mut producer_kills, mut consumer_kills) = (0u64, 0u64);
    while started.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(KILL_EVERY);
        // Nobody exits on its own before the close: one that did failed.
        for m in &mut members {
            if m.process.as_mut().is_some_and(|p| p.has_exited()) {
                let report = m.process.take().unwrap().wait(Duration::ZERO);
                panic!(
                    "{} {} exited during the run (report {report:?})",
                    m.role, m.id
                );
            }
        }
        // In a sparse phase only consumers die: a producer's death does nothing for the copy
        // path, and the queue stays sparse.
        let pick = if schedule.sparse() {
            (PRODUCERS + (rng.next() % u64::from(CONSUMERS)) as u32) as usize
        } else {
            (rng.next() % members.len() as u64) as usize
        };
        let victim = &mut members[pick];
        victim.process.take().expect("running").kill();
        match victim.role {
            "producer" => producer_kills += 1,
            _ => consumer_kills += 1,
        }
        victim.incarnation += 1;
        victim.start(dir.path(), &path, start_ns, &events);
    }
    let closed_at = common::monotonic_ns();
    let run = started.elapsed();
    assert!(q.close());
    let deadline = Instant::now() + DRAIN_BOUND;
    for m in &mut members {
        let report = m
            .process
            .take()
            .unwrap()
            .wait(deadline.saturating_duration_since(Instant::now()));
        assert_eq!(report, "done", "{} {}", m.role, m.id);
    }
    assert!(
        matches!(
            q.try_recv(&mut [0u8; MAX_MESSAGE as usize]),
            Err(Error::Closed)
        ),
        "the consumers left messages behind"
    );
    // A sweep frees the entries of the dead (their claims were all resolved), and the live ones
    // left the table as they exited: only we are left.
    q.recover();
    let stats = q.stats();
    assert_eq!(
        stats.participants.len(),
        1,
        "participants left behind: {:?}",
        stats.participants
    );

    let mut ledger = Ledger::default();
    for m in members.iter().filter(|m| m.role == "producer") {
        for r in read_log(&m.log).chunks_exact(RECORD) {
            let id = decode(&r[..MESSAGE]).expect("a producer log record is damaged");
            assert_eq!(id.producer, m.id);
            ledger.sent(id);
        }
    }
    // Each consumer's log is in time order (one process at a time appends to it), so the
    // receive times of all consumers are merged from these sorted runs.
    let mut runs: Vec<Vec<u64>> = Vec::new();
    for m in members.iter().filter(|m| m.role == "consumer") {
        let mut times = Vec::new();
        for r in read_log(&m.log).chunks_exact(RECORD) {
            let who = u32_at(r, 20);
            assert_eq!(
                who & DAMAGED,
                0,
                "consumer {} received a damaged message",
                m.id
            );
            let id = Id {
                producer: u32_at(r, 0),
                incarnation: u32_at(r, 4),
                seq: u64_at(r, 8),
            };
            let at_ns = u64_at(r, 24);
            ledger.received(id, u32_at(r, 16), at_ns);
            times.push(at_ns);
        }
        runs.push(times);
    }
    let verdict = ledger.check();
    let event_log = std::fs::read_to_string(&events).unwrap_or_default();
    let count = |event: &str| event_log.lines().filter(|l| *l == event).count() as u64;
    let (in_place, copied) = (count("redelivered-in-place"), count("redelivered-copy"));

    // Throughput never stalls: the longest gap between consecutive receives while the run lasts
    // (from the first receive to the close).
    let (longest_stall, received_during, first_ns) = longest_gap(&runs, closed_at);
    let rate = received_during as f64 / Duration::from_nanos(closed_at - first_ns).as_secs_f64();

    println!(
        "chaos ({secs} s, seed {seed:#x}, run {:.1} s): kills survived {} ({producer_kills} producers, \
         {consumer_kills} consumers); messages sent (Ok logged) {}, sent unlogged {}, received {} \
         ({} seen again); abandoned_sends {}, redelivered {} ({in_place} in place, {copied} by copy), \
         abandoned_receives {}, dead_lettered {}; longest stall {:.1} ms; {:.0} messages/s",
        run.as_secs_f64(),
        producer_kills + consumer_kills,
        verdict.sent,
        verdict.unlogged,
        verdict.receipts,
        verdict.seen_again,
        stats.abandoned_sends,
        stats.redelivered,
        stats.abandoned_receives,
        stats.dead_lettered,
        longest_stall.as_secs_f64() * 1e3,
        rate,
    );
    assert!(
        longest_stall <= STALL_LIMIT,
        "throughput stalled for {longest_stall:?}"
    );
    assert_eq!(
        (stats.abandoned_receives, stats.dead_lettered),
        (0, 0),
        "the default policy redelivers, without a limit"
    );
    assert!(
        verdict.seen_again <= stats.redelivered,
        "{} messages seen again, {} redelivered",
        verdict.seen_again,
        stats.redelivered
    );
    // Each dead process held at most one claim.
    assert!(stats.abandoned_sends <= producer_kills);
    assert!(stats.redelivered <= consumer_kills);
    // Both ways of giving a message back ran, and each redelivery took one of them. A survivor
    // counts a redelivery and then appends its event: one killed between the two (survivors are
    // victims too) loses that one event, so the events may fall short of the counter by at most
    // one per kill, and never exceed it.
    let recorded = in_place + copied;
    assert!(
        recorded <= stats.redelivered
            && stats.redelivered - recorded <= producer_kills + consumer_kills,
        "redeliveries recorded by path ({recorded}) vs the counter ({})",
        stats.redelivered
    );
    assert!(in_place > 0, "no redelivery in place (the full phases)");
    assert!(copied > 0, "no redelivery by copy (the sparse phases)");
}

/// A seed in decimal or `0x` hexadecimal (never 0, which xorshift cannot leave).
fn parse_seed(text: &str) -> u64 {
    let seed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    }
    .unwrap_or_else(|_| panic!("SHMQ_CHAOS_SEED={text}: not a number"));
    assert_ne!(seed, 0, "SHMQ_CHAOS_SEED must not be 0");
    seed
}

/// One receipt of a message: its delivery count and when it was logged.
#[derive(Clone, Copy, Debug, Default)]
struct Receipt {
    deliveries: u32,
    at_ns: u64,
}

/// What happened to one (producer, seq): dense, since sequence numbers are consecutive.
#[derive(Clone, Copy, Default)]
struct Entry {
    /// Incarnation + 1 of the producer process that logged it as sent (0: none did).
    sent: u32,
    /// Incarnation + 1 of the first receipt's message (0: not received).
    received: u32,
    first: Receipt,
}

/// The producers' and consumers' logs, joined. Rare cases (a second receipt, a receipt of an
/// unlogged send) go to `extra`, so that millions of messages need no hash map.
#[derive(Default)]
struct Ledger {
    /// By producer, then sequence number.
    entries: Vec<Vec<Entry>>,
    /// Receipts that did not fit an entry: copies after the first, and receipts whose
    /// incarnation differs from the one the entry holds.
    extra: HashMap<Id, Vec<Receipt>>,
    /// Highest sequence number logged by each (producer, incarnation).
    last_logged: HashMap<(u32, u32), u64>,
    receipts: u64,
}

/// What the ledger counted.
struct Verdict {
    sent: u64,
    receipts: u64,
    /// Messages received more than once (copies after the first).
    seen_again: u64,
    /// Messages received whose send was not logged (their producer died right after).
    unlogged: u64,
}

impl Ledger {
    fn entry(&mut self, producer: u32, seq: u64) -> &mut Entry {
        let p = producer as usize;
        assert!(p < PRODUCERS as usize, "no such producer {producer}");
        if self.entries.len() <= p {
            self.entries.resize_with(p + 1, Vec::new);
        }
        let list = &mut self.entries[p];
        let s = usize::try_from(seq).expect("seq");
        assert!(s < 1 << 32, "implausible sequence number {seq}");
        if list.len() <= s {
            list.resize(s + 1, Entry::default());
        }
        &mut list[s]
    }

    fn sent(&mut self, id: Id) {
        let entry = self.entry(id.producer, id.seq);
        assert_eq!(entry.sent, 0, "{id:?}: sequence number logged twice");
        entry.sent = id.incarnation + 1;
        let last = self
            .last_logged
            .entry((id.producer, id.incarnation))
            .or_default();
        *last = (*last).max(id.seq);
    }

    fn received(&mut self, id: Id, deliveries: u32, at_ns: u64) {
        self.receipts += 1;
        let receipt = Receipt { deliveries, at_ns };
        let entry = self.entry(id.producer, id.seq);
        if entry.received == 0 {
            entry.received = id.incarnation + 1;
            entry.first = receipt;
        } else {
            self.extra.entry(id).or_default().push(receipt);
        }
    }

    /// Every copy of message `id`, in the order they were logged.
    fn copies(&self, id: Id) -> Vec<Receipt> {
        let entry = self.entries[id.producer as usize][id.seq as usize];
        let mut all: Vec<Receipt> = self.extra.get(&id).cloned().unwrap_or_default();
        if entry.received == id.incarnation + 1 {
            all.push(entry.first);
        }
        all.sort_by_key(|r| r.at_ns);
        all
    }

    /// Checks the promises (see the module doc) and counts.
    fn check(&self) -> Verdict {
        let mut sent = 0u64;
        let mut lost = Vec::new();
        // Messages received whose send no producer logged, by (producer, incarnation).
        let mut unlogged: HashMap<(u32, u32), Vec<u64>> = HashMap::new();
        for (producer, list) in (0u32..).zip(&self.entries) {
            for (seq, entry) in (0u64..).zip(list) {
                let extra_of = |incarnation: u32| {
                    self.extra.contains_key(&Id {
                        producer,
                        incarnation,
                        seq,
                    })
                };
                if entry.sent != 0 {
                    sent += 1;
                    if entry.received != entry.sent && !extra_of(entry.sent - 1) {
                        lost.push((producer, entry.sent - 1, seq));
                    }
                }
                if entry.received != 0 && entry.received != entry.sent {
                    unlogged
                        .entry((producer, entry.received - 1))
                        .or_default()
                        .push(seq);
                }
            }
        }
        for id in self.extra.keys() {
            let entry = self.entries[id.producer as usize][id.seq as usize];
            if entry.sent != id.incarnation + 1 && entry.received != id.incarnation + 1 {
                unlogged
                    .entry((id.producer, id.incarnation))
                    .or_default()
                    .push(id.seq);
            }
        }
        assert!(
            lost.is_empty(),
            "{} of {sent} sent messages were never received, first (producer, incarnation, seq): {:?}",
            lost.len(),
            &lost[..lost.len().min(10)]
        );
        // Nothing received that was never sent: an unlogged message is the one a producer
        // process sent right before it died, numbered after the last one logged so far.
        for (&(producer, incarnation), seqs) in &unlogged {
            let expected = self
                .last_logged
                .iter()
                .filter(|(&(p, i), _)| p == producer && i <= incarnation)
                .map(|(_, &last)| last + 1)
                .max()
                .unwrap_or(0);
            assert_eq!(
                seqs.as_slice(),
                [expected],
                "producer {producer} incarnation {incarnation}: received messages it never sent"
            );
        }
        // Copies after the first are redeliveries, and their delivery counts say so.
        let mut seen_again = 0u64;
        for (producer, list) in (0u32..).zip(&self.entries) {
            for (seq, entry) in (0u64..).zip(list) {
                if entry.received != 0 && entry.first.deliveries == 0 {
                    panic!("producer {producer} seq {seq}: delivery count 0");
                }
            }
        }
        for &id in self.extra.keys() {
            let copies = self.copies(id);
            for pair in copies.windows(2) {
                assert!(
                    pair[1].deliveries > pair[0].deliveries,
                    "{id:?} received again without a higher delivery count: {copies:?}"
                );
            }
            seen_again += copies.len() as u64 - 1;
        }
        Verdict {
            sent,
            receipts: self.receipts,
            seen_again,
            unlogged: unlogged.len() as u64,
        }
    }
}

/// The longest gap between consecutive times of the merged sorted `runs` up to `end` (and
/// between the last of them and `end`); also how many times lie before `end`, and the first.
fn longest_gap(runs: &[Vec<u64>], end: u64) -> (Duration, u64, u64) {
    let mut next = vec![0usize; runs.len()];
    let mut previous: Option<u64> = None;
    let (mut longest, mut count, mut first) = (0u64, 0u64, end);
    loop {
        // The earliest unread time of all runs.
        let pick = (0..runs.len())
            .filter(|&r| next[r] < runs[r].len() && runs[r][next[r]] <= end)
            .min_by_key(|&r| runs[r][next[r]]);
        let at = match pick {
            Some(r) => {
                next[r] += 1;
                runs[r][next[r] - 1]
            }
            None => end,
        };
        match previous {
            Some(p) => longest = longest.max(at - p),
            None => first = at,
        }
        previous = Some(at);
        if pick.is_none() {
            break;
        }
        count += 1;
    }
    assert!(count > 0, "nothing was received during the run");
    (Duration::from_nanos(longest), count, first)
}
