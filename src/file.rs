// SPDX-License-Identifier: MIT OR Apache-2.0
//! The queue file on disk: opening it without following links, deciding whether to trust it,
//! and making sure every byte of it is allocated.
//!
//! Why each check exists:
//! - **No symbolic links.** A link planted by another user in a shared directory (`/dev/shm` is
//!   world-writable) would redirect a queue to a file of the planter's choosing. Links are
//!   refused with their own wording (`PermissionDenied`), never followed.
//! - **Regular files only, and no blocking open.** Opening a FIFO for reading waits for a
//!   writer: a FIFO planted at a queue's path would hang `stat` and every scrape. Files are
//!   opened with `O_NONBLOCK`, and anything but a regular file is refused after the open, from
//!   the descriptor's own metadata (so nothing can be swapped in between a check and the open).
//! - **Owner, for `open_or_create`.** A caller that would have created the queue must not adopt a
//!   file that another user created first at the same path: that user could read everything
//!   sent to it. Plain `open` attaches to another user's queue on purpose and skips this check.
//! - **No access for "other" unless the queue says so.** Anyone who can *read* the file can take
//!   read locks on the participant lock bytes (which would make liveness probes lie, were they
//!   not written to ignore read locks, and can still keep new handles from registering); anyone
//!   who can *write* it can corrupt or truncate it. So a mode with any bit for "other" is refused
//!   at create and at open unless the queue was created with `allow_other_access`, which is
//!   recorded in the header. Sharing within a group (mode 0660) is the supported way to share.
//! - **Allocated in full.** A file that is merely as long as it should be, with holes, makes the
//!   first process that touches a hole die of SIGBUS when the filesystem (a tmpfs) is full.
//!   `create` allocates every byte before linking the file into place, and `open` allocates the
//!   holes of a file that has them, so a full filesystem is an `Io` error (ENOSPC) at create or
//!   open, never a signal later.

use crate::error::{Error, Result};
use crate::layout::{Header, FLAG_ALLOW_OTHER_ACCESS};
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Whose file an open accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trust {
    /// Any owner the operating system lets us open (`Queue::open`, monitors).
    AnyOwner,
    /// Only a file owned by our effective user (`open_or_create`, and `create`'s own file).
    Owner,
}

/// Opens the queue file at `path` for reading (and writing if `write`), close-on-exec, never
/// following a symbolic link, and never blocking: opening a FIFO for reading waits for a writer,
/// so a FIFO planted at a queue's path would hang every monitor that looks at it. With
/// `O_NONBLOCK` the open returns at once and [`check_metadata`] refuses what is not a regular
/// file; on a regular file the flag changes nothing (reads, mappings and locks ignore it).
pub(crate) fn open(path: &Path, write: bool) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => Error::permission_denied(
                path,
                "is a symbolic link; shmq never follows links to queue files, so that a link \
                 planted by another user cannot redirect a queue (open the target's own path)",
            ),
            // Opening a directory for writing fails before the `is_file` check.
            Some(libc::EISDIR) => Error::corrupt(format!(
                "{} is a directory, not a queue file",
                path.display()
            )),
            _ => Error::from_io_at(e, path),
        })
}

/// Checks what the file's metadata can tell before its header is read: a regular file, long
/// enough for a header, owned by us if `trust` asks it. Returns the file's length.
pub(crate) fn check_metadata(path: &Path, meta: &Metadata, trust: Trust) -> Result<u64> {
    if meta.is_dir() {
        return Err(Error::corrupt(format!(
            "{} is a directory, not a queue file",
            path.display()
        )));
    }
    if !meta.is_file() {
        let file_type = meta.file_type();
        let kind = if file_type.is_fifo() {
            "a FIFO"
        } else if file_type.is_socket() {
            "a socket"
        } else if file_type.is_char_device() {
            "a character device"
        } else if file_type.is_block_device() {
            "a block device"
        } else {
            "not a regular file"
        };
        return Err(Error::corrupt(format!(
            "not a queue file: {} is {kind}",
            path.display()
        )));
    }
    if trust == Trust::Owner {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return Err(Error::permission_denied(
                path,
                format!(
                    "the file is owned by uid {}, not by this user (uid {me}); open_or_create \
                     adopts only a queue its caller could have created (use open to attach to \
                     another user's queue on purpose)",
                    meta.uid()
                ),
            ));
        }
    }
    let len = meta.len();
    let header_len = std::mem::size_of::<Header>() as u64;
    if len < header_len {
        return Err(Error::corrupt(format!(
            "file is {len} bytes, shorter than a queue header ({header_len} bytes)"
        )));
    }
    Ok(len)
}

/// Who may write a file, as its owner, group and mode say: what a path taken from a shared,
/// writable mapping is judged by before a process writes into the file at that path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Writers {
    uid: u32,
    gid: u32,
    mode: u32,
}

impl Writers {
    pub(crate) fn of(meta: &Metadata) -> Writers {
        Writers {
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode(),
        }
    }

