// SPDX-License-Identifier: MIT OR Apache-2.0
//! Snapshots of a queue: [`Stats`], taken through an open handle
//! ([`Queue::stats`](crate::Queue::stats)) or, for monitors, from the file alone
//! ([`Queue::inspect`](crate::Queue::inspect)).
//!
//! A monitor must not change what it watches, and must work where it may only look: `inspect`
//! opens the file read-only, takes no participant entry and no lock, and reads the file with
//! `pread` rather than mapping it, so that even a file truncated under it (which makes every
//! mapper fault) gives an error, not a signal. Both ways share one function that turns the
//! header, the participant table and the slot state words into a `Stats`, wherever those live.
//!
//! Besides the counters, a snapshot says who holds which slots: a slot claimed and not yet
//! published (a send in progress, a `SendGuard`) or claimed and not yet released (a receive in
//! progress, a `RecvGuard`) counts for the participant whose token the claim records. A slot
//! stays held as long as its guard lives, and producers cannot pass it once the ring comes round
//! to it, so a long hold is what to look for when senders wait on a queue that is not full.

use crate::error::{Error, Result};
use crate::file::{self, Trust};
use crate::layout::{Geometry, Header, Participant, FLAG_DROP_ON_CONSUMER_DEATH, PARTICIPANTS};
use crate::options::OnConsumerDeath;
use crate::participant::{self, ParticipantInfo};
use crate::ring::{self, SlotState};
use crate::sync::Ordering;
use crate::wait;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// A snapshot of a queue's configuration and counters.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Layout version of the file ([`VERSION`](crate::VERSION): `open` accepts no other).
    pub version: u32,
    /// Platform tag of the file ([`PLATFORM`](crate::PLATFORM): `open` accepts no other).
    pub platform: u32,
    /// Option flags of the file ([`FLAG_DROP_ON_CONSUMER_DEATH`](crate::FLAG_DROP_ON_CONSUMER_DEATH),
    /// [`FLAG_ALLOW_OTHER_ACCESS`](crate::FLAG_ALLOW_OTHER_ACCESS),
    /// [`FLAG_CLOSE_WHEN_PRODUCERS_GONE`](crate::FLAG_CLOSE_WHEN_PRODUCERS_GONE)), as validated
    /// on open.
    pub flags: u32,
    /// Number of slots.
    pub capacity: u32,
    /// Largest message, in bytes.
    pub max_message_size: u32,
    /// Bytes of the file.
    pub file_len: u64,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created_unix_ns: u64,
    /// Messages in the queue, approximately (exact when nothing is in flight).
    pub len: u64,
    /// Positions claimed by senders since creation (committed or cancelled messages).
    pub sent: u64,
    /// Positions claimed by receivers since creation.
    pub received: u64,
    /// Sends cancelled after claiming a slot (a reserve guard dropped without commit).
    pub cancelled_sends: u64,
    /// Sends whose producer died between claiming a slot and publishing it (skipped).
    pub abandoned_sends: u64,
    /// Messages dropped because their consumer died (`OnConsumerDeath::Drop`).
    pub abandoned_receives: u64,
    /// Messages given back to the queue because their consumer died.
    pub redelivered: u64,
    /// Messages that reached `max_deliveries` and left the queue: sent to the dead-letter queue
    /// if it has one, dropped otherwise.
    pub dead_lettered: u64,
    /// Messages held in place past the visibility timeout and handed out again.
    pub expired: u64,
    /// Times a message that reached `max_deliveries` could not be sent to the dead-letter queue
    /// (missing, not a queue, full, closed, or its slots too small): the message stayed in this
    /// queue and was delivered again.
    pub dead_letter_failures: u64,
    /// Messages claimed by a receiver and not released yet (a `RecvGuard` alive, or a receive
    /// in progress), counted from the slots' states.
    pub in_flight: u64,
    /// How long the oldest hold has lasted, in nanoseconds (0: none): the age of the oldest
    /// `holding_since_unix_ns` among the participants that hold a slot. It is per handle, not
    /// per slot (the hot path stamps a handle's first hold only): a handle that always holds
    /// some message shows the age of its run of holds.
    pub oldest_hold_ns: u64,
    /// The queue's visibility timeout in nanoseconds (0: none).
    pub visibility_timeout_ns: u64,
    /// The queue's dead-letter queue, if it has one.
    pub dead_letter_queue: Option<std::path::PathBuf>,
    /// The queue's policy for messages of dead consumers.
    pub on_consumer_death: OnConsumerDeath,
    /// The queue's delivery limit (0: unlimited).
    pub max_deliveries: u32,
    /// Times a sender found the queue full and went to sleep.
    pub full_waits: u64,
    /// Times a receiver found the queue empty and went to sleep.
    pub empty_waits: u64,
    /// Senders asleep now.
    pub send_sleepers: u32,
    /// Receivers asleep now.
    pub recv_sleepers: u32,
    /// Whether the queue is closed.
    pub closed: bool,
    /// Handles that have the queue open (or held it when they died), with the slots each holds.
    pub participants: Vec<ParticipantInfo>,
    /// Slots held by a claim whose owner no participant entry names any more (only after 512
    /// participants died with claims no sweep could resolve yet; 0 otherwise).
    pub unattributed_holds: u32,
}

