// SPDX-License-Identifier: MIT OR Apache-2.0
//! Redrive: moving the messages of a dead-letter queue back into a queue, each exactly once,
//! even if the redrive is SIGKILLed at any instant and run again.
//!
//! # Why a ledger
//! The obvious loop (receive in place from the DLQ, send to the destination, release) copies a
//! message twice if it is killed between the send and the release: the DLQ's recovery gives the
//! message back, and the next run sends it again. Any order of two stores in two files leaves
//! such a window. So one store, in one file, decides: the destination's redrive ledger
//! (`Header::redrive`: source, message, position), written only by the redrive that holds the
//! destination's redrive lock. Once the ledger names the position the message was reserved at,
//! the message is committed to the destination, whatever happens next; before that, it is not.
//!
//! # One message
//! 0. Take the destination's redrive lock: an open-file-description write lock
//!    (`F_OFD_SETLK`) on the ledger's first byte, on a descriptor of its own. The kernel drops
//!    it when the redrive dies. A second redrive into the same destination fails at once with
//!    `RedriveRefused` (it does not wait: two operators redriving into one queue is a mistake worth
//!    reporting).
//!    Then settle what an earlier run left (see "Settling an earlier run" below).
//! 1. `s = to.reserve()`: a slot in the destination, waiting while it is full (backpressure;
//!    taken before the message, so that no message is held while waiting). Then
//!    `g = dlq.try_recv_in_place()`; at `Empty` (or the count) the run ends and `s` is
//!    cancelled.
//! 2. If the ledger names this very message (`source == dlq.identity()`, `message == g.id()`,
//!    `position != u64::MAX`), an earlier run committed it already (ids survive redelivery):
//!    release `g`, count it as moved. (Settling makes this rare; it stays as a second line.)
//! 3. Ledger: `position = u64::MAX`, then `source`, `message` (Release stores).
//! 4. Write the payload, length and id metadata into `s` without publishing it
//!    (`SendGuard::prepare`); deliveries back to 1 (as SQS's redrive resets the receive count:
//!    the message gets a fresh `max_deliveries` budget); no origin.
//! 5. `ledger.position = P` (the reservation's position), Release: **the decision point**.
//!    Everything the message needs is in the slot before it, so whoever sees the ledger name `P`
//!    (Acquire) sees the message complete.
//! 6. Publish `P`.
//! 7. Release `g` in the DLQ. Then mark the ledger settled (`source = 0`).
//!
//! # Crash points (the redrive SIGKILLed)
//! - **Before 3**: the ledger names an earlier message (or none); `P` is reserved by a dead
//!   owner and the ledger does not name it, so the destination's recovery turns it into a
//!   tombstone; `g`'s holder is dead, so the DLQ's recovery gives the message back. Nothing
//!   moved; the next run moves it.
//! - **Between 3 and 5**: the ledger says `position = u64::MAX`: nothing committed. As above.
//! - **Between 5 and 6**: the ledger names `P`; the destination's recovery finds
//!   `RESERVED(P, dead)` and, asking `committed_by_redrive(P)`, publishes it instead of making it
//!   a tombstone. The message is in the destination once. In the DLQ it is still held by the
//!   dead redrive: the next run removes it before anything else (settling), so it is not moved
//!   again.
//! - **Between 6 and 7**: published; the DLQ still holds the message (dead holder, or given
//!   back by the DLQ's recovery). The next run removes it (settling).
//! - **After 7**: done; the ledger may still name the message (if killed before the settled
//!   mark), which names a message no longer in the DLQ: settling finds nothing.
//!
//! # Settling an earlier run
//! Holding the lock, before it overwrites the ledger, a run settles the one message the ledger
//! may protect. This is what makes "only the latest message is protected" enough: a run only
//! ever has one message between 3 and 7, and the next run (the only one that can overwrite the
//! ledger, since it holds the lock) settles it first.
//! - If `position = P != u64::MAX` and the destination's slot at `P` is still `RESERVED(P)` by
//!   a dead owner, publish it (exactly what the destination's recovery would do; one CAS from
//!   the word read, so the two cannot both do it). This must happen before step 3 overwrites the
//!   ledger, or recovery would later tombstone a committed message.
//! - If the ledger's source is this DLQ and `position != u64::MAX`, the message named may still
//!   be in the DLQ: held by the dead redrive (`READING`/`LENT`), or given back already, and then
//!   anywhere between head and tail, not necessarily next (a redelivered message is copied to
//!   the tail). Step 2 alone would not see it in time: the run would move the messages ahead of
//!   it, overwriting the ledger, and then move it again. So the run scans the DLQ's slots for
//!   that id and removes it: a committed message not yet claimed (`FULL` at or past the head)
//!   becomes a tombstone that receivers skip; one held by a dead participant is freed. One
//!   held by a live one (a consumer of the DLQ, or a sweep moving it) is waited for (at most
//!   [`SETTLE_PATIENCE`], then `RedriveRefused`).
//! - If the ledger's source is another queue, not settled (`source != 0`) and committed, that
//!   queue's run was killed between 5 and 7, and only a run from that queue can settle it (this
//!   one cannot see that queue): the run refuses with `RedriveRefused`, naming it. (Overwriting the ledger
//!   would let that queue's next run move the message again.)
//!
//! # Limits
//! - Exactly-once holds when the redrive is the only consumer of the DLQ. A concurrent consumer
//!   that receives a message the DLQ's recovery gave back (the redrive killed between 5 and 7)
//!   processes it too: neither step 2 nor settling can take it back from a live holder.
//! - A DLQ with a visibility timeout: a message held past it during one step is handed out
//!   again in the DLQ, as above; the hold lasts microseconds unless the destination is full (the
//!   reservation is taken before the message for this reason).
//! - A message larger than the destination's slots stops the run with `TooLarge`; it stays
//!   held by the DLQ handle and is given back when that handle is dropped.

