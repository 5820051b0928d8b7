// SPDX-License-Identifier: MIT OR Apache-2.0
//! `shmq ls [DIR]`: the queue files in a directory (default `/dev/shm`), one row each with its
//! depth, capacity, largest message, participants and closed flag; `--json` for an array.
//!
//! A queue file is a regular file that starts with the shmq magic. Anything else (directories,
//! symlinks, FIFOs, other programs' files, files this user may not read) is skipped without a
//! word: `/dev/shm` is shared by everyone. A file with the magic that does not inspect cleanly
//! (corrupt, truncated, another layout version) is a broken queue, and is listed with why.
//! Every queue is read with [`Queue::inspect_header`]: read permission only, nothing
//! registered, and only the header and the participant table, never the slots, so that a file
//! whose header claims millions of slots (a few sparse kilobytes on disk) costs one listing no
//! more than a small queue does. The depth comes from the cursors.

use crate::failure::Failure;
use serde_json::json;
use shmq::{Queue, Stats};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Where `shmq ls` looks without an argument.
pub const DEFAULT_DIR: &str = "/dev/shm";

/// `shmq ls DIR [--json]`.
pub fn ls(dir: &Path, json: bool) -> Result<(), Failure> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Failure::Other(format!("cannot list {}: {e}", dir.display())))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .map(|entry| entry.path())
        .filter(|path| has_magic(path))
        .collect();
    paths.sort();
    let queues: Vec<(PathBuf, Result<Stats, shmq::Error>)> = paths
        .into_iter()
        .map(|path| {
            let stats = Queue::inspect_header(&path);
            (path, stats)
        })
        .collect();
    let text = if json {
        to_json(&queues).to_string()
    } else {
        table(&queues)
    };
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::Stdout(e)),
        _ => Ok(()),
    }
}

/// Whether `path` can be read and starts with the shmq magic. Opened without following a
/// symlink and without blocking (a FIFO put there after the directory was read cannot hang us).
fn has_magic(path: &Path) -> bool {
    let mut magic = [0u8; shmq::MAGIC.len()];
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .and_then(|mut file: File| file.read_exact(&mut magic))
        .is_ok_and(|()| magic == shmq::MAGIC)
}

fn to_json(queues: &[(PathBuf, Result<Stats, shmq::Error>)]) -> serde_json::Value {
    queues
        .iter()
        .map(|(path, stats)| match stats {
            Ok(s) => json!({
                "path": path.to_string_lossy(),
                "depth": s.len,
                "capacity": s.capacity,
                "max_message_size": s.max_message_size,
                "participants": s.participants.len(),
                "closed": s.closed,
            }),
            Err(e) => json!({
                "path": path.to_string_lossy(),
                "error": e.to_string(),
            }),
        })
        .collect()
}

/// A header row and one row per queue, columns aligned; a broken queue shows `-` in each column
/// and why at the end of its row.
fn table(queues: &[(PathBuf, Result<Stats, shmq::Error>)]) -> String {
    const HEAD: [&str; 6] = [
        "PATH",
        "DEPTH",
        "CAPACITY",
        "MAX_MESSAGE_SIZE",
        "PARTICIPANTS",
        "CLOSED",
    ];
    let rows: Vec<([String; 6], Option<String>)> = queues
        .iter()
        .map(|(path, stats)| {
            let path = path.display().to_string();
            match stats {
                Ok(s) => (
                    [
                        path,
                        s.len.to_string(),
                        s.capacity.to_string(),
                        s.max_message_size.to_string(),
                        s.participants.len().to_string(),
                        if s.closed { "yes" } else { "no" }.to_string(),
                    ],
                    None,
                ),
                Err(e) => (
                    [
                        path,
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                    ],
                    Some(format!("unreadable queue: {e}")),
                ),
            }
        })
        .collect();
    let mut width = HEAD.map(str::len);
    for (cells, _) in &rows {
        for (w, cell) in width.iter_mut().zip(cells) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let render = |cells: [&str; 6], note: Option<&str>| {
        // The path is left-aligned, the numbers right-aligned, the flag left-aligned.
        let mut line = format!("{:<w$}", cells[0], w = width[0]);
        for (i, cell) in cells.iter().enumerate().take(5).skip(1) {
            line.push_str(&format!("  {cell:>w$}", w = width[i]));
        }
        line.push_str(&format!("  {:<w$}", cells[5], w = width[5]));
        if let Some(note) = note {
            line.push_str("  ");
            line.push_str(note);
        }
        line.trim_end().to_string()
    };
    let mut lines = vec![render(HEAD, None)];
    for (cells, note) in &rows {
        lines.push(render(
            cells.each_ref().map(String::as_str),
            note.as_deref(),
        ));
    }
    lines.join("\n")
}
