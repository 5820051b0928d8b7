// SPDX-License-Identifier: MIT OR Apache-2.0
//! A queue file's life: `shmq create`, `shmq close`, `shmq rm`.

use crate::failure::Failure;
use shmq::{OnConsumerDeath, Options, Queue};
use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// `--on-consumer-death`: the command-line names of [`OnConsumerDeath`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Policy {
    /// Give the message back to the queue with its delivery count raised (at-least-once).
    Redeliver,
    /// Drop the message and count it in abandoned_receives (at-most-once).
    Drop,
}

impl From<Policy> for OnConsumerDeath {
    fn from(policy: Policy) -> Self {
        match policy {
            Policy::Redeliver => OnConsumerDeath::Redeliver,
            Policy::Drop => OnConsumerDeath::Drop,
        }
    }
}

/// The name of a policy as `--on-consumer-death` and `shmq stat` spell it.
pub fn policy_name(policy: OnConsumerDeath) -> &'static str {
    match policy {
        OnConsumerDeath::Redeliver => "redeliver",
        OnConsumerDeath::Drop => "drop",
    }
}

/// `shmq create`: a new queue file at `path`; fails if anything exists there.
pub fn create(path: &Path, options: Options) -> Result<(), Failure> {
    Queue::create(path, options)?;
    Ok(())
}

/// `shmq close`: no sends from now on; receivers drain what is left, then stop. Closing a
/// closed queue succeeds.
pub fn close(path: &Path) -> Result<(), Failure> {
    Queue::open(path)?.close();
    Ok(())
}

/// `shmq rm`: removes the file, after checking that it starts like a queue file, so that a
/// mistyped path does not delete something else. Only the magic is checked: a queue of another
/// version, or a damaged one, can still be removed.
pub fn rm(path: &Path) -> Result<(), Failure> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| io_at(e, path))?;
    let not_a_queue = || shmq::Error::Corrupt {
        what: format!("{} is not a queue file; not removed", path.display()),
    };
    if !meta.is_file() {
        return Err(not_a_queue().into());
    }
    let mut magic = [0u8; shmq::MAGIC.len()];
    // Without blocking: a FIFO put there since the check above cannot hang us.
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .and_then(|mut file| file.read_exact(&mut magic))
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => not_a_queue(),
            _ => io_at(e, path),
        })?;
    if magic != shmq::MAGIC && magic != shmq::TOPIC_MAGIC {
        return Err(not_a_queue().into());
    }
    Queue::unlink(path)?;
    Ok(())
}

/// The library's error for an I/O failure on `path`, naming missing files and refusals.
fn io_at(e: std::io::Error, path: &Path) -> shmq::Error {
    match e.kind() {
        std::io::ErrorKind::NotFound => shmq::Error::NotFound(path.to_path_buf()),
        std::io::ErrorKind::PermissionDenied => shmq::Error::PermissionDenied {
            path: path.to_path_buf(),
            reason: "the operating system refused access".into(),
        },
        _ => shmq::Error::Io(e),
    }
}
