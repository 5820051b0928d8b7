// SPDX-License-Identifier: MIT OR Apache-2.0
//! Async round trips: both sides are async tasks on a current-thread tokio runtime, using
//! `send_async` / `recv_async`, woken by shmq's reactor (no runtime integration).
//!
//! - `shmq_async_busy`: the peer is active, so every await completes within the future's
//!   short look-again (compare `shmq_busy` and `shmq_blocking`).
//! - `shmq_async_idle`: before each ping (untimed) the peer is asleep in the reactor: the round
//!   trip pays for the reactor's helper waking the task (compare `shmq_blocking_idle`).
//! - `shmq_async_idle_1000q`: as `shmq_async_idle`, but the peer serves 1,000 ping queues, a
//!   task each (8 helper threads), and each ping goes to the next queue: what waiting on many
//!   queues adds to a wake-up.
//!
//! The reactor's helper threads exit once idle (`reactor::IDLE_EXIT`); each row waits for that
//! before it returns, because the next row forks its peer from a single-threaded process.

use super::peer::Peer;
use super::rtt::{check_echo, stamp};
use super::{Outcome, Settings};
use hdrhistogram::Histogram;
use shmq::{Options, Queue};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A current-thread runtime: the tasks run on the calling thread.
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

/// Ping queues (this side sends, the peer receives) and one pong queue back.
struct Queues {
    pings: Vec<Queue>,
    pong: Queue,
}

impl Queues {
    fn create(s: &Settings, tag: &str, pings: usize) -> Result<Self, String> {
        // Many queues: small ones (16 slots), so that 1,000 of them stay a few tens of MiB.
        let ping_capacity = if pings == 1 { s.capacity() } else { 16 };
        let create = |name: String, capacity| {
            Queue::create(s.queue_path(&name), Options::new(capacity, s.size as u32))
                .map_err(|e| e.to_string())
        };
        Ok(Queues {
            pings: (0..pings)
                .map(|i| create(format!("{tag}-ping{i}"), ping_capacity))
                .collect::<Result<_, _>>()?,
            pong: create(format!("{tag}-pong"), s.capacity())?,
        })
    }

    /// Another set of handles on the same queues (each process opens its own).
    fn open(&self) -> Result<Self, String> {
        let open = |q: &Queue| Queue::open(q.path()).map_err(|e| e.to_string());
        Ok(Queues {
            pings: self.pings.iter().map(open).collect::<Result<_, _>>()?,
            pong: open(&self.pong)?,
        })
    }

    fn close(&self) {
        self.pings.iter().for_each(|q| {
            q.close();
        });
        self.pong.close();
    }
}

/// The peer: an async task per ping queue that receives a ping and sends it back, forever.
fn async_echo(queues: &Queues, size: usize) -> Result<(), String> {
    let q = queues.open()?;
    let pong = Arc::new(q.pong);
    runtime()?.block_on(async {
        let tasks: Vec<_> = q
            .pings
            .into_iter()
            .map(|ping| {
                let pong = Arc::clone(&pong);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; size];
                    loop {
                        let n = ping.recv_async(&mut buf).await.map_err(|e| e.to_string())?;
                        pong.send_async(&buf[..n])
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    #[allow(unreachable_code)]
                    Ok::<(), String>(())
                })
            })
            .collect();
        for task in tasks {
            task.await.map_err(|e| e.to_string())??;
        }
        Ok(())
    })
}

/// Measures round trips (each ping to the next ping queue), with the peer asleep in the
/// reactor before each if `idle`, then waits for the reactor's threads to exit. The whole
/// measurement is one task (as `rtt::sample`, awaiting instead of blocking): warm-up, then one
/// sample per round trip.
fn async_rows(s: &Settings, tag: &str, pings: usize, idle: bool) -> Result<Outcome, String> {
    let queues = Queues::create(s, tag, pings)?;
    let closer = queues.open()?;
    let size = s.size;
    let peer = Peer::spawn(s, || async_echo(&queues, size), move || closer.close())?;
    let deadline = Instant::now() + s.peer_limit();
    let mut msg = vec![0u8; s.size];
    let mut reply = vec![0u8; s.size];
    let outcome = runtime()?.block_on(async {
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3)
            .map_err(|e| e.to_string())?;
        let mut seq = 0u64;
        let warm = Instant::now() + s.warmup;
        let mut end = None;
        loop {
            seq += 1;
            let ping = &queues.pings[seq as usize % pings];
            if idle {
                // Untimed: wait until the task serving `ping` is counted as a sleeper, then a
                // little longer for its helper to be back in futex_waitv.
                while ping.stats().recv_sleepers == 0 {
                    if peer.is_gone() || Instant::now() > deadline {
                        return Err("the peer process exited or stopped answering".into());
                    }
                    std::thread::sleep(Duration::from_micros(20));
                }
                std::thread::sleep(Duration::from_micros(20));
            }
            let t0 = Instant::now();
            stamp(&mut msg, seq);
            let sent = ping.send_async(&msg).await;
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
    async_rows(s, "async-busy", 1, false)
}

/// `shmq_async_idle`: async tasks in both processes; before each ping the peer's task is
/// registered with the reactor and its helper asleep.
pub fn shmq_async_idle(s: &Settings) -> Result<Outcome, String> {
    async_rows(s, "async-idle", 1, true)
}

/// `shmq_async_idle_1000q`: as `shmq_async_idle`, the peer waiting on 1,000 queues.
pub fn shmq_async_idle_1000q(s: &Settings) -> Result<Outcome, String> {
    async_rows(s, "async-1000q", 1000, true)
}
