// SPDX-License-Identifier: MIT OR Apache-2.0
//! Round trips: this process sends a message, the peer echoes it, this process receives the
//! echo. One sample per round trip, timed with two clock reads (so each sample includes about
//! one clock read, the same for every row).
//!
//! Every row but `crossbeam` runs between two processes. Messages carry the sequence number
//! in their first 8 bytes, and every echo is checked against it.

use super::peer::{read_exact, write_all, Patience, Peer, Shared, SharedSafe};
use super::spsc::SpscRing;
use super::{Outcome, Settings};
use crossbeam_queue::ArrayQueue;
use hdrhistogram::Histogram;
use shmq::{Error, Options, Queue};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs `round_trip(seq)` for the warm-up, then records each one for the row's time.
/// `before` runs untimed before every round trip (to put the peer in a given state).
pub fn sample(
    settings: &Settings,
    mut before: impl FnMut() -> Result<(), String>,
    mut round_trip: impl FnMut(u64) -> Result<(), String>,
) -> Result<Outcome, String> {
    let mut histogram =
        Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).map_err(|e| e.to_string())?;
    let mut seq = 0;
    let warm = Instant::now() + settings.warmup;
    while Instant::now() < warm {
        seq += 1;
        before()?;
        round_trip(seq)?;
    }
    let end = Instant::now() + settings.rtt_time;
    loop {
        seq += 1;
        before()?;
        let t0 = Instant::now();
        round_trip(seq)?;
        let t1 = Instant::now();
        histogram.saturating_record(t1.duration_since(t0).as_nanos() as u64);
        if t1 >= end {
            return Ok(Outcome::Rtt(histogram));
        }
    }
}

/// The median cost of reading the clock the way `sample` does, in nanoseconds.
pub fn clock_read_ns() -> u64 {
    let mut deltas: Vec<u64> = (0..1001)
        .map(|_| {
            let t0 = Instant::now();
            t0.elapsed().as_nanos() as u64
        })
        .collect();
    deltas.sort_unstable();
    deltas[deltas.len() / 2]
}

/// A message of the run's size stamped with `seq`.
pub fn stamp(msg: &mut [u8], seq: u64) {
    msg[..8].copy_from_slice(&seq.to_le_bytes());
}

/// Checks that an echo carries `seq`.
pub fn check_echo(reply: &[u8], seq: u64) -> Result<(), String> {
    match reply.get(..8) {
        Some(bytes) if bytes == seq.to_le_bytes() => Ok(()),
        _ => Err(format!(
            "the echo of message {seq} carries another sequence number"
        )),
    }
}

/// An atomic on its own 128-byte line.
#[repr(C, align(128))]
struct Line<T>(T);

/// One word each way.
#[repr(C)]
struct Words<T> {
    ping: Line<T>,
    pong: Line<T>,
}

// SAFETY: atomics only, valid when zeroed.
unsafe impl SharedSafe for Words<AtomicU64> {}
// SAFETY: atomics only, valid when zeroed.
unsafe impl SharedSafe for Words<AtomicU32> {}

/// `floor`: each process spins on one atomic that the other writes. Two cache-line transfers
/// per round trip and nothing else: no queue can beat it.
pub fn floor(s: &Settings) -> Result<Outcome, String> {
    let words = Shared::<Words<AtomicU64>>::new(0)?;
    let peer = Peer::spawn(
        s,
        || {
            let mut last = 0;
            loop {
                let v = words.ping.0.load(Ordering::Acquire);
                if v != last {
                    words.pong.0.store(v, Ordering::Release);
                    last = v;
                } else {
                    std::hint::spin_loop();
                }
            }
        },
        || {},
    )?;
    let mut patience = peer.patience();
    sample(
        s,
        || Ok(()),
        |seq| {
            words.ping.0.store(seq, Ordering::Release);
            while words.pong.0.load(Ordering::Acquire) != seq {
                patience.spin()?;
            }
            Ok(())
        },
    )
}

