// SPDX-License-Identifier: MIT OR Apache-2.0
//! [`Typed<T>`]: a queue whose messages are values of one plain-old-data type `T` (a
//! `#[repr(C)]` struct, an integer, an array of them), sent and received as values instead of
//! bytes.
//!
//! A message is the bytes of a `T` ([`bytemuck::bytes_of`]), so any process that sends
//! `size_of::<T>()` bytes laid out the same way interoperates: a C program sending the same
//! `#[repr(C)]` struct with `shmq_send(q, &value, sizeof value, ...)`, for example
//! (`examples/c/sensor.c` and `examples/sensor_monitor.rs`). `T: Pod` is what makes this sound:
//! every bit pattern is a valid `T`, so bytes from another process (untrusted, like all of the
//! mapping) can only make a wrong value, never an invalid one.

use crate::error::{Error, Result};
use crate::options::Options;
use crate::queue::{Queue, RecvGuard};
use bytemuck::Pod;
use std::marker::PhantomData;
use std::path::Path;
use std::time::Duration;

/// A queue handle whose messages are values of type `T`.
///
/// Built from a [`Queue`] ([`Queue::typed`], [`Typed::new`]) or opened directly; the queue's
/// maximum message size must hold a `T` (else `TooLarge` when the handle is made, not at the
/// first send). Every message is exactly `size_of::<T>()` bytes; a message of another length
/// (a peer that sends something else on the queue) is consumed and reported as
/// [`Error::WrongSize`].
///
/// ```
/// use shmq::bytemuck::{Pod, Zeroable};
/// use shmq::{Options, Queue, Typed};
///
/// #[repr(C)]
/// #[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
/// #[bytemuck(crate = "shmq::bytemuck")] // or depend on bytemuck with its `derive` feature
/// struct Order {
///     id: u64,
///     price_cents: i64,
///     quantity: u32,
///     side: u32,
/// }
///
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("orders");
/// let orders: Typed<Order> = Queue::create(&path, Options::new(64, 32))?.typed()?;
/// let order = Order { id: 7, price_cents: 12_50, quantity: 3, side: 1 };
/// orders.send(&order)?;
/// assert_eq!(orders.recv()?, order);
///
/// orders.send(&order)?;
/// let held = orders.recv_in_place()?; // no copy: `held` derefs to the `Order` in the slot
/// assert_eq!(held.quantity, 3);
/// # Ok::<(), shmq::Error>(())
/// ```
///
/// A type that is not plain old data (one holding a pointer, a `String`, a `bool`, padding) is
/// refused at compile time:
///
/// ```compile_fail
/// # let dir = tempfile::tempdir().unwrap();
/// let q = shmq::Queue::create(dir.path().join("q"), shmq::Options::new(8, 64))?;
/// let names: shmq::Typed<String> = q.typed()?; // error: `String: Pod` is not satisfied
/// # Ok::<(), shmq::Error>(())
/// ```
pub struct Typed<T> {
    queue: Queue,
    // `fn() -> T`: the handle holds no `T` (it is `Send + Sync` whatever `T` is); it makes and
    // takes `T`s by copy.
    _message: PhantomData<fn(T) -> T>,
}

impl<T: Pod> Typed<T> {
    /// Uses `queue` for messages of type `T`; `TooLarge` if a `T` is larger than its maximum
    /// message size.
    pub fn new(queue: Queue) -> Result<Self> {
        let size = std::mem::size_of::<T>();
        if size > queue.max_message_size() {
            return Err(Error::TooLarge {
                len: size,
                max: queue.max_message_size(),
            });
        }
        Ok(Typed {
            queue,
            _message: PhantomData,
        })
    }

    /// Creates a queue for messages of type `T` (see [`Queue::create`]).
    pub fn create(path: impl AsRef<Path>, options: Options) -> Result<Self> {
        Typed::new(Queue::create(path, options)?)
    }

