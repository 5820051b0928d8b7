// SPDX-License-Identifier: MIT OR Apache-2.0
//! One-way throughput: the peer sends as fast as it can, this process receives and counts.
//! After the warm-up, the rate is messages received over the time it took (measured by the
//! receiver, so a message counts once it has crossed).
//!
//! The scaling rows (`shmq_tput_2p2c`, `shmq_tput_4p4c`) run every producer and consumer in a
//! process of its own, all sharing the run's two CPUs; this process only reads their counters.

use super::peer::{Patience, Peer, Shared, SharedSafe};
use super::rtt::{with_array_len, SetOnDrop};
use super::spsc::SpscRing;
use super::{Outcome, Settings};
use crossbeam_queue::ArrayQueue;
use shmq::{Error, Options, Queue};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Calls `take` (which returns how many messages it received, 0 if none was ready) for the
/// warm-up, then counts for the row's time. Returns messages per second.
fn count(
    settings: &Settings,
    patience: &mut Patience<'_>,
    mut take: impl FnMut() -> Result<u64, String>,
) -> Result<Outcome, String> {
    let mut run = |until: Instant| -> Result<u64, String> {
        let mut total = 0;
        loop {
            for _ in 0..256 {
                match take()? {
                    0 => patience.spin()?,
                    n => total += n,
                }
            }
            if Instant::now() >= until {
                return Ok(total);
            }
        }
    };
    run(Instant::now() + settings.warmup)?;
    let start = Instant::now();
    let total = run(start + settings.tput_time)?;
    Ok(Outcome::Throughput(
        total as f64 / start.elapsed().as_secs_f64(),
    ))
}

fn queue(s: &Settings, tag: &str) -> Result<Queue, String> {
    Queue::create(s.queue_path(tag), Options::new(s.capacity(), s.size as u32))
        .map_err(|e| e.to_string())
}

/// `shmq_tput`: single messages, `try_send` against `try_recv`.
pub fn shmq_tput(s: &Settings) -> Result<Outcome, String> {
    let q = queue(s, "tput")?;
    let size = s.size;
    let peer = Peer::spawn(
        s,
        || {
            let q = Queue::open(q.path()).map_err(|e| e.to_string())?;
            let msg = vec![7u8; size];
            loop {
                match q.try_send(&msg) {
                    Ok(()) => {}
                    Err(Error::Full) => std::hint::spin_loop(),
                    Err(e) => return Err(e.to_string()),
                }
            }
        },
        || {},
    )?;
    let mut buf = vec![0u8; size];
    count(s, &mut peer.patience(), || match q.try_recv(&mut buf) {
        Ok(_) => Ok(1),
        Err(Error::Empty) => Ok(0),
        Err(e) => Err(e.to_string()),
    })
}

/// `shmq_tput_batch32`: `try_send_batch` of 32 messages against `try_recv_batch(32)`, each
/// message copied out (as the single-message rows do).
pub fn shmq_tput_batch32(s: &Settings) -> Result<Outcome, String> {
    const BATCH: usize = 32;
    let q = queue(s, "tput-batch")?;
    let size = s.size;
    let peer = Peer::spawn(
        s,
        || {
            let q = Queue::open(q.path()).map_err(|e| e.to_string())?;
            let msg = vec![7u8; size];
            let batch = [&msg[..]; BATCH];
            loop {
                match q.try_send_batch(&batch) {
                    Ok(_) => {}
                    Err(Error::Full) => std::hint::spin_loop(),
                    Err(e) => return Err(e.to_string()),
                }
            }
        },
        || {},
    )?;
    let mut buf = vec![0u8; size];
    count(s, &mut peer.patience(), || {
        match q.try_recv_batch(BATCH, |m| buf[..m.len()].copy_from_slice(m)) {
            Ok(n) => Ok(n as u64),
            Err(Error::Empty) => Ok(0),
            Err(e) => Err(e.to_string()),
        }
    })
}

/// `shmq_tput_2p2c`: two producer and two consumer processes, blocking `send` / `recv`.
pub fn shmq_tput_2p2c(s: &Settings) -> Result<Outcome, String> {
    shmq_tput_group(s, 2)
}

/// `shmq_tput_4p4c`: four producer and four consumer processes, blocking `send` / `recv`.
/// With two CPUs, four processes compete for each: a queue whose waiting starves the peer
/// that would let it proceed collapses here.
pub fn shmq_tput_4p4c(s: &Settings) -> Result<Outcome, String> {
    shmq_tput_group(s, 4)
}

/// Most consumers a scaling row runs.
const MAX_CONSUMERS: usize = 4;