use crate::error::{Error, Result};
use crate::layout::Header;
use crate::queue::Queue;
use crate::ring::{Phase, SlotState};
use crate::sync::Ordering;
use crate::test_hooks::pause_point;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::time::{Duration, Instant};

/// How long settling waits for a live participant holding the message an earlier run
/// committed (a sweep moving it, typically) before it gives up with `RedriveRefused`.
pub const SETTLE_PATIENCE: Duration = Duration::from_secs(2);

impl Queue {
    /// Moves up to `max` messages (all, with `None`) from this queue, a dead-letter queue, to
    /// `to`, each exactly once even if the calling process is killed midway and the call is
    /// run again (see the README's "Redrive"). Returns how many it moved. Each moved message
    /// starts over in `to`: delivery count 1, no origin.
    ///
    /// Waits while `to` is full. `RedriveRefused` if another redrive into `to` is running, or if a
    /// redrive from another queue into `to` was killed before it finished (run that one again
    /// first).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use shmq::{Options, Queue};
    /// let dlq = Queue::create(dir.path().join("dlq"), Options::new(8, 64))?;
    /// let jobs = Queue::create(dir.path().join("jobs"), Options::new(8, 64))?;
    /// dlq.send(b"retry me")?;
    /// assert_eq!(dlq.redrive_to(&jobs, None)?, 1);
    /// assert_eq!(&*jobs.try_recv_in_place()?, b"retry me");
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn redrive_to(&self, to: &Queue, max: Option<u64>) -> Result<u64> {
        self.redrive_to_with_progress(to, max, |_| {})
    }