/// Where a snapshot's words come from: the validated geometry and flags, the header, the
/// participant table, and every slot's state word (in slot order).
pub(crate) struct Sources<'a> {
    pub geometry: Geometry,
    pub flags: u32,
    pub max_deliveries: u32,
    pub header: &'a Header,
    pub participants: &'a [Participant],
    pub states: Vec<u64>,
    /// A descriptor of the file, to ask the kernel who holds which participant lock.
    pub probe: &'a File,
    /// Which entries the caller's own handle holds: alive by definition (its probe never
    /// conflicts with its own locks).
    pub is_mine: &'a dyn Fn(u32) -> bool,
}

/// The `Stats` that `sources` describe.
pub(crate) fn snapshot(sources: Sources<'_>) -> Stats {
    let header = sources.header;
    let tail = header.tail.0.load(Ordering::Relaxed);
    let head = header.head.0.head.load(Ordering::Relaxed);
    let sent = tail & !ring::CLOSED;
    let counters = &header.counters.0;
    // Who holds what: claims in progress, by owner token.
    let mut holds: HashMap<u32, u32> = HashMap::new();
    let mut in_flight = 0;
    for state in sources.states.iter().filter_map(|&w| SlotState::decode(w)) {
        if state.phase.is_stamp() {
            *holds.entry(state.owner).or_default() += 1;
        }
        if matches!(state.phase, ring::Phase::Reading | ring::Phase::Lent) {
            in_flight += 1;
        }
    }
    let participants = participant::list(
        sources.probe,
        sources.participants,
        sources.is_mine,
        &mut holds,
    );
    let now = participant::unix_now_ns();
    let oldest_hold_ns = participants
        .iter()
        .filter(|p| p.holding > 0 && p.holding_since_unix_ns != 0)
        .map(|p| now.saturating_sub(p.holding_since_unix_ns))
        .max()
        .unwrap_or(0);
    let on_consumer_death = if sources.flags & FLAG_DROP_ON_CONSUMER_DEATH != 0 {
        OnConsumerDeath::Drop
    } else {
        OnConsumerDeath::Redeliver
    };
    Stats {
        version: header.identity.0.version,
        platform: header.identity.0.platform,
        flags: sources.flags,
        capacity: sources.geometry.capacity,
        max_message_size: sources.geometry.max_message_size,
        file_len: sources.geometry.file_len,
        created_unix_ns: header.identity.0.created_unix_ns,
        len: sent
            .saturating_sub(head)
            .min(u64::from(sources.geometry.capacity)),
        sent,
        received: head,
        cancelled_sends: counters.cancelled_sends.load(Ordering::Relaxed),
        abandoned_sends: counters.abandoned_sends.load(Ordering::Relaxed),
        abandoned_receives: counters.abandoned_receives.load(Ordering::Relaxed),
        redelivered: counters.redelivered.load(Ordering::Relaxed),
        dead_lettered: counters.dead_lettered.load(Ordering::Relaxed),
        expired: counters.expired.load(Ordering::Relaxed),
        dead_letter_failures: counters.dead_letter_failures.load(Ordering::Relaxed),
        in_flight,
        oldest_hold_ns,
        visibility_timeout_ns: header.identity.0.visibility_timeout_ns,
        dead_letter_queue: header.dead_letter_queue.decode().ok().flatten(),
        on_consumer_death,
        max_deliveries: sources.max_deliveries,
        full_waits: counters.full_waits.load(Ordering::Relaxed),
        empty_waits: counters.empty_waits.load(Ordering::Relaxed),
        send_sleepers: wait::sleepers(&header.send_wait.0),
        recv_sleepers: wait::sleepers(&header.recv_wait.0),
        closed: tail & ring::CLOSED != 0,
        participants,
        unattributed_holds: holds.values().sum(),
    }
}

/// What of the file [`inspect`] reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Header, participant table and every slot's state word.
    Slots,
    /// Header and participant table only: a bounded read whatever capacity the header claims.
    Header,
}

/// A snapshot of the queue file at `path`, with read permission only (see the module doc).
pub(crate) fn inspect(path: &Path) -> Result<Stats> {
    inspect_reaching(path, Reach::Slots)
}

