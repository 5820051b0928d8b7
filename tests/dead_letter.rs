// SPDX-License-Identifier: MIT OR Apache-2.0
//! The dead-letter queue, with real processes: a consumer child is stopped holding a message
//! (the `recv-claimed` pause point, see `src/test_hooks.rs`) and SIGKILLed there, on every
//! delivery, until the message reaches `max_deliveries`:
//!
//! - it lands in the dead-letter queue with its delivery count and its origin (the source
//!   queue's identity and its id there), and leaves the source queue;
//! - if the dead-letter queue is missing, full, or its slots too small, nothing is lost: the
//!   failure is counted (`dead_letter_failures`), the message stays in the source queue,
//!   delivered again, and goes to the dead-letter queue on a later death once it can.
//!
//! The consumer children are `common::paused_consumer`'s (entry point: the `child` test, see
//! `common`).

mod common;

use shmq::{Error, Options, Queue, Stats};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const MAX_MESSAGE: u32 = 64;
/// Bound on any single wait of a test; a bug fails the test here instead of hanging it.
const BOUND: Duration = Duration::from_secs(10);

/// Not a property: the entry point of the child processes these tests spawn (see `common`).
#[test]
#[ignore = "the entry point of child processes, not a test"]
fn child() {
    // Only the roles every test binary plays (`common::paused_consumer`'s).
    common::child_main(|role| panic!("unknown role {}", role.name()));
}

fn text(msg: &[u8]) -> String {
    String::from_utf8_lossy(msg).into_owned()
}

/// A source queue and the path of its dead-letter queue, in one directory.
struct Setup {
    dir: tempfile::TempDir,
    source_path: PathBuf,
    source: Queue,
    dlq_path: PathBuf,
}

impl Setup {
    /// A source queue with delivery limit `max_deliveries` and a dead-letter queue path (the
    /// dead-letter queue itself is not created).
    fn new(max_deliveries: u32) -> Setup {
        let dir = common::tempdir();
        let source_path = dir.path().join("source");
        let dlq_path = dir.path().join("dlq");
        let source = Queue::create(
            &source_path,
            Options::new(8, MAX_MESSAGE)
                .max_deliveries(max_deliveries)
                .dead_letter_queue(&dlq_path),
        )
        .expect("create the source queue");
        Setup {
            dir,
            source_path,
            source,
            dlq_path,
        }
    }

    fn create_dlq(&self, capacity: u32, max_message_size: u32) -> Queue {
        Queue::create(&self.dlq_path, Options::new(capacity, max_message_size))
            .expect("create the dead-letter queue")
    }

    /// A consumer child receives the next message in place and is SIGKILLed holding it.
    fn kill_a_holder(&self) {
        common::paused_consumer(self.dir.path(), &self.source_path, BOUND).kill();
    }

