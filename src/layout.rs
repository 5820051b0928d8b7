// SPDX-License-Identifier: MIT OR Apache-2.0
//! The file format: one file is one queue.
//!
//! ```text
//! offset 0            Header        (6 × 128 B: identity, tail, head, two wait words, counters;
//!                                    then the redrive ledger (128 B) and the dead-letter queue's
//!                                    path (1024 B))
//! participants_offset Participant × PARTICIPANTS (128 B each): who has the queue open, one
//!                     entry per thread that uses a handle; each begins with that thread's
//!                     claim announcement (see `ring`)
//! slots_offset        Slot × capacity, each `slot_stride` bytes:
//!                        state: u64   the claim state word (see `ring`)
//!                        len: u32     length of the message in the slot
//!                        deliveries: u32  deliveries of this message that ended with the
//!                                         consumer's death (a receiver sees this + 1)
//!                        id: u64      the message's id: the position of its first send, kept
//!                                     when recovery gives the message back
//!                        lease: u64   while the message is held in place (`LENT`) in a queue
//!                                     with a visibility timeout: the hold's deadline, or what
//!                                     became of the hold (see `lease`)
//!                        origin: u64  for a dead-lettered message: the identity (creation
//!                                     time) of the queue it came from; 0 otherwise
//!                        origin_id: u64  and its id there
//!                        payload: [u8; max_message_size], padded to a multiple of 64 bytes
//! ```
//!
//! All integers are native-endian; the header's `platform` word records the byte order and
//! pointer width, and a file from another platform is refused as `Incompatible`. Every offset and
//! size is a function of `capacity` and `max_message_size` alone ([`Geometry::new`]); on open, the
//! header's copies are compared with that function and with the file's real size, and from then
//! on only the validated local copy ([`Geometry`]) is used, never the shared one.
//!
//! The header is written in full in a private temporary file that is then linked into place, so
//! no process can map a half-written header. Bump [`VERSION`] on any change to this layout.

use crate::error::{Error, Result};
use crate::ring::Announcement;
use crate::sync::{AtomicU32, AtomicU64};

/// The first eight bytes of every queue file.
pub const MAGIC: [u8; 8] = *b"SHMQUEUE";
/// The layout version this build reads and writes.
pub const VERSION: u32 = 4;
/// Byte order and pointer width of this build: `'L'` or `'B'` in the high byte, then the pointer
/// width in bits.
pub const PLATFORM: u32 = ((if cfg!(target_endian = "little") {
    b'L'
} else {
    b'B'
} as u32)
    << 24)
    | (usize::BITS & 0xFF);

/// Smallest and largest capacity (number of slots) a queue may have.
pub const MIN_CAPACITY: u32 = 1;
/// See [`MIN_CAPACITY`].
pub const MAX_CAPACITY: u32 = 1 << 24;
/// Largest maximum message size: 16 MiB.
pub const MAX_MESSAGE_SIZE: u32 = 1 << 24;
/// Size of the participant table: the most handles that may have one queue open at once.
pub const PARTICIPANTS: u32 = 512;
/// Identity flag: a message whose consumer dies is dropped (at-most-once), not redelivered.
pub const FLAG_DROP_ON_CONSUMER_DEATH: u32 = 1;
/// Identity flag: the file may give "other" users access (`Options::allow_other_access`);
/// without it, `open` refuses a file whose mode does.
pub const FLAG_ALLOW_OTHER_ACCESS: u32 = 2;
/// Identity flag: once every sender handle that ever attached is gone and the queue is drained,
/// receivers get `Closed` (`Options::close_when_producers_gone`; see `channel`). Builds that do
/// not know it refuse the file, so none of them ignores the word it relies on
/// (`Counters::senders_attached`).
pub const FLAG_CLOSE_WHEN_PRODUCERS_GONE: u32 = 4;
/// Every identity flag this build knows; a file with another bit set is refused on open.
const KNOWN_FLAGS: u32 =
    FLAG_DROP_ON_CONSUMER_DEATH | FLAG_ALLOW_OTHER_ACCESS | FLAG_CLOSE_WHEN_PRODUCERS_GONE;
