// SPDX-License-Identifier: MIT OR Apache-2.0
//! Topics (fanout, `src/topic.rs`): every semantic of the module doc, most of them with real
//! processes (the `common` child harness): exactly-once delivery to every subscription in each
//! publisher's order, `Drop` subscriptions that fill up, subscribe and unsubscribe during a
//! stream, prefix filters, all-or-nothing `try_publish`/`publish_timeout`, closed and removed
//! subscription queues, publishers SIGKILLed mid-publish, bad input and hostile bytes.

mod common;

use common::{Child, Rng, Role};
use shmq::topic::{MAX_PREFIX, MAX_SUBSCRIPTIONS};
use shmq::{Error, Options, Queue, Subscription, Topic, TopicOptions, WhenFull};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MAX_MESSAGE: u32 = 64;
/// Bound on each multi-process exchange; a wedged subscription makes the test fail here.
const TIMEOUT: Duration = Duration::from_secs(120);

/// The message publisher `p` sends as its `seq`-th: `p` and `seq`, little-endian.
fn key(p: u32, seq: u32) -> [u8; 8] {
    (u64::from(p) << 32 | u64::from(seq)).to_le_bytes()
}

fn unkey(msg: &[u8]) -> (u32, u32) {
    assert_eq!(msg.len(), 8, "damaged message {msg:?}");
    let k = u64::from_le_bytes(msg.try_into().unwrap());
    ((k >> 32) as u32, k as u32)
}

/// Drains `queue` without waiting and returns the messages.
fn drain(queue: &Queue) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match queue.try_recv(&mut buf) {
            Ok(n) => out.push(buf[..n].to_vec()),
            Err(Error::Empty | Error::Closed) => return out,
            Err(e) => panic!("receive failed: {e}"),
        }
    }
}

/// A publisher: `count` messages keyed by `id`, with `publish` or a `try_publish` loop.
fn publisher(role: &Role) {
    let topic = Topic::open(role.path("topic")).unwrap();
    let id: u32 = role.arg("id");
    let count: u32 = role.arg("count");
    let mode: String = role.arg("mode");
    let start = common::monotonic_ns();
    for seq in 0..count {
        let msg = key(id, seq);
        match mode.as_str() {
            "publish" => topic.publish(&msg).unwrap(),
            "try" => loop {
                match topic.try_publish(&msg) {
                    Ok(()) => break,
                    Err(Error::Full) => std::thread::yield_now(),
                    Err(e) => panic!("try_publish: {e}"),
                }
            },
            other => panic!("unknown mode {other}"),
        }
    }
    drop(topic); // adds the last deliveries to the counters
    role.report(&format!("{start} {}", common::monotonic_ns()));
}

/// A consumer: receives until the queue is closed and drained, writes the keys to `out`.
fn consumer(role: &Role) {
    let queue = Queue::open(role.path("queue")).unwrap();
    let mut buf = [0u8; MAX_MESSAGE as usize];
    let mut keys = Vec::new();
    loop {
        match queue.recv(&mut buf) {
            Ok(n) => keys.extend_from_slice(&buf[..n]),
            Err(Error::Closed) => break,
            Err(e) => panic!("recv: {e}"),
        }
    }
    std::fs::write(role.path("out"), keys).unwrap();
    role.report(&common::monotonic_ns().to_string());
}

/// A publisher that publishes 0, 1, 2, ... until the file `stop` exists, then reports how many.
fn streamer(role: &Role) {
    let topic = Topic::open(role.path("topic")).unwrap();
    let stop = role.path("stop");
    let mut seq = 0u32;
    while !seq.is_multiple_of(64) || !stop.exists() {
        topic.publish(&key(0, seq)).unwrap();
        seq += 1;
    }
    role.report(&seq.to_string());
}

/// Not a test: the entry point of the child processes these tests spawn (see `common`).
/// Ignored, so that a test run does not count it; the children run it with `--ignored`.
#[test]
#[ignore = "the entry point of child processes, not a test"]
fn child() {
    common::child_main(|role| match role.name() {
        "publisher" => publisher(role),
        "consumer" => consumer(role),
        "streamer" => streamer(role),
        other => panic!("unknown role {other}"),
    });
}

