// SPDX-License-Identifier: MIT OR Apache-2.0
//! The mapping is untrusted: whatever another process writes into a live queue (its header
//! identity, cursors, wait words, counters, participant table, and its slots' state words,
//! lengths and delivery counts), every call returns `Ok` or one of the errors that call can
//! give, without a panic, an out-of-bounds read or a hang; and the bytes that mean something
//! precise give precisely `Corrupt`.
//!
//! The writes go through plain file I/O on the queue file (as a foreign process's would), while
//! the queue is mapped. The property starts every case from the bytes of a queue on which real
//! participants died holding claims (a consumer holding a message, a producer holding a slot,
//! SIGKILLed at the test pause points), so that recovery, which `recover()`, the blocking calls
//! and the stuck-claim check all run, meets the hostile bytes too. The cases that could hang run
//! in a child process with a time bound.

mod common;

use common::{Child, Role};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use shmq::{Error, Geometry, Options, Queue};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

const CAPACITY: u32 = 4;
const MAX: u32 = 16;
/// Offsets of the cursors in the header (each on its own 128-byte line; see `src/layout.rs`).
const TAIL: u64 = 128;
const HEAD: u64 = 256;
/// Offsets of the wait words, the counters and the participant table (README, "File format"; the
/// header ends with the redrive ledger line and the 1024-byte dead-letter path).
const RECV_WAIT: u64 = 384;
const SEND_WAIT: u64 = 512;
const COUNTERS: u64 = 640;
const PARTICIPANTS: u64 = 1920;
/// A participant entry: token, pid, sleeping, roles (u32 each), since (u64), reserved (u64).
const ENTRY: u64 = 128;
/// Offsets in an entry: the announcement (two `u64`s), then the token word, then the pid.
const ENTRY_TOKEN: u64 = 16;
const ENTRY_SLEEPING: u64 = 24;
/// A participant token is `index << 11 | generation` (see `src/participant.rs`).
const GENERATION_BITS: u32 = 11;
/// Offsets of a slot's fields from the start of the slot.
const SLOT_STATE: u64 = 0;
const SLOT_LEN: u64 = 8;
const SLOT_DELIVERIES: u64 = 12;
const SLOT_ID: u64 = 16;
const SLOT_LEASE: u64 = 24;
/// The slot state word: `pos << 24 | owner << 4 | phase` (see `src/ring.rs`).
const POS_MASK: u64 = (1 << 40) - 1;
const EMPTY: u64 = 0;
const WRITING: u64 = 1;
const FULL: u64 = 2;
const READING: u64 = 3;
/// A reservation held beyond one call (a `SendGuard`), and an in-place receive held (a
/// `RecvGuard`).
const RESERVED: u64 = 5;
const LENT: u64 = 6;
/// Bound on a child's run: every case takes milliseconds, a hang takes forever.
const BOUND: Duration = Duration::from_secs(30);

fn state(pos: u64, owner: u64, phase: u64) -> u64 {
    (pos & POS_MASK) << 24 | (owner & 0xF_FFFF) << 4 | phase
}

/// A queue of capacity 4 and maximum message size 16, and a second, plain file handle on it.
struct Target {
    _dir: tempfile::TempDir,
    queue: Queue,
    file: File,
    geometry: Geometry,
}

impl Target {
    fn new() -> Target {
        let dir = common::tempdir();
        let path = dir.path().join("q");
        let queue = Queue::create(&path, Options::new(CAPACITY, MAX)).unwrap();
        Target::with(dir, queue)
    }

    /// A queue opened from a copy of `bytes` (a queue file left by other processes).
    fn from_bytes(bytes: &[u8]) -> Target {
        let dir = common::tempdir();
        let path = dir.path().join("q");
        std::fs::write(&path, bytes).unwrap();
        // Private, as a queue file must be (a new file gets 0666 minus the umask).
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let queue = Queue::open(&path).unwrap();
        Target::with(dir, queue)
    }