    /// Opens an existing queue for messages of type `T` (see [`Queue::open`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Typed::new(Queue::open(path)?)
    }

    /// Sends a copy of `msg` if there is room now; `Full` otherwise (see [`Queue::try_send`]).
    pub fn try_send(&self, msg: &T) -> Result<()> {
        self.queue.try_send(bytemuck::bytes_of(msg))
    }

    /// Sends a copy of `msg`, waiting while the queue is full (see [`Queue::send`]).
    pub fn send(&self, msg: &T) -> Result<()> {
        self.queue.send(bytemuck::bytes_of(msg))
    }

    /// Sends a copy of `msg`, waiting at most `timeout` for room.
    pub fn send_timeout(&self, msg: &T, timeout: Duration) -> Result<()> {
        self.queue.send_timeout(bytemuck::bytes_of(msg), timeout)
    }

    /// Receives the next message if one is ready; `Empty` otherwise.
    pub fn try_recv(&self) -> Result<T> {
        self.recv_with(|each| self.queue.try_recv_batch(1, each))
    }

    /// Receives the next message, waiting while the queue is empty; `Closed` once the queue is
    /// closed and drained.
    pub fn recv(&self) -> Result<T> {
        self.recv_with(|each| self.queue.recv_batch(1, each))
    }

    /// Receives the next message, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T> {
        self.recv_with(|each| self.queue.recv_batch_timeout(1, timeout, each))
    }

    /// Claims the next message if one is ready and lends it in place (no copy); the slot is
    /// freed when the guard drops.
    pub fn try_recv_in_place(&self) -> Result<TypedGuard<'_, T>> {
        TypedGuard::new(self.queue.try_recv_in_place()?)
    }

    /// Like [`try_recv_in_place`](Self::try_recv_in_place), waiting while the queue is empty.
    pub fn recv_in_place(&self) -> Result<TypedGuard<'_, T>> {
        TypedGuard::new(self.queue.recv_in_place()?)
    }

    /// Like [`recv_in_place`](Self::recv_in_place), waiting at most `timeout`.
    pub fn recv_in_place_timeout(&self, timeout: Duration) -> Result<TypedGuard<'_, T>> {
        TypedGuard::new(self.queue.recv_in_place_timeout(timeout)?)
    }

    /// One message, received by `receive` (a batch receive of at most one message, which lends
    /// it in place and frees its slot after the call: one copy, and no guard to keep).
    fn recv_with(&self, receive: impl FnOnce(&mut dyn FnMut(&[u8])) -> Result<usize>) -> Result<T> {
        let mut got = Err(Error::Empty);
        receive(&mut |bytes| got = read::<T>(bytes))?;
        got
    }
}

/// The `T` in `bytes`, copied out (any alignment), or `WrongSize`.
fn read<T: Pod>(bytes: &[u8]) -> Result<T> {
    check_size::<T>(bytes)?;
    Ok(bytemuck::pod_read_unaligned(bytes))
}

fn check_size<T>(bytes: &[u8]) -> Result<()> {
    let expected = std::mem::size_of::<T>();
    if bytes.len() != expected {
        return Err(Error::WrongSize {
            len: bytes.len(),
            expected,
        });
    }
    Ok(())
}

impl<T> Typed<T> {
    /// The queue, for the calls that do not depend on the message type (`close`, `len`,
    /// `stats`, ...).
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// The queue handle back.
    pub fn into_inner(self) -> Queue {
        self.queue
    }
}

impl Queue {
    /// This handle, for messages of type `T` (see [`Typed`]); `TooLarge` if a `T` is larger
    /// than the queue's maximum message size.
    pub fn typed<T: Pod>(self) -> Result<Typed<T>> {
        Typed::new(self)
    }
}

impl<T> std::fmt::Debug for Typed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Typed")
            .field("message", &std::any::type_name::<T>())
            .field("queue", &self.queue)
            .finish()
    }
}

/// A received `T` lent in place: derefs to the value in the slot, which is freed for producers
/// when the guard drops.
///
/// Without a copy when the slot's payload is aligned for `T` (it starts 16-byte aligned, so for
/// every `T` aligned to 16 bytes or less); a `T` with a larger alignment is copied into the
/// guard instead, so that it is never read misaligned.
pub struct TypedGuard<'q, T> {
    guard: RecvGuard<'q>,
    /// The value, when the slot was not aligned for `T`.
    copy: Option<T>,
}

