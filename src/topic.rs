// SPDX-License-Identifier: MIT OR Apache-2.0
//! [`Topic`]: fanout. A topic copies each published message into one shmq queue per
//! subscription; each subscription's queue has its own competing consumers, its own depth and
//! its own policy for when it is full (the SNS → SQS pattern, in shared memory). A slow
//! subscription fills only its own queue: it holds publishers back if it is
//! [`WhenFull::Block`], and only loses its own copies if it is [`WhenFull::Drop`].
//!
//! ```
//! use shmq::{Queue, Subscription, Topic, TopicOptions, WhenFull};
//! # let dir = tempfile::tempdir().unwrap();
//! # let (orders, billing, audit) = (dir.path().join("orders"), dir.path().join("billing"), dir.path().join("audit"));
//! let topic = Topic::create(&orders, TopicOptions::new(256))?;
//! topic.subscribe(&billing, Subscription::new(1024, 256))?;             // created if missing
//! topic.subscribe(&audit, Subscription::new(8, 256).when_full(WhenFull::Drop).prefix(b"order"))?;
//! topic.publish(b"order 42: 3 books")?;
//! let mut buf = [0u8; 256];
//! let n = Queue::open(&billing)?.recv(&mut buf)?;                       // an ordinary queue
//! assert_eq!(&buf[..n], b"order 42: 3 books");
//! assert_eq!(Queue::open(&audit)?.try_recv(&mut buf)?, n);
//! # Ok::<(), shmq::Error>(())
//! ```
//!
//! # The contract
//! - **Delivery.** A `publish` that returns `Ok` has put the message in every matching `Block`
//!   subscription that existed when it began, and in every matching `Drop` subscription that had
//!   room; a `Drop` subscription that had none counts a drop and never holds the publisher
//!   back. A message *matches* a subscription when it starts with the subscription's prefix
//!   (an empty prefix matches everything).
//! - **All or nothing.** [`Topic::try_publish`] and [`Topic::publish_timeout`] first reserve a
//!   slot in every matching `Block` subscription, and only then write and commit them all; if
//!   one is full (or stays full until the deadline) they cancel every reservation and return
//!   `Full` (or `Timeout`): the message went nowhere, `Drop` subscriptions included. A cancelled
//!   reservation is a tombstone that consumers skip (counted in that queue's
//!   `cancelled_sends`). While waiting, a publisher holds no reservation: it waits for room in
//!   the subscription that was full, then reserves again. A `try_publish` retried against the
//!   same full subscription tries that one first, so it does not litter the others.
//! - **Order.** Each publisher's messages keep their order in every subscription: a publish
//!   reserves its slots only after its previous publish committed. Any number of publishers in
//!   any processes may publish at once. A publisher is a `Topic` handle: `Topic` is `Send` but
//!   not `Sync` (open one handle per thread).
//! - **Changes while publishing.** [`Topic::subscribe`] and [`Topic::unsubscribe`] may run
//!   while others publish, from any process. They raise a generation counter in the topic's
//!   header; each publisher keeps its subscriptions' queues open and compares the counter with
//!   its own on every publish, so when nothing changed (and no subscription is full: a full one
//!   is checked for removal, one `stat` at most every [`REMOVAL_CHECK`]) the publish path makes
//!   no system call.
//!   A publish that begins after `subscribe` (`unsubscribe`) returned delivers (does not
//!   deliver) to that subscription; one already under way may not (may).
//! - **A publisher killed at any instant never wedges a subscription.** What it leaves behind is
//!   at most one message in some of the matching subscriptions and not in others (it dies
//!   between commits), and the slots it had reserved and not committed, which the queue's own
//!   crash recovery turns into tombstones that consumers skip (each queue's `abandoned_sends`).
//!   Each publisher marks its entry in the topic's publisher table while it publishes; a
//!   publisher found dead with the mark set is counted once in
//!   [`TopicStats::interrupted_publishes`]. A dead publisher's last deliveries may be missing
//!   from the `delivered` counters (publishers add them in batches of up to
//!   [`DELIVERED_BATCH`], and on drop).
//! - **A subscription's queue closed** ([`Queue::close`], `shmq close`): the subscription
//!   receives nothing more. Publishes skip it and count each matching message in its
//!   `dropped`; it never holds a publisher back and never makes a publish fail. It stays in the
//!   topic, listed as closed, until it is unsubscribed.
//! - **A subscription's queue file removed** (`shmq rm`): the subscription ends. Publishers that
//!   already have the queue open go on delivering into it (an unlinked file lives on for the
//!   processes that have it open, and consumers that have it open go on receiving) until one of
//!   them finds the queue full, or opens the subscription anew; it then looks at the path (one
//!   `stat`, at most every [`REMOVAL_CHECK`]) and, finding no file, removes the subscription
//!   from the topic as `unsubscribe` would. So a removed `Block` subscription holds publishers
//!   back for at most that long. A file *replaced* by another at the same path is reopened.
//! - **Bad input** gets its own error: no topic at the path is `NotFound`; a file that is not a
//!   topic (a queue, say) is `Corrupt` naming what it is; a queue whose maximum message size is
//!   smaller than the topic's, a prefix longer than [`MAX_PREFIX`] bytes, a queue path longer
//!   than [`MAX_PATH`] bytes, or a full subscription table ([`MAX_SUBSCRIPTIONS`]) are
//!   `InvalidOptions` saying so; subscribing a queue twice is `AlreadyExists`.
//!
//! # The file
//! ```text
//! offset 0       identity (128 B): magic "SHMQTOPC", version, platform, sizes and offsets
//! offset 128     control (128 B): generation, interrupted_publishes, the table lock word
//! offset 256     SubscriptionEntry × MAX_SUBSCRIPTIONS (512 B each)
//! then           Participant × PARTICIPANTS (128 B each): the publisher table (as in a queue)
//! then           Publishing × PARTICIPANTS (64 B each): each publisher's "publishing now" mark
//! ```
//! The file is written in full under a private name and linked into place; on open every field
//! of the identity is compared with what this build writes, and the file's length with it.
//! Everything else is shared memory that any process with write access can scribble on: every
//! subscription entry is validated as it is read (state, policy, lengths, an absolute path),
//! and bad bytes are `Corrupt`, never an out-of-bounds access or a panic. Changes to the
//! subscription table are made under a lock word in the control block that holds its owner's
//! publisher token (so only a process that can write the topic can hold it, and a holder the
//! kernel's lock table shows dead is taken over), and publishers read the table under the same
//! lock, only when the generation changed.

use crate::error::{Error, Result};
use crate::file::{self, Trust};
use crate::layout::{self, Line, Participant, MAX_MESSAGE_SIZE, PARTICIPANTS, PLATFORM};
use crate::options::Options;
use crate::participant::{self, Registration};
use crate::queue::Queue;
use crate::stats::Stats;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use memmap2::{MmapOptions, MmapRaw};
use std::cell::{Cell, RefCell};
use std::fs::File;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU8;
use std::time::{Duration, Instant};

/// The first eight bytes of every topic file.
pub const TOPIC_MAGIC: [u8; 8] = *b"SHMQTOPC";
/// The topic layout version this build reads and writes.
pub const TOPIC_VERSION: u32 = 3;
/// Most subscriptions a topic holds.
pub const MAX_SUBSCRIPTIONS: u32 = 64;
/// Longest queue path a subscription may have, in bytes (stored absolute).
pub const MAX_PATH: usize = 256;
/// Longest prefix filter, in bytes.
pub const MAX_PREFIX: usize = 192;
/// A publisher adds its deliveries to a subscription's shared `delivered` counter once it has
/// this many (and when it drops its handle, or the subscriptions change), so that the publish
/// path does not write a line shared by every publisher on every message.
pub const DELIVERED_BATCH: u64 = 64;
/// How often, at most, a publisher that finds a subscription full checks whether its queue file
/// was removed.
pub const REMOVAL_CHECK: Duration = Duration::from_millis(10);
/// How often, at most, a publisher tries again to open a subscription's queue that it could not
/// use (the subscription is skipped meanwhile, its messages counted dropped).
pub const UNUSABLE_RETRY: Duration = Duration::from_secs(1);
/// A publisher waiting for room in a `Block` subscription wakes this often to see whether the
/// subscriptions changed or the queue file was removed.
const WAIT_SLICE: Duration = Duration::from_millis(20);
/// How long a process waiting for the table lock sleeps between looks, at most.
const TABLE_LOCK_BACKOFF: Duration = Duration::from_millis(1);
/// The table lock word's value while its owner (a publisher token, in the low 32 bits) holds it.
const TABLE_LOCK_HELD: u64 = 1 << 32;

