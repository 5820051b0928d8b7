// SPDX-License-Identifier: MIT OR Apache-2.0
//! Participants: every handle that has a queue open holds one entry of the table in the file,
//! and its token is what a claim records as its owner.
//!
//! An entry is held by holding an open-file-description lock (`F_OFD_SETLK`) on one byte of the
//! queue file, at `LOCK_BASE + index`. The kernel drops that lock when the holder's last
//! descriptor for the open file description closes, which includes the process dying by any
//! means, SIGKILL included, and whatever its PID becomes afterwards. So the table can never fill
//! up with the dead: a new handle takes the first entry whose lock it can get. The lock also lets
//! any process ask, without races on PID reuse, whether the holder of an entry is alive.
//!
//! The token stored in claims is `index << GENERATION_BITS | generation`; the generation grows
//! each time the entry is taken, so a claim made by an earlier holder of the same entry is told
//! apart from one made by the current holder.

use crate::error::{Error, Result};
use crate::layout::{Participant, PARTICIPANTS};
use crate::ring::OWNER_MAX;
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

/// Byte offset of the lock range: far beyond any file, so the locks never touch real data
/// (byte-range locks are advisory and may lie past the end of the file).
const LOCK_BASE: i64 = 1 << 40;
pub(crate) const GENERATION_BITS: u32 = 11;
const GENERATION_MASK: u32 = (1 << GENERATION_BITS) - 1;
const _: () = assert!((PARTICIPANTS << GENERATION_BITS) - 1 <= OWNER_MAX);

/// This handle's entry in the participant table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Registration {
    pub index: u32,
    /// The owner token that claims record.
    pub token: u32,
}

fn ofd_lock(
    file: &File,
    index: u32,
    cmd: libc::c_int,
    kind: libc::c_short,
) -> io::Result<libc::flock> {
    // SAFETY: `flock` is a plain C struct for which all-zero bytes are a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = LOCK_BASE + i64::from(index);
    fl.l_len = 1;
    // Required to be 0 for OFD locks.
    fl.l_pid = 0;
    // SAFETY: the descriptor is open for the lifetime of `file`; `fl` is a valid, exclusively
    // borrowed `struct flock` that F_OFD_SETLK reads and F_OFD_GETLK overwrites.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), cmd, &mut fl as *mut libc::flock) };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(fl)
    }
}

/// The owner token of the holder recorded in an entry's `token` word.
pub(crate) fn token_of(index: u32, token_word: u32) -> u32 {
    index << GENERATION_BITS | ((token_word >> 1) & GENERATION_MASK)
}