/// Bytes of slot metadata before the payload.
pub const SLOT_HEADER: usize = 48;
/// Largest file this format describes (1 TiB); larger geometries are refused.
const MAX_FILE_LEN: u64 = 1 << 40;

/// A `T` alone on its own 128-byte line (two 64-byte lines: x86 prefetches pairs).
#[repr(C, align(128))]
pub(crate) struct Line<T>(pub T);

/// The immutable part of the header, written once at creation.
#[repr(C)]
pub(crate) struct Identity {
    /// [`MAGIC`]: this is a queue file.
    pub magic: [u8; 8],
    /// [`VERSION`] of the layout.
    pub version: u32,
    /// [`PLATFORM`] that wrote the file.
    pub platform: u32,
    /// Number of slots.
    pub capacity: u32,
    /// Payload bytes per slot.
    pub max_message_size: u32,
    /// Bytes from one slot to the next.
    pub slot_stride: u32,
    /// Entries in the participant table.
    pub participants: u32,
    /// Offset of the participant table.
    pub participants_offset: u64,
    /// Offset of slot 0.
    pub slots_offset: u64,
    /// Size of the whole file.
    pub file_len: u64,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created_unix_ns: u64,
    /// Option flags: [`FLAG_DROP_ON_CONSUMER_DEATH`], [`FLAG_ALLOW_OTHER_ACCESS`],
    /// [`FLAG_CLOSE_WHEN_PRODUCERS_GONE`]; other bits are refused on open.
    pub flags: u32,
    /// Deliveries after which a message whose consumer died is dropped (dead-lettered) instead
    /// of redelivered; 0 means unlimited.
    pub max_deliveries: u32,
    /// The visibility timeout in nanoseconds (see `lease`); 0: none.
    pub visibility_timeout_ns: u64,
}

/// Counters written only on slow paths, so they may share one line.
#[repr(C)]
pub(crate) struct Counters {
    /// Times a sender found the queue full and had to wait.
    pub full_waits: AtomicU64,
    /// Times a receiver found the queue empty and had to wait.
    pub empty_waits: AtomicU64,
    /// Sends claimed and then cancelled (a reserve guard dropped without commit).
    pub cancelled_sends: AtomicU64,
    /// Sends whose producer died between claiming a slot and publishing it (tombstoned).
    pub abandoned_sends: AtomicU64,
    /// Messages whose consumer died before releasing them, dropped (`on_consumer_death = drop`).
    pub abandoned_receives: AtomicU64,
    /// Messages whose consumer died before releasing them, given back to the queue.
    pub redelivered: AtomicU64,
    /// Messages dropped because their consumers died `max_deliveries` times.
    pub dead_lettered: AtomicU64,
    /// When the participant table was last swept for the dead (the host's monotonic clock, ns: `recovery::monotonic_ns`).
    pub last_sweep_ns: AtomicU64,
    /// How many `Sender` handles have attached (see `channel`); 0 until the first does. It lies
    /// in what was the padding of this line, zero in every file, so the layout version is
    /// unchanged: older builds never read it.
    pub senders_attached: AtomicU64,
    /// Holds whose visibility timeout passed, handed out again.
    pub expired: AtomicU64,
    /// Messages that reached `max_deliveries` and could not be sent to the dead-letter queue
    /// (missing, full, or not a queue): they stay in this queue, delivered again.
    pub dead_letter_failures: AtomicU64,
    /// When the slots were last scanned for lapsed holds (the host's monotonic clock, ns: `recovery::monotonic_ns`).
    pub last_expiry_ns: AtomicU64,
}

/// The queue header at offset 0. Each hot word is alone on its 128-byte line.
#[repr(C)]
pub(crate) struct Header {
    /// Written once at creation, validated on open.
    pub identity: Line<Identity>,
    /// Next position a producer claims; bit 63 is the closed flag (see `ring`).
    pub tail: Line<AtomicU64>,
    /// Next position a consumer claims, and the closing hint beside it.
    pub head: Line<HeadLine>,
    /// Receivers sleep here; senders wake them (see `wait`).
    pub recv_wait: Line<AtomicU32>,
    /// Senders sleep here; receivers wake them.
    pub send_wait: Line<AtomicU32>,
    /// Slow-path counters.
    pub counters: Line<Counters>,
    /// What the last `redrive` into this queue was moving (see `redrive`).
    pub redrive: Line<RedriveLedger>,
    /// The dead-letter queue's path, written once at creation.
    pub dead_letter_queue: DeadLetterPath,
}