/// Messages per publisher in the exactly-once test: 20,000 in the (debug) test suite, so that it
/// runs in seconds on a loaded 2-core machine; `SHMQ_TOPIC_MESSAGES=200000` with `--release`
/// runs the figure (see the README for the command and the measured rate).
fn messages_per_publisher() -> u32 {
    std::env::var("SHMQ_TOPIC_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// 2 publisher processes (one with `publish`, one with `try_publish`) × 3 `Block`
/// subscriptions × 2 consumer processes each, through 64-slot queues that fill constantly: every
/// subscription receives every message exactly once, each publisher's in order in every
/// consumer's stream. Beside them a 64-slot `Drop` subscription with no consumer fills up and
/// counts the rest as drops, and holds nobody back.
#[test]
fn every_subscription_receives_every_message_exactly_once_in_publisher_order() {
    const SUBS: usize = 3;
    const CONSUMERS: usize = 2;
    const PUBLISHERS: u32 = 2;
    let per_publisher = messages_per_publisher();
    let dir = common::tempdir();
    let topic_path = dir.path().join("topic");
    let topic = Topic::create(&topic_path, TopicOptions::new(MAX_MESSAGE)).unwrap();
    let queues: Vec<PathBuf> = (0..SUBS)
        .map(|s| dir.path().join(format!("sub-{s}")))
        .collect();
    for q in &queues {
        topic
            .subscribe(q, Subscription::new(64, MAX_MESSAGE))
            .unwrap();
    }
    let audit = dir.path().join("audit");
    topic
        .subscribe(
            &audit,
            Subscription::new(64, MAX_MESSAGE).when_full(WhenFull::Drop),
        )
        .unwrap();
    let consumers: Vec<Child> = (0..SUBS * CONSUMERS)
        .map(|c| {
            let out = dir.path().join(format!("consumer-{c}.bin"));
            Child::spawn(
                dir.path(),
                "consumer",
                &[
                    ("queue", &queues[c / CONSUMERS].display()),
                    ("out", &out.display()),
                ],
            )
        })
        .collect();
    let publishers: Vec<Child> = (0..PUBLISHERS)
        .map(|p| {
            Child::spawn(
                dir.path(),
                "publisher",
                &[
                    ("topic", &topic_path.display()),
                    ("id", &p),
                    ("count", &per_publisher),
                    ("mode", &["publish", "try"][p as usize]),
                ],
            )
        })
        .collect();
    let starts: Vec<u64> = common::wait_all(publishers, TIMEOUT)
        .iter()
        .map(|r| r.split(' ').next().unwrap().parse().unwrap())
        .collect();
    for q in &queues {
        Queue::open(q).unwrap().close();
    }
    let ends: Vec<u64> = common::wait_all(consumers, TIMEOUT)
        .iter()
        .map(|r| r.trim().parse().unwrap())
        .collect();
    let elapsed = (ends.iter().max().unwrap() - starts.iter().min().unwrap()) as f64 / 1e9;
    let total = u64::from(per_publisher) * u64::from(PUBLISHERS);
    println!(
        "{total} messages published to {SUBS} Block subscriptions (+1 Drop) in {elapsed:.3} s: \
         {:.0} publishes/s, {:.0} deliveries/s",
        total as f64 / elapsed,
        (total * SUBS as u64) as f64 / elapsed
    );

    for (s, q) in queues.iter().enumerate() {
        let mut seen = vec![vec![false; per_publisher as usize]; PUBLISHERS as usize];
        for c in s * CONSUMERS..(s + 1) * CONSUMERS {
            let bytes = std::fs::read(dir.path().join(format!("consumer-{c}.bin"))).unwrap();
            let mut last: Vec<Option<u32>> = vec![None; PUBLISHERS as usize];
            for chunk in bytes.chunks_exact(8) {
                let (p, seq) = unkey(chunk);
                assert!(p < PUBLISHERS && seq < per_publisher, "bad key {p}/{seq}");
                let slot = &mut seen[p as usize][seq as usize];
                assert!(
                    !*slot,
                    "subscription {s}: message {seq} of {p} received twice"
                );
                *slot = true;
                if let Some(prev) = last[p as usize] {
                    assert!(seq > prev, "subscription {s}: {p}'s {seq} after {prev}");
                }
                last[p as usize] = Some(seq);
            }
        }
        let lost = seen.iter().flatten().filter(|s| !**s).count();
        assert_eq!(
            lost,
            0,
            "subscription {s} ({}) lost {lost} messages",
            q.display()
        );
    }

    let subs = topic.subscriptions().unwrap();
    for info in &subs[..SUBS] {
        assert_eq!(info.when_full, WhenFull::Block);
        assert_eq!((info.delivered, info.dropped), (total, 0), "{info:?}");
        assert_eq!(info.depth, Some(0));
    }
    let audit_info = &subs[SUBS];
    assert_eq!(audit_info.path, audit);
    assert_eq!(audit_info.when_full, WhenFull::Drop);
    assert_eq!(
        audit_info.depth,
        Some(64),
        "the Drop subscription filled up"
    );
    assert_eq!(audit_info.delivered, 64);
    assert_eq!(
        audit_info.dropped,
        total - 64,
        "every other message counted a drop"
    );
    assert_eq!(topic.stats().unwrap().interrupted_publishes, 0);
}

/// Subscribing and unsubscribing while a publisher process streams: the new subscription gets
/// every message from some point on, the removed one every message up to some point, with no
/// gap in either, and both points fall inside the stream.
#[test]
fn subscribe_and_unsubscribe_during_a_stream() {
    let dir = common::tempdir();
    let topic_path = dir.path().join("topic");
    let topic = Topic::create(&topic_path, TopicOptions::new(MAX_MESSAGE)).unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    topic
        .subscribe(&a, Subscription::new(1024, MAX_MESSAGE))
        .unwrap();
    // `b` exists before it is subscribed: subscribed as it is.
    drop(Queue::create(&b, Options::new(1024, 128)).unwrap());
    let stop = dir.path().join("stop");
    let got_a = Arc::new(Mutex::new(Vec::new()));
    let got_b = Arc::new(Mutex::new(Vec::new()));
    let drainer = |path: PathBuf, into: Arc<Mutex<Vec<u32>>>| {
        std::thread::spawn(move || {
            let q = Queue::open(path).unwrap();
            let mut buf = [0u8; 128];
            loop {
                match q.recv(&mut buf) {
                    Ok(n) => into.lock().unwrap().push(unkey(&buf[..n]).1),
                    Err(Error::Closed) => return,
                    Err(e) => panic!("recv: {e}"),
                }
            }
        })
    };
    let threads = [
        drainer(a.clone(), got_a.clone()),
        drainer(b.clone(), got_b.clone()),
    ];
    let count = |v: &Arc<Mutex<Vec<u32>>>| v.lock().unwrap().len();
    let streamer = Child::spawn(
        dir.path(),
        "streamer",
        &[("topic", &topic_path.display()), ("stop", &stop.display())],
    );
    common::wait_until(TIMEOUT, "a stream into a", || count(&got_a) >= 2000);
    topic
        .subscribe(&b, Subscription::new(0, 0).when_full(WhenFull::Block))
        .unwrap();
    common::wait_until(TIMEOUT, "b to receive", || count(&got_b) >= 2000);
    topic.unsubscribe(&a).unwrap();
    let b_then = count(&got_b);
    common::wait_until(TIMEOUT, "b to go on receiving", || {
        count(&got_b) >= b_then + 2000
    });
    std::fs::write(&stop, b"").unwrap();
    let published: u32 = streamer.wait(TIMEOUT).trim().parse().unwrap();
    Queue::open(&a).unwrap().close();
    Queue::open(&b).unwrap().close();
    for t in threads {
        t.join().unwrap();
    }
    let (a_got, b_got) = (got_a.lock().unwrap(), got_b.lock().unwrap());
    let j = a_got.len() as u32;
    assert_eq!(*a_got, (0..j).collect::<Vec<_>>(), "a: a gap-free prefix");
    let k = b_got[0];
    assert_eq!(
        *b_got,
        (k..published).collect::<Vec<_>>(),
        "b: a gap-free suffix"
    );
    assert!(
        k > 0 && j < published,
        "both changes fell inside the stream"
    );
    assert!(
        k <= j,
        "b was subscribed before a was unsubscribed: {k} > {j}"
    );
    let subs = topic.subscriptions().unwrap();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].path, b);
}

/// Prefix filters: each subscription gets exactly the messages that start with its prefix.
#[test]
fn prefix_filters_select_the_messages_a_subscription_gets() {
    let dir = common::tempdir();
    let topic = Topic::create(dir.path().join("t"), TopicOptions::new(MAX_MESSAGE)).unwrap();
    let sub = |name: &str, prefix: &[u8]| {
        let path = dir.path().join(name);
        topic
            .subscribe(&path, Subscription::new(64, MAX_MESSAGE).prefix(prefix))
            .unwrap();
        Queue::open(path).unwrap()
    };
    let (all, books, book_42) = (
        sub("all", b""),
        sub("books", b"book"),
        sub("b42", b"book 42"),
    );
    for msg in [
        &b"book 1"[..],
        b"pen 7",
        b"book 42",
        b"book 420",
        b"boo",
        b"",
    ] {
        topic.publish(msg).unwrap();
    }
    let texts = |q: &Queue| drain(q);
    assert_eq!(texts(&all).len(), 6);
    assert_eq!(
        texts(&books),
        [&b"book 1"[..], b"book 42", b"book 420"].map(|m| m.to_vec())
    );
    assert_eq!(
        texts(&book_42),
        [&b"book 42"[..], b"book 420"].map(|m| m.to_vec())
    );
    let infos = topic.subscriptions().unwrap();
    assert_eq!(infos[1].prefix, b"book");
    assert_eq!(
        infos.iter().map(|i| i.delivered).collect::<Vec<_>>(),
        [6, 3, 2]
    );
}

