// SPDX-License-Identifier: MIT OR Apache-2.0
//! Typed messages between C and Rust processes: the `struct reading` of `examples/c/sensor.c`,
//! sent from C with `shmq_send` and received in Rust with `Typed<Reading>`, and sent from Rust
//! with `Typed<Reading>` and received in C (`tests/c/typed_consumer.c`); each side checks every
//! field of every message.

mod common;

use common::{c_test_source, compile, example_source, queue_dir, spawn, Link};
use shmq_core::bytemuck::{Pod, Zeroable};
use shmq_core::{Error, Options, Queue, Typed};
use std::process::Command;
use std::time::Duration;

const READINGS: u64 = 10_000;
const LIMIT: Duration = Duration::from_secs(60);

/// `struct reading` of the C side (see `examples/c/sensor.c`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[bytemuck(crate = "shmq_core::bytemuck")]
struct Reading {
    seq: u64,
    celsius: f64,
    sensor: u32,
    flags: u32,
}

/// Reading `seq` of `count`, as the sensor makes it.
fn reading(seq: u64, count: u64) -> Reading {
    Reading {
        seq,
        celsius: 20.0 + seq as f64 / 4.0,
        sensor: (seq % 4) as u32,
        flags: u32::from(seq == count - 1),
    }
}

#[test]
fn a_c_sensor_sends_structs_that_rust_receives_typed() {
    let exe = compile("sensor", &[example_source("c/sensor.c")], Link::Static);
    let dir = queue_dir();
    let path = dir.path().join("sensor");
    let mut cmd = Command::new(exe);
    cmd.arg(&path).arg(READINGS.to_string());
    // The sensor creates the queue, fills it (64 slots) and waits for room: run it alongside.
    let sensor = spawn(cmd);
    let readings: Typed<Reading> = loop {
        match Typed::open(&path) {
            Err(Error::NotFound(_)) => std::thread::sleep(Duration::from_millis(5)),
            other => break other.unwrap(),
        }
    };
    let mut next = 0;
    loop {
        match readings.recv_timeout(LIMIT) {
            Ok(r) => {
                assert_eq!(r, reading(next, READINGS));
                next += 1;
            }
            Err(Error::Closed) => break,
            Err(e) => panic!("after {next} readings: {e}"),
        }
    }
    assert_eq!(next, READINGS);
    let out = sensor.wait(LIMIT);
    assert!(
        out.status.success(),
        "the sensor failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn rust_sends_structs_that_a_c_consumer_receives() {
    let exe = compile(
        "typed_consumer",
        &[c_test_source("typed_consumer.c")],
        Link::Shared,
    );
    let dir = queue_dir();
    let path = dir.path().join("readings");
    let readings = Queue::create(&path, Options::new(64, 24))
        .unwrap()
        .typed::<Reading>()
        .unwrap();
    let mut cmd = Command::new(exe);
    cmd.arg(&path).arg(READINGS.to_string());
    let consumer = spawn(cmd);
    for seq in 0..READINGS {
        readings
            .send_timeout(&reading(seq, READINGS), LIMIT)
            .unwrap();
    }
    readings.queue().close();
    let out = consumer.wait(LIMIT);
    assert!(
        out.status.success(),
        "the C consumer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("received {READINGS}")
    );
}

/// A queue whose maximum message size cannot hold the struct is refused when the typed handle
/// is made, with the sizes in the error.
#[test]
fn a_queue_too_small_for_the_struct_is_refused_on_open() {
    let dir = queue_dir();
    let path = dir.path().join("small");
    Queue::create(&path, Options::new(8, 16)).unwrap();
    assert_eq!(
        Typed::<Reading>::open(&path).unwrap_err(),
        Error::TooLarge { len: 24, max: 16 }
    );
}
