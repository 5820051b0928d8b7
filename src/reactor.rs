// SPDX-License-Identifier: MIT OR Apache-2.0
//! The reactor: helper threads that sleep on the wait words of every queue some task or
//! [`Select`](crate::Select) waits on, and wake those waiters' [`Waker`]s when a word's epoch
//! moves. It is what makes the async calls work under any executor, with no runtime dependency.
//!
//! # Waiting through the reactor
//! A waiter follows the protocol of `wait` exactly, with the helper thread doing the sleeping:
//! 1. it counts itself as a sleeper (`Waiter::register`: the shared word and this participant's
//!    record, so crash recovery repairs the count if the process dies, and never forgets a live
//!    one), executes a `SeqCst` fence and tries its operation once more;
//! 2. it then hands the reactor a [`Cell`]: the word, the epoch it registered under, its waker.
//!    The reactor checks the epoch under its lock before taking the cell, so a wake that came
//!    in between is never missed;
//! 3. a helper thread, asleep in `futex_waitv` on up to [`WORDS_PER_THREAD`] words, wakes when
//!    any of them is woken (`wake_if_sleeping` bumps the epoch, then `FUTEX_WAKE`s: the helper
//!    is a real kernel sleeper on the word), and *fires* every cell whose epoch has moved. It
//!    sleeps on the very value it checked the cells against (`settle`), so a bump after the
//!    check makes the kernel return at once rather than sleep through it.
//!
//! Whoever takes a cell out of the reactor (the helper firing it, the future or `Select`
//! dropping it, or the `Queue` being dropped) uncounts its sleeper, under the reactor's lock:
//! the count is held exactly while the cell is in the reactor, whatever happens to the future
//! (dropped at any point, or even leaked with `mem::forget`).
//!
//! A cell also carries a deadline, [`SLICE`] (one second) after it was taken: the helper fires
//! it then, so that the waiter runs crash recovery (`recovery::maybe_sweep`) as a blocked call
//! does between its sleep slices, and a claim left by a dead process cannot keep it waiting
//! forever.
//!
//! # Threads
//! Helper threads start on demand; one serves up to [`WORDS_PER_THREAD`] (127) distinct words
//! plus its own control word (`futex_waitv` takes at most 128). Waiting on `W` distinct words
//! (a queue's receive side and send side are two words; any number of waiters on one word share
//! it) uses at most `ceil(W / 127)` helpers: 8 for 1,000 queues. (A new helper starts only when
//! every running one serves 127 words, so the bound holds for the most words watched at once;
//! a word stays watched for [`IDLE_EXIT`] after its last waiter left.) A helper left with no
//! word for [`IDLE_EXIT`] exits, so a program that stops waiting asynchronously is
//! single-threaded again (and may fork safely); the next wait starts one again.
//!
//! A child forked by a process with helpers has none: the reactor notices the new process id
//! and starts afresh (the parent's registrations are the parent's to undo). As with any lock,
//! a fork while another thread is inside the reactor is not supported.
//!
//! Kernels before 5.16 have no `futex_waitv` (`ENOSYS`, found by the first helper): each helper
//! then serves one word with `FUTEX_WAIT`, so `W` words use `W` threads. If a helper thread
//! cannot be started, the wait fails with `Error::Io` instead of hanging.

use crate::error::{Error, Result};
use crate::sync::{AtomicU32, Ordering};
use crate::wait::{self, Waiter};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::Waker;
use std::time::{Duration, Instant};

/// `futex_waitv` takes at most this many words (the kernel's `FUTEX_WAITV_MAX`).
const FUTEX_WAITV_MAX: usize = 128;
/// Queue words one helper serves with `futex_waitv`: all but the slot of its control word.
pub(crate) const WORDS_PER_THREAD: usize = FUTEX_WAITV_MAX - 1;
/// How long a cell may stay in the reactor before it is fired for crash recovery.
///
/// Longer than a blocked call's sleep slice (`recovery::SLEEP_SLICE`, 50 ms) because a reactor
/// serves many waiters: each slice costs a wake-up and a sweep per waiter, and 1,000 waiters
/// on 50 ms slices would keep a core several percent busy while every queue is idle. With
/// one second, a waiter notices what a dead process left behind (a message it held, a slot it
/// claimed) within a second and a sweep interval; a blocked call, a non-blocking call stuck at
/// a cursor, or any other sweep of the queue may notice it first.
pub(crate) const SLICE: Duration = Duration::from_secs(1);