/// Subscription entry states.
const FREE: u32 = 0;
/// Being written by `subscribe` under the table lock; a holder that died leaves it so, and it
/// counts as free.
const WRITING: u32 = 1;
const ACTIVE: u32 = 2;

/// Immutable part of the topic header, written once at creation.
#[repr(C)]
struct TopicIdentity {
    /// [`TOPIC_MAGIC`].
    magic: [u8; 8],
    /// [`TOPIC_VERSION`].
    version: u32,
    /// [`PLATFORM`] that wrote the file.
    platform: u32,
    /// Longest message the topic accepts; every subscription's queue holds at least this much.
    max_message_size: u32,
    /// Entries in the subscription table: [`MAX_SUBSCRIPTIONS`].
    subscriptions: u32,
    /// Entries in the publisher table: [`PARTICIPANTS`].
    publishers: u32,
    /// Reserved; 0.
    flags: u32,
    /// Offset of the subscription table: [`SUBSCRIPTIONS_OFFSET`] (every offset and the length
    /// are fixed by this version; a file that says otherwise is refused).
    subscriptions_offset: u64,
    /// Offset of the publisher table: [`PUBLISHERS_OFFSET`].
    publishers_offset: u64,
    /// Offset of the publishers' marks: [`PUBLISHING_OFFSET`].
    publishing_offset: u64,
    /// Length of the file: [`FILE_LEN`].
    file_len: u64,
    /// Creation time, nanoseconds since the Unix epoch.
    created_unix_ns: u64,
}

/// The words every process reads or writes.
#[repr(C)]
struct Control {
    /// Raised (before anything else) by every change to the subscription table. A publisher
    /// whose copy equals it has the table's current subscriptions open.
    generation: AtomicU64,
    /// Publishes whose publisher died between marking its entry and clearing it.
    interrupted_publishes: AtomicU64,
    /// The subscription table's lock: 0 when free, [`TABLE_LOCK_HELD`] | the owner's publisher
    /// token while held (see [`TableLock`]).
    table_lock: AtomicU64,
}

#[repr(C)]
struct TopicHeader {
    identity: Line<TopicIdentity>,
    control: Line<Control>,
}

/// One subscription. Written only under the table lock; `delivered` and `dropped` are raised
/// by publishers at any time.
#[repr(C)]
struct SubscriptionEntry {
    /// [`FREE`], [`WRITING`] or [`ACTIVE`]; anything else is corrupt.
    state: AtomicU32,
    /// 0: [`WhenFull::Block`], 1: [`WhenFull::Drop`].
    when_full: AtomicU32,
    /// Bytes of `path` in use: 1 to [`MAX_PATH`].
    path_len: AtomicU32,
    /// Bytes of `prefix` in use: 0 to [`MAX_PREFIX`].
    prefix_len: AtomicU32,
    /// Raised each time the entry is filled: a publisher's open queue belongs to the entry
    /// only while the sequence is the one it opened it for.
    seq: AtomicU64,
    subscribed_unix_ns: AtomicU64,
    /// Messages put in the queue (in batches: see [`DELIVERED_BATCH`]).
    delivered: AtomicU64,
    /// Matching messages not put in the queue: it was full (`Drop`) or closed.
    dropped: AtomicU64,
    _reserved: [u64; 2],
    /// The queue's absolute path.
    path: [AtomicU8; MAX_PATH],
    prefix: [AtomicU8; MAX_PREFIX],
}

/// A publisher's mark: `token << 1 | publishing`, `token` its owner token in the publisher
/// table. Alone on its line: written twice per publish.
#[repr(C, align(64))]
struct Publishing {
    word: AtomicU64,
}

const HEADER_LEN: u64 = std::mem::size_of::<TopicHeader>() as u64;
const SUBSCRIPTIONS_OFFSET: u64 = HEADER_LEN;
const PUBLISHERS_OFFSET: u64 = SUBSCRIPTIONS_OFFSET
    + MAX_SUBSCRIPTIONS as u64 * std::mem::size_of::<SubscriptionEntry>() as u64;
const PUBLISHING_OFFSET: u64 =
    PUBLISHERS_OFFSET + PARTICIPANTS as u64 * std::mem::size_of::<Participant>() as u64;
const FILE_LEN: u64 =
    PUBLISHING_OFFSET + PARTICIPANTS as u64 * std::mem::size_of::<Publishing>() as u64;
const _: () = assert!(HEADER_LEN == 256);
const _: () = assert!(std::mem::size_of::<TopicIdentity>() <= 128);
const _: () = assert!(std::mem::size_of::<SubscriptionEntry>() == 512);
const _: () = assert!(std::mem::size_of::<Publishing>() == 64);
const _: () = assert!(PUBLISHING_OFFSET.is_multiple_of(64) && PUBLISHERS_OFFSET.is_multiple_of(64));

/// How to create a topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicOptions {
    /// Longest message the topic accepts (1 to 16 MiB); every subscription's queue must hold
    /// messages at least this long.
    pub max_message_size: u32,
    /// Permission bits of the file (before the umask): 0o600 by default; the owner needs read
    /// and write, and "other" users get nothing (share with a group).
    pub mode: u32,
}

impl TopicOptions {
    /// A topic of messages up to `max_message_size` bytes, mode 0o600.
    pub fn new(max_message_size: u32) -> Self {
        TopicOptions {
            max_message_size,
            mode: 0o600,
        }
    }

    /// Sets the permission bits of the file.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    fn validate(&self) -> Result<()> {
        if !(1..=MAX_MESSAGE_SIZE).contains(&self.max_message_size) {
            return Err(Error::InvalidOptions(format!(
                "max message size must be from 1 to {MAX_MESSAGE_SIZE} bytes, got {}",
                self.max_message_size
            )));
        }
        let mode = self.mode;
        if mode & !0o777 != 0 || mode & 0o600 != 0o600 || mode & 0o007 != 0 {
            return Err(Error::InvalidOptions(format!(
                "topic mode {mode:03o} must be permission bits that let the owner read and write \
                 (600) and give other users nothing (share with a group: 660)"
            )));
        }
        Ok(())
    }
}

/// What a subscription does with a message when its queue is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WhenFull {
    /// The publisher waits for room (`publish`), or the publish fails as a whole with `Full` or
    /// `Timeout` (`try_publish`, `publish_timeout`). Nothing is lost.
    #[default]
    Block,
    /// The message is not put in this subscription, and counted in its `dropped`; the publisher
    /// never waits for it.
    Drop,
}

/// How to subscribe a queue to a topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    /// Slots of the queue if `subscribe` creates it.
    pub capacity: u32,
    /// Largest message of the queue if `subscribe` creates it; at least the topic's.
    pub max_message_size: u32,
    /// What happens when the queue is full.
    pub when_full: WhenFull,
    /// Only messages that start with these bytes are delivered (empty: all).
    pub prefix: Vec<u8>,
}

impl Subscription {
    /// A `Block` subscription to every message; a queue created for it has `capacity` slots of
    /// `max_message_size` bytes (an existing queue is subscribed as it is).
    pub fn new(capacity: u32, max_message_size: u32) -> Self {
        Subscription {
            capacity,
            max_message_size,
            when_full: WhenFull::Block,
            prefix: Vec::new(),
        }
    }

