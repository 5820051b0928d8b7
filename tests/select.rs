// SPDX-License-Identifier: MIT OR Apache-2.0
//! `Select` across processes: one thread waits on many queues and is woken by a message (or
//! room) made in another process, times out on time, counts itself as a sleeper on every queue
//! only while it waits, sees a closed queue as ready, and waits on 1,000 queues with at most 8
//! helper threads.

mod common;

use common::{Child, Role};
use shmq::{Error, Options, Queue, Select};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long to wait for a child to get somewhere, or to exit.
const BOUND: Duration = Duration::from_secs(20);

/// Once the parent's `Select` sleeps on `queue` (it counts itself as a receiver there for op
/// `send`, as a sender for op `recv`), or once the file `go` exists if one is named (the parent
/// creates it when it has seen what it looks for), sends `msg` to the queue (op `send`) or
/// receives one message (op `recv`): the act then has to wake a sleeper.
fn act_later(role: &Role) {
    let q = Queue::open(role.path("queue")).unwrap();
    let op = role.arg::<String>("op");
    let go = role.path("go");
    common::wait_until(BOUND, "the select to sleep on the queue", || {
        let stats = q.stats();
        match op.as_str() {
            _ if go != Path::new("-") => go.exists(),
            "send" => stats.recv_sleepers == 1,
            _ => stats.send_sleepers == 1,
        }
    });
    match op.as_str() {
        "send" => q.send(role.arg::<String>("msg").as_bytes()).unwrap(),
        "recv" => {
            q.recv(&mut [0u8; 64]).unwrap();
        }
        other => panic!("unknown op {other}"),
    }
}

/// Selects over `queues` queues `dir/q0..` until `messages` messages came, each stamped with the
/// monotonic time it was sent at; reports the helper threads seen while waiting and the wake
/// latencies (send to `ready` returning).
fn select_many(role: &Role) {
    let dir = role.path("dir");
    let n: usize = role.arg("queues");
    let messages: usize = role.arg("messages");
    let queues: Vec<Queue> = (0..n)
        .map(|i| Queue::open(dir.join(format!("q{i}"))).unwrap())
        .collect();
    let mut select = Select::new();
    for q in &queues {
        select.recv(q);
    }
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut most = 0;
            while !done.load(Ordering::Relaxed) {
                most = most.max(shmq::helper_threads().0);
                std::thread::sleep(Duration::from_millis(2));
            }
            most
        })
    };
    role.report("ready\n");
    let mut lat = Vec::new();
    let mut buf = [0u8; 64];
    while lat.len() < messages {
        let i = select.ready_timeout(BOUND).unwrap();
        match queues[i].try_recv(&mut buf) {
            Ok(_) => {
                let sent = u64::from_le_bytes(buf[..8].try_into().unwrap());
                lat.push((common::monotonic_ns() - sent).to_string());
            }
            Err(Error::Empty) => continue,
            Err(e) => panic!("{e}"),
        }
    }
    done.store(true, Ordering::Relaxed);
    let helpers = watcher.join().unwrap();
    role.report(&format!("helpers {helpers}\nlat {}\n", lat.join(" ")));
}

/// Not a test: the entry point of the child processes these tests spawn (see `common`).
/// Ignored, so that a test run does not count it; the children run it with `--ignored`.
#[test]
#[ignore = "the entry point of child processes, not a test"]
fn child() {
    common::child_main(|role| match role.name() {
        "act_later" => act_later(role),
        "select_many" => select_many(role),
        other => panic!("unknown role {other}"),
    });
}

fn create(dir: &Path, name: &str, capacity: u32) -> Queue {
    Queue::create(dir.join(name), Options::new(capacity, 64)).unwrap()
}

fn act_later_child(dir: &Path, q: &Queue, op: &str, go: &Path) -> Child {
    Child::spawn(
        dir,
        "act_later",
        &[
            ("queue", &q.path().display()),
            ("op", &op),
            ("msg", &"hi"),
            ("go", &go.display()),
        ],
    )
}

/// Five empty queues; another process sends to the fourth: `ready` returns its index (and the
/// sleeper counts of all five go up while it waits and back to 0 after).
#[test]
fn ready_returns_the_queue_another_process_sent_to() {
    let dir = common::tempdir();
    let queues: Vec<Queue> = (0..5)
        .map(|i| create(dir.path(), &format!("q{i}"), 8))
        .collect();
    let mut select = Select::new();
    for q in &queues {
        select.recv(q);
    }
    assert_eq!(select.try_ready(), None);
    // The sender sends once this test has seen the select counted as a sleeper on all five.
    let go = dir.path().join("go");
    let sender = act_later_child(dir.path(), &queues[3], "send", &go);
    let observers: Vec<Queue> = queues
        .iter()
        .map(|q| Queue::open(q.path()).unwrap())
        .collect();
    let (ready, counted) = std::thread::scope(|s| {
        let probe = s.spawn(|| {
            common::wait_until(BOUND, "the select to sleep on every queue", || {
                observers.iter().all(|q| q.stats().recv_sleepers == 1)
            });
            std::fs::write(&go, b"").unwrap();
            true
        });
        let ready = select.ready_timeout(BOUND).unwrap();
        (ready, probe.join().unwrap())
    });
    sender.wait(BOUND);
    assert!(counted);
    assert_eq!(ready, 3);
    let mut buf = [0u8; 64];
    let n = queues[3].try_recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hi");
    for q in &queues {
        let stats = q.stats();
        assert_eq!((stats.recv_sleepers, stats.send_sleepers), (0, 0));
    }
}

