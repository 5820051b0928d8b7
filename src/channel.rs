// SPDX-License-Identifier: MIT OR Apache-2.0
//! [`Sender`] and [`Receiver`]: crossbeam-channel's shape over a queue of typed messages, with
//! its disconnect across processes.
//!
//! Each handle owns its own [`Queue`] handle, so its own participant entry, and records its role
//! there when it is made: a sender as soon as it attaches, not at its first send. Clones share
//! the handle (as crossbeam's share the channel).
//!
//! # Disconnection
//! With [`Options::close_when_producers_gone`], a receiver that finds the queue empty asks
//! whether any sender is left, and if none is, closes the queue (for every process: messages
//! still queued stay receivable, then everyone gets `Closed`). "None is left" means:
//! - at least one `Sender` has ever attached (the header's `senders_attached` word, raised by
//!   each attach), so a receiver that starts before its producers waits for them; and
//! - no entry of the participant table both records a send role and is held by a live handle
//!   (the kernel lock of `participant::is_held`, as crash recovery decides it). Every entry is
//!   scanned, without assuming one entry per handle. A plain `Queue` handle that has sent
//!   counts too while it lives.
//!
//! The question costs a walk over the table and one `fcntl` per sender entry, so it stays off
//! the fast path: it is asked only when a receive finds the queue empty, and at most once per
//! [`PRODUCERS_CHECK_INTERVAL`] per receiver (a blocked receive waits in slices of that length).
//! So a receiver learns of the last sender's death within about one interval.
//!
//! A sender that attaches after the last one left races with that close: it may find the queue
//! closed. Attach every sender before the last one can leave (as crossbeam needs a live sender
//! to clone from).

use crate::error::{Error, Result};
use crate::options::Options;
use crate::participant::{self, ROLE_RECEIVER, ROLE_SENDER};
use crate::queue::Queue;
use crate::sync::Ordering;
use crate::typed::{Typed, TypedGuard};
use bytemuck::Pod;
use std::borrow::Borrow;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often, at most, one receiver asks whether the senders are gone (see the module docs):
/// as often as a blocked call runs crash recovery.
pub(crate) const PRODUCERS_CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// Creates a queue file for messages of type `T` at `path` and returns a sender and a receiver
/// on it, each with its own handle: crossbeam-channel's `bounded(capacity)`, with a file.
/// Other processes attach with [`Queue::open_sender`] and [`Queue::open_receiver`].
///
/// ```
/// use std::thread;
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("numbers");
/// let options = shmq::Options::new(16, 8).close_when_producers_gone(true);
/// let (tx, rx) = shmq::channel::<u64>(&path, options)?;
/// let producer = thread::spawn(move || {
///     for i in 0..100 {
///         tx.send(i).unwrap();
///     }
///     // `tx` dropped: the last sender is gone
/// });
/// let sum: u64 = rx.iter().sum(); // ends once the queue is drained and no sender is left
/// assert_eq!(sum, 4950);
/// producer.join().unwrap();
/// # Ok::<(), shmq::Error>(())
/// ```
pub fn channel<T: Pod>(
    path: impl AsRef<Path>,
    options: Options,
) -> Result<(Sender<T>, Receiver<T>)> {
    let path = path.as_ref();
    let receiver = Queue::create(path, options)?.receiver()?;
    let sender = Queue::open(path)?.sender()?;
    Ok((sender, receiver))
}

impl Queue {
    /// This handle as the sending side of a channel of `T`s. It counts as a producer from now
    /// until it is dropped (or its process dies); see [`Receiver::producers_alive`].
    pub fn sender<T: Pod>(self) -> Result<Sender<T>> {
        let typed = self.typed::<T>()?;
        attach(typed.queue(), ROLE_SENDER);
        // After the role: a receiver that sees the count raised then finds the role (both
        // SeqCst), so it never takes a sender attaching now for a dead one.
        let counters = &typed.queue().header().counters.0;
        counters.senders_attached.fetch_add(1, Ordering::SeqCst);
        Ok(Sender {
            typed: Arc::new(typed),
        })
    }

