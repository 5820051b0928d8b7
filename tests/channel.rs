// SPDX-License-Identifier: MIT OR Apache-2.0
//! `Sender`, `Receiver` and `len` as a crossbeam-channel user meets them: crossbeam's `len` and
//! `try_iter` tests ported, and disconnection across processes (the last sender process exits,
//! or is SIGKILLed, even in the middle of a send: the receiver drains, then gets `Closed`).

mod common;

use common::{Child, Role};
use shmq::testing::PRODUCERS_CHECK_INTERVAL;
use shmq::{Error, Options, Queue, Receiver};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a child may take to start, send and report.
const BOUND: Duration = Duration::from_secs(20);
/// Long enough for a receiver to have asked several times whether its senders are gone: a
/// `Timeout` after this much, with a sender alive, says the receiver did not take it for dead.
const SEVERAL_CHECKS: Duration =
    Duration::from_millis(4 * PRODUCERS_CHECK_INTERVAL.as_millis() as u64);
/// Bound for a disconnect to be noticed once the last sender is gone: one check interval plus
/// the sweep that resolves a dead sender's claim, with ample room for a loaded machine. Far
/// below "never", which is what a missed disconnect is.
const NOTICED: Duration = Duration::from_secs(5);

fn disconnecting(capacity: u32) -> Options {
    Options::new(capacity, 8).close_when_producers_gone(true)
}

/// A sender process: attaches, sends `count` values from `first`, reports `sent`, then either
/// returns (dropping its sender) or, with `linger=1`, waits to be killed.
fn sender(role: &Role) {
    let tx = Queue::open_sender::<u64>(role.path("queue")).unwrap();
    let first: u64 = role.arg("first");
    for i in 0..role.arg::<u64>("count") {
        tx.send(first + i).unwrap();
    }
    role.report("sent");
    if role.arg::<u8>("linger") == 1 {
        std::thread::sleep(BOUND * 2);
        panic!("not killed");
    }
}

/// Not a property: the entry point of the child processes these tests spawn (see `common`).
#[test]
#[ignore = "the entry point of child processes, not a test"]
fn child() {
    common::child_main(|role| match role.name() {
        "sender" => sender(role),
        other => panic!("unknown role {other}"),
    });
}

fn spawn_sender(dir: &Path, queue: &Path, first: u64, count: u64, linger: bool) -> Child {
    let queue = queue.display().to_string();
    Child::spawn(
        dir,
        "sender",
        &[
            ("queue", &queue),
            ("first", &first),
            ("count", &count),
            ("linger", &u8::from(linger)),
        ],
    )
}

fn wait_reported(child: &Child, what: &str) {
    common::wait_until(BOUND, what, || child.report_so_far() == "sent");
}

/// Receives until `Closed`, each receive bounded by `NOTICED`; returns the values in order.
fn drain_until_closed(rx: &Receiver<u64>) -> Vec<u64> {
    let mut got = Vec::new();
    loop {
        match rx.recv_timeout(NOTICED) {
            Ok(v) => got.push(v),
            Err(Error::Closed) => return got,
            Err(e) => panic!("after {} values: {e:?} instead of Closed", got.len()),
        }
    }
}

