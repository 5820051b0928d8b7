// SPDX-License-Identifier: MIT OR Apache-2.0
//! The mapping is untrusted: whatever another process writes into a live queue's slot state
//! words, length fields or cursors, every call returns `Ok` or a typed error, without a panic,
//! an out-of-bounds read or a hang.
//!
//! The writes go through plain file I/O on the queue file (as a foreign process's would), while
//! the queue is mapped. The cases that could hang run in a child process with a time bound.

mod common;

use common::{Child, Role};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use shmq::{Geometry, Options, Queue};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::time::Duration;

const CAPACITY: u32 = 4;
const MAX: u32 = 16;
/// Offsets of the cursors in the header (each on its own 128-byte line; see `src/layout.rs`).
const TAIL: u64 = 128;
const HEAD: u64 = 256;
/// Offsets of a slot's fields from the start of the slot.
const SLOT_STATE: u64 = 0;
const SLOT_LEN: u64 = 8;
/// The slot state word: `pos << 24 | owner << 4 | phase` (see `src/ring.rs`).
const POS_MASK: u64 = (1 << 40) - 1;
const EMPTY: u64 = 0;
const FULL: u64 = 2;
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
        let file = OpenOptions::new().write(true).open(&path).unwrap();
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
    TryRecvBatch(usize),
    Close,
}

fn op() -> impl Strategy<Value = Op> {
    let slot = 0..CAPACITY;
    let delta = -12i64..12;
    prop_oneof![
        (slot.clone(), any::<bool>(), delta.clone(), 0..4u64, 0..5u64).prop_map(
            |(slot, from_tail, delta, owner, phase)| Op::NearState {
                slot,
                from_tail,
                delta,
                owner,
                phase
            }
        ),
        (slot.clone(), any::<u64>()).prop_map(|(slot, w)| Op::BadPhase { slot, word: w | 8 }),
        (slot, prop_oneof![0..=MAX + 2, Just(u32::MAX), any::<u32>()])
            .prop_map(|(slot, len)| Op::Len { slot, len }),
        (any::<bool>(), delta, prop::bool::weighted(0.1)).prop_map(|(tail, delta, closed)| {
            Op::Cursor {
                tail,
                delta,
                closed,
            }
        }),
        (0..=MAX as usize + 2).prop_map(Op::TrySend),
        (1..6usize).prop_map(Op::TrySendBatch),
        prop::option::of(0..=MAX as usize + 2).prop_map(Op::Reserve),
        (0..=MAX as usize + 2).prop_map(Op::TryRecv),
        Just(Op::TryRecvInPlace),
        (1..6usize).prop_map(Op::TryRecvBatch),
        Just(Op::Close),
    ]
}

/// Runs `ops` against a fresh queue. Every call must return (`Ok` or a typed error); a message
/// handed out is never longer than the maximum, nor than the caller's buffer.
fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let t = Target::new();
    let q = &t.queue;
    let max = MAX as usize;
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
                let _ = q.try_send(&vec![b's'; len]);
            }
            Op::TrySendBatch(n) => {
                let msgs: Vec<Vec<u8>> = (0..n).map(|i| vec![b'b'; i]).collect();
                if let Ok(sent) = q.try_send_batch(&msgs) {
                    prop_assert!((1..=n).contains(&sent));
                }
            }
            Op::Reserve(commit) => {
                if let Ok(mut slot) = q.try_reserve() {
                    prop_assert_eq!(slot.len(), max);
                    slot.fill(b'r');
                    if let Some(len) = commit {
                        let _ = slot.commit(len);
                    }
                }
            }
            Op::TryRecv(cap) => {
                let mut buf = vec![0u8; cap];
                if let Ok(n) = q.try_recv(&mut buf) {
                    prop_assert!(n <= cap && n <= max, "received {} bytes", n);
                }
            }
            Op::TryRecvInPlace => {
                if let Ok(m) = q.try_recv_in_place() {
                    prop_assert!(m.len() <= max);
                }
            }
            Op::TryRecvBatch(n) => {
                let mut longest = 0;
                if let Ok(got) = q.try_recv_batch(n, |m| longest = longest.max(m.len())) {
                    prop_assert!((1..=n).contains(&got));
                }
                prop_assert!(longest <= max);
            }
            Op::Close => {
                q.close();
            }
        }
    }
    let _ = q.stats();
    Ok(())
}

/// Runs the scribbling property with `cases` cases. Before each case it reports the case, so
/// that the parent can show which one hung.
fn scribble_property(role: &Role) {
    let mut runner = TestRunner::new(Config {
        cases: role.arg("cases"),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&prop::collection::vec(op(), 1..48), |ops| {
        role.report(&format!("{ops:?}"));
        run(&ops)
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
        other => panic!("unknown role {other}"),
    });
}

#[test]
fn scribbled_slot_states_lengths_and_cursors_give_typed_errors_never_panics_or_hangs() {
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