    /// This handle as the receiving side of a channel of `T`s.
    pub fn receiver<T: Pod>(self) -> Result<Receiver<T>> {
        let typed = self.typed::<T>()?;
        attach(typed.queue(), ROLE_RECEIVER);
        Ok(Receiver {
            inner: Arc::new(ReceiverInner {
                closes: typed.queue().flags() & crate::layout::FLAG_CLOSE_WHEN_PRODUCERS_GONE != 0,
                typed,
                epoch: Instant::now(),
                last_check_ns: AtomicU64::new(0),
            }),
        })
    }

    /// Opens the queue at `path` as a sender of `T`s ([`Queue::open`], then [`sender`](Self::sender)).
    pub fn open_sender<T: Pod>(path: impl AsRef<Path>) -> Result<Sender<T>> {
        Queue::open(path)?.sender()
    }

    /// Opens the queue at `path` as a receiver of `T`s ([`Queue::open`], then
    /// [`receiver`](Self::receiver)).
    pub fn open_receiver<T: Pod>(path: impl AsRef<Path>) -> Result<Receiver<T>> {
        Queue::open(path)?.receiver()
    }
}

/// Records `role` in the handle's participant entry (as its first send or receive would).
fn attach(queue: &Queue, role: u32) {
    if let Some(entry) = queue
        .participants()
        .get(queue.registration().index as usize)
    {
        entry.roles.fetch_or(role, Ordering::SeqCst);
    }
}

/// Whether a live handle that sends is attached to the queue: scans the whole participant table
/// for entries in use that record a send role, and asks the kernel whether each one's holder
/// lives (the caller's own entries, one per thread that used the handle, live by definition).
fn live_sender(queue: &Queue) -> bool {
    (0u32..).zip(queue.participants()).any(|(index, entry)| {
        entry.token.load(Ordering::SeqCst) & 1 == 1
            && entry.roles.load(Ordering::SeqCst) & ROLE_SENDER != 0
            // A probe error is no proof of death: count the sender as alive.
            && (queue.owns_entry(index)
                || participant::is_held(queue.file(), index).unwrap_or(true))
    })
}

/// The sending side of a channel of `T`s: crossbeam-channel's `Sender`, across processes.
/// Cloning shares the handle; the last clone dropped detaches it.
pub struct Sender<T> {
    typed: Arc<Typed<T>>,
}

impl<T: Pod> Sender<T> {
    /// Sends `msg` (a `T` or a `&T`), waiting while the queue is full; `Closed` if the queue
    /// is closed.
    pub fn send(&self, msg: impl Borrow<T>) -> Result<()> {
        self.typed.send(msg.borrow())
    }

    /// Sends `msg` if there is room now; `Full` otherwise.
    pub fn try_send(&self, msg: impl Borrow<T>) -> Result<()> {
        self.typed.try_send(msg.borrow())
    }

    /// Sends `msg`, waiting at most `timeout` for room.
    pub fn send_timeout(&self, msg: impl Borrow<T>, timeout: Duration) -> Result<()> {
        self.typed.send_timeout(msg.borrow(), timeout)
    }
}

impl<T> Sender<T> {
    /// The queue handle, for what does not depend on the message type (`close`, `stats`, ...).
    pub fn queue(&self) -> &Queue {
        self.typed.queue()
    }

    /// Messages in the queue now (a snapshot: see [`Queue::len`]).
    pub fn len(&self) -> usize {
        self.queue().len()
    }

    /// Whether the queue is empty now (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.queue().is_empty()
    }

    /// Whether the queue is full now (a snapshot).
    pub fn is_full(&self) -> bool {
        self.queue().is_full()
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.queue().capacity() as usize
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender {
            typed: Arc::clone(&self.typed),
        }
    }
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Sender").field(&self.typed).finish()
    }
}

