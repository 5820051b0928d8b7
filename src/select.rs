// SPDX-License-Identifier: MIT OR Apache-2.0
//! [`Select`]: one thread waits until any of many queues has a message (or room), in the
//! spirit of crossbeam-channel's `Select`.
//!
//! It looks at every queue; if none is ready, it counts itself as a sleeper on each one's wait
//! word, looks once more, and parks the thread with the reactor's helpers watching the words
//! (`reactor`): the protocol of a blocking call, on many words at once. It returns the index of
//! a ready operation; the caller then makes the non-blocking call on that queue. Another
//! consumer may take the message first, so that call can still say `Empty` (or `Full`): loop.
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! use shmq::{Options, Queue, Select};
//! use std::time::Duration;
//! let a = Queue::create(dir.path().join("a"), Options::new(8, 64))?;
//! let b = Queue::create(dir.path().join("b"), Options::new(8, 64))?;
//! b.send(b"for b")?;
//! let mut select = Select::new();
//! let on_a = select.recv(&a);
//! let on_b = select.recv(&b);
//! let ready = select.ready_timeout(Duration::from_secs(1))?;
//! assert_eq!(ready, on_b);
//! let mut buf = [0u8; 64];
//! let n = b.try_recv(&mut buf)?;
//! assert_eq!(&buf[..n], b"for b");
//! # let _ = on_a;
//! // Nothing is ready now: the wait times out.
//! assert!(matches!(select.ready_timeout(Duration::from_millis(10)), Err(shmq::Error::Timeout)));
//! # Ok::<(), shmq::Error>(())
//! ```
//!
//! A closed queue counts as ready (its receive reports `Closed` once drained, its send at
//! once), so that a loop over a `Select` learns about it instead of waiting forever.

use crate::async_wait::Side;
use crate::error::{Error, Result};
use crate::queue::Queue;
use crate::reactor::{self, Wake};
use crate::sync::{fence, spin_hint, Ordering};
use std::time::{Duration, Instant};

/// How many times `Select` looks at every queue, with a CPU pause between looks, before it
/// sleeps: a few microseconds for a handful of queues, as a blocking call spins before it
/// sleeps, bounded in total work for many queues.
const SPIN_LOOKS: usize = 4096;

/// A set of queue operations to wait on: receives (wait for a message) and sends (wait for
/// room). Indices are given in the order operations are added, from 0.
#[derive(Debug, Default)]
pub struct Select<'a> {
    ops: Vec<(&'a Queue, Side)>,
    /// Where the next look starts, so that one busy queue does not starve the others.
    next: std::cell::Cell<usize>,
}

impl<'a> Select<'a> {
    /// An empty set.
    pub fn new() -> Self {
        Select::default()
    }

    /// Adds "a message is ready on `queue`"; returns its index.
    pub fn recv(&mut self, queue: &'a Queue) -> usize {
        self.ops.push((queue, Side::Recv));
        self.ops.len() - 1
    }

    /// Adds "`queue` has room for a message"; returns its index.
    pub fn send(&mut self, queue: &'a Queue) -> usize {
        self.ops.push((queue, Side::Send));
        self.ops.len() - 1
    }

    /// How many operations the set holds.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the set holds no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The index of an operation that is ready now, if any; never waits.
    ///
    /// When none is, it runs what a fruitless `try_recv` runs on each queue it receives from
    /// (the rate-limited scan for lapsed holds, see [`Queue::try_recv`]), so that a poller that
    /// only asks this still gets a hung consumer's message back within the visibility timeout
    /// plus 100 ms; and looks once more if that handed something out.
    pub fn try_ready(&self) -> Option<usize> {
        self.look().or_else(|| {
            let expired = self.ops.iter().fold(false, |expired, &(queue, side)| {
                expired | (side == Side::Recv && queue.idle_poll())
            });
            if expired {
                self.look()
            } else {
                None
            }
        })
    }

