// SPDX-License-Identifier: MIT OR Apache-2.0
//! shmq: a lock-free, bounded, multi-producer multi-consumer message queue in a memory-mapped
//! file, so that processes on one host exchange small messages at memory speed.
//!
//! # The contract
//! - **A queue is a file** (by default under `/dev/shm`): a validated header and a ring of
//!   fixed-size slots. Any process that maps it may send and receive; messages outlive the
//!   processes that sent them.
//! - **Exactly-once claim.** Every committed message is claimed by exactly one receiver. Messages
//!   are claimed in the order their sends claimed slots, so one producer's messages keep their
//!   order in every consumer's stream.
//! - **Lock-free, no syscalls on the non-blocking path.** `try_send`, `try_recv` and their batch
//!   and in-place forms are a few atomic operations on the mapping; they enter the kernel only to
//!   wake a peer that is asleep, or to ask whether a participant died when its claim has blocked
//!   a cursor for over a millisecond.
//! - **Blocking calls** (`send`, `recv`, `*_timeout`) spin briefly, then sleep on a shared futex
//!   inside the mapping; a peer in any process wakes them. `close` wakes everyone.
//! - **Async and many queues.** [`Queue::send_async`], [`Queue::recv_async`] and
//!   [`Queue::recv_in_place_async`] are cancellation-safe futures for any executor, woken by
//!   shmq's own helper threads (`futex_waitv`); [`Select`] (and `shmq_wait_any` in C) waits on
//!   many queues from one thread.
//! - **Full pushes back**: a sender on a full queue gets `Full` or waits; nothing is dropped.
//! - **Closed**: after [`Queue::close`], sends fail with `Closed`; receivers get what was sent
//!   before, then `Closed`.
//! - **Untrusted memory.** Another process can write anything into the mapping. The header is
//!   validated on open and only a private copy of it is used after; every length read from a slot
//!   is checked. Bad bytes give [`Error::Corrupt`], never an out-of-bounds access. (A process that
//!   *truncates* the file makes the others fault on access: keep queue files mode 0600.)
//! - **Who claimed what.** Every claim records the participant that made it, and each participant
//!   holds a kernel lock that dies with it; this is the basis for recovering the claims of
//!   crashed processes.
//!
//! # Example
//! ```
//! use shmq::{Options, Queue};
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("jobs");
//! let producer = Queue::create(&path, Options::new(1024, 256))?;
//! let consumer = Queue::open(&path)?; // usually in another process
//! producer.send(b"resize image 42")?;
//! let mut buf = [0u8; 256];
//! let n = consumer.recv(&mut buf)?;
//! assert_eq!(&buf[..n], b"resize image 42");
//! producer.close();
//! assert_eq!(consumer.recv(&mut buf), Err(shmq::Error::Closed));
//! # Ok::<(), shmq::Error>(())
//! ```
//!
//! # Coming from crossbeam-channel
//! A queue is a bounded channel whose buffer is a file, so its ends can live in different
//! processes. With messages of a plain-old-data type `T` ([`bytemuck::Pod`]: integers, floats,
//! arrays and `#[repr(C)]` structs of them, `#[derive(Pod, Zeroable)]` with the `derive`
//! feature), the calls map one to one:
//!
//! | crossbeam-channel                        | shmq                                                   |
//! |------------------------------------------|--------------------------------------------------------|
//! | `let (s, r) = bounded::<T>(cap)`         | `let (s, r) = shmq::channel::<T>(path, Options::new(cap, size_of::<T>() as u32))?` |
//! | (the other process)                      | `Queue::open_sender::<T>(path)?`, `Queue::open_receiver::<T>(path)?` |
//! | `s.send(msg)`, `try_send`, `send_timeout` | the same, on [`Sender`] (`msg`: a `T` or a `&T`)      |
//! | `r.recv()`, `try_recv`, `recv_timeout`   | the same, on [`Receiver`]; also `recv_in_place` (no copy) |
//! | `r.iter()`, `r.try_iter()`, `for m in r` | the same                                               |
//! | `len`, `is_empty`, `is_full`, `capacity` | the same (and on [`Queue`])                            |
//! | `s.clone()`, `r.clone()`                 | the same (clones share one handle)                     |
//! | drop every `Sender`: `r` disconnects     | the same with [`Options::close_when_producers_gone`]   |
//! | `SendError(msg)`, `RecvError`, ...       | one [`Error`] (`Closed`, `Full`, `Empty`, `Timeout`, ...), with `==` |
//! | `Select`                                 | [`Select`] on `r.queue()`, then `r.try_recv()` (readiness only; a disconnect shows once a receive has closed the queue) |
//!
//! [`Typed<T>`] is the same typed API on a plain [`Queue`] handle, without the roles; [`Queue`]
//! itself sends and receives byte messages of any length up to its maximum.
//!
//! What is different, because a queue outlives processes:
//! - **Messages outlive handles.** A message is in the file, not in a handle: dropping every
//!   handle, or killing every process, loses nothing; the next process to open the queue
//!   receives it. The file stays until [`Queue::unlink`].
//! - **Disconnection is opt-in, one-way and global.** Without
//!   [`Options::close_when_producers_gone`], receivers wait for senders that may come later, as
//!   a job queue should. With it, once every sender that ever attached is gone (dropped, or its
//!   process dead, even by SIGKILL) the first [`Receiver`] to find the queue empty closes it:
//!   every process then drains it and gets `Closed`, and later sends fail. Dropping receivers
//!   never makes sends fail: a full queue waits for the next consumer.
//! - **`close` is global.** [`Queue::close`] (also reachable as `sender.queue().close()`)
//!   closes the queue for every process and every handle, for good.
//! - **Fixed sizes.** The capacity is a power of two, and every message fits in the maximum
//!   message size chosen at creation (a `T` larger than it is refused when the handle is made).
//!   A zero-capacity rendezvous channel does not exist.
//! - **A message is bytes.** Only plain-old-data crosses: no `String`, `Box` or references (a
//!   pointer means nothing in another process); the compiler refuses them.
//! - **Crash recovery.** A consumer killed while it holds a message gives it back (or drops it,
//!   per [`OnConsumerDeath`]); a producer killed mid-send leaves nothing half-written.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