/// crossbeam-channel's `tests/array.rs::len`, with a capacity of 1024 (a power of two) instead
/// of 1000: exact after each step in one thread, within bounds with two.
#[test]
fn len() {
    const COUNT: u64 = 25_000;
    const CAP: usize = 1024;
    let dir = common::tempdir();
    let (s, r) = shmq::channel::<u64>(dir.path().join("q"), Options::new(CAP as u32, 8)).unwrap();

    assert_eq!(s.len(), 0);
    assert_eq!(r.len(), 0);
    assert!(s.is_empty() && !s.is_full());

    for _ in 0..CAP / 10 {
        for i in 0..50 {
            s.send(i as u64).unwrap();
            assert_eq!(s.len(), i + 1);
        }
        for i in 0..50 {
            r.recv().unwrap();
            assert_eq!(r.len(), 50 - i - 1);
        }
    }
    assert_eq!(s.len(), 0);
    assert_eq!(r.len(), 0);

    for i in 0..CAP {
        s.send(i as u64).unwrap();
        assert_eq!(s.len(), i + 1);
    }
    assert!(s.is_full() && r.is_full() && !r.is_empty());
    assert_eq!(s.try_send(0), Err(Error::Full));
    for _ in 0..CAP {
        r.recv().unwrap();
    }
    assert_eq!(s.len(), 0);
    assert_eq!(r.len(), 0);
    assert!(r.is_empty());

    std::thread::scope(|scope| {
        scope.spawn(|| {
            for i in 0..COUNT {
                assert_eq!(r.recv(), Ok(i));
                assert!(r.len() <= CAP);
            }
        });
        scope.spawn(|| {
            for i in 0..COUNT {
                s.send(i).unwrap();
                assert!(s.len() <= CAP);
            }
        });
    });
    assert_eq!(s.len(), 0);
    assert_eq!(r.len(), 0);
}

/// crossbeam-channel's `tests/array.rs::try_iter`: a thread drains responses with `try_iter`
/// and asks for more; the main thread answers each request until the requester is gone (its
/// sender dropped: here, the disconnect of `close_when_producers_gone` ends `iter`).
#[test]
fn try_iter() {
    let dir = common::tempdir();
    // crossbeam's `bounded(1)`; the smallest shmq queue has 2 slots. `()` is a zero-length
    // message.
    let (request_s, request_r) =
        shmq::channel::<()>(dir.path().join("req"), disconnecting(2)).unwrap();
    let (response_s, response_r) =
        shmq::channel::<i32>(dir.path().join("resp"), disconnecting(2)).unwrap();

    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut count = 0;
            loop {
                for x in response_r.try_iter() {
                    count += x;
                    if count == 6 {
                        return;
                    }
                }
                request_s.send(()).unwrap();
            }
        });

        for _ in request_r.iter() {
            // crossbeam's `send` fails once the requester's receiver is gone; shmq has no
            // disconnect on the receiving side (messages outlive their receivers), so a full
            // response queue drops the answer instead: the requester is not reading (or has
            // enough). It asks again as long as it wants more.
            let _ = response_s.try_send(2);
        }
    });
}

/// `try_iter` yields what is ready and stops at `Empty` without waiting; `iter` and
/// `IntoIterator` stop at `Closed`.
#[test]
fn try_iter_stops_at_empty_and_iter_at_closed() {
    let dir = common::tempdir();
    let (tx, rx) = shmq::channel::<u32>(dir.path().join("q"), Options::new(8, 4)).unwrap();
    for i in 0..5u32 {
        tx.send(i).unwrap();
    }
    assert_eq!(rx.try_iter().take(2).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), [2, 3, 4]);
    assert_eq!(rx.try_iter().next(), None);
    let by_ref: &dyn Fn(&u32) -> shmq::Result<()> = &|value| tx.send(value);
    by_ref(&9).unwrap(); // a `&T` is sent as well as a `T`
    tx.queue().close();
    let mut iter = rx.clone().into_iter();
    assert_eq!(iter.by_ref().collect::<Vec<_>>(), [9]);
    assert_eq!(iter.error(), None);
    assert_eq!((&rx).into_iter().next(), None);
}

/// The last sender process exits (dropping its `Sender`): the receiver gets every message, in
/// order, then `Closed`.
#[test]
fn the_receiver_gets_closed_after_the_last_sender_process_exits() {
    let dir = common::tempdir();
    let path = dir.path().join("q");
    let rx = Queue::create(&path, disconnecting(64))
        .unwrap()
        .receiver::<u64>()
        .unwrap();
    let child = spawn_sender(dir.path(), &path, 0, 1000, false);
    let got = drain_until_closed(&rx);
    assert_eq!(got, (0..1000).collect::<Vec<_>>());
    assert_eq!(child.wait(BOUND), "sent");
    assert!(!rx.producers_alive());
    assert!(rx.queue().is_closed());
}

