// SPDX-License-Identifier: MIT OR Apache-2.0
//! Exactly-once delivery across processes: 4 producer processes and 4 consumer processes move a
//! million unique messages through a 64-slot queue (so it wraps and fills constantly); every
//! message is received exactly once, intact, and each producer's messages keep their order in
//! every consumer's stream.

mod common;

use common::{Child, Role};
use shmq::{Error, Options, Queue};
use std::time::Duration;

const PRODUCERS: u32 = 4;
const CONSUMERS: u32 = 4;
const CAPACITY: u32 = 64;
const MAX_MESSAGE: u32 = 64;
/// Messages in all, per test.
const TOTAL: u32 = 1_000_000;
/// Bound on the whole exchange; a lost wake-up or a lost message makes the test fail here.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(50);
const BATCH: usize = 8;

/// The message producer `p` sends as its `seq`-th: `p`, `seq`, a checksum of both, then 0 to 16
/// filler bytes derived from `seq`, so lengths vary and a torn or mixed-up payload is detected.
fn encode(p: u32, seq: u32, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&p.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&checksum(p, seq).to_le_bytes());
    out.extend((0..seq % 17).map(|i| (seq as u8).wrapping_add(i as u8)));
}

fn checksum(p: u32, seq: u32) -> u64 {
    (u64::from(p) << 32 | u64::from(seq)).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5555
}

/// Checks a received payload and returns its key `p << 32 | seq`; panics on a damaged one.
fn decode(msg: &[u8]) -> u64 {
    assert!(msg.len() >= 16, "short message: {msg:?}");
    let p = u32::from_le_bytes(msg[0..4].try_into().unwrap());
    let seq = u32::from_le_bytes(msg[4..8].try_into().unwrap());
    let sum = u64::from_le_bytes(msg[8..16].try_into().unwrap());
    assert_eq!(sum, checksum(p, seq), "damaged message {msg:?}");
    let filler = &msg[16..];
    assert_eq!(filler.len() as u32, seq % 17, "wrong length: {msg:?}");
    for (i, b) in filler.iter().enumerate() {
        assert_eq!(
            *b,
            (seq as u8).wrapping_add(i as u8),
            "damaged filler {msg:?}"
        );
    }
    u64::from(p) << 32 | u64::from(seq)
}

/// How a process sends: each exercises a different path into the same claim protocol.
fn produce(role: &Role) {
    let q = Queue::open(role.path("queue")).unwrap();
    let p: u32 = role.arg("id");
    let count: u32 = role.arg("count");
    let mode: String = role.arg("mode");
    let start = common::monotonic_ns();
    let mut msg = Vec::with_capacity(MAX_MESSAGE as usize);
    match mode.as_str() {
        "send" => {
            for seq in 0..count {
                encode(p, seq, &mut msg);
                q.send(&msg).unwrap();
            }
        }
        "try_send" => {
            for seq in 0..count {
                encode(p, seq, &mut msg);
                loop {
                    match q.try_send(&msg) {
                        Ok(()) => break,
                        Err(Error::Full) => std::thread::yield_now(),
                        Err(e) => panic!("try_send: {e}"),
                    }
                }
            }
        }
        "send_batch" | "try_send_batch" => {
            let blocking = mode == "send_batch";
            let mut batch: Vec<Vec<u8>> = Vec::with_capacity(BATCH);
            let mut seq = 0;
            while seq < count {
                batch.clear();
                for s in seq..count.min(seq + BATCH as u32) {
                    let mut m = Vec::new();
                    encode(p, s, &mut m);
                    batch.push(m);
                }
                seq += batch.len() as u32;
                let mut rest = &batch[..];
                while !rest.is_empty() {
                    let sent = if blocking {
                        q.send_batch(rest)
                    } else {
                        q.try_send_batch(rest)
                    };
                    match sent {
                        Ok(n) => {
                            assert!((1..=rest.len()).contains(&n), "batch sent {n}");
                            rest = &rest[n..];
                        }
                        Err(Error::Full) if !blocking => std::thread::yield_now(),
                        Err(e) => panic!("{mode}: {e}"),
                    }
                }
            }
        }
        "reserve" => {
            for seq in 0..count {
                encode(p, seq, &mut msg);
                let mut slot = q.reserve().unwrap();
                slot[..msg.len()].copy_from_slice(&msg);
                slot.commit(msg.len()).unwrap();
            }
        }
        other => panic!("unknown producer mode {other}"),
    }
    role.report(&format!("{start} {}", common::monotonic_ns()));
}

/// How a process receives; it stops when the queue is closed and drained, then writes the keys
/// it received, in order, to its output file.
fn consume(role: &Role) {
    let q = Queue::open(role.path("queue")).unwrap();
    let mode: String = role.arg("mode");
    let mut keys: Vec<u64> = Vec::with_capacity(TOTAL as usize / CONSUMERS as usize * 2);
    let mut buf = [0u8; MAX_MESSAGE as usize];
    loop {
        let result = match mode.as_str() {
            "recv" => q.recv(&mut buf).map(|n| keys.push(decode(&buf[..n]))),
            "try_recv" => match q.try_recv(&mut buf) {
                Err(Error::Empty) => {
                    std::thread::yield_now();
                    continue;
                }
                other => other.map(|n| keys.push(decode(&buf[..n]))),
            },
            "recv_timeout" => match q.recv_timeout(&mut buf, Duration::from_millis(5)) {
                Err(Error::Timeout) => continue,
                other => other.map(|n| keys.push(decode(&buf[..n]))),
            },
            "recv_batch" => q
                .recv_batch(BATCH, |m| keys.push(decode(m)))
                .map(|n| assert!((1..=BATCH).contains(&n))),
            "try_recv_batch" => match q.try_recv_batch(BATCH, |m| keys.push(decode(m))) {
                Err(Error::Empty) => {
                    std::thread::yield_now();
                    continue;
                }
                other => other.map(|n| assert!((1..=BATCH).contains(&n))),
            },
            "recv_in_place" => q.recv_in_place().map(|m| keys.push(decode(&m))),
            other => panic!("unknown consumer mode {other}"),
        };
        match result {
            Ok(()) => {}
            Err(Error::Closed) => break,
            Err(e) => panic!("{mode}: {e}"),
        }
    }
    let bytes: Vec<u8> = keys.iter().flat_map(|k| k.to_le_bytes()).collect();
    std::fs::write(role.path("out"), bytes).unwrap();
    role.report(&format!("{}", common::monotonic_ns()));
}

