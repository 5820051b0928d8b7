// SPDX-License-Identifier: MIT OR Apache-2.0
//! The other side of a two-process measurement: a forked child on its own CPU (or, for the
//! scaling rows, a group of children sharing the run's two CPUs), memory shared with it, and
//! the bounds that keep a broken peer from hanging the benchmark.
//!
//! - **Fork, not re-exec.** The mechanisms under test are set up first (a shared mapping, pipe
//!   ends, queue files), then the process forks, so both sides start from the same state with
//!   no protocol to pass it along. A fork is made only while this process has one thread
//!   ([`Peer::spawn`] checks), so the child inherits no lock held by a thread it does not have.
//! - **The child dies with us** (`PR_SET_PDEATHSIG`), and ends with `_exit`: it never returns
//!   into the parent's code or runs its destructors.
//! - **Every wait is bounded.** A watchdog thread waits for the child's exit (a pidfd) or a
//!   deadline, whichever comes first, then kills and reaps the child, raises the `gone` flag and
//!   runs an `unblock` action that wakes whatever the parent may be blocked in (a queue is
//!   closed, a futex woken). Spin loops check the flag every few thousand spins ([`Patience`]);
//!   pipes and sockets see end-of-file when the child dies.

use std::io::{Read, Write};
use std::marker::PhantomData;
use std::ops::Deref;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Settings;

/// Where this process and its peers run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pinning {
    /// This process runs on CPU `me`, every peer (process or thread) on CPU `peer`.
    Pinned { me: usize, peer: usize },
    /// Fewer than two CPUs are available: nothing is pinned.
    Unpinned,
}

impl Pinning {
    /// Pins the calling thread to the first CPU it may use and reserves the second for peers.
    /// With only one CPU available, pins nothing.
    pub fn setup() -> Result<Pinning, String> {
        let cpus = allowed_cpus()?;
        match cpus[..] {
            [me, peer, ..] => {
                pin_to(me)?;
                Ok(Pinning::Pinned { me, peer })
            }
            _ => Ok(Pinning::Unpinned),
        }
    }

    /// Pins the calling thread (a peer) to the peer's CPU.
    pub fn pin_peer(self) -> Result<(), String> {
        match self {
            Pinning::Pinned { peer, .. } => pin_to(peer),
            Pinning::Unpinned => Ok(()),
        }
    }

    /// Lets the calling thread run on both CPUs of the run (this side's and the peer's), and
    /// only those: the processes of a scaling row share them.
    pub fn pin_shared(self) -> Result<(), String> {
        match self {
            Pinning::Pinned { me, peer } => pin_to_set(&[me, peer]),
            Pinning::Unpinned => Ok(()),
        }
    }

    /// "parent on CPU 0, peer on CPU 1", or why nothing is pinned.
    pub fn describe(self) -> String {
        match self {
            Pinning::Pinned { me, peer } => {
                format!("pinned: this side on CPU {me}, peer on CPU {peer}")
            }
            Pinning::Unpinned => "not pinned: fewer than 2 CPUs available".into(),
        }
    }
}