/// `try_publish` and `publish_timeout` deliver everywhere or nowhere: with one `Block`
/// subscription full, the other gets nothing (its reservation is cancelled, a tombstone its
/// consumers skip), `Drop` subscriptions included; `publish_timeout` waits about its timeout.
/// Once there is room, the next publish reaches all of them.
#[test]
fn try_publish_and_publish_timeout_are_all_or_nothing() {
    let dir = common::tempdir();
    let topic = Topic::create(dir.path().join("t"), TopicOptions::new(MAX_MESSAGE)).unwrap();
    for (name, cap) in [("roomy", 64), ("tight", 2)] {
        topic
            .subscribe(dir.path().join(name), Subscription::new(cap, MAX_MESSAGE))
            .unwrap();
    }
    topic
        .subscribe(
            dir.path().join("drop"),
            Subscription::new(64, MAX_MESSAGE).when_full(WhenFull::Drop),
        )
        .unwrap();
    let roomy = Queue::open(dir.path().join("roomy")).unwrap();
    let tight = Queue::open(dir.path().join("tight")).unwrap();
    let dropq = Queue::open(dir.path().join("drop")).unwrap();
    topic.try_publish(b"one").unwrap();
    topic.try_publish(b"two").unwrap();
    for _ in 0..3 {
        assert!(matches!(topic.try_publish(b"three"), Err(Error::Full)));
    }
    let start = Instant::now();
    assert!(matches!(
        topic.publish_timeout(b"three", Duration::from_millis(50)),
        Err(Error::Timeout)
    ));
    assert!(start.elapsed() >= Duration::from_millis(50));
    assert_eq!(drain(&roomy), [b"one".to_vec(), b"two".to_vec()]);
    assert_eq!(drain(&dropq), [b"one".to_vec(), b"two".to_vec()]);
    assert_eq!(drain(&tight), [b"one".to_vec(), b"two".to_vec()]);
    topic.try_publish(b"four").unwrap();
    for q in [&roomy, &tight, &dropq] {
        assert_eq!(drain(q), [b"four".to_vec()]);
    }
    // The retried try_publish tried the full queue first: at most the first attempt reserved
    // (and cancelled) a slot in the roomy one.
    assert!(roomy.stats().cancelled_sends <= 2, "{:?}", roomy.stats());
    let infos = topic.subscriptions().unwrap();
    assert_eq!(
        infos
            .iter()
            .map(|i| (i.delivered, i.dropped))
            .collect::<Vec<_>>(),
        [(3, 0), (3, 0), (3, 0)]
    );
}

/// A blocking `publish` waits for room in a full `Block` subscription and completes when a
/// consumer makes some; it never waits for a `Drop` one.
#[test]
fn publish_waits_for_a_full_block_subscription_but_never_for_a_drop_one() {
    let dir = common::tempdir();
    let topic = Topic::create(dir.path().join("t"), TopicOptions::new(MAX_MESSAGE)).unwrap();
    let slow = dir.path().join("slow");
    topic
        .subscribe(&slow, Subscription::new(2, MAX_MESSAGE))
        .unwrap();
    topic
        .subscribe(
            dir.path().join("drop"),
            Subscription::new(2, MAX_MESSAGE).when_full(WhenFull::Drop),
        )
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let consumer = {
        let (slow, done) = (slow.clone(), done.clone());
        std::thread::spawn(move || {
            let q = Queue::open(slow).unwrap();
            // The third publish waits for room: it sleeps on the full queue as a sender.
            common::wait_until(TIMEOUT, "the publish to wait for room", || {
                q.stats().send_sleepers == 1
            });
            assert!(!done.load(Ordering::SeqCst), "publish did not wait");
            let mut buf = [0u8; 64];
            for _ in 0..3 {
                q.recv(&mut buf).unwrap();
            }
        })
    };
    for msg in [b"a", b"b", b"c"] {
        topic.publish(msg).unwrap();
    }
    done.store(true, Ordering::SeqCst);
    consumer.join().unwrap();
    let infos = topic.subscriptions().unwrap();
    assert_eq!((infos[1].delivered, infos[1].dropped), (2, 1));
}

/// A closed subscription queue is skipped: publishes succeed, each matching message counts a
/// drop there, and the others still get everything.
#[test]
fn a_closed_subscription_queue_is_skipped_and_counts_drops() {
    let dir = common::tempdir();
    let topic = Topic::create(dir.path().join("t"), TopicOptions::new(MAX_MESSAGE)).unwrap();
    let (open, closed) = (dir.path().join("open"), dir.path().join("closed"));
    for q in [&open, &closed] {
        topic
            .subscribe(q, Subscription::new(2, MAX_MESSAGE))
            .unwrap();
    }
    topic.publish(b"before").unwrap();
    Queue::open(&closed).unwrap().close();
    let open_q = Queue::open(&open).unwrap();
    for i in 0..10u8 {
        topic.try_publish(&[i]).unwrap();
        assert_eq!(drain(&open_q).len(), 1 + usize::from(i == 0));
    }
    let infos = topic.subscriptions().unwrap();
    assert_eq!((infos[1].delivered, infos[1].dropped), (1, 10));
    assert!(infos[1].queue.as_ref().unwrap().closed);
    assert_eq!(drain(&Queue::open(&closed).unwrap()), [b"before".to_vec()]);
}

