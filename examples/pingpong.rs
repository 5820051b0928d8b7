// SPDX-License-Identifier: MIT OR Apache-2.0
//! Round-trip latency between two processes: this process sends a message on one queue, its
//! partner (this program re-executed) echoes it back on another, N times; every round trip is
//! timed and the percentiles printed.
//!
//! ```text
//! cargo run --release --example pingpong -- [ROUND_TRIPS] [--blocking]
//! ```
//! By default both sides busy-poll with `try_send`/`try_recv` (100,000 round trips); with
//! `--blocking` they use `send`/`recv`, which sleep on a futex when there is nothing to do
//! (20,000 round trips by default). Both processes need a core each for busy-polling to mean
//! anything.

use shmq::{Error, Options, Queue};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The argument that makes this program act as the echoing partner.
const PARTNER: &str = "--partner";

/// How the two sides wait for each other.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// Spin on `try_send`/`try_recv`.
    BusyPoll,
    /// `send`/`recv`: spin briefly, then sleep on the queue's futex.
    Blocking,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::BusyPoll => "busy-poll",
            Mode::Blocking => "blocking",
        }
    }

    fn parse(name: &str) -> Option<Mode> {
        [Mode::BusyPoll, Mode::Blocking]
            .into_iter()
            .find(|m| m.name() == name)
    }

    fn send(self, queue: &Queue, msg: &[u8]) -> shmq::Result<()> {
        match self {
            Mode::Blocking => queue.send(msg),
            Mode::BusyPoll => loop {
                match queue.try_send(msg) {
                    Err(Error::Full) => std::hint::spin_loop(),
                    other => return other,
                }
            },
        }
    }

    /// Receives the next message. Every so often while waiting, asks `peer_alive`, and gives
    /// up if the peer is gone, so that neither process waits forever for a dead one.
    fn recv(
        self,
        queue: &Queue,
        buf: &mut [u8],
        mut peer_alive: impl FnMut() -> bool,
    ) -> Result<usize> {
        let mut spins: u64 = 0;
        loop {
            let received = match self {
                Mode::Blocking => match queue.recv_timeout(buf, Duration::from_secs(1)) {
                    Err(Error::Timeout) => Err(Error::Empty),
                    other => other,
                },
                Mode::BusyPoll => queue.try_recv(buf),
            };
            match received {
                Err(Error::Empty) => {
                    spins += 1;
                    if (self == Mode::Blocking || spins.is_multiple_of(1 << 20)) && !peer_alive() {
                        return Err("the other process went away".into());
                    }
                    std::hint::spin_loop();
                }
                other => return Ok(other?),
            }
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(PARTNER) {
        let [_, mode, ping, pong] = &args[..] else {
            return Err("usage: pingpong --partner MODE PING PONG".into());
        };
        let mode = Mode::parse(mode).ok_or("unknown mode")?;
        return partner(mode, Path::new(ping), Path::new(pong));
    }
    let mode = if args.iter().any(|a| a == "--blocking") {
        Mode::Blocking
    } else {
        Mode::BusyPoll
    };
    let round_trips = match args.iter().find(|a| !a.starts_with("--")) {
        Some(n) => n
            .parse::<usize>()
            .map_err(|_| "usage: pingpong [ROUND_TRIPS] [--blocking]")?
            .max(1),
        None if mode == Mode::Blocking => 20_000,
        None => 100_000,
    };
    measure(mode, round_trips)
}

/// Creates the two queues, starts the partner, times `round_trips` round trips and prints
/// their percentiles.
fn measure(mode: Mode, round_trips: usize) -> Result<()> {
    // Under /dev/shm if there is one, so the queues are memory, not disk.
    let dir = tempfile::Builder::new()
        .prefix("shmq-pingpong-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())?;
    let (ping_path, pong_path) = (dir.path().join("ping"), dir.path().join("pong"));
    let queues = Closing([
        Queue::create(&ping_path, Options::new(8, 64))?,
        Queue::create(&pong_path, Options::new(8, 64))?,
    ]);
    let [ping, pong] = &queues.0;

    let mut partner = Command::new(std::env::current_exe()?)
        .args([
            PARTNER.as_ref(),
            mode.name().as_ref(),
            ping_path.as_os_str(),
        ])
        .arg(&pong_path)
        .spawn()?;

    // Warm up caches, branch predictors and the partner's scheduling before timing.
    let warmup = (round_trips / 10).clamp(1, 10_000);
    let mut samples: Vec<u64> = Vec::with_capacity(round_trips);
    let mut buf = [0u8; 64];
    for i in 0..warmup + round_trips {
        let sent = (i as u64).to_le_bytes();
        let start = Instant::now();
        mode.send(ping, &sent)?;
        let len = mode.recv(pong, &mut buf, || matches!(partner.try_wait(), Ok(None)))?;
        let elapsed = start.elapsed();
        if buf[..len] != sent {
            return Err(format!("round trip {i}: the partner echoed something else").into());
        }
        if i >= warmup {
            samples.push(elapsed.as_nanos() as u64);
        }
    }
    drop(queues); // closes both queues: the partner sees `Closed` and exits
    let status = partner.wait()?;
    if !status.success() {
        return Err(format!("partner failed: {status}").into());
    }

    samples.sort_unstable();
    let mean = samples.iter().sum::<u64>() / samples.len() as u64;
    println!(
        "{round_trips} round trips between two processes ({}), nanoseconds:",
        mode.name()
    );
    println!(
        "  p50 {}  p99 {}  p99.9 {}  max {}  mean {mean}",
        percentile(&samples, 50.0),
        percentile(&samples, 99.0),
        percentile(&samples, 99.9),
        samples[samples.len() - 1],
    );
    Ok(())
}

/// The partner: echoes every message of `ping` back on `pong` until `ping` is closed.
fn partner(mode: Mode, ping: &Path, pong: &Path) -> Result<()> {
    let (ping, pong) = (Queue::open(ping)?, Queue::open(pong)?);
    let parent = std::os::unix::process::parent_id();
    let mut buf = [0u8; 64];
    loop {
        match mode.recv(&ping, &mut buf, || {
            std::os::unix::process::parent_id() == parent
        }) {
            Ok(len) => mode.send(&pong, &buf[..len])?,
            Err(e) if matches!(e.downcast_ref::<Error>(), Some(Error::Closed)) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// The `p`-th percentile (nearest rank) of sorted, non-empty `samples`.
fn percentile(samples: &[u64], p: f64) -> u64 {
    let rank = (p / 100.0 * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// Queues that are closed when dropped, so that the partner stops even if measuring fails.
struct Closing([Queue; 2]);

impl Drop for Closing {
    fn drop(&mut self) {
        for queue in &self.0 {
            queue.close();
        }
    }
}
