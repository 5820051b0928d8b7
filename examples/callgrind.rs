// SPDX-License-Identifier: MIT OR Apache-2.0
//! Runs one hot-path operation of shmq N times in one thread, so that
//! `valgrind --tool=callgrind` can count the instructions it takes (`.ci/callgrind` runs this at
//! two N and divides the difference by ΔN, so that start-up and set-up cancel out).
//!
//! ```text
//! callgrind OPERATION N
//! ```
//! Operations (64-byte messages, a queue of 1024 slots, one handle):
//! - `send-recv`: `try_send` of a message, then `try_recv` of it into a buffer (a copy each way);
//! - `try-recv-empty`: `try_recv` on an empty queue (what a polling consumer pays per poll);
//! - `batch32`: `try_send_batch` of 32 messages, then `try_recv_batch` of them, N / 32 times, so
//!   that the count per operation is per message sent and received.
//!
//! It uses only the library (no dev-dependency), so that `.ci/callgrind` can build it as a
//! library user would, without the test hooks the examples of this package are built with.

use shmq::{Error, Options, Queue};
use std::hint::black_box;

const SIZE: usize = 64;
const CAPACITY: u32 = 1024;
const USAGE: &str = "usage: callgrind send-recv|try-recv-empty|batch32 N";
const BATCH: usize = 32;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (operation, n) = match &args[..] {
        [op, n] => match n.parse::<u64>() {
            Ok(n) => (op.clone(), n),
            Err(_) => fail(USAGE),
        },
        _ => fail(USAGE),
    };
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let path = dir.join(format!("shmq-callgrind-{}", std::process::id()));
    let q = Queue::create(&path, Options::new(CAPACITY, SIZE as u32))
        .unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
    let result = match operation.as_str() {
        "send-recv" => send_recv(&q, n),
        "try-recv-empty" => try_recv_empty(&q, n),
        "batch32" => batch32(&q, n),
        _ => Err(USAGE.to_string()),
    };
    drop(q);
    let _ = std::fs::remove_file(&path);
    if let Err(e) = result {
        fail(&e);
    }
}

/// `n` × (`try_send` of 64 bytes, then `try_recv` of them).
fn send_recv(q: &Queue, n: u64) -> Result<(), String> {
    let msg = [7u8; SIZE];
    let mut buf = [0u8; SIZE];
    for _ in 0..n {
        q.try_send(black_box(&msg)).map_err(|e| e.to_string())?;
        let len = q.try_recv(black_box(&mut buf)).map_err(|e| e.to_string())?;
        black_box((len, &buf));
    }
    Ok(())
}

/// `n / 32` × (`try_send_batch` of 32 messages of 64 bytes, then `try_recv_batch` of them).
fn batch32(q: &Queue, n: u64) -> Result<(), String> {
    let msgs = [[7u8; SIZE]; BATCH];
    for _ in 0..n / BATCH as u64 {
        let sent = q
            .try_send_batch(black_box(&msgs[..]))
            .map_err(|e| e.to_string())?;
        let received = q
            .try_recv_batch(BATCH, |m| {
                black_box(m);
            })
            .map_err(|e| e.to_string())?;
        if (sent, received) != (BATCH, BATCH) {
            return Err(format!("sent {sent} and received {received} of {BATCH}"));
        }
    }
    Ok(())
}

/// `n` × `try_recv` on an empty queue.
fn try_recv_empty(q: &Queue, n: u64) -> Result<(), String> {
    let mut buf = [0u8; SIZE];
    for _ in 0..n {
        match q.try_recv(black_box(&mut buf)) {
            Err(Error::Empty) => {}
            other => return Err(format!("expected Empty, got {other:?}")),
        }
    }
    Ok(())
}

fn fail(message: &str) -> ! {
    eprintln!("callgrind: {message}");
    std::process::exit(2)
}