/// A subscription whose queue file is removed ends: a publisher blocked on it (it is full, and
/// nobody consumes) notices within the removal check and goes on; the subscription leaves the
/// topic; a publisher that opens the topic afterwards never sees it.
#[test]
fn a_removed_subscription_queue_ends_its_subscription() {
    let dir = common::tempdir();
    let topic_path = dir.path().join("t");
    let topic = Topic::create(&topic_path, TopicOptions::new(MAX_MESSAGE)).unwrap();
    let (kept, gone) = (dir.path().join("kept"), dir.path().join("gone"));
    topic
        .subscribe(&kept, Subscription::new(64, MAX_MESSAGE))
        .unwrap();
    topic
        .subscribe(&gone, Subscription::new(2, MAX_MESSAGE))
        .unwrap();
    topic.publish(b"1").unwrap();
    topic.publish(b"2").unwrap();
    let holder = Queue::open(&gone).unwrap(); // a consumer that still has it open
    Queue::unlink(&gone).unwrap();
    let start = Instant::now();
    topic.publish(b"3").unwrap(); // `gone` is full: only its removal lets this through
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(drain(&holder), [b"1".to_vec(), b"2".to_vec()]);
    let infos = topic.subscriptions().unwrap();
    assert_eq!(infos.len(), 1);
    assert_eq!(infos[0].path, kept);
    assert_eq!(infos[0].delivered, 3);
    // Removed while no publisher had it open: ended when one opens the subscriptions.
    topic
        .subscribe(&gone, Subscription::new(2, MAX_MESSAGE))
        .unwrap();
    Queue::unlink(&gone).unwrap();
    let other = Topic::open(&topic_path).unwrap();
    other.try_publish(b"4").unwrap();
    assert_eq!(other.subscriptions().unwrap().len(), 1);
}

/// A `Drop` subscription whose queue is replaced (`rm` + `create`, to resize it) while a
/// publisher has the old one open and full: the publisher notices within `REMOVAL_CHECK` of a
/// failed offer, reopens the path, and from then on every message goes into the new queue
/// instead of being counted dropped against the unlinked file.
#[test]
fn a_drop_subscription_whose_queue_is_replaced_is_reopened_by_a_running_publisher() {
    let dir = common::tempdir();
    let topic_path = dir.path().join("t");
    let topic = Topic::create(&topic_path, TopicOptions::new(MAX_MESSAGE)).unwrap();
    let path = dir.path().join("d");
    topic
        .subscribe(
            &path,
            Subscription::new(2, MAX_MESSAGE).when_full(WhenFull::Drop),
        )
        .unwrap();
    topic.publish(b"old 1").unwrap();
    topic.publish(b"old 2").unwrap();
    topic.publish(b"old 3").unwrap(); // the old queue is full: dropped
    Queue::unlink(&path).unwrap();
    let resized = Queue::create(&path, Options::new(64, MAX_MESSAGE)).unwrap();
    let start = Instant::now();
    let mut published = 0u32;
    while drain(&resized).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the publisher never reopened the replaced queue ({published} published)"
        );
        topic.publish(b"probe").unwrap();
        published += 1;
        std::thread::sleep(shmq::topic::REMOVAL_CHECK / 4);
    }
    for i in 0..10u32 {
        topic.publish(&key(1, i)).unwrap();
    }
    assert_eq!(
        drain(&resized),
        (0..10u32).map(|i| key(1, i).to_vec()).collect::<Vec<_>>(),
        "every message after the reopening reaches the new queue"
    );
    let dropped_before = topic.subscriptions().unwrap()[0].dropped;
    topic.publish(b"last").unwrap();
    assert_eq!(topic.subscriptions().unwrap()[0].dropped, dropped_before);
    assert_eq!(drain(&resized), [b"last".to_vec()]);
}

/// A publisher process (id 7, one `publish`) started on the topic at `topic_path`, once it has
/// paused at the test hook `point` (see `shmq::test_hooks`), holding whatever it holds there.
fn paused_publisher(dir: &std::path::Path, topic_path: &std::path::Path, point: &str) -> Child {
    let pause_file = dir.join("paused");
    let pause_text = pause_file.display().to_string();
    let child = Child::spawn_with_env(
        dir,
        "publisher",
        &[
            ("topic", &topic_path.display()),
            ("id", &7),
            ("count", &1),
            ("mode", &"publish"),
        ],
        &[
            ("SHMQ_TEST_PAUSE", point),
            ("SHMQ_TEST_PAUSE_FILE", &pause_text),
        ],
    );
    common::wait_until(TIMEOUT, "the publisher to pause", || pause_file.exists());
    child
}

/// Takes an open-file-description read lock on bytes `[start, start + len)` of `file` (opened
/// read-only: what any user with read permission can do), held until `file` is closed.
fn read_lock(file: &std::fs::File, start: i64, len: i64) {
    use std::os::fd::AsRawFd;
    // SAFETY: all-zero bytes are a valid `struct flock`.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_RDLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start;
    fl.l_len = len;
    // SAFETY: a valid descriptor and a valid, exclusively borrowed `struct flock` (l_pid 0).
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) };
    assert_eq!(rc, 0, "read lock: {}", std::io::Error::last_os_error());
}

/// A reader of the topic file (a monitor with read permission only) that read-locks every byte
/// below the publisher lock bytes (the old table lock's byte among them) holds nobody back:
/// subscribe, a publisher's reread of the changed table, publish and unsubscribe all complete.
#[test]
fn a_reader_holding_read_locks_on_the_topic_file_holds_back_no_publish_or_subscription_change() {
    let dir = common::tempdir();
    let topic_path = dir.path().join("t");
    let topic = Topic::create(&topic_path, TopicOptions::new(MAX_MESSAGE)).unwrap();
    let first = dir.path().join("q0");
    topic
        .subscribe(&first, Subscription::new(8, MAX_MESSAGE))
        .unwrap();
    topic.publish(b"before").unwrap();
    let monitor = std::fs::File::open(&topic_path).unwrap();
    read_lock(&monitor, 0, 1 << 40);
    let (done, finished) = std::sync::mpsc::channel();
    let dir_path = dir.path().to_path_buf();
    std::thread::spawn(move || {
        let second = dir_path.join("q1");
        let other = Topic::open(dir_path.join("t")).unwrap();
        other
            .subscribe(&second, Subscription::new(8, MAX_MESSAGE))
            .unwrap();
        topic.publish(b"after").unwrap(); // rereads the changed table
        other.unsubscribe(&second).unwrap();
        other.publish(b"last").unwrap();
        done.send((drain(&Queue::open(&second).unwrap()), topic))
            .unwrap();
    });
    let (second_got, _topic) = finished
        .recv_timeout(Duration::from_secs(20))
        .expect("a read lock held by a reader of the topic hung its publishers");
    assert_eq!(second_got, [b"after".to_vec()]);
    assert_eq!(
        drain(&Queue::open(&first).unwrap()),
        [b"before".to_vec(), b"after".to_vec(), b"last".to_vec()]
    );
    drop(monitor);
}

