// SPDX-License-Identifier: MIT OR Apache-2.0
//! The non-blocking path neither allocates nor enters the kernel: `try_send`, `try_recv`, their
//! batch forms and the in-place guards (committed and cancelled), including the `Full` and
//! `Empty` outcomes, once warmed up.
//!
//! - Allocations: a counting global allocator (per thread, so other tests running at the same
//!   time do not disturb the count).
//! - Syscalls: a forked child installs a seccomp filter that kills it on any system call but
//!   `exit_group`, then runs the operations. Nobody sleeps on the queue, so no wake-up is due;
//!   a syscall anywhere on that path kills the child with SIGSYS and fails the test. A second
//!   handle is registered on the queue, so a path that asked the kernel about the other
//!   participants (crash recovery) would be caught too. The same holds for milliseconds of
//!   polling an empty, full, or closed and drained queue: longer than the stuck-claim delay
//!   (`shmq::testing::STUCK`) after which a non-blocking call may ask about a claimer.

use shmq::testing::STUCK;
use shmq::{Error, Options, Queue};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

thread_local! {
    /// Allocations made by this thread (const-initialised: reading it never allocates).
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// The system allocator, counting allocations per thread.
struct CountingAllocator;

fn count_one() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; counting
// touches only a thread-local `Cell`, which neither allocates nor panics.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: forwarded under the caller's guarantees.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: forwarded under the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: forwarded under the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded under the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Fails with `$what` unless `$cond` (no panic: the seccomp child cannot afford one).
macro_rules! ensure {
    ($cond:expr, $what:expr) => {
        if !$cond {
            return Err($what);
        }
    };
}

/// Every non-blocking operation, `rounds` times, with every outcome checked. Returns what went
/// wrong instead of panicking (a panic writes to stderr: a syscall).
fn exercise(q: &Queue, rounds: usize) -> Result<(), &'static str> {
    let msg = [7u8; 64];
    let batch = [&msg[..]; 8];
    let mut buf = [0u8; 64];
    for _ in 0..rounds {
        ensure!(q.try_send(&msg).is_ok(), "try_send");
        ensure!(matches!(q.try_recv(&mut buf), Ok(64)), "try_recv");
        ensure!(
            matches!(q.try_recv(&mut buf), Err(Error::Empty)),
            "try_recv on empty"
        );

        ensure!(matches!(q.try_send_batch(&batch), Ok(8)), "try_send_batch");
        let mut bytes = 0;
        ensure!(
            matches!(q.try_recv_batch(8, |m| bytes += m.len()), Ok(8)) && bytes == 8 * 64,
            "try_recv_batch"
        );
        ensure!(
            matches!(q.try_recv_batch(8, |_| {}), Err(Error::Empty)),
            "try_recv_batch on empty"
        );

        match q.try_reserve() {
            Ok(mut slot) => {
                slot[..3].copy_from_slice(b"abc");
                ensure!(slot.commit(3).is_ok(), "commit");
            }
            Err(_) => return Err("try_reserve"),
        }
        match q.try_recv_in_place() {
            Ok(got) => ensure!(*got == *b"abc", "try_recv_in_place content"),
            Err(_) => return Err("try_recv_in_place"),
        }
        // A cancelled reservation: receivers skip its slot.
        ensure!(q.try_reserve().is_ok(), "try_reserve (cancelled)");
        ensure!(
            matches!(q.try_recv(&mut buf), Err(Error::Empty)),
            "try_recv skips the cancelled slot"
        );

        // Fill to `Full`, then drain to `Empty`.
        let mut sent = 0;
        while q.try_send(&msg).is_ok() {
            sent += 1;
        }
        ensure!(sent == q.capacity(), "fill to capacity");
        every_send_is_full(q)?;
        for _ in 0..sent {
            ensure!(matches!(q.try_recv(&mut buf), Ok(64)), "drain");
        }
        ensure!(
            matches!(q.try_recv_in_place(), Err(Error::Empty)),
            "try_recv_in_place on empty"
        );
    }
    Ok(())
}

/// A queue to exercise, and a second handle on it: another participant, holding its own
/// entry lock, as a peer process would. Before it paid nothing for the participants, a `Full`
/// or `Empty` result asked the kernel whether each of them was alive; the peer keeps that
/// visible to the seccomp test.
fn test_queue() -> (tempfile::TempDir, Queue, Queue) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let q = Queue::create(dir.path().join("q"), Options::new(8, 64)).expect("create");
    let peer = Queue::open(dir.path().join("q")).expect("open a second handle");
    assert_eq!(q.stats().participants.len(), 2);
    (dir, q, peer)
}

