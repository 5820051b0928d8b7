// SPDX-License-Identifier: MIT OR Apache-2.0
//! [`Queue`]: a handle on a queue file. Creating, opening and removing queue files, the
//! handle's registration (a participant entry per thread that uses it, its lanes), and the send
//! and receive calls and guards, built on the mapped file (`mapping`), the claim protocol
//! (`ring`) and the sleep/wake protocol (`wait`). Crash recovery (`recovery`) runs when a call
//! finds it is due: the handle lends it its mapping and its liveness question (a `Survivor`).
//!
//! One message's path: [`Queue::send`] → `Ring::claim_send` → `Mapping::write` copies the
//! payload into the slot → `Ring::publish` → `wait::wake_if_sleeping`; and back: [`Queue::recv`]
//! → `Ring::claim_recv` → `Mapping::message` checks the length, the payload is copied out →
//! `Ring::release` → `wait::wake_if_sleeping`.

use crate::error::{Error, Result};
use crate::file::{self, Trust};
use crate::layout::{
    DeadLetterPath, Geometry, Header, Participant, SlotHeader, FLAG_ALLOW_OTHER_ACCESS,
    FLAG_DROP_ON_CONSUMER_DEATH,
};
use crate::lease;
use crate::mapping::{MappedSlots, Mapping};
use crate::options::{OnConsumerDeath, Options, Received};
use crate::participant::{self, Liveness, Registration};
use crate::recovery::{self, Survivor};
use crate::ring::{self, Claim, ClaimError, Claimer, Ring, Side, SlotStates};
use crate::stats::{self, Stats};
use crate::sync::{spin_hint, AtomicU32, AtomicU64, Ordering};
use crate::test_hooks::{pause_point, sleep_slice};
use crate::wait::{self, Deadline};
use memmap2::MmapOptions;
use std::cell::Cell;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// A handle on a queue file, shared by any number of threads (`Queue` is `Send + Sync`).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("q");
/// use shmq::{Options, Queue};
/// let q = Queue::create(&path, Options::new(8, 64))?;
/// q.send(b"hello")?;
/// let mut buf = [0u8; 64];
/// let n = q.recv(&mut buf)?;
/// assert_eq!(&buf[..n], b"hello");
/// # Ok::<(), shmq::Error>(())
/// ```
pub struct Queue {
    /// The mapped file: header, participant table, slots.
    mapping: Mapping,
    /// The open file description that holds our participant locks (also the liveness probe),
    /// and which entries are ours.
    liveness: Liveness,
    /// The entry taken when the handle was opened (the opening thread's lane); its stamp of
    /// `holding_since_unix_ns` speaks for the whole handle.
    me: Registration,
    /// Every thread that uses this handle claims through its own participant entry (its lane),
    /// so that two threads never share one announcement (see `ring`, "Attribution").
    lanes: Lanes,
    /// What last blocked a non-blocking send / receive at the tail / head (see
    /// `recovery::stuck`).
    send_watch: recovery::StuckWatch,
    recv_watch: recovery::StuckWatch,
    /// Set once a receive found the queue closed, drained, and no slot held by anyone else.
    settled: AtomicBool,
    /// Guards of this handle alive now (see `hold_begin`).
    guards: AtomicU32,
    /// Non-blocking calls that found nothing to do, for [`poll_expiry`](Self::poll_expiry).
    idle_polls: std::sync::atomic::AtomicU64,
    /// The dead-letter queue, opened when recovery first sends a message there (see
    /// `dead_letter`).
    dead_letter: crate::dead_letter::DeadLetterCell,
    path: PathBuf,
}

/// The lanes of one handle: which participant entry each thread that used it claims through.
///
/// The fast path finds the calling thread's lane in a small thread-local cache keyed by the
/// handle's process-unique id (a few loads, no lock); the first call of a thread on a handle
/// takes the lock, and takes a new entry in the file, or the lane of a thread that has exited.
/// Entries stay with the handle until it is dropped.
struct Lanes {
    /// Unique among the handles this process ever opened; keys the thread-local cache.
    uid: u64,
    /// `(thread, entry)`: the thread is alive while its `Weak` upgrades.
    by_thread: Mutex<Vec<(Weak<()>, Registration)>>,
}

/// Process-unique handle ids for the lane cache (0: an empty cache entry).
static NEXT_HANDLE_UID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Entries of the per-thread lane cache.
const LANE_CACHE: usize = 4;

thread_local! {
    /// `(handle uid, entry index, token)` of the lanes this thread used last.
    static LANE_CACHE_ENTRIES: [Cell<(u64, u32, u32)>; LANE_CACHE] =
        const { [const { Cell::new((0, 0, 0)) }; LANE_CACHE] };
    /// Dropped when the thread exits: a lane whose `Weak` no longer upgrades may be reused.
    static THREAD_ALIVE: Arc<()> = Arc::new(());
}

impl Lanes {
    fn new(first: Registration) -> Lanes {
        let lanes = Lanes {
            uid: NEXT_HANDLE_UID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            by_thread: Mutex::new(Vec::new()),
        };
        lanes.adopt(first);
        lanes
    }

    /// Records `lane` as the calling thread's (its entry already marked ours in `Liveness`).
    fn adopt(&self, lane: Registration) {
        let thread = THREAD_ALIVE.with(Arc::downgrade);
        self.by_thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((thread, lane));
        self.cache(lane);
    }

    fn cache(&self, lane: Registration) {
        LANE_CACHE_ENTRIES.with(|cache| {
            // Newest first: shift the others down, dropping the oldest.
            for i in (1..LANE_CACHE).rev() {
                cache[i].set(cache[i - 1].get());
            }
            cache[0].set((self.uid, lane.index, lane.token));
        });
    }

    /// The calling thread's lane, if it is cached.
    #[inline]
    fn cached(&self) -> Option<Registration> {
        LANE_CACHE_ENTRIES.with(|cache| {
            cache.iter().find_map(|entry| {
                let (uid, index, token) = entry.get();
                (uid == self.uid).then_some(Registration { index, token })
            })
        })
    }

    fn all(&self) -> Vec<Registration> {
        self.by_thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(_, lane)| *lane)
            .collect()
    }
}