    fn with(dir: tempfile::TempDir, queue: Queue) -> Target {
        let file = OpenOptions::new().write(true).open(queue.path()).unwrap();
        Target {
            _dir: dir,
            queue,
            file,
            geometry: Geometry::new(CAPACITY, MAX).unwrap(),
        }
    }

    fn write_u64(&self, offset: u64, value: u64) {
        self.file
            .write_all_at(&value.to_ne_bytes(), offset)
            .unwrap();
    }

    fn write_u32(&self, offset: u64, value: u32) {
        self.file
            .write_all_at(&value.to_ne_bytes(), offset)
            .unwrap();
    }

    fn slot(&self, slot: u32) -> u64 {
        self.geometry.slots_offset
            + u64::from(slot % CAPACITY) * u64::from(self.geometry.slot_stride)
    }
}

/// What a foreign writer or this process does next.
#[derive(Clone, Debug)]
enum Op {
    /// Writes a state word with a valid phase and a position near a cursor (`delta` positions
    /// from the tail, or from the head).
    NearState {
        slot: u32,
        from_tail: bool,
        delta: i64,
        owner: u64,
        phase: u64,
    },
    /// Writes a state word whose phase no honest peer writes.
    BadPhase {
        slot: u32,
        word: u64,
    },
    /// Writes a slot's length field.
    Len {
        slot: u32,
        len: u32,
    },
    /// Writes a slot's delivery count.
    Deliveries {
        slot: u32,
        count: u32,
    },
    /// Writes a 32-bit word of the header's identity block (the first 128 bytes).
    Identity {
        word: u64,
        value: u32,
    },
    /// Writes a wait word (sleeper count and epoch).
    WaitWord {
        senders: bool,
        value: u32,
    },
    /// Writes one of the counters (including the last sweep time).
    Counter {
        index: u64,
        value: u64,
    },
    /// Writes a slot's message id.
    MessageId {
        slot: u32,
        value: u64,
    },
    /// Writes a slot's lease word (the visibility timeout's: deadline, flags, taker).
    Lease {
        slot: u32,
        value: u64,
    },
    /// Writes a 32-bit word of one of the first entries of the participant table (the live and
    /// dead participants are there).
    Participant {
        entry: u64,
        word: u64,
        value: u32,
    },
    /// Moves a cursor by `delta` positions, optionally setting the tail's closed bit.
    Cursor {
        tail: bool,
        delta: i64,
        closed: bool,
    },
    TrySend(usize),
    TrySendBatch(usize),
    Reserve(Option<usize>),
    TryRecv(usize),
    TryRecvInPlace,
    /// Receives in place and keeps the guard across the next operations.
    Hold,
    /// Acknowledges the oldest guard kept (`ack`: `Ok` or `Expired`).
    Ack,
    /// Extends the newest guard kept by this many milliseconds.
    Extend(u64),
    TryRecvBatch(usize),
    /// A blocking receive into a buffer of this size, with a short timeout (it sweeps).
    RecvTimeout(usize),
    /// A blocking send of this many bytes, with a short timeout (it sweeps).
    SendTimeout(usize),
    Recover,
    Close,
}

