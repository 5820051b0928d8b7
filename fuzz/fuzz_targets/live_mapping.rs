// SPDX-License-Identifier: MIT OR Apache-2.0
//! A live queue whose slot states, lengths, delivery counts, cursors, wait words, counters and
//! participant table are scribbled over between calls, as a hostile process sharing the file
//! could: every non-blocking call returns data or a typed error, never a panic, an
//! out-of-bounds access or a hang, and no message handed out is longer than the maximum.
//!
//! `tests/hostile_memory.rs` checks the same property with proptest; this target lets
//! libFuzzer's coverage feedback steer the scribbles.

#![no_main]

mod scratch;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use shmq::{Geometry, Options, Queue};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;

const CAPACITY: u32 = 4;
const MAX: u32 = 16;
/// Header offsets (README, "File format").
const TAIL: u64 = 128;
const HEAD: u64 = 256;
const RECV_WAIT: u64 = 384;
const SEND_WAIT: u64 = 512;
const COUNTERS: u64 = 640;
const PARTICIPANTS: u64 = 768;
/// Offsets within a slot.
const SLOT_STATE: u64 = 0;
const SLOT_LEN: u64 = 8;
const SLOT_DELIVERIES: u64 = 12;
/// The slot state word: `pos << 24 | owner << 4 | phase` (see `src/ring.rs`).
const POS_MASK: u64 = (1 << 40) - 1;

/// What a hostile writer or this process does next.
#[derive(Arbitrary, Debug)]
enum Op {
    /// A state word for a position near a cursor: the kind of value that gets furthest into
    /// the claim protocol.
    NearState {
        slot: u8,
        from_tail: bool,
        delta: i8,
        owner: u8,
        phase: u8,
    },
    /// Any state word.
    State {
        slot: u8,
        word: u64,
    },
    Len {
        slot: u8,
        len: u32,
    },
    Deliveries {
        slot: u8,
        count: u32,
    },
    /// Moves a cursor near where it is, optionally setting the tail's closed bit.
    NearCursor {
        tail: bool,
        delta: i8,
        closed: bool,
    },
    /// Any cursor value.
    Cursor {
        tail: bool,
        value: u64,
    },
    WaitWord {
        senders: bool,
        value: u32,
    },
    Counter {
        index: u8,
        value: u64,
    },
    /// One 32-bit word of the participant table.
    Participant {
        entry: u16,
        word: u8,
        value: u32,
    },
    TrySend(u8),
    TrySendBatch(u8),
    Reserve(Option<u8>),
    TryRecv(u8),
    TryRecvInPlace,
    TryRecvBatch(u8),
    Stats,
    Close,
}

/// A fresh queue, and a plain file handle to write into it behind its back.
struct Target {
    queue: Queue,
    file: File,
    geometry: Geometry,
}

impl Target {
    fn new() -> Target {
        let path = scratch::path("live");
        let _ = std::fs::remove_file(path);
        let queue = Queue::create(path, Options::new(CAPACITY, MAX)).expect("create the queue");
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .expect("open the queue file");
        std::fs::remove_file(path).expect("unlink the queue file");
        Target {
            queue,
            file,
            geometry: Geometry::new(CAPACITY, MAX).expect("geometry"),
        }
    }

    fn write(&self, offset: u64, bytes: &[u8]) {
        self.file
            .write_all_at(bytes, offset)
            .expect("write into the queue file");
    }

    fn slot(&self, slot: u8) -> u64 {
        self.geometry.slots_offset
            + u64::from(u32::from(slot) % CAPACITY) * u64::from(self.geometry.slot_stride)
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let t = Target::new();
    let q = &t.queue;
    let max = MAX as usize;
    for op in ops.iter().take(64) {
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
                let pos = cursor(from_tail).wrapping_add_signed(i64::from(delta));
                let word = (pos & POS_MASK) << 24 | u64::from(owner) << 4 | u64::from(phase & 0xF);
                t.write(t.slot(slot) + SLOT_STATE, &word.to_ne_bytes());
            }
            Op::State { slot, word } => t.write(t.slot(slot) + SLOT_STATE, &word.to_ne_bytes()),
            Op::Len { slot, len } => t.write(t.slot(slot) + SLOT_LEN, &len.to_ne_bytes()),
            Op::Deliveries { slot, count } => {
                t.write(t.slot(slot) + SLOT_DELIVERIES, &count.to_ne_bytes())
            }
            Op::NearCursor {
                tail,
                delta,
                closed,
            } => {
                let value = cursor(tail).wrapping_add_signed(i64::from(delta)) & !(1 << 63);
                let closed_bit = if tail && (closed || s.closed) {
                    1 << 63
                } else {
                    0
                };
                let offset = if tail { TAIL } else { HEAD };
                t.write(offset, &(value | closed_bit).to_ne_bytes());
            }
            Op::Cursor { tail, value } => {
                t.write(if tail { TAIL } else { HEAD }, &value.to_ne_bytes())
            }
            Op::WaitWord { senders, value } => t.write(
                if senders { SEND_WAIT } else { RECV_WAIT },
                &value.to_ne_bytes(),
            ),
            Op::Counter { index, value } => {
                t.write(COUNTERS + u64::from(index % 16) * 8, &value.to_ne_bytes())
            }
            Op::Participant { entry, word, value } => t.write(
                PARTICIPANTS + u64::from(entry % 512) * 32 + u64::from(word % 8) * 4,
                &value.to_ne_bytes(),
            ),
            Op::TrySend(len) => {
                let _ = q.try_send(&vec![b's'; usize::from(len) % (max + 3)]);
            }
            Op::TrySendBatch(n) => {
                let n = usize::from(n) % 6 + 1;
                let msgs: Vec<Vec<u8>> = (0..n).map(|i| vec![b'b'; i]).collect();
                if let Ok(sent) = q.try_send_batch(&msgs) {
                    assert!((1..=n).contains(&sent), "sent {sent} of {n}");
                }
            }
            Op::Reserve(commit) => {
                if let Ok(mut slot) = q.try_reserve() {
                    assert_eq!(slot.len(), max);
                    slot.fill(b'r');
                    if let Some(len) = commit {
                        let _ = slot.commit(usize::from(len) % (max + 3));
                    }
                }
            }
            Op::TryRecv(cap) => {
                let cap = usize::from(cap) % (max + 3);
                let mut buf = vec![0u8; cap];
                if let Ok(n) = q.try_recv(&mut buf) {
                    assert!(n <= cap && n <= max, "received {n} bytes into {cap}");
                }
            }
            Op::TryRecvInPlace => {
                if let Ok(m) = q.try_recv_in_place() {
                    assert!(m.len() <= max, "lent {} bytes", m.len());
                }
            }
            Op::TryRecvBatch(n) => {
                let n = usize::from(n) % 6 + 1;
                let mut longest = 0;
                if let Ok(got) = q.try_recv_batch(n, |m| longest = longest.max(m.len())) {
                    assert!((1..=n).contains(&got), "received {got} of {n}");
                }
                assert!(longest <= max, "received {longest} bytes");
            }
            Op::Stats => {
                let _ = q.stats();
            }
            Op::Close => {
                q.close();
            }
        }
    }
    let _ = q.stats();
});