impl Queue {
    /// Creates a new queue file at `path` and opens it.
    ///
    /// The file is written in full under a temporary name in the same directory and then linked
    /// into place, so other processes never see a half-written queue; if `path` exists (even if
    /// created a moment earlier by a racing process), this fails with `AlreadyExists`.
    pub fn create(path: impl AsRef<Path>, mut options: Options) -> Result<Queue> {
        let path = path.as_ref();
        // The dead-letter queue is opened by whichever process dead-letters a message, from its
        // own working directory: record the path absolute (before it is validated, since that
        // makes it longer; an empty path is left for validation to refuse).
        if let Some(dlq) = options.dead_letter_queue.as_mut() {
            if dlq.is_relative() && !dlq.as_os_str().is_empty() {
                *dlq = std::path::absolute(&*dlq).map_err(|e| Error::from_io_at(e, dlq))?;
            }
        }
        let geometry = Geometry::new(options.capacity, options.max_message_size)?;
        options.validate()?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        file::check_room(path, dir, geometry.file_len)?;
        // Write the whole file under a private name, then publish it with link(2), which fails if
        // the name exists: exactly one of several racing creators wins.
        let temp = tempfile::Builder::new()
            .prefix(".shmq-new-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(options.mode))
            .tempfile_in(dir)
            .map_err(|e| Error::from_io_at(e, dir))?;
        // Allocate every byte now: a file that is only as long as it should be, with holes, makes
        // its first toucher die of SIGBUS when the filesystem (a tmpfs) is full. Out of space
        // is an error here instead, and dropping `temp` removes the file.
        file::allocate(temp.as_file(), geometry.file_len)
            .map_err(|e| file::out_of_space(e, path, dir))?;
        {
            let map = MmapOptions::new()
                .len(geometry.file_len as usize)
                .map_raw(temp.as_file())?;
            // SAFETY: the mapping is `file_len` bytes of a file only we can see (it has a random
            // name, and is unlinked if we fail); it is page-aligned, so suitably aligned for
            // `Header` and the slot headers; every byte is allocated and zero.
            unsafe { init_file(map.as_mut_ptr(), &geometry, &options) };
            map.flush()?;
        }
        std::fs::hard_link(temp.path(), path).map_err(|e| Error::from_io_at(e, path))?;
        drop(temp); // removes the temporary name; the queue stays at `path`
        Queue::open_checked(path, Trust::Owner).inspect_err(|_| {
            // We linked it, and nobody can have used a queue we cannot open: leave nothing
            // behind.
            let _ = std::fs::remove_file(path);
        })
    }

    /// Opens an existing queue file, validating its header.
    ///
    /// Refuses a symbolic link (`PermissionDenied`: a link planted by another user must not
    /// redirect a queue; open the target's path), and a file whose permissions give "other"
    /// users access unless the queue was created with
    /// [`Options::allow_other_access`]. A file with unallocated holes (made by a copy tool, or
    /// by shmq before 0.1.1) is allocated in full first, so that a full filesystem is an error
    /// here rather than a SIGBUS later.
    pub fn open(path: impl AsRef<Path>) -> Result<Queue> {
        Queue::open_checked(path.as_ref(), Trust::AnyOwner)
    }

    fn open_checked(path: &Path, trust: Trust) -> Result<Queue> {
        let file = file::open(path, true)?;
        let meta = file.metadata()?;
        let actual_len = file::check_metadata(path, &meta, trust)?;
        if !file::is_allocated(&meta, actual_len) {
            let dir = path.parent().unwrap_or(Path::new("."));
            file::allocate(&file, actual_len).map_err(|e| file::out_of_space(e, path, dir))?;
        }
        // `check_metadata` made sure the file holds at least a `Header`.
        let mapping = Mapping::open(&file, actual_len)?;
        let flags = mapping.flags();
        file::check_other_access(path, &meta, flags)?;
        let mut queue = Queue {
            mapping,
            liveness: Liveness::new(file),
            // Not registered yet: an index outside the table, which `Drop` leaves alone.
            me: Registration {
                index: u32::MAX,
                token: u32::MAX,
            },
            lanes: Lanes {
                uid: 0,
                by_thread: Mutex::new(Vec::new()),
            },
            send_watch: recovery::StuckWatch::default(),
            recv_watch: recovery::StuckWatch::default(),
            settled: AtomicBool::new(false),
            guards: AtomicU32::new(0),
            idle_polls: std::sync::atomic::AtomicU64::new(0),
            dead_letter: crate::dead_letter::DeadLetterCell::default(),
            path: path.to_path_buf(),
        };
        queue.me = recovery::register(queue.survivor())?;
        queue.liveness.adopt(queue.me.index);
        queue.lanes = Lanes::new(queue.me);
        Ok(queue)
    }

    /// Opens the queue at `path`, creating it with `options` if no file exists. If another
    /// process creates it at the same moment, this opens theirs (whose options may differ).
    ///
    /// An existing file must be owned by the caller's effective user (else `PermissionDenied`):
    /// a caller who would have created the queue must not silently adopt one that another user
    /// planted at the path, and then send to that user. To attach to another user's queue on
    /// purpose, use [`open`](Self::open).
    pub fn open_or_create(path: impl AsRef<Path>, options: Options) -> Result<Queue> {
        let path = path.as_ref();
        options.validate()?;
        loop {
            match Queue::open_checked(path, Trust::Owner) {
                Err(Error::NotFound(_)) => match Queue::create(path, options.clone()) {
                    Err(Error::AlreadyExists(_)) => continue,
                    other => return other,
                },
                other => return other,
            }
        }
    }

    /// Removes the queue file. Handles already open keep working; new opens fail.
    pub fn unlink(path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::remove_file(path).map_err(|e| Error::from_io_at(e, path))
    }

    /// The path this handle was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of slots.
    pub fn capacity(&self) -> u32 {
        self.mapping.capacity()
    }

    /// Largest message, in bytes.
    pub fn max_message_size(&self) -> usize {
        self.mapping.max_message_size()
    }

    /// The mapped file's header (see `Mapping::header`).
    /// The visibility timeout this queue was created with (see
    /// [`Options::visibility_timeout`]), or `None`.
    pub fn visibility_timeout(&self) -> Option<Duration> {
        match self.mapping.visibility_timeout_ns() {
            0 => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    /// The dead-letter queue this queue was created with (see
    /// [`Options::dead_letter_queue`]), or `None`.
    pub fn dead_letter_queue(&self) -> Option<&Path> {
        self.mapping.dead_letter_queue()
    }

    /// The queue's identity: its creation time, in nanoseconds since the Unix epoch. Two queue
    /// files made at different instants differ in it, and it survives renames; a dead-letter
    /// queue's consumer compares it with [`Origin::queue`](crate::Origin::queue) to tell which
    /// queue a message came from.
    pub fn identity(&self) -> u64 {
        self.mapping.identity()
    }

    pub(crate) fn header(&self) -> &Header {
        self.mapping.header()
    }

    /// The mapped file's participant table.
    pub(crate) fn participants(&self) -> &[Participant] {
        self.mapping.participants()
    }

    #[inline]
    pub(crate) fn ring(&self) -> Ring<'_, MappedSlots<'_>> {
        self.mapping.ring()
    }

    /// The id recorded in the slot of position `pos` (for `redrive`, which looks for one
    /// message by id).
    pub(crate) fn slot_id(&self, pos: u64) -> u64 {
        self.mapping.slot(pos).id.load(Ordering::Relaxed)
    }

    /// Whether the participant with `token` is gone (the kernel's lock says so; our own entries
    /// are alive).
    pub(crate) fn is_dead(&self, token: u32) -> bool {
        self.liveness.is_dead(self.participants(), token)
    }

    /// Wakes the receivers sleeping on this queue (after a message was published by other
    /// means than a guard: `redrive`).
    pub(crate) fn wake_receivers(&self) {
        self.wake(&self.header().recv_wait.0);
    }

    /// The open file description holding our participant lock (also the liveness probe).
    pub(crate) fn file(&self) -> &File {
        self.liveness.file()
    }

    /// What crash recovery works over: the mapped file and this handle's liveness question.
    #[inline]
    fn survivor(&self) -> Survivor<'_> {
        Survivor {
            mapping: &self.mapping,
            liveness: &self.liveness,
            dead_letter: &self.dead_letter,
        }
    }

    /// Looks for the dead and resolves what they left (see `recovery::sweep`), claiming through
    /// the calling thread's lane. Returns whether it changed anything.
    #[cold]
    pub(crate) fn sweep(&self) -> bool {
        let Ok(me) = self.claimer() else {
            return false; // no entry for this thread: the table is full of the living
        };
        recovery::sweep(self.survivor(), me)
    }

    /// Sweeps if none ran in the last `recovery::SWEEP_INTERVAL_NS` (by any process). Returns
    /// whether the sweep changed anything.
    #[cold]
    pub(crate) fn maybe_sweep(&self) -> bool {
        let swept = recovery::sweep_due(self.header()) && self.sweep();
        swept | (recovery::expiry_due(&self.mapping) && self.expire())
    }

    /// Hands out again the messages whose holds lapsed (see `lease`), claiming through the
    /// calling thread's lane. Returns whether it changed anything.
    #[cold]
    fn expire(&self) -> bool {
        if self.mapping.visibility_timeout_ns() == 0 {
            return false;
        }
        let Ok(me) = self.claimer() else {
            return false;
        };
        recovery::expire(self.survivor(), me)
    }

    /// After a non-blocking call found nothing to do, in a queue with a visibility timeout:
    /// every [`recovery::EXPIRY_POLLS`] such calls, looks at the clock (no system call) and
    /// scans for lapsed holds if one is due. Returns whether that changed anything.
    #[cold]
    fn poll_expiry(&self) -> bool {
        let polls = self
            .idle_polls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (polls + 1).is_multiple_of(recovery::EXPIRY_POLLS)
            && recovery::expiry_due(&self.mapping)
            && self.expire()
    }

    /// Before a receiver reports `Closed`: sweeps if a slot is still held or claimed (see
    /// `recovery::held_before_closed`). Returns whether the sweep changed anything.
    #[cold]
    fn settle_before_closed(&self) -> bool {
        recovery::held_before_closed(&self.mapping, &self.settled) && (self.sweep() | self.expire())
    }

    /// The calling thread's lane: its participant entry for this handle, taken on its first
    /// call (see [`Lanes`]). `TooManyHandles` if the table has no entry left for it.
    #[inline]
    pub(crate) fn lane(&self) -> Result<Registration> {
        match self.lanes.cached() {
            Some(lane) => Ok(lane),
            None => self.lane_slow(),
        }
    }

    #[cold]
    fn lane_slow(&self) -> Result<Registration> {
        let mut by_thread = self
            .lanes
            .by_thread
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let me = THREAD_ALIVE.with(Arc::downgrade);
        if let Some((_, lane)) = by_thread.iter().find(|(t, _)| t.ptr_eq(&me)) {
            let lane = *lane;
            drop(by_thread);
            self.lanes.cache(lane);
            return Ok(lane);
        }
        // A lane whose thread has exited: it has no claim in progress (its calls returned),
        // and its long holds stay attributed to a live token of this handle.
        if let Some(slot) = by_thread.iter_mut().find(|(t, _)| t.strong_count() == 0) {
            slot.0 = me;
            let lane = slot.1;
            drop(by_thread);
            self.lanes.cache(lane);
            return Ok(lane);
        }
        drop(by_thread);
        let lane = recovery::register(self.survivor())?;
        self.liveness.adopt(lane.index);
        self.lanes.adopt(lane);
        Ok(lane)
    }

    /// The calling thread as a claimer: its lane's token and announcement record.
    #[inline]
    pub(crate) fn claimer(&self) -> Result<Claimer<'_>> {
        let lane = self.lane()?;
        Ok(Claimer {
            token: lane.token,
            announcement: &self.participants()[lane.index as usize].announcement,
        })
    }

    /// The participant entry taken when this handle was opened (the opening thread's lane):
    /// it speaks for the whole handle where one entry must (a channel end's role).
    pub(crate) fn registration(&self) -> Registration {
        self.me
    }

    /// Whether participant entry `index` is one of this handle's lanes (alive by definition).
    pub(crate) fn owns_entry(&self, index: u32) -> bool {
        self.liveness.is_mine(index)
    }

    /// Wakes the sleepers on `word`, if any; if the count said someone sleeps but nobody woke,
    /// the count may include the dead: sweep (at most every `SWEEP_INTERVAL_NS`), which repairs
    /// it. Only reached after a `FUTEX_WAKE`, so the fast path pays nothing for it.
    #[inline]
    fn wake(&self, word: &AtomicU32) {
        if wait::wake_if_sleeping(word) {
            self.maybe_sweep();
        }
    }

    /// After a non-blocking call found the queue full (`cursor` the tail) or empty (the head),
    /// or a claim in progress there (`claimed`): hands the state of the slot at that cursor to
    /// `recovery::stuck`, and sweeps if it says so. For the tail, the slot is the one a full
    /// queue waits on. Returns whether recovery changed anything.
    fn unstick(&self, cursor: &AtomicU64, claimed: bool, watch: &recovery::StuckWatch) -> bool {
        self.unstick_at(self.word_at_cursor(cursor), claimed, watch)
    }

    /// As [`unstick`](Self::unstick), with the state `word` of the slot at the cursor as the
    /// claim saw it (`Ring::blocked_by`): the fast path's `Full` and `Empty` load it only once.
    #[inline(always)]
    fn unstick_at(&self, word: u64, claimed: bool, watch: &recovery::StuckWatch) -> bool {
        if recovery::stuck(self.survivor(), word, claimed, watch) && self.sweep() {
            return true;
        }
        self.idle_poll()
    }

    /// After a non-blocking call found nothing to do: in a queue with a visibility timeout,
    /// counts the poll and hands out lapsed holds when due (see
    /// [`poll_expiry`](Self::poll_expiry)). Returns whether that changed anything.
    #[inline(always)]
    pub(crate) fn idle_poll(&self) -> bool {
        self.mapping.visibility_timeout_ns() != 0 && self.poll_expiry()
    }

    /// The calling thread as a claimer (see [`claimer`](Self::claimer)) in `role`, which is
    /// recorded in its participant entry once per role (a load of the line the thread writes
    /// its announcements to, when it is already recorded).
    #[inline]
    fn claimer_as(&self, role: u32) -> Result<Claimer<'_>> {
        let lane = self.lane()?;
        let entry = &self.participants()[lane.index as usize];
        record_role(entry, role);
        Ok(Claimer {
            token: lane.token,
            announcement: &entry.announcement,
        })
    }

