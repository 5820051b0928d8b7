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
    fill_stream_sized(url, stream, subject, total, |_| 64).await
}

/// As `fill_stream`, message `seq` being `len(seq)` bytes long.
async fn fill_stream_sized(
    url: &str,
    stream: &str,
    subject: &str,
    total: u32,
    len: impl Fn(u32) -> usize,
) {
    let client = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    create_stream(&js, stream, subject).await;
    let mut acks = std::collections::VecDeque::new();
    for seq in 0..total {
        let ack = js
            .publish(subject.to_owned(), message(0, seq, len(seq)).into())
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

/// A work-queue stream on `subject`, with file storage.
async fn create_stream(js: &async_nats::jetstream::Context, stream: &str, subject: &str) {
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

/// Waits until `check` holds, failing with `what` after `limit`, or as soon as the bridge exits.
fn wait_for(bridge: &mut Bridge, limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        if let Some(why) = bridge.exited() {
            panic!("the import bridge exited before {what}: {why}");
        }
        assert!(Instant::now() < deadline, "not in {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn import_behind_a_queue_full_for_longer_than_the_ack_wait_delivers_each_message_exactly_once() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let url = server.url();
    let total = 1000u32;
    runtime().block_on(fill_stream(&url, "IMPF", "imp.f", total));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let capacity = 8u32;
    let _queue = Queue::create(&path, Options::new(capacity, 64)).unwrap();
    // An ack wait of 1 s; the bridge holds a pulled window of 256 behind the full queue.
    let mut bridge = Bridge::spawn(
        dir.path(),
        "import",
        &import_args(&url, "IMPF", "f", 256, Some(1), &path),
    );
    wait_for(
        &mut bridge,
        Duration::from_secs(30),
        "the queue filled",
        || Queue::inspect(&path).unwrap().len == u64::from(capacity),
    );
    // Full for five ack waits: without in-progress reports JetStream would deliver the pulled
    // messages again meanwhile, and both copies would reach the queue.
    std::thread::sleep(Duration::from_secs(5));
    assert!(bridge.exited().is_none(), "the bridge exited");

    let seen = Seen::new(total as usize);
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = {
        let (seen, stop, path) = (seen.clone(), stop.clone(), path.clone());
        std::thread::spawn(move || consume(&path, seen, Duration::ZERO, stop))
    };
    wait_for(
        &mut bridge,
        Duration::from_secs(60),
        "every message arrived",
        || seen.distinct.load(Ordering::Relaxed) == u64::from(total),
    );
    wait_for(
        &mut bridge,
        Duration::from_secs(30),
        "the stream drained",
        || runtime().block_on(stream_len(&url, "IMPF")) == 0,
    );
    let counters = bridge.terminate();
    stop.store(true, Ordering::Relaxed);
    consumer.join().unwrap();
    println!("import: {counters}");
    assert_eq!(
        seen.total.load(Ordering::Relaxed),
        u64::from(total),
        "messages delivered twice behind the full queue (redelivered {})",
        seen.redelivered.load(Ordering::Relaxed)
    );
    assert_eq!(counters["redelivered"], 0);
    assert!(counters["in_progress"].as_u64().unwrap() > 0);
}

/// The queue's messages now (received, so that the queue is empty after).
fn take_all(path: &std::path::Path) -> Vec<Vec<u8>> {
    let queue = Queue::open(path).unwrap();
    let mut buf = vec![0u8; queue.max_message_size()];
    let mut got = Vec::new();
    while let Ok(r) = queue.recv_meta_timeout(&mut buf, Duration::from_millis(50)) {
        got.push(buf[..r.len].to_vec());
    }
    got
}

#[test]
fn import_leaves_a_message_too_large_for_the_queue_in_the_stream_and_goes_on_with_the_others() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let url = server.url();
    let total = 1000u32;
    // Message 500 is larger than the queue's slots.
    runtime().block_on(fill_stream_sized(&url, "IMPO", "imp.o", total, |seq| {
        if seq == 500 {
            100
        } else {
            64
        }
    }));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o");
    let _queue = Queue::create(&path, Options::new(2048, 64)).unwrap();
    let mut bridge = Bridge::spawn(
        dir.path(),
        "import",
        &import_args(&url, "IMPO", "o", 256, None, &path),
    );
    // Every other message is sent and acknowledged; the large one stays, and the bridge runs.
    wait_for(
        &mut bridge,
        Duration::from_secs(30),
        "the others were acknowledged",
        || runtime().block_on(stream_len(&url, "IMPO")) == 1,
    );
    wait_for(
        &mut bridge,
        Duration::from_secs(30),
        "the queue held the others",
        || Queue::inspect(&path).unwrap().len == u64::from(total - 1),
    );
    let counters = bridge.terminate();
    println!("import: {counters}");
    assert_eq!(counters["oversized"], 1);
    assert_eq!(counters["sent"], u64::from(total - 1));
    assert_eq!(counters["acknowledged"], u64::from(total - 1));
    let got = take_all(&path);
    let seen = common::count_by_seq(got.iter().map(Vec::as_slice));
    assert_eq!(seen.len(), total as usize - 1);
    assert!(seen.values().all(|n| *n == 1) && !seen.contains_key(&500));
    assert_eq!(runtime().block_on(stream_len(&url, "IMPO")), 1);
}

#[test]
fn import_parks_a_message_too_large_for_the_queue_and_acknowledges_it_only_once_parked() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let url = server.url();
    let total = 1000u32;
    runtime().block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
        create_stream(&js, "PARKED", "parked.p").await;
    });
    runtime().block_on(fill_stream_sized(&url, "IMPP", "imp.p", total, |seq| {
        if seq == 500 {
            100
        } else {
            64
        }
    }));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    let _queue = Queue::create(&path, Options::new(2048, 64)).unwrap();
    let mut args = import_args(&url, "IMPP", "p", 256, None, &path);
    let queue_arg = args.pop().unwrap();
    args.extend([
        "--park-subject".to_owned(),
        "parked.p".to_owned(),
        queue_arg,
    ]);
    let mut bridge = Bridge::spawn(dir.path(), "import", &args);
    wait_for(
        &mut bridge,
        Duration::from_secs(30),
        "the stream drained",
        || runtime().block_on(stream_len(&url, "IMPP")) == 0,
    );
    let counters = bridge.terminate();
    println!("import: {counters}");
    assert_eq!(counters["parked"], 1);
    assert_eq!(counters["oversized"], 0);
    assert_eq!(counters["acknowledged"], u64::from(total));
    let got = take_all(&path);
    let seen = common::count_by_seq(got.iter().map(Vec::as_slice));
    assert_eq!(seen.len(), total as usize - 1);
    assert!(seen.values().all(|n| *n == 1) && !seen.contains_key(&500));
    // The parked copy: the message itself, and where it came from.
    runtime().block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
        let stream = js.get_stream("PARKED").await.unwrap();
        let parked = stream.get_raw_message(1).await.unwrap();
        assert_eq!(&parked.payload[..], &message(0, 500, 100)[..]);
        let headers = parked.headers;
        assert_eq!(headers.get("Shmq-Bridge-Stream").unwrap().as_str(), "IMPP");
        assert_eq!(headers.get("Shmq-Bridge-Sequence").unwrap().as_str(), "501");
        assert_eq!(
            headers.get("Shmq-Bridge-Subject").unwrap().as_str(),
            "imp.p"
        );
        assert_eq!(stream_len(&url, "PARKED").await, 1);
    });
}