/// The destination's record of a message being moved into it by `redrive`, so that a redrive
/// killed midway moves each message exactly once (see `redrive`). Written only by the one
/// redrive that holds the destination's redrive lock; read by recovery.
#[repr(C)]
pub(crate) struct RedriveLedger {
    /// Identity of the queue the message comes from (its creation time); 0: none yet.
    pub source: AtomicU64,
    /// The message's id in that queue.
    pub message: AtomicU64,
    /// The position in this queue the message was committed to, or `u64::MAX` while it is not.
    pub position: AtomicU64,
}

/// Longest dead-letter queue path, in bytes (the field is NUL-padded, so one less).
pub const DEAD_LETTER_PATH_MAX: usize = 1024;

/// The dead-letter queue's path as the header stores it: the path's bytes, NUL-padded; all
/// zero for none.
#[repr(C, align(128))]
pub struct DeadLetterPath {
    bytes: [u8; DEAD_LETTER_PATH_MAX],
}

impl DeadLetterPath {
    /// The stored form of `path`, or `InvalidOptions` if it cannot be stored (too long, empty,
    /// or holding a NUL byte).
    pub(crate) fn encode(path: &std::path::Path) -> Result<DeadLetterPath> {
        use std::os::unix::ffi::OsStrExt;
        let raw = path.as_os_str().as_bytes();
        if raw.is_empty() || raw.len() >= DEAD_LETTER_PATH_MAX || raw.contains(&0) {
            return Err(Error::InvalidOptions(format!(
                "dead-letter queue path must be 1 to {} bytes without NUL, got {} bytes",
                DEAD_LETTER_PATH_MAX - 1,
                raw.len()
            )));
        }
        let mut bytes = [0; DEAD_LETTER_PATH_MAX];
        bytes[..raw.len()].copy_from_slice(raw);
        Ok(DeadLetterPath { bytes })
    }

    /// No dead-letter queue.
    pub(crate) fn none() -> DeadLetterPath {
        DeadLetterPath {
            bytes: [0; DEAD_LETTER_PATH_MAX],
        }
    }

    /// The stored path, or `None`; `Corrupt` if the field is not NUL-terminated.
    pub(crate) fn decode(&self) -> Result<Option<std::path::PathBuf>> {
        use std::os::unix::ffi::OsStrExt;
        let Some(len) = self.bytes.iter().position(|&b| b == 0) else {
            return Err(Error::corrupt(
                "header: dead-letter queue path is not terminated",
            ));
        };
        Ok((len > 0).then(|| std::ffi::OsStr::from_bytes(&self.bytes[..len]).into()))
    }
}

/// The consumers' line: the head cursor, and a word that `close` sets before it closes the
/// tail, so that a receiver polling an empty queue learns of a close from the line it reads
/// anyway, instead of reading the producers' tail line on every poll (see `ring`).
#[repr(C)]
pub(crate) struct HeadLine {
    /// Next position a consumer claims.
    pub head: AtomicU64,
    /// Non-zero once a `close` has begun: receivers that find nothing then read the tail.
    pub closing: AtomicU64,
}

/// One entry of the participant table (see `participant`), on a 128-byte line of its own: its
/// holder writes the announcement before every claim, and no other holder's stores may pull
/// the line away.
#[repr(C, align(128))]
pub(crate) struct Participant {
    /// The claim this holder is making (see `ring`, "Attribution"); written on every claim.
    pub announcement: Announcement,
    /// `generation << 1 | in_use`: the generation grows each time the entry is taken.
    pub token: AtomicU32,
    /// Process id of the holder (informational: liveness is decided by a lock, not by pid).
    pub pid: AtomicU32,
    /// Sleepers of this participant: receivers in bits 0..15 (bit 15: mid-update), senders in
    /// bits 16..31 (bit 31: mid-update). Lets a survivor repair the shared sleeper counts.
    pub sleeping: AtomicU32,
    /// Roles seen: bit 0 sent, bit 1 received.
    pub roles: AtomicU32,
    /// When the entry was taken, nanoseconds since the Unix epoch.
    pub since_unix_ns: AtomicU64,
    /// Since when (nanoseconds since the Unix epoch, coarse clock) the holder has held at least
    /// one guard (`RecvGuard` or `SendGuard`) without a break; 0 while it holds none.
    /// Informational, for monitors: recovery never trusts it.
    pub holding_since_unix_ns: AtomicU64,
}

