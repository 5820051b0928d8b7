// SPDX-License-Identifier: MIT OR Apache-2.0
//! The one error type of the crate.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong with a queue.
///
/// Transient conditions (`Full`, `Empty`, `Timeout`, `Closed`) come from the send and receive
/// calls and leave the queue and the caller's data untouched. The others come from opening or
/// creating a queue file (`TooManyHandles` when every participant entry is taken), or from
/// finding the shared memory in a state that honest peers never produce (`Corrupt`).
///
/// Errors compare with `==` (`Io` by its [`io::ErrorKind`] only), so tests can say
/// `assert_eq!(q.try_recv(&mut buf), Err(Error::Empty))`. The enum is `#[non_exhaustive]`:
/// a `match` on it needs a `_` arm, so that new variants are not breaking changes.
///
/// # Examples
/// ```
/// use shmq::{Error, Options, Queue};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("q");
/// assert_eq!(Queue::open(&path).unwrap_err(), Error::NotFound(path.clone()));
/// let q = Queue::create(&path, Options::new(2, 8))?;
/// assert_eq!(q.try_recv(&mut [0u8; 8]), Err(Error::Empty));
/// assert_eq!(q.try_send(b"nine bytes"), Err(Error::TooLarge { len: 10, max: 8 }));
/// assert_eq!(Error::Full.to_string(), "queue is full");
/// // `Io` errors compare by kind (an `io::Error` itself has no equality).
/// let io = |kind| Error::Io(std::io::Error::new(kind, "detail"));
/// assert_eq!(io(std::io::ErrorKind::Interrupted), io(std::io::ErrorKind::Interrupted));
/// assert_ne!(io(std::io::ErrorKind::Interrupted), io(std::io::ErrorKind::WouldBlock));
/// # Ok::<(), shmq::Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The queue holds `capacity` messages; nothing was sent.
    #[error("queue is full")]
    Full,
    /// No message is ready; nothing was received.
    #[error("queue is empty")]
    Empty,
    /// The deadline passed before the call could complete; nothing was sent or received.
    #[error("timed out")]
    Timeout,
    /// The queue was closed: no sends are accepted, and every message has been received.
    #[error("queue is closed")]
    Closed,
    /// The message is longer than the queue's maximum message size.
    #[error("message of {len} bytes exceeds the maximum message size of {max} bytes")]
    TooLarge {
        /// Length of the rejected message.
        len: usize,
        /// The queue's maximum message size.
        max: usize,
    },
    /// The receive buffer is shorter than the next message; the message stays in the queue.
    #[error("receive buffer too small: the next message needs {needed} bytes")]
    BufferTooSmall {
        /// Length of the message waiting at the head of the queue.
        needed: usize,
    },
    /// A typed receive ([`Typed`](crate::Typed), [`Receiver`](crate::Receiver)) found a message
    /// whose length is not the size of its type: a peer sent something else on this queue. The
    /// message was consumed (it cannot be read as the type).
    #[error("message of {len} bytes where a message type of {expected} bytes was expected")]
    WrongSize {
        /// Length of the message received.
        len: usize,
        /// Size of the message type.
        expected: usize,
    },
    /// The options given to `create` are out of range.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// A redrive ([`Queue::redrive_to`](crate::Queue::redrive_to)) cannot go on without
    /// risking a message twice: another redrive into the same queue is running, or one that was
    /// interrupted must be run again first. The text says which, and what to do.
    #[error("redrive refused: {0}")]
    RedriveRefused(String),
    /// No queue file exists at this path.
    #[error("no queue at {0}")]
    NotFound(PathBuf),
    /// A file already exists at this path.
    #[error("{0} already exists")]
    AlreadyExists(PathBuf),
    /// Access to the file was refused: by the operating system, or by shmq because the file is
    /// not one it can trust (a symbolic link, a file another user owns where only the caller's
    /// own queue will do, or permissions that let other users forge or corrupt the queue).
    /// `reason` says which.
    #[error("permission denied: {}: {reason}", path.display())]
    PermissionDenied {
        /// The path that was refused.
        path: PathBuf,
        /// Why: one sentence, naming the remedy where there is one.
        reason: String,
    },
    /// The file, or the shared memory, holds something no honest shmq process writes.
    #[error("corrupt queue: {what}")]
    Corrupt {
        /// What was found wrong.
        what: String,
    },
    /// The file is a shmq queue of another layout version or made for another platform.
    #[error("incompatible queue file: found {found}, expected {expected}")]
    Incompatible {
        /// What the file says it is.
        found: String,
        /// What this build of shmq reads.
        expected: String,
    },
    /// Every participant entry of the queue is held by a live handle, so no other handle can be
    /// opened on it until one is dropped. The queue itself is fine: do not recreate it.
    #[error(
        "too many handles: all {limit} participant entries of the queue are held (one for each \
         thread that uses each open handle); close handles, or end threads, that are not needed"
    )]
    TooManyHandles {
        /// How many handles a queue can have open at once (`PARTICIPANTS`).
        limit: u32,
    },
    /// The message's hold lapsed (the queue's visibility timeout passed) and the message was
    /// handed out again: the work on it may be done twice. From [`RecvGuard::ack`] and
    /// [`RecvGuard::extend`](crate::RecvGuard::extend).
    ///
    /// [`RecvGuard::ack`]: crate::RecvGuard::ack
    #[error("the message's visibility timeout passed and it was handed out again")]
    Expired,
    /// Any other operating-system error.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// Equality of every variant's fields, except `Io`, whose errors are equal when their kinds are