fn op() -> impl Strategy<Value = Op> {
    let slot = 0..CAPACITY;
    let delta = -12i64..12;
    prop_oneof![
        (slot.clone(), any::<bool>(), delta.clone(), 0..4u64, 0..9u64).prop_map(
            |(slot, from_tail, delta, owner, phase)| Op::NearState {
                slot,
                from_tail,
                delta,
                owner,
                phase
            }
        ),
        // Phases 9 to 15: none is written by an honest peer.
        (slot.clone(), any::<u64>()).prop_map(|(slot, w)| Op::BadPhase {
            slot,
            word: (w & !0xF) | (9 + (w & 0xF) % 7)
        }),
        (
            slot.clone(),
            prop_oneof![0..64u64, any::<u64>(), (0..16u64).prop_map(|f| f << 60 | 5)]
        )
            .prop_map(|(slot, value)| Op::Lease { slot, value }),
        (slot, prop_oneof![0..=MAX + 2, Just(u32::MAX), any::<u32>()])
            .prop_map(|(slot, len)| Op::Len { slot, len }),
        (any::<bool>(), delta, prop::bool::weighted(0.1)).prop_map(|(tail, delta, closed)| {
            Op::Cursor {
                tail,
                delta,
                closed,
            }
        }),
        (0..CAPACITY, prop_oneof![0..4u32, any::<u32>()])
            .prop_map(|(slot, count)| Op::Deliveries { slot, count }),
        (0..32u64, any::<u32>()).prop_map(|(word, value)| Op::Identity { word, value }),
        (any::<bool>(), prop_oneof![0..4u32, any::<u32>()])
            .prop_map(|(senders, value)| Op::WaitWord { senders, value }),
        (0..12u64, any::<u64>()).prop_map(|(index, value)| Op::Counter { index, value }),
        (0..4u64, 0..12u64, prop_oneof![0..8u32, any::<u32>()])
            .prop_map(|(entry, word, value)| Op::Participant { entry, word, value }),
        (0..CAPACITY, prop_oneof![0..64u64, any::<u64>()])
            .prop_map(|(slot, value)| Op::MessageId { slot, value }),
        (0..=MAX as usize + 2).prop_map(Op::RecvTimeout),
        (0..=MAX as usize + 2).prop_map(Op::SendTimeout),
        Just(Op::Recover),
        (0..=MAX as usize + 2).prop_map(Op::TrySend),
        (1..6usize).prop_map(Op::TrySendBatch),
        prop::option::of(0..=MAX as usize + 2).prop_map(Op::Reserve),
        (0..=MAX as usize + 2).prop_map(Op::TryRecv),
        Just(Op::TryRecvInPlace),
        Just(Op::Hold),
        Just(Op::Ack),
        (0..50u64).prop_map(Op::Extend),
        (1..6usize).prop_map(Op::TryRecvBatch),
        Just(Op::Close),
    ]
}

/// `result`'s value, or `None` after checking that its error is one of `allowed` (the errors
/// the call can give: never, say, `Timeout` from a non-blocking call, nor `Io`).
macro_rules! allowed {
    ($what:expr, $result:expr, $($allowed:pat_param)|+) => {
        match $result {
            Ok(value) => Some(value),
            Err(e) => {
                prop_assert!(
                    matches!(e, $($allowed)|+),
                    "{}: an error it cannot give: {:?}",
                    $what,
                    e
                );
                None
            }
        }
    };
}

