// SPDX-License-Identifier: MIT OR Apache-2.0
//! What a caller chooses and gets back: [`Options`] for a new queue, its crash policy
//! ([`OnConsumerDeath`]), and [`Received`], a message's metadata from a receive by copy.

use crate::error::{Error, Result};

/// How to create a queue.
///
/// ```
/// let options = shmq::Options::new(1024, 256).mode(0o660);
/// assert_eq!(options.capacity, 1024);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Number of slots: from 1 to 2^24 (any number; powers of two index slots with a mask,
    /// others with a division).
    pub capacity: u32,
    /// Largest message, in bytes (1 to 16 MiB). Every slot reserves this much.
    pub max_message_size: u32,
    /// Permission bits of the new file (before the umask); 0o600 by default.
    pub mode: u32,
    /// What happens to a message whose consumer dies before releasing it.
    pub on_consumer_death: OnConsumerDeath,
    /// With [`OnConsumerDeath::Redeliver`]: a message already delivered this many times is
    /// dropped (counted in `dead_lettered`) instead of redelivered when its consumer dies, so a
    /// poison message cannot kill consumers forever. 0 (the default) means unlimited.
    pub max_deliveries: u32,
    /// Whether the file may give "other" users any permission (`mode & 0o007`). Off by
    /// default: any process that can read a queue file can take read locks on it and so make a
    /// dead participant look alive, and any that can write it can corrupt or truncate it. With
    /// this off, `create` refuses such a mode and `open` refuses a file whose mode was widened
    /// later. Recorded in the file ([`FLAG_ALLOW_OTHER_ACCESS`](crate::FLAG_ALLOW_OTHER_ACCESS)).
    pub allow_other_access: bool,
    /// Whether receivers get `Closed` once every [`Sender`](crate::Sender) that ever attached
    /// is gone (dropped, or its process dead) and the queue is drained: crossbeam-channel's
    /// disconnect, across processes. Off by default. Recorded in the file
    /// ([`FLAG_CLOSE_WHEN_PRODUCERS_GONE`](crate::FLAG_CLOSE_WHEN_PRODUCERS_GONE)).
    pub close_when_producers_gone: bool,
    /// How long a message received in place ([`Queue::recv_in_place`](crate::Queue::recv_in_place)
    /// and its kin) may be held before it becomes receivable again, with its delivery count
    /// raised (SQS's visibility timeout; see [`RecvGuard::ack`](crate::RecvGuard::ack)). `None`
    /// (the default): a message is held until its guard drops or its holder dies. A copying
    /// receive (`recv`, `recv_batch`) deletes the message as it returns it, so the timeout
    /// never applies to it.
    pub visibility_timeout: Option<std::time::Duration>,
    /// Where a message goes once it has been delivered `max_deliveries` times without being
    /// acknowledged: a queue file that must exist when that happens (see
    /// [`Options::dead_letter_queue`]). `None`: such a message is dropped and counted.
    pub dead_letter_queue: Option<std::path::PathBuf>,
}

/// What a queue does with a message whose consumer died after claiming it and before releasing
/// it (fixed when the queue is created).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnConsumerDeath {
    /// Give the message back to the queue with its delivery count raised (at-least-once
    /// delivery; the default). A message is gone only once a consumer released it.
    #[default]
    Redeliver,
    /// Drop the message and count it in `abandoned_receives` (at-most-once delivery).
    Drop,
}

impl Options {
    /// Options for `capacity` slots of up to `max_message_size` bytes, mode 0o600.
    pub fn new(capacity: u32, max_message_size: u32) -> Self {
        Options {
            capacity,
            max_message_size,
            mode: 0o600,
            on_consumer_death: OnConsumerDeath::Redeliver,
            max_deliveries: 0,
            allow_other_access: false,
            close_when_producers_gone: false,
            visibility_timeout: None,
            dead_letter_queue: None,
        }
    }

    /// Sets the permission bits of the file (0 to 0o777; setuid, setgid and sticky bits are
    /// refused). The owner needs read and write (0o600), and bits for "other" need
    /// [`allow_other_access`](Self::allow_other_access).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Sets what happens to a message whose consumer dies before releasing it.
    pub fn on_consumer_death(mut self, policy: OnConsumerDeath) -> Self {
        self.on_consumer_death = policy;
        self
    }

    /// Sets the delivery limit for messages whose consumers die (0: unlimited).
    pub fn max_deliveries(mut self, limit: u32) -> Self {
        self.max_deliveries = limit;
        self
    }

    /// Permits a mode that gives "other" users access (see
    /// [`Options::allow_other_access`](struct.Options.html#structfield.allow_other_access)).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use shmq::{Error, Options, Queue};
    /// let world = Options::new(8, 64).mode(0o666);
    /// let refused = Queue::create(dir.path().join("a"), world.clone());
    /// assert!(matches!(refused, Err(Error::InvalidOptions(_))));
    /// Queue::create(dir.path().join("b"), world.allow_other_access(true))?;
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn allow_other_access(mut self, allow: bool) -> Self {
        self.allow_other_access = allow;
        self
    }

    /// Sets whether receivers get `Closed` once every sender is gone (see
    /// [`Options::close_when_producers_gone`](struct.Options.html#structfield.close_when_producers_gone)
    /// and [`Receiver`](crate::Receiver)).
    pub fn close_when_producers_gone(mut self, close: bool) -> Self {
        self.close_when_producers_gone = close;
        self
    }