/// The CPUs this process may run on.
pub fn allowed_cpus() -> Result<Vec<usize>, String> {
    // SAFETY: `cpu_set_t` is a plain bit array, valid when zeroed.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live `cpu_set_t` of the size we pass; the kernel writes only into it.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if r != 0 {
        return Err(format!(
            "sched_getaffinity: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu < CPU_SETSIZE`, the number of bits in `set`.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Pins the calling thread to `cpu`.
fn pin_to(cpu: usize) -> Result<(), String> {
    pin_to_set(&[cpu])
}

/// Lets the calling thread run on `cpus` only.
fn pin_to_set(cpus: &[usize]) -> Result<(), String> {
    // SAFETY: as in `allowed_cpus`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        // SAFETY: `cpu` came from `allowed_cpus`, so it is below CPU_SETSIZE.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a live `cpu_set_t` of the size we pass; the kernel only reads it.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    if r != 0 {
        return Err(format!(
            "sched_setaffinity(CPUs {cpus:?}): {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// A type that may live in memory shared with a forked peer.
///
/// # Safety
/// All-zero bytes must be a valid value, and the type must be mutated only through atomics
/// (interior mutability that is sound when another process writes at the same time).
pub unsafe trait SharedSafe: Sync {}

/// A `T` (and `extra` bytes after it) in an anonymous shared mapping, zero-filled: a fork
/// inherits it, so parent and child see the same memory.
pub struct Shared<T: SharedSafe> {
    base: *mut u8,
    len: usize,
    _holds: PhantomData<T>,
}

// SAFETY: `T: SharedSafe` is only mutated through atomics, so references to it may cross
// threads; the raw bytes after it are only handed out as a raw pointer.
unsafe impl<T: SharedSafe> Send for Shared<T> {}
// SAFETY: as above.
unsafe impl<T: SharedSafe> Sync for Shared<T> {}

impl<T: SharedSafe> Shared<T> {
    /// Maps a zeroed `T` followed by `extra` bytes.
    pub fn new(extra: usize) -> Result<Self, String> {
        let len = std::mem::size_of::<T>() + extra;
        // SAFETY: an anonymous mapping at an address of the kernel's choosing touches no existing
        // memory; the result is checked before use.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(format!(
                "mmap of {len} shared bytes: {}",
                std::io::Error::last_os_error()
            ));
        }
        debug_assert!(std::mem::align_of::<T>() <= 4096);
        Ok(Shared {
            base: base.cast(),
            len,
            _holds: PhantomData,
        })
    }

    /// The `extra` bytes after the `T` (aligned as `T` is).
    pub fn extra(&self) -> *mut u8 {
        self.base.wrapping_add(std::mem::size_of::<T>())
    }
}

impl<T: SharedSafe> Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the mapping is page-aligned (enough for `T`), at least `size_of::<T>()` long,
        // zero-filled (a valid `T`, by `SharedSafe`), and lives as long as `self`.
        unsafe { &*(self.base as *const T) }
    }
}

impl<T: SharedSafe> Drop for Shared<T> {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly the mapping made in `new`, and no reference into it
        // outlives `self` (they borrow from it).
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// A forked child running one side of a measurement. Dropping it kills and reaps the child.
pub struct Peer {
    gone: Arc<AtomicBool>,
    /// Dropping this ends the watchdog's wait (it sees the pipe close), which kills the child.
    stop: Option<std::io::PipeWriter>,
    watchdog: Option<JoinHandle<()>>,
    deadline: Instant,
}

impl Peer {
    /// Forks a child that pins itself to the peer CPU and runs `body` until killed (or until
    /// `body` returns: an `Err` is printed to stderr, and the child exits either way).
    ///
    /// Whatever `body` captures is dropped in the parent when this returns (so a pipe end meant
    /// for the child closes here). `unblock` runs in the parent once the child is gone,
    /// expected or not: it must wake anything in the parent that waits for the child without
    /// a bound of its own.
    pub fn spawn<B, U>(settings: &Settings, body: B, unblock: U) -> Result<Peer, String>
    where
        B: FnOnce() -> Result<(), String>,
        U: FnOnce() + Send + 'static,
    {
        prepare_fork()?;
        let pinning = settings.pinning;
        let pid = fork_child(|| pinning.pin_peer(), body)?;
        Self::watch(vec![pid], settings.peer_limit(), unblock)
    }

    /// Forks `count` children, each running `body(index)` until killed, all of them free to run
    /// on both of the run's CPUs (this side's and the peer's), so that more processes than CPUs
    /// compete for them. They are watched as one peer: when any of them exits, or the deadline
    /// passes, all are killed, and `unblock` runs as in [`Peer::spawn`].
    pub fn spawn_group<B, U>(
        settings: &Settings,
        count: usize,
        body: B,
        unblock: U,
    ) -> Result<Peer, String>
    where
        B: Fn(usize) -> Result<(), String>,
        U: FnOnce() + Send + 'static,
    {
        prepare_fork()?;
        // Every child is forked before the watchdog thread starts: a fork is only safe while
        // this process has one thread.
        let pinning = settings.pinning;
        let mut pids = Vec::with_capacity(count);
        for index in 0..count {
            match fork_child(|| pinning.pin_shared(), || body(index)) {
                Ok(pid) => pids.push(pid),
                Err(e) => {
                    kill_and_reap(&pids);
                    return Err(e);
                }
            }
        }
        drop(body);
        Self::watch(pids, settings.peer_limit(), unblock)
    }

    /// Starts the watchdog of the children `pids`.
    fn watch<U>(pids: Vec<libc::pid_t>, limit: Duration, unblock: U) -> Result<Peer, String>
    where
        U: FnOnce() + Send + 'static,
    {
        let deadline = Instant::now() + limit;
        let mut pidfds = Vec::with_capacity(pids.len());
        for &pid in &pids {
            // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
            let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
            if raw < 0 {
                let e = std::io::Error::last_os_error();
                kill_and_reap(&pids);
                return Err(format!("pidfd_open (Linux 5.3 or later is needed): {e}"));
            }
            // SAFETY: `raw` is a descriptor we just opened and own.
            pidfds.push(unsafe { OwnedFd::from_raw_fd(raw) });
        }
        let (stop_rx, stop_tx) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
        let gone = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&gone);
        let watchdog = std::thread::Builder::new()
            .name("bench-watchdog".into())
            .spawn(move || {
                wait_exit_or_stop(&pidfds, &stop_rx, deadline);
                flag.store(true, Ordering::SeqCst);
                kill_and_reap(&pids);
                unblock();
            })
            .map_err(|e| format!("cannot start the watchdog thread: {e}"))?;
        Ok(Peer {
            gone,
            stop: Some(stop_tx),
            watchdog: Some(watchdog),
            deadline,
        })
    }

    /// Bounds a spin loop that waits for this peer.
    pub fn patience(&self) -> Patience<'_> {
        Patience::new(&self.gone, self.deadline)
    }

    /// Whether the child has exited (or was killed for taking too long).
    pub fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Relaxed)
    }

    /// Says that the peer is gone, if it is, when an operation on it failed with `e`.
    pub fn explain(&self, e: String) -> String {
        if self.is_gone() {
            format!("the peer process exited or stopped answering ({e})")
        } else {
            e
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(watchdog) = self.watchdog.take() {
            let _ = watchdog.join();
        }
    }
}