/// The receiving side of a channel of `T`s: crossbeam-channel's `Receiver`, across processes.
/// Cloning shares the handle.
///
/// Without [`Options::close_when_producers_gone`], receives end only at `Closed`, after someone
/// called [`Queue::close`]; with it, also once every sender is gone (see
/// [`producers_alive`](Self::producers_alive)).
pub struct Receiver<T> {
    inner: Arc<ReceiverInner<T>>,
}

struct ReceiverInner<T> {
    typed: Typed<T>,
    /// The queue was created with `close_when_producers_gone`.
    closes: bool,
    /// Time base of `last_check_ns`.
    epoch: Instant,
    /// When (ns after `epoch`, 0: never) this receiver last asked whether the senders are gone.
    last_check_ns: AtomicU64,
}

impl<T: Pod> Receiver<T> {
    /// Receives the next message, waiting while the queue is empty; `Closed` once the queue is
    /// closed (or, with `close_when_producers_gone`, every sender is gone) and drained.
    pub fn recv(&self) -> Result<T> {
        self.recv_until(None, Typed::try_recv, Typed::recv_timeout)
    }

    /// Receives the next message if one is ready; `Empty` if none is, `Closed` if none will be.
    pub fn try_recv(&self) -> Result<T> {
        match self.inner.typed.try_recv() {
            Err(Error::Empty) if self.close_if_producers_gone() => self.inner.typed.try_recv(),
            other => other,
        }
    }

    /// Receives the next message, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T> {
        let deadline = Instant::now().checked_add(timeout);
        self.recv_until(deadline, Typed::try_recv, Typed::recv_timeout)
    }

    /// Claims the next message and lends it in place (no copy), waiting while the queue is
    /// empty; the slot is freed when the guard drops.
    pub fn recv_in_place(&self) -> Result<TypedGuard<'_, T>> {
        self.recv_until(None, Typed::try_recv_in_place, Typed::recv_in_place_timeout)
    }

    /// Like [`recv_in_place`](Self::recv_in_place), waiting at most `timeout`.
    pub fn recv_in_place_timeout(&self, timeout: Duration) -> Result<TypedGuard<'_, T>> {
        let deadline = Instant::now().checked_add(timeout);
        self.recv_until(
            deadline,
            Typed::try_recv_in_place,
            Typed::recv_in_place_timeout,
        )
    }

    /// A blocking iterator over the messages: ends at `Closed` (or at any other error, which
    /// [`Iter::error`] then gives).
    pub fn iter(&self) -> Iter<'_, T> {
        Iter {
            receiver: self,
            error: None,
        }
    }

    /// An iterator over the messages ready now: ends when the queue is empty or closed (or at
    /// any other error, which [`TryIter::error`] then gives).
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter {
            receiver: self,
            error: None,
        }
    }

    /// Receives with `try_receive` (`Empty` when nothing is ready) or `receive(wait)` until
    /// `deadline` (`None`: no limit). Without `close_when_producers_gone`, one call for the
    /// whole wait; with it, waits of at most `PRODUCERS_CHECK_INTERVAL`, asking whether the
    /// senders are gone between them.
    fn recv_until<'a, R>(
        &'a self,
        deadline: Option<Instant>,
        try_receive: impl Fn(&'a Typed<T>) -> Result<R>,
        receive: impl Fn(&'a Typed<T>, Duration) -> Result<R>,
    ) -> Result<R> {
        let typed = &self.inner.typed;
        let left = |now: Instant| deadline.map(|d| d.saturating_duration_since(now));
        if !self.inner.closes {
            return match left(Instant::now()) {
                Some(wait) => receive(typed, wait),
                // Waits of a day at a time: a `Timeout` is then only a reason to wait again.
                None => loop {
                    match receive(typed, Duration::from_secs(86_400)) {
                        Err(Error::Timeout) => continue,
                        other => break other,
                    }
                },
            };
        }
        loop {
            match try_receive(typed) {
                Err(Error::Empty) => {}
                other => return other,
            }
            // Empty now: if the senders are gone, the close makes the next receive drain what
            // is left and then say `Closed`.
            if self.close_if_producers_gone() {
                continue;
            }
            let wait = left(Instant::now()).map_or(PRODUCERS_CHECK_INTERVAL, |left| {
                left.min(PRODUCERS_CHECK_INTERVAL)
            });
            match receive(typed, wait) {
                Err(Error::Timeout) if left(Instant::now()) == Some(Duration::ZERO) => {
                    return Err(Error::Timeout)
                }
                Err(Error::Timeout) => {}
                other => return other,
            }
        }
    }
}