/// How a waiter is woken: a task's `Waker`, or a thread parked in `Select`.
pub(crate) enum Wake {
    /// An async task.
    Task(Waker),
    /// A thread blocked in `Select` (unparked).
    Thread(std::thread::Thread),
}

impl Wake {
    fn wake(self) {
        match self {
            Wake::Task(w) => w.wake(),
            Wake::Thread(t) => t.unpark(),
        }
    }
}

/// One waiter's registration with the reactor.
///
/// Invariant: while `fired` is false, the cell is in the reactor's table and its sleeper is
/// counted in `word` (and in `mine`); `fired` turns true, under the reactor's lock, exactly
/// when the cell leaves the table and the count is taken back.
pub(crate) struct Cell {
    /// The wait word (in a queue's mapping).
    word: *const AtomicU32,
    /// The participant's sleeper record and this side's shift in it.
    mine: Option<(*const AtomicU32, u32)>,
    /// The epoch (high bits of the word) the sleeper registered under.
    epoch: u32,
    /// Fire at this instant at the latest (crash recovery).
    deadline: Instant,
    /// Whom to wake, and whether the cell has fired; one lock so a waker replaced by a later
    /// poll cannot miss a firing.
    state: Mutex<CellState>,
}

struct CellState {
    fired: bool,
    wake: Option<Wake>,
}

// SAFETY: the raw pointers point into a queue mapping and are dereferenced only by the reactor,
// under its lock, while the cell is in its table; `Queue::drop` removes every cell of the
// handle (`forget_mapping`) before the mapping goes, so they are valid whenever used.
unsafe impl Send for Cell {}
// SAFETY: as above; the mutable state is behind a `Mutex`.
unsafe impl Sync for Cell {}

impl Cell {
    /// Whether the cell has fired (left the reactor; its sleeper is no longer counted).
    pub(crate) fn fired(&self) -> bool {
        self.lock().fired
    }

    /// Makes `waker` the one to wake (unless it would wake the same task already), unless the
    /// cell has fired; returns whether it had.
    pub(crate) fn rearm(&self, waker: &Waker) -> bool {
        let mut state = self.lock();
        if !state.fired {
            match &state.wake {
                Some(Wake::Task(w)) if w.will_wake(waker) => {}
                _ => state.wake = Some(Wake::Task(waker.clone())),
            }
        }
        state.fired
    }

    /// Whether the cell fired because its deadline passed rather than on a wake.
    pub(crate) fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }

    fn lock(&self) -> MutexGuard<'_, CellState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the cell fired and takes its waker. Called under the reactor's lock, by whoever
    /// removed the cell from the table, right after uncounting its sleeper.
    fn fire(&self) -> Option<Wake> {
        let mut state = self.lock();
        state.fired = true;
        state.wake.take()
    }

    /// The waiter this cell counted (to uncount it).
    ///
    /// # Safety
    /// The cell is in the reactor's table (so the mapping is alive) and the caller holds the
    /// reactor's lock.
    unsafe fn waiter(&self) -> Waiter<'_> {
        // SAFETY: by the caller's promise the mapping is alive for as long as the lock is held,
        // which outlives the returned borrow's use (the caller uses it at once).
        unsafe {
            Waiter {
                word: &*self.word,
                mine: self.mine.map(|(m, shift)| (&*m, shift)),
                slice: None,
            }
        }
    }
}

/// Which mechanism the helpers sleep with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// `futex_waitv` on up to [`WORDS_PER_THREAD`] words.
    Waitv,
    /// No `futex_waitv` (Linux before 5.16): `FUTEX_WAIT` on one word per helper.
    Single,
}

/// One word that waiters wait on, and who waits.
struct Watched {
    /// The helper serving it.
    helper: usize,
    cells: Vec<Arc<Cell>>,
    /// Since when it has had no cell. A word stays watched for [`IDLE_EXIT`] after its last
    /// cell left, so that a task that waits again soon (every message of a ping-pong) finds
    /// its helper asleep on it already, with no hand-over. Watching it costs nothing: with no
    /// cell nobody is counted on it, and wakers skip `FUTEX_WAKE`.
    empty_since: Option<Instant>,
}