/// As [`inspect`], reading what `reach` says. With [`Reach::Header`], no slot is read: the fields counted from the slots' states
/// (`in_flight`, `unattributed_holds`, `oldest_hold_ns`, each participant's `holding`) are 0.
fn inspect_reaching(path: &Path, reach: Reach) -> Result<Stats> {
    let file = file::open(path, false)?;
    let meta = file.metadata()?;
    let actual_len = file::check_metadata(path, &meta, Trust::AnyOwner)?;
    let header = read_header(&file)?;
    let geometry = Geometry::validate(&header.identity.0, actual_len)?;
    let participants = read_participants(&file, &geometry)?;
    let states = match reach {
        Reach::Slots => read_states(&file, &geometry)?,
        Reach::Header => Vec::new(),
    };
    Ok(snapshot(Sources {
        geometry,
        flags: header.identity.0.flags,
        max_deliveries: header.identity.0.max_deliveries,
        header: &header,
        participants: &participants,
        states,
        probe: &file,
        is_mine: &|_| false,
    }))
}

impl crate::Queue {
    /// As [`Queue::inspect`](crate::Queue::inspect), but from the header and the participant
    /// table alone, without reading a slot: its cost is bounded whatever capacity the header
    /// claims, for listing files found in a shared directory (`shmq ls`), where a planted file
    /// may describe 2^24 slots in a few sparse kilobytes. `len` comes from the cursors as in
    /// `inspect`; the fields counted from the slots' states (`in_flight`,
    /// `unattributed_holds`, `oldest_hold_ns`, each participant's `holding`) are 0.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("q");
    /// use shmq::{Options, Queue};
    /// let q = Queue::create(&path, Options::new(8, 64))?;
    /// q.send(b"job")?;
    /// let _held = q.try_recv_in_place()?;
    /// let summary = Queue::inspect_header(&path)?;
    /// assert_eq!((summary.capacity, summary.sent, summary.received), (8, 1, 1));
    /// assert_eq!((summary.participants.len(), summary.in_flight), (1, 0)); // slots not read
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn inspect_header(path: impl AsRef<Path>) -> Result<Stats> {
        inspect_reaching(path.as_ref(), Reach::Header)
    }
}

/// Reads `buf.len()` bytes at `offset`; a file that ended early (truncated under us) is
/// `Corrupt`.
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> Result<()> {
    file.read_exact_at(buf, offset).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::corrupt("the file ended before the length its header describes (truncated)")
        } else {
            Error::Io(e)
        }
    })
}

fn read_header(file: &File) -> Result<Box<Header>> {
    // SAFETY: every field of `Header` is an integer, a byte array or an atomic integer, for
    // which all-zero bytes (and any other bytes) are a valid value.
    let mut header: Box<Header> = Box::new(unsafe { std::mem::zeroed() });
    // SAFETY: the slice covers exactly the header's bytes, which we own exclusively; any bytes
    // written through it leave a valid `Header` (see above).
    let bytes = unsafe {
        std::slice::from_raw_parts_mut(
            &mut *header as *mut Header as *mut u8,
            std::mem::size_of::<Header>(),
        )
    };
    read_exact_at(file, bytes, 0)?;
    Ok(header)
}

fn read_participants(file: &File, geometry: &Geometry) -> Result<Vec<Participant>> {
    let count = PARTICIPANTS as usize;
    // SAFETY: `Participant` is atomic integers only: all-zero bytes are a valid value.
    let mut table: Vec<Participant> = (0..count).map(|_| unsafe { std::mem::zeroed() }).collect();
    // SAFETY: the slice covers exactly the table's `count` entries, which we own exclusively;
    // any bytes leave valid atomics.
    let bytes = unsafe {
        std::slice::from_raw_parts_mut(
            table.as_mut_ptr() as *mut u8,
            count * std::mem::size_of::<Participant>(),
        )
    };
    read_exact_at(file, bytes, geometry.participants_offset)?;
    Ok(table)
}

/// Each slot's state word, read in chunks of whole slots (or one word at a time when slots are
/// large, so that a monitor never reads the payloads of big slots).
fn read_states(file: &File, geometry: &Geometry) -> Result<Vec<u64>> {
    const CHUNK: usize = 1 << 20;
    let stride = geometry.slot_stride as usize;
    let capacity = geometry.capacity as usize;
    let mut states = Vec::with_capacity(capacity);
    if stride > 4096 {
        let mut word = [0u8; 8];
        for index in 0..capacity {
            read_exact_at(file, &mut word, slot_offset(geometry, index))?;
            states.push(u64::from_ne_bytes(word));
        }
        return Ok(states);
    }
    let per_chunk = (CHUNK / stride).max(1);
    let mut buf = vec![0u8; per_chunk * stride];
    let mut index = 0;
    while index < capacity {
        let n = per_chunk.min(capacity - index);
        let chunk = &mut buf[..n * stride];
        read_exact_at(file, chunk, slot_offset(geometry, index))?;
        for slot in chunk.chunks_exact(stride) {
            let word: [u8; 8] = slot[..8].try_into().expect("a slot is at least 64 bytes");
            states.push(u64::from_ne_bytes(word));
        }
        index += n;
    }
    Ok(states)
}

fn slot_offset(geometry: &Geometry, index: usize) -> u64 {
    geometry.slots_offset + index as u64 * u64::from(geometry.slot_stride)
}
