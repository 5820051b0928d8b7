// SPDX-License-Identifier: MIT OR Apache-2.0
//! Sending a message that reached `max_deliveries` to the queue's dead-letter queue.
//!
//! The dead-letter queue is an ordinary queue file whose path the source queue's header records
//! (`Options::dead_letter_queue`). Recovery (`claims::dead_letter`) owns the message's slot
//! while it asks for the copy made here; only after the copy is published in the dead-letter
//! queue does it free the slot, so a message is never in neither queue.
//!
//! The handle on the dead-letter queue is opened the first time a message goes there and kept
//! by the source queue's handle ([`DeadLetterCell`]). Before every use the path is checked
//! again (one `stat`, on a path that only ever runs when a poison message is dead-lettered):
//! a dead-letter queue removed or replaced since it was opened must not swallow messages into
//! an unlinked file. An open that failed is retried at most once per sweep interval, so a
//! missing dead-letter queue does not cost every sweep an `open`.
//!
//! The path comes from the shared header, which any writer of the source queue can rewrite: the
//! queue found there is used only if everyone who can write the source could write it too
//! ([`Writers::check_delegated`]), so a group member cannot aim another user's recovery at that
//! user's private queue.
//!
//! When the dead-letter queue cannot take the message (missing, not a queue, not trusted, full,
//! closed, or with slots too small for it), the outcome is `Failed`: the source queue counts it in
//! `dead_letter_failures` and gives the message back to itself as if it were under the limit.
//! Nothing is lost silently; the message's next death (or expiry) tries again.

use crate::file::Writers;
use crate::layout::Header;
use crate::mapping::Mapping;
use crate::queue::Queue;
use crate::recovery::claims::DeadLetterOutcome;
use crate::recovery::{monotonic_ns, SWEEP_INTERVAL_NS};
use crate::sync::Ordering;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A queue handle's handle on its dead-letter queue, opened lazily.
#[derive(Default)]
pub(crate) struct DeadLetterCell {
    state: Mutex<CellState>,
}

#[derive(Default)]
struct CellState {
    /// The open dead-letter queue, with the file's `(device, inode)` when it was opened.
    open: Option<(Arc<Queue>, (u64, u64))>,
    /// When an open last failed (the host's monotonic clock, ns; 0: never).
    failed_at_ns: u64,
}

impl DeadLetterCell {
    /// The dead-letter queue at `path`, opened now if it is not open or the file at `path` is no
    /// longer the one that was opened. `None` if there is no queue there (or a failed open was
    /// tried less than a sweep interval ago).
    ///
    /// The lock is held only to look up or store the handle, never while the handle is used:
    /// sending to the dead-letter queue may run its own recovery, whose dead-letter queue may
    /// (misconfigured, but possible) be this very queue.
    fn handle(&self, path: &Path) -> Option<Arc<Queue>> {
        let file = std::fs::metadata(path)
            .ok()
            .map(|meta| (meta.dev(), meta.ino()));
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match (&state.open, file) {
            (Some((queue, opened)), Some(now)) if *opened == now => return Some(queue.clone()),
            (_, None) => {
                state.open = None;
                return None;
            }
            _ => {}
        }
        let now = monotonic_ns().max(1);
        if state.failed_at_ns != 0 && now.wrapping_sub(state.failed_at_ns) < SWEEP_INTERVAL_NS {
            return None;
        }
        match Queue::open(path) {
            Ok(queue) => {
                let queue = Arc::new(queue);
                state.open = Some((queue.clone(), file?));
                state.failed_at_ns = 0;
                Some(queue)
            }
            Err(_) => {
                state.open = None;
                state.failed_at_ns = now;
                None
            }
        }
    }
}

/// Sends a copy of the message at `pos` of `mapping` (a slot the caller owns), delivered
/// `deliveries` times, to the dead-letter queue recorded in the mapping's header: the copy
/// keeps the payload and the delivery count, and records the source queue's identity and the
/// message's id as its [`Origin`](crate::Origin). Counts a failure in `dead_letter_failures`.
/// `source_file` is the source queue's file: the dead-letter queue is used only if every
/// writer of it could write the dead-letter queue ([`Writers::check_delegated`]).
pub(crate) fn send(
    mapping: &Mapping,
    source_file: &File,
    cell: &DeadLetterCell,
    pos: u64,
    deliveries: u32,
) -> DeadLetterOutcome {
    let Some(path) = mapping.dead_letter_queue() else {
        return DeadLetterOutcome::NoQueue;
    };
    if try_send(mapping, source_file, cell, path, pos, deliveries).is_some() {
        crate::test_hooks::event("dead-letter-sent");
        DeadLetterOutcome::Sent
    } else {
        count_failure(mapping.header());
        crate::test_hooks::event("dead-letter-failed");
        DeadLetterOutcome::Failed
    }
}

fn try_send(
    mapping: &Mapping,
    source_file: &File,
    cell: &DeadLetterCell,
    path: &Path,
    pos: u64,
    deliveries: u32,
) -> Option<()> {
    // A corrupt length: the message cannot be copied faithfully; it stays (and its receiver
    // will report `Corrupt`).
    let msg = mapping.message(pos).ok()?;
    let dlq = cell.handle(path)?;
    // Judged at each use, on the files as they are now (a `chmod` of either counts at once).
    let source = Writers::of(&source_file.metadata().ok()?);
    source
        .check_delegated(path, &dlq.file().metadata().ok()?)
        .ok()?;
    if msg.len() > dlq.max_message_size() {
        return None;
    }
    let mut slot = dlq.try_reserve().ok()?;
    slot[..msg.len()].copy_from_slice(msg);
    slot.set_deliveries(deliveries);
    slot.set_origin(
        mapping.identity(),
        mapping.slot(pos).id.load(Ordering::Relaxed),
    );
    slot.commit(msg.len()).ok()
}

fn count_failure(header: &Header) {
    header
        .counters
        .0
        .dead_letter_failures
        .fetch_add(1, Ordering::Relaxed);
}
