// SPDX-License-Identifier: MIT OR Apache-2.0
//! Async sends and receives: [`Queue::send_async`], [`Queue::recv_async`] and
//! [`Queue::recv_in_place_async`], futures that work under any executor.
//!
//! A future first makes the non-blocking call (`try_send`, `try_recv`, `try_recv_in_place`),
//! exactly as a synchronous caller would; only when that says `Full` or `Empty`, and still does
//! after a few microseconds of looking again (a peer that answers at once), does it count
//! itself as a sleeper and hand its `Waker` to the reactor (`reactor`), whose helper threads
//! sleep on the queue's futex word and wake the task when a peer in any process makes
//! progress. No runtime is needed, and an idle task costs no CPU.
//!
//! # Cancellation
//! A future holds nothing between polls but its registration with the reactor: a message is
//! claimed, copied and released (or the guard handed out) within the one poll that completes
//! the future. Dropping it at any await point takes its registration back and uncounts its
//! sleeper; no message is lost and no slot is held.
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! use shmq::{Options, Queue};
//! let q = Queue::create(dir.path().join("q"), Options::new(8, 64))?;
//! # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! # rt.block_on(async {
//! q.send_async(b"hello").await?;
//! let mut buf = [0u8; 64];
//! let n = q.recv_async(&mut buf).await?;
//! assert_eq!(&buf[..n], b"hello");
//! let guard = { q.send_async(b"in place").await?; q.recv_in_place_async().await? };
//! assert_eq!(&*guard, b"in place");
//! # Ok::<(), shmq::Error>(())
//! # })?;
//! # Ok::<(), shmq::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::queue::{Queue, RecvGuard};
use crate::reactor::{self, Cell, Wake};
use crate::sync::{fence, spin_hint, Ordering};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// How many times a future looks again, with a CPU pause between looks, before it registers
/// with the reactor: a quarter of a blocking call's spin, a few microseconds.
const SPIN_TRIES: u32 = 1024;

/// Which side of a queue a waiter waits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// For a message (the receivers' word).
    Recv,
    /// For room (the senders' word).
    Send,
}

impl Queue {
    /// The wait word of `side` and how a sleeper on it is counted.
    pub(crate) fn side_waiter(&self, side: Side) -> crate::wait::Waiter<'_> {
        // A future that waits may have claimed nothing yet (an empty poll records no role).
        self.record_role(match side {
            Side::Recv => crate::participant::ROLE_RECEIVER,
            Side::Send => crate::participant::ROLE_SENDER,
        });
        let header = self.header();
        match side {
            Side::Recv => self.waiter(&header.recv_wait.0, 0),
            Side::Send => self.waiter(&header.send_wait.0, 16),
        }
    }

    /// Counts a wait in the statistics, as a blocking call does the first time it sleeps.
    pub(crate) fn count_wait(&self, side: Side) {
        let counters = &self.header().counters.0;
        match side {
            Side::Recv => &counters.empty_waits,
            Side::Send => &counters.full_waits,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// Sends `msg`, waiting (without blocking the thread) while the queue is full. `Closed` if
    /// the queue is closed, `TooLarge` if `msg` exceeds the maximum message size.
    ///
    /// The future is cancellation-safe: dropped before it completes, it has sent nothing.
    pub fn send_async<'q, 'm>(&'q self, msg: &'m [u8]) -> SendFuture<'q, 'm> {
        SendFuture {
            msg,
            wait: AsyncWait::new(self, Side::Send),
        }
    }

    /// Receives the next message into `buf`, waiting (without blocking the thread) while the
    /// queue is empty; returns its length. `Closed` once the queue is closed and drained;
    /// `BufferTooSmall` (the message stays queued) if `buf` is too short.
    ///
    /// The future is cancellation-safe: dropped before it completes, it has received nothing.
    pub fn recv_async<'q, 'b>(&'q self, buf: &'b mut [u8]) -> RecvFuture<'q, 'b> {
        RecvFuture {
            buf,
            wait: AsyncWait::new(self, Side::Recv),
        }
    }

    /// Claims the next message and lends it in place ([`RecvGuard`]), waiting (without
    /// blocking the thread) while the queue is empty. The slot is freed when the guard drops.
    ///
    /// The future is cancellation-safe: dropped before it completes, it has claimed nothing.
    pub fn recv_in_place_async(&self) -> RecvInPlaceFuture<'_> {
        RecvInPlaceFuture {
            wait: AsyncWait::new(self, Side::Recv),
        }
    }
}

