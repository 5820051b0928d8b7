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
/// # Examples
/// ```
/// use shmq::{Error, Options, Queue};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("q");
/// assert!(matches!(Queue::open(&path), Err(Error::NotFound(p)) if p == path));
/// let q = Queue::create(&path, Options::new(2, 8))?;
/// assert!(matches!(q.try_recv(&mut [0u8; 8]), Err(Error::Empty)));
/// match q.try_send(b"nine bytes") {
///     Err(Error::TooLarge { len, max }) => assert_eq!((len, max), (10, 8)),
///     other => panic!("expected TooLarge, got {other:?}"),
/// }
/// assert_eq!(Error::Full.to_string(), "queue is full");
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
    /// The options given to `create` are out of range.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
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
        "too many handles: all {limit} participant entries of the queue are held by open handles; \
         close handles that are not needed (one handle can be shared by all threads of a process)"
    )]
    TooManyHandles {
        /// How many handles a queue can have open at once (`PARTICIPANTS`).
        limit: u32,
    },
    /// Any other operating-system error.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

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
