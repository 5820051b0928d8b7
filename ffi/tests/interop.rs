// SPDX-License-Identifier: MIT OR Apache-2.0
//! C and Rust processes share one queue file: a C producer process and this Rust process as the
//! consumer exchange 1,000,000 messages, each received exactly once and in order; then a Rust
//! producer (this process) and a C consumer process do the same. The message stream is the one
//! of `tests/c/interop.h`; each side checks every byte, and both print messages/s.

mod common;

use common::{c_test_source, compile, queue_dir, spawn, Link};
use shmq_core::{Error, Options, Queue};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MESSAGES: u64 = 1_000_000;
const PEER_TIMEOUT: Duration = Duration::from_secs(10);
const LIMIT: Duration = Duration::from_secs(60);

/// The two directions share the two cores: one at a time, so that the figures mean something.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Message `i` of the stream (see `interop.h`): its bytes in `out`, its length returned.
fn message(i: u64, out: &mut [u8; 64]) -> usize {
    let len = 8 + (i % 57) as usize;
    out[..8].copy_from_slice(&i.to_ne_bytes());
    for k in 0..len - 8 {
        out[8 + k] = (i + k as u64) as u8;
    }
    len
}

fn report(direction: &str, link: Link, elapsed: Duration) {
    println!(
        "interop {direction} ({} libshmq): {MESSAGES} messages in {:.2} s = {:.0} messages/s",
        link.name(),
        elapsed.as_secs_f64(),
        MESSAGES as f64 / elapsed.as_secs_f64()
    );
}

#[test]
fn c_producer_to_rust_consumer_delivers_every_message_once_in_order() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let link = Link::Static;
    let exe = compile(
        "interop_producer",
        &[c_test_source("interop_producer.c")],
        link,
    );
    let dir = queue_dir();
    let path = dir.path().join("c-to-rust");
    let q = Queue::create(&path, Options::new(1024, 64)).unwrap();

    let started = Instant::now();
    let mut cmd = Command::new(exe);
    cmd.arg(&path).arg(MESSAGES.to_string());
    let producer = spawn(cmd);
    let mut next = 0u64;
    let mut want = [0u8; 64];
    let mut wrong = None;
    loop {
        match q.recv_batch_timeout(256, PEER_TIMEOUT, |msg| {
            let len = message(next, &mut want);
            if wrong.is_none() && msg != &want[..len] {
                wrong = Some((next, msg.to_vec()));
            }
            next += 1;
        }) {
            Ok(_) => {}
            Err(Error::Closed) => break,
            Err(e) => panic!("receive failed after {next} messages: {e}"),
        }
    }
    let elapsed = started.elapsed();
    let out = producer.wait(LIMIT);
    assert!(
        out.status.success(),
        "the C producer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(wrong, None, "a message arrived out of place");
    assert_eq!(next, MESSAGES, "every message arrives exactly once");
    let stats = q.stats();
    assert_eq!(
        (stats.sent, stats.received, stats.len),
        (MESSAGES, MESSAGES, 0)
    );
    report("C producer -> Rust consumer", link, elapsed);
}

#[test]
fn rust_producer_to_c_consumer_delivers_every_message_once_in_order() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let link = Link::Shared;
    let exe = compile(
        "interop_consumer",
        &[c_test_source("interop_consumer.c")],
        link,
    );
    let dir = queue_dir();
    let path = dir.path().join("rust-to-c");
    let q = Queue::create(&path, Options::new(1024, 64)).unwrap();

    let started = Instant::now();
    let mut cmd = Command::new(exe);
    cmd.arg(&path).arg(MESSAGES.to_string());
    let consumer = spawn(cmd);
    let mut buf = [0u8; 64];
    for i in 0..MESSAGES {
        let len = message(i, &mut buf);
        if let Err(e) = q.send_timeout(&buf[..len], PEER_TIMEOUT) {
            let out = consumer.wait(LIMIT);
            panic!(
                "send {i} failed: {e}; the C consumer said: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    q.close();
    let out = consumer.wait(LIMIT);
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the C consumer failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), format!("received {MESSAGES} in order"));
    let stats = q.stats();
    assert_eq!(
        (stats.sent, stats.received, stats.len),
        (MESSAGES, MESSAGES, 0)
    );
    report("Rust producer -> C consumer", link, elapsed);
}