impl<'q, T: Pod> TypedGuard<'q, T> {
    /// Checks the message's length (a wrong one is consumed: the guard drops here) and whether
    /// it can be lent in place.
    fn new(guard: RecvGuard<'q>) -> Result<Self> {
        check_size::<T>(&guard)?;
        let copy = match bytemuck::try_from_bytes::<T>(&guard) {
            Ok(_) => None,
            Err(_) => Some(bytemuck::pod_read_unaligned(&guard)),
        };
        Ok(TypedGuard { guard, copy })
    }

    /// How many times a consumer has claimed this message, this delivery included.
    pub fn deliveries(&self) -> u32 {
        self.guard.deliveries()
    }
}

impl<T: Pod> std::ops::Deref for TypedGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        match &self.copy {
            Some(value) => value,
            // `new` checked the length and the alignment of these very bytes (the guard's
            // slice never changes), so this cast cannot fail.
            None => bytemuck::from_bytes(&self.guard),
        }
    }
}

impl<T: Pod + std::fmt::Debug> std::fmt::Debug for TypedGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C, align(64))]
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Wide {
        words: [u64; 8],
    }
    // SAFETY: `Wide` is `repr(C)`, one array of `u64` (no padding: 64 bytes, align 64), and
    // every bit pattern is a valid array of `u64`.
    unsafe impl bytemuck::Zeroable for Wide {}
    // SAFETY: as above; `Copy` and `'static`, no interior mutability, no pointers.
    unsafe impl bytemuck::Pod for Wide {}

    fn queue(capacity: u32, size: u32) -> (tempfile::TempDir, Queue) {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::create(dir.path().join("q"), Options::new(capacity, size)).unwrap();
        (dir, q)
    }

    #[test]
    fn a_type_larger_than_the_maximum_is_refused_when_the_handle_is_made() {
        let (_dir, q) = queue(4, 7);
        assert_eq!(
            q.typed::<u64>().unwrap_err(),
            Error::TooLarge { len: 8, max: 7 }
        );
    }

    #[test]
    fn values_round_trip_by_copy_and_in_place() {
        let (_dir, q) = queue(4, 16);
        let q = q.typed::<[u32; 3]>().unwrap();
        q.send(&[1, 2, 3]).unwrap();
        q.try_send(&[4, 5, 6]).unwrap();
        assert_eq!(q.queue().len(), 2);
        assert_eq!(q.recv_timeout(Duration::from_secs(1)), Ok([1, 2, 3]));
        let held = q.try_recv_in_place().unwrap();
        assert_eq!(*held, [4, 5, 6]);
        assert_eq!(held.deliveries(), 1);
        assert!(held.copy.is_none(), "aligned for u32: lent in place");
        drop(held);
        assert_eq!(q.try_recv(), Err(Error::Empty));
    }

    #[test]
    fn a_type_aligned_beyond_the_payload_is_copied_into_the_guard() {
        let (_dir, q) = queue(4, 64);
        let q = q.typed::<Wide>().unwrap();
        let value = Wide {
            words: [1, 2, 3, 4, 5, 6, 7, 8],
        };
        q.send(&value).unwrap();
        let held = q.recv_in_place().unwrap();
        assert_eq!(*held, value);
        assert_eq!(&*held as *const Wide as usize % 64, 0);
    }

    #[test]
    fn a_message_of_another_length_is_consumed_and_reported() {
        let (_dir, q) = queue(4, 16);
        q.send(b"abc").unwrap();
        q.send(b"0123456789").unwrap();
        q.send(&7u64.to_ne_bytes()).unwrap();
        let q = q.typed::<u64>().unwrap();
        let wrong = |len| Err(Error::WrongSize { len, expected: 8 });
        assert_eq!(q.try_recv(), wrong(3));
        assert_eq!(q.try_recv_in_place().map(|g| *g), wrong(10));
        assert_eq!(q.try_recv(), Ok(7));
        assert!(q.queue().is_empty());
    }
}