    /// The calling thread as a claimer in `role`, if that needs no call: its lane is cached
    /// (see [`Lanes`]) and already has `role` recorded. The fast paths look their claimer up
    /// with this and leave the rest to a cold path (`None`), so that nothing they hold must
    /// survive a call on the way: measured, such a call kept `try_recv`'s values on the stack.
    #[inline(always)]
    fn cached_claimer(&self, role: u32) -> Option<Claimer<'_>> {
        let lane = self.lanes.cached()?;
        let entry = self.participants().get(lane.index as usize)?;
        (entry.roles.load(Ordering::Relaxed) & role != 0).then_some(Claimer {
            token: lane.token,
            announcement: &entry.announcement,
        })
    }

    /// Records `role` for the calling thread's lane, as a claim does (see
    /// [`claimer_as`](Self::claimer_as)), for a call that waits before it has claimed
    /// anything: an empty poll looks no claimer up (see `claim_recv`).
    pub(crate) fn record_role(&self, role: u32) {
        if let Ok(lane) = self.lane() {
            record_role(&self.participants()[lane.index as usize], role);
        }
    }

    /// How a blocked call on `word` waits: with the calling thread's sleeper record (receivers
    /// at shift 0, senders at 16) and sleep slices, so that it runs crash recovery while it
    /// waits.
    pub(crate) fn waiter<'a>(&'a self, word: &'a AtomicU32, shift: u32) -> wait::Waiter<'a> {
        let lane = self.lane().unwrap_or(self.me);
        wait::Waiter {
            word,
            mine: self
                .participants()
                .get(lane.index as usize)
                .map(|entry| (&entry.sleeping, shift)),
            slice: sleep_slice(recovery::SLEEP_SLICE),
        }
    }

    /// A claim in progress at the cursor (`ClaimError::Busy`): waits for it to finish, so that
    /// `Empty` and `Full` are only reported when the queue is empty or full. Spins briefly,
    /// then yields the CPU (the claimer may be descheduled on this very core), sweeping for the
    /// dead every `recovery::STUCK_NS` (the claimer may have died). After [`BUSY_PATIENCE`] it
    /// gives up and reports `WouldBlock` (a stopped process), and remembers the claim it gave up
    /// on, so that later calls that find the same claim there report at once, instead of
    /// waiting again, while still sweeping once per `STUCK_NS`.
    #[cold]
    fn wait_out_busy(
        &self,
        cursor: &AtomicU64,
        watch: &recovery::StuckWatch,
        attempt: &mut impl FnMut() -> std::result::Result<Claim, ClaimError>,
    ) -> std::result::Result<Claim, ClaimError> {
        let word = self.word_at_cursor(cursor);
        if watch.gave_up_on(word) {
            self.unstick(cursor, true, watch);
            return match attempt() {
                Err(ClaimError::Busy) => Err(ClaimError::WouldBlock),
                other => other,
            };
        }
        for _ in 0..BUSY_SPINS {
            spin_hint();
            match attempt() {
                Err(ClaimError::Busy) => {}
                other => return other,
            }
        }
        let start = Instant::now();
        let mut swept = start;
        loop {
            std::thread::yield_now();
            match attempt() {
                Err(ClaimError::Busy) => {}
                other => return other,
            }
            let now = Instant::now();
            if now.duration_since(swept) >= Duration::from_nanos(recovery::STUCK_NS) {
                swept = now;
                self.sweep();
            }
            if now.duration_since(start) > BUSY_PATIENCE {
                watch.give_up_on(self.word_at_cursor(cursor));
                return Err(ClaimError::WouldBlock);
            }
        }
    }

    /// A blocking claim's wait: calls `attempt` until it claims, fails for good, or `deadline`
    /// passes, sleeping on `word` with the calling thread's sleeper record at `shift` (see
    /// [`waiter`](Self::waiter)), counting the first sleep in `sleeps`, and sweeping for the
    /// dead before every sleep. Gives up with `WouldBlock`.
    #[cold]
    fn wait_for_claim(
        &self,
        word: &AtomicU32,
        shift: u32,
        sleeps: &AtomicU64,
        deadline: Deadline,
        attempt: &mut impl FnMut() -> std::result::Result<Claim, ClaimError>,
    ) -> std::result::Result<Claim, ClaimError> {
        let mut failure = None;
        wait::wait_for(
            &self.waiter(word, shift),
            deadline,
            || {
                sleeps.fetch_add(1, Ordering::Relaxed);
            },
            || {
                self.maybe_sweep();
            },
            || match attempt() {
                Err(ClaimError::WouldBlock | ClaimError::Busy) => None,
                Err(e) => {
                    failure = Some(e);
                    Some(None)
                }
                Ok(claim) => Some(Some(claim)),
            },
        )
        .map_or(Err(ClaimError::WouldBlock), |got| {
            got.ok_or(failure.unwrap_or(ClaimError::WouldBlock))
        })
    }

    /// The state word of the slot at `cursor`'s position.
    fn word_at_cursor(&self, cursor: &AtomicU64) -> u64 {
        let pos = cursor.load(Ordering::Acquire) & !ring::CLOSED;
        self.mapping.slot(pos).state.load(Ordering::Acquire)
    }

    /// Counts a new guard. When it is the handle's only one, stamps the time in our entry's
    /// `holding_since_unix_ns`, so that a monitor can tell how long a stuck holder has held.
    /// (Paid by the in-place calls only, once per guard: one RMW on a handle-local word, and a
    /// coarse clock read and a store when the handle held none.)
    fn hold_begin(&self) {
        if self.guards.fetch_add(1, Ordering::SeqCst) == 0 {
            self.stamp_holding(participant::unix_now_coarse_ns());
        }
    }

    /// Counts a guard gone; clears the stamp when it was the last.
    fn hold_end(&self) {
        if self.guards.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.stamp_holding(0);
            // Another thread may have taken a guard between our decrement and our store, and
            // stamped its time, which we just erased: all four operations are SeqCst, so if its
            // increment came first we see it here, and stamp again.
            if self.guards.load(Ordering::SeqCst) != 0 {
                self.stamp_holding(participant::unix_now_coarse_ns());
            }
        }
    }

    fn stamp_holding(&self, unix_ns: u64) {
        if let Some(entry) = self.participants().get(self.me.index as usize) {
            entry.holding_since_unix_ns.store(unix_ns, Ordering::SeqCst);
        }
    }

    /// Claims up to `max` positions to write, waiting for room until `deadline`. Returns the
    /// claim and the claimer (the calling thread's lane).
    #[inline(always)]
    fn claim_send(&self, max: u64, deadline: Deadline) -> Result<(Claim, Claimer<'_>)> {
        self.claim_send_on(&self.ring(), max, deadline)
    }

    /// As [`claim_send`](Self::claim_send), on `ring` (one of this queue's, see `send_with`).
    #[inline(always)]
    fn claim_send_on<S: SlotStates>(
        &self,
        ring: &Ring<'_, S>,
        max: u64,
        deadline: Deadline,
    ) -> Result<(Claim, Claimer<'_>)> {
        let Some(me) = self.cached_claimer(participant::ROLE_SENDER) else {
            return self.claim_send_uncached(max, deadline);
        };
        // The non-blocking call pays for one attempt and nothing else (no waiter, no clock).
        match ring.claim_send(me, max) {
            Ok(claim) => {
                pause_point("send-claimed");
                Ok((claim, me))
            }
            // Full, but perhaps because of the dead: only if recovery changed something, look
            // again (the rest of the slow path).
            Err(ClaimError::WouldBlock)
                if matches!(deadline, Deadline::Now)
                    && !self.unstick_at(ring.blocked_by.get(), false, &self.send_watch) =>
            {
                Err(Error::Full)
            }
            Err(e) => self.claim_send_slow(Some(e), max, deadline, me),
        }
    }

    /// [`claim_send_on`](Self::claim_send_on) for a thread whose claimer is not at hand (see
    /// [`cached_claimer`](Self::cached_claimer)): the same claim, after the lookup.
    #[cold]
    #[inline(never)]
    fn claim_send_uncached(&self, max: u64, deadline: Deadline) -> Result<(Claim, Claimer<'_>)> {
        let me = self.claimer_as(participant::ROLE_SENDER)?;
        self.claim_send_slow(None, max, deadline, me)
    }

    /// The rest of a send's claim after its first attempt failed with `first`, or the whole
    /// claim (its first attempt too) if `first` is `None`.
    #[cold]
    fn claim_send_slow<'q>(
        &'q self,
        first: Option<ClaimError>,
        max: u64,
        deadline: Deadline,
        me: Claimer<'q>,
    ) -> Result<(Claim, Claimer<'q>)> {
        let ring = self.ring();
        let attempt = &mut || ring.claim_send(me, max);
        let header = self.header();
        let tail = &header.tail.0;
        let mut result = match first {
            Some(failure) => Err(failure),
            None => attempt(),
        };
        if result == Err(ClaimError::Busy) && matches!(deadline, Deadline::Now) {
            result = self.wait_out_busy(tail, &self.send_watch, attempt);
        }
        let result = match result {
            // The fast path found the queue full, and recovery changed something: look again.
            // (From `claim_send_uncached`, the first attempt above found it full; this second
            // look is the one that path has always made, with no stuck-claim check before it.)
            Err(ClaimError::WouldBlock) if matches!(deadline, Deadline::Now) => attempt(),
            Err(ClaimError::WouldBlock | ClaimError::Busy) => self.wait_for_claim(
                &header.send_wait.0,
                16,
                &header.counters.0.full_waits,
                deadline,
                attempt,
            ),
            other => other,
        };
        match result {
            Ok(claim) => {
                pause_point("send-claimed");
                Ok((claim, me))
            }
            Err(ClaimError::WouldBlock | ClaimError::Busy) => match deadline {
                Deadline::Now => Err(Error::Full),
                _ => Err(Error::Timeout),
            },
            Err(e) => Err(claim_error(Some(e))),
        }
    }

    #[inline(always)]
    fn send_with(&self, msg: &[u8], deadline: Deadline) -> Result<()> {
        // One ring for the whole send, so that the slot's address is computed once (see
        // `MappedSlots`).
        match self.mapping.ring_by_mask() {
            Some(ring) => self.send_on(&ring, msg, deadline),
            None => self.send_on(&self.ring(), msg, deadline),
        }
    }

    #[inline(always)]
    fn send_on<const BY_MASK: bool>(
        &self,
        ring: &Ring<'_, MappedSlots<'_, BY_MASK>>,
        msg: &[u8],
        deadline: Deadline,
    ) -> Result<()> {
        self.mapping.check_len(msg.len())?;
        let (claim, _) = self.claim_send_on(ring, 1, deadline)?;
        ring.slots.write(claim.first, msg);
        ring.publish(claim.first);
        self.wake(&self.header().recv_wait.0);
        Ok(())
    }

    /// Sends `msg` if there is room now; `Full` otherwise. Never blocks; makes no system call
    /// unless it must wake a sleeping receiver, or finds the slot at the tail held by the same
    /// claimer for over a millisecond (then it asks the kernel whether that claimer died).
    pub fn try_send(&self, msg: &[u8]) -> Result<()> {
        // Not split into an inline common claim and an out-of-line rest, as `recv_one_on` is:
        // that send ran 18 instructions fewer (callgrind: the same work, fewer spills) but
        // measured 10 % slower round trips and throughput (`shmq bench`, interleaved rounds).
        // Why was not found.
        self.send_with(msg, Deadline::Now)
    }

    /// Sends `msg`, waiting while the queue is full. `Closed` if the queue is closed.
    pub fn send(&self, msg: &[u8]) -> Result<()> {
        self.send_with(msg, Deadline::Never)
    }

    /// Sends `msg`, waiting at most `timeout` for room; `Timeout` if none came.
    pub fn send_timeout(&self, msg: &[u8], timeout: Duration) -> Result<()> {
        self.send_with(msg, Deadline::after(timeout))
    }

    /// Sends as many of `msgs` as there is room for now, in order, claiming their slots together
    /// and moving the shared cursor once. Returns how many were sent (at least 1), or `Full`.
    ///
    /// Every message is checked against the maximum size before anything is sent.
    pub fn try_send_batch<M: AsRef<[u8]>>(&self, msgs: &[M]) -> Result<usize> {
        self.send_batch_with(msgs, Deadline::Now)
    }

    /// Like [`try_send_batch`](Self::try_send_batch), but waits while the queue is full; returns
    /// once at least one message is sent.
    pub fn send_batch<M: AsRef<[u8]>>(&self, msgs: &[M]) -> Result<usize> {
        self.send_batch_with(msgs, Deadline::Never)
    }

    fn send_batch_with<M: AsRef<[u8]>>(&self, msgs: &[M], deadline: Deadline) -> Result<usize> {
        if msgs.is_empty() {
            return Ok(0);
        }
        for msg in msgs {
            self.mapping.check_len(msg.as_ref().len())?;
        }
        // One ring for the whole batch, as in `send_with`.
        match self.mapping.ring_by_mask() {
            Some(ring) => self.send_batch_on(&ring, msgs, deadline),
            None => self.send_batch_on(&self.ring(), msgs, deadline),
        }
    }

    #[inline(always)]
    fn send_batch_on<M: AsRef<[u8]>, const BY_MASK: bool>(
        &self,
        ring: &Ring<'_, MappedSlots<'_, BY_MASK>>,
        msgs: &[M],
        deadline: Deadline,
    ) -> Result<usize> {
        let (claim, _) = self.claim_send_on(ring, msgs.len() as u64, deadline)?;
        // Every message first, then every publish: a consumer that arrives meanwhile waits
        // for the run (the head stamped `WRITING`) and then claims it whole, rather than
        // chasing the writes one slot at a time, one cursor CAS per message.
        for (pos, msg) in claim.positions().zip(msgs) {
            ring.slots.write(pos, msg.as_ref());
        }
        for pos in claim.positions() {
            ring.publish(pos);
        }
        self.wake(&self.header().recv_wait.0);
        Ok(claim.count as usize)
    }

    /// Claims a slot to write in place; waits for room until `deadline`.
    fn reserve_with(&self, deadline: Deadline) -> Result<SendGuard<'_>> {
        let (claim, me) = self.claim_send(1, deadline)?;
        // Held beyond this call: peers do not wait for it (see `ring`, "Exact Empty and Full").
        self.ring().hold(claim.first, me.token, Side::Send);
        self.hold_begin();
        Ok(SendGuard {
            queue: self,
            pos: claim.first,
            committed: false,
            earlier_deliveries: 0,
            origin: (0, 0),
        })
    }

    /// Reserves a slot to write a message in place, if there is room now.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let q = shmq::Queue::create(dir.path().join("q"), shmq::Options::new(8, 64))?;
    /// let mut slot = q.try_reserve()?;
    /// slot[..3].copy_from_slice(b"abc");
    /// slot.commit(3)?;
    /// assert_eq!(&*q.try_recv_in_place()?, b"abc");
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn try_reserve(&self) -> Result<SendGuard<'_>> {
        self.reserve_with(Deadline::Now)
    }

    /// Reserves a slot to write in place, waiting while the queue is full.
    pub fn reserve(&self) -> Result<SendGuard<'_>> {
        self.reserve_with(Deadline::Never)
    }

    /// Reserves a slot to write in place, waiting at most `timeout`.
    pub fn reserve_timeout(&self, timeout: Duration) -> Result<SendGuard<'_>> {
        self.reserve_with(Deadline::after(timeout))
    }

    /// Claims up to `max` messages, waiting for one until `deadline`. `accept(len)` is asked about
    /// the first message's length before it is claimed.
    #[inline(always)]
    fn claim_recv(
        &self,
        max: u64,
        deadline: Deadline,
        accept: impl Fn(usize) -> bool,
    ) -> Result<(Claim, Claimer<'_>)> {
        self.claim_recv_on(&self.ring(), max, deadline, accept)
    }

    /// As [`claim_recv`](Self::claim_recv), on `ring` (one of this queue's, see `recv_with`).
    #[inline(always)]
    fn claim_recv_on<'q, const BY_MASK: bool>(
        &'q self,
        ring: &Ring<'q, MappedSlots<'q, BY_MASK>>,
        max: u64,
        deadline: Deadline,
        accept: impl Fn(usize) -> bool,
    ) -> Result<(Claim, Claimer<'q>)> {
        let first = ring.look_recv();
        self.claim_recv_after_look(ring, first, max, deadline, accept)
    }

    /// [`claim_recv_on`](Self::claim_recv_on) after its first look at the head (`first`, from
    /// `ring.look_recv()`).
    #[inline(always)]
    fn claim_recv_after_look<'q, const BY_MASK: bool>(
        &'q self,
        ring: &Ring<'q, MappedSlots<'q, BY_MASK>>,
        first: std::result::Result<(u64, u64), ClaimError>,
        max: u64,
        deadline: Deadline,
        accept: impl Fn(usize) -> bool,
    ) -> Result<(Claim, Claimer<'q>)> {
        // The non-blocking call pays for one attempt and nothing else (no waiter, no clock).
        // An empty poll ends at the first look, before the calling thread's lane is looked up
        // and its role recorded (a claim records it before it announces anything; a receive
        // that waits, before it waits).
        let (failure, found) = match first {
            Ok(seen) => {
                let Some(me) = self.cached_claimer(participant::ROLE_RECEIVER) else {
                    return self.claim_recv_uncached(max, deadline, accept);
                };
                let claimed = ring.claim_recv_after(seen, me, max, |pos| {
                    self.accept(ring.slots.slot(pos), &accept)
                });
                if ring.recycled.get() > 0 {
                    // Tombstones freed on the way: each is a slot given back to the producers.
                    self.wake(&self.header().send_wait.0);
                }
                match claimed {
                    Ok(claim) => {
                        pause_point("recv-claimed");
                        return Ok((claim, me));
                    }
                    Err(e) => (e, Some(me)),
                }
            }
            // The first look frees no tombstone: nothing to wake.
            Err(e) => (e, None),
        };
        match failure {
            // Empty, but perhaps because of the dead: only if recovery changed something, look
            // again (the rest of the slow path).
            ClaimError::WouldBlock
                if matches!(deadline, Deadline::Now)
                    && !self.unstick_at(ring.blocked_by.get(), false, &self.recv_watch) =>
            {
                Err(Error::Empty)
            }
            e => self.claim_recv_cold(e, max, deadline, found, accept),
        }
    }

    /// [`claim_recv_slow`](Self::claim_recv_slow) with `accept` taken by value: the fast path
    /// hands over what the closure holds in registers, where a reference would make it build
    /// the closure on its stack before every claim.
    #[cold]
    #[inline(never)]
    fn claim_recv_cold<'q>(
        &'q self,
        first: ClaimError,
        max: u64,
        deadline: Deadline,
        found: Option<Claimer<'q>>,
        accept: impl Fn(usize) -> bool,
    ) -> Result<(Claim, Claimer<'q>)> {
        self.claim_recv_slow(Some(first), max, deadline, found, &accept)
    }

    /// [`claim_recv_after_look`](Self::claim_recv_after_look) for a thread whose claimer is
    /// not at hand (see [`cached_claimer`](Self::cached_claimer)): the whole claim, after the
    /// lookup, from a fresh look (the first is stale by now).
    #[cold]
    #[inline(never)]
    fn claim_recv_uncached(
        &self,
        max: u64,
        deadline: Deadline,
        accept: impl Fn(usize) -> bool,
    ) -> Result<(Claim, Claimer<'_>)> {
        self.claim_recv_slow(None, max, deadline, None, &accept)
    }

    /// Whether a receive takes the message in `slot`, asked before claiming it: `accept` sees
    /// its length. Starts fetching the payload meanwhile.
    #[inline]
    fn accept(&self, slot: &SlotHeader, accept: &impl Fn(usize) -> bool) -> bool {
        let len = slot.len.load(Ordering::Relaxed) as usize;
        self.mapping.prefetch_payload(slot, len);
        accept(len)
    }

    /// The rest of a receive's claim after its first attempt failed with `first`, or the whole
    /// claim if `first` is `None`. `found` is the claimer the first attempt used, if it needed
    /// one.
    #[cold]
    fn claim_recv_slow<'q>(
        &'q self,
        first: Option<ClaimError>,
        max: u64,
        deadline: Deadline,
        found: Option<Claimer<'q>>,
        accept: &dyn Fn(usize) -> bool,
    ) -> Result<(Claim, Claimer<'q>)> {
        // The claimer for the attempts below, if the first look did not need one: a receive
        // that waits records its role here, before it waits.
        let me = match found {
            Some(me) => me,
            None => self.claimer_as(participant::ROLE_RECEIVER)?,
        };
        let ring = self.ring();
        // Sweeps before `Closed`, at most `SETTLES` per call: a sweep that always changes
        // something (a hostile writer) must not keep a receive looping.
        let mut settles = 0;
        let mut settle = || {
            settles += 1;
            settles <= SETTLES && self.settle_before_closed()
        };
        let mut attempt = || loop {
            let result = ring.claim_recv(me, max, |pos| self.accept(ring.slots.slot(pos), &accept));
            if ring.recycled.get() > 0 {
                ring.recycled.set(0);
                self.wake(&self.header().send_wait.0);
            }
            // Closed only once nothing is left, including messages held by dead consumers: if
            // a slot is still held, sweep, and look again if that gave any back.
            if result == Err(ClaimError::Closed) && settle() {
                continue;
            }
            return result;
        };
        let first = match first {
            None => attempt(),
            Some(ClaimError::Closed) if self.settle_before_closed() => attempt(),
            Some(failure) => Err(failure),
        };
        let attempt = &mut attempt;
        let header = self.header();
        let head = &header.head.0.head;
        let mut result = first;
        if result == Err(ClaimError::Busy) && matches!(deadline, Deadline::Now) {
            result = self.wait_out_busy(head, &self.recv_watch, attempt);
        }
        let result = match result {
            // The fast path found the queue empty, and recovery changed something: look again.
            // (From `claim_recv_uncached`, the first attempt above found it empty; this second
            // look is the one that path has always made, with no stuck-claim check before it.)
            Err(ClaimError::WouldBlock) if matches!(deadline, Deadline::Now) => attempt(),
            Err(ClaimError::WouldBlock | ClaimError::Busy) => self.wait_for_claim(
                &header.recv_wait.0,
                0,
                &header.counters.0.empty_waits,
                deadline,
                attempt,
            ),
            other => other,
        };
        match result {
            Ok(claim) => {
                pause_point("recv-claimed");
                Ok((claim, me))
            }
            Err(ClaimError::WouldBlock | ClaimError::Busy) => match deadline {
                Deadline::Now => Err(Error::Empty),
                _ => Err(Error::Timeout),
            },
            Err(ClaimError::Rejected(pos)) => Err(Error::BufferTooSmall {
                needed: self.mapping.slot(pos).len.load(Ordering::Relaxed) as usize,
            }),
            Err(e) => Err(claim_error(Some(e))),
        }
    }

    /// The message at a claimed position, after checking its length against the maximum.
    ///
    /// On a corrupt length the slot is released (the message is unreadable) and `Corrupt`
    /// returned.
    fn message(&self, pos: u64) -> Result<&[u8]> {
        self.mapping
            .message(pos)
            .map_err(|len| self.drop_corrupt(pos, len))
    }

    /// A claimed message whose length is corrupt: frees its slot (the message is unreadable)
    /// and says what was wrong.
    #[cold]
    fn drop_corrupt(&self, pos: u64, len: usize) -> Error {
        self.ring().release(pos);
        self.wake(&self.header().send_wait.0);
        Error::corrupt(format!(
            "message length {len} exceeds the maximum message size {}",
            self.max_message_size()
        ))
    }

    /// Releases a claimed position and wakes senders that wait for room.
    #[inline]
    fn release(&self, claim: Claim) {
        self.release_on(&self.ring(), claim)
    }

    /// As [`release`](Self::release), on `ring` (one of this queue's, see `recv_with`).
    #[inline(always)]
    fn release_on<S: SlotStates>(&self, ring: &Ring<'_, S>, claim: Claim) {
        for pos in claim.positions() {
            ring.release(pos);
        }
        self.wake(&self.header().send_wait.0);
    }

    /// Receives one message into `buf`. With `META`, the result carries the message's delivery
    /// count, id and origin; without, only its `len` is meaningful (the rest is zero), and the
    /// receive reads nothing else from the slot.
    #[inline(always)]
    fn recv_with<const META: bool>(&self, buf: &mut [u8], deadline: Deadline) -> Result<Received> {
        // One ring for the whole receive, as in `send_with`.
        match self.mapping.ring_by_mask() {
            Some(ring) => self.recv_on::<true, META>(&ring, buf, deadline),
            None => self.recv_on::<false, META>(&self.ring(), buf, deadline),
        }
    }

    #[inline(always)]
    fn recv_on<const BY_MASK: bool, const META: bool>(
        &self,
        ring: &Ring<'_, MappedSlots<'_, BY_MASK>>,
        buf: &mut [u8],
        deadline: Deadline,
    ) -> Result<Received> {
        let (claim, _) = self.claim_recv_on(ring, 1, deadline, self.takes(buf))?;
        self.recv_claimed::<BY_MASK, META>(ring, buf, claim)
    }

    /// Whether a message of a length fits `buf`, for a receive's `accept`. A length beyond the
    /// maximum is corrupt, not a reason to keep the message queued (no buffer could take it):
    /// it is claimed, so that `message` frees the slot and says `Corrupt`.
    #[inline(always)]
    fn takes(&self, buf: &[u8]) -> impl Fn(usize) -> bool {
        let capacity = buf.len();
        let max = self.max_message_size();
        move |len| len <= capacity || len > max
    }

    /// The rest of a receive into `buf`, once it has claimed a message on `ring`: copies it out
    /// and releases the slot. With `META`, see `recv_with`.
    #[inline(always)]
    fn recv_claimed<const BY_MASK: bool, const META: bool>(
        &self,
        ring: &Ring<'_, MappedSlots<'_, BY_MASK>>,
        buf: &mut [u8],
        claim: Claim,
    ) -> Result<Received> {
        // A claim of one position (at most `max` 1); saying so spares the release a loop.
        debug_assert_eq!(claim.count, 1);
        let pos = claim.first;
        let msg = ring
            .slots
            .message(pos)
            .map_err(|len| self.drop_corrupt(pos, len))?;
        let len = msg.len();
        let (deliveries, id, origin) = if META {
            let slot = ring.slots.slot(pos);
            (
                slot.deliveries.load(Ordering::Relaxed).saturating_add(1),
                slot.id.load(Ordering::Relaxed),
                crate::options::Origin::from_words(
                    slot.origin.load(Ordering::Relaxed),
                    slot.origin_id.load(Ordering::Relaxed),
                ),
            )
        } else {
            Default::default()
        };
        // `accept` saw a length that fits before the claim; only a hostile writer changes it.
        let fits = len <= buf.len();
        if fits {
            buf[..len].copy_from_slice(msg);
        }
        self.release_on(
            ring,
            Claim {
                first: pos,
                count: 1,
            },
        );
        if fits {
            Ok(Received {
                len,
                deliveries,
                id,
                origin,
            })
        } else {
            Err(Error::corrupt(
                "message length changed while the message was committed",
            ))
        }
    }

    /// Receives the next message into `buf` if one is ready; returns its length, or `Empty`.
    ///
    /// If `buf` is too short, returns `BufferTooSmall { needed }` and the message stays queued.
    /// Never blocks; makes no system call unless it must wake a sleeping sender, or finds the
    /// slot at the head held by the same claimer for over a millisecond (see [`recover`](Self::recover)).
    pub fn try_recv(&self, buf: &mut [u8]) -> Result<usize> {
        self.recv_one(buf, Deadline::Now)
    }

    /// Receives one message into `buf`: the common case inline, the rest out of line (see
    /// [`recv_one_on`](Self::recv_one_on)).
    #[inline(always)]
    fn recv_one(&self, buf: &mut [u8], deadline: Deadline) -> Result<usize> {
        // One ring for the whole receive, as in `send_with`.
        match self.mapping.ring_by_mask() {
            Some(ring) => self.recv_one_on(&ring, buf, deadline),
            None => self.recv_one_on(&self.ring(), buf, deadline),
        }
    }

    /// The common receive inline: the calling thread's claimer at hand, a committed message
    /// at the head that fits `buf`, and a CAS that wins ([`Ring::claim_recv_one`]). Anything
    /// else starts the receive over out of line ([`recv_slow`](Self::recv_slow)), so that the
    /// values the claim loop's rare cases need cost this one nothing (callgrind, a `try_send`
    /// and a `try_recv`: 288 instructions with the loop inline, 271 without). A non-blocking
    /// receive on an empty queue ends at the first look.
    #[inline(always)]
    fn recv_one_on<const BY_MASK: bool>(
        &self,
        ring: &Ring<'_, MappedSlots<'_, BY_MASK>>,
        buf: &mut [u8],
        deadline: Deadline,
    ) -> Result<usize> {
        let first = ring.look_recv();
        if first == Err(ClaimError::WouldBlock) && matches!(deadline, Deadline::Now) {
            // The common empty poll ends here, with nothing else looked up. (Returned here
            // rather than from `claim_recv_after_look`, the `Error` is not copied out of the
            // value all the receive's failures share: measured, 25 instructions a poll.) The
            // slot at the head is `EMPTY(head)` (`look_recv` says `WouldBlock` for nothing
            // else): it names no claimer, so the stuck-claim watch has nothing to look at
            // (`recovery::stuck` would return false at once); only lapsed holds remain.
            if !self.idle_poll() {
                return Err(Error::Empty);
            }
            return self.try_recv_after_recovery(buf);
        }
        let claimed = match first {
            Ok(seen) => self
                .cached_claimer(participant::ROLE_RECEIVER)
                .and_then(|me| {
                    let accept = self.takes(buf);
                    ring.claim_recv_one(seen, me, |pos| self.accept(ring.slots.slot(pos), &accept))
                }),
            Err(_) => None,
        };
        let Some(pos) = claimed else {
            return self.recv_slow(buf, deadline);
        };
        pause_point("recv-claimed");
        let claim = Claim {
            first: pos,
            count: 1,
        };
        self.recv_claimed::<BY_MASK, false>(ring, buf, claim)
            .map(|r| r.len)
    }

    /// A receive whose common case did not apply: the whole receive, from a fresh look.
    #[cold]
    #[inline(never)]
    fn recv_slow(&self, buf: &mut [u8], deadline: Deadline) -> Result<usize> {
        self.recv_with::<false>(buf, deadline).map(|r| r.len)
    }

    /// The rest of a `try_recv` that found the queue empty, but perhaps because of the dead,
    /// after recovery changed something: looks again, as `claim_recv` does then.
    #[cold]
    fn try_recv_after_recovery(&self, buf: &mut [u8]) -> Result<usize> {
        let accept = self.takes(buf);
        let (claim, _) = self.claim_recv_slow(
            Some(ClaimError::WouldBlock),
            1,
            Deadline::Now,
            None,
            &accept,
        )?;
        self.recv_claimed::<false, false>(&self.ring(), buf, claim)
            .map(|r| r.len)
    }

    /// Receives the next message into `buf`, waiting while the queue is empty. Returns `Closed`
    /// once the queue is closed and drained.
    pub fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        self.recv_one(buf, Deadline::Never)
    }

    /// Receives the next message into `buf`, waiting at most `timeout`.
    pub fn recv_timeout(&self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        self.recv_one(buf, Deadline::after(timeout))
    }

    /// Like [`try_recv`](Self::try_recv), and also says how many times the message has been
    /// delivered (more than 1 when earlier consumers died holding it).
    pub fn try_recv_meta(&self, buf: &mut [u8]) -> Result<Received> {
        self.recv_with::<true>(buf, Deadline::Now)
    }

    /// Like [`recv`](Self::recv), with the message's delivery count.
    pub fn recv_meta(&self, buf: &mut [u8]) -> Result<Received> {
        self.recv_with::<true>(buf, Deadline::Never)
    }

    /// Like [`recv_timeout`](Self::recv_timeout), with the message's delivery count.
    pub fn recv_meta_timeout(&self, buf: &mut [u8], timeout: Duration) -> Result<Received> {
        self.recv_with::<true>(buf, Deadline::after(timeout))
    }

    fn recv_in_place_with(&self, deadline: Deadline) -> Result<RecvGuard<'_>> {
        let (claim, me) = self.claim_recv(1, deadline, |_| true)?;
        let msg = self.message(claim.first)?;
        // Held beyond this call: peers do not wait for it (see `ring`, "Exact Empty and Full").
        // With a visibility timeout, the hold gets its lease before the `LENT` stamp (whose
        // `Release` store publishes it to survivors; see `lease`).
        let lease = match self.mapping.visibility_timeout_ns() {
            0 => {
                self.ring().hold(claim.first, me.token, Side::Recv);
                None
            }
            timeout_ns => Some(lease::begin_hold(
                &self.ring(),
                &self.mapping.slot(claim.first).lease,
                claim.first,
                me.token,
                recovery::monotonic_ms(),
                timeout_ns.div_ceil(1_000_000),
            )),
        };
        self.hold_begin();
        Ok(RecvGuard {
            queue: self,
            pos: claim.first,
            msg,
            holder: me.token,
            lease,
            finished: false,
        })
    }

    /// Claims the next message and lends it in place, without copying; the slot is freed when
    /// the guard drops. `Empty` if none is ready.
    pub fn try_recv_in_place(&self) -> Result<RecvGuard<'_>> {
        self.recv_in_place_with(Deadline::Now)
    }

    /// Like [`try_recv_in_place`](Self::try_recv_in_place), waiting while the queue is empty.
    pub fn recv_in_place(&self) -> Result<RecvGuard<'_>> {
        self.recv_in_place_with(Deadline::Never)
    }

    /// Like [`recv_in_place`](Self::recv_in_place), waiting at most `timeout`.
    pub fn recv_in_place_timeout(&self, timeout: Duration) -> Result<RecvGuard<'_>> {
        self.recv_in_place_with(Deadline::after(timeout))
    }

    fn recv_batch_with(
        &self,
        max: usize,
        deadline: Deadline,
        each: impl FnMut(&[u8]),
    ) -> Result<usize> {
        if max == 0 {
            return Ok(0);
        }
        // One ring for the whole batch, as in `send_with`.
        match self.mapping.ring_by_mask() {
            Some(ring) => self.recv_batch_on(&ring, max, deadline, each),
            None => self.recv_batch_on(&self.ring(), max, deadline, each),
        }
    }

    #[inline(always)]
    fn recv_batch_on<const BY_MASK: bool>(
        &self,
        ring: &Ring<'_, MappedSlots<'_, BY_MASK>>,
        max: usize,
        deadline: Deadline,
        mut each: impl FnMut(&[u8]),
    ) -> Result<usize> {
        let (claim, _) = self.claim_recv_on(ring, max as u64, deadline, |_| true)?;
        let mut corrupt = None;
        for pos in claim.positions() {
            match ring.slots.message(pos) {
                Ok(msg) => each(msg),
                Err(len) => {
                    // Freed by `drop_corrupt`; finish the rest, then report it.
                    corrupt.get_or_insert(self.drop_corrupt(pos, len));
                    continue;
                }
            }
            ring.release(pos);
        }
        self.wake(&self.header().send_wait.0);
        match corrupt {
            Some(e) => Err(e),
            None => Ok(claim.count as usize),
        }
    }

    /// Receives up to `max` ready messages at once, claiming their slots together and moving the
    /// shared cursor once; calls `each` with every message in order, in place. Returns how many
    /// were received (at least 1), or `Empty`.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let q = shmq::Queue::create(dir.path().join("q"), shmq::Options::new(8, 64))?;
    /// q.try_send_batch(&[b"a", b"b", b"c"])?;
    /// let mut got = Vec::new();
    /// assert_eq!(q.try_recv_batch(8, |m| got.push(m.to_vec()))?, 3);
    /// assert_eq!(got, [b"a", b"b", b"c"]);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn try_recv_batch(&self, max: usize, each: impl FnMut(&[u8])) -> Result<usize> {
        self.recv_batch_with(max, Deadline::Now, each)
    }

    /// Like [`try_recv_batch`](Self::try_recv_batch), waiting while the queue is empty.
    pub fn recv_batch(&self, max: usize, each: impl FnMut(&[u8])) -> Result<usize> {
        self.recv_batch_with(max, Deadline::Never, each)
    }

    /// Like [`recv_batch`](Self::recv_batch), waiting at most `timeout`.
    pub fn recv_batch_timeout(
        &self,
        max: usize,
        timeout: Duration,
        each: impl FnMut(&[u8]),
    ) -> Result<usize> {
        self.recv_batch_with(max, Deadline::after(timeout), each)
    }

    /// Closes the queue for every process: sends fail with `Closed` from now on; receivers get
    /// the messages already sent, then `Closed`. Wakes every sleeper. Returns `false` if the
    /// queue was already closed.
    pub fn close(&self) -> bool {
        let first = self.ring().close();
        let header = self.header();
        wait::wake_all(&header.recv_wait.0);
        wait::wake_all(&header.send_wait.0);
        first
    }

    /// Looks for participants that died and resolves what they left behind: abandoned sends
    /// become tombstones, messages held by dead consumers are given back (or dropped, per the
    /// queue's policy), sleeper counts are repaired. Returns whether anything changed.
    ///
    /// Blocked calls do this while they wait, and so do non-blocking calls that find a slot at
    /// a cursor held by the same claimer for over a millisecond. Only a message held by a dead
    /// consumer away from both cursors, in a queue that nobody blocks on, waits for this call
    /// (or until the ring comes round to it): a program that only busy-polls an idle queue
    /// calls it now and then. It makes one `fcntl` per participant, to ask the kernel who is
    /// alive.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let q = shmq::Queue::create(dir.path().join("q"), shmq::Options::new(8, 64))?;
    /// // Nobody has died: nothing to do.
    /// assert!(!q.recover());
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn recover(&self) -> bool {
        let swept = self.sweep();
        swept | self.expire()
    }

    /// Whether the queue is closed.
    pub fn is_closed(&self) -> bool {
        self.ring().is_closed()
    }

    /// A snapshot of the queue's configuration, counters and participants (who holds which
    /// slots included). It reads every slot's state word, so it costs in proportion to the
    /// capacity (and one `fcntl` per participant): a monitoring call, not one for a hot loop.
    pub fn stats(&self) -> Stats {
        let states = (0..u64::from(self.mapping.capacity()))
            .map(|index| self.mapping.slot(index).state.load(Ordering::Relaxed))
            .collect();
        let is_mine = |index| self.liveness.is_mine(index);
        stats::snapshot(stats::Sources {
            geometry: self.mapping.geometry(),
            flags: self.mapping.flags(),
            max_deliveries: self.mapping.max_deliveries(),
            header: self.header(),
            participants: self.participants(),
            states,
            probe: self.liveness.file(),
            is_mine: &is_mine,
        })
    }

    /// A snapshot of the queue at `path` for monitors: needs only read permission, opens no
    /// handle (takes no participant entry, changes nothing in the file) and never maps the file,
    /// so it works on a queue whose participant table is full and cannot be killed by SIGBUS.
    /// The header is validated as `open` does.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("q");
    /// use shmq::{Options, Queue};
    /// let q = Queue::create(&path, Options::new(8, 64))?;
    /// q.send(b"job")?;
    /// let held = q.try_recv_in_place()?;      // a consumer holding a message in place
    /// let stats = Queue::inspect(&path)?;
    /// assert_eq!((stats.sent, stats.received), (1, 1));
    /// assert_eq!(stats.participants.len(), 1); // `q` only: inspecting registers nothing
    /// assert_eq!(stats.participants[0].holding, 1);
    /// assert_ne!(stats.participants[0].holding_since_unix_ns, 0);
    /// drop(held);
    /// assert_eq!(Queue::inspect(&path)?.participants[0].holding, 0);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn inspect(path: impl AsRef<Path>) -> Result<Stats> {
        stats::inspect(path.as_ref())
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // Async waits and `Select`s on this handle that were leaked leave cells in the reactor,
        // which reads our mapping: take them out (and uncount their sleepers) first.
        let (address, len) = self.mapping.span();
        crate::reactor::forget_mapping(address, len);
        // Claims still held now belong to guards that were leaked (`mem::forget`): resolve them
        // as a survivor would (the sends abandoned, the messages given back).
        let lanes = self.lanes.all();
        if recovery::abandon_own_claims(self.survivor(), &lanes) {
            for lane in lanes {
                participant::deregister(self.participants(), lane);
            }
        }
        // Otherwise a message found no room to be given back. Our entry stays marked in use:
        // once our file description closes (`liveness`, dropped after this) its lock is gone
        // and it looks exactly like a dead participant's, so the next sweep resolves what is
        // left, as crash recovery would. Releasing it here would make the claim unattributable
        // and the message lost.
    }
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("path", &self.path)
            .field("capacity", &self.capacity())
            .field("max_message_size", &self.max_message_size())
            .finish_non_exhaustive()
    }
}