    /// [`redrive_to`](Self::redrive_to), calling `progress` with the number moved so far after
    /// each message (for a progress bar).
    pub fn redrive_to_with_progress(
        &self,
        to: &Queue,
        max: Option<u64>,
        mut progress: impl FnMut(u64),
    ) -> Result<u64> {
        if self.identity() == to.identity() {
            return Err(Error::RedriveRefused(format!(
                "{} and {} are the same queue",
                self.path().display(),
                to.path().display()
            )));
        }
        let _lock = RedriveLock::take(to)?;
        let ledger = &to.header().redrive.0;
        let mut moved = settle(self, to)?;
        if moved > 0 {
            progress(moved);
        }
        let me = self.identity();
        while max.is_none_or(|max| moved < max) {
            // 1. Room first, then the message: nothing is held while waiting for room.
            let mut slot = to.reserve()?;
            let guard = match self.try_recv_in_place() {
                Ok(guard) => guard,
                // Before calling it a day, give back what dead consumers of the DLQ hold (a
                // killed earlier run's message, which is behind the head): a non-blocking
                // receive of an empty queue never looks for them.
                Err(Error::Empty) | Err(Error::Closed) if self.recover() => continue,
                Err(Error::Empty) | Err(Error::Closed) => break, // `slot` is cancelled
                Err(e) => return Err(e),
            };
            let id = guard.id();
            // 2. Committed by an earlier run already.
            if ledger.source.load(Ordering::Acquire) == me
                && ledger.message.load(Ordering::Acquire) == id
                && ledger.position.load(Ordering::Acquire) != u64::MAX
            {
                drop(guard);
                moved += 1;
                progress(moved);
                continue;
            }
            if guard.len() > to.max_message_size() {
                // Not committed anywhere: given back when this handle is dropped.
                let len = guard.len();
                std::mem::forget(guard);
                return Err(Error::TooLarge {
                    len,
                    max: to.max_message_size(),
                });
            }
            pause_point("redrive-received");
            // 3. Nothing committed, and which message this is.
            ledger.position.store(u64::MAX, Ordering::Release);
            ledger.source.store(me, Ordering::Release);
            ledger.message.store(id, Ordering::Release);
            // 4. The message, complete in the slot, unpublished.
            slot[..guard.len()].copy_from_slice(&guard);
            slot.set_deliveries(1);
            let pos = match slot.prepare(guard.len()) {
                Ok(pos) => pos,
                Err(e) => {
                    // Not committed (the ledger says so): given back when this handle drops.
                    std::mem::forget(guard);
                    return Err(e);
                }
            };
            pause_point("redrive-prepared");
            // 5. The decision point.
            ledger.position.store(pos, Ordering::Release);
            pause_point("redrive-committed");
            // 6. Publish.
            slot.publish_prepared();
            pause_point("redrive-published");
            // 7. Release in the DLQ; then nothing is in flight.
            drop(guard);
            pause_point("redrive-released");
            ledger.source.store(0, Ordering::Release);
            moved += 1;
            progress(moved);
        }
        Ok(moved)
    }
}

impl Queue {
    /// Forgets an interrupted redrive into this queue, so that redrives from other queues may
    /// go on (see [`Error::RedriveRefused`]): for when the queue that redrive came from is gone.
    /// Returns that queue's identity, or `None` if no redrive was interrupted. A message that
    /// interrupted redrive had already moved is published here if it was not yet, and, should
    /// its queue still exist and be redriven, may be moved again.
    pub fn forget_interrupted_redrive(&self) -> Result<Option<u64>> {
        let _lock = RedriveLock::take(self)?;
        publish_committed(self);
        let source = self.header().redrive.0.source.swap(0, Ordering::AcqRel);
        Ok((source != 0).then_some(source))
    }
}

/// The destination's redrive lock (see the module doc, step 0), held while this lives.
struct RedriveLock {
    _file: File,
}

impl RedriveLock {
    fn take(to: &Queue) -> Result<RedriveLock> {
        // A descriptor of our own: OFD locks of one open file description never conflict with
        // each other, so two redrives through one handle would otherwise both get it.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(to.path())
            .map_err(|e| Error::from_io_at(e, to.path()))?;
        let (ours, theirs) = (file.metadata()?, to.file().metadata()?);
        if (ours.dev(), ours.ino()) != (theirs.dev(), theirs.ino()) {
            return Err(Error::RedriveRefused(format!(
                "{} is no longer the queue that was opened there; open it again",
                to.path().display()
            )));
        }
        // SAFETY: a zeroed `flock` is a valid value (integers only); the fields that matter
        // are set below.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        fl.l_start = std::mem::offset_of!(Header, redrive) as libc::off_t;
        fl.l_len = 1;
        fl.l_pid = 0; // required for OFD locks
                      // SAFETY: the descriptor is open for the life of `file`; `fl` is a valid `flock` that
                      // F_OFD_SETLK only reads.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) };
        if rc == -1 {
            let e = std::io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EACCES) => Error::RedriveRefused(format!(
                    "another redrive into {} is running",
                    to.path().display()
                )),
                _ => Error::Io(e),
            });
        }
        Ok(RedriveLock { _file: file })
    }
}