impl<T> Receiver<T> {
    /// The queue handle, for what does not depend on the message type (`close`, `stats`, ...).
    pub fn queue(&self) -> &Queue {
        self.inner.typed.queue()
    }

    /// Messages in the queue now (a snapshot: see [`Queue::len`]).
    pub fn len(&self) -> usize {
        self.queue().len()
    }

    /// Whether the queue is empty now (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.queue().is_empty()
    }

    /// Whether the queue is full now (a snapshot).
    pub fn is_full(&self) -> bool {
        self.queue().is_full()
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.queue().capacity() as usize
    }

    /// Whether a sender is attached now: a live [`Sender`] in any process (or a live plain
    /// `Queue` handle that has sent). `false` before the first sender attaches, and once the
    /// last one is dropped or its process died (decided by the kernel's locks, as crash
    /// recovery decides it). Walks the participant table: a call for slow paths.
    pub fn producers_alive(&self) -> bool {
        live_sender(self.queue())
    }

    /// With `close_when_producers_gone`, at most once per `PRODUCERS_CHECK_INTERVAL`: if a
    /// sender has attached and none is left, closes the queue and returns `true`.
    fn close_if_producers_gone(&self) -> bool {
        let inner = &*self.inner;
        if !inner.closes {
            return false;
        }
        let now = (inner.epoch.elapsed().as_nanos() as u64).max(1);
        let last = inner.last_check_ns.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < PRODUCERS_CHECK_INTERVAL.as_nanos() as u64 {
            return false;
        }
        // One clone of a shared receiver asks; the others skip this round.
        if inner
            .last_check_ns
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        let queue = self.queue();
        let attached = queue
            .header()
            .counters
            .0
            .senders_attached
            .load(Ordering::SeqCst);
        if attached == 0 || live_sender(queue) {
            return false;
        }
        queue.close();
        true
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        Receiver {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Receiver").field(&self.inner.typed).finish()
    }
}

/// A blocking iterator over a [`Receiver`]'s messages ([`Receiver::iter`]).
#[derive(Debug)]
pub struct Iter<'r, T> {
    receiver: &'r Receiver<T>,
    error: Option<Error>,
}

impl<T> Iter<'_, T> {
    /// The error that ended the iteration, if it was not `Closed`.
    pub fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }
}

impl<T: Pod> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        if self.error.is_some() {
            return None;
        }
        match self.receiver.recv() {
            Ok(msg) => Some(msg),
            Err(Error::Closed) => None,
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }
}

/// An iterator over the messages ready now ([`Receiver::try_iter`]).
#[derive(Debug)]
pub struct TryIter<'r, T> {
    receiver: &'r Receiver<T>,
    error: Option<Error>,
}

impl<T> TryIter<'_, T> {
    /// The error that ended the iteration, if it was not `Empty` or `Closed`.
    pub fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }
}

impl<T: Pod> Iterator for TryIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        if self.error.is_some() {
            return None;
        }
        match self.receiver.try_recv() {
            Ok(msg) => Some(msg),
            Err(Error::Empty | Error::Closed) => None,
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }
}