/// (an `io::Error` may wrap any error value, which has no equality).
impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        use Error::*;
        // Exhaustive over `self`, so that a new variant cannot be left out.
        match self {
            Full => matches!(other, Full),
            Empty => matches!(other, Empty),
            Timeout => matches!(other, Timeout),
            Closed => matches!(other, Closed),
            Expired => matches!(other, Expired),
            TooLarge { len, max } => {
                matches!(other, TooLarge { len: l, max: m } if (l, m) == (len, max))
            }
            BufferTooSmall { needed } => {
                matches!(other, BufferTooSmall { needed: n } if n == needed)
            }
            WrongSize { len, expected } => {
                matches!(other, WrongSize { len: l, expected: e } if (l, e) == (len, expected))
            }
            InvalidOptions(why) => matches!(other, InvalidOptions(w) if w == why),
            RedriveRefused(why) => matches!(other, RedriveRefused(w) if w == why),
            NotFound(path) => matches!(other, NotFound(p) if p == path),
            AlreadyExists(path) => matches!(other, AlreadyExists(p) if p == path),
            PermissionDenied { path, reason } => matches!(
                other,
                PermissionDenied { path: p, reason: r } if (p, r) == (path, reason)
            ),
            Corrupt { what } => matches!(other, Corrupt { what: w } if w == what),
            Incompatible { found, expected } => matches!(
                other,
                Incompatible { found: f, expected: e } if (f, e) == (found, expected)
            ),
            TooManyHandles { limit } => matches!(other, TooManyHandles { limit: l } if l == limit),
            Io(err) => matches!(other, Io(e) if e.kind() == err.kind()),
        }
    }
}

impl Eq for Error {}

impl Error {
    pub(crate) fn corrupt(what: impl Into<String>) -> Self {
        Error::Corrupt { what: what.into() }
    }

    pub(crate) fn permission_denied(path: &std::path::Path, reason: impl Into<String>) -> Self {
        Error::PermissionDenied {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    /// Maps an error from opening or creating `path` to the variant that names the cause.
    pub(crate) fn from_io_at(err: io::Error, path: &std::path::Path) -> Self {
        match err.kind() {
            io::ErrorKind::NotFound => Error::NotFound(path.to_path_buf()),
            io::ErrorKind::AlreadyExists => Error::AlreadyExists(path.to_path_buf()),
            io::ErrorKind::PermissionDenied => Error::permission_denied(
                path,
                "the operating system refused access (check the file's and directory's permissions)",
            ),
            _ => Error::Io(err),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
