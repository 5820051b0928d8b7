// SPDX-License-Identifier: MIT OR Apache-2.0
//! Sends numbered messages to a queue at a steady rate, then closes it. Run the `consumer`
//! example in another terminal, before, during or after this one: messages wait in the queue.
//!
//! ```text
//! cargo run --example producer -- [PATH] [COUNT] [PER_SECOND]
//! ```
//! Defaults: `/dev/shm/shmq-demo`, 30 messages, 10 per second.

use shmq::{Options, Queue};
use std::time::{Duration, Instant};

/// Where the demo queue lives unless a path is given.
const DEFAULT_PATH: &str = "/dev/shm/shmq-demo";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| DEFAULT_PATH.to_string());
    let usage = "usage: producer [PATH] [COUNT] [PER_SECOND]";
    let count: u64 = match args.next() {
        Some(s) => s.parse().map_err(|_| usage)?,
        None => 30,
    };
    let per_second: f64 = match args.next() {
        Some(s) => s.parse().map_err(|_| usage)?,
        None => 10.0,
    };
    if !(per_second > 0.0 && per_second.is_finite()) {
        return Err(usage.into());
    }

    // The same options as the consumer's, so whichever starts first creates the queue.
    let mut queue = Queue::open_or_create(&path, Options::new(1024, 256))?;
    if queue.is_closed() {
        // Left closed by an earlier run whose messages nobody collected: start afresh.
        println!("{path} was closed by an earlier run; replacing it");
        drop(queue);
        Queue::unlink(&path)?;
        queue = Queue::open_or_create(&path, Options::new(1024, 256))?;
    }

    let period = Duration::from_secs_f64(1.0 / per_second);
    let start = Instant::now();
    for n in 1..=count {
        let message = format!("message {n} of {count} from pid {}", std::process::id());
        // Waits only if the consumer has fallen a whole queue (1024 messages) behind.
        queue.send(message.as_bytes())?;
        println!("sent: {message}");
        // Sleep until the next tick of a fixed schedule, so the rate does not drift.
        let next_tick = start + period.mul_f64(n as f64);
        if let Some(pause) = next_tick.checked_duration_since(Instant::now()) {
            std::thread::sleep(pause);
        }
    }
    queue.close();
    println!("closed {path}: consumers stop once they have received every message");
    Ok(())
}