/// [`test_queue`], after every operation has run a few times (so that nothing is left to
/// initialise on first use).
fn warmed_up_queue() -> (tempfile::TempDir, Queue, Queue) {
    let (dir, q, peer) = test_queue();
    exercise(&q, 10).expect("warm-up");
    (dir, q, peer)
}

#[test]
fn non_blocking_operations_allocate_nothing_after_warm_up() {
    let (_dir, q, _peer) = warmed_up_queue();
    let before = ALLOCATIONS.with(Cell::get);
    let result = exercise(&q, 1000);
    let allocations = ALLOCATIONS.with(Cell::get) - before;
    result.expect("operations");
    assert_eq!(
        allocations, 0,
        "the non-blocking path allocated {allocations} times"
    );
}

/// A seccomp filter that allows `exit_group` and kills the process on any other system call
/// (or on a system call of another architecture's numbering).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn only_exit_group() -> [libc::sock_filter; 6] {
    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    // Offsets in `struct seccomp_data`: `nr` (u32) at 0, `arch` (u32) at 4.
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    [
        op(LD_W_ABS, 0, 0, 4),
        op(JEQ_K, 0, 2, AUDIT_ARCH), // another architecture: kill
        op(LD_W_ABS, 0, 0, 0),
        op(JEQ_K, 1, 0, libc::SYS_exit_group as u32),
        op(RET_K, 0, 0, libc::SECCOMP_RET_KILL_PROCESS),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

#[test]
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn non_blocking_operations_make_no_syscall() {
    let (_dir, q, _peer) = warmed_up_queue();
    assert_no_syscall(|| exercise(&q, 10_000));
}

/// How long the polling tests poll: several times [`STUCK`], the time after which a
/// non-blocking call may ask the kernel about a claimer that holds the slot at its cursor. A
/// path that took an idle cursor for a stuck one (or any claim for another's) would make its
/// first system call after `STUCK`, so a poll of a few microseconds cannot see it.
const POLL_FOR: Duration = Duration::from_millis(5 * STUCK.as_millis() as u64);

/// Calls `poll` until [`POLL_FOR`] has passed (and at least 10,000 times). The clock is read
/// through the vDSO, which is not a system call (the library's own stuck-claim check relies on
/// that too).
fn poll_for(mut poll: impl FnMut() -> Result<(), &'static str>) -> Result<(), &'static str> {
    let start = Instant::now();
    let mut polls = 0u64;
    loop {
        poll()?;
        polls += 1;
        if polls >= 10_000 && polls.is_multiple_of(64) && start.elapsed() >= POLL_FOR {
            return Ok(());
        }
    }
}

/// Every receive form once (by copy, in place, batch): each must fail with an error that
/// `expected` accepts.
fn every_receive_fails(
    q: &Queue,
    buf: &mut [u8],
    expected: impl Fn(&Error) -> bool,
) -> Result<(), &'static str> {
    ensure!(
        q.try_recv(buf).err().is_some_and(|e| expected(&e)),
        "try_recv"
    );
    ensure!(
        q.try_recv_in_place().err().is_some_and(|e| expected(&e)),
        "try_recv_in_place"
    );
    ensure!(
        q.try_recv_batch(8, |_| {})
            .err()
            .is_some_and(|e| expected(&e)),
        "try_recv_batch"
    );
    Ok(())
}

/// Every send form once (by copy, batch, reservation) on a full queue: each must say `Full`.
fn every_send_is_full(q: &Queue) -> Result<(), &'static str> {
    let msg = [7u8; 64];
    ensure!(
        matches!(q.try_send(&msg), Err(Error::Full)),
        "try_send on full"
    );
    ensure!(
        matches!(q.try_send_batch(&[&msg[..]; 8]), Err(Error::Full)),
        "try_send_batch on full"
    );
    ensure!(
        matches!(q.try_reserve(), Err(Error::Full)),
        "try_reserve on full"
    );
    Ok(())
}

/// Polling an empty queue (every receive form) and a full one (every send form) for
/// milliseconds makes no system call: nothing is claimed at either cursor, so there is no
/// claimer to ask the kernel about, however long the poll (see `recovery::unstick`).
#[test]
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn polling_an_empty_or_full_queue_for_milliseconds_makes_no_syscall() {
    let (_dir, q, _peer) = warmed_up_queue();
    let mut buf = [0u8; 64];
    assert_no_syscall(|| {
        poll_for(|| every_receive_fails(&q, &mut buf, |e| matches!(e, Error::Empty)))?;
        while q.try_send(b"fill").is_ok() {}
        poll_for(|| every_send_is_full(&q))
    });
}

