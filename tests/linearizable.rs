// SPDX-License-Identifier: MIT OR Apache-2.0
//! `Empty` and `Full` mean it: crossbeam-queue's `linearizable` test, ported.
//!
//! Every worker sends one message and then receives one, over and over, on a queue with one slot
//! per worker. When a worker's `try_recv` starts, its own message has been sent and every other
//! worker holds at most the one it sent last, so the queue holds at least one message: a
//! `try_recv` that returns `Empty` then is wrong, and so is a `try_send` that returns `Full`
//! (there are never more messages than workers, and so never more than slots). A queue that
//! reports `Empty` while the slot at the head is claimed by a sender still writing (and later
//! messages are committed), or `Full` while a receiver still holds the slot at the tail, fails
//! here at once. Run with threads sharing one handle, and with processes.

mod common;

use common::Child;
use shmq::{Options, Queue};
use std::thread;
use std::time::Duration;

const WORKERS: u32 = 4;
const ROUNDS: u32 = 25_000;
const BOUND: Duration = Duration::from_secs(240);

/// One worker's rounds: send, then receive; both must succeed at the first try.
fn rounds(q: &Queue, worker: u32) {
    let mut buf = [0u8; 8];
    for round in 0..ROUNDS {
        let msg = (u64::from(worker) << 32 | u64::from(round)).to_le_bytes();
        if let Err(e) = q.try_send(&msg) {
            panic!("worker {worker}, round {round}: try_send failed with {e:?}, with at most {WORKERS} messages in {WORKERS} slots");
        }
        if let Err(e) = q.try_recv(&mut buf) {
            panic!("worker {worker}, round {round}: try_recv failed with {e:?} right after this worker's own send");
        }
    }
}

#[test]
fn threads_sharing_a_handle_never_see_a_false_empty_or_full() {
    let dir = common::tempdir();
    let q = Queue::create(dir.path().join("q"), Options::new(WORKERS, 8)).unwrap();
    thread::scope(|s| {
        for worker in 0..WORKERS {
            let q = &q;
            s.spawn(move || rounds(q, worker));
        }
    });
    let st = q.stats();
    assert_eq!(
        (st.sent, st.received, st.len),
        (u64::from(WORKERS * ROUNDS), u64::from(WORKERS * ROUNDS), 0)
    );
}

#[test]
fn processes_never_see_a_false_empty_or_full() {
    let dir = common::tempdir();
    let path = dir.path().join("q");
    let q = Queue::create(&path, Options::new(WORKERS, 8)).unwrap();
    let children: Vec<Child> = (0..WORKERS)
        .map(|w| {
            Child::spawn(
                dir.path(),
                "worker",
                &[("queue", &path.display()), ("worker", &w)],
            )
        })
        .collect();
    common::wait_all(children, BOUND);
    let st = q.stats();
    assert_eq!(
        (st.sent, st.received, st.len),
        (u64::from(WORKERS * ROUNDS), u64::from(WORKERS * ROUNDS), 0)
    );
}

/// Any capacity, not only powers of two: the same rounds on queues of 3 and 5 slots (three and
/// five workers), through the modulo indexing.
#[test]
fn capacities_that_are_not_powers_of_two_behave_the_same() {
    for workers in [3u32, 5] {
        let dir = common::tempdir();
        let q = Queue::create(dir.path().join("q"), Options::new(workers, 8)).unwrap();
        thread::scope(|s| {
            for worker in 0..workers {
                let q = &q;
                s.spawn(move || {
                    let mut buf = [0u8; 8];
                    for round in 0..ROUNDS / 5 {
                        q.try_send(&round.to_le_bytes()).unwrap();
                        q.try_recv(&mut buf)
                            .unwrap_or_else(|e| panic!("worker {worker}, round {round}: {e:?}"));
                    }
                });
            }
        });
        assert_eq!(q.stats().len, 0);
    }
    // A queue of one slot: a lap is one message.
    let dir = common::tempdir();
    let q = Queue::create(dir.path().join("one"), Options::new(1, 8)).unwrap();
    let mut buf = [0u8; 8];
    for i in 0u64..1000 {
        q.try_send(&i.to_le_bytes()).unwrap();
        assert!(matches!(q.try_send(b"x"), Err(shmq::Error::Full)));
        assert_eq!(q.try_recv(&mut buf).unwrap(), 8);
        assert_eq!(u64::from_le_bytes(buf), i);
        assert!(matches!(q.try_recv(&mut buf), Err(shmq::Error::Empty)));
    }
}

#[test]
#[ignore = "the entry point of child processes, not a test"]
fn child() {
    common::child_main(|role| match role.name() {
        "worker" => {
            let q = Queue::open(role.path("queue")).unwrap();
            rounds(&q, role.arg("worker"));
            role.report("done");
        }
        other => panic!("unknown role {other}"),
    });
}