/// Runs `ops` against a queue opened from `start` (a queue file's bytes). Every call must
/// return `Ok` or an error it can give; a message handed out is never longer than the maximum,
/// nor than the caller's buffer.
fn run(start: &[u8], ops: &[Op]) -> Result<(), TestCaseError> {
    let t = Target::from_bytes(start);
    let q = &t.queue;
    let brief = Duration::from_millis(1);
    let max = MAX as usize;
    let mut held = std::collections::VecDeque::new();
    for op in ops {
        let s = q.stats();
        let cursor = |from_tail: bool| if from_tail { s.sent } else { s.received };
        match *op {
            Op::NearState {
                slot,
                from_tail,
                delta,
                owner,
                phase,
            } => {
                let pos = cursor(from_tail).wrapping_add_signed(delta);
                t.write_u64(t.slot(slot) + SLOT_STATE, state(pos, owner, phase));
            }
            Op::BadPhase { slot, word } => t.write_u64(t.slot(slot) + SLOT_STATE, word),
            Op::Len { slot, len } => t.write_u32(t.slot(slot) + SLOT_LEN, len),
            Op::Deliveries { slot, count } => t.write_u32(t.slot(slot) + SLOT_DELIVERIES, count),
            Op::Identity { word, value } => t.write_u32(word * 4, value),
            Op::WaitWord { senders, value } => {
                t.write_u32(if senders { SEND_WAIT } else { RECV_WAIT }, value)
            }
            Op::Counter { index, value } => t.write_u64(COUNTERS + index * 8, value),
            Op::Participant { entry, word, value } => {
                t.write_u32(PARTICIPANTS + entry * ENTRY + word * 4, value)
            }
            Op::MessageId { slot, value } => t.write_u64(t.slot(slot) + SLOT_ID, value),
            Op::Lease { slot, value } => t.write_u64(t.slot(slot) + SLOT_LEASE, value),
            Op::Hold => {
                let got = allowed!(
                    "try_recv_in_place",
                    q.try_recv_in_place(),
                    Error::Empty | Error::Closed | Error::Corrupt { .. }
                );
                if let Some(m) = got {
                    prop_assert!(m.len() <= max);
                    held.push_back(m);
                }
            }
            Op::Ack => {
                if let Some(m) = held.pop_front() {
                    allowed!("ack", m.ack(), Error::Expired);
                }
            }
            Op::Extend(ms) => {
                if let Some(m) = held.back() {
                    allowed!(
                        "extend",
                        m.extend(Duration::from_millis(ms)),
                        Error::Expired
                    );
                }
            }
            Op::Cursor {
                tail,
                delta,
                closed,
            } => {
                let value = cursor(tail).saturating_add_signed(delta);
                let closed_bit = if tail && (closed || s.closed) {
                    1 << 63
                } else {
                    0
                };
                t.write_u64(if tail { TAIL } else { HEAD }, value | closed_bit);
            }
            Op::TrySend(len) => {
                allowed!(
                    "try_send",
                    q.try_send(&vec![b's'; len]),
                    Error::Full | Error::Closed | Error::Corrupt { .. } | Error::TooLarge { .. }
                );
            }
            Op::TrySendBatch(n) => {
                let msgs: Vec<Vec<u8>> = (0..n).map(|i| vec![b'b'; i]).collect();
                let sent = allowed!(
                    "try_send_batch",
                    q.try_send_batch(&msgs),
                    Error::Full | Error::Closed | Error::Corrupt { .. }
                );
                if let Some(sent) = sent {
                    prop_assert!((1..=n).contains(&sent));
                }
            }
            Op::Reserve(commit) => {
                let slot = allowed!(
                    "try_reserve",
                    q.try_reserve(),
                    Error::Full | Error::Closed | Error::Corrupt { .. }
                );
                if let Some(mut slot) = slot {
                    prop_assert_eq!(slot.len(), max);
                    slot.fill(b'r');
                    if let Some(len) = commit {
                        allowed!("commit", slot.commit(len), Error::TooLarge { .. });
                    }
                }
            }
            Op::TryRecv(cap) => {
                let mut buf = vec![0u8; cap];
                let got = allowed!(
                    "try_recv",
                    q.try_recv(&mut buf),
                    Error::Empty
                        | Error::Closed
                        | Error::Corrupt { .. }
                        | Error::BufferTooSmall { .. }
                );
                if let Some(n) = got {
                    prop_assert!(n <= cap && n <= max, "received {} bytes", n);
                }
            }
            Op::TryRecvInPlace => {
                let got = allowed!(
                    "try_recv_in_place",
                    q.try_recv_in_place(),
                    Error::Empty | Error::Closed | Error::Corrupt { .. }
                );
                if let Some(m) = got {
                    prop_assert!(m.len() <= max);
                }
            }
            Op::TryRecvBatch(n) => {
                let mut longest = 0;
                let got = allowed!(
                    "try_recv_batch",
                    q.try_recv_batch(n, |m| longest = longest.max(m.len())),
                    Error::Empty | Error::Closed | Error::Corrupt { .. }
                );
                if let Some(got) = got {
                    prop_assert!((1..=n).contains(&got));
                }
                prop_assert!(longest <= max);
            }
            Op::RecvTimeout(cap) => {
                let mut buf = vec![0u8; cap];
                let got = allowed!(
                    "recv_timeout",
                    q.recv_timeout(&mut buf, brief),
                    Error::Timeout
                        | Error::Closed
                        | Error::Corrupt { .. }
                        | Error::BufferTooSmall { .. }
                );
                if let Some(n) = got {
                    prop_assert!(n <= cap && n <= max, "received {} bytes", n);
                }
            }
            Op::SendTimeout(len) => {
                allowed!(
                    "send_timeout",
                    q.send_timeout(&vec![b't'; len], brief),
                    Error::Timeout | Error::Closed | Error::Corrupt { .. } | Error::TooLarge { .. }
                );
            }
            Op::Recover => {
                q.recover();
            }
            Op::Close => {
                q.close();
            }
        }
    }
    let _ = q.stats();
    Ok(())
}

