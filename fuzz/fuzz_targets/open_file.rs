// SPDX-License-Identifier: MIT OR Apache-2.0
//! `Queue::open` on arbitrary file contents: it returns a queue or a typed error, never a panic,
//! an out-of-bounds access or a hang; a queue it opens survives a round of non-blocking calls.
//!
//! The seeds in `fuzz/corpus/open_file` (a valid queue, one with messages in it, a truncated
//! one, wrong magic, wrong version) are made by `cargo run --example seed_corpus`.

#![no_main]

mod scratch;

use libfuzzer_sys::fuzz_target;
use shmq::Queue;

fuzz_target!(|data: &[u8]| {
    let path = scratch::path("open");
    std::fs::write(path, data).expect("write the scratch file");
    if let Ok(q) = Queue::open(path) {
        exercise(&q, data);
    }
    std::fs::remove_file(path).expect("remove the scratch file");
});

/// One of each non-blocking call, with a payload taken from the input.
fn exercise(q: &Queue, data: &[u8]) {
    let max = q.max_message_size();
    let msg = &data[..data.len().min(max + 1)];
    let _ = q.stats();
    let _ = q.try_send(msg);
    let _ = q.try_send_batch(&[&msg[..msg.len().min(1)], msg]);
    if let Ok(mut slot) = q.try_reserve() {
        assert_eq!(slot.len(), max);
        slot[..max.min(3)].copy_from_slice(&b"abc"[..max.min(3)]);
        let _ = slot.commit(max.min(3));
    }
    let mut buf = vec![0u8; max];
    if let Ok(n) = q.try_recv(&mut buf) {
        assert!(n <= max);
    }
    if let Ok(m) = q.try_recv_in_place() {
        assert!(m.len() <= max);
    }
    let mut longest = 0;
    if let Ok(n) = q.try_recv_batch(4, |m| longest = longest.max(m.len())) {
        assert!((1..=4).contains(&n));
    }
    assert!(longest <= max);
    let _ = q.stats();
}
