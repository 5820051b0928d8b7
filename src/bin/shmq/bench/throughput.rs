// SPDX-License-Identifier: MIT OR Apache-2.0
//! One-way throughput: the peer sends as fast as it can, this process receives and counts.
//! After the warm-up, the rate is messages received over the time it took (measured by the
//! receiver, so a message counts once it has crossed).

use super::peer::{Patience, Peer};
use super::rtt::{with_array_len, SetOnDrop};
use super::spsc::SpscRing;
use super::{Outcome, Settings};
use crossbeam_queue::ArrayQueue;
use shmq::{Error, Options, Queue};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

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
