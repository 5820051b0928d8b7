// SPDX-License-Identifier: MIT OR Apache-2.0
//! Issue 25, an outside review of the visibility timeout, with real processes:
//! - a holder that extends (or acknowledges) after its deadline, before anyone took its message
//!   over, keeps it: `Expired` is said only when the hold was taken over, and after `Expired`
//!   the holder's acknowledgement deletes nothing;
//! - hold deadlines are on one clock for every process of the host, whatever time namespace
//!   (`unshare --time`, CRIU) a process runs in;
//! - a poller that only asks `Select::try_ready` gets a hung holder's message back, as a
//!   poller of `try_recv` does.
//!
//! The time-namespace tests need root and `unshare` (util-linux); without them they fail,
//! saying so, unless `SHMQ_SKIP_TIMENS_TESTS=1` is set.

mod common;

use common::{Child, Role};
use shmq::{Error, Options, Queue, Select};
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
        // Receives one message in place and reports `held <deliveries> <text>`; sleeps
        // `sleep_ms` touching nothing of the queue; if `extend_ms` is not 0, extends the hold by
        // that much and reports `extended <result>`; holds `then_ms` more, checks its bytes did
        // not change, acknowledges and reports `done intact=<bool> ack=<result>`.
        "hold" => {
            let guard = q.recv_in_place_timeout(BOUND).expect("receive in place");
            let copy = guard.to_vec();
            role.report(&format!(
                "held {} {}\n",
                guard.deliveries(),
                String::from_utf8_lossy(&copy)
            ));
            std::thread::sleep(Duration::from_millis(role.arg("sleep_ms")));
            let extend: u64 = role.arg("extend_ms");
            let mut reported = String::new();
            if extend != 0 {
                let extended = guard.extend(Duration::from_millis(extend));
                reported = format!("extended {extended:?}\n");
                role.report(&reported);
            }
            std::thread::sleep(Duration::from_millis(role.arg("then_ms")));
            let intact = *guard == copy[..];
            let acked = guard.ack();
            role.report(&format!("{reported}done intact={intact} ack={acked:?}"));
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

/// Starts a `hold` child on the queue in `dir`, run by `launcher` (empty: directly).
fn spawn_holder(
    dir: &Path,
    launcher: &[&str],
    sleep_ms: u64,
    extend_ms: u64,
    then_ms: u64,
) -> Child {
    Child::spawn_under(
        dir,
        launcher,
        "hold",
        &[
            ("queue", &dir.join("q").display()),
            ("sleep_ms", &sleep_ms),
            ("extend_ms", &extend_ms),
            ("then_ms", &then_ms),
        ],
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

// 1. `extend` / `ack` after the deadline.

/// The holder's deadline passes while nobody looks at the queue; then it extends. Nobody took
/// the message, so the hold is still the holder's: the extension succeeds, nobody else gets the
/// message for the extended time, and the holder's ack deletes it (exactly once, processed).
#[test]
fn a_late_extension_before_anyone_took_the_message_keeps_it() {
    let dir = common::tempdir();
    let timeout = Duration::from_millis(50);
    let q = queue_with_timeout(dir.path(), 4, timeout);
    q.send(b"job").unwrap();
    let holder = spawn_holder(dir.path(), &[], 300, 2000, 600);
    reported(&holder, "held 1 job");
    // Well past the deadline, nobody scanned (this process made no call): the holder extends.
    let report = reported(&holder, "extended ");
    assert!(
        report.contains("extended Ok(())"),
        "a hold nobody took is still the holder's: {report}"
    );
    // Extended by 2 s: polls that run the expiry scan find nothing to hand out.
    let start = Instant::now();
    let mut buf = [0u8; 32];
    while start.elapsed() < Duration::from_millis(400) {
        assert_eq!(q.try_recv(&mut buf), Err(Error::Empty));
        std::thread::sleep(Duration::from_millis(1));
    }
    let report = holder.wait(BOUND);
    assert!(report.contains("done intact=true ack=Ok(())"), "{report}");
    assert_eq!(q.stats().expired, 0);
    assert!(!q.recover());
    assert_eq!(q.try_recv(&mut buf), Err(Error::Empty));
}

/// Once another consumer has the message, the late holder's extension says `Expired`, and its
/// ack says so too and deletes nothing: the other consumer's delivery stays valid and is the one
/// that acknowledges.
#[test]
fn after_another_consumer_took_the_message_the_late_holder_gets_expired_and_deletes_nothing() {
    let dir = common::tempdir();
    let q = queue_with_timeout(dir.path(), 4, Duration::from_millis(50));
    q.send(b"job").unwrap();
    let holder = spawn_holder(dir.path(), &[], 1000, 2000, 0);
    reported(&holder, "held 1 job");
    let again = q.recv_in_place_timeout(BOUND).expect("the lapsed message");
    assert_eq!((&*again, again.deliveries()), (&b"job"[..], 2));
    let report = holder.wait(BOUND);
    assert!(
        report.contains("extended Err(Expired)") && report.contains("ack=Err(Expired)"),
        "{report}"
    );
    assert_eq!(&*again, b"job", "the new delivery's bytes are untouched");
    again
        .ack()
        .expect("the new holder's ack deletes the message");
    assert_eq!(q.try_recv(&mut [0u8; 32]), Err(Error::Empty));
    for i in 0..4u8 {
        q.try_send(&[i]).expect("every slot is back in the ring");
    }
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
    let holder = spawn_holder(dir.path(), &launcher, 60_000, 0, 0);
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
    let holder = spawn_holder(dir.path(), &[], 60_000, 0, 0);
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