/// The bytes of a queue on which two participants died holding claims: a consumer holding the
/// first message (SIGKILLed at `recv-claimed`) and a producer holding the next slot (at
/// `send-claimed`), with one more message between them. Nobody has swept since: their entries
/// are still marked in use, their claims unresolved.
fn queue_with_dead_participants(dir: &Path) -> Vec<u8> {
    let path = dir.join("template");
    // A visibility timeout of 1 ms: holds lapse during the property, so expiry runs too.
    let options = Options::new(CAPACITY, MAX).visibility_timeout(Duration::from_millis(1));
    let q = Queue::create(&path, options).unwrap();
    q.try_send(b"held").unwrap();
    q.try_send(b"next").unwrap();
    victim(dir, &path, "victim-recv", "recv-claimed").kill();
    victim(dir, &path, "victim-send", "send-claimed").kill();
    let st = q.stats();
    assert_eq!(
        st.participants.iter().filter(|p| !p.alive).count(),
        2,
        "{st:?}"
    );
    assert_eq!((st.sent, st.received), (3, 1), "{st:?}");
    drop(q);
    std::fs::read(&path).unwrap()
}

/// Starts a child that opens the queue at `path` and stops at the pause point `point` holding a
/// claim; returns it once it is there.
fn victim(dir: &Path, path: &Path, role: &str, point: &str) -> Child {
    let queue = path.display();
    common::spawn_paused(dir, role, &[("queue", &queue)], point, BOUND)
}

