// SPDX-License-Identifier: MIT OR Apache-2.0
//! Issue 25, an outside review of the visibility timeout, with real processes:
//! - a poller that only asks `Select::try_ready` gets a hung holder's message back, as a
//!   poller of `try_recv` does.

mod common;

use common::{Child, Role};
use shmq::{Options, Queue, Select};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a test waits for what must happen at once before it calls it a failure.
const BOUND: Duration = Duration::from_secs(20);
/// The documented detection bound: an expired message is receivable within the timeout plus
/// this, for anyone blocked on the queue or polling it.
const DETECTION: Duration = Duration::from_millis(100);
/// Room for a loaded 2-core machine on top of `DETECTION`.
const SCHEDULING: Duration = Duration::from_millis(400);

/// Not a property: the entry point of the child processes these tests spawn (see `common`).
#[test]
#[ignore = "the entry point of child processes, not a test"]
fn child() {
    common::child_main(run_role);
}

fn run_role(role: &Role) {
    let q = Queue::open(role.path("queue")).expect("open the queue");
    match role.name() {
        // Receives one message in place, reports `held <deliveries> <text>` and sleeps
        // `sleep_ms` touching nothing of the queue, then acknowledges.
        "hold" => {
            let guard = q.recv_in_place_timeout(BOUND).expect("receive in place");
            role.report(&format!(
                "held {} {}\n",
                guard.deliveries(),
                String::from_utf8_lossy(&guard)
            ));
            std::thread::sleep(Duration::from_millis(role.arg("sleep_ms")));
            let _ = guard.ack();
        }
        other => panic!("unknown role {other}"),
    }
}

fn queue_with_timeout(dir: &Path, capacity: u32, timeout: Duration) -> Queue {
    let options = Options::new(capacity, 32).visibility_timeout(timeout);
    Queue::create(dir.join("q"), options).expect("create")
}

/// Starts a `hold` child on the queue in `dir` that sleeps `sleep_ms` holding its message.
fn spawn_holder(dir: &Path, sleep_ms: u64) -> Child {
    Child::spawn_with_env(
        dir,
        "hold",
        &[("queue", &dir.join("q").display()), ("sleep_ms", &sleep_ms)],
        &[],
    )
}

/// Waits until `child`'s report contains `what`; returns the report.
fn reported(child: &Child, what: &str) -> String {
    let mut report = String::new();
    common::wait_until(BOUND, what, || {
        report = child.report_so_far();
        report.contains(what)
    });
    report
}

/// A poller that asks only `Select::try_ready` (never `try_recv` until it says ready) gets a
/// hung holder's message within the timeout plus the detection bound.
#[test]
fn a_try_ready_poller_gets_a_hung_holders_message_within_the_bound() {
    let dir = common::tempdir();
    let timeout = Duration::from_millis(150);
    let q = queue_with_timeout(dir.path(), 4, timeout);
    let other = Queue::create(dir.path().join("other"), Options::new(4, 32)).unwrap();
    q.send(b"job").unwrap();
    let holder = spawn_holder(dir.path(), 60_000);
    reported(&holder, "held 1 job");
    let seen_held = Instant::now();
    let mut select = Select::new();
    let _on_other = select.recv(&other);
    let on_q = select.recv(&q);
    let ready = loop {
        if let Some(i) = select.try_ready() {
            break i;
        }
        assert!(
            seen_held.elapsed() < Duration::from_secs(5),
            "try_ready never saw the hung holder's message"
        );
        std::hint::spin_loop();
    };
    let latency = seen_held.elapsed();
    assert_eq!(ready, on_q);
    let mut buf = [0u8; 32];
    let got = q.try_recv_meta(&mut buf).expect("the ready message");
    assert_eq!((&buf[..got.len], got.deliveries), (&b"job"[..], 2));
    assert!(
        latency <= timeout + DETECTION + SCHEDULING,
        "ready only after {latency:?} (timeout {timeout:?} + {DETECTION:?})"
    );
    holder.kill();
}