    /// Refuses `target` (a queue opened at a path read from the shared memory of a file whose
    /// writers are `self`: a dead-letter queue's path in a queue's header, a subscription's
    /// path in a topic) unless everyone who can write the source could write the target
    /// themselves. Otherwise a member of the source's group could rewrite the path to name a
    /// private queue of the source's owner (or of any user whose process acts on the source),
    /// and that process would write the member's bytes into it.
    ///
    /// The rule, class by class: the source's owner must be the target's owner, or the target
    /// must be writable by the source's group or by all; a group-writable source needs a target
    /// writable by the same group (or by all); a source writable by all needs a target writable
    /// by all.
    pub(crate) fn check_delegated(&self, target_path: &Path, target: &Metadata) -> Result<()> {
        let t = Writers::of(target);
        let group_w = |w: &Writers| w.mode & 0o020 != 0;
        let other_w = |w: &Writers| w.mode & 0o002 != 0;
        let target_group = group_w(&t) && t.gid == self.gid;
        let owner_ok = (t.uid == self.uid && t.mode & 0o200 != 0) || target_group || other_w(&t);
        let group_ok = !group_w(self) || target_group || other_w(&t);
        let other_ok = !other_w(self) || other_w(&t);
        if owner_ok && group_ok && other_ok {
            return Ok(());
        }
        Err(Error::permission_denied(
            target_path,
            format!(
                "its path comes from a shared file (owner uid {}, group gid {}, mode {:o}) whose \
                 writers could not all write it themselves (owner uid {}, group gid {}, mode \
                 {:o}); a queue named there must be writable by everyone who can write that file",
                self.uid,
                self.gid,
                self.mode & 0o777,
                t.uid,
                t.gid,
                t.mode & 0o777
            ),
        ))
    }
}

/// Refuses a file whose mode gives "other" users any access, unless its header's `flags`
/// allow it (see the module doc).
pub(crate) fn check_other_access(path: &Path, meta: &Metadata, flags: u32) -> Result<()> {
    let mode = meta.mode() & 0o7777;
    if mode & 0o007 != 0 && flags & FLAG_ALLOW_OTHER_ACCESS == 0 {
        return Err(Error::permission_denied(
            path,
            format!(
                "mode {mode:04o} gives other users access, and the queue was not created to \
                 allow that (anyone who can read it can keep handles from registering, anyone \
                 who can write it can corrupt it): `chmod o= {}`, or recreate it with \
                 --allow-other-access",
                path.display()
            ),
        ));
    }
    Ok(())
}

/// Refuses a new queue of `len` bytes that the filesystem holding `dir` cannot hold, before
/// anything is written. `path` is the queue's path, for the message.
pub(crate) fn check_room(path: &Path, dir: &Path, len: u64) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!(
                    "cannot create {}: {} is not a directory",
                    path.display(),
                    dir.display()
                ),
            )))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "cannot create {}: directory {} does not exist",
                    path.display(),
                    dir.display()
                ),
            )))
        }
        Err(e) => return Err(Error::from_io_at(e, dir)),
    }
    let Some(available) = available_bytes(dir) else {
        return Ok(()); // no figure: let the allocation decide
    };
    if len > available {
        return Err(Error::Io(io::Error::new(
            io::ErrorKind::StorageFull,
            format!(
                "cannot create {}: the queue needs {len} bytes, and the filesystem holding {} \
                 has {available} bytes available",
                path.display(),
                dir.display()
            ),
        )));
    }
    Ok(())
}

/// Bytes an unprivileged user may still allocate on the filesystem holding `dir`.
fn available_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_dir = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: an all-zero `statvfs` is a valid value of this plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_dir` is a NUL-terminated path and `st` a valid, exclusively borrowed statvfs.
    if unsafe { libc::statvfs(c_dir.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Whether every byte of a file of `len` bytes is backed by storage (no holes).
pub(crate) fn is_allocated(meta: &Metadata, len: u64) -> bool {
    meta.blocks().saturating_mul(512) >= len
}

/// Makes the file `len` bytes long with every byte allocated (existing bytes keep their
/// content), so that no later access can fault for want of space.
pub(crate) fn allocate(file: &File, len: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    loop {
        // SAFETY: the descriptor is open for writing for the lifetime of `file`;
        // posix_fallocate takes integers only.
        match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) } {
            0 => return Ok(()),
            libc::EINTR => continue,
            errno => return Err(io::Error::from_raw_os_error(errno)),
        }
    }
}

/// The error for a failed [`allocate`] of the queue at `path` in `dir`.
pub(crate) fn out_of_space(e: io::Error, path: &Path, dir: &Path) -> Error {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        Error::Io(io::Error::new(
            io::ErrorKind::StorageFull,
            format!(
                "no space left for {}: the filesystem holding {} is full",
                path.display(),
                dir.display()
            ),
        ))
    } else {
        Error::Io(e)
    }
}
