// SPDX-License-Identifier: MIT OR Apache-2.0
//! Async round trips: both sides are async tasks on a current-thread tokio runtime, using
//! `send_async` / `recv_async`, woken by shmq's reactor (no runtime integration).
//!
//! - `shmq_async_busy`: the peer is active, so every await completes within the future's
//!   short look-again (compare `shmq_busy` and `shmq_blocking`).
//! - `shmq_async_idle`: before each ping (untimed) the peer is asleep in the reactor: the round
//!   trip pays for the reactor's helper waking the task (compare `shmq_blocking_idle`).
//!
//! The reactor's helper threads exit once idle (`reactor::IDLE_EXIT`); each row waits for that
//! before it returns, because the next row forks its peer from a single-threaded process.

use super::peer::Peer;
use super::rtt::{check_echo, stamp, QueuePair};
use super::{Outcome, Settings};
use hdrhistogram::Histogram;
use std::time::{Duration, Instant};

/// A current-thread runtime: the task runs on the calling thread.
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

/// The peer: an async task that receives a ping and sends it back, forever.
fn async_echo(queues: &QueuePair, size: usize) -> Result<(), String> {
    let q = queues.open()?;
    runtime()?.block_on(async {
        let mut buf = vec![0u8; size];
        loop {
            let n = q
                .ping
                .recv_async(&mut buf)
                .await
                .map_err(|e| e.to_string())?;
            q.pong
                .send_async(&buf[..n])
                .await
                .map_err(|e| e.to_string())?;
        }
    })
}

/// Starts an async echo peer; if it dies, the queues are closed so the parent's await ends.
fn async_peer(s: &Settings, queues: &QueuePair) -> Result<Peer, String> {
    let closer = queues.open()?;
    let size = s.size;
    Peer::spawn(s, || async_echo(queues, size), move || closer.close())
}

/// Measures round trips with `before` run untimed ahead of each, then waits for the reactor's
/// threads to exit. The whole measurement is one task (as `rtt::sample`, awaiting instead of
/// blocking): warm-up, then one sample per round trip.
fn async_rows(
    s: &Settings,
    tag: &str,
    mut before: impl FnMut(&QueuePair, &Peer) -> Result<(), String>,
) -> Result<Outcome, String> {
    let queues = QueuePair::create(s, tag)?;
    let peer = async_peer(s, &queues)?;
    let mut msg = vec![0u8; s.size];
    let mut reply = vec![0u8; s.size];
    let outcome = runtime()?.block_on(async {
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3)
            .map_err(|e| e.to_string())?;
        let mut seq = 0;
        let warm = Instant::now() + s.warmup;
        let mut end = None;
        loop {
            seq += 1;
            before(&queues, &peer)?;
            let t0 = Instant::now();
            stamp(&mut msg, seq);
            let sent = queues.ping.send_async(&msg).await;
            let got = queues.pong.recv_async(&mut reply).await;
            let t1 = Instant::now();
            let n = sent.and(got).map_err(|e| peer.explain(e.to_string()))?;
            check_echo(&reply[..n], seq)?;
            match end {
                None if t1 >= warm => end = Some(t1 + s.rtt_time),
                None => {}
                Some(end) => {
                    histogram.saturating_record(t1.duration_since(t0).as_nanos() as u64);
                    if t1 >= end {
                        return Ok(Outcome::Rtt(histogram));
                    }
                }
            }
        }
    });
    drop(peer);
    drop(queues);
    wait_single_threaded()?;
    outcome
}

/// Waits (at most a few seconds) until this process has one thread again.
fn wait_single_threaded() -> Result<(), String> {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let threads = std::fs::read_dir("/proc/self/task")
            .map_err(|e| format!("/proc/self/task: {e}"))?
            .count();
        if threads == 1 {
            return Ok(());
        }
        if Instant::now() > until {
            return Err(format!("{threads} threads left after the async rows"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `shmq_async_busy`: async tasks in both processes, the peer active.
pub fn shmq_async_busy(s: &Settings) -> Result<Outcome, String> {
    async_rows(s, "async-busy", |_, _| Ok(()))
}

/// `shmq_async_idle`: async tasks in both processes; before each ping the peer's task is
/// registered with the reactor and its helper asleep.
pub fn shmq_async_idle(s: &Settings) -> Result<Outcome, String> {
    let deadline = Instant::now() + s.peer_limit();
    async_rows(s, "async-idle", move |queues, peer| {
        while queues.ping.stats().recv_sleepers == 0 {
            if peer.is_gone() || Instant::now() > deadline {
                return Err("the peer process exited or stopped answering".into());
            }
            std::thread::sleep(Duration::from_micros(20));
        }
        // Counted just before its helper goes to sleep: give it time to get there.
        std::thread::sleep(Duration::from_micros(20));
        Ok(())
    })
}