/// Sending in two steps without a guard, for `topic`: a publish claims a slot in every `Block`
/// subscription before it writes any (all or nothing), and must cost no more than the sends it
/// stands for, so it skips what a `SendGuard` adds for monitors (the holding stamp): like
/// `send`'s, these claims live only inside one call.
impl Queue {
    /// Claims one slot to write, waiting at most `timeout` for room (`None`: not at all).
    pub(crate) fn claim_slot(&self, timeout: Option<Duration>) -> Result<u64> {
        let deadline = timeout.map_or(Deadline::Now, Deadline::after);
        self.claim_send(1, deadline).map(|(claim, _)| claim.first)
    }

    /// Writes `msg` into the slot claimed at `pos` and publishes it; `TooLarge` (and the slot
    /// still claimed) if it does not fit.
    pub(crate) fn publish_slot(&self, pos: u64, msg: &[u8]) -> Result<()> {
        self.mapping.check_len(msg.len())?;
        self.mapping.write(pos, msg);
        self.ring().publish(pos);
        self.wake(&self.header().recv_wait.0);
        Ok(())
    }

    /// Gives up the slot claimed at `pos`: receivers skip it (counted in `cancelled_sends`).
    pub(crate) fn cancel_slot(&self, pos: u64) {
        self.ring().cancel(pos);
        let counters = &self.header().counters.0;
        counters.cancelled_sends.fetch_add(1, Ordering::Relaxed);
        self.wake(&self.header().recv_wait.0);
    }