/// A publisher SIGKILLed while it holds the subscription table's lock (paused by the
/// `topic-table-locked` hook in its first reread) wedges nothing: the next process to need the
/// lock finds its owner dead and takes it over, and the subscriptions keep working.
#[test]
fn a_publisher_killed_holding_the_table_lock_wedges_no_subscription_change() {
    let dir = common::tempdir();
    let topic_path = dir.path().join("t");
    let topic = Topic::create(&topic_path, TopicOptions::new(MAX_MESSAGE)).unwrap();
    let first = dir.path().join("q0");
    topic
        .subscribe(&first, Subscription::new(8, MAX_MESSAGE))
        .unwrap();
    let child = paused_publisher(dir.path(), &topic_path, "topic-table-locked");
    child.kill();
    let second = dir.path().join("q1");
    topic
        .subscribe(&second, Subscription::new(8, MAX_MESSAGE))
        .unwrap();
    topic.publish(b"m").unwrap();
    topic.unsubscribe(&second).unwrap();
    assert_eq!(drain(&Queue::open(&first).unwrap()), [b"m".to_vec()]);
    assert_eq!(drain(&Queue::open(&second).unwrap()), [b"m".to_vec()]);
}

/// A publisher process SIGKILLed while it holds a reservation in one subscription (paused by
/// the `send-claimed` test hook inside its first publish) wedges nothing: the reservation
/// becomes a tombstone (`abandoned_sends` of that queue), the topic counts one interrupted
/// publish, and the next publisher's messages reach every subscription.
#[test]
fn a_publisher_killed_holding_a_reservation_wedges_nothing_and_is_counted() {
    let dir = common::tempdir();
    let topic_path = dir.path().join("t");
    let topic = Topic::create(&topic_path, TopicOptions::new(MAX_MESSAGE)).unwrap();
    let queues = [dir.path().join("q0"), dir.path().join("q1")];
    for q in &queues {
        topic
            .subscribe(q, Subscription::new(8, MAX_MESSAGE))
            .unwrap();
    }
    let child = paused_publisher(dir.path(), &topic_path, "send-claimed");
    assert_eq!(topic.stats().unwrap().publishers, 2);
    child.kill();
    let consumers: Vec<Queue> = queues.iter().map(|q| Queue::open(q).unwrap()).collect();
    // A consumer polling with try_recv resolves the dead claim at the head once it has seen it
    // held for a while; `recover` resolves it now.
    assert!(consumers.iter().any(|q| q.recover()));
    for i in 0..20u32 {
        topic.publish(&key(1, i)).unwrap(); // 20 > 8 slots: the tombstone must be passed
        for (q, path) in consumers.iter().zip(&queues) {
            assert_eq!(drain(q), [key(1, i).to_vec()], "{}", path.display());
        }
    }
    let stats = topic.stats().unwrap();
    assert_eq!(stats.interrupted_publishes, 1);
    assert_eq!(stats.publishers, 1);
    let abandoned: u64 = stats
        .subscriptions
        .iter()
        .map(|s| s.queue.as_ref().unwrap().abandoned_sends)
        .sum();
    assert_eq!(abandoned, 1, "one reservation was held when it died");
    assert_eq!(
        Topic::inspect(&topic_path).unwrap().interrupted_publishes,
        1
    );
}

/// `Topic::inspect` (what `shmq stat TOPIC` prints) reads the publisher table at the stride of
/// its entries: it counts every open publisher, and a publisher killed mid-publish in an entry
/// other than the first, before any sweep has counted it.
#[test]
fn inspect_counts_every_open_publisher_and_one_killed_mid_publish_in_any_entry() {
    let dir = common::tempdir();
    let topic_path = dir.path().join("t");
    let topic = Topic::create(&topic_path, TopicOptions::new(MAX_MESSAGE)).unwrap();
    topic
        .subscribe(dir.path().join("q"), Subscription::new(8, MAX_MESSAGE))
        .unwrap();
    let others: Vec<Topic> = (0..2).map(|_| Topic::open(&topic_path).unwrap()).collect();
    assert_eq!(Topic::inspect(&topic_path).unwrap().publishers, 3);
    let child = paused_publisher(dir.path(), &topic_path, "send-claimed");
    assert_eq!(Topic::inspect(&topic_path).unwrap().publishers, 4);
    child.kill();
    let seen = Topic::inspect(&topic_path).unwrap();
    assert_eq!(seen.publishers, 3);
    assert_eq!(
        seen.interrupted_publishes, 1,
        "the publisher in entry 3 died publishing"
    );
    drop(others);
    assert_eq!(Topic::inspect(&topic_path).unwrap().publishers, 1);
}

/// A publisher SIGKILLed in the middle of a publish, deep in a stream into three subscriptions
/// (stopped by the `send-claimed` pause point after a random number of claims, so that it holds
/// one to three reservations of one publish): every subscription holds a gap-free prefix of its
/// messages, the prefixes differ by at most the interrupted publish, nothing wedges (a second
/// publisher's messages all arrive), and `interrupted_publishes` is exactly 1.
#[test]
fn a_publisher_killed_mid_stream_leaves_prefixes_and_wedges_nothing() {
    let dir = common::tempdir();
    let topic_path = dir.path().join("t");
    let topic = Topic::create(&topic_path, TopicOptions::new(MAX_MESSAGE)).unwrap();
    let queues: Vec<PathBuf> = (0..3).map(|i| dir.path().join(format!("q{i}"))).collect();
    for q in &queues {
        topic
            .subscribe(q, Subscription::new(1 << 16, MAX_MESSAGE))
            .unwrap();
    }
    let stop = dir.path().join("never");
    // Between 5,000 and 6,000 publishes in (three claims each), at any of a publish's claims.
    let seed = common::monotonic_ns() | 1;
    let claims_before = 3 * 5000 + Rng(seed).next() % 3000;
    println!("paused after {claims_before} claims (seed {seed:#x})");
    let pause_file = dir.path().join("paused");
    let (pause_text, after_text) = (pause_file.display().to_string(), claims_before.to_string());
    let streamer = Child::spawn_with_env(
        dir.path(),
        "streamer",
        &[("topic", &topic_path.display()), ("stop", &stop.display())],
        &[
            ("SHMQ_TEST_PAUSE", "send-claimed"),
            ("SHMQ_TEST_PAUSE_AFTER", &after_text),
            ("SHMQ_TEST_PAUSE_FILE", &pause_text),
        ],
    );
    common::wait_until(TIMEOUT, "the streamer to pause mid-publish", || {
        pause_file.exists()
    });
    streamer.kill();
    for i in 0..100 {
        topic.publish(&key(1, i)).unwrap();
    }
    let mut prefixes = Vec::new();
    for q in &queues {
        let q = Queue::open(q).unwrap();
        q.recover(); // a reservation the streamer held is a tombstone now
        let got: Vec<(u32, u32)> = drain(&q).iter().map(|m| unkey(m)).collect();
        let killed: Vec<u32> = got.iter().filter(|m| m.0 == 0).map(|m| m.1).collect();
        let after: Vec<u32> = got.iter().filter(|m| m.0 == 1).map(|m| m.1).collect();
        assert_eq!(killed, (0..killed.len() as u32).collect::<Vec<_>>());
        assert_eq!(after, (0..100).collect::<Vec<_>>());
        prefixes.push(killed.len());
    }
    let (lo, hi) = (
        prefixes.iter().min().unwrap(),
        prefixes.iter().max().unwrap(),
    );
    assert!(hi - lo <= 1, "prefixes {prefixes:?}");
    let interrupted = topic.stats().unwrap().interrupted_publishes;
    assert_eq!(interrupted, 1, "killed holding a publish's reservations");
    if hi != lo {
        assert_eq!(
            interrupted, 1,
            "a message in some subscriptions only: interrupted"
        );
    }
}