/// A counter on its own 128-byte line, written by one consumer only.
#[repr(C, align(128))]
struct Received(AtomicU64);

/// Messages received so far by each consumer of a scaling row.
#[repr(C)]
struct Counts([Received; MAX_CONSUMERS]);

// SAFETY: atomics only, valid when zeroed.
unsafe impl SharedSafe for Counts {}

impl Counts {
    fn total(&self) -> u64 {
        self.0.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    }
}

/// `pairs` producer processes `send` into one queue and `pairs` consumer processes `recv` from
/// it; every process may run on either of the run's two CPUs. Each consumer publishes its count
/// on its own line; this process sleeps through the warm-up and the row's time and reads the
/// total at both ends: total messages received per second.
fn shmq_tput_group(s: &Settings, pairs: usize) -> Result<Outcome, String> {
    assert!(pairs <= MAX_CONSUMERS);
    let q = queue(s, &format!("tput-{pairs}p{pairs}c"))?;
    let counts = Shared::<Counts>::new(0)?;
    let size = s.size;
    let peer = Peer::spawn_group(
        s,
        2 * pairs,
        |index| {
            let q = Queue::open(q.path()).map_err(|e| e.to_string())?;
            if index < pairs {
                let msg = vec![7u8; size];
                loop {
                    q.send(&msg).map_err(|e| e.to_string())?;
                }
            }
            // The only writer of this line: a plain store, no locked instruction per message.
            let received = &counts.0[index - pairs].0;
            let mut buf = vec![0u8; size];
            let mut n = 0;
            loop {
                q.recv(&mut buf).map_err(|e| e.to_string())?;
                n += 1;
                received.store(n, Ordering::Relaxed);
            }
        },
        || {},
    )?;
    let wait = |until: Instant| -> Result<(), String> {
        while Instant::now() < until {
            if peer.is_gone() {
                return Err("a peer process exited or stopped answering".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    };
    wait(Instant::now() + s.warmup)?;
    let (start, before) = (Instant::now(), counts.total());
    wait(start + s.tput_time)?;
    let (received, elapsed) = (counts.total() - before, start.elapsed());
    if peer.is_gone() {
        return Err("a peer process exited or stopped answering".into());
    }
    Ok(Outcome::Throughput(received as f64 / elapsed.as_secs_f64()))
}

/// `spsc_ring_tput`: the minimal SPSC ring, the ceiling.
pub fn spsc_ring_tput(s: &Settings) -> Result<Outcome, String> {
    let ring = SpscRing::new(s.capacity(), s.size)?;
    let size = s.size;
    let peer = Peer::spawn(
        s,
        || {
            // SAFETY: the child is the ring's only producer.
            let mut tx = unsafe { ring.producer() };
            let msg = vec![7u8; size];
            loop {
                if !tx.try_push(&msg) {
                    std::hint::spin_loop();
                }
            }
        },
        || {},
    )?;
    // SAFETY: the parent is the ring's only consumer.
    let mut rx = unsafe { ring.consumer() };
    let mut buf = vec![0u8; size];
    count(s, &mut peer.patience(), || {
        Ok(u64::from(rx.try_pop(&mut buf)))
    })
}

/// `crossbeam_tput`: crossbeam-queue `ArrayQueue` between two threads of this process.
pub fn crossbeam_tput(s: &Settings) -> Result<Outcome, String> {
    with_array_len!(crossbeam_count, s)
}

fn crossbeam_count<const N: usize>(s: &Settings) -> Result<Outcome, String> {
    let q = ArrayQueue::<[u8; N]>::new(s.capacity() as usize);
    let stop = AtomicBool::new(false);
    let peer_done = AtomicBool::new(false);
    let deadline = Instant::now() + s.peer_limit();
    std::thread::scope(|scope| {
        let producer = scope.spawn(|| {
            let _done = SetOnDrop(&peer_done);
            s.pinning.pin_peer()?;
            let msg = [7u8; N];
            let mut full = 0u32;
            while !full.is_multiple_of(4096) || !stop.load(Ordering::Relaxed) {
                if q.push(msg).is_err() {
                    full = full.wrapping_add(1);
                    std::hint::spin_loop();
                }
            }
            Ok::<(), String>(())
        });
        let result = count(s, &mut Patience::new(&peer_done, deadline), || {
            Ok(u64::from(q.pop().map(std::hint::black_box).is_some()))
        });
        stop.store(true, Ordering::Relaxed);
        let joined = producer
            .join()
            .map_err(|_| "the crossbeam producer thread panicked".to_string())?;
        joined.and(result)
    })
}