    /// The header's option flags, as validated on open (for `channel`).
    pub(crate) fn flags(&self) -> u32 {
        self.mapping.flags()
    }
}

/// Spins before a non-blocking call waiting out a claim in progress starts yielding the CPU.
const BUSY_SPINS: u32 = 128;
/// Longest a non-blocking call waits for a claim in progress at its cursor before it reports
/// `Empty` or `Full` anyway. A live claimer finishes within microseconds unless it is
/// descheduled or stopped, and a dead one is found by recovery within `recovery::STUCK_NS`; on
/// a heavily oversubscribed machine a runnable claimer can wait for a CPU for over 100 ms
/// (measured: the linearizable test with 50 runnable threads on 2 cores). Only the first call
/// that meets a given stuck claim waits: later ones report at once (see `wait_out_busy`).
const BUSY_PATIENCE: Duration = Duration::from_secs(1);

/// Most sweeps one receive runs before it reports `Closed` (see `claim_recv_slow`).
const SETTLES: u32 = 4;

/// Records `role` in a participant entry, once (a load, when it is already recorded).
#[inline]
fn record_role(entry: &Participant, role: u32) {
    if entry.roles.load(Ordering::Relaxed) & role == 0 {
        entry.roles.fetch_or(role, Ordering::Relaxed);
    }
}