/// The future of [`Queue::send_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct SendFuture<'q, 'm> {
    msg: &'m [u8],
    wait: AsyncWait<'q>,
}

/// The future of [`Queue::recv_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct RecvFuture<'q, 'b> {
    buf: &'b mut [u8],
    wait: AsyncWait<'q>,
}

/// The future of [`Queue::recv_in_place_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct RecvInPlaceFuture<'q> {
    wait: AsyncWait<'q>,
}

impl Future for SendFuture<'_, '_> {
    type Output = Result<()>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        let (queue, msg) = (this.wait.queue, this.msg);
        this.wait.poll(cx, || match queue.try_send(msg) {
            Err(Error::Full) => None,
            done => Some(done),
        })
    }
}

impl Future for RecvFuture<'_, '_> {
    type Output = Result<usize>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<usize>> {
        let this = self.get_mut();
        let (queue, buf) = (this.wait.queue, &mut *this.buf);
        this.wait.poll(cx, || match queue.try_recv(buf) {
            Err(Error::Empty) => None,
            done => Some(done),
        })
    }
}

impl<'q> Future for RecvInPlaceFuture<'q> {
    type Output = Result<RecvGuard<'q>>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<RecvGuard<'q>>> {
        let this = self.get_mut();
        let queue: &'q Queue = this.wait.queue;
        this.wait.poll(cx, || match queue.try_recv_in_place() {
            Err(Error::Empty) => None,
            done => Some(done),
        })
    }
}

/// The waiting part of every future: its queue, side, and registration with the reactor.
struct AsyncWait<'q> {
    queue: &'q Queue,
    side: Side,
    /// The registration, while the future waits (see `reactor::Cell`).
    cell: Option<Arc<Cell>>,
    /// Whether the wait was counted in the statistics.
    counted: bool,
}

impl<'q> AsyncWait<'q> {
    fn new(queue: &'q Queue, side: Side) -> Self {
        AsyncWait {
            queue,
            side,
            cell: None,
            counted: false,
        }
    }

    /// Tries `attempt` (the non-blocking call: `None` for `Full`/`Empty`); if it cannot
    /// complete, registers the task with the reactor (see `wait`'s module doc for why the
    /// count, the fence and the second attempt make a wake-up impossible to lose).
    fn poll<T>(
        &mut self,
        cx: &mut Context<'_>,
        mut attempt: impl FnMut() -> Option<Result<T>>,
    ) -> Poll<Result<T>> {
        if let Some(cell) = &self.cell {
            if !cell.rearm(cx.waker()) {
                // Still registered, and nothing moved: a spurious poll.
                return Poll::Pending;
            }
            // Fired: the word's epoch moved, or the slice passed (then run crash recovery, as a
            // blocked call does between sleeps).
            let expired = cell.expired();
            self.cell = None;
            if expired {
                self.queue.maybe_sweep();
            }
        }
        loop {
            if let Some(done) = attempt() {
                return Poll::Ready(done);
            }
            // A peer that answers at once (a ping-pong) answers within a few microseconds:
            // look again for that long before handing the task to the reactor, whose wake-up
            // costs two thread hand-overs. Bounded, so the executor's thread is held no longer
            // than a system call would hold it; and only before the first wait, so a task
            // woken for crash recovery (every waiter once a slice) does not spin again.
            if !self.counted {
                for _ in 0..SPIN_TRIES {
                    spin_hint();
                    if let Some(done) = attempt() {
                        return Poll::Ready(done);
                    }
                }
            }
            if !self.counted {
                self.counted = true;
                self.queue.count_wait(self.side);
            }
            let waiter = self.queue.side_waiter(self.side);
            let registered = waiter.register();
            fence(Ordering::SeqCst);
            if let Some(done) = attempt() {
                waiter.deregister();
                return Poll::Ready(done);
            }
            match reactor::park(&waiter, registered, Wake::Task(cx.waker().clone())) {
                Ok(Some(cell)) => {
                    self.cell = Some(cell);
                    return Poll::Pending;
                }
                // A wake came between the count and the hand-over: look again.
                Ok(None) => waiter.deregister(),
                Err(e) => {
                    waiter.deregister();
                    return Poll::Ready(Err(e));
                }
            }
        }
    }
}

impl Drop for AsyncWait<'_> {
    fn drop(&mut self) {
        if let Some(cell) = self.cell.take() {
            reactor::cancel(&cell);
        }
    }
}
