// SPDX-License-Identifier: MIT OR Apache-2.0
//! Writes the seed corpus of the `open_file` target into `fuzz/corpus/open_file`:
//! `cargo run --manifest-path fuzz/Cargo.toml --example seed_corpus`.
//!
//! The seeds are queues made by `Queue::create` (capacity 4, messages up to 16 bytes: 17 KB,
//! nearly all of it the participant table), one with messages in it, one closed, and three
//! that `open` must refuse: truncated, wrong magic, wrong version.

use shmq::{Options, Queue};
use std::path::Path;

fn main() {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/open_file");
    std::fs::create_dir_all(&out).expect("create the corpus directory");
    let dir = std::env::temp_dir().join(format!("shmq-seed-corpus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a scratch directory");

    // Each queue is closed (dropped) before its bytes are taken, so its participant entry is
    // free again, as in a file nobody has open.
    let make = |name: &str, fill: &dyn Fn(&Queue)| -> Vec<u8> {
        let path = dir.join(name);
        let q = Queue::create(&path, Options::new(4, 16)).expect("create a queue");
        fill(&q);
        drop(q);
        let bytes = std::fs::read(&path).expect("read the queue file");
        std::fs::remove_file(&path).expect("remove the queue file");
        bytes
    };
    let empty = make("empty", &|_| {});
    let with_messages = make("with_messages", &|q| {
        q.try_send(b"first").unwrap();
        q.try_send(b"second message").unwrap();
        q.try_send(b"").unwrap();
        let mut buf = [0u8; 16];
        q.try_recv(&mut buf).unwrap();
    });
    let closed = make("closed", &|q| {
        q.try_send(b"before close").unwrap();
        q.close();
    });
    let mut wrong_magic = empty.clone();
    wrong_magic[..8].copy_from_slice(b"NOTAQUEU");
    let mut wrong_version = empty.clone();
    wrong_version[8..12].copy_from_slice(&2u32.to_ne_bytes());

    let seeds: [(&str, &[u8]); 6] = [
        ("valid_empty", &empty),
        ("valid_with_messages", &with_messages),
        ("valid_closed", &closed),
        ("truncated", &empty[..1000]),
        ("wrong_magic", &wrong_magic),
        ("wrong_version", &wrong_version),
    ];
    for (name, bytes) in seeds {
        std::fs::write(out.join(name), bytes).expect("write a seed");
        println!("{name}: {} bytes", bytes.len());
    }
    std::fs::remove_dir(&dir).expect("remove the scratch directory");
}