struct Helper {
    /// Whether its thread runs (false once it exited idle; the slot is then reused).
    alive: bool,
    /// Bumped (and woken) to make the helper rebuild its set of words.
    control: Arc<AtomicU32>,
    /// Addresses of the words it serves.
    words: Vec<usize>,
}

struct State {
    /// The process these helpers run in (see the module doc on fork).
    pid: u32,
    mode: Mode,
    /// Watched words by address.
    words: HashMap<usize, Watched>,
    helpers: Vec<Helper>,
}

fn reactor() -> &'static Mutex<State> {
    static REACTOR: OnceLock<Mutex<State>> = OnceLock::new();
    REACTOR.get_or_init(|| {
        Mutex::new(State {
            pid: std::process::id(),
            mode: if cfg!(feature = "test-hooks")
                && std::env::var_os("SHMQ_TEST_NO_FUTEX_WAITV").is_some()
            {
                // The tests run the fallback on a kernel that has futex_waitv.
                Mode::Single
            } else {
                // Until a helper finds ENOSYS.
                Mode::Waitv
            },
            words: HashMap::new(),
            helpers: Vec::new(),
        })
    })
}

fn lock() -> MutexGuard<'static, State> {
    let mut state = reactor().lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    if state.pid != pid {
        // A forked child: the helpers were the parent's threads, and so are the registrations
        // (their sleeper counts are the parent's to take back). Start afresh.
        state.pid = pid;
        state.words.clear();
        state.helpers.clear();
    }
    state
}

/// How long a helper with no word to watch waits before its thread exits.
pub(crate) const IDLE_EXIT: Duration = Duration::from_millis(250);

/// How many words one helper may serve in this mode.
fn per_helper(mode: Mode) -> usize {
    match mode {
        Mode::Single => 1,
        Mode::Waitv => WORDS_PER_THREAD,
    }
}

/// When a cell taken at `now` fires for crash recovery: at least [`SLICE`] later, rounded up
/// to a quarter slice, so that the waiters registered within a quarter of a second fire
/// together and their helper wakes once for all of them, not once for each.
fn slice_end(now: Instant) -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    let grid = SLICE.as_nanos() / 4;
    let at = now.saturating_duration_since(origin).as_nanos() + SLICE.as_nanos();
    let rounded = at.div_ceil(grid) * grid;
    origin + Duration::from_nanos(u64::try_from(rounded).unwrap_or(u64::MAX))
}

/// Epoch bits of a wait word.
fn epoch_of(value: u32) -> u32 {
    value & !wait::SLEEPERS_MASK
}

/// Hands a registered sleeper to the reactor: `waiter` has counted itself (`Waiter::register`
/// returned `registered`) and found nothing to do. Returns the cell, or `None` if the epoch
/// moved already (the caller uncounts itself and looks again).
///
/// The waiter's word and record must stay mapped until the cell has fired or the mapping has
/// been forgotten (`forget_mapping`, from `Queue::drop`).
pub(crate) fn park(waiter: &Waiter<'_>, registered: u32, wake: Wake) -> Result<Option<Arc<Cell>>> {
    let mut wake = Some(wake);
    let (mut cells, failed) = park_all(std::slice::from_ref(&(waiter, registered)), || {
        wake.take().expect("one waiter")
    });
    match failed {
        Some(e) => Err(e),
        None => Ok(cells.pop().flatten()),
    }
}

