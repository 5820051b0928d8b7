// SPDX-License-Identifier: MIT OR Apache-2.0
//! The claim protocol over heap-allocated slot states, with threads: the tests that Miri and
//! ThreadSanitizer can run (they cannot map files).

use super::*;
use std::sync::Arc;

/// A ring's words on the heap, with one `u64` payload per slot.
struct HeapRing {
    tail: AtomicU64,
    head: AtomicU64,
    closing: AtomicU64,
    states: Vec<AtomicU64>,
    payload: Vec<std::cell::UnsafeCell<u64>>,
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

impl HeapRing {
    fn new(capacity: u64) -> Arc<Self> {
        Arc::new(HeapRing {
            tail: AtomicU64::new(0),
            head: AtomicU64::new(0),
            closing: AtomicU64::new(0),
            states: (0..capacity)
                .map(|i| AtomicU64::new(empty_state(i)))
                .collect(),
            payload: (0..capacity)
                .map(|_| std::cell::UnsafeCell::new(0))
                .collect(),
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

    fn cell(&self, pos: u64) -> *mut u64 {
        self.payload[(pos % self.payload.len() as u64) as usize].get()
    }

    fn try_send(&self, owner: u32, value: u64) -> Result<(), ClaimError> {
        let ring = self.ring();
        let claim = ring.claim_send(owner, 1)?;
        // SAFETY: we own the claimed slot until `publish`.
        unsafe { *self.cell(claim.first) = value };
        ring.publish(claim.first, owner);
        Ok(())
    }

    fn try_recv(&self, owner: u32) -> Result<u64, ClaimError> {
        let ring = self.ring();
        let claim = ring.claim_recv(owner, 1, |_| true)?;
        // SAFETY: we own the claimed slot until `release`.
        let value = unsafe { *self.cell(claim.first) };
        ring.release(claim.first);
        Ok(value)
    }
}

#[test]
fn threads_exchange_every_message_exactly_once_in_order() {
    const PER_PRODUCER: u64 = if cfg!(miri) { 50 } else { 20_000 };
    let ring = HeapRing::new(4);
    let producers: Vec<_> = (0..2u64)
        .map(|p| {
            let ring = ring.clone();
            std::thread::spawn(move || {
                for i in 0..PER_PRODUCER {
                    while ring.try_send(p as u32 + 1, p << 32 | i).is_err() {
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|c| {
            let ring = ring.clone();
            std::thread::spawn(move || {
                let mut got = vec![];
                loop {
                    match ring.try_recv(10 + c) {
                        Ok(v) => got.push(v),
                        Err(ClaimError::WouldBlock) => std::thread::yield_now(),
                        Err(ClaimError::Closed) => break,
                        Err(e) => panic!("{e:?}"),
                    }
                }
                got
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    ring.ring().close();
    let streams: Vec<Vec<u64>> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
    let mut all: Vec<u64> = streams.iter().flatten().copied().collect();
    all.sort_unstable();
    let expected: Vec<u64> = (0..2u64)
        .flat_map(|p| (0..PER_PRODUCER).map(move |i| p << 32 | i))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(all, expected);
    for stream in &streams {
        for p in 0..2u64 {
            let seq: Vec<u64> = stream.iter().filter(|v| *v >> 32 == p).copied().collect();
            assert!(
                seq.windows(2).all(|w| w[0] < w[1]),
                "producer {p} out of order"
            );
        }
    }
}