/// `futex`: the same two words, but each side sleeps in `FUTEX_WAIT` until the other stores
/// and calls `FUTEX_WAKE` (shared futexes, as between processes). Every hand-off wakes a
/// sleeping peer: what a condition variable or semaphore between processes costs.
pub fn futex(s: &Settings) -> Result<Outcome, String> {
    let words = Arc::new(Shared::<Words<AtomicU32>>::new(0)?);
    let hook = Arc::clone(&words);
    let peer = Peer::spawn(
        s,
        || {
            let mut last = 0;
            loop {
                let v = words.ping.0.load(Ordering::Acquire);
                if v == last {
                    futex_wait(&words.ping.0, v);
                    continue;
                }
                words.pong.0.store(v, Ordering::Release);
                futex_wake(&words.pong.0);
                last = v;
            }
        },
        // Wake the parent if it sleeps on `pong` when the child dies.
        move || {
            hook.pong.0.fetch_add(1 << 31, Ordering::SeqCst);
            futex_wake(&hook.pong.0);
        },
    )?;
    sample(
        s,
        || Ok(()),
        |seq| {
            let seq = seq as u32;
            words.ping.0.store(seq, Ordering::Release);
            futex_wake(&words.ping.0);
            loop {
                let v = words.pong.0.load(Ordering::Acquire);
                if v == seq {
                    return Ok(());
                }
                if peer.is_gone() {
                    return Err("the peer process exited or stopped answering".into());
                }
                futex_wait(&words.pong.0, v);
            }
        },
    )
}

/// Sleeps while `*word == expected` (shared futex: the waker may be another process).
fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: `word` is a live, aligned atomic in a shared mapping for the whole call; FUTEX_WAIT
    // only reads it. EAGAIN/EINTR just return: callers re-check in a loop.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            std::ptr::null::<libc::timespec>(),
        );
    }
}

/// Wakes the sleepers on `word`, in any process.
fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a live aligned atomic; FUTEX_WAKE uses its address as a key only.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
    }
}

/// `pipe`: two pipes, one each way; `size` bytes written and read per message.
pub fn pipe(s: &Settings) -> Result<Outcome, String> {
    let (mut ping_rx, mut ping_tx) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
    let (mut pong_rx, mut pong_tx) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
    let size = s.size;
    let peer = Peer::spawn(
        s,
        move || {
            let mut buf = vec![0u8; size];
            loop {
                read_exact(&mut ping_rx, &mut buf)?;
                write_all(&mut pong_tx, &buf)?;
            }
        },
        || {},
    )?;
    stream_ping_pong(s, &peer, &mut ping_tx, &mut pong_rx)
}

/// `uds`: a connected pair of Unix stream sockets.
pub fn uds(s: &Settings) -> Result<Outcome, String> {
    let (mut mine, mut theirs) =
        std::os::unix::net::UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    let size = s.size;
    let peer = Peer::spawn(
        s,
        move || {
            let mut buf = vec![0u8; size];
            loop {
                read_exact(&mut theirs, &mut buf)?;
                write_all(&mut theirs, &buf)?;
            }
        },
        || {},
    )?;
    let mut reader = mine.try_clone().map_err(|e| e.to_string())?;
    stream_ping_pong(s, &peer, &mut mine, &mut reader)
}

/// The parent's side of a ping-pong over byte streams (the peer's death closes them).
fn stream_ping_pong(
    s: &Settings,
    peer: &Peer,
    tx: &mut impl std::io::Write,
    rx: &mut impl std::io::Read,
) -> Result<Outcome, String> {
    let mut msg = vec![0u8; s.size];
    let mut reply = vec![0u8; s.size];
    sample(
        s,
        || Ok(()),
        |seq| {
            stamp(&mut msg, seq);
            write_all(tx, &msg).map_err(|e| peer.explain(e))?;
            read_exact(rx, &mut reply).map_err(|e| peer.explain(e))?;
            check_echo(&reply, seq)
        },
    )
}