    /// Sets the policy for a full queue.
    pub fn when_full(mut self, when_full: WhenFull) -> Self {
        self.when_full = when_full;
        self
    }

    /// Delivers only messages that start with `prefix` (at most [`MAX_PREFIX`] bytes).
    pub fn prefix(mut self, prefix: impl AsRef<[u8]>) -> Self {
        self.prefix = prefix.as_ref().to_vec();
        self
    }
}

/// One subscription, as [`Topic::subscriptions`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionInfo {
    /// The queue's absolute path.
    pub path: PathBuf,
    /// The policy for a full queue.
    pub when_full: WhenFull,
    /// The prefix filter (empty: every message).
    pub prefix: Vec<u8>,
    /// Messages in the queue now; `None` if the queue could not be read (its file was removed).
    pub depth: Option<u64>,
    /// Messages the topic put in the queue (publishers add theirs in batches: see
    /// [`DELIVERED_BATCH`]).
    pub delivered: u64,
    /// Matching messages not put in the queue because it was full (`Drop`) or closed.
    pub dropped: u64,
    /// When it was subscribed, nanoseconds since the Unix epoch.
    pub subscribed_unix_ns: u64,
    /// The queue's own snapshot (capacity, closed, `abandoned_sends`, ...), if it could be read.
    pub queue: Option<Stats>,
}

/// A snapshot of a topic: [`Topic::stats`], [`Topic::inspect`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicStats {
    /// Layout version of the file.
    pub version: u32,
    /// Longest message the topic accepts.
    pub max_message_size: u32,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created_unix_ns: u64,
    /// Changes made to the subscription table so far.
    pub generation: u64,
    /// Topic handles open now (live entries of the publisher table).
    pub publishers: u32,
    /// Publishes whose publisher died in the middle (see the module doc for what each leaves).
    pub interrupted_publishes: u64,
    /// The subscriptions, in table order.
    pub subscriptions: Vec<SubscriptionInfo>,
}

/// A topic file, opened for publishing and for managing its subscriptions. See the module doc.
pub struct Topic {
    /// The whole file ([`FILE_LEN`] bytes, checked on open), mapped shared.
    map: MmapRaw,
    /// Holds our publisher-table lock and, while we change the table, the table lock.
    file: File,
    path: PathBuf,
    /// From the validated header: the longest message `publish` accepts.
    max_message_size: u32,
    /// Our entry in the publisher table (its lock dies with us); its token marks our publishes.
    me: Registration,
    /// The subscriptions this handle has open. A `RefCell`, so `Topic` is not `Sync`: one
    /// publisher per handle, which is what keeps each publisher's messages in order.
    cache: RefCell<Cache>,
}

/// What a publisher knows of the subscription table.
struct Cache {
    /// The header's generation when `subs` was read; `u64::MAX` forces a reread.
    generation: u64,
    subs: Vec<Sub>,
    /// The `Block` subscription last found full: reserved first, so that a retried
    /// `try_publish` fails there before it reserves (and cancels) anything elsewhere.
    hint: Option<usize>,
    /// The positions in `subs` of subscriptions whose queue file was found replaced (`rm` +
    /// `create`, to resize it): a `Block` one found full, or a `Drop` one whose offer failed.
    /// Let go of by `forget_replaced`, and reopened at the next reread.
    replaced: Cell<u64>,
    /// Subscriptions whose queue this publisher could not use at the last reread (a symlink, a
    /// FIFO, a directory, not a queue, slots too small, a queue the topic's writers could not
    /// all write, ...): skipped, each matching message counted in their `dropped`, and tried
    /// again at every reread and at least every [`UNUSABLE_RETRY`].
    unusable: Vec<Unusable>,
    /// When to try the unusable subscriptions again.
    retry_at: Option<Instant>,
}

/// A subscription skipped because its queue could not be used (see [`Cache::unusable`]).
struct Unusable {
    index: usize,
    seq: u64,
    prefix: Vec<u8>,
}

/// A subscription this publisher has open.
struct Sub {
    /// Its entry in the subscription table.
    index: usize,
    /// The entry's `seq` when we opened the queue: the entry is still this subscription only
    /// while its `seq` is the same.
    seq: u64,
    /// The queue's absolute path, policy and prefix, as read from the entry.
    path: PathBuf,
    when_full: WhenFull,
    prefix: Vec<u8>,
    /// Our handle on the queue (a participant of it, so its crash recovery covers our claims).
    queue: Queue,
    /// Device and inode of the file when we opened it, to tell a removed or replaced file.
    file_id: Option<(u64, u64)>,
    /// Deliveries not yet added to the entry's `delivered`.
    unflushed: Cell<u64>,
    /// When we last looked whether the file was removed.
    checked_at: Cell<Option<Instant>>,
}

impl Sub {
    fn matches(&self, msg: &[u8]) -> bool {
        // (`starts_with` calls `memcmp` even for an empty prefix.)
        self.prefix.is_empty() || msg.starts_with(&self.prefix)
    }

    /// What became of the queue's file, looked at most every [`REMOVAL_CHECK`].
    fn file_fate(&self) -> FileFate {
        let now = Instant::now();
        if let Some(at) = self.checked_at.get() {
            if now.duration_since(at) < REMOVAL_CHECK {
                return FileFate::Same;
            }
        }
        self.checked_at.set(Some(now));
        match std::fs::symlink_metadata(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileFate::Removed,
            Ok(m) if Some((m.dev(), m.ino())) != self.file_id => FileFate::Replaced,
            _ => FileFate::Same,
        }
    }
}

#[derive(PartialEq, Eq)]
enum FileFate {
    Same,
    Removed,
    Replaced,
}

/// How long a publish may wait.
#[derive(Clone, Copy)]
enum Wait {
    Now,
    Until(Instant),
    Forever,
}

/// Why reserving in every `Block` subscription stopped.
enum Blocked {
    /// The subscription at this index of `Cache::subs` is full.
    Full(usize),
    Failed(Error),
}

/// A subscription entry, validated (fields as in [`SubscriptionEntry`]).
struct EntryData {
    seq: u64,
    when_full: WhenFull,
    path: PathBuf,
    prefix: Vec<u8>,
    delivered: u64,
    dropped: u64,
    subscribed_unix_ns: u64,
}

/// Reads and validates entry `index`; `None` if it holds no subscription.
fn read_entry(index: usize, e: &SubscriptionEntry) -> Result<Option<EntryData>> {
    let bad = |what: String| Error::corrupt(format!("topic subscription entry {index}: {what}"));
    match e.state.load(Ordering::Acquire) {
        FREE | WRITING => return Ok(None),
        ACTIVE => {}
        other => return Err(bad(format!("state {other}"))),
    }
    let when_full = match e.when_full.load(Ordering::Relaxed) {
        0 => WhenFull::Block,
        1 => WhenFull::Drop,
        other => return Err(bad(format!("policy {other}"))),
    };
    let path_len = e.path_len.load(Ordering::Relaxed) as usize;
    let prefix_len = e.prefix_len.load(Ordering::Relaxed) as usize;
    if !(1..=MAX_PATH).contains(&path_len) || prefix_len > MAX_PREFIX {
        return Err(bad(format!(
            "path length {path_len}, prefix length {prefix_len}"
        )));
    }
    let path: Vec<u8> = e.path[..path_len]
        .iter()
        .map(|b| b.load(Ordering::Relaxed))
        .collect();
    if path[0] != b'/' || path.contains(&0) {
        return Err(bad("the queue path is not an absolute path".into()));
    }
    Ok(Some(EntryData {
        seq: e.seq.load(Ordering::Relaxed),
        when_full,
        path: PathBuf::from(std::ffi::OsString::from_vec(path)),
        prefix: e.prefix[..prefix_len]
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect(),
        delivered: e.delivered.load(Ordering::Relaxed),
        dropped: e.dropped.load(Ordering::Relaxed),
        subscribed_unix_ns: e.subscribed_unix_ns.load(Ordering::Relaxed),
    }))
}