fn lock_entry(file: &File, index: u32) -> io::Result<bool> {
    let write_lock = libc::F_WRLCK as libc::c_short;
    match ofd_lock(file, index, libc::F_OFD_SETLK, write_lock) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Takes an entry of `table` for the open file description `file`, and returns it with the
/// token of the dead participant it displaced, if any.
///
/// An entry is ours once we hold its lock. Free entries are preferred. An entry whose lock is
/// free but which is still marked in use belonged to a process that died and whose claims have
/// not been resolved yet (sweeps resolve them and then free the entry); it is taken only when
/// no free entry is left, and then the caller must resolve the displaced token's claims.
/// Returns `TooManyHandles` if all 512 entries are held by live handles: a limit reached, not
/// damage (a caller that answered `Corrupt` by recreating the queue would destroy it).
pub(crate) fn register(file: &File, table: &[Participant]) -> Result<(Registration, Option<u32>)> {
    for take_dead in [false, true] {
        for (index, entry) in (0u32..).zip(table) {
            let marked = entry.token.load(Ordering::Acquire) & 1 == 1;
            if marked != take_dead || !lock_entry(file, index)? {
                continue;
            }
            // The entry is ours: the lock excludes every other open file description.
            let old = entry.token.load(Ordering::Acquire);
            let displaced = (old & 1 == 1).then(|| token_of(index, old));
            let generation = ((old >> 1) + 1) & GENERATION_MASK;
            // A displaced holder's announcement must not cover anything for us (the survivors'
            // rule needs only *live* announcements; see `ring`, "Attribution").
            entry.announcement.clear();
            entry.sleeping.store(0, Ordering::Relaxed);
            entry.roles.store(0, Ordering::Relaxed);
            entry.pid.store(std::process::id(), Ordering::Relaxed);
            entry.since_unix_ns.store(unix_now_ns(), Ordering::Relaxed);
            entry.holding_since_unix_ns.store(0, Ordering::Relaxed);
            entry.token.store(generation << 1 | 1, Ordering::Release);
            let me = Registration {
                index,
                token: index << GENERATION_BITS | generation,
            };
            return Ok((me, displaced));
        }
    }
    Err(Error::TooManyHandles {
        limit: PARTICIPANTS,
    })
}

/// Marks `me` as gone. The lock itself goes when the caller closes the file.
pub(crate) fn deregister(table: &[Participant], me: Registration) {
    if let Some(entry) = table.get(me.index as usize) {
        let generation = me.token & GENERATION_MASK;
        entry.pid.store(0, Ordering::Relaxed);
        entry.token.store(generation << 1, Ordering::Release);
    }
}

/// Whether the entry at `index` is held by a live handle (other than `probe`'s own, which never
/// conflicts with itself).
///
/// A participant holds a *write* lock on its byte, so the probe asks only whether a write lock
/// is held: it tests for a read lock, which conflicts with write locks alone. A read lock on the
/// byte (which anyone who can read the file may take) therefore never makes a dead participant
/// look alive.
pub(crate) fn is_held(probe: &File, index: u32) -> io::Result<bool> {
    let fl = ofd_lock(
        probe,
        index,
        libc::F_OFD_GETLK,
        libc::F_RDLCK as libc::c_short,
    )?;
    Ok(fl.l_type == libc::F_WRLCK as libc::c_short)
}

/// Whether the participant with owner token `token` is gone: its entry has been released or
/// taken by a later holder, or nobody holds the entry's lock (the kernel dropped it when the
/// holder died). Decided by the kernel's lock table, never by a timeout. `is_mine(index)` says
/// which entries the caller's own handle holds: a probe never conflicts with its own locks, so
/// those must be known alive without asking.
pub(crate) fn is_dead(
    probe: &File,
    table: &[Participant],
    is_mine: impl Fn(u32) -> bool,
    token: u32,
) -> bool {
    let index = token >> GENERATION_BITS;
    let Some(entry) = table.get(index as usize) else {
        return true; // no such entry: not a token an honest participant has
    };
    let word = entry.token.load(Ordering::Acquire);
    if word & 1 == 0 || token_of(index, word) != token {
        return true;
    }
    if is_mine(index) {
        return false;
    }
    // A probe error (F_OFD_GETLK does not fail on a valid descriptor) is no proof of death:
    // say alive, and look again later.
    !is_held(probe, index).unwrap_or(true)
}

/// The liveness question as one handle asks it: the open file description that holds the
/// handle's locks (and probes everyone else's), and which table entries are the handle's own.
pub(crate) struct Liveness {
    /// The open file description that holds our participant locks; also the liveness probe.
    probe: File,
    /// Bit `i` is set when entry `i` is one of ours (alive by definition: our own probe never
    /// conflicts with our own locks).
    own: [std::sync::atomic::AtomicU64; (PARTICIPANTS as usize).div_ceil(64)],
}

impl Liveness {
    /// The liveness question over `probe`, with no entry of our own yet.
    pub(crate) fn new(probe: File) -> Liveness {
        Liveness {
            probe,
            own: Default::default(),
        }
    }

    /// The open file description holding our participant locks (also the liveness probe).
    pub(crate) fn file(&self) -> &File {
        &self.probe
    }

    /// Records entry `index` as one of ours.
    pub(crate) fn adopt(&self, index: u32) {
        self.own[index as usize / 64].fetch_or(1 << (index % 64), Ordering::Release);
    }

    /// Whether entry `index` is one of ours.
    pub(crate) fn is_mine(&self, index: u32) -> bool {
        self.own
            .get(index as usize / 64)
            .is_some_and(|w| w.load(Ordering::Acquire) & (1 << (index % 64)) != 0)
    }

    /// Whether `token` is one of our entries' current tokens (alive, whatever a probe says).
    pub(crate) fn is_own_token(&self, table: &[Participant], token: u32) -> bool {
        let index = token >> GENERATION_BITS;
        self.is_mine(index)
            && table
                .get(index as usize)
                .is_some_and(|e| token_of(index, e.token.load(Ordering::Acquire)) == token)
    }

    /// Whether the participant with `token` is gone (see [`is_dead`]).
    pub(crate) fn is_dead(&self, table: &[Participant], token: u32) -> bool {
        is_dead(&self.probe, table, |index| self.is_mine(index), token)
    }
}

/// Role bit in an entry's `roles` word: the holder has sent.
pub(crate) const ROLE_SENDER: u32 = 1;
/// Role bit in an entry's `roles` word: the holder has received.
pub(crate) const ROLE_RECEIVER: u32 = 2;

/// A row of the participant table, for `stats` and the `stat` command.
///
/// # Examples
/// ```
/// use shmq::{Options, Queue};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("q");
/// let producer = Queue::create(&path, Options::new(8, 64))?;
/// let consumer = Queue::open(&path)?;
/// producer.send(b"job")?;
/// consumer.recv(&mut [0u8; 64])?;
/// let table = producer.stats().participants; // both handles, in this process
/// assert_eq!(table.len(), 2);
/// assert!(table.iter().all(|p| p.alive && p.pid == std::process::id()));
/// assert!(table.iter().any(|p| p.sender && !p.receiver));
/// assert!(table.iter().any(|p| p.receiver && !p.sender));
/// # Ok::<(), shmq::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParticipantInfo {
    /// Index in the table.
    pub index: u32,
    /// Process id recorded by the holder.
    pub pid: u32,
    /// Whether the kernel still holds the entry's lock (the holder is alive).
    pub alive: bool,
    /// Whether the holder has sent, or waited to send.
    pub sender: bool,
    /// Whether the holder has received, or waited to receive.
    pub receiver: bool,
    /// Slots the holder has claimed and not yet published (a send in progress or a
    /// `SendGuard`) or released (a receive in progress or a `RecvGuard`). A held slot is not
    /// passed by producers when the ring comes round to it.
    pub holding: u32,
    /// Since when (nanoseconds since the Unix epoch, to within a few milliseconds) the holder
    /// has held at least one guard without a break; 0 when it holds none, or holds slots only
    /// inside a call.
    pub holding_since_unix_ns: u64,
}