/// An owning blocking iterator over a [`Receiver`]'s messages (`for msg in receiver`).
#[derive(Debug)]
pub struct IntoIter<T> {
    receiver: Receiver<T>,
    error: Option<Error>,
}

impl<T> IntoIter<T> {
    /// The error that ended the iteration, if it was not `Closed`.
    pub fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }
}

impl<T: Pod> Iterator for IntoIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        let mut iter = Iter {
            receiver: &self.receiver,
            error: self.error.take(),
        };
        let next = iter.next();
        self.error = iter.error;
        next
    }
}

impl<T: Pod> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        IntoIter {
            receiver: self,
            error: None,
        }
    }
}

impl<'r, T: Pod> IntoIterator for &'r Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'r, T>;
    fn into_iter(self) -> Iter<'r, T> {
        self.iter()
    }
}

// Compile-time check: both ends may move to, and be shared by, other threads.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Sender<u64>>();
    send_sync::<Receiver<u64>>();
};

#[cfg(test)]
mod tests {
    use super::*;

    fn options(capacity: u32) -> Options {
        Options::new(capacity, 8).close_when_producers_gone(true)
    }

    #[test]
    fn a_receiver_that_starts_first_waits_for_its_senders() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q");
        let rx = Queue::create(&path, options(4))
            .unwrap()
            .receiver::<u64>()
            .unwrap();
        assert!(!rx.producers_alive());
        // No sender has attached yet: not a disconnect.
        assert_eq!(rx.try_recv(), Err(Error::Empty));
        assert_eq!(
            rx.recv_timeout(PRODUCERS_CHECK_INTERVAL * 3),
            Err(Error::Timeout)
        );
        assert!(!rx.queue().is_closed());
        let tx = Queue::open_sender::<u64>(&path).unwrap();
        assert!(rx.producers_alive());
        tx.send(5).unwrap();
        drop(tx);
        assert!(!rx.producers_alive());
        assert_eq!(rx.recv(), Ok(5));
        assert_eq!(rx.recv(), Err(Error::Closed));
    }

    #[test]
    fn every_sender_clone_and_handle_must_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q");
        let (tx, rx) = channel::<u32>(&path, options(8)).unwrap();
        let tx_clone = tx.clone();
        let other = Queue::open_sender::<u32>(&path).unwrap();
        drop(tx);
        assert!(rx.producers_alive(), "a clone still holds the handle");
        drop(tx_clone);
        assert!(rx.producers_alive(), "another handle is attached");
        other.send(1u32).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(1));
        drop(other);
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Err(Error::Closed));
        assert!(
            rx.queue().is_closed(),
            "the disconnect closes the queue for everyone"
        );
    }

    #[test]
    fn without_the_option_a_receiver_waits_on_after_its_senders() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = channel::<u32>(dir.path().join("q"), Options::new(8, 4)).unwrap();
        tx.send(1u32).unwrap();
        drop(tx);
        assert!(!rx.producers_alive());
        assert_eq!(rx.recv(), Ok(1));
        assert_eq!(rx.try_recv(), Err(Error::Empty));
        assert_eq!(
            rx.recv_timeout(PRODUCERS_CHECK_INTERVAL * 3),
            Err(Error::Timeout)
        );
    }

    #[test]
    fn the_check_runs_at_most_once_per_interval() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = channel::<u32>(dir.path().join("q"), options(8)).unwrap();
        assert_eq!(rx.try_recv(), Err(Error::Empty)); // checks: a sender lives
        drop(tx);
        // Within the interval, an empty poll does not ask again...
        let started = Instant::now();
        let early = rx.try_recv();
        if started.elapsed() < PRODUCERS_CHECK_INTERVAL / 2 {
            assert_eq!(early, Err(Error::Empty));
        }
        // ...and after it, it does.
        std::thread::sleep(PRODUCERS_CHECK_INTERVAL);
        assert_eq!(rx.try_recv(), Err(Error::Closed));
    }
}