fn claim_error(e: Option<ClaimError>) -> Error {
    match e {
        Some(ClaimError::Closed) => Error::Closed,
        Some(ClaimError::Corrupt(what)) => Error::corrupt(what),
        Some(ClaimError::WouldBlock)
        | Some(ClaimError::Busy)
        | Some(ClaimError::Rejected(_))
        | None => Error::corrupt("claim failed without a reason"),
    }
}

/// Writes a fresh header and slot states into a zeroed mapping of `geometry.file_len` bytes.
///
/// # Safety
/// `base` must point to a writable, page-aligned mapping of at least `geometry.file_len` bytes
/// that no other process can see yet.
unsafe fn init_file(base: *mut u8, geometry: &Geometry, options: &Options) {
    // SAFETY (for the whole body): the caller guarantees exclusive access to a large enough,
    // aligned mapping; `Header` and `SlotHeader` lie inside it at the geometry's offsets, and
    // the zero bytes of a newly allocated file are valid atomics and integers.
    unsafe {
        let header = &mut *(base as *mut Header);
        let mut flags = match options.on_consumer_death {
            OnConsumerDeath::Redeliver => 0,
            OnConsumerDeath::Drop => FLAG_DROP_ON_CONSUMER_DEATH,
        };
        if options.allow_other_access {
            flags |= FLAG_ALLOW_OTHER_ACCESS;
        }
        if options.close_when_producers_gone {
            flags |= crate::layout::FLAG_CLOSE_WHEN_PRODUCERS_GONE;
        }
        header.identity.0 = geometry.identity(
            participant::unix_now_ns(),
            flags,
            options.max_deliveries,
            options
                .visibility_timeout
                .map_or(0, |timeout| timeout.as_nanos() as u64),
        );
        header.dead_letter_queue = match &options.dead_letter_queue {
            Some(path) => DeadLetterPath::encode(path).expect("validated by Options::validate"),
            None => DeadLetterPath::none(),
        };
        header.redrive.0.position.store(u64::MAX, Ordering::Relaxed);
        for index in 0..u64::from(geometry.capacity) {
            let slot = &*(base.add(
                geometry.slots_offset as usize + index as usize * geometry.slot_stride as usize,
            ) as *const SlotHeader);
            slot.state
                .store(ring::empty_state(index), Ordering::Relaxed);
        }
    }
}