/// A POSIX message queue, unlinked as soon as it is open (the descriptor survives the fork).
struct PosixMq(libc::mqd_t);

impl PosixMq {
    fn new(tag: &str, size: usize) -> Result<Self, String> {
        // SAFETY: getpid has no preconditions.
        let name = format!("/shmq-bench-{}-{tag}", unsafe { libc::getpid() });
        let cname = std::ffi::CString::new(name.clone()).map_err(|e| e.to_string())?;
        // SAFETY: `mq_attr` is plain integers, valid when zeroed.
        let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
        attr.mq_maxmsg = 8;
        attr.mq_msgsize = size as libc::c_long;
        // SAFETY: `cname` is a NUL-terminated string and `attr` a live mq_attr; with O_CREAT the
        // variadic arguments are the mode and the attributes, as passed.
        let mqd = unsafe {
            libc::mq_open(
                cname.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC,
                0o600 as libc::mode_t,
                &attr as *const libc::mq_attr,
            )
        };
        if mqd < 0 {
            return Err(format!(
                "mq_open({name}, msgsize {size}): {}",
                std::io::Error::last_os_error()
            ));
        }
        // SAFETY: `cname` is NUL-terminated; the open descriptor stays valid after the unlink.
        unsafe { libc::mq_unlink(cname.as_ptr()) };
        Ok(PosixMq(mqd))
    }

    fn send(&self, msg: &[u8]) -> Result<(), String> {
        loop {
            // SAFETY: `msg` is a live buffer of the length passed.
            let r = unsafe { libc::mq_send(self.0, msg.as_ptr().cast(), msg.len(), 0) };
            if r == 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(format!("mq_send: {e}"));
            }
        }
    }

    /// Receives into `buf` (at least the message size), waiting until `deadline` at most.
    fn recv(&self, buf: &mut [u8], deadline: Option<&libc::timespec>) -> Result<(), String> {
        loop {
            let mut prio = 0;
            // SAFETY: `buf` is a live buffer of the length passed, `prio` a live u32, and
            // `deadline` null or a live timespec.
            let r = unsafe {
                match deadline {
                    Some(at) => libc::mq_timedreceive(
                        self.0,
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        &mut prio,
                        at,
                    ),
                    None => libc::mq_receive(self.0, buf.as_mut_ptr().cast(), buf.len(), &mut prio),
                }
            };
            if r >= 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ETIMEDOUT) => return Err("the posix_mq peer stopped answering".into()),
                _ => return Err(format!("mq_receive: {e}")),
            }
        }
    }
}

impl Drop for PosixMq {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor.
        unsafe { libc::mq_close(self.0) };
    }
}

/// `posix_mq`: two POSIX message queues, one each way.
pub fn posix_mq(s: &Settings) -> Result<Outcome, String> {
    let (ping, pong) = match (PosixMq::new("ping", s.size), PosixMq::new("pong", s.size)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return Ok(Outcome::Unavailable(e)),
    };
    let size = s.size;
    let pong_mqd = pong.0;
    let peer = Peer::spawn(
        s,
        || {
            let mut buf = vec![0u8; size];
            loop {
                ping.recv(&mut buf, None)?;
                pong.send(&buf)?;
            }
        },
        // Wake the parent if it waits for an echo: a message numbered 0 (never a real one).
        move || {
            let zeros = vec![0u8; size];
            // SAFETY: `pong_mqd` is open until `pong` drops, which is after the peer (and this
            // action, which runs before `Peer::drop` returns); `zeros` is a live buffer of the
            // length passed. The queue has room: the parent leaves at most one message in it.
            unsafe { libc::mq_send(pong_mqd, zeros.as_ptr().cast(), size, 0) };
        },
    )?;
    // The receive deadline bounds every wait: CLOCK_REALTIME, as mq_timedreceive wants.
    let limit = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        + s.peer_limit();
    let deadline = libc::timespec {
        tv_sec: limit.as_secs() as libc::time_t,
        tv_nsec: limit.subsec_nanos() as libc::c_long,
    };
    let mut msg = vec![0u8; size];
    let mut reply = vec![0u8; size];
    sample(
        s,
        || Ok(()),
        |seq| {
            stamp(&mut msg, seq);
            ping.send(&msg).map_err(|e| peer.explain(e))?;
            pong.recv(&mut reply, Some(&deadline))?;
            if peer.is_gone() {
                return Err(peer.explain("no echo".into()));
            }
            check_echo(&reply, seq)
        },
    )
}