/// Validates an identity block read from a file of `actual_len` bytes.
fn validate(id: &TopicIdentity, path: &Path, actual_len: u64) -> Result<()> {
    if id.magic != TOPIC_MAGIC {
        return Err(Error::corrupt(if id.magic == layout::MAGIC {
            format!("{} is a shmq queue, not a topic", path.display())
        } else {
            format!("{} is not a shmq topic file (bad magic)", path.display())
        }));
    }
    if id.version != TOPIC_VERSION {
        return Err(Error::Incompatible {
            found: format!("topic layout version {}", id.version),
            expected: format!("topic layout version {TOPIC_VERSION}"),
        });
    }
    if id.platform != PLATFORM {
        return Err(Error::Incompatible {
            found: format!("platform tag {:#010x}", id.platform),
            expected: format!("platform tag {PLATFORM:#010x}"),
        });
    }
    let fields = [
        (
            "subscription count",
            u64::from(id.subscriptions),
            u64::from(MAX_SUBSCRIPTIONS),
        ),
        (
            "publisher count",
            u64::from(id.publishers),
            u64::from(PARTICIPANTS),
        ),
        ("flags", u64::from(id.flags), 0),
        (
            "subscriptions offset",
            id.subscriptions_offset,
            SUBSCRIPTIONS_OFFSET,
        ),
        ("publishers offset", id.publishers_offset, PUBLISHERS_OFFSET),
        ("publishing offset", id.publishing_offset, PUBLISHING_OFFSET),
        ("file length", id.file_len, FILE_LEN),
        ("actual file length", actual_len, FILE_LEN),
    ];
    for (name, found, expected) in fields {
        if found != expected {
            return Err(Error::corrupt(format!(
                "topic header: {name} is {found}, expected {expected}"
            )));
        }
    }
    if !(1..=MAX_MESSAGE_SIZE).contains(&id.max_message_size) {
        return Err(Error::corrupt(format!(
            "topic header: max message size {}",
            id.max_message_size
        )));
    }
    Ok(())
}

/// The lock on the subscription table, released on drop.
///
/// A word in the mapping, not an `fcntl` lock on the file: any process that can *read* the file
/// could take a read lock on a byte of it and so hold every writer back for ever (a monitor of a
/// mode-640 topic would stop every publish, subscribe and unsubscribe). Only a process that can
/// write the topic can set this word. It holds the owner's publisher token; a waiter that finds
/// the owner dead by the kernel's lock table (its publisher entry's lock gone, see
/// [`participant::is_dead`]), or a word no honest owner writes, takes the lock over, so a
/// holder killed mid-change wedges nothing (the table's entry states tell a half-written entry).
///
/// Orderings: the taking CAS is `Acquire` and the release store `Release`, so everything a
/// holder wrote to the table happens before what the next holder reads of it. A takeover CAS is
/// `Acquire` too: what the dead holder wrote reached the mapping (the same pages) before it
/// died, and the entry states say what is complete.
struct TableLock<'a> {
    word: &'a AtomicU64,
    mine: u64,
}

impl<'a> TableLock<'a> {
    fn take(topic: &'a Topic) -> Result<Self> {
        let word = &topic.header().control.0.table_lock;
        let mine = TABLE_LOCK_HELD | u64::from(topic.me.token);
        let mut backoff = Duration::from_micros(20);
        loop {
            let held = match word.compare_exchange(0, mine, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => break,
                Err(held) => held,
            };
            if held == mine {
                // Only this handle writes its token, and it never takes the lock twice.
                return Err(Error::corrupt(
                    "the topic's table lock names this handle, which does not hold it",
                ));
            }
            let owner = held as u32;
            let abandoned = held & !u64::from(u32::MAX) != TABLE_LOCK_HELD
                || participant::is_dead(
                    &topic.file,
                    topic.publishers(),
                    |index| index == topic.me.index,
                    owner,
                );
            if abandoned {
                if word
                    .compare_exchange(held, mine, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    break;
                }
                continue;
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(TABLE_LOCK_BACKOFF);
        }
        crate::test_hooks::pause_point("topic-table-locked");
        Ok(TableLock { word, mine })
    }
}

impl Drop for TableLock<'_> {
    fn drop(&mut self) {
        // Ours unless a waiter wrongly found us dead and took it over: then it is not ours to free.
        let _ = self
            .word
            .compare_exchange(self.mine, 0, Ordering::Release, Ordering::Relaxed);
    }
}

impl Topic {
    /// Creates a topic file at `path` and opens it; `AlreadyExists` if anything is there.
    ///
    /// Like a queue, the file is written in full under a private name in the same directory and
    /// then linked into place, so no process sees a half-written topic.
    pub fn create(path: impl AsRef<Path>, options: TopicOptions) -> Result<Topic> {
        let path = path.as_ref();
        options.validate()?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        file::check_room(path, dir, FILE_LEN)?;
        let temp = tempfile::Builder::new()
            .prefix(".shmq-topic-new-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(options.mode))
            .tempfile_in(dir)
            .map_err(|e| Error::from_io_at(e, dir))?;
        file::allocate(temp.as_file(), FILE_LEN).map_err(|e| file::out_of_space(e, path, dir))?;
        {
            let map = MmapOptions::new()
                .len(FILE_LEN as usize)
                .map_raw(temp.as_file())?;
            let identity = TopicIdentity {
                magic: TOPIC_MAGIC,
                version: TOPIC_VERSION,
                platform: PLATFORM,
                max_message_size: options.max_message_size,
                subscriptions: MAX_SUBSCRIPTIONS,
                publishers: PARTICIPANTS,
                flags: 0,
                subscriptions_offset: SUBSCRIPTIONS_OFFSET,
                publishers_offset: PUBLISHERS_OFFSET,
                publishing_offset: PUBLISHING_OFFSET,
                file_len: FILE_LEN,
                created_unix_ns: participant::unix_now_ns(),
            };
            // SAFETY: the mapping is FILE_LEN bytes of a file only we can see, page-aligned (so
            // aligned for the identity at offset 0); every other byte stays zero, which is the
            // empty table and a valid value of every atomic.
            unsafe { std::ptr::write(map.as_mut_ptr() as *mut TopicIdentity, identity) };
            map.flush()?;
        }
        std::fs::hard_link(temp.path(), path).map_err(|e| Error::from_io_at(e, path))?;
        drop(temp);
        Topic::open_checked(path, Trust::Owner).inspect_err(|_| {
            let _ = std::fs::remove_file(path);
        })
    }

    /// Opens an existing topic file, validating its header. `NotFound` if there is none;
    /// `Corrupt` if the file is not a topic (naming a queue as such).
    pub fn open(path: impl AsRef<Path>) -> Result<Topic> {
        Topic::open_checked(path.as_ref(), Trust::AnyOwner)
    }

    /// Opens the topic at `path`, creating it with `options` if no file exists. An existing
    /// file must be owned by the caller's effective user (as for `Queue::open_or_create`).
    pub fn open_or_create(path: impl AsRef<Path>, options: TopicOptions) -> Result<Topic> {
        let path = path.as_ref();
        options.validate()?;
        loop {
            match Topic::open_checked(path, Trust::Owner) {
                Err(Error::NotFound(_)) => match Topic::create(path, options) {
                    Err(Error::AlreadyExists(_)) => continue,
                    other => return other,
                },
                other => return other,
            }
        }
    }

    /// Removes the topic file. Handles already open keep working; the subscriptions' queues
    /// are left as they are.
    pub fn unlink(path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::remove_file(path).map_err(|e| Error::from_io_at(e, path))
    }

    fn open_checked(path: &Path, trust: Trust) -> Result<Topic> {
        let file = file::open(path, true)?;
        let meta = file.metadata()?;
        let actual_len = file::check_metadata(path, &meta, trust)?;
        let identity = read_identity(&file)?;
        validate(&identity, path, actual_len)?;
        file::check_other_access(path, &meta, identity.flags)?;
        if !file::is_allocated(&meta, actual_len) {
            let dir = path.parent().unwrap_or(Path::new("."));
            file::allocate(&file, actual_len).map_err(|e| file::out_of_space(e, path, dir))?;
        }
        let map = MmapOptions::new().len(FILE_LEN as usize).map_raw(&file)?;
        let mut topic = Topic {
            map,
            file,
            path: path.to_path_buf(),
            max_message_size: identity.max_message_size,
            me: Registration {
                index: u32::MAX,
                token: u32::MAX,
            },
            cache: RefCell::new(Cache {
                generation: u64::MAX,
                subs: Vec::new(),
                hint: None,
                replaced: Cell::new(0),
                unusable: Vec::new(),
                retry_at: None,
            }),
        };
        let (me, displaced) = participant::register(&topic.file, topic.publishers())?;
        topic.me = me;
        if let Some(token) = displaced {
            // The entry's last holder died; we hold its lock now, so nobody else counts it.
            topic.count_interrupted(me.index as usize, token);
        }
        topic.mark(false);
        Ok(topic)
    }

    /// The path this handle was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Longest message the topic accepts.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size as usize
    }