/// Polling a closed, drained queue for milliseconds makes no system call: before it reports
/// `Closed` a receiver looks for a slot still held by someone (a dead consumer's message would
/// still be delivered), and only a held slot is a reason to sweep (`settle_before_closed`); a
/// queue found with nothing held stays settled. Senders are refused at once.
#[test]
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn polling_a_closed_drained_queue_for_milliseconds_makes_no_syscall() {
    let (_dir, q, _peer) = warmed_up_queue();
    q.try_send(b"last").unwrap();
    assert!(q.close());
    let mut buf = [0u8; 64];
    assert_no_syscall(|| {
        ensure!(matches!(q.try_recv(&mut buf), Ok(4)), "the last message");
        poll_for(|| {
            every_receive_fails(&q, &mut buf, |e| matches!(e, Error::Closed))?;
            ensure!(
                matches!(q.try_send(b"late"), Err(Error::Closed)),
                "try_send on closed"
            );
            Ok(())
        })
    });
}

/// Runs `body` in a forked child under a seccomp filter that kills it on any system call but
/// `exit_group`; fails the test if the child made one, or if `body` failed (saying which check:
/// the child leaves the address and length of its `&'static str` in a shared page, since
/// writing memory is no system call).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn assert_no_syscall(body: impl FnOnce() -> Result<(), &'static str>) {
    let mut filter = only_exit_group();
    let program = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_mut_ptr(),
    };
    // SAFETY: a fresh anonymous shared mapping of two words; checked for failure below and
    // unmapped at the end. Fork keeps it shared with the child.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            2 * std::mem::size_of::<AtomicUsize>(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(
        page,
        libc::MAP_FAILED,
        "mmap: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: the mapping is page-aligned, zeroed (a valid `AtomicUsize` pair) and lives until
    // the munmap at the end, after the last use of `failure`.
    let failure = unsafe { &*(page as *const [AtomicUsize; 2]) };
    // SAFETY: the child runs only code that neither allocates nor takes a lock (that is what
    // the allocation test proves for the queue's operations; `body` adds only loads, compares
    // and vDSO clock reads), so no lock held by another test thread at the fork can stop it;
    // it ends with exit_group and never returns into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: prctl and seccomp get constants and a pointer to `program`, which points at
        // `filter`; both live on this stack until exit.
        let code = unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0,
                    &program as *const libc::sock_fprog,
                ) != 0
            {
                3
            } else {
                // From here on, any system call but exit_group kills this process.
                match body() {
                    Ok(()) => 0,
                    Err(what) => {
                        failure[0].store(what.as_ptr() as usize, Ordering::SeqCst);
                        failure[1].store(what.len(), Ordering::SeqCst);
                        1
                    }
                }
            }
        };
        // SAFETY: exit_group ends the process (the one system call the filter allows).
        unsafe { libc::syscall(libc::SYS_exit_group, code) };
        unreachable!();
    }
    let status = wait_bounded(pid, Duration::from_secs(60));
    assert!(
        !(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSYS),
        "the non-blocking path made a system call (the seccomp filter killed the child)"
    );
    assert!(
        libc::WIFEXITED(status),
        "the child ended abnormally (status {status:#x})"
    );
    match libc::WEXITSTATUS(status) {
        0 => {}
        1 => {
            let (ptr, len) = (
                failure[0].load(Ordering::SeqCst),
                failure[1].load(Ordering::SeqCst),
            );
            // SAFETY: the child stored the address and length of a `&'static str`; a forked
            // child runs this very executable at the same addresses, so they name the same
            // static string here.
            let what = unsafe {
                std::str::from_utf8_unchecked(std::slice::from_raw_parts(ptr as *const u8, len))
            };
            panic!("a check failed in the child: {what}")
        }
        3 => panic!("could not install the seccomp filter"),
        code => panic!("the child exited with {code}"),
    }
    // SAFETY: `page` is the mapping made above, of that length; `failure` is not used again.
    unsafe { libc::munmap(page, 2 * std::mem::size_of::<AtomicUsize>()) };
}

/// Waits for child `pid` at most `limit`, then kills it; returns its wait status.
fn wait_bounded(pid: libc::pid_t, limit: Duration) -> i32 {
    let deadline = Instant::now() + limit;
    let mut status = 0;
    loop {
        // SAFETY: `pid` is our child and `status` a live int.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return status;
        }
        if Instant::now() > deadline {
            // SAFETY: `pid` is our unreaped child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("the child did not finish in {limit:?} (blocked in an allocation or a wait?)");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