#[test]
fn import_into_a_queue_closed_under_it_acknowledges_what_it_sent_and_exits_with_a_clear_error() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let url = server.url();
    let total = 5000u32;
    runtime().block_on(fill_stream(&url, "IMPC", "imp.c", total));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c");
    let queue = Queue::create(&path, Options::new(8192, 64)).unwrap();
    let mut bridge = Bridge::spawn(
        dir.path(),
        "import",
        &import_args(&url, "IMPC", "c", 512, None, &path),
    );
    // Closed while messages flow: in the middle of a pulled batch (1300 is 276 into the
    // third of 512), watched without sleeping so that the close lands while the bridge is
    // sending the batch, with acks handed to the client and not yet written to the server.
    let deadline = Instant::now() + Duration::from_secs(30);
    while queue.len() < 1300 {
        assert!(Instant::now() < deadline, "messages did not arrive");
        std::hint::spin_loop();
    }
    queue.close();
    let deadline = Instant::now() + Duration::from_secs(30);
    let why = loop {
        if let Some(why) = bridge.exited() {
            break why;
        }
        assert!(Instant::now() < deadline, "the bridge did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(why.contains("exit status: 1"), "{why}");
    assert!(why.contains("the queue was closed"), "{why}");
    // Every message is in exactly one place: the queue (acknowledged, gone from the stream) or
    // the stream (not sent, or given back).
    let in_queue = take_all(&path);
    let left = runtime().block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
        // The bridge's consumer goes, so that a consumer of the test's own reads what is left.
        js.get_stream("IMPC")
            .await
            .unwrap()
            .delete_consumer("c")
            .await
            .unwrap();
        common::drain_stream(&url, "IMPC", Duration::from_secs(2)).await
    });
    println!(
        "closed queue: {} in the queue, {} left in the stream",
        in_queue.len(),
        left.len()
    );
    let seen = common::count_by_seq(in_queue.iter().chain(&left).map(Vec::as_slice));
    let twice = seen.values().filter(|n| **n > 1).count();
    assert_eq!(
        twice, 0,
        "{twice} messages both in the queue and still in the stream (sent, never acknowledged)"
    );
    assert_eq!(seen.len(), total as usize, "lost messages");
}