/// The metadata at the start of every slot; the payload follows it.
#[repr(C)]
pub(crate) struct SlotHeader {
    /// The claim state word (see `ring`).
    pub state: AtomicU64,
    /// Length of the message; trusted only after checking it against `max_message_size`.
    pub len: AtomicU32,
    /// How many deliveries of this message ended with the consumer's death (0 for a new
    /// message; raised by recovery before it publishes the message again).
    pub deliveries: AtomicU32,
    /// The message's id: the position of its first send (unique in the file), copied when
    /// recovery gives the message back.
    pub id: AtomicU64,
    /// While the message is held in place in a queue with a visibility timeout: the hold's
    /// lease (see `lease`). Unused otherwise.
    pub lease: AtomicU64,
    /// For a message dead-lettered into this queue: the identity (creation time) of the queue
    /// it came from; 0 for a message sent here.
    pub origin: AtomicU64,
    /// For a dead-lettered message: its id in the queue it came from.
    pub origin_id: AtomicU64,
}

const _: () = assert!(std::mem::size_of::<Header>() == 7 * 128 + DEAD_LETTER_PATH_MAX);
const _: () = assert!(std::mem::size_of::<Identity>() <= 128);
const _: () = assert!(std::mem::size_of::<Counters>() <= 128);
const _: () = assert!(std::mem::size_of::<Participant>() == 128);
const _: () = assert!(std::mem::size_of::<SlotHeader>() == SLOT_HEADER);

/// Where everything is in a queue file of a given capacity and maximum message size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Number of slots.
    pub capacity: u32,
    /// Payload bytes per slot.
    pub max_message_size: u32,
    /// Bytes from one slot to the next: 48 bytes of slot header plus the payload, rounded up
    /// to 64.
    pub slot_stride: u32,
    /// Offset of the participant table.
    pub participants_offset: u64,
    /// Offset of slot 0; slot `i` starts at `slots_offset + i * slot_stride`.
    pub slots_offset: u64,
    /// Size of the whole file.
    pub file_len: u64,
}

fn round_up(n: u64, to: u64) -> u64 {
    n.div_ceil(to) * to
}