/// A slot reserved for writing a message in place. Derefs to the slot's payload area
/// (`max_message_size` bytes); [`commit`](Self::commit) publishes the first `len` bytes.
/// Dropping the guard without committing cancels the send: receivers skip the slot.
pub struct SendGuard<'q> {
    queue: &'q Queue,
    pos: u64,
    committed: bool,
    /// Deliveries of this message that happened before it was sent (see `set_deliveries`).
    earlier_deliveries: u32,
    /// For a dead-lettered message: its source queue's identity and its id there (see
    /// `set_origin`); `(0, 0)` otherwise.
    origin: (u64, u64),
}

impl SendGuard<'_> {
    /// Publishes the first `len` bytes written as one message.
    pub fn commit(mut self, len: usize) -> Result<()> {
        self.prepare(len)?;
        self.publish_prepared();
        Ok(())
    }

    /// Writes the metadata of the message (its first `len` bytes written) without publishing
    /// it: the slot stays reserved, and the message complete in it. `redrive` records the
    /// position (returned) as committed before it publishes (see `redrive`).
    pub(crate) fn prepare(&mut self, len: usize) -> Result<u64> {
        self.queue.mapping.check_len(len)?;
        let slot = self.queue.mapping.slot(self.pos);
        self.queue.mapping.write_meta(slot, self.pos, len);
        if self.earlier_deliveries != 0 {
            slot.deliveries
                .store(self.earlier_deliveries, Ordering::Relaxed);
        }
        if self.origin != (0, 0) {
            slot.origin.store(self.origin.0, Ordering::Relaxed);
            slot.origin_id.store(self.origin.1, Ordering::Relaxed);
        }
        Ok(self.pos)
    }

    /// Publishes a message written by [`prepare`](Self::prepare).
    pub(crate) fn publish_prepared(mut self) {
        self.queue.ring().publish(self.pos);
        self.committed = true;
        self.queue.wake(&self.queue.header().recv_wait.0);
    }

    /// Records where a dead-lettered message came from (see [`Origin`](crate::Origin)):
    /// written by the next `prepare` or `commit`.
    pub(crate) fn set_origin(&mut self, queue: u64, id: u64) {
        self.origin = (queue, id);
    }
}