#[cfg(not(loom))]
mod async_wait;
#[cfg(not(loom))]
mod channel;
#[cfg(not(loom))]
mod dead_letter;
#[cfg(not(loom))]
mod error;
#[cfg(not(loom))]
mod file;
#[cfg(not(loom))]
mod layout;
mod lease;
#[cfg(not(loom))]
mod mapping;
#[cfg(not(loom))]
mod occupancy;
#[cfg(not(loom))]
mod options;
#[cfg(not(loom))]
mod participant;
#[cfg(not(loom))]
mod queue;
#[cfg(not(loom))]
mod reactor;
#[cfg(not(loom))]
mod recovery;
#[cfg(not(loom))]
mod redrive;
/// Under loom, only the part of recovery that resolves a dead participant's claims (the rest
/// needs a mapped file and the kernel's locks): the models run it over a heap store.
#[cfg(loom)]
mod recovery {
    pub(crate) mod claims;
}
mod ring;
#[cfg(not(loom))]
mod select;
#[cfg(not(loom))]
mod stats;
mod sync;
#[cfg(not(loom))]
mod test_hooks;
#[cfg(not(loom))]
pub mod topic;
#[cfg(not(loom))]
mod typed;
mod wait;

#[cfg(not(loom))]
pub use async_wait::{RecvFuture, RecvInPlaceFuture, SendFuture};
/// The plain-old-data casts behind [`Typed`]: `Pod` and `Zeroable`, and with shmq's `derive`
/// feature their derive macros (`#[bytemuck(crate = "shmq::bytemuck")]` points them here).
pub use bytemuck;
#[cfg(not(loom))]
pub use channel::{channel, IntoIter, Iter, Receiver, Sender, TryIter};
#[cfg(not(loom))]
pub use error::{Error, Result};
#[cfg(not(loom))]
pub use layout::{
    Geometry, FLAG_ALLOW_OTHER_ACCESS, FLAG_CLOSE_WHEN_PRODUCERS_GONE, FLAG_DROP_ON_CONSUMER_DEATH,
    MAGIC, PARTICIPANTS, PLATFORM, VERSION,
};
#[cfg(not(loom))]
pub use options::{OnConsumerDeath, Options, Origin, Received};
#[cfg(not(loom))]
pub use participant::ParticipantInfo;
#[cfg(not(loom))]
pub use queue::{Queue, RecvGuard, SendGuard};
#[cfg(not(loom))]
#[doc(hidden)]
pub use reactor::helper_threads;
#[cfg(not(loom))]
pub use select::Select;
#[cfg(not(loom))]
pub use stats::Stats;
/// Timing constants and test switches, for the tests only (the `test-hooks` feature).
#[cfg(all(not(loom), feature = "test-hooks"))]
#[doc(hidden)]
pub use test_hooks::testing;
#[cfg(not(loom))]
pub use topic::{
    Subscription, SubscriptionInfo, Topic, TopicOptions, TopicStats, WhenFull, TOPIC_MAGIC,
};
#[cfg(not(loom))]
pub use typed::{Typed, TypedGuard};

/// The claim, wait and claim-resolution protocols, exposed to the loom models in
/// `tests/loom.rs` only.
#[cfg(loom)]
#[doc(hidden)]
pub mod model {
    pub use crate::lease::{begin_hold, Hold};
    pub use crate::recovery::claims::{
        expire_lapsed, resolve_dead, ClaimStore, Outcome, Resolution,
    };
    pub use crate::ring::{
        empty_state, Announcement, Claim, ClaimError, Claimer, Phase, Ring, Side, SlotState,
        SlotStates, RUN, STOP_AFTER_ANNOUNCEMENT, STOP_AFTER_CAS,
    };
    pub use crate::sync::{AtomicU32, AtomicU64};
    pub use crate::wait::{wait_for, wake_all, wake_if_sleeping, Deadline, Waiter};
}

/// The README, so that `cargo test --doc` compiles its Rust example.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