/// Bad input: each mistake gets its own error, naming the limit where there is one.
#[test]
fn bad_input_gets_clear_errors() {
    let dir = common::tempdir();
    let missing = dir.path().join("missing");
    assert!(matches!(Topic::open(&missing), Err(Error::NotFound(p)) if p == missing));
    let queue = dir.path().join("queue");
    drop(Queue::create(&queue, Options::new(8, 16)).unwrap());
    match Topic::open(&queue) {
        Err(Error::Corrupt { what }) => assert!(what.contains("is a shmq queue, not a topic")),
        other => panic!("{other:?}"),
    }
    let text = dir.path().join("text");
    std::fs::write(&text, vec![b'x'; 100_000]).unwrap();
    match Topic::open(&text) {
        Err(Error::Corrupt { what }) => assert!(what.contains("not a shmq topic"), "{what}"),
        other => panic!("{other:?}"),
    }
    let topic_path = dir.path().join("t");
    let topic = Topic::create(&topic_path, TopicOptions::new(MAX_MESSAGE)).unwrap();
    assert!(matches!(
        Topic::create(&topic_path, TopicOptions::new(MAX_MESSAGE)),
        Err(Error::AlreadyExists(_))
    ));
    assert!(matches!(
        Topic::create(dir.path().join("bad"), TopicOptions::new(0)),
        Err(Error::InvalidOptions(_))
    ));
    // A queue whose maximum message size is smaller than the topic's: existing or to create.
    for (path, sub) in [
        (&queue, Subscription::new(8, 256)),
        (&dir.path().join("new"), Subscription::new(8, 16)),
    ] {
        match topic.subscribe(path, sub) {
            Err(Error::InvalidOptions(why)) => {
                assert!(why.contains("fewer than the 64 bytes"), "{why}")
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(!dir.path().join("new").exists(), "nothing created");
    match topic.subscribe(
        dir.path().join("p"),
        Subscription::new(8, 64).prefix(vec![b'x'; MAX_PREFIX + 1]),
    ) {
        Err(Error::InvalidOptions(why)) => assert!(why.contains("192"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        topic.try_publish(&[0u8; MAX_MESSAGE as usize + 1]),
        Err(Error::TooLarge { len: 65, max: 64 })
    ));
    match topic.unsubscribe(dir.path().join("never-subscribed")) {
        Err(Error::InvalidOptions(why)) => assert!(why.contains("is not subscribed")),
        other => panic!("{other:?}"),
    }
    // A full subscription table.
    for i in 0..MAX_SUBSCRIPTIONS {
        topic
            .subscribe(dir.path().join(format!("s{i}")), Subscription::new(2, 64))
            .unwrap();
    }
    assert!(matches!(
        topic.subscribe(dir.path().join("s0"), Subscription::new(2, 64)),
        Err(Error::AlreadyExists(_))
    ));
    match topic.subscribe(dir.path().join("one-more"), Subscription::new(2, 64)) {
        Err(Error::InvalidOptions(why)) => {
            assert!(
                why.contains("all 64 subscriptions in use (the limit)"),
                "{why}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(!dir.path().join("one-more").exists());
    topic.try_publish(b"to all 64").unwrap();
    assert_eq!(topic.subscriptions().unwrap().len(), 64);
}

/// Hostile bytes in a topic file: scribbling on the header, the subscription table and the
/// publisher tables of a live topic never panics or faults a handle, `Topic::open`,
/// `Topic::inspect` or a publish; a damaged entry is `Corrupt`, named.
#[test]
fn hostile_bytes_in_a_topic_file_give_errors_never_a_panic() {
    let dir = common::tempdir();
    let path = dir.path().join("t");
    let topic = Topic::create(&path, TopicOptions::new(MAX_MESSAGE)).unwrap();
    topic
        .subscribe(dir.path().join("q"), Subscription::new(4, 64))
        .unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    let pristine = std::fs::read(&path).unwrap();
    // Targeted: an entry's state and its path.
    file.write_all_at(&7u32.to_ne_bytes(), 256).unwrap();
    let generation_bump = 1u64 << 40;
    file.write_all_at(&generation_bump.to_ne_bytes(), 128)
        .unwrap();
    match topic.try_publish(b"x") {
        Err(Error::Corrupt { what }) => assert!(what.contains("entry 0: state 7"), "{what}"),
        other => panic!("{other:?}"),
    }
    file.write_all_at(&2u32.to_ne_bytes(), 256).unwrap();
    file.write_all_at(b"relative", 256 + 64).unwrap();
    file.write_all_at(&(generation_bump + 1).to_ne_bytes(), 128)
        .unwrap();
    assert!(matches!(
        topic.try_publish(b"x"),
        Err(Error::Corrupt { .. })
    ));
    file.write_all_at(&9u32.to_ne_bytes(), 8).unwrap(); // the version
    assert!(matches!(
        Topic::open(&path),
        Err(Error::Incompatible { .. })
    ));
    // Random: bytes anywhere, many times; every call returns.
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for round in 0..300 {
        file.write_all_at(&pristine, 0).unwrap();
        for _ in 0..1 + rng.next() % 8 {
            let at = rng.next() % len;
            let n = 1 + rng.next() % 16;
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            file.write_all_at(&bytes[..bytes.len().min((len - at) as usize)], at)
                .unwrap();
        }
        let _ = topic.try_publish(format!("round {round}").as_bytes());
        let _ = topic.subscriptions();
        let _ = Topic::inspect(&path);
        if let Ok(other) = Topic::open(&path) {
            let _ = other.try_publish(b"y");
            let _ = other.subscribe(dir.path().join("q2"), Subscription::new(4, 64));
            let _ = other.unsubscribe(dir.path().join("q2"));
        }
    }
    // Restored, it works again.
    file.write_all_at(&pristine, 0).unwrap();
    let fresh = Topic::open(&path).unwrap();
    let bump = (generation_bump + 2).to_ne_bytes();
    file.write_all_at(&bump, 128).unwrap();
    drain(&Queue::open(dir.path().join("q")).unwrap());
    fresh.try_publish(b"fine").unwrap();
    assert_eq!(topic.subscriptions().unwrap().len(), 1);
}

/// A topic refuses to follow a symbolic link, like a queue.
#[test]
fn a_symbolic_link_is_not_followed() {
    let dir = common::tempdir();
    let real = dir.path().join("real");
    drop(Topic::create(&real, TopicOptions::new(8)).unwrap());
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    assert!(matches!(
        Topic::open(&link),
        Err(Error::PermissionDenied { .. })
    ));
}

/// Runs `shmq` with `args` (through `sh -c` when `stdin_from` names a shell pipeline to feed
/// it) and returns (success, stdout, stderr). The command exists only with the `cli` feature
/// (the sanitizer runs build without it).
#[cfg(feature = "cli")]
fn shmq_cli(args: &[&str], stdin_from: Option<&str>) -> (bool, String, String) {
    let bin = env!("CARGO_BIN_EXE_shmq");
    let output = match stdin_from {
        None => std::process::Command::new(bin).args(args).output(),
        Some(pipeline) => {
            let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
            let script = format!("{pipeline} | '{bin}' {}", quoted.join(" "));
            std::process::Command::new("sh")
                .args(["-c", &script])
                .output()
        }
    }
    .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The CLI end to end: `shmq topic create/subscribe/unsubscribe`, `seq … | shmq publish` to
/// `shmq recv` on each subscription (a prefix filter and a `drop` one among them), `shmq stat`
/// of a topic (table and JSON), clear errors, and `shmq rm` of a topic.
#[test]
#[cfg(feature = "cli")]
fn the_cli_pipeline_publishes_each_line_to_every_subscription() {
    let dir = common::tempdir();
    let p = |name: &str| dir.path().join(name).display().to_string();
    let (t, a, b, d) = (p("orders"), p("a"), p("b"), p("d"));
    let ok = |args: &[&str]| {
        let (success, out, err) = shmq_cli(args, None);
        assert!(success, "shmq {args:?} failed: {err}");
        out
    };
    ok(&[
        "topic",
        "create",
        &t,
        "--mode",
        "640",
        "--max-message-size",
        "64",
    ]);
    let create = ["--capacity", "1024", "--max-message-size", "64"];
    ok(&[&["topic", "subscribe", &t, &a][..], &create].concat());
    ok(&[
        &["topic", "subscribe", &t, &b, "--prefix", "1"][..],
        &create,
    ]
    .concat());
    ok(&[
        "topic",
        "subscribe",
        &t,
        &d,
        "--when-full",
        "drop",
        "--capacity",
        "2",
        "--max-message-size",
        "64",
    ]);
    let (success, _, err) = shmq_cli(&["publish", &t], Some("seq 1 500"));
    assert!(success, "{err}");
    let all: Vec<String> = (1..=500).map(|i| i.to_string()).collect();
    let out = ok(&["recv", &a, "--count", "500"]);
    assert_eq!(out.lines().collect::<Vec<_>>(), all);
    let out = ok(&["recv", &b, "--timeout", "200ms"]);
    let ones: Vec<&String> = all.iter().filter(|l| l.starts_with('1')).collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), ones);
    assert_eq!(ok(&["recv", &d, "--timeout", "200ms"]), "1\n2\n");

    let json: serde_json::Value = serde_json::from_str(&ok(&["stat", &t, "--json"])).unwrap();
    assert_eq!(json["kind"], "topic");
    assert_eq!(json["max_message_size"], 64);
    let subs = json["subscriptions"].as_array().unwrap();
    assert_eq!(subs.len(), 3);
    assert_eq!(subs[1]["prefix"], "1");
    assert_eq!(subs[1]["delivered"], ones.len());
    assert_eq!(
        (subs[2]["when_full"].as_str(), subs[2]["delivered"].as_u64()),
        (Some("drop"), Some(2))
    );
    assert_eq!(subs[2]["dropped"], 498);
    assert_eq!(subs[0]["depth"], 0);
    let table = ok(&["stat", &t]);
    assert!(table.contains("interrupted_publishes  0"), "{table}");
    assert!(table.contains(&format!("  {d}  when_full drop")), "{table}");

    // Clear errors.
    let (success, _, err) = shmq_cli(&["topic", "subscribe", &t, &p("nowhere")], None);
    assert!(
        !success && err.contains("give --capacity and --max-message-size"),
        "{err}"
    );
    let (success, _, err) = shmq_cli(&["publish", &a], Some("echo x"));
    assert!(
        !success && err.contains("is a shmq queue, not a topic"),
        "{err}"
    );
    let (success, _, err) = shmq_cli(&["publish", &t], Some("printf 'ok\\n%070d\\n' 0"));
    assert!(!success && err.contains("line 2"), "{err}");
    assert_eq!(ok(&["recv", &a, "--count", "1"]), "ok\n");

    ok(&["topic", "unsubscribe", &t, &b]);
    let json: serde_json::Value = serde_json::from_str(&ok(&["stat", &t, "--json"])).unwrap();
    assert_eq!(json["subscriptions"].as_array().unwrap().len(), 2);
    let (success, _, err) = shmq_cli(&["topic", "unsubscribe", &t, &b], None);
    assert!(!success && err.contains("is not subscribed"), "{err}");
    ok(&["rm", &t]);
    assert!(!dir.path().join("orders").exists());
    std::fs::write(dir.path().join("text"), vec![b'x'; 4096]).unwrap();
    let (success, _, _) = shmq_cli(&["rm", &p("text")], None);
    assert!(!success);
}

/// A seccomp filter that allows `exit_group` and kills the process on any other system call
/// (as in `tests/fast_path.rs`).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn only_exit_group() -> [libc::sock_filter; 6] {
    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    [
        op(LD_W_ABS, 0, 0, 4),
        op(JEQ_K, 0, 2, AUDIT_ARCH),
        op(LD_W_ABS, 0, 0, 0),
        op(JEQ_K, 1, 0, libc::SYS_exit_group as u32),
        op(RET_K, 0, 0, libc::SECCOMP_RET_KILL_PROCESS),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

/// Publishes 10 messages with `try_publish` and `publish` and drains the subscriptions (without waiting); any
/// failure is an `Err` (no panic: the seccomp child cannot afford one).
fn publish_rounds(topic: &Topic, queues: &[Queue], rounds: u32) -> Result<(), &'static str> {
    for round in 0..rounds {
        for i in 0..10u32 {
            let msg = key(round, i);
            // (Not publish_timeout: reading the clock is a system call where the clock source
            // has no vDSO support.)
            let sent = match i % 2 {
                0 => topic.try_publish(&msg),
                _ => topic.publish(&msg),
            };
            sent.map_err(|_| "a publish failed")?;
        }
        for q in queues {
            while q.try_recv_batch(64, |_| {}).is_ok() {}
        }
    }
    Ok(())
}

/// The publish path makes no system call when the subscriptions have not changed and none is
/// full: a forked child under a seccomp filter that kills it on any system call but
/// `exit_group` publishes 30,000 messages to two `Block` subscriptions (one with a prefix) and
/// a `Drop` one, with another publisher registered on the topic. The subscription change made
/// before the fork is picked up by the warm-up.
#[test]
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn publishing_makes_no_system_call_when_nothing_changed() {
    let dir = common::tempdir();
    let topic = Topic::create(dir.path().join("t"), TopicOptions::new(MAX_MESSAGE)).unwrap();
    let _other_publisher = Topic::open(dir.path().join("t")).unwrap();
    let subs = [
        Subscription::new(64, MAX_MESSAGE),
        Subscription::new(64, MAX_MESSAGE).prefix([0u8]),
        Subscription::new(64, MAX_MESSAGE).when_full(WhenFull::Drop),
    ];
    let queues: Vec<Queue> = subs
        .into_iter()
        .enumerate()
        .map(|(i, sub)| {
            let path = dir.path().join(format!("q{i}"));
            topic.subscribe(&path, sub).unwrap();
            Queue::open(path).unwrap()
        })
        .collect();
    publish_rounds(&topic, &queues, 10).expect("warm-up");
    let mut filter = only_exit_group();
    let program = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_mut_ptr(),
    };
    // SAFETY: the child runs only the publish and receive paths, which take no lock that another
    // test thread could hold at the fork and allocate nothing once warm; it ends with
    // exit_group and never returns into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: prctl and seccomp get constants and a pointer to `program` (on this stack).
        let code = unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0,
                    &program as *const libc::sock_fprog,
                ) != 0
            {
                3
            } else {
                match publish_rounds(&topic, &queues, 3_000) {
                    Ok(()) => 0,
                    Err(_) => 1,
                }
            }
        };
        // SAFETY: exit_group ends the process (the one system call the filter allows).
        unsafe { libc::syscall(libc::SYS_exit_group, code) };
        unreachable!();
    }
    let mut status = 0;
    let deadline = Instant::now() + TIMEOUT;
    // SAFETY (each waitpid and kill): `pid` is our child and `status` a live int.
    while unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } != pid {
        if Instant::now() > deadline {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the publishing child did not finish");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        !(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSYS),
        "the publish path made a system call (the seccomp filter killed the child)"
    );
    assert!(libc::WIFEXITED(status), "status {status:#x}");
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "a publish failed in the child"
    );
}

/// One subscription whose queue path holds something a publisher cannot use stops nobody: a
/// symbolic link, a FIFO, a directory, a plain file, a queue with smaller slots, or a queue the
/// topic's writers could not all write (mode 600 under a mode-660 topic). Each publish reaches
/// the good subscription, and counts a drop against the bad one; once the path holds a usable
/// queue again, a running publisher delivers there within `UNUSABLE_RETRY`.
#[test]
fn one_unusable_subscription_is_skipped_and_counted_and_the_others_served() {
    let dir = common::tempdir();
    let topic_path = dir.path().join("t");
    let topic = Topic::create(&topic_path, TopicOptions::new(MAX_MESSAGE)).unwrap();
    common::set_mode(&topic_path, 0o660);
    let (good, bad) = (dir.path().join("good"), dir.path().join("bad"));
    topic
        .subscribe(&good, Subscription::new(64, MAX_MESSAGE))
        .unwrap();
    topic
        .subscribe(&bad, Subscription::new(8, MAX_MESSAGE))
        .unwrap();
    common::set_mode(&good, 0o660);
    let good_queue = Queue::open(&good).unwrap();
    let target = dir.path().join("elsewhere");
    Queue::create(&target, Options::new(8, MAX_MESSAGE)).unwrap();
    type Plant<'a> = Box<dyn Fn(&std::path::Path) + 'a>;
    let plants: [(&str, Plant); 6] = [
        (
            "a symbolic link",
            Box::new(|p| std::os::unix::fs::symlink(&target, p).unwrap()),
        ),
        (
            "a FIFO",
            Box::new(|p| {
                let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
                // SAFETY: a valid NUL-terminated path.
                assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            }),
        ),
        ("a directory", Box::new(|p| std::fs::create_dir(p).unwrap())),
        (
            "a plain file",
            Box::new(|p| std::fs::write(p, vec![0u8; 4096]).unwrap()),
        ),
        (
            "a queue with smaller slots",
            Box::new(|p| {
                Queue::create(p, Options::new(8, MAX_MESSAGE / 2)).unwrap();
                common::set_mode(p, 0o660);
            }),
        ),
        (
            "a queue the topic's group cannot write",
            Box::new(|p| {
                Queue::create(p, Options::new(8, MAX_MESSAGE)).unwrap();
                common::set_mode(p, 0o600);
            }),
        ),
    ];
    for (seq, (what, plant)) in (0u32..).zip(&plants) {
        match std::fs::symlink_metadata(&bad) {
            Ok(m) if m.is_dir() => std::fs::remove_dir(&bad).unwrap(),
            Ok(_) => std::fs::remove_file(&bad).unwrap(),
            Err(_) => {}
        }
        plant(&bad);
        let dropped_before = topic.subscriptions().unwrap()[1].dropped;
        // A fresh publisher (which reads the table now) and the running one (whose offer to
        // the replaced file fails once it is full, or at its next reread).
        let fresh = Topic::open(&topic_path).unwrap();
        fresh
            .publish(&key(1, seq))
            .unwrap_or_else(|e| panic!("with {what} subscribed: {e}"));
        topic
            .publish(&key(2, seq))
            .unwrap_or_else(|e| panic!("with {what} subscribed: {e}"));
        drop(fresh);
        assert_eq!(
            drain(&good_queue),
            [key(1, seq).to_vec(), key(2, seq).to_vec()],
            "with {what} subscribed"
        );
        let infos = topic.subscriptions().unwrap();
        assert_eq!(infos.len(), 2, "the subscription to {what} stays");
        assert!(
            infos[1].dropped > dropped_before,
            "a publish that skipped {what} counts a drop"
        );
    }
    // Usable again: a queue the group can write.
    std::fs::remove_file(&bad).unwrap();
    let fixed = Queue::create(&bad, Options::new(8, MAX_MESSAGE)).unwrap();
    common::set_mode(&bad, 0o660);
    let start = Instant::now();
    while drain(&fixed).is_empty() {
        assert!(
            start.elapsed() < shmq::topic::UNUSABLE_RETRY * 10,
            "the running publisher never tried the fixed queue again"
        );
        topic.publish(b"retry").unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
}
