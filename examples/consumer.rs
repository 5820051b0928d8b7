// SPDX-License-Identifier: MIT OR Apache-2.0
//! Receives and prints messages from a queue until it is closed and drained, then removes the
//! queue file. Run the `producer` example in another terminal.
//!
//! ```text
//! cargo run --example consumer -- [PATH]
//! ```
//! Default path: `/dev/shm/shmq-demo`. Several consumers may run at once: each message is
//! printed by exactly one of them.

use shmq::{Error, Options, Queue};

/// Where the demo queue lives unless a path is given.
const DEFAULT_PATH: &str = "/dev/shm/shmq-demo";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| DEFAULT_PATH.to_string());
    // The same options as the producer's, so whichever starts first creates the queue.
    let queue = Queue::open_or_create(&path, Options::new(1024, 256))?;
    println!("waiting for messages on {path} (Ctrl-C to stop)");

    let mut buf = vec![0u8; queue.max_message_size()];
    let mut received = 0u64;
    loop {
        match queue.recv(&mut buf) {
            Ok(len) => {
                received += 1;
                println!("received: {}", String::from_utf8_lossy(&buf[..len]));
            }
            Err(Error::Closed) => break,
            Err(e) => return Err(e.into()),
        }
    }

    println!("{path} is closed and drained after {received} messages; removing it");
    match Queue::unlink(&path) {
        // Another consumer may have removed it first.
        Ok(()) | Err(Error::NotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