/// Checks that a fork is safe (one thread) and flushes what would otherwise be written twice.
fn prepare_fork() -> Result<(), String> {
    only_thread()?;
    // Output buffered now would be written twice, once by each process.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    Ok(())
}

/// Forks a child that runs `pin`, then `body`, and exits; returns its pid. Whatever `body`
/// captures is dropped in the parent when this returns.
fn fork_child<P, B>(pin: P, body: B) -> Result<libc::pid_t, String>
where
    P: FnOnce() -> Result<(), String>,
    B: FnOnce() -> Result<(), String>,
{
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the callers checked that this process has one thread (`prepare_fork`), so the
    // child's copy of memory is consistent: no lock (allocator, stdio) is held by a thread that
    // does not exist there.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        child(parent, pin, body);
    }
    Ok(pid)
}

/// Kills and reaps the children `pids`.
fn kill_and_reap(pids: &[libc::pid_t]) {
    for &pid in pids {
        // SAFETY: each `pid` is our unreaped child (reaped only here, after this kill), so it is
        // still our child, alive or a zombie, and cannot belong to anyone else.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
}

/// The child's side of `fork_child`: never returns.
fn child<P, B>(parent: libc::pid_t, pin: P, body: B) -> !
where
    P: FnOnce() -> Result<(), String>,
    B: FnOnce() -> Result<(), String>,
{
    // SAFETY: prctl(PR_SET_PDEATHSIG) and getppid read no memory of ours.
    let orphaned = unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::getppid() != parent
    };
    let result = if orphaned {
        Err("the parent exited before the peer started".to_string())
    } else {
        pin().and_then(|()| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(body))
                .unwrap_or_else(|_| Err("panicked".into()))
        })
    };
    let code = match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("shmq bench: peer process: {e}");
            2
        }
    };
    // SAFETY: `_exit` ends this process without unwinding into the parent's code or running its
    // destructors (which would, for example, remove the parent's files).
    unsafe { libc::_exit(code) }
}

/// Fails unless the calling process has exactly one thread. The async rows leave the library's
/// waiting helper threads behind, which exit once idle for `reactor::IDLE_EXIT` (250 ms) but may
/// not have run yet on a loaded machine: wait for them, a few seconds at most, before failing.
fn only_thread() -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let threads = std::fs::read_dir("/proc/self/task")
            .map_err(|e| format!("/proc/self/task: {e}"))?
            .count();
        if threads == 1 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "cannot fork a peer safely: this process has {threads} threads"
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Blocks until a process behind `pidfds` exits, `stop` closes, or `deadline` passes.
fn wait_exit_or_stop(pidfds: &[OwnedFd], stop: &std::io::PipeReader, deadline: Instant) {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        let mut fds: Vec<libc::pollfd> = pidfds
            .iter()
            .map(|fd| fd.as_raw_fd())
            .chain([stop.as_raw_fd()])
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let timeout_ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: `fds` is a live array of pollfd structures, and we pass its length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if n > 0 {
            return;
        }
        if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return;
        }
    }
}

/// The bound of a spin loop that waits for a peer: every few thousand spins it checks whether
/// the peer is gone or the deadline has passed. Costs one counter increment per spin.
pub struct Patience<'a> {
    gone: &'a AtomicBool,
    deadline: Instant,
    spins: u32,
}

impl<'a> Patience<'a> {
    pub fn new(gone: &'a AtomicBool, deadline: Instant) -> Self {
        Patience {
            gone,
            deadline,
            spins: 0,
        }
    }

    /// One turn of a spin loop: a CPU pause, and every 4096 turns a check of the peer.
    #[inline]
    pub fn spin(&mut self) -> Result<(), String> {
        std::hint::spin_loop();
        self.spins = self.spins.wrapping_add(1);
        if self.spins.is_multiple_of(4096) {
            self.check()?;
        }
        Ok(())
    }

    #[cold]
    fn check(&self) -> Result<(), String> {
        if self.gone.load(Ordering::Relaxed) {
            Err("the peer process exited or stopped answering".into())
        } else if Instant::now() > self.deadline {
            Err("the peer stopped answering".into())
        } else {
            Ok(())
        }
    }
}

/// Writes all of `buf` to a byte stream; a closed peer is an error.
pub fn write_all(w: &mut impl Write, buf: &[u8]) -> Result<(), String> {
    w.write_all(buf).map_err(|e| format!("write: {e}"))
}

/// Reads exactly `buf.len()` bytes from a byte stream; end-of-file (the peer died) is an error.
pub fn read_exact(r: &mut impl Read, buf: &mut [u8]) -> Result<(), String> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => "the peer closed its end (it exited)".to_string(),
        _ => format!("read: {e}"),
    })
}