impl Geometry {
    /// The layout for these options, or `InvalidOptions` if they are out of range.
    pub fn new(capacity: u32, max_message_size: u32) -> Result<Self> {
        if !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
            return Err(Error::InvalidOptions(format!(
                "capacity must be from {MIN_CAPACITY} to {MAX_CAPACITY}, got {capacity}"
            )));
        }
        if !(1..=MAX_MESSAGE_SIZE).contains(&max_message_size) {
            return Err(Error::InvalidOptions(format!(
                "max message size must be from 1 to {MAX_MESSAGE_SIZE} bytes, got {max_message_size}"
            )));
        }
        let slot_stride = round_up(SLOT_HEADER as u64 + u64::from(max_message_size), 64);
        let participants_offset = std::mem::size_of::<Header>() as u64;
        let table = u64::from(PARTICIPANTS) * std::mem::size_of::<Participant>() as u64;
        let slots_offset = round_up(participants_offset + table, 128);
        let file_len = slots_offset + slot_stride * u64::from(capacity);
        if file_len > MAX_FILE_LEN {
            return Err(Error::InvalidOptions(format!(
                "capacity × slot size is {file_len} bytes, more than the 1 TiB limit"
            )));
        }
        Ok(Geometry {
            capacity,
            max_message_size,
            slot_stride: slot_stride as u32,
            participants_offset,
            slots_offset,
            file_len,
        })
    }

    /// The identity block a new file of this geometry gets.
    pub(crate) fn identity(
        &self,
        created_unix_ns: u64,
        flags: u32,
        max_deliveries: u32,
        visibility_timeout_ns: u64,
    ) -> Identity {
        Identity {
            magic: MAGIC,
            version: VERSION,
            platform: PLATFORM,
            capacity: self.capacity,
            max_message_size: self.max_message_size,
            slot_stride: self.slot_stride,
            participants: PARTICIPANTS,
            participants_offset: self.participants_offset,
            slots_offset: self.slots_offset,
            file_len: self.file_len,
            created_unix_ns,
            flags,
            max_deliveries,
            visibility_timeout_ns,
        }
    }

    /// Validates an identity block read from a file of `actual_len` bytes.
    ///
    /// Checks, in order: magic (is it a queue at all), version and platform (can we read it),
    /// then that every size and offset is the one the capacity and message size imply, and that
    /// the file really has that many bytes.
    pub(crate) fn validate(id: &Identity, actual_len: u64) -> Result<Self> {
        if id.magic != MAGIC {
            return Err(Error::corrupt("not a shmq queue file (bad magic)"));
        }
        if id.version != VERSION {
            return Err(Error::Incompatible {
                found: format!("layout version {}", id.version),
                expected: format!("layout version {VERSION}"),
            });
        }
        if id.platform != PLATFORM {
            return Err(Error::Incompatible {
                found: format!("platform tag {:#010x}", id.platform),
                expected: format!("platform tag {PLATFORM:#010x}"),
            });
        }
        let geometry = Geometry::new(id.capacity, id.max_message_size).map_err(|e| match e {
            Error::InvalidOptions(why) => Error::corrupt(format!("header: {why}")),
            other => other,
        })?;
        let fields = [
            (
                "slot stride",
                u64::from(id.slot_stride),
                u64::from(geometry.slot_stride),
            ),
            (
                "participant count",
                u64::from(id.participants),
                u64::from(PARTICIPANTS),
            ),
            (
                "participants offset",
                id.participants_offset,
                geometry.participants_offset,
            ),
            ("slots offset", id.slots_offset, geometry.slots_offset),
            ("file length", id.file_len, geometry.file_len),
        ];
        for (name, found, expected) in fields {
            if found != expected {
                return Err(Error::corrupt(format!(
                    "header {name} is {found}, but capacity {} and max message size {} imply {expected}",
                    id.capacity, id.max_message_size
                )));
            }
        }
        if id.flags & !KNOWN_FLAGS != 0 {
            return Err(Error::Incompatible {
                found: format!("option flags {:#x}", id.flags),
                expected: format!("flags within {KNOWN_FLAGS:#x}"),
            });
        }
        if id.visibility_timeout_ns != 0
            && !(crate::options::MIN_VISIBILITY_TIMEOUT.as_nanos()
                ..=crate::options::MAX_VISIBILITY_TIMEOUT.as_nanos())
                .contains(&u128::from(id.visibility_timeout_ns))
        {
            return Err(Error::corrupt(format!(
                "header: visibility timeout of {} ns is out of range",
                id.visibility_timeout_ns
            )));
        }
        if actual_len != geometry.file_len {
            return Err(Error::corrupt(format!(
                "file is {actual_len} bytes, but its header describes {} bytes (truncated or resized)",
                geometry.file_len
            )));
        }
        Ok(geometry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_rejects_bad_capacities() {
        for cap in [0, MAX_CAPACITY + 1, MAX_CAPACITY * 2] {
            assert!(
                matches!(Geometry::new(cap, 8), Err(Error::InvalidOptions(_))),
                "{cap}"
            );
        }
        assert!(matches!(Geometry::new(4, 0), Err(Error::InvalidOptions(_))));
        assert!(Geometry::new(1 << 20, 64).is_ok());
        // Any capacity, not only powers of two.
        for cap in [1, 3, 100, 1000] {
            assert!(Geometry::new(cap, 8).is_ok(), "{cap}");
        }
    }

    #[test]
    fn slots_are_cache_line_aligned() {
        let g = Geometry::new(64, 64).unwrap();
        assert_eq!(g.slot_stride, 128);
        assert_eq!(g.slots_offset % 128, 0);
        assert_eq!(g.file_len, g.slots_offset + 64 * 128);
    }
}