    /// Sets the visibility timeout: a message held in place longer than `timeout` is handed
    /// out again, with its delivery count raised, and counts toward `max_deliveries` as a
    /// consumer's death does. From 1 ms to 12 hours (SQS's bounds, with a finer floor).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let options = shmq::Options::new(64, 128).visibility_timeout(Duration::from_secs(30));
    /// assert_eq!(options.visibility_timeout, Some(Duration::from_secs(30)));
    /// ```
    pub fn visibility_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.visibility_timeout = Some(timeout);
        self
    }

    /// Sets the dead-letter queue: a message delivered `max_deliveries` times is sent there
    /// (with its delivery count) instead of being dropped. The path is recorded in the queue
    /// file (at most 1023 bytes); the dead-letter queue itself is opened when the first message
    /// goes there.
    pub fn dead_letter_queue(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.dead_letter_queue = Some(path.into());
        self
    }
}

impl Options {
    /// Checks what `Geometry::new` does not: the policy, the delivery limit and the mode.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.on_consumer_death == OnConsumerDeath::Drop && self.max_deliveries != 0 {
            return Err(Error::InvalidOptions(
                "max_deliveries applies to redelivered messages; with OnConsumerDeath::Drop it must be 0"
                    .into(),
            ));
        }
        if let Some(timeout) = self.visibility_timeout {
            if !(MIN_VISIBILITY_TIMEOUT..=MAX_VISIBILITY_TIMEOUT).contains(&timeout) {
                return Err(Error::InvalidOptions(format!(
                    "visibility timeout must be from {MIN_VISIBILITY_TIMEOUT:?} to \
                     {MAX_VISIBILITY_TIMEOUT:?}, got {timeout:?}"
                )));
            }
        }
        if let Some(path) = &self.dead_letter_queue {
            crate::layout::DeadLetterPath::encode(path)?;
        }
        let mode = self.mode;
        if mode & !0o777 != 0 {
            return Err(Error::InvalidOptions(format!(
                "mode {mode:o} is not permission bits (0 to 777): setuid, setgid and sticky bits are refused"
            )));
        }
        if mode & 0o600 != 0o600 {
            return Err(Error::InvalidOptions(format!(
                "mode {mode:03o} does not let the owner read and write the queue (it needs 600)"
            )));
        }
        if mode & 0o007 != 0 && !self.allow_other_access {
            return Err(Error::InvalidOptions(format!(
                "mode {mode:03o} gives other users access to the queue, which lets any of them \
                 keep handles from registering or corrupt it; use a group (mode 660), or allow \
                 it explicitly (allow_other_access, --allow-other-access)"
            )));
        }
        Ok(())
    }
}

/// Shortest visibility timeout: 1 ms.
pub const MIN_VISIBILITY_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1);
/// Longest visibility timeout: 12 hours, as SQS.
pub const MAX_VISIBILITY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

impl Default for Options {
    /// 1024 slots of 256 bytes.
    fn default() -> Self {
        Options::new(1024, 256)
    }
}

/// A message received by copy, with its metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Length of the message copied into the buffer.
    pub len: usize,
    /// How many times a consumer has claimed this message, this delivery included: 1 unless
    /// earlier consumers died holding it.
    pub deliveries: u32,
    /// The message's id: unique within this queue file, and the same on every delivery of the
    /// message (it is the position of its first send). A consumer that must not act twice
    /// (a bridge deduplicating downstream) keys on it.
    pub id: u64,
    /// Where a dead-lettered message came from (see [`Origin`]); `None` for any other message.
    pub origin: Option<Origin>,
}

/// Where a message in a dead-letter queue came from: the queue that dead-lettered it, and its
/// id there. A consumer of a dead-letter queue shared by several queues tells them apart by
/// [`queue`](Self::queue), which is that queue's [`Queue::identity`](crate::Queue::identity).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use shmq::{Options, Queue};
/// let dlq = Queue::create(dir.path().join("dlq"), Options::new(8, 64))?;
/// let jobs = Queue::create(
///     dir.path().join("jobs"),
///     Options::new(8, 64).max_deliveries(3).dead_letter_queue(dir.path().join("dlq")),
/// )?;
/// // A consumer of the dead-letter queue tells dead-lettered messages by their origin (a
/// // message sent to it directly has none).
/// dlq.send(b"sent directly")?;
/// let message = dlq.try_recv_in_place()?;
/// match message.origin() {
///     Some(origin) if origin.queue == jobs.identity() => println!("from jobs, id {}", origin.id),
///     Some(origin) => println!("from the queue created at {} ns", origin.queue),
///     None => assert_eq!(&*message, b"sent directly"),
/// }
/// # Ok::<(), shmq::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Origin {
    /// The identity of the queue that dead-lettered the message (its creation time in
    /// nanoseconds since the Unix epoch; see [`Queue::identity`](crate::Queue::identity)).
    pub queue: u64,
    /// The message's id in that queue (see [`Received::id`]).
    pub id: u64,
}

impl Origin {
    /// The origin recorded in a slot's two words: `None` when `queue` is 0 (not dead-lettered).
    pub(crate) fn from_words(queue: u64, id: u64) -> Option<Origin> {
        (queue != 0).then_some(Origin { queue, id })
    }
}