/// [`park`] for several sleepers at once, under one lock (`Select`); `wake` is called once per
/// cell taken. A sleeper whose epoch moved gets `None`, and so does every sleeper from the one
/// for which no helper thread could be started (the error is returned beside): the caller
/// uncounts each `None`.
pub(crate) fn park_all(
    sleepers: &[(&Waiter<'_>, u32)],
    mut wake: impl FnMut() -> Wake,
) -> (Vec<Option<Arc<Cell>>>, Option<Error>) {
    let mut cells = Vec::with_capacity(sleepers.len());
    let mut failed = None;
    let mut notify = Vec::new();
    let mut state = lock();
    let deadline = slice_end(Instant::now());
    for &(waiter, registered) in sleepers {
        if failed.is_some() {
            cells.push(None);
            continue;
        }
        let epoch = epoch_of(registered);
        // Checked under the lock: a helper reads the word under it too, so either it reads
        // after this cell is in (and sees any newer epoch), or this read sees what it saw (see
        // the module doc).
        if epoch_of(waiter.word.load(Ordering::SeqCst)) != epoch {
            cells.push(None);
            continue;
        }
        let addr = waiter.word as *const AtomicU32 as usize;
        let cell = Arc::new(Cell {
            word: waiter.word,
            mine: waiter.mine.map(|(m, shift)| (m as *const AtomicU32, shift)),
            epoch,
            deadline,
            state: Mutex::new(CellState {
                fired: false,
                wake: Some(wake()),
            }),
        });
        if let Some(watched) = state.words.get_mut(&addr) {
            // Its helper sleeps on the word already: the next wake of the word reaches it, and
            // every cell's deadline is later than those before it.
            watched.cells.push(Arc::clone(&cell));
            watched.empty_since = None;
            cells.push(Some(cell));
            continue;
        }
        let limit = per_helper(state.mode);
        let helper = match state
            .helpers
            .iter()
            .position(|h| h.alive && h.words.len() < limit)
        {
            Some(i) => i,
            None => match spawn_helper(&mut state) {
                Ok(i) => i,
                Err(e) => {
                    failed = Some(e);
                    // Not taken: `cell` is dropped here, never having been in the table.
                    cells.push(None);
                    continue;
                }
            },
        };
        state.helpers[helper].words.push(addr);
        state.words.insert(
            addr,
            Watched {
                helper,
                cells: vec![Arc::clone(&cell)],
                empty_since: None,
            },
        );
        if !notify.contains(&helper) {
            notify.push(helper);
        }
        cells.push(Some(cell));
    }
    let controls: Vec<_> = notify
        .iter()
        .map(|&h| Arc::clone(&state.helpers[h].control))
        .collect();
    drop(state);
    for control in controls {
        control.fetch_add(1, Ordering::SeqCst);
        futex_wake_private(&control);
    }
    (cells, failed)
}

/// Takes `cell` out of the reactor if it is still in, uncounting its sleeper (a future or a
/// `Select` that stops waiting). Does nothing if it fired.
pub(crate) fn cancel(cell: &Arc<Cell>) {
    cancel_all(std::slice::from_ref(cell));
}

/// [`cancel`] for several cells, under one lock.
pub(crate) fn cancel_all(cells: &[Arc<Cell>]) {
    let mut state = lock();
    let mut dropped = Vec::new();
    for cell in cells {
        if cell.fired() {
            continue;
        }
        let addr = cell.word as usize;
        if let Some(watched) = state.words.get_mut(&addr) {
            watched.cells.retain(|c| !Arc::ptr_eq(c, cell));
        }
        // SAFETY: not fired, so the cell is in the table and its mapping alive; we hold the
        // lock.
        unsafe { cell.waiter() }.deregister();
        dropped.extend(cell.fire());
    }
    drop(state);
    // Dropped outside the lock: a waker's destructor may do anything.
    drop(dropped);
    // An emptied word stays watched a while (see `Watched::empty_since`).
}

/// Takes every cell on a word inside `[base, base + len)` out of the reactor, uncounting their
/// sleepers. Called by `Queue::drop` before the mapping goes, so that no cell outlives it even
/// when its future was leaked. Costs nothing in a process that never waited asynchronously.
pub(crate) fn forget_mapping(base: usize, len: usize) {
    if REACTOR_STARTED.get().is_none() {
        return;
    }
    let mut fired = Vec::new();
    let mut state = lock();
    let State { words, helpers, .. } = &mut *state;
    words.retain(|&addr, watched| {
        if addr < base || addr >= base + len {
            return true;
        }
        for cell in watched.cells.drain(..) {
            // SAFETY: the cell is in the table and the queue is being dropped, not yet unmapped;
            // we hold the lock.
            unsafe { cell.waiter() }.deregister();
            fired.extend(cell.fire());
        }
        helpers[watched.helper].words.retain(|&a| a != addr);
        // A fallback helper sleeps on this very word: wake it so it moves on (a sleeper of
        // the word elsewhere sees an unchanged epoch and sleeps again).
        // SAFETY: the queue is being dropped, not yet unmapped.
        crate::sync::futex_wake_all(unsafe { &*(addr as *const AtomicU32) });
        false
    });
    drop(state);
    // A leaked future is never polled again; a live one cannot exist (it borrows the queue).
    drop(fired);
}

/// Set once the first helper starts: `forget_mapping` has nothing to do before.
static REACTOR_STARTED: OnceLock<()> = OnceLock::new();

/// Starts a helper thread in the first slot whose thread exited, or a new one.
fn spawn_helper(state: &mut State) -> Result<usize> {
    let index = state
        .helpers
        .iter()
        .position(|h| !h.alive)
        .unwrap_or(state.helpers.len());
    let control = Arc::new(AtomicU32::new(0));
    let theirs = Arc::clone(&control);
    std::thread::Builder::new()
        .name(format!("shmq-reactor-{index}"))
        .spawn(move || helper_loop(index, &theirs))
        .map_err(|e| {
            Error::Io(std::io::Error::new(
                e.kind(),
                format!("cannot start a shmq reactor thread to wait on a queue: {e}"),
            ))
        })?;
    let _ = REACTOR_STARTED.set(());
    let helper = Helper {
        alive: true,
        control,
        words: Vec::new(),
    };
    match state.helpers.get_mut(index) {
        Some(slot) => *slot = helper,
        None => state.helpers.push(helper),
    }
    Ok(index)
}

/// One helper thread: fire what is due, then sleep on the words it serves and its control word.
fn helper_loop(index: usize, control: &AtomicU32) {
    let mut due = Vec::new();
    let mut waitv: Vec<FutexWaitv> = Vec::with_capacity(FUTEX_WAITV_MAX);
    let mut idle_since: Option<Instant> = None;
    let mut exit = false;
    loop {
        let now = Instant::now();
        let mut next_deadline: Option<Instant> = None;
        waitv.clear();
        let expected_control = control.load(Ordering::SeqCst);
        waitv.push(FutexWaitv::private(control, expected_control));
        let mode = {
            let mut state = lock();
            let State {
                words,
                helpers,
                mode,
                ..
            } = &mut *state;
            let Some(me) = helpers.get_mut(index).filter(|h| h.alive) else {
                return; // the process forked: this thread is the parent's (never here)
            };
            let mine = &mut me.words;
            mine.retain(|&addr| {
                let Some(watched) = words.get_mut(&addr) else {
                    return false;
                };
                // SAFETY: `addr` is this word's, in the table; we hold the lock.
                let (end, value) = unsafe { settle(addr, watched, now, &mut due) };
                if let Some(end) = end {
                    next_deadline = Some(next_deadline.map_or(end, |d| d.min(end)));
                }
                // The kernel compares the word with the value its cells were checked against.
                let entry = FutexWaitv::shared(addr, value);
                if !watched.cells.is_empty() {
                    watched.empty_since = None;
                    waitv.push(entry);
                    return true;
                }
                let since = *watched.empty_since.get_or_insert(now);
                if now.duration_since(since) >= IDLE_EXIT {
                    words.remove(&addr);
                    return false;
                }
                let end = since + IDLE_EXIT;
                next_deadline = Some(next_deadline.map_or(end, |d| d.min(end)));
                waitv.push(entry);
                true
            });
            if mine.is_empty() {
                // Nothing to watch: exit once idle for IDLE_EXIT (decided under the lock, so a
                // new word goes to a live helper or starts one).
                let since = *idle_since.get_or_insert(now);
                if now.duration_since(since) >= IDLE_EXIT {
                    me.alive = false;
                    exit = true;
                }
                next_deadline = Some(since + IDLE_EXIT);
            } else {
                idle_since = None;
            }
            *mode
        };
        let woke = !due.is_empty();
        for wake in due.drain(..) {
            wake.wake();
        }
        if woke {
            // Let the woken tasks' threads run before this one re-arms its wait: a
            // `futex_waitv` on 128 words takes microseconds to set up, and on a busy CPU a
            // woken task would otherwise wait for it.
            std::thread::yield_now();
        }
        if exit {
            return;
        }
        let timeout = next_deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if timeout == Some(Duration::ZERO) {
            continue;
        }
        // The words' mappings may go once the lock is released: the kernel then reports a
        // fault (EFAULT) or compares a value that is not the expected one, and the loop looks
        // again; a word that no longer has cells only costs a spurious wake-up.
        match mode {
            Mode::Waitv => match futex_waitv(&waitv, timeout) {
                // Woken on a queue word: fire its tasks first, before looking at every word
                // (up to 127 loads from as many mappings) to rebuild the wait.
                Ok(woken) if woken >= 1 => {
                    let addr = waitv.get(woken).map_or(0, |w| w.uaddr as usize);
                    if let Some(watched) = lock().words.get_mut(&addr) {
                        // SAFETY: `addr` is this word's, in the table; the lock is held.
                        unsafe { settle(addr, watched, Instant::now(), &mut due) };
                    }
                    for wake in due.drain(..) {
                        wake.wake();
                    }
                    std::thread::yield_now();
                }
                Err(libc::ENOSYS) => switch_to_single(),
                _ => {}
            },
            Mode::Single => {
                // One word (or none: then the control word) with FUTEX_WAIT.
                let (entry, private) = match waitv.get(1) {
                    Some(w) => (w, false),
                    None => (&waitv[0], true),
                };
                futex_wait_raw(
                    entry.uaddr as *const u32,
                    entry.val as u32,
                    private,
                    timeout,
                );
            }
        }
    }
}

/// Fires the cells of `watched` whose epoch moved or whose deadline passed (their wakers go to
/// `due`); returns the earliest deadline of those left. Called under the reactor's lock.
///
/// Also returns the word's value that the cells left were checked against: the value to sleep
/// on. It must be that very value, read once: a value read later could carry an epoch bumped
/// (and its `FUTEX_WAKE` already spent) after the check, and the helper would sleep through the
/// wake-up the cells are waiting for.
///
/// # Safety
/// `addr` is the address of the word `watched` is for, which is in the table; the caller holds
/// the reactor's lock.
unsafe fn settle(
    addr: usize,
    watched: &mut Watched,
    now: Instant,
    due: &mut Vec<Wake>,
) -> (Option<Instant>, u32) {
    // SAFETY: a word in the table is in a live mapping (see `forget_mapping`); lock held.
    let word = unsafe { &*(addr as *const AtomicU32) };
    loop {
        let value = word.load(Ordering::SeqCst);
        let mut next = None;
        let mut fired = false;
        watched.cells.retain(|cell| {
            if epoch_of(value) != cell.epoch || now >= cell.deadline {
                // SAFETY: the cell is in the table (its mapping is alive); lock held.
                unsafe { cell.waiter() }.deregister();
                due.extend(cell.fire());
                fired = true;
                false
            } else {
                next = Some(next.map_or(cell.deadline, |d: Instant| d.min(cell.deadline)));
                true
            }
        });
        // Uncounting changed the word: read it again (and fire whatever a newer epoch frees).
        if !fired {
            return (next, value);
        }
    }
}

/// `futex_waitv` is missing (ENOSYS): from now on every helper serves one word. This helper's
/// words beyond the first go to new helpers; if one cannot start, the cells on those words are
/// fired, so their waiters retry (and fail with the error when they park again).
fn switch_to_single() {
    let mut state = lock();
    if state.mode == Mode::Single {
        return;
    }
    state.mode = Mode::Single;
    let mut moved = Vec::new();
    for h in 0..state.helpers.len() {
        while state.helpers[h].words.len() > 1 {
            moved.extend(state.helpers[h].words.pop());
        }
    }
    let mut due = Vec::new();
    for addr in moved {
        let target = match state
            .helpers
            .iter()
            .position(|h| h.alive && h.words.is_empty())
        {
            Some(i) => Some(i),
            None => spawn_helper(&mut state).ok(),
        };
        match target {
            Some(t) => {
                state.helpers[t].words.push(addr);
                if let Some(w) = state.words.get_mut(&addr) {
                    w.helper = t;
                }
                let control = Arc::clone(&state.helpers[t].control);
                control.fetch_add(1, Ordering::SeqCst);
                futex_wake_private(&control);
            }
            None => {
                if let Some(watched) = state.words.remove(&addr) {
                    for cell in watched.cells {
                        // SAFETY: in the table, lock held.
                        unsafe { cell.waiter() }.deregister();
                        due.extend(cell.fire());
                    }
                }
            }
        }
    }
    drop(state);
    for wake in due {
        wake.wake();
    }
}

/// The kernel's `struct futex_waitv` (include/uapi/linux/futex.h): `val`, `uaddr` (both
/// 64-bit whatever the word size), `flags`, and a reserved 32-bit field that must be 0.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct FutexWaitv {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

const _: () = assert!(std::mem::size_of::<FutexWaitv>() == 24);
const _: () = assert!(std::mem::align_of::<FutexWaitv>() == 8);

/// `FUTEX2_SIZE_U32`: the word is 32 bits.
const FUTEX2_SIZE_U32: u32 = 0x02;
/// `FUTEX2_PRIVATE`: the word is private to this process (the control words).
const FUTEX2_PRIVATE: u32 = 128;

impl FutexWaitv {
    /// A queue word, shared between processes (by address: the kernel reads it itself).
    fn shared(addr: usize, val: u32) -> Self {
        FutexWaitv {
            val: u64::from(val),
            uaddr: addr as u64,
            flags: FUTEX2_SIZE_U32,
            reserved: 0,
        }
    }

    /// A control word, private to this process.
    fn private(word: &AtomicU32, val: u32) -> Self {
        FutexWaitv {
            flags: FUTEX2_SIZE_U32 | FUTEX2_PRIVATE,
            ..FutexWaitv::shared(word.as_ptr() as usize, val)
        }
    }
}

/// Sleeps until one of the words is woken or differs from its expected value, or `timeout`
/// passes. `Err(errno)` on failure; EAGAIN, EINTR and ETIMEDOUT are the ordinary outcomes.
/// Returns the index of the word that was woken.
fn futex_waitv(
    waiters: &[FutexWaitv],
    timeout: Option<Duration>,
) -> std::result::Result<usize, i32> {
    debug_assert!(!waiters.is_empty() && waiters.len() <= FUTEX_WAITV_MAX);
    // futex_waitv takes an absolute timeout on the given clock.
    let ts = timeout.map(|t| {
        // SAFETY: `now` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
        let mut now: libc::timespec = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        let nanos = now.tv_nsec as u64 + u64::from(t.subsec_nanos());
        libc::timespec {
            tv_sec: now
                .tv_sec
                .saturating_add(t.as_secs().min(i64::MAX as u64 / 2) as libc::time_t)
                .saturating_add((nanos / 1_000_000_000) as libc::time_t),
            tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
        }
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `waiters` is a live array of `len` (1..=128) correctly laid out `futex_waitv`
    // entries (checked above against the uapi layout), `ts_ptr` null or a live timespec, flags
    // 0. The kernel only reads them, and reads each `uaddr` itself: an address that is no longer
    // mapped gives EFAULT, never a fault in this process.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex_waitv,
            waiters.as_ptr(),
            waiters.len() as libc::c_uint,
            0 as libc::c_uint,
            ts_ptr,
            libc::CLOCK_MONOTONIC,
        )
    };
    if r >= 0 {
        Ok(r as usize)
    } else {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL))
    }
}

/// `FUTEX_WAIT` on a raw address (the fallback helper's one word, or its control word).
fn futex_wait_raw(addr: *const u32, expected: u32, private: bool, timeout: Option<Duration>) {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    let op = if private {
        libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG
    } else {
        libc::FUTEX_WAIT
    };
    // SAFETY: the kernel reads the word at `addr` itself (EFAULT if it is no longer mapped) and
    // the timespec on this stack; every outcome means "look again".
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            addr,
            op,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes a helper sleeping on its control word.
fn futex_wake_private(word: &AtomicU32) {
    // SAFETY: `word` is a live aligned atomic (held by an `Arc`); FUTEX_WAKE uses its address
    // as a key only.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// How many helper threads the reactor runs now, and how many words it watches (tests and the
/// documentation of the bound).
#[doc(hidden)]
pub fn helper_threads() -> (usize, usize) {
    let state = lock();
    (
        state.helpers.iter().filter(|h| h.alive).count(),
        state.words.len(),
    )
}
