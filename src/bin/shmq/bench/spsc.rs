// SPDX-License-Identifier: MIT OR Apache-2.0
//! A minimal single-producer single-consumer ring in shared memory: the ceiling a queue between
//! two processes can approach. Lamport's ring with cached cursors (as in rtrb): each side keeps
//! a private copy of the other side's cursor and reloads it only when the ring looks full (or
//! empty), so the cursors' cache lines move between CPUs as rarely as possible. Messages are
//! fixed-size; there is no length, no multi-party claim, no waiting, no recovery.

use super::peer::{Shared, SharedSafe};
use std::sync::atomic::{AtomicU64, Ordering};

/// A cursor on its own 128-byte line (adjacent-line prefetch pulls pairs of 64-byte lines).
#[repr(C, align(128))]
struct Cursor(AtomicU64);

#[repr(C)]
struct Cursors {
    /// Messages published: the producer writes position `tail` next. Written by the producer.
    tail: Cursor,
    /// Messages consumed: the consumer reads position `head` next. Written by the consumer.
    head: Cursor,
}

// SAFETY: two atomics, valid when zeroed.
unsafe impl SharedSafe for Cursors {}

/// The ring: cursors, then `capacity` slots of `stride` bytes, in memory a fork shares.
pub struct SpscRing {
    shared: Shared<Cursors>,
    capacity: u64,
    size: usize,
    stride: usize,
}

impl SpscRing {
    /// A ring of `capacity` (a power of two) messages of `size` bytes.
    pub fn new(capacity: u32, size: usize) -> Result<Self, String> {
        let stride = size.next_multiple_of(64);
        let shared = Shared::new(capacity as usize * stride)?;
        Ok(SpscRing {
            shared,
            capacity: u64::from(capacity),
            size,
            stride,
        })
    }

    fn slot(&self, pos: u64) -> *mut u8 {
        let index = (pos & (self.capacity - 1)) as usize;
        self.shared.extra().wrapping_add(index * self.stride)
    }

    /// The producing side.
    ///
    /// # Safety
    /// At most one `Producer` of this ring may exist at a time, in all processes together.
    pub unsafe fn producer(&self) -> Producer<'_> {
        let tail = self.shared.tail.0.load(Ordering::Relaxed);
        Producer {
            ring: self,
            tail,
            head_cache: self.shared.head.0.load(Ordering::Acquire),
        }
    }

    /// The consuming side.
    ///
    /// # Safety
    /// At most one `Consumer` of this ring may exist at a time, in all processes together.
    pub unsafe fn consumer(&self) -> Consumer<'_> {
        let head = self.shared.head.0.load(Ordering::Relaxed);
        Consumer {
            ring: self,
            head,
            tail_cache: self.shared.tail.0.load(Ordering::Acquire),
        }
    }
}

pub struct Producer<'a> {
    ring: &'a SpscRing,
    /// Our next position; equals the shared `tail` (only we write it).
    tail: u64,
    /// The consumer's `head` when we last looked: the true one is at least this.
    head_cache: u64,
}

impl Producer<'_> {
    /// Copies `msg` (exactly the ring's message size) in, if there is room.
    #[inline]
    pub fn try_push(&mut self, msg: &[u8]) -> bool {
        let ring = self.ring;
        if self.tail - self.head_cache == ring.capacity {
            // Looks full: look at the consumer's progress again.
            self.head_cache = ring.shared.head.0.load(Ordering::Acquire);
            if self.tail - self.head_cache == ring.capacity {
                return false;
            }
        }
        let n = msg.len().min(ring.size);
        // SAFETY: position `tail` is below `head + capacity`, so the consumer is done with its
        // slot (its Release store of `head` pairs with our Acquire load) and will not read it
        // before our Release store of `tail`; we are the only producer (`producer`'s contract).
        // The slot has `stride >= size >= n` bytes inside the mapping.
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), ring.slot(self.tail), n) };
        self.tail += 1;
        ring.shared.tail.0.store(self.tail, Ordering::Release);
        true
    }
}

pub struct Consumer<'a> {
    ring: &'a SpscRing,
    /// Our next position; equals the shared `head` (only we write it).
    head: u64,
    /// The producer's `tail` when we last looked: the true one is at least this.
    tail_cache: u64,
}

impl Consumer<'_> {
    /// Copies the next message into `buf` (at least the ring's message size), if there is one.
    #[inline]
    pub fn try_pop(&mut self, buf: &mut [u8]) -> bool {
        let ring = self.ring;
        if self.head == self.tail_cache {
            // Looks empty: look at the producer's progress again.
            self.tail_cache = ring.shared.tail.0.load(Ordering::Acquire);
            if self.head == self.tail_cache {
                return false;
            }
        }
        let n = buf.len().min(ring.size);
        // SAFETY: position `head` is below `tail`, published with Release after the producer
        // wrote the slot (our Acquire load of `tail` pairs with it); the producer will not write
        // it again before our Release store of `head`; we are the only consumer.
        unsafe { std::ptr::copy_nonoverlapping(ring.slot(self.head), buf.as_mut_ptr(), n) };
        self.head += 1;
        ring.shared.head.0.store(self.head, Ordering::Release);
        true
    }
}