/// A pair of shmq queues, one each way, in the run's directory.
struct QueuePair {
    ping: Queue,
    pong: Queue,
}

impl QueuePair {
    fn create(s: &Settings, tag: &str) -> Result<Self, String> {
        Self::create_sized(s, tag, s.size)
    }

    /// A pair for `size`-byte messages, whatever the run's size.
    fn create_sized(s: &Settings, tag: &str, size: usize) -> Result<Self, String> {
        let options = Options::new(super::capacity_for(size), size as u32);
        let create = |dir: &str| {
            Queue::create(s.queue_path(&format!("{tag}-{dir}")), options.clone())
                .map_err(|e| e.to_string())
        };
        Ok(QueuePair {
            ping: create("ping")?,
            pong: create("pong")?,
        })
    }

    /// Another pair of handles on the same queues (each process opens its own).
    fn open(&self) -> Result<Self, String> {
        let open = |q: &Queue| Queue::open(q.path()).map_err(|e| e.to_string());
        Ok(QueuePair {
            ping: open(&self.ping)?,
            pong: open(&self.pong)?,
        })
    }

    /// Closes both queues: wakes and fails whoever waits on them.
    fn close(&self) {
        self.ping.close();
        self.pong.close();
    }
}

/// `shmq_busy`: shmq with `try_send` / `try_recv`, spinning while empty.
pub fn shmq_busy(s: &Settings) -> Result<Outcome, String> {
    busy_round_trips(s, s.size, "busy")
}

/// `shmq_busy_8`: `shmq_busy` with 8-byte messages, whatever `--size` says: the cost of the
/// protocol with almost no payload to copy.
pub fn shmq_busy_8(s: &Settings) -> Result<Outcome, String> {
    busy_round_trips(s, 8, "busy-8")
}

/// `shmq_busy_1024`: `shmq_busy` with 1 KiB messages, whatever `--size` says: beside
/// `shmq_busy_8`, how the cost grows with the bytes copied (16 cache lines each way).
pub fn shmq_busy_1024(s: &Settings) -> Result<Outcome, String> {
    busy_round_trips(s, 1024, "busy-1024")
}

/// Busy round trips of `size`-byte messages over two queues.
fn busy_round_trips(s: &Settings, size: usize, tag: &str) -> Result<Outcome, String> {
    let queues = QueuePair::create_sized(s, tag, size)?;
    let peer = Peer::spawn(
        s,
        || {
            let q = queues.open()?;
            let mut buf = vec![0u8; size];
            loop {
                let n = loop {
                    match q.ping.try_recv(&mut buf) {
                        Ok(n) => break n,
                        Err(Error::Empty) => std::hint::spin_loop(),
                        Err(e) => return Err(e.to_string()),
                    }
                };
                loop {
                    match q.pong.try_send(&buf[..n]) {
                        Ok(()) => break,
                        Err(Error::Full) => std::hint::spin_loop(),
                        Err(e) => return Err(e.to_string()),
                    }
                }
            }
        },
        || {},
    )?;
    let mut patience = peer.patience();
    let mut msg = vec![0u8; size];
    let mut reply = vec![0u8; size];
    sample(
        s,
        || Ok(()),
        |seq| {
            stamp(&mut msg, seq);
            loop {
                match queues.ping.try_send(&msg) {
                    Ok(()) => break,
                    Err(Error::Full) => patience.spin()?,
                    Err(e) => return Err(e.to_string()),
                }
            }
            let n = loop {
                match queues.pong.try_recv(&mut reply) {
                    Ok(n) => break n,
                    Err(Error::Empty) => patience.spin()?,
                    Err(e) => return Err(e.to_string()),
                }
            };
            check_echo(&reply[..n], seq)
        },
    )
}