    fn header(&self) -> &TopicHeader {
        // SAFETY: the mapping is FILE_LEN bytes (validated on open), page-aligned; the header's
        // fields are integers and atomics, valid for any bits; it lives as long as `self`.
        unsafe { &*(self.map.as_ptr() as *const TopicHeader) }
    }

    fn entries(&self) -> &[SubscriptionEntry] {
        // SAFETY: the table lies at SUBSCRIPTIONS_OFFSET (256, so 8-aligned) inside the
        // FILE_LEN-byte mapping; entries are atomics and byte arrays of atomics.
        unsafe {
            std::slice::from_raw_parts(
                self.map.as_ptr().add(SUBSCRIPTIONS_OFFSET as usize) as *const SubscriptionEntry,
                MAX_SUBSCRIPTIONS as usize,
            )
        }
    }

    fn publishers(&self) -> &[Participant] {
        // SAFETY: as for `entries`, at PUBLISHERS_OFFSET (64-aligned); entries are atomics.
        unsafe {
            std::slice::from_raw_parts(
                self.map.as_ptr().add(PUBLISHERS_OFFSET as usize) as *const Participant,
                PARTICIPANTS as usize,
            )
        }
    }

    fn publishing(&self) -> &[Publishing] {
        // SAFETY: as for `entries`, at PUBLISHING_OFFSET (64-aligned, as `Publishing` needs).
        unsafe {
            std::slice::from_raw_parts(
                self.map.as_ptr().add(PUBLISHING_OFFSET as usize) as *const Publishing,
                PARTICIPANTS as usize,
            )
        }
    }

    /// Sets or clears our "publishing now" mark.
    #[inline]
    fn mark(&self, publishing: bool) {
        if let Some(p) = self.publishing().get(self.me.index as usize) {
            let word = u64::from(self.me.token) << 1 | u64::from(publishing);
            p.word.store(word, Ordering::Release);
        }
    }

