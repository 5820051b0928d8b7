// SPDX-License-Identifier: MIT OR Apache-2.0
//! `shmq-bridge import` against a real `nats-server`: every message of the stream reaches the
//! queue at least once, duplicates only after an import bridge was killed; a full queue stops
//! the pulling.

mod common;

use async_nats::jetstream::stream::{Config, RetentionPolicy, StorageType};
use common::{import_args, message, message_count, runtime, stream_len, Bridge, NatsServer, Pace};
use shmq::{Options, Queue};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Creates a work-queue stream on `subject` and publishes `total` test messages into it.
async fn fill_stream(url: &str, stream: &str, subject: &str, total: u32) {
    let client = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.create_stream(Config {
        name: stream.into(),
        subjects: vec![subject.into()],
        retention: RetentionPolicy::WorkQueue,
        storage: StorageType::File,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut acks = std::collections::VecDeque::new();
    for seq in 0..total {
        let ack = js
            .publish(subject.to_owned(), message(0, seq, 64).into())
            .await
            .unwrap();
        acks.push_back(ack);
        if acks.len() >= 512 {
            acks.pop_front().unwrap().await.unwrap();
        }
    }
    for ack in acks {
        ack.await.unwrap();
    }
}

/// What a consumer of the local queue has seen: a count per sequence number.
struct Seen {
    counts: Vec<AtomicU8>,
    distinct: AtomicU64,
    total: AtomicU64,
    /// Copies that arrived with a delivery count above 1 (JetStream delivered them again).
    redelivered: AtomicU64,
}

impl Seen {
    fn new(n: usize) -> Arc<Seen> {
        Arc::new(Seen {
            counts: (0..n).map(|_| AtomicU8::new(0)).collect(),
            distinct: AtomicU64::new(0),
            total: AtomicU64::new(0),
            redelivered: AtomicU64::new(0),
        })
    }

    fn record(&self, msg: &[u8], deliveries: u32) {
        if deliveries > 1 {
            self.redelivered.fetch_add(1, Ordering::Relaxed);
        }
        let seq = common::key(msg).1 as usize;
        if self.counts[seq].fetch_add(1, Ordering::Relaxed) == 0 {
            self.distinct.fetch_add(1, Ordering::Relaxed);
        }
        self.total.fetch_add(1, Ordering::Relaxed);
    }
}

/// Receives from `path` into `seen` until `stop`, paced to take at least `over`.
fn consume(path: &std::path::Path, seen: Arc<Seen>, over: Duration, stop: Arc<AtomicBool>) {
    let queue = Queue::open(path).unwrap();
    let mut buf = vec![0u8; queue.max_message_size()];
    let pace = Pace::new(seen.counts.len() as u64, over);
    while !stop.load(Ordering::Relaxed) {
        pace.wait(seen.total.load(Ordering::Relaxed));
        match queue.recv_meta_timeout(&mut buf, Duration::from_millis(50)) {
            Ok(r) => seen.record(&buf[..r.len], r.deliveries),
            Err(shmq::Error::Timeout) => {}
            Err(e) => panic!("recv: {e}"),
        }
    }
}

#[test]
fn import_without_crashes_delivers_each_message_once_and_a_full_queue_stops_the_pulling() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let url = server.url();
    let total = 3000u32;
    runtime().block_on(fill_stream(&url, "IMPB", "imp.b", total));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b");
    let capacity = 64u32;
    let _queue = Queue::create(&path, Options::new(capacity, 64)).unwrap();
    let window = 32;
    let bridge = Bridge::spawn(
        dir.path(),
        "import",
        &import_args(&url, "IMPB", "b", window, None, &path),
    );
    // Nobody consumes yet: the queue fills, and the bridge stops pulling instead of dropping.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Queue::inspect(&path).unwrap().len < u64::from(capacity) {
        assert!(Instant::now() < deadline, "queue B never filled");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let left = runtime().block_on(stream_len(&url, "IMPB"));
    // In the stream still: all but what the queue holds, one batch pulled and the acks pending.
    assert!(
        left >= u64::from(total) - u64::from(capacity) - 2 * u64::from(window),
        "the bridge kept pulling into a full queue: {left} left in the stream"
    );

    let seen = Seen::new(total as usize);
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = {
        let (seen, stop, path) = (seen.clone(), stop.clone(), path.clone());
        std::thread::spawn(move || consume(&path, seen, Duration::ZERO, stop))
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.distinct.load(Ordering::Relaxed) < u64::from(total) {
        assert!(Instant::now() < deadline, "not all messages arrived");
        std::thread::sleep(Duration::from_millis(20));
    }
    let counters = bridge.terminate();
    stop.store(true, Ordering::Relaxed);
    consumer.join().unwrap();
    println!("import: {counters}");
    assert_eq!(
        seen.total.load(Ordering::Relaxed),
        u64::from(total),
        "duplicates without a crash"
    );
    assert_eq!(counters["sent"], u64::from(total));
    assert_eq!(counters["acknowledged"], u64::from(total));
    assert_eq!(counters["redelivered"], 0);
    assert!(counters["waited_full"].as_u64().unwrap() > 0);
    assert_eq!(runtime().block_on(stream_len(&url, "IMPB")), 0);
}

#[test]
fn import_delivers_every_message_at_least_once_across_kill_9_with_delivery_counts() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let url = server.url();
    let total = (message_count(200_000) / 4) as u32;
    runtime().block_on(fill_stream(&url, "IMPK", "imp.k", total));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b");
    let _queue = Queue::create(&path, Options::new(1024, 64)).unwrap();
    let window = 64;
    let args = import_args(&url, "IMPK", "k", window, Some(2), &path);
    // Paced over ~8 s, so that the kills land while messages flow.
    let seen = Seen::new(total as usize);
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = {
        let (seen, stop, path) = (seen.clone(), stop.clone(), path.clone());
        std::thread::spawn(move || consume(&path, seen, Duration::from_secs(8), stop))
    };
    let mut kills = 0u64;
    let mut redelivered = 0;
    let started = Instant::now();
    let mut run = 0;
    // Kill bridges while messages flow; every fourth stops cleanly and reports its counters.
    while seen.distinct.load(Ordering::Relaxed) < u64::from(total) {
        run += 1;
        let mut bridge = Bridge::spawn(dir.path(), &format!("import-{run}"), &args);
        std::thread::sleep(Duration::from_millis(200 + (run * 211 % 500)));
        if let Some(why) = bridge.exited() {
            panic!("import bridge exited: {why}");
        }
        if run.is_multiple_of(4) {
            redelivered += bridge.terminate()["redelivered"].as_u64().unwrap();
        } else {
            bridge.kill9();
            kills += 1;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "import too slow"
        );
    }
    // What the killed bridges took and had not acknowledged comes again after the ack wait.
    let bridge = Bridge::spawn(dir.path(), "import-last", &args);
    let deadline = Instant::now() + Duration::from_secs(60);
    while runtime().block_on(stream_len(&url, "IMPK")) > 0 {
        assert!(Instant::now() < deadline, "stream not drained");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    let last = bridge.terminate();
    redelivered += last["redelivered"].as_u64().unwrap();
    stop.store(true, Ordering::Relaxed);
    consumer.join().unwrap();
    let received = seen.total.load(Ordering::Relaxed);
    let duplicates = received - u64::from(total);
    println!(
        "import: {total} messages, {kills} kills, received {received}, duplicates {duplicates}, \
         redelivered (seen by the bridges that exited cleanly) {redelivered}, last bridge {last}"
    );
    assert_eq!(seen.distinct.load(Ordering::Relaxed), u64::from(total));
    // Every duplicate is a copy JetStream delivered again, and it says so in the queue.
    let marked = seen.redelivered.load(Ordering::Relaxed);
    assert!(
        marked >= duplicates,
        "{duplicates} duplicates, but only {marked} copies arrived with deliveries > 1"
    );
    // A killed bridge held at most one pulled batch and one window of unconfirmed acks.
    assert!(
        duplicates <= kills * 2 * u64::from(window),
        "{duplicates} duplicates for {kills} kills"
    );
}