    /// The index of an operation that is ready now, if any: one look at each queue's ring.
    fn look(&self) -> Option<usize> {
        let n = self.ops.len();
        let start = self.next.get();
        (0..n).map(|k| (start + k) % n).find(|&i| {
            let (queue, side) = self.ops[i];
            let ring = queue.ring();
            let ready = match side {
                Side::Recv => ring.recv_ready(),
                Side::Send => ring.send_ready(),
            };
            if ready {
                self.next.set((i + 1) % n);
            }
            ready
        })
    }

    /// Waits until an operation is ready and returns its index. `InvalidOptions` if the set is
    /// empty (it would wait forever); `Io` if the reactor cannot start a helper thread.
    pub fn ready(&self) -> Result<usize> {
        self.ready_until(None)
    }

    /// Waits at most `timeout` for an operation to be ready; `Timeout` if none was.
    pub fn ready_timeout(&self, timeout: Duration) -> Result<usize> {
        match Instant::now().checked_add(timeout) {
            Some(at) => self.ready_until(Some(at)),
            None => self.ready_until(None),
        }
    }

    fn ready_until(&self, deadline: Option<Instant>) -> Result<usize> {
        if self.ops.is_empty() {
            return match deadline {
                Some(at) => {
                    std::thread::sleep(at.saturating_duration_since(Instant::now()));
                    Err(Error::Timeout)
                }
                None => Err(Error::InvalidOptions(
                    "Select::ready on an empty set would wait forever".into(),
                )),
            };
        }
        if let Some(i) = self.try_ready() {
            return Ok(i);
        }
        for _ in 0..(SPIN_LOOKS / self.ops.len()).max(1) {
            spin_hint();
            if let Some(i) = self.try_ready() {
                return Ok(i);
            }
        }
        let past = |at: Option<Instant>| at.is_some_and(|at| Instant::now() >= at);
        // Whether the last sleep ended at a crash-recovery deadline (see `reactor::SLICE`).
        let mut slice_over = false;
        loop {
            if past(deadline) {
                return self.try_ready().ok_or(Error::Timeout);
            }
            // Crash recovery between slices, as a blocked call runs it; not before every
            // sleep, which would sweep every queue of a large set after every message.
            if slice_over {
                for (queue, _) in &self.ops {
                    queue.maybe_sweep();
                }
            }
            // Count ourselves on every word, then look once more (see `wait`'s module doc).
            let waiters: Vec<_> = self
                .ops
                .iter()
                .map(|&(queue, side)| queue.side_waiter(side))
                .collect();
            let registered: Vec<u32> = waiters.iter().map(|w| w.register()).collect();
            fence(Ordering::SeqCst);
            if let Some(i) = self.try_ready() {
                waiters.iter().for_each(|w| w.deregister());
                return Ok(i);
            }
            let sleepers: Vec<_> = waiters.iter().zip(registered).collect();
            let me = std::thread::current();
            let (cells, failed) = reactor::park_all(&sleepers, || Wake::Thread(me.clone()));
            // A sleeper whose epoch moved already was not taken: uncount it (and do not sleep).
            let mut moved = false;
            for (cell, waiter) in cells.iter().zip(&waiters) {
                if cell.is_none() {
                    waiter.deregister();
                    moved = true;
                }
            }
            let cells: Vec<_> = cells.into_iter().flatten().collect();
            if let Some(e) = failed {
                reactor::cancel_all(&cells);
                return Err(e);
            }
            if !moved {
                while !cells.iter().any(|c| c.fired()) && !past(deadline) {
                    match deadline {
                        Some(at) => {
                            std::thread::park_timeout(at.saturating_duration_since(Instant::now()))
                        }
                        None => std::thread::park(),
                    }
                }
            }
            slice_over = cells.iter().any(|c| c.fired() && c.expired());
            reactor::cancel_all(&cells);
            if let Some(i) = self.try_ready() {
                return Ok(i);
            }
        }
    }
}
