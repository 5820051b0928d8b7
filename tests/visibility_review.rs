// SPDX-License-Identifier: MIT OR Apache-2.0
//! Issue 25, an outside review of the visibility timeout, with real processes:
//! - hold deadlines are on one clock for every process of the host, whatever time namespace
//!   (`unshare --time`, CRIU) a process runs in;
//! - a poller that only asks `Select::try_ready` gets a hung holder's message back, as a
//!   poller of `try_recv` does.
//!
//! The time-namespace tests need root and `unshare` (util-linux); without them they fail,
//! saying so, unless `SHMQ_SKIP_TIMENS_TESTS=1` is set.

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
/// How far ahead of the host the clocks of a time namespace are set (an hour: far beyond any
/// timeout here, so that a clock taken from the wrong namespace cannot pass by luck).
const AHEAD_S: &str = "3600";
/// Set to skip the time-namespace tests where they cannot run (not root, no `unshare`).
const SKIP_TIMENS: &str = "SHMQ_SKIP_TIMENS_TESTS";

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
        // Waits at most `wait_ms` for a message and reports `got <deliveries> <text>` or the
        // error.
        "consume" => {
            let mut buf = [0u8; 32];
            match q.recv_meta_timeout(&mut buf, Duration::from_millis(role.arg("wait_ms"))) {
                Ok(r) => role.report(&format!(
                    "got {} {}",
                    r.deliveries,
                    String::from_utf8_lossy(&buf[..r.len])
                )),
                Err(e) => role.report(&format!("error {e:?}")),
            }
        }
        other => panic!("unknown role {other}"),
    }
}

fn queue_with_timeout(dir: &Path, capacity: u32, timeout: Duration) -> Queue {
    let options = Options::new(capacity, 32).visibility_timeout(timeout);
    Queue::create(dir.join("q"), options).expect("create")
}

/// Starts a `hold` child on the queue in `dir`, run by `launcher` (empty: directly), that
/// sleeps `sleep_ms` holding its message.
fn spawn_holder(dir: &Path, launcher: &[&str], sleep_ms: u64) -> Child {
    Child::spawn_under(
        dir,
        launcher,
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

// 2. Time namespaces.

/// `unshare` that puts its child in a new time namespace whose monotonic (and boot-time) clock
/// is `AHEAD_S` seconds ahead of the host's; `None` if the test is skipped. Fails, naming the
/// skip variable, if that cannot be done here.
fn ahead_launcher() -> Option<Vec<&'static str>> {
    let launcher = vec![
        "unshare",
        "--time",
        "--monotonic",
        AHEAD_S,
        "--boottime",
        AHEAD_S,
        "--fork",
        "--kill-child",
    ];
    let works = std::process::Command::new(launcher[0])
        .args(&launcher[1..])
        .arg("true")
        .status()
        .is_ok_and(|s| s.success());
    if works {
        return Some(launcher);
    }
    if std::env::var_os(SKIP_TIMENS).is_some_and(|v| v == "1") {
        eprintln!("skipped: `unshare --time` does not work here and {SKIP_TIMENS}=1");
        return None;
    }
    panic!(
        "`{}` failed: this test needs root and util-linux's unshare with time namespaces \
         (Linux 5.6+); set {SKIP_TIMENS}=1 to skip it",
        launcher.join(" ")
    );
}

/// A holder whose clock is an hour ahead (its own time namespace) hangs: a consumer in the
/// host's namespace still gets the message within the timeout plus the detection bound.
#[test]
fn a_hung_holder_in_a_time_namespace_ahead_loses_its_message_within_the_bound() {
    let Some(launcher) = ahead_launcher() else {
        return;
    };
    let dir = common::tempdir();
    let timeout = Duration::from_millis(200);
    let q = queue_with_timeout(dir.path(), 4, timeout);
    q.send(b"job").unwrap();
    let holder = spawn_holder(dir.path(), &launcher, 60_000);
    reported(&holder, "held 1 job");
    let seen_held = Instant::now();
    let again = q
        .recv_in_place_timeout(Duration::from_secs(5))
        .expect("the hung holder's message comes back");
    let latency = seen_held.elapsed();
    assert_eq!((&*again, again.deliveries()), (&b"job"[..], 2));
    assert!(
        latency <= timeout + DETECTION + SCHEDULING,
        "handed out again only after {latency:?} (timeout {timeout:?} + {DETECTION:?})"
    );
    again.ack().unwrap();
    holder.kill();
}

/// A consumer whose clock is an hour ahead does not take a fresh hold of a holder in the host's
/// namespace: the hold stays the holder's for its whole timeout.
#[test]
fn a_consumer_in_a_time_namespace_ahead_does_not_expire_a_fresh_hold() {
    let Some(launcher) = ahead_launcher() else {
        return;
    };
    let dir = common::tempdir();
    let q = queue_with_timeout(dir.path(), 4, Duration::from_secs(5));
    q.send(b"job").unwrap();
    let held = q.try_recv_in_place().expect("hold the message");
    let consumer = Child::spawn_under(
        dir.path(),
        &launcher,
        "consume",
        &[
            ("queue", &dir.path().join("q").display()),
            ("wait_ms", &700),
        ],
        &[],
    );
    let report = consumer.wait(BOUND);
    assert_eq!(report, "error Timeout", "the fresh hold was taken over");
    held.ack().expect("the hold is still ours");
    assert_eq!(q.stats().expired, 0);
}

// 3. `Select::try_ready`.

/// A poller that asks only `Select::try_ready` (never `try_recv` until it says ready) gets a
/// hung holder's message within the timeout plus the detection bound.
#[test]
fn a_try_ready_poller_gets_a_hung_holders_message_within_the_bound() {
    let dir = common::tempdir();
    let timeout = Duration::from_millis(150);
    let q = queue_with_timeout(dir.path(), 4, timeout);
    let other = Queue::create(dir.path().join("other"), Options::new(4, 32)).unwrap();
    q.send(b"job").unwrap();
    let holder = spawn_holder(dir.path(), &[], 60_000);
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