/// The entries in use, or left marked in use by a holder that died, each with the slots it
/// holds according to `holds` (claims by owner token; the attributed ones are removed from it).
/// `is_mine(index)` says which entries the caller's own handle holds: alive by definition.
pub(crate) fn list(
    probe: &File,
    table: &[Participant],
    is_mine: impl Fn(u32) -> bool,
    holds: &mut HashMap<u32, u32>,
) -> Vec<ParticipantInfo> {
    (0u32..)
        .zip(table)
        .filter_map(|(index, e)| {
            let word = e.token.load(Ordering::Acquire);
            if word & 1 == 0 {
                return None;
            }
            let roles = e.roles.load(Ordering::Relaxed);
            let holding = holds.remove(&token_of(index, word)).unwrap_or(0);
            Some(ParticipantInfo {
                index,
                pid: e.pid.load(Ordering::Relaxed),
                alive: is_mine(index) || is_held(probe, index).unwrap_or(false),
                sender: roles & ROLE_SENDER != 0,
                receiver: roles & ROLE_RECEIVER != 0,
                holding,
                holding_since_unix_ns: e.holding_since_unix_ns.load(Ordering::Relaxed),
            })
        })
        .collect()
}

pub(crate) fn unix_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The Unix time in nanoseconds from the coarse clock (a few milliseconds' resolution, read from
/// the vDSO in a few nanoseconds): for the informational `holding_since_unix_ns`.
pub(crate) fn unix_now_coarse_ns() -> u64 {
    // SAFETY: an all-zero timespec is valid; `ts` is a valid, exclusively borrowed timespec.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: as above; CLOCK_REALTIME_COARSE exists on every Linux since 2.6.32.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}