/// The peer of the blocking rows: `recv`, then `send` the same bytes back.
fn blocking_echo(queues: &QueuePair, size: usize) -> Result<(), String> {
    let q = queues.open()?;
    let mut buf = vec![0u8; size];
    loop {
        let n = q.ping.recv(&mut buf).map_err(|e| e.to_string())?;
        q.pong.send(&buf[..n]).map_err(|e| e.to_string())?;
    }
}

/// Starts a blocking echo peer; if it dies, the queues are closed so the parent's `recv` ends.
fn blocking_peer(s: &Settings, queues: &QueuePair) -> Result<Peer, String> {
    let closer = queues.open()?;
    let size = s.size;
    Peer::spawn(s, || blocking_echo(queues, size), move || closer.close())
}

/// `shmq_blocking`: shmq with `send` / `recv` while the peer is active: each side spins a
/// little before sleeping, and the echo arrives within the spin.
pub fn shmq_blocking(s: &Settings) -> Result<Outcome, String> {
    let queues = QueuePair::create(s, "blocking")?;
    let peer = blocking_peer(s, &queues)?;
    let mut msg = vec![0u8; s.size];
    let mut reply = vec![0u8; s.size];
    sample(
        s,
        || Ok(()),
        |seq| blocking_round_trip(&queues, &mut msg, &mut reply, seq).map_err(|e| peer.explain(e)),
    )
}

fn blocking_round_trip(
    queues: &QueuePair,
    msg: &mut [u8],
    reply: &mut [u8],
    seq: u64,
) -> Result<(), String> {
    stamp(msg, seq);
    queues.ping.send(msg).map_err(|e| e.to_string())?;
    let n = queues.pong.recv(reply).map_err(|e| e.to_string())?;
    check_echo(&reply[..n], seq)
}

/// `shmq_blocking_idle`: shmq with `send` / `recv` when the peer sleeps: before each round
/// trip (untimed), wait until the peer has gone to sleep in `recv`. The round trip then pays
/// for waking it, like every hand-off of the `futex` row.
pub fn shmq_blocking_idle(s: &Settings) -> Result<Outcome, String> {
    let queues = QueuePair::create(s, "idle")?;
    let peer = blocking_peer(s, &queues)?;
    let deadline = Instant::now() + s.peer_limit();
    let mut msg = vec![0u8; s.size];
    let mut reply = vec![0u8; s.size];
    sample(
        s,
        || {
            while queues.ping.stats().recv_sleepers == 0 {
                if peer.is_gone() || Instant::now() > deadline {
                    return Err("the peer process exited or stopped answering".into());
                }
                std::thread::sleep(Duration::from_micros(20));
            }
            // Counted as a sleeper just before FUTEX_WAIT: give it time to get there.
            std::thread::sleep(Duration::from_micros(20));
            Ok(())
        },
        |seq| blocking_round_trip(&queues, &mut msg, &mut reply, seq).map_err(|e| peer.explain(e)),
    )
}