/// Runs the scribbling property with `cases` cases. Before each case it reports the case, so
/// that the parent can show which one hung.
fn scribble_property(role: &Role) {
    let dir = common::tempdir();
    let start = queue_with_dead_participants(dir.path());
    let mut runner = TestRunner::new(Config {
        cases: role.arg("cases"),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&prop::collection::vec(op(), 1..48), |ops| {
        role.report(&format!("{ops:?}"));
        run(&start, &ops)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    role.report("passed");
}

/// Every slot's state word names a free slot for a position about 2^38 ahead of the cursors;
/// then each non-blocking call is made once.
fn far_future_states(role: &Role) {
    let t = Target::new();
    for slot in 0..CAPACITY {
        let pos = (1 << 38) + u64::from(slot);
        t.write_u64(t.slot(slot) + SLOT_STATE, state(pos, 0, EMPTY));
    }
    let op: String = role.arg("op");
    let mut buf = [0u8; MAX as usize];
    let outcome = match op.as_str() {
        "try_send" => format!("{:?}", t.queue.try_send(b"x")),
        "try_recv" => format!("{:?}", t.queue.try_recv(&mut buf)),
        other => panic!("unknown op {other}"),
    };
    role.report(&outcome);
}

/// Not a property: the entry point of the child processes these tests spawn (see `common`).
/// Ignored, so that a test run does not count it; the children run it with `--ignored`.
#[test]
#[ignore = "the entry point of child processes, not a test"]
fn child() {
    common::child_main(|role| match role.name() {
        "scribble" => scribble_property(role),
        "far_future" => far_future_states(role),
        // Crash-recovery victims: stopped at a pause point holding a claim, then killed.
        "victim-send" => {
            let q = Queue::open(role.path("queue")).unwrap();
            let _ = q.send(b"lost");
            unreachable!("the pause point stops this process");
        }
        "victim-recv" => {
            let q = Queue::open(role.path("queue")).unwrap();
            let _ = q.recv(&mut [0u8; MAX as usize]);
            unreachable!("the pause point stops this process");
        }
        other => panic!("unknown role {other}"),
    });
}

#[test]
fn scribbled_queue_with_dead_participants_gives_only_the_errors_each_call_can_give() {
    let dir = common::tempdir();
    let child = Child::spawn(dir.path(), "scribble", &[("cases", &256)]);
    assert_eq!(child.wait(BOUND), "passed");
}

#[test]
fn try_calls_return_promptly_when_every_slot_state_names_a_far_future_position() {
    let dir = common::tempdir();
    for op in ["try_send", "try_recv"] {
        let child = Child::spawn(dir.path(), "far_future", &[("op", &op)]);
        // Milliseconds when correct; the bound only turns a hang into a failure.
        let outcome = child.wait(Duration::from_secs(5));
        assert!(!outcome.is_empty(), "{op}: no outcome");
    }
}

#[test]
fn a_head_cursor_at_the_end_of_the_position_space_gives_no_panic() {
    let t = Target::new();
    // A committed one-byte message at position 2^64 - 2, which the head names.
    let pos = u64::MAX - 1;
    t.write_u64(
        t.slot((pos % u64::from(CAPACITY)) as u32) + SLOT_STATE,
        state(pos, 0, FULL),
    );
    t.write_u32(t.slot((pos % u64::from(CAPACITY)) as u32) + SLOT_LEN, 1);
    t.write_u64(HEAD, pos);
    let mut buf = [0u8; MAX as usize];
    // Any result will do, as long as it is a result.
    let _ = t.queue.try_recv(&mut buf);
    let _ = t.queue.try_recv(&mut buf);
    let _ = t.queue.stats();
}

/// Asserts that `result` is `Corrupt` and its description contains `what`.
#[track_caller]
fn assert_corrupt<T>(result: shmq::Result<T>, what: &str) {
    match result {
        Err(Error::Corrupt { what: said }) => {
            assert!(
                said.contains(what),
                "Corrupt, but {said:?} does not say {what:?}"
            )
        }
        Err(e) => panic!("expected Corrupt ({what}), got {e:?}"),
        Ok(_) => panic!("expected Corrupt ({what}), got Ok"),
    }
}

#[test]
fn a_state_word_with_an_unknown_phase_is_corrupt_for_every_send_and_receive() {
    let t = Target::new();
    let q = &t.queue;
    let bad = state(0, 0, 9);
    t.write_u64(t.slot(0) + SLOT_STATE, bad);
    let what = "unknown phase";
    let mut buf = [0u8; MAX as usize];
    // Slot 0 is at both cursors.
    assert_corrupt(q.try_recv(&mut buf), what);
    assert_corrupt(q.try_recv_in_place(), what);
    assert_corrupt(q.try_recv_batch(4, |_| {}), what);
    assert_corrupt(q.recv_timeout(&mut buf, Duration::from_millis(10)), what);
    assert_corrupt(q.try_send(b"x"), what);
    assert_corrupt(q.try_send_batch(&[b"x"]), what);
    assert_corrupt(q.try_reserve(), what);
    assert_corrupt(q.send_timeout(b"x", Duration::from_millis(10)), what);
    // Nothing moved: the cursors are where they were.
    let st = q.stats();
    assert_eq!((st.sent, st.received), (0, 0));
}

#[test]
fn a_slot_state_more_than_a_lap_from_its_cursor_is_corrupt() {
    let t = Target::new();
    let q = &t.queue;
    let cap = u64::from(CAPACITY);
    // A free slot for a position two laps ahead of the tail: no honest peer writes that.
    t.write_u64(t.slot(0) + SLOT_STATE, state(2 * cap, 0, EMPTY));
    assert_corrupt(q.try_send(b"x"), "more than a lap away from the tail");
    // A message two laps behind the head.
    let t = Target::new();
    let q = &t.queue;
    q.try_send(b"x").unwrap();
    t.write_u64(HEAD, 2 * cap);
    t.write_u64(TAIL, 2 * cap + 1);
    t.write_u64(t.slot(0) + SLOT_STATE, state(0, 0, FULL));
    assert_corrupt(
        q.try_recv(&mut [0u8; MAX as usize]),
        "more than a lap away from the head",
    );
}

#[test]
fn a_committed_length_beyond_the_maximum_is_corrupt_and_frees_the_slot() {
    let t = Target::new();
    let q = &t.queue;
    q.try_send(b"bad").unwrap();
    q.try_send(b"good").unwrap();
    t.write_u32(t.slot(0) + SLOT_LEN, MAX + 1);
    assert_corrupt(q.try_recv_in_place(), "exceeds the maximum message size");
    let mut buf = [0u8; MAX as usize];
    assert_eq!(q.try_recv(&mut buf).unwrap(), 4);
    assert_eq!(&buf[..4], b"good");
}

/// The participant table entry that `queue_with_a_planted_dead_claimer` marks.
const PLANTED: u64 = 100;

/// A queue holding "held", "gap" and "after" (positions 0 to 2) and a dead claimer planted by
/// hand: entry `PLANTED` marked in use (generation 5) with no lock behind it, as a participant
/// that died leaves it, holding position 0 (the head has passed it) stamped with the phase
/// `receiving` and position 1 (below the tail) stamped with the phase `sending`.
fn queue_with_a_planted_dead_claimer(receiving: u64, sending: u64) -> Target {
    let t = Target::new();
    let q = &t.queue;
    let token = PLANTED << GENERATION_BITS | 5;
    t.write_u32(PARTICIPANTS + PLANTED * ENTRY + ENTRY_TOKEN, 5 << 1 | 1);
    q.try_send(b"held").unwrap();
    q.try_send(b"gap").unwrap();
    q.try_send(b"after").unwrap();
    t.write_u64(HEAD, 1);
    t.write_u64(t.slot(0) + SLOT_STATE, state(0, token, receiving));
    t.write_u64(t.slot(1) + SLOT_STATE, state(1, token, sending));
    t
}

/// Receives until the queue gives an error: each message as text, with its delivery number.
fn drain_with_deliveries(q: &Queue) -> Vec<(String, u32)> {
    let mut buf = [0u8; MAX as usize];
    let mut got = Vec::new();
    while let Ok(r) = q.try_recv_meta(&mut buf) {
        got.push((
            String::from_utf8_lossy(&buf[..r.len]).into_owned(),
            r.deliveries,
        ));
    }
    got
}

#[test]
fn a_marked_entry_that_nobody_holds_is_swept_like_a_dead_participant() {
    // The dead participant held a message it was reading in place and a reservation it was
    // writing.
    let t = queue_with_a_planted_dead_claimer(LENT, RESERVED);
    let q = &t.queue;
    let entry = |q: &Queue| {
        q.stats()
            .participants
            .into_iter()
            .find(|p| u64::from(p.index) == PLANTED)
    };
    assert!(matches!(entry(q), Some(p) if !p.alive));
    let mut buf = [0u8; MAX as usize];
    assert!(matches!(q.try_recv(&mut buf), Err(Error::Empty)));
    assert!(q.recover());
    assert_eq!(entry(q), None, "the dead entry was not freed");
    let st = q.stats();
    assert_eq!((st.abandoned_sends, st.redelivered), (1, 1), "{st:?}");
    assert_eq!(
        drain_with_deliveries(q),
        [("after".to_string(), 1), ("held".to_string(), 2)]
    );
}

#[test]
fn a_dead_claimers_transient_stamps_are_waited_out_and_resolved_by_the_next_poll() {
    // As above, but the dead participant died inside its calls, reading and writing.
    let t = queue_with_a_planted_dead_claimer(READING, WRITING);
    let q = &t.queue;
    // A send in progress at the head: the non-blocking receive waits for it rather than say
    // `Empty`, finds its claimer dead, and moves on; the dead reader's message comes back.
    assert_eq!(
        drain_with_deliveries(q),
        [("after".to_string(), 1), ("held".to_string(), 2)]
    );
    let st = q.stats();
    assert_eq!((st.abandoned_sends, st.redelivered), (1, 1), "{st:?}");
}

#[test]
fn bogus_sleeper_counts_are_lowered_to_the_live_sleepers_once_someone_died() {
    let dir = common::tempdir();
    let t = Target::from_bytes(&queue_with_dead_participants(dir.path()));
    let q = &t.queue;
    // Counts no live participant's record backs, and a dead participant's record that claims
    // sleepers of its own.
    t.write_u32(RECV_WAIT, 9 | 3 << 16);
    t.write_u32(SEND_WAIT, 0xFFFF);
    for entry in 0..4 {
        t.write_u32(PARTICIPANTS + entry * ENTRY + ENTRY_SLEEPING, 0x0005_0005);
    }
    // Our own record must say "no sleepers" (we have none): restore it.
    let me = q
        .stats()
        .participants
        .iter()
        .find(|p| p.alive)
        .unwrap()
        .index;
    t.write_u32(PARTICIPANTS + u64::from(me) * ENTRY + ENTRY_SLEEPING, 0);
    assert!(q.recover());
    let st = q.stats();
    assert_eq!((st.recv_sleepers, st.send_sleepers), (0, 0), "{st:?}");
    // The dead consumer's message came back, the dead producer's claim was skipped.
    assert_eq!((st.redelivered, st.abandoned_sends), (1, 1), "{st:?}");
}

#[test]
fn blocking_calls_on_scribbled_wait_words_time_out_on_time() {
    let t = Target::new();
    let q = &t.queue;
    for value in [0xFFFF_FFFF, 0xFFFF, 0x8000_0000] {
        t.write_u32(RECV_WAIT, value);
        t.write_u32(SEND_WAIT, value);
        let start = Instant::now();
        let timeout = Duration::from_millis(20);
        assert!(matches!(
            q.recv_timeout(&mut [0u8; MAX as usize], timeout),
            Err(Error::Timeout)
        ));
        for _ in 0..CAPACITY {
            q.try_send(b"fill").unwrap();
        }
        assert!(matches!(q.send_timeout(b"x", timeout), Err(Error::Timeout)));
        assert!(start.elapsed() < BOUND, "took {:?}", start.elapsed());
        assert_eq!(
            q.try_recv_batch(CAPACITY as usize, |_| {}).unwrap(),
            CAPACITY as usize
        );
    }
}

/// A case the property found (under AddressSanitizer): a closed queue whose sweeps kept
/// "changing" a withheld slot, so a receive looped on "sweep, look again" for ever. Each prefix
/// of the case must return.
#[test]
fn a_receive_on_a_scribbled_closed_queue_with_withheld_slots_returns() {
    let dir = common::tempdir();
    let start = queue_with_dead_participants(dir.path());
    use Op::*;
    let ops = vec![
        Cursor {
            tail: true,
            delta: -10,
            closed: true,
        },
        TryRecvBatch(2),
        Ack,
        TryRecv(5),
        Ack,
        BadPhase {
            slot: 2,
            word: 6613307118868721193,
        },
        Cursor {
            tail: false,
            delta: 4,
            closed: false,
        },
        Lease {
            slot: 1,
            value: 12348035998447156777,
        },
        Close,
        TrySendBatch(2),
        Lease {
            slot: 2,
            value: 626898854323448527,
        },
        Extend(19),
        Counter {
            index: 8,
            value: 17380820251315098966,
        },
        TryRecvInPlace,
        MessageId { slot: 0, value: 3 },
        BadPhase {
            slot: 3,
            word: 3475771884979846731,
        },
        NearState {
            slot: 2,
            from_tail: false,
            delta: -3,
            owner: 2,
            phase: 8,
        },
        Reserve(Some(10)),
        Hold,
        Len {
            slot: 1,
            len: 4294967295,
        },
        Cursor {
            tail: false,
            delta: -1,
            closed: false,
        },
        TryRecvInPlace,
        Reserve(Some(1)),
        TryRecvBatch(3),
        Identity {
            word: 28,
            value: 256333142,
        },
        Counter {
            index: 6,
            value: 2054391268415434346,
        },
        TryRecvBatch(3),
        Len { slot: 0, len: 3 },
        Lease { slot: 2, value: 22 },
    ];
    for n in 1..=ops.len() {
        run(&start, &ops[..n]).unwrap();
    }
}