impl SendGuard<'_> {
    /// Says that this message was already delivered `deliveries - 1` times before it came into
    /// this queue (a bridge importing it from a system that redelivers, such as NATS
    /// JetStream): its receivers see `deliveries` (or more, if consumers die holding it) in
    /// [`RecvGuard::deliveries`] and [`Received::deliveries`], as they would for a message this
    /// queue redelivered. 0 and 1 both mean a first delivery.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let q = shmq::Queue::create(dir.path().join("q"), shmq::Options::new(8, 64))?;
    /// let mut slot = q.try_reserve()?;
    /// slot[..3].copy_from_slice(b"job");
    /// slot.set_deliveries(3);
    /// slot.commit(3)?;
    /// assert_eq!(q.try_recv_in_place()?.deliveries(), 3);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn set_deliveries(&mut self, deliveries: u32) {
        self.earlier_deliveries = deliveries.saturating_sub(1);
    }
}

impl std::ops::Deref for SendGuard<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the slot is claimed by us until commit or drop (ring invariant 3); its payload
        // area is `max_message_size` bytes inside the mapping, which outlives `'q`.
        unsafe {
            std::slice::from_raw_parts(
                self.queue.mapping.payload(self.pos),
                self.queue.max_message_size(),
            )
        }
    }
}

impl std::ops::DerefMut for SendGuard<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `deref`; `&mut self` makes this the only borrow of the payload area.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.queue.mapping.payload(self.pos),
                self.queue.max_message_size(),
            )
        }
    }
}

impl Drop for SendGuard<'_> {
    fn drop(&mut self) {
        self.queue.hold_end();
        if !self.committed {
            let q = self.queue;
            q.ring().cancel(self.pos);
            q.header()
                .counters
                .0
                .cancelled_sends
                .fetch_add(1, Ordering::Relaxed);
            q.wake(&q.header().recv_wait.0);
        }
    }
}

/// A received message lent in place. Derefs to the payload; the slot is freed for producers
/// when the guard is acknowledged ([`ack`](Self::ack)) or dropped.
///
/// In a queue with a visibility timeout ([`Options::visibility_timeout`]), the hold lapses at
/// its deadline: the next scan for lapsed holds (within 100 ms) hands the message out again
/// (its delivery count raised), and this guard's [`ack`](Self::ack) and
/// [`extend`](Self::extend) then say `Expired`. Until a scan took it, the hold is still the
/// guard's. Its bytes stay valid, and its slot out of the ring's use, until the guard is gone.
pub struct RecvGuard<'q> {
    queue: &'q Queue,
    pos: u64,
    msg: &'q [u8],
    /// The token of the lane that holds it (stamped in its `LENT` state word).
    holder: u32,
    /// The hold's side of its lease (see `lease`); `None` without a visibility timeout.
    lease: Option<lease::Hold>,
    /// Acknowledged already (by `ack`): nothing left for `drop`.
    finished: bool,
}

impl RecvGuard<'_> {
    /// How many times a consumer has claimed this message, this delivery included (1 on the
    /// first delivery).
    pub fn deliveries(&self) -> u32 {
        self.queue
            .mapping
            .failed_deliveries(self.pos)
            .saturating_add(1)
    }

    /// The message's id: unique within this queue file, and the same on every delivery of the
    /// message (see [`Received::id`]).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let q = shmq::Queue::create(dir.path().join("q"), shmq::Options::new(8, 64))?;
    /// q.send(b"a")?;
    /// q.send(b"b")?;
    /// let first = q.try_recv_in_place()?.id();
    /// let second = q.try_recv_in_place()?.id();
    /// assert_ne!(first, second);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn id(&self) -> u64 {
        self.queue.mapping.slot(self.pos).id.load(Ordering::Relaxed)
    }

    /// Acknowledges (deletes) the message: its slot is freed for producers. `Err(Expired)` if
    /// the queue's visibility timeout passed and the message was handed out again before this
    /// call (or is being handed out; or an earlier [`extend`](Self::extend) said `Expired`):
    /// another consumer may be doing the same work, and this call deletes nothing. For each
    /// hold exactly one of the two happens. A hold whose deadline passed but that nobody took
    /// over yet is still this guard's: acknowledged. Dropping the guard acknowledges it too,
    /// ignoring the result.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # let dir = tempfile::tempdir().unwrap();
    /// let options = shmq::Options::new(8, 64).visibility_timeout(Duration::from_secs(30));
    /// let q = shmq::Queue::create(dir.path().join("jobs"), options)?;
    /// q.send(b"job")?;
    /// let job = q.try_recv_in_place()?;
    /// // ... do the work ...
    /// job.ack()?; // within 30 s: done, and nobody else got it
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn ack(mut self) -> Result<()> {
        self.finished = true;
        self.finish()
    }

    /// Resets the hold's timer: the message stays this guard's for `timeout` from now (a
    /// heartbeat for long work; `Duration::ZERO` gives it up at the next scan, as SQS's
    /// visibility of 0 does). `Err(Expired)` if the message was handed out again (or is being
    /// handed out): then the guard's [`ack`](Self::ack) says `Expired` too and deletes nothing.
    /// A hold whose deadline passed but that nobody took over yet is still this guard's:
    /// extended. In a queue without a visibility timeout a hold never lapses, and this does
    /// nothing.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let options = shmq::Options::new(8, 64).visibility_timeout(Duration::from_secs(30));
    /// # let q = shmq::Queue::create(dir.path().join("jobs"), options)?;
    /// # q.send(b"job")?;
    /// let job = q.try_recv_in_place()?;
    /// job.extend(Duration::from_secs(60))?; // a minute more
    /// job.ack()?;
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn extend(&self, timeout: Duration) -> Result<()> {
        let Some(hold) = &self.lease else {
            return Ok(());
        };
        if timeout > crate::options::MAX_VISIBILITY_TIMEOUT {
            return Err(Error::InvalidOptions(format!(
                "a hold can be extended by at most {:?}, not {timeout:?}",
                crate::options::MAX_VISIBILITY_TIMEOUT
            )));
        }
        hold.extend(
            &self.queue.mapping.slot(self.pos).lease,
            recovery::monotonic_ms(),
            timeout.as_millis() as u64,
        )
        .map(|_| ())
        .ok_or(Error::Expired)
    }

    /// Lets go of the hold: acknowledges the message if the hold is still ours, frees the slot.
    fn finish(&mut self) -> Result<()> {
        let queue = self.queue;
        queue.hold_end();
        let Some(hold) = &self.lease else {
            queue.release(Claim {
                first: self.pos,
                count: 1,
            });
            return Ok(());
        };
        // Acknowledged, or (handed out again) let go: see `lease`.
        let acked = hold.finish(
            &queue.ring(),
            &queue.mapping.slot(self.pos).lease,
            self.pos,
            self.holder,
        );
        queue.wake(&queue.header().send_wait.0);
        if acked {
            Ok(())
        } else {
            Err(Error::Expired)
        }
    }

    /// Where this message came from, if a queue dead-lettered it into this one (see
    /// [`Origin`](crate::Origin)); `None` for any other message.
    pub fn origin(&self) -> Option<crate::Origin> {
        let slot = self.queue.mapping.slot(self.pos);
        crate::options::Origin::from_words(
            slot.origin.load(Ordering::Relaxed),
            slot.origin_id.load(Ordering::Relaxed),
        )
    }
}

impl std::ops::Deref for RecvGuard<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.msg
    }
}

impl Drop for RecvGuard<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.finish();
        }
    }
}

// Compile-time check of the promise in the docs.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Queue>();
};