/// The only sender process is SIGKILLed: while it lives the receiver waits (a `Timeout`, not
/// `Closed`); once it is dead, the receiver drains what it sent and gets `Closed`.
#[test]
fn the_receiver_gets_closed_after_the_last_sender_process_is_killed() {
    let dir = common::tempdir();
    let path = dir.path().join("q");
    let rx = Queue::create(&path, disconnecting(64))
        .unwrap()
        .receiver::<u64>()
        .unwrap();
    let child = spawn_sender(dir.path(), &path, 0, 40, true);
    wait_reported(&child, "the sender to send");
    assert!(rx.producers_alive());
    assert_eq!(rx.recv(), Ok(0));
    // The rest stays queued across the kill.
    child.kill();
    let started = Instant::now();
    assert_eq!(drain_until_closed(&rx), (1..40).collect::<Vec<_>>());
    println!("Closed {:?} after the kill", started.elapsed());
    assert!(!rx.producers_alive());
}

/// Two sender processes: the death of one is not a disconnect; the death of both is.
#[test]
fn every_sender_process_must_be_gone() {
    let dir = common::tempdir();
    let path = dir.path().join("q");
    let rx = Queue::create(&path, disconnecting(64))
        .unwrap()
        .receiver::<u64>()
        .unwrap();
    let first = spawn_sender(dir.path(), &path, 0, 3, true);
    let second = spawn_sender(dir.path(), &path, 100, 3, true);
    wait_reported(&first, "the first sender to send");
    wait_reported(&second, "the second sender to send");
    first.kill();
    let mut got: Vec<u64> = (0..6).map(|_| rx.recv().unwrap()).collect();
    got.sort_unstable();
    assert_eq!(got, [0, 1, 2, 100, 101, 102]);
    assert!(rx.producers_alive());
    assert_eq!(rx.recv_timeout(SEVERAL_CHECKS), Err(Error::Timeout));
    assert!(!rx.queue().is_closed());
    second.kill();
    assert_eq!(rx.recv_timeout(NOTICED), Err(Error::Closed));
}

/// A sender process killed in the middle of a send (its slot claimed, never published): the
/// receiver is not left waiting on the dead claim; it gets `Closed`.
#[test]
fn a_sender_killed_mid_send_still_disconnects() {
    let dir = common::tempdir();
    let path = dir.path().join("q");
    let rx = Queue::create(&path, disconnecting(8))
        .unwrap()
        .receiver::<u64>()
        .unwrap();
    let queue = path.display().to_string();
    let child = common::spawn_paused(
        dir.path(),
        "sender",
        &[
            ("queue", &queue),
            ("first", &7),
            ("count", &1),
            ("linger", &1),
        ],
        "send-claimed",
        BOUND,
    );
    assert_eq!(rx.try_recv(), Err(Error::Empty));
    child.kill();
    assert_eq!(rx.recv_timeout(NOTICED), Err(Error::Closed));
    assert_eq!(rx.queue().stats().abandoned_sends, 1);
}

/// Without `close_when_producers_gone` (the default), a receiver whose sender process exited
/// waits on: `Timeout`, never `Closed`.
#[test]
fn by_default_the_receiver_outlives_its_senders() {
    let dir = common::tempdir();
    let path = dir.path().join("q");
    let rx = Queue::create(&path, Options::new(64, 8))
        .unwrap()
        .receiver::<u64>()
        .unwrap();
    spawn_sender(dir.path(), &path, 0, 3, false).wait(BOUND);
    assert!(!rx.producers_alive());
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(rx.recv_timeout(SEVERAL_CHECKS), Err(Error::Timeout));
    assert!(!rx.queue().is_closed());
}
