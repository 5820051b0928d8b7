// SPDX-License-Identifier: MIT OR Apache-2.0
//! Fanout in one command: an `orders` topic feeds three subscriptions, each an ordinary shmq
//! queue with its own consumers and its own policy when full:
//!
//! - `billing`: every order, two competing worker processes (each order billed once);
//! - `shipping`: only orders that start with `ship`, one worker process;
//! - `audit`: every order, `WhenFull::Drop`, and nobody reads it here: it fills up, then counts
//!   drops, and never holds the publisher back.
//!
//! ```text
//! cargo run --example fanout -- [ORDERS]
//! ```
//! This process creates the topic and the queues in a fresh directory under /dev/shm, starts the
//! workers (this program re-executed), publishes ORDERS orders (default 1,000), closes the
//! worker queues so the workers drain and exit, and prints what each subscription got.

use shmq::{Error, Queue, Subscription, Topic, TopicOptions, WhenFull};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The argument that makes this program a worker: `--worker QUEUE NAME`.
const WORKER: &str = "--worker";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(WORKER) {
        return worker(Path::new(&args[1]), &args[2]);
    }
    let orders: u32 = args.first().map_or(Ok(1_000), |n| n.parse())?;
    let dir = tempfile::Builder::new()
        .prefix("shmq-fanout-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())?;
    let path = |name: &str| dir.path().join(name);

    let topic = Topic::create(path("orders"), TopicOptions::new(128))?;
    topic.subscribe(path("billing"), Subscription::new(256, 128))?;
    topic.subscribe(path("shipping"), Subscription::new(256, 128).prefix("ship"))?;
    topic.subscribe(
        path("audit"),
        Subscription::new(64, 128).when_full(WhenFull::Drop),
    )?;

    let me = std::env::current_exe()?;
    let spawn = |queue: &str, name: &str| -> std::io::Result<Child> {
        Command::new(&me)
            .args([WORKER, &path(queue).display().to_string(), name])
            .stdout(Stdio::inherit())
            .spawn()
    };
    let workers = [
        spawn("billing", "billing-1")?,
        spawn("billing", "billing-2")?,
        spawn("shipping", "shipping-1")?,
    ];

    for n in 0..orders {
        let order = if n % 3 == 0 {
            format!("download order {n}: 1 e-book")
        } else {
            format!("ship order {n}: {} books", n % 5 + 1)
        };
        topic.publish(order.as_bytes())?; // waits while billing or shipping is full
    }
    for queue in ["billing", "shipping"] {
        Queue::open(path(queue))?.close(); // the workers drain what is left, then exit
    }
    for mut w in workers {
        w.wait()?;
    }

    println!("\n{orders} orders published to {}:", topic.path().display());
    for s in topic.subscriptions()? {
        let name = s.path.file_name().unwrap_or_default().to_string_lossy();
        println!(
            "  {name:<9} {:?}, prefix {:?}: delivered {}, dropped {}, still queued {}",
            s.when_full,
            String::from_utf8_lossy(&s.prefix),
            s.delivered,
            s.dropped,
            s.depth.unwrap_or(0)
        );
    }
    Ok(())
}

/// A worker: receives orders from `queue` until it is closed and drained, then says how many.
fn worker(queue: &Path, name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let q = Queue::open(queue)?;
    let mut buf = [0u8; 128];
    let mut handled = 0u32;
    let mut last = String::new();
    loop {
        match q.recv(&mut buf) {
            Ok(n) => {
                handled += 1;
                last = String::from_utf8_lossy(&buf[..n]).into_owned();
            }
            Err(Error::Closed) => break,
            Err(e) => return Err(e.into()),
        }
    }
    println!(
        "{name:<10} (pid {}) handled {handled} orders, the last: {last}",
        std::process::id()
    );
    Ok(())
}