/// Settles the message an earlier run may have left between steps 5 and 7 (see the module
/// doc). Returns how many messages it found committed and removed from the DLQ (0 or 1).
fn settle(dlq: &Queue, to: &Queue) -> Result<u64> {
    let ledger = &to.header().redrive.0;
    if !publish_committed(to) {
        return Ok(0);
    }
    let source = ledger.source.load(Ordering::Acquire);
    if source == 0 {
        return Ok(0);
    }
    if source != dlq.identity() {
        return Err(Error::RedriveRefused(format!(
            "the last redrive into {} (from the queue with identity {source}) was interrupted; \
             run it again from that queue first (if that queue is gone, \
             `shmq redrive --forget-interrupted` lets other queues redrive into this one)",
            to.path().display()
        )));
    }
    let id = ledger.message.load(Ordering::Acquire);
    let removed = remove_message(dlq, id)?;
    ledger.source.store(0, Ordering::Release);
    Ok(u64::from(removed))
}

/// If the ledger names a committed position, publishes the reservation there if its redrive
/// died before publishing it (what `to`'s recovery would do too; one CAS from the word read,
/// so the two cannot both do it). Returns whether the ledger names a committed position.
fn publish_committed(to: &Queue) -> bool {
    let position = to.header().redrive.0.position.load(Ordering::Acquire);
    if position == u64::MAX {
        return false;
    }
    let ring = to.ring();
    let word = ring.word_at(position);
    if let Some(state) = SlotState::decode(word) {
        if matches!(state.phase, Phase::Reserved | Phase::Writing)
            && state.position_near(ring.tail_position()) == position
            && to.is_dead(state.owner)
            && ring.publish_abandoned(position, word)
        {
            to.wake_receivers();
        }
    }
    true
}

/// Removes the message with id `id` from `dlq` wherever it is, if it is still there (see the
/// module doc). Returns whether it did.
fn remove_message(dlq: &Queue, id: u64) -> Result<bool> {
    let start = Instant::now();
    let ring = dlq.ring();
    loop {
        let mut removed = false;
        let mut busy = false;
        for index in 0..u64::from(dlq.capacity()) {
            let head = ring.head_position();
            let word = ring.word_at(index);
            let Some(state) = SlotState::decode(word) else {
                continue;
            };
            let pos = state.position_near(head);
            // `Writing` too: recovery copies a message it gives back (id included) into a slot it
            // stamps `Writing` before it publishes the copy and frees the original; a scan that
            // met the copy unpublished and then the original freed would otherwise miss both.
            let holds_message = matches!(
                state.phase,
                Phase::Full | Phase::Reading | Phase::Lent | Phase::Writing
            );
            if !holds_message || dlq.slot_id(pos) != id {
                continue;
            }
            // The id was read after the state: the slot may have moved on meanwhile, which the
            // CAS below (from the word read) notices.
            match state.phase {
                Phase::Full if state.distance_from(head) >= 0 => {
                    // Not claimed: a tombstone, which receivers pass over.
                    removed |= ring.abandon_send(pos, word);
                    busy |= !removed;
                }
                Phase::Reading | Phase::Lent if dlq.is_dead(state.owner) => {
                    removed |= ring.drop_claimed(pos, word);
                    busy |= !removed;
                }
                // Claimed by a live participant, a claim in progress, or a copy being made by
                // recovery (or a stale id in a slot being written, which the sweep below
                // settles): look again.
                _ => busy = true,
            }
        }
        if removed {
            crate::test_hooks::event("redrive-settled");
            return Ok(true);
        }
        if !busy {
            return Ok(false);
        }
        if start.elapsed() > SETTLE_PATIENCE {
            return Err(Error::RedriveRefused(format!(
                "{} holds message {id}, which an interrupted redrive already moved; it is held \
                 by a live participant (stop other consumers of the dead-letter queue and run \
                 the redrive again)",
                dlq.path().display()
            )));
        }
        dlq.recover();
        std::thread::sleep(Duration::from_millis(1));
    }
}