/// `spsc_ring`: the minimal SPSC ring (one each way), busy-polling.
pub fn spsc_ring(s: &Settings) -> Result<Outcome, String> {
    let ping = SpscRing::new(s.capacity(), s.size)?;
    let pong = SpscRing::new(s.capacity(), s.size)?;
    let size = s.size;
    let peer = Peer::spawn(
        s,
        || {
            // SAFETY: the child is the only consumer of `ping` and producer of `pong`.
            let (mut rx, mut tx) = unsafe { (ping.consumer(), pong.producer()) };
            let mut buf = vec![0u8; size];
            loop {
                while !rx.try_pop(&mut buf) {
                    std::hint::spin_loop();
                }
                while !tx.try_push(&buf) {
                    std::hint::spin_loop();
                }
            }
        },
        || {},
    )?;
    // SAFETY: the parent is the only producer of `ping` and consumer of `pong`.
    let (mut tx, mut rx) = unsafe { (ping.producer(), pong.consumer()) };
    let mut patience = peer.patience();
    let mut msg = vec![0u8; size];
    let mut reply = vec![0u8; size];
    sample(
        s,
        || Ok(()),
        |seq| {
            stamp(&mut msg, seq);
            while !tx.try_push(&msg) {
                patience.spin()?;
            }
            while !rx.try_pop(&mut reply) {
                patience.spin()?;
            }
            check_echo(&reply, seq)
        },
    )
}

/// Calls `$f::<N>(settings)` with `N` the smallest power of two from 8 to 4096 that holds the
/// run's message size: crossbeam's queues carry values, so the message is an array.
macro_rules! with_array_len {
    ($f:ident, $s:expr) => {
        match $s.size.next_power_of_two().max(8) {
            8 => $f::<8>($s),
            16 => $f::<16>($s),
            32 => $f::<32>($s),
            64 => $f::<64>($s),
            128 => $f::<128>($s),
            256 => $f::<256>($s),
            512 => $f::<512>($s),
            1024 => $f::<1024>($s),
            2048 => $f::<2048>($s),
            4096 => $f::<4096>($s),
            _ => Ok(Outcome::Unavailable(format!(
                "crossbeam rows carry [u8; N] values, built for up to 4096 bytes, not {}",
                $s.size
            ))),
        }
    };
}
pub(super) use with_array_len;

/// `crossbeam`: crossbeam-queue `ArrayQueue` (one each way) between two threads of this
/// process, busy-polling: the in-process reference.
pub fn crossbeam(s: &Settings) -> Result<Outcome, String> {
    with_array_len!(crossbeam_rtt, s)
}

fn crossbeam_rtt<const N: usize>(s: &Settings) -> Result<Outcome, String> {
    let ping = ArrayQueue::<[u8; N]>::new(s.capacity() as usize);
    let pong = ArrayQueue::<[u8; N]>::new(s.capacity() as usize);
    let stop = AtomicBool::new(false);
    let peer_done = AtomicBool::new(false);
    let deadline = Instant::now() + s.peer_limit();
    std::thread::scope(|scope| {
        let peer = scope.spawn(|| {
            let _done = SetOnDrop(&peer_done);
            s.pinning.pin_peer()?;
            let mut idle = 0u32;
            while !idle.is_multiple_of(4096) || !stop.load(Ordering::Relaxed) {
                match ping.pop() {
                    Some(mut msg) => {
                        while let Err(back) = pong.push(msg) {
                            msg = back;
                            std::hint::spin_loop();
                        }
                    }
                    None => {
                        idle = idle.wrapping_add(1);
                        std::hint::spin_loop();
                    }
                }
            }
            Ok::<(), String>(())
        });
        let mut patience = Patience::new(&peer_done, deadline);
        let mut msg = [0u8; N];
        let result = sample(
            s,
            || Ok(()),
            |seq| {
                stamp(&mut msg, seq);
                while ping.push(msg).is_err() {
                    patience.spin()?;
                }
                let reply = loop {
                    match pong.pop() {
                        Some(reply) => break reply,
                        None => patience.spin()?,
                    }
                };
                check_echo(&reply, seq)
            },
        );
        stop.store(true, Ordering::Relaxed);
        let joined = peer
            .join()
            .map_err(|_| "the crossbeam peer thread panicked".to_string())?;
        joined.and(result)
    })
}

/// Raises a flag when dropped (a thread's "I am done", even when it panics).
pub struct SetOnDrop<'a>(pub &'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