    /// Counts an interrupted publish if the dead holder `token` of entry `index` left its mark
    /// set; the compare-exchange makes sure it is counted once, by whoever clears it.
    fn count_interrupted(&self, index: usize, token: u32) -> bool {
        let Some(p) = self.publishing().get(index) else {
            return false;
        };
        let set = u64::from(token) << 1 | 1;
        let counted = p
            .word
            .compare_exchange(set, set & !1, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok();
        if counted {
            self.header()
                .control
                .0
                .interrupted_publishes
                .fetch_add(1, Ordering::Relaxed);
        }
        counted
    }

    /// Counts the interrupted publishes of every publisher that died marked.
    fn sweep_publishers(&self) {
        for (index, entry) in (0u32..).zip(self.publishers()) {
            let word = entry.token.load(Ordering::Acquire);
            if word & 1 == 0 || index == self.me.index {
                continue;
            }
            if !participant::is_held(&self.file, index).unwrap_or(true) {
                self.count_interrupted(index as usize, participant::token_of(index, word));
            }
        }
    }

    /// Raises the generation: every publisher rereads the table before its next publish.
    fn bump_generation(&self) {
        self.header()
            .control
            .0
            .generation
            .fetch_add(1, Ordering::SeqCst);
    }

    /// Subscribes the queue at `queue_path`, creating it with `subscription`'s capacity and
    /// message size if no file is there; an existing queue is subscribed as it is. Publishes
    /// that begin after this returns deliver to it.
    pub fn subscribe(
        &self,
        queue_path: impl AsRef<Path>,
        subscription: Subscription,
    ) -> Result<()> {
        let path = std::path::absolute(queue_path.as_ref())?;
        let bytes = path.as_os_str().as_bytes();
        if bytes.len() > MAX_PATH || bytes.contains(&0) {
            return Err(Error::InvalidOptions(format!(
                "queue path {} is longer than {MAX_PATH} bytes",
                path.display()
            )));
        }
        if subscription.prefix.len() > MAX_PREFIX {
            return Err(Error::InvalidOptions(format!(
                "prefix of {} bytes is longer than the limit of {MAX_PREFIX}",
                subscription.prefix.len()
            )));
        }
        let _lock = TableLock::take(self)?;
        let mut free = None;
        for (index, e) in self.entries().iter().enumerate() {
            match read_entry(index, e)? {
                Some(data) if data.path == path => return Err(Error::AlreadyExists(path)),
                Some(_) => {}
                None => {
                    free.get_or_insert(index);
                }
            }
        }
        let Some(index) = free else {
            return Err(Error::InvalidOptions(format!(
                "the topic {} has all {MAX_SUBSCRIPTIONS} subscriptions in use (the limit); \
                 unsubscribe one first",
                self.path.display()
            )));
        };
        let queue = match Queue::open(&path) {
            Err(Error::NotFound(_)) => {
                if subscription.max_message_size < self.max_message_size {
                    return Err(self.too_small(&path, subscription.max_message_size as usize));
                }
                let options = Options::new(subscription.capacity, subscription.max_message_size);
                match Queue::create(&path, options) {
                    Err(Error::AlreadyExists(_)) => Queue::open(&path),
                    other => other,
                }
            }
            other => other,
        }?;
        if queue.max_message_size() < self.max_message_size() {
            return Err(self.too_small(&path, queue.max_message_size()));
        }
        drop(queue);
        let e = &self.entries()[index];
        self.bump_generation();
        e.state.store(WRITING, Ordering::SeqCst);
        let policy = match subscription.when_full {
            WhenFull::Block => 0,
            WhenFull::Drop => 1,
        };
        e.when_full.store(policy, Ordering::Relaxed);
        for (dst, &b) in e.path.iter().zip(bytes) {
            dst.store(b, Ordering::Relaxed);
        }
        e.path_len.store(bytes.len() as u32, Ordering::Relaxed);
        for (dst, &b) in e.prefix.iter().zip(&subscription.prefix) {
            dst.store(b, Ordering::Relaxed);
        }
        e.prefix_len
            .store(subscription.prefix.len() as u32, Ordering::Relaxed);
        e.seq.fetch_add(1, Ordering::Relaxed);
        e.subscribed_unix_ns
            .store(participant::unix_now_ns(), Ordering::Relaxed);
        e.delivered.store(0, Ordering::Relaxed);
        e.dropped.store(0, Ordering::Relaxed);
        e.state.store(ACTIVE, Ordering::Release);
        Ok(())
    }

    fn too_small(&self, path: &Path, queue_max: usize) -> Error {
        Error::InvalidOptions(format!(
            "queue {} holds messages of up to {queue_max} bytes, fewer than the {} bytes of \
             topic {}",
            path.display(),
            self.max_message_size,
            self.path.display()
        ))
    }

    /// Removes the subscription of the queue at `queue_path` (the queue itself stays, with
    /// what it holds). Publishes that begin after this returns do not deliver to it.
    /// `InvalidOptions` if the queue is not subscribed.
    pub fn unsubscribe(&self, queue_path: impl AsRef<Path>) -> Result<()> {
        let path = std::path::absolute(queue_path.as_ref())?;
        let _lock = TableLock::take(self)?;
        for (index, e) in self.entries().iter().enumerate() {
            if read_entry(index, e)?.is_some_and(|data| data.path == path) {
                self.bump_generation();
                e.state.store(FREE, Ordering::Release);
                return Ok(());
            }
        }
        Err(Error::InvalidOptions(format!(
            "{} is not subscribed to topic {}",
            path.display(),
            self.path.display()
        )))
    }

    /// Ends subscription `index` if it is still the one of sequence `seq` (its file was
    /// removed). Called with the table lock held.
    fn end_subscription(&self, index: usize, seq: u64) {
        let e = &self.entries()[index];
        if e.state.load(Ordering::Acquire) == ACTIVE && e.seq.load(Ordering::Relaxed) == seq {
            self.bump_generation();
            e.state.store(FREE, Ordering::Release);
        }
    }

    /// Adds our unflushed deliveries to the entries they belong to. Called with the table lock
    /// held (so that an entry cannot be refilled between the check and the add).
    fn flush(&self, cache: &Cache) {
        for sub in &cache.subs {
            self.flush_one(sub);
        }
    }

    /// Rereads the subscription table under its lock, keeping the queues already open.
    fn refresh(&self, cache: &mut Cache) -> Result<()> {
        let _lock = TableLock::take(self)?;
        self.flush(cache);
        let mut old = std::mem::take(&mut cache.subs);
        cache.hint = None;
        cache.generation = u64::MAX; // until the reread succeeds
        cache.unusable.clear();
        // Who can write the topic (so its table): each queue named there must be writable by
        // all of them (see `open_subscription`).
        let writers = file::Writers::of(&self.file.metadata()?);
        let mut subs = Vec::new();
        for (index, e) in self.entries().iter().enumerate() {
            let Some(data) = read_entry(index, e)? else {
                continue;
            };
            if let Some(pos) = old
                .iter()
                .position(|s| s.index == index && s.seq == data.seq)
            {
                subs.push(old.swap_remove(pos));
                continue;
            }
            let (queue, file_id) = match self.open_subscription(&data.path, &writers) {
                Ok(opened) => opened,
                Err(Error::NotFound(_)) => {
                    self.end_subscription(index, data.seq);
                    continue;
                }
                Err(_) => {
                    // One bad subscription must not stop the others: skip it and count.
                    cache.unusable.push(Unusable {
                        index,
                        seq: data.seq,
                        prefix: data.prefix,
                    });
                    continue;
                }
            };
            let file_id = Some(file_id);
            subs.push(Sub {
                index,
                seq: data.seq,
                path: data.path,
                when_full: data.when_full,
                prefix: data.prefix,
                queue,
                file_id,
                unflushed: Cell::new(0),
                checked_at: Cell::new(None),
            });
        }
        cache.subs = subs;
        cache.retry_at = (!cache.unusable.is_empty()).then(|| Instant::now() + UNUSABLE_RETRY);
        cache.generation = self.header().control.0.generation.load(Ordering::SeqCst);
        Ok(())
    }

    /// Opens the queue of a subscription whose path was read from the topic's table, with its
    /// file's `(device, inode)`. The path comes from shared memory that any writer of the topic
    /// can rewrite, so the queue is used only if everyone who can write the topic (`writers`)
    /// could write it too ([`file::Writers::check_delegated`]), and only if its slots hold the
    /// topic's messages.
    fn open_subscription(
        &self,
        path: &Path,
        writers: &file::Writers,
    ) -> Result<(Queue, (u64, u64))> {
        let queue = Queue::open(path)?;
        let meta = queue.file().metadata()?;
        writers.check_delegated(path, &meta)?;
        if queue.max_message_size() < self.max_message_size() {
            return Err(self.too_small(path, queue.max_message_size()));
        }
        Ok((queue, (meta.dev(), meta.ino())))
    }

    /// Counts `msg` dropped for each unusable subscription it matches (whose entry is still
    /// the subscription that was skipped).
    #[cold]
    fn count_unusable(&self, cache: &Cache, msg: &[u8]) {
        for u in &cache.unusable {
            let e = &self.entries()[u.index];
            if (u.prefix.is_empty() || msg.starts_with(&u.prefix))
                && e.state.load(Ordering::Acquire) == ACTIVE
                && e.seq.load(Ordering::Relaxed) == u.seq
            {
                e.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Publishes `msg` to every matching subscription, waiting while a matching `Block`
    /// subscription is full. See the module doc for what `Ok` promises.
    pub fn publish(&self, msg: &[u8]) -> Result<()> {
        self.publish_with(msg, Wait::Forever)
    }

    /// Publishes `msg` if every matching `Block` subscription has room now; otherwise `Full`,
    /// and the message went nowhere. Makes no system call when the subscriptions have not
    /// changed and none is full (beyond waking a sleeping consumer).
    pub fn try_publish(&self, msg: &[u8]) -> Result<()> {
        self.publish_with(msg, Wait::Now)
    }

    /// Publishes `msg`, waiting at most `timeout` for room in every matching `Block`
    /// subscription; `Timeout` means the message went nowhere.
    pub fn publish_timeout(&self, msg: &[u8], timeout: Duration) -> Result<()> {
        let wait = Instant::now()
            .checked_add(timeout)
            .map_or(Wait::Forever, Wait::Until);
        self.publish_with(msg, wait)
    }

    /// Publishes each of `msgs` in order, as [`publish`](Self::publish) does, checking every
    /// length before publishing any.
    pub fn publish_batch<M: AsRef<[u8]>>(&self, msgs: &[M]) -> Result<()> {
        for msg in msgs {
            self.check_len(msg.as_ref())?;
        }
        let mut cache = self.cache.borrow_mut();
        for msg in msgs {
            self.publish_locked(&mut cache, msg.as_ref(), Wait::Forever)?;
        }
        Ok(())
    }

    fn check_len(&self, msg: &[u8]) -> Result<()> {
        if msg.len() > self.max_message_size() {
            return Err(Error::TooLarge {
                len: msg.len(),
                max: self.max_message_size(),
            });
        }
        Ok(())
    }

    fn publish_with(&self, msg: &[u8], wait: Wait) -> Result<()> {
        self.check_len(msg)?;
        let mut cache = self.cache.borrow_mut();
        self.publish_locked(&mut cache, msg, wait)
    }

    fn publish_locked(&self, cache: &mut Cache, msg: &[u8], wait: Wait) -> Result<()> {
        if self.header().control.0.generation.load(Ordering::Acquire) != cache.generation
            || cache.retry_at.is_some_and(|at| Instant::now() >= at)
        {
            self.refresh(cache)?;
        }
        self.mark(true);
        let result = self.deliver(cache, msg, wait);
        self.mark(false);
        if result.is_ok() && !cache.unusable.is_empty() {
            self.count_unusable(cache, msg);
        }
        result
    }

    /// Reserves a slot in every matching `Block` subscription (the one at `first`, if any,
    /// first: with waiting), then commits them all and offers the message to the `Drop` ones.
    fn deliver(&self, cache: &mut Cache, msg: &[u8], wait: Wait) -> Result<()> {
        let mut targets = Targets::of(&cache.subs, msg);
        let mut first = cache.hint.filter(|&i| targets.block & 1 << i != 0);
        loop {
            let outcome =
                self.deliver_once(&cache.subs, &cache.replaced, msg, first, wait, targets);
            let index = match outcome {
                Ok(()) => {
                    cache.hint = first;
                    if cache.replaced.get() != 0 {
                        self.forget_replaced(cache)?;
                    }
                    return Ok(());
                }
                Err(Blocked::Failed(e)) => return Err(e),
                Err(Blocked::Full(index)) => index,
            };
            cache.hint = Some(index);
            first = Some(index);
            // Before giving up or waiting again: did the subscriptions change, or is the full
            // queue's file gone (then the subscription ends, and must not hold us)?
            let (fate, entry, seq) = {
                let sub = &cache.subs[index];
                (sub.file_fate(), sub.index, sub.seq)
            };
            let changed = match fate {
                FileFate::Same => false,
                FileFate::Removed => {
                    let _lock = TableLock::take(self)?;
                    self.end_subscription(entry, seq);
                    true
                }
                FileFate::Replaced => {
                    // Reopen it: drop our handle on the old file and reread the table.
                    cache.replaced.set(cache.replaced.get() | 1 << index);
                    self.forget_replaced(cache)?;
                    true
                }
            };
            if changed
                || self.header().control.0.generation.load(Ordering::Acquire) != cache.generation
            {
                self.refresh(cache)?;
                targets = Targets::of(&cache.subs, msg);
                first = None;
                continue;
            }
            match wait {
                Wait::Now => return Err(Error::Full),
                Wait::Until(deadline) if Instant::now() >= deadline => return Err(Error::Timeout),
                _ => {}
            }
        }
    }

    /// Adds one subscription's unflushed deliveries to its entry, if it is still the entry it
    /// was opened for. Called with the table lock held.
    fn flush_one(&self, sub: &Sub) {
        let n = sub.unflushed.replace(0);
        let e = &self.entries()[sub.index];
        if n > 0
            && e.state.load(Ordering::Acquire) == ACTIVE
            && e.seq.load(Ordering::Relaxed) == sub.seq
        {
            e.delivered.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Lets go of the subscriptions marked in `cache.replaced` (their queue file was replaced),
    /// flushing their counts, so that the next reread of the table opens the new files.
    fn forget_replaced(&self, cache: &mut Cache) -> Result<()> {
        let replaced = cache.replaced.replace(0);
        let _lock = TableLock::take(self)?;
        // Highest position first, so that `swap_remove` moves only positions already handled.
        let positions: Vec<usize> = bits(replaced).collect();
        for &i in positions.iter().rev() {
            let old = cache.subs.swap_remove(i);
            self.flush_one(&old);
        }
        cache.hint = None;
        cache.generation = u64::MAX;
        Ok(())
    }

    /// One attempt: reserve everywhere or nowhere, then commit. A `Drop` subscription whose
    /// queue file turns out replaced is marked in `replaced`.
    fn deliver_once(
        &self,
        subs: &[Sub],
        replaced: &Cell<u64>,
        msg: &[u8],
        first: Option<usize>,
        wait: Wait,
        targets: Targets,
    ) -> std::result::Result<(), Blocked> {
        // Subscriptions that match but do not get the message (their queue is closed, or it is
        // a full Drop one): each counts a drop once the message went everywhere else.
        let mut missed = 0u64;
        let held = match first {
            None => None,
            Some(i) => {
                let queue = &subs[i].queue;
                let timeout = match wait {
                    Wait::Now => None,
                    Wait::Until(deadline) => Some(
                        deadline
                            .saturating_duration_since(Instant::now())
                            .min(WAIT_SLICE),
                    ),
                    Wait::Forever => Some(WAIT_SLICE),
                };
                match Claimed::new(queue, timeout) {
                    Ok(claimed) => Some(claimed),
                    Err(Error::Closed) => {
                        missed |= 1 << i;
                        None
                    }
                    Err(Error::Full | Error::Timeout) => return Err(Blocked::Full(i)),
                    Err(e) => return Err(Blocked::Failed(e)),
                }
            }
        };
        let others = first.map_or(targets.block, |i| targets.block & !(1 << i));
        reserve_rest(subs, msg, others, &mut missed)?;
        if let Some(claimed) = held {
            claimed.publish(msg).map_err(Blocked::Failed)?;
        }
        // Every Block subscription has the message: offer it to the Drop ones.
        for i in bits(targets.drop) {
            let sub = &subs[i];
            match sub.queue.try_send(msg) {
                Ok(()) => self.delivered(sub),
                Err(_) => {
                    missed |= 1 << i;
                    // Full for good if its file is gone: end it, or reopen it if it was
                    // replaced (looked at most every REMOVAL_CHECK), so that nobody keeps
                    // offering to an orphan.
                    match sub.file_fate() {
                        FileFate::Same => {}
                        FileFate::Removed => {
                            if let Ok(_lock) = TableLock::take(self) {
                                self.end_subscription(sub.index, sub.seq);
                            }
                        }
                        FileFate::Replaced => replaced.set(replaced.get() | 1 << i),
                    }
                }
            }
        }
        for i in bits(targets.block | missed) {
            let sub = &subs[i];
            if missed & (1 << i) != 0 {
                self.entries()[sub.index]
                    .dropped
                    .fetch_add(1, Ordering::Relaxed);
            } else {
                self.delivered(sub);
            }
        }
        Ok(())
    }

    /// Counts one delivery to `sub`, adding the batch to the shared counter when it is full.
    #[inline]
    fn delivered(&self, sub: &Sub) {
        let n = sub.unflushed.get() + 1;
        if n < DELIVERED_BATCH {
            sub.unflushed.set(n);
        } else {
            sub.unflushed.set(0);
            self.entries()[sub.index]
                .delivered
                .fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The subscriptions with their depth and counters (this handle's deliveries added first).
    pub fn subscriptions(&self) -> Result<Vec<SubscriptionInfo>> {
        Ok(self.stats()?.subscriptions)
    }

    /// A snapshot of the topic: counts the publishes of publishers that died publishing, adds
    /// this handle's deliveries to the counters, then reads the table and each subscription's
    /// queue (with [`Queue::inspect`]).
    pub fn stats(&self) -> Result<TopicStats> {
        {
            let _lock = TableLock::take(self)?;
            self.flush(&self.cache.borrow());
        }
        self.sweep_publishers();
        // SAFETY: the header is inside the mapping (see `header`) and is plain integers.
        let identity = unsafe { std::ptr::read(&self.header().identity.0) };
        snapshot(
            &identity,
            &self.header().control.0,
            self.entries(),
            self.publishers(),
            self.publishing(),
            &self.file,
            Some(self.me.index),
        )
    }

    /// A snapshot of the topic at `path` for monitors (`shmq stat`): needs read permission
    /// only, opens no handle, never maps the file and changes nothing. Publishers that died
    /// publishing are counted in `interrupted_publishes` without being cleared.
    pub fn inspect(path: impl AsRef<Path>) -> Result<TopicStats> {
        let path = path.as_ref();
        let file = file::open(path, false)?;
        let meta = file.metadata()?;
        let actual_len = file::check_metadata(path, &meta, Trust::AnyOwner)?;
        let identity = read_identity(&file)?;
        validate(&identity, path, actual_len)?;
        let mut bytes = vec![0u8; FILE_LEN as usize];
        file.read_exact_at(&mut bytes, 0)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => Error::corrupt("the topic file was truncated"),
                _ => Error::Io(e),
            })?;
        // SAFETY: `Control` is atomics, valid for any bits; `copy_at` checks the bounds.
        let control: Control = unsafe { copy_at(&bytes, 128) };
        // SAFETY: a `SubscriptionEntry` is atomics and byte arrays of atomics, valid for any
        // bits; `copy_at` (inside `copy_table`) checks the bounds.
        let entries: Vec<SubscriptionEntry> =
            unsafe { copy_table(&bytes, SUBSCRIPTIONS_OFFSET, MAX_SUBSCRIPTIONS) };
        // SAFETY: a `Participant` is atomics, valid for any bits; bounds checked as above.
        let publishers: Vec<Participant> =
            unsafe { copy_table(&bytes, PUBLISHERS_OFFSET, PARTICIPANTS) };
        // SAFETY: a `Publishing` is an atomic, valid for any bits; bounds checked as above.
        let publishing: Vec<Publishing> =
            unsafe { copy_table(&bytes, PUBLISHING_OFFSET, PARTICIPANTS) };
        snapshot(
            &identity,
            &control,
            &entries,
            &publishers,
            &publishing,
            &file,
            None,
        )
    }
}

/// A copy of the `T` at `offset` of `bytes`.
///
/// # Safety
/// `T` must be valid for any bit pattern (integers, atomics, arrays of them).
unsafe fn copy_at<T>(bytes: &[u8], offset: usize) -> T {
    assert!(offset + std::mem::size_of::<T>() <= bytes.len());
    // SAFETY: in bounds (checked above); any bits are a valid `T` (the caller's promise);
    // `read_unaligned` needs no alignment.
    unsafe { std::ptr::read_unaligned(bytes.as_ptr().add(offset) as *const T) }
}

/// Copies of the `count` entries of a table of `T` that starts at `offset` of `bytes`, at the
/// stride of `T` itself (the file's layout: see the offsets above), so a table read here can
/// never disagree with the mapped one.
///
/// # Safety
/// As [`copy_at`]: `T` must be valid for any bit pattern.
unsafe fn copy_table<T>(bytes: &[u8], offset: u64, count: u32) -> Vec<T> {
    let stride = std::mem::size_of::<T>();
    (0..count as usize)
        // SAFETY: the caller's promise; `copy_at` checks the bounds.
        .map(|i| unsafe { copy_at(bytes, offset as usize + i * stride) })
        .collect()
}

/// Reads the identity block with `pread` (the file may be shorter than one: then `Corrupt`).
fn read_identity(file: &File) -> Result<TopicIdentity> {
    let mut bytes = [0u8; std::mem::size_of::<TopicIdentity>()];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                Error::corrupt("file is shorter than a topic header")
            }
            _ => Error::Io(e),
        })?;
    // SAFETY: `TopicIdentity` is integers and bytes, valid for any bits; the array is its size.
    Ok(unsafe { copy_at(&bytes, 0) })
}

/// Builds the stats from the (mapped or copied) parts of a topic file. Dead publishers still
/// marked are added to `interrupted_publishes` (without clearing them).
fn snapshot(
    identity: &TopicIdentity,
    control: &Control,
    entries: &[SubscriptionEntry],
    publishers: &[Participant],
    publishing: &[Publishing],
    probe: &File,
    me: Option<u32>,
) -> Result<TopicStats> {
    let mut live = 0;
    let mut interrupted = control.interrupted_publishes.load(Ordering::Relaxed);
    for (index, entry) in (0u32..).zip(publishers) {
        let word = entry.token.load(Ordering::Acquire);
        if word & 1 == 0 {
            continue;
        }
        if Some(index) == me || participant::is_held(probe, index).unwrap_or(true) {
            live += 1;
        } else {
            let token = participant::token_of(index, word);
            let mark = publishing[index as usize].word.load(Ordering::Acquire);
            if mark == u64::from(token) << 1 | 1 {
                interrupted += 1;
            }
        }
    }
    let mut subscriptions = Vec::new();
    for (index, e) in entries.iter().enumerate() {
        let Some(data) = read_entry(index, e)? else {
            continue;
        };
        let queue = Queue::inspect(&data.path).ok();
        subscriptions.push(SubscriptionInfo {
            depth: queue.as_ref().map(|q| q.len),
            path: data.path,
            when_full: data.when_full,
            prefix: data.prefix,
            delivered: data.delivered,
            dropped: data.dropped,
            subscribed_unix_ns: data.subscribed_unix_ns,
            queue,
        });
    }
    Ok(TopicStats {
        version: identity.version,
        max_message_size: identity.max_message_size,
        created_unix_ns: identity.created_unix_ns,
        generation: control.generation.load(Ordering::Relaxed),
        publishers: live,
        interrupted_publishes: interrupted,
        subscriptions,
    })
}

/// The subscriptions a message goes to, as bit masks over the indices of `Cache::subs` (at most
/// [`MAX_SUBSCRIPTIONS`] = 64), worked out once per publish.
#[derive(Clone, Copy)]
struct Targets {
    block: u64,
    drop: u64,
}

impl Targets {
    fn of(subs: &[Sub], msg: &[u8]) -> Targets {
        let mut targets = Targets { block: 0, drop: 0 };
        for (i, sub) in subs.iter().enumerate() {
            if sub.matches(msg) {
                match sub.when_full {
                    WhenFull::Block => targets.block |= 1 << i,
                    WhenFull::Drop => targets.drop |= 1 << i,
                }
            }
        }
        targets
    }
}

/// The indices of the bits set in `mask`, lowest first.
fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        let i = mask.trailing_zeros() as usize;
        mask &= mask.wrapping_sub(1);
        (i < 64).then_some(i)
    })
}

/// Reserves a slot for `msg` in every subscription of `pending` (a mask of `Block`
/// subscriptions), and once all are reserved writes and commits them, the last reserved first.
/// The reservations live on the stack of this recursion (at most [`MAX_SUBSCRIPTIONS`] deep),
/// so a `Full` anywhere drops, and so cancels, every one made. A closed queue is skipped and
/// noted in `missed`.
fn reserve_rest(
    subs: &[Sub],
    msg: &[u8],
    pending: u64,
    missed: &mut u64,
) -> std::result::Result<(), Blocked> {
    if pending == 0 {
        return Ok(());
    }
    let i = pending.trailing_zeros() as usize;
    let claimed = match Claimed::new(&subs[i].queue, None) {
        Ok(claimed) => Some(claimed),
        Err(Error::Closed) => {
            *missed |= 1 << i;
            None
        }
        Err(Error::Full) => return Err(Blocked::Full(i)),
        Err(e) => return Err(Blocked::Failed(e)),
    };
    reserve_rest(subs, msg, pending & (pending - 1), missed)?;
    if let Some(claimed) = claimed {
        claimed.publish(msg).map_err(Blocked::Failed)?;
    }
    Ok(())
}

/// A slot claimed in a subscription's queue for one publish; dropped unpublished, it is
/// cancelled (a tombstone the queue's consumers skip).
struct Claimed<'q> {
    queue: &'q Queue,
    /// `None` once published.
    pos: Option<u64>,
}