    /// Sweeps the source queue (as a program polling it would) until `done` holds of its stats.
    fn sweep_until(&self, what: &str, done: impl Fn(&Stats) -> bool) -> Stats {
        let start = Instant::now();
        loop {
            let stats = self.source.stats();
            if done(&stats) {
                return stats;
            }
            assert!(
                start.elapsed() < BOUND,
                "timed out waiting for {what}; stats: {stats:#?}"
            );
            self.source.recover();
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Receives the next message of `q` in place within a short wait: (payload, deliveries,
/// origin as (queue, id)).
fn next(q: &Queue) -> (String, u32, Option<(u64, u64)>) {
    let g = q
        .recv_in_place_timeout(Duration::from_secs(2))
        .expect("a message");
    (
        text(&g),
        g.deliveries(),
        g.origin().map(|origin| (origin.queue, origin.id)),
    )
}

fn assert_empty(q: &Queue) {
    match q.recv_in_place_timeout(Duration::from_millis(100)) {
        Err(Error::Timeout) => {}
        Ok(g) => panic!("expected nothing left, got {:?}", text(&g)),
        Err(e) => panic!("expected nothing left, got {e}"),
    }
}

#[test]
fn a_poison_message_lands_in_the_dead_letter_queue_with_its_count_and_origin() {
    let s = Setup::new(3);
    let dlq = s.create_dlq(8, MAX_MESSAGE);
    s.source.send(b"first").unwrap();
    assert_eq!(next(&s.source), ("first".into(), 1, None));
    s.source.send(b"poison").unwrap();
    let id = 1; // the position of its first send: the second message of the queue
    for _ in 0..3 {
        s.kill_a_holder();
    }
    // The third death reached the limit; the next sweep sends it on.
    let st = s.sweep_until("the poison message to be dead-lettered", |st| {
        st.dead_lettered == 1
    });
    assert_eq!(
        (
            st.redelivered,
            st.dead_letter_failures,
            st.in_flight,
            st.len
        ),
        (2, 0, 0, 0),
        "{st:#?}"
    );
    assert_empty(&s.source);
    // With the count it reached and where it came from; by copy too.
    let mut buf = [0u8; MAX_MESSAGE as usize];
    let got = dlq.recv_meta_timeout(&mut buf, BOUND).unwrap();
    assert_eq!(&buf[..got.len], b"poison");
    assert_eq!(got.deliveries, 3);
    let origin = got.origin.expect("a dead-lettered message has an origin");
    assert_eq!(
        (origin.queue, origin.id),
        (s.source.identity(), id),
        "source {:?}",
        s.source.stats().created_unix_ns
    );
    assert_eq!(s.source.identity(), s.source.stats().created_unix_ns);
    assert_empty(&dlq);
    // An ordinary message of the dead-letter queue has none.
    dlq.send(b"plain").unwrap();
    assert_eq!(next(&dlq), ("plain".into(), 1, None));
}

#[test]
fn with_the_dead_letter_queue_missing_the_message_stays_and_the_failure_is_counted() {
    let s = Setup::new(1);
    s.source.send(b"poison").unwrap();
    s.kill_a_holder();
    let st = s.sweep_until("the failure to be counted", |st| {
        st.dead_letter_failures == 1
    });
    assert_eq!((st.dead_lettered, st.redelivered), (0, 1), "{st:#?}");
    // Still here, delivered again (count raised), and it stays while the queue cannot send it.
    s.kill_a_holder();
    s.sweep_until("a second failure", |st| st.dead_letter_failures == 2);
    // Once the dead-letter queue exists, the next death sends it there.
    let dlq = s.create_dlq(8, MAX_MESSAGE);
    s.kill_a_holder();
    let st = s.sweep_until("the message to be dead-lettered", |st| {
        st.dead_lettered == 1
    });
    assert_eq!(st.dead_letter_failures, 2, "{st:#?}");
    assert_empty(&s.source);
    let (payload, deliveries, origin) = next(&dlq);
    assert_eq!((payload.as_str(), deliveries), ("poison", 3));
    assert_eq!(origin, Some((s.source.identity(), 0)));
}

#[test]
fn with_the_dead_letter_queue_full_the_message_stays_until_there_is_room() {
    let s = Setup::new(1);
    let dlq = s.create_dlq(1, MAX_MESSAGE);
    dlq.send(b"filler").unwrap();
    s.source.send(b"poison").unwrap();
    s.kill_a_holder();
    let st = s.sweep_until("the failure to be counted", |st| {
        st.dead_letter_failures == 1
    });
    assert_eq!(
        (st.dead_lettered, st.redelivered, st.len),
        (0, 1, 1),
        "{st:#?}"
    );
    assert_eq!(next(&dlq), ("filler".into(), 1, None));
    s.kill_a_holder();
    s.sweep_until("the message to be dead-lettered", |st| {
        st.dead_lettered == 1
    });
    assert_empty(&s.source);
    assert_eq!(
        next(&dlq),
        ("poison".into(), 2, Some((s.source.identity(), 0)))
    );
}

#[test]
fn a_message_too_large_for_the_dead_letter_queue_stays_and_the_failure_is_counted() {
    let s = Setup::new(1);
    let _dlq = s.create_dlq(8, 4);
    s.source.send(b"longer than four").unwrap();
    s.kill_a_holder();
    let st = s.sweep_until("the failure to be counted", |st| {
        st.dead_letter_failures == 1
    });
    assert_eq!((st.dead_lettered, st.len), (0, 1), "{st:#?}");
    assert_eq!(next(&s.source), ("longer than four".into(), 2, None));
}

#[test]
fn a_dead_letter_queue_replaced_after_it_was_opened_gets_the_next_message() {
    let s = Setup::new(1);
    let old = s.create_dlq(8, MAX_MESSAGE);
    s.source.send(b"one").unwrap();
    s.kill_a_holder();
    s.sweep_until("the first message to be dead-lettered", |st| {
        st.dead_lettered == 1
    });
    assert_eq!(next(&old).0, "one");
    // Removed and created anew: the source's cached handle must not send into the old file.
    Queue::unlink(&s.dlq_path).unwrap();
    let new = s.create_dlq(8, MAX_MESSAGE);
    s.source.send(b"two").unwrap();
    s.kill_a_holder();
    s.sweep_until("the second message to be dead-lettered", |st| {
        st.dead_lettered == 2
    });
    assert_empty(&old);
    assert_eq!(next(&new).0, "two");
}

/// The dead-letter path comes from the source queue's shared header, which any member of a
/// group-shared (mode 660) queue can rewrite (or the file there be replaced): a queue at that
/// path that the group could not write (here mode 600, as another user's private queue would
/// be) is not used, the message stays and the failure is counted; a dead-letter queue the group
/// can write is used.
#[test]
fn a_dead_letter_queue_the_source_queues_group_could_not_write_is_refused() {
    let s = Setup::new(1);
    common::set_mode(&s.source_path, 0o660);
    let private = Queue::create(&s.dlq_path, Options::new(8, MAX_MESSAGE).mode(0o600)).unwrap();
    s.source.send(b"poison").unwrap();
    s.kill_a_holder();
    let st = s.sweep_until("the failure to be counted", |st| {
        st.dead_letter_failures == 1
    });
    assert_eq!(st.dead_lettered, 0, "{st:#?}");
    assert_empty(&private);
    drop(private);
    Queue::unlink(&s.dlq_path).unwrap();
    let shared = Queue::create(&s.dlq_path, Options::new(8, MAX_MESSAGE).mode(0o660)).unwrap();
    common::set_mode(&s.dlq_path, 0o660);
    s.kill_a_holder();
    s.sweep_until("the message to be dead-lettered", |st| {
        st.dead_lettered == 1
    });
    assert_eq!(next(&shared).0, "poison");
}
