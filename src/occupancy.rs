// SPDX-License-Identifier: MIT OR Apache-2.0
//! [`Queue::len`], [`Queue::is_empty`] and [`Queue::is_full`]: how many positions are taken,
//! from the two cursors alone (two or three loads, no system call, no walk over the slots or the
//! participant table), as crossbeam's `ArrayQueue::len` does.
//!
//! `tail - head` counts the positions that producers have claimed and consumers have not: the
//! committed messages, plus sends in progress and cancelled sends not yet passed by a receiver.
//! It is a snapshot: by the time the caller looks, peers in any process may have moved either
//! cursor. [`Queue::stats`] gives the full picture (who holds what), at a cost in proportion to
//! the capacity.

use crate::queue::Queue;
use crate::ring;
use crate::sync::Ordering;

/// Positions claimed by producers and not yet by consumers, given a `tail` word (bit 63 the
/// closed flag) and a `head` cursor: `tail - head`, clamped to `0..=capacity`. The clamp keeps
/// the answer sensible when the two loads straddle other calls (and when the words are
/// hostile: shared memory is untrusted).
///
/// This is the one place that knows how the cursors count; a change to the claim protocol that
/// changes what they hold adapts it here.
pub(crate) fn occupied(tail: u64, head: u64, capacity: u64) -> u64 {
    (tail & !ring::CLOSED).saturating_sub(head).min(capacity)
}

impl Queue {
    /// How many messages are in the queue now: committed and not yet claimed by a receiver,
    /// counting sends in progress (claimed, not yet committed). A snapshot, from the two
    /// cursors only (no system call); peers may change it at once.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let q = shmq::Queue::create(dir.path().join("q"), shmq::Options::new(4, 16))?;
    /// assert!(q.is_empty());
    /// q.send(b"a")?;
    /// q.send(b"b")?;
    /// assert_eq!(q.len(), 2);
    /// q.recv(&mut [0u8; 16])?;
    /// assert_eq!(q.len(), 1);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        let header = self.header();
        let capacity = u64::from(self.capacity());
        // As crossbeam's `ArrayQueue::len`: read the tail on both sides of the head, so that
        // the pair comes from one instant when nothing moved the tail in between. A few tries,
        // then the clamped difference of the last pair (still within 0..=capacity).
        let mut tail = header.tail.0.load(Ordering::Acquire);
        let mut tries = 0;
        loop {
            let head = header.head.0.head.load(Ordering::Acquire);
            let again = header.tail.0.load(Ordering::Acquire);
            tries += 1;
            if again == tail || tries == 4 {
                return occupied(again, head, capacity) as usize;
            }
            tail = again;
        }
    }

    /// Whether the queue holds no message now (see [`len`](Self::len): a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every slot is taken now (see [`len`](Self::len): a snapshot). A send may still
    /// find `Full` when this says `false`, while a consumer holds a slot in place that the ring
    /// has come round to.
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::occupied;
    use crate::ring::CLOSED;

    #[test]
    fn occupied_is_tail_minus_head_clamped() {
        assert_eq!(occupied(0, 0, 8), 0);
        assert_eq!(occupied(5, 2, 8), 3);
        assert_eq!(occupied(10, 2, 8), 8, "a torn read beyond a lap is clamped");
        assert_eq!(occupied(2, 5, 8), 0, "a head read after the tail passed it");
        assert_eq!(
            occupied(5 | CLOSED, 2, 8),
            3,
            "the closed flag is not a position"
        );
        assert_eq!(occupied(u64::MAX, 0, 8), 8, "hostile words stay in range");
    }
}
