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
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

/// Byte offset of the lock range: far beyond any file, so the locks never touch real data
/// (byte-range locks are advisory and may lie past the end of the file).
const LOCK_BASE: i64 = 1 << 40;
const GENERATION_BITS: u32 = 11;
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
    fl.l_pid = 0; // required to be 0 for OFD locks
                  // SAFETY: the descriptor is open for the lifetime of `file`; `fl` is a valid, exclusively
                  // borrowed `struct flock` that F_OFD_SETLK reads and F_OFD_GETLK overwrites.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), cmd, &mut fl as *mut libc::flock) };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(fl)
    }
}

/// Takes a free entry of `table` for the open file description `file`.
///
/// Returns `Corrupt` if every entry is held by a live process (512 handles at once).
pub(crate) fn register(file: &File, table: &[Participant]) -> Result<Registration> {
    for (index, entry) in (0u32..).zip(table) {
        match ofd_lock(
            file,
            index,
            libc::F_OFD_SETLK,
            libc::F_WRLCK as libc::c_short,
        ) {
            Ok(_) => {
                // The entry is ours: the lock excludes every other open file description.
                let old = entry.token.load(Ordering::Relaxed);
                let generation = ((old >> 1) + 1) & GENERATION_MASK;
                entry.pid.store(std::process::id(), Ordering::Relaxed);
                entry.since_unix_ns.store(unix_now_ns(), Ordering::Relaxed);
                entry.token.store(generation << 1 | 1, Ordering::Release);
                return Ok(Registration {
                    index,
                    token: index << GENERATION_BITS | generation,
                });
            }
            Err(e)
                if e.raw_os_error() == Some(libc::EAGAIN)
                    || e.raw_os_error() == Some(libc::EACCES) =>
            {
                continue
            }
            Err(e) => return Err(Error::Io(e)),
        }
    }
    Err(Error::corrupt(format!(
        "all {PARTICIPANTS} participant entries are held by live handles"
    )))
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
pub(crate) fn is_held(probe: &File, index: u32) -> io::Result<bool> {
    let fl = ofd_lock(
        probe,
        index,
        libc::F_OFD_GETLK,
        libc::F_WRLCK as libc::c_short,
    )?;
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// A row of the participant table, for `stats` and the `stat` command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParticipantInfo {
    /// Index in the table.
    pub index: u32,
    /// Process id recorded by the holder.
    pub pid: u32,
    /// Whether the kernel still holds the entry's lock (the holder is alive).
    pub alive: bool,
}

/// The entries in use, or left marked in use by a holder that died.
pub(crate) fn list(probe: &File, table: &[Participant], me: Registration) -> Vec<ParticipantInfo> {
    (0u32..)
        .zip(table)
        .filter(|(_, e)| e.token.load(Ordering::Acquire) & 1 == 1)
        .map(|(index, e)| ParticipantInfo {
            index,
            pid: e.pid.load(Ordering::Relaxed),
            alive: index == me.index || is_held(probe, index).unwrap_or(false),
        })
        .collect()
}

pub(crate) fn unix_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