impl<'q> Claimed<'q> {
    fn new(queue: &'q Queue, timeout: Option<Duration>) -> Result<Self> {
        let pos = queue.claim_slot(timeout)?;
        Ok(Claimed {
            queue,
            pos: Some(pos),
        })
    }

    /// Writes and publishes `msg` (`refresh` checked that every queue holds the topic's
    /// largest message, so this fails only if a queue was swapped under us).
    fn publish(mut self, msg: &[u8]) -> Result<()> {
        let pos = self.pos.expect("a claim is published once");
        self.queue.publish_slot(pos, msg)?;
        self.pos = None;
        Ok(())
    }
}

impl Drop for Claimed<'_> {
    fn drop(&mut self) {
        if let Some(pos) = self.pos {
            self.queue.cancel_slot(pos);
        }
    }
}

impl Drop for Topic {
    fn drop(&mut self) {
        if let Ok(_lock) = TableLock::take(self) {
            self.flush(&self.cache.borrow());
        }
        participant::deregister(self.publishers(), self.me);
    }
}

impl std::fmt::Debug for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topic")
            .field("path", &self.path)
            .field("max_message_size", &self.max_message_size)
            .finish_non_exhaustive()
    }
}

// `Topic` moves between threads; it is deliberately not `Sync` (one publisher per handle).
const _: fn() = || {
    fn send<T: Send>() {}
    send::<Topic>();
};
