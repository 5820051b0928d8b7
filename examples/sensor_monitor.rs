// SPDX-License-Identifier: MIT OR Apache-2.0
//! Receives `Reading` structs sent by the C program `examples/c/sensor.c`, with
//! `shmq::Typed<Reading>`: no byte copying or casting by hand. Checks every reading against the
//! formula the sensor uses, prints a summary, and removes the queue once the sensor has closed it
//! and every reading is in.
//!
//! ```text
//! cc -std=c11 examples/c/sensor.c $(pkg-config --cflags --libs shmq) -o sensor
//! ./sensor /dev/shm/shmq-sensor 1000 & cargo run --example sensor_monitor -- /dev/shm/shmq-sensor
//! ```

use shmq::bytemuck::{Pod, Zeroable};
use shmq::{Error, Queue, Typed};
use std::time::{Duration, Instant};

/// `struct reading` of `sensor.c`: the same fields in the same order, `repr(C)`, no padding.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[bytemuck(crate = "shmq::bytemuck")]
struct Reading {
    seq: u64,
    celsius: f64,
    sensor: u32,
    flags: u32,
}

/// `READING_LAST` of `sensor.c`.
const LAST: u32 = 1;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/dev/shm/shmq-sensor".to_string());
    // The sensor creates the queue: wait up to 5 s for it to appear.
    let started = Instant::now();
    let readings: Typed<Reading> = loop {
        match Typed::open(&path) {
            Err(Error::NotFound(_)) if started.elapsed() < Duration::from_secs(5) => {
                std::thread::sleep(Duration::from_millis(10))
            }
            other => break other?,
        }
    };

    let (mut count, mut total, mut last_seen) = (0u64, 0.0, false);
    loop {
        match readings.recv_timeout(Duration::from_secs(5)) {
            Ok(r) => {
                let want = 20.0 + r.seq as f64 / 4.0;
                if r.seq != count || r.celsius != want || r.sensor as u64 != r.seq % 4 {
                    return Err(format!("reading {count} is wrong: {r:?}").into());
                }
                last_seen = r.flags & LAST != 0;
                total += r.celsius;
                count += 1;
            }
            Err(Error::Closed) => break,
            Err(e) => return Err(e.into()),
        }
    }
    if !last_seen {
        return Err(format!("closed after {count} readings, without the last one").into());
    }
    let mean = if count == 0 {
        0.0
    } else {
        total / count as f64
    };
    println!("sensor_monitor: {count} readings, mean {mean:.3} °C");
    Queue::unlink(&path)?;
    Ok(())
}