/// Not a property: the entry point of the child processes these tests spawn (see `common`).
/// Ignored, so that a test run does not count it; the children run it with `--ignored`.
#[test]
#[ignore = "the entry point of child processes, not a test"]
fn child() {
    common::child_main(|role| match role.name() {
        "producer" => produce(role),
        "consumer" => consume(role),
        other => panic!("unknown role {other}"),
    });
}

/// Runs the exchange with these producer and consumer modes and checks exactly-once delivery
/// and per-producer order; prints the throughput.
fn exchange(name: &str, producer_modes: [&str; 4], consumer_modes: [&str; 4]) {
    let dir = common::tempdir();
    let path = dir.path().join("q");
    let q = Queue::create(&path, Options::new(CAPACITY, MAX_MESSAGE)).unwrap();
    let per_producer = TOTAL / PRODUCERS;
    let consumers: Vec<Child> = (0..CONSUMERS)
        .map(|c| {
            let out = dir.path().join(format!("consumer-{c}.bin"));
            Child::spawn(
                dir.path(),
                "consumer",
                &[
                    ("queue", &path.display()),
                    ("mode", &consumer_modes[c as usize]),
                    ("out", &out.display()),
                ],
            )
        })
        .collect();
    let producers: Vec<Child> = (0..PRODUCERS)
        .map(|p| {
            Child::spawn(
                dir.path(),
                "producer",
                &[
                    ("queue", &path.display()),
                    ("id", &p),
                    ("count", &per_producer),
                    ("mode", &producer_modes[p as usize]),
                ],
            )
        })
        .collect();
    let starts: Vec<u64> = common::wait_all(producers, EXCHANGE_TIMEOUT)
        .iter()
        .map(|r| r.split(' ').next().unwrap().parse().unwrap())
        .collect();
    // Every producer exited successfully: everything is sent. Consumers drain, then stop.
    assert!(q.close());
    let ends: Vec<u64> = common::wait_all(consumers, EXCHANGE_TIMEOUT)
        .iter()
        .map(|r| r.trim().parse().unwrap())
        .collect();
    let elapsed_ns = ends.iter().max().unwrap() - starts.iter().min().unwrap();

    let mut seen = vec![vec![0u8; per_producer as usize]; PRODUCERS as usize];
    let mut received = 0u64;
    for c in 0..CONSUMERS {
        let bytes = std::fs::read(dir.path().join(format!("consumer-{c}.bin"))).unwrap();
        let mut last: Vec<Option<u32>> = vec![None; PRODUCERS as usize];
        for chunk in bytes.chunks_exact(8) {
            let key = u64::from_le_bytes(chunk.try_into().unwrap());
            let (p, seq) = ((key >> 32) as usize, key as u32);
            assert!(
                p < PRODUCERS as usize && seq < per_producer,
                "bad key {key:#x}"
            );
            let count = &mut seen[p][seq as usize];
            *count += 1;
            assert_eq!(*count, 1, "message {seq} of producer {p} received twice");
            if let Some(prev) = last[p] {
                assert!(
                    seq > prev,
                    "consumer {c} received message {seq} of producer {p} after {prev}"
                );
            }
            last[p] = Some(seq);
            received += 1;
        }
    }
    for (p, counts) in seen.iter().enumerate() {
        let lost: Vec<usize> = (0..counts.len()).filter(|&s| counts[s] == 0).collect();
        assert!(
            lost.is_empty(),
            "{} messages of producer {p} were never received, first {:?}",
            lost.len(),
            &lost[..lost.len().min(10)]
        );
    }
    assert_eq!(received, u64::from(TOTAL));
    let stats = q.stats();
    assert_eq!(
        (stats.sent, stats.received, stats.len),
        (u64::from(TOTAL), u64::from(TOTAL), 0)
    );
    assert_eq!((stats.send_sleepers, stats.recv_sleepers), (0, 0));
    eprintln!(
        "{name}: {TOTAL} messages through capacity {CAPACITY}, {PRODUCERS} producer and \
         {CONSUMERS} consumer processes, in {:.2} s: {:.0} messages/s",
        elapsed_ns as f64 / 1e9,
        f64::from(TOTAL) / (elapsed_ns as f64 / 1e9)
    );
}

/// One-at-a-time calls, blocking and non-blocking, on both sides.
#[test]
fn every_message_claimed_exactly_once_across_processes() {
    exchange(
        "single calls",
        ["send", "send", "try_send", "try_send"],
        ["recv", "recv", "try_recv", "try_recv"],
    );
}

/// Batch and in-place calls mixed with single ones, on both sides.
#[test]
fn batch_and_in_place_calls_claim_exactly_once_across_processes() {
    exchange(
        "batch and in-place",
        ["send_batch", "try_send_batch", "reserve", "send"],
        [
            "recv_batch",
            "try_recv_batch",
            "recv_in_place",
            "recv_timeout",
        ],
    );
}