/// A full queue and an empty one: waiting for room on the first and a message on the second,
/// `ready` returns the send once another process frees a slot.
#[test]
fn a_send_is_ready_once_another_process_frees_a_slot() {
    let dir = common::tempdir();
    let full = create(dir.path(), "full", 2);
    let empty = create(dir.path(), "empty", 2);
    full.send(b"1").unwrap();
    full.send(b"2").unwrap();
    let mut select = Select::new();
    let on_empty = select.recv(&empty);
    let on_full = select.send(&full);
    assert_eq!(select.try_ready(), None);
    let receiver = act_later_child(dir.path(), &full, "recv", Path::new("-"));
    let ready = select.ready_timeout(BOUND).unwrap();
    receiver.wait(BOUND);
    assert_eq!(ready, on_full);
    assert_ne!(ready, on_empty);
    full.try_send(b"3").unwrap();
}

/// Nothing comes: `ready_timeout` says `Timeout`, not before the timeout and not long after.
#[test]
fn ready_timeout_times_out_on_time() {
    let dir = common::tempdir();
    let a = create(dir.path(), "a", 8);
    let b = create(dir.path(), "b", 8);
    let mut select = Select::new();
    select.recv(&a);
    select.recv(&b);
    let start = Instant::now();
    let result = select.ready_timeout(Duration::from_millis(200));
    let took = start.elapsed();
    assert!(matches!(result, Err(Error::Timeout)), "{result:?}");
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_millis(1700), "{took:?}");
    assert_eq!(a.stats().recv_sleepers, 0);
}

/// A queue closed while a `Select` waits on it wakes it and is ready (its receive then says
/// `Closed`); an empty set is refused rather than waiting forever.
#[test]
fn a_closed_queue_is_ready_and_an_empty_set_is_refused() {
    let dir = common::tempdir();
    let a = create(dir.path(), "a", 8);
    let b = create(dir.path(), "b", 8);
    let mut select = Select::new();
    select.recv(&a);
    let on_b = select.recv(&b);
    let ready = std::thread::scope(|s| {
        s.spawn(|| {
            common::wait_until(BOUND, "the select to sleep on b", || {
                b.stats().recv_sleepers == 1
            });
            b.close();
        });
        select.ready_timeout(BOUND).unwrap()
    });
    assert_eq!(ready, on_b);
    assert!(matches!(b.try_recv(&mut [0u8; 8]), Err(Error::Closed)));
    assert!(matches!(
        Select::new().ready(),
        Err(Error::InvalidOptions(_))
    ));
}

/// One thread selects over 1,000 queues: at most ceil(1000 / 127) = 8 helper threads, and a
/// message sent by another process to any of them is found.
#[test]
fn select_over_a_thousand_queues_uses_eight_helpers() {
    const N: usize = 1000;
    const MESSAGES: usize = 20;
    let dir = common::tempdir();
    let queues: Vec<Queue> = (0..N)
        .map(|i| create(dir.path(), &format!("q{i}"), 8))
        .collect();
    let child = Child::spawn(
        dir.path(),
        "select_many",
        &[
            ("dir", &dir.path().display()),
            ("queues", &N),
            ("messages", &MESSAGES),
        ],
    );
    common::wait_until(BOUND, "the selecting child", || {
        child.report_so_far().starts_with("ready")
    });
    for k in 0..MESSAGES {
        // Each message wakes a sleeping select: send once the child sleeps on the queue (counted
        // as a receiver there), after it took the previous message.
        let q = &queues[(k * 337) % N];
        common::wait_until(BOUND, "the select to sleep on the next queue", || {
            q.stats().recv_sleepers == 1
        });
        let mut msg = [0u8; 16];
        msg[..8].copy_from_slice(&common::monotonic_ns().to_le_bytes());
        q.send(&msg).unwrap();
        common::wait_until(BOUND, "the select to take the message", || {
            q.stats().len == 0
        });
    }
    let report = child.wait(BOUND);
    let helpers: usize = report
        .lines()
        .find_map(|l| l.strip_prefix("helpers "))
        .unwrap()
        .parse()
        .unwrap();
    let mut lat: Vec<u64> = report
        .lines()
        .find_map(|l| l.strip_prefix("lat "))
        .unwrap()
        .split(' ')
        .map(|s| s.parse().unwrap())
        .collect();
    lat.sort();
    eprintln!(
        "select over {N} queues: {helpers} helpers, wake p50 {:?}, max {:?}",
        Duration::from_nanos(lat[MESSAGES / 2]),
        Duration::from_nanos(lat[MESSAGES - 1])
    );
    assert_eq!(lat.len(), MESSAGES);
    assert!(
        (1..=N.div_ceil(127)).contains(&helpers),
        "{helpers} helpers"
    );
}

/// `len` and `is_empty` count the operations added, receives and sends alike (a mutation run
/// found nothing else checking them).
#[test]
fn len_and_is_empty_count_the_operations_added() {
    let dir = common::tempdir();
    let a = create(dir.path(), "a", 8);
    let b = create(dir.path(), "b", 8);
    let mut select = Select::new();
    assert!(select.is_empty());
    assert_eq!(select.len(), 0);
    assert_eq!(select.recv(&a), 0);
    assert!(!select.is_empty());
    assert_eq!(select.send(&b), 1);
    assert_eq!(select.recv(&b), 2);
    assert_eq!(select.len(), 3);
    assert!(!select.is_empty());
}
