// SPDX-License-Identifier: MIT OR Apache-2.0
//! The visibility timeout (`Options::visibility_timeout`), with real processes: a holder that
//! outlives its timeout loses its message to another consumer and learns it from `ack`; a
//! holder that extends keeps it; a hung holder neither loses messages nor wedges producers, and
//! its bytes stay valid while the ring wraps around it. From an outside review (issue 25): a
//! holder that extends or acknowledges after its deadline, before anyone took its message over,
//! keeps it, and after `Expired` deletes nothing; hold deadlines are on one clock for every
//! process of the host, whatever time namespace (`unshare --time`, CRIU) a process runs in; a
//! poller that only asks `Select::try_ready` gets a hung holder's message back.
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
/// The detection bound the issue promises: an expired message is receivable within the timeout
/// plus this, for anyone blocked on the queue or polling it.
const DETECTION: Duration = Duration::from_millis(100);
/// Room for a loaded 2-core machine on top of `DETECTION` (a failure is reported with the
/// measured figure, so a real regression of the 20 ms scan interval is still caught).
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
        // Receives one message in place, reports `held <monotonic ns> <deliveries> <text>`,
        // holds it `hold_ms` (extending its hold every `extend_ms`, if not 0), checks that its
        // bytes did not change meanwhile, then acknowledges it and reports how that went.
        "hold" => {
            let guard = q.recv_in_place_timeout(BOUND).expect("receive in place");
            let copy = guard.to_vec();
            role.report(&format!(
                "held {} {} {}",
                common::monotonic_ns(),
                guard.deliveries(),
                String::from_utf8_lossy(&copy)
            ));
            let hold = Duration::from_millis(role.arg("hold_ms"));
            let extend = Duration::from_millis(role.arg("extend_ms"));
            let start = Instant::now();
            let mut extended = Ok(());
            while start.elapsed() < hold {
                if extend.is_zero() {
                    std::thread::sleep(hold - start.elapsed().min(hold));
                } else {
                    std::thread::sleep(extend.min(hold - start.elapsed().min(hold)));
                    extended = extended.and(guard.extend(extend * 3));
                }
            }
            let intact = *guard == copy[..];
            let acked = guard.ack();
            role.report(&format!(
                "done intact={intact} extended={extended:?} ack={acked:?}"
            ));
        }
        // Receives one message in place and reports `held <deliveries> <text>`; sleeps
        // `sleep_ms` touching nothing of the queue; if `extend_ms` is not 0, extends the hold by
        // that much and reports `extended <result>`; holds `then_ms` more, checks its bytes did
        // not change, acknowledges and reports `done intact=<bool> ack=<result>`.
        "late_hold" => {
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

/// Starts a holder process (the `hold` role) on the queue `q` in `dir`.
fn spawn_holder(dir: &std::path::Path, hold_ms: u64, extend_ms: u64) -> Child {
    Child::spawn(
        dir,
        "hold",
        &[
            ("queue", &dir.join("q").display()),
            ("hold_ms", &hold_ms),
            ("extend_ms", &extend_ms),
        ],
    )
}

/// Waits for the holder to report that it holds its message; returns its report line.
fn held(holder: &Child) -> String {
    let mut line = String::new();
    common::wait_until(BOUND, "the holder holds its message", || {
        line = holder.report_so_far();
        line.starts_with("held ")
    });
    line
}

fn queue_with_timeout(dir: &std::path::Path, capacity: u32, timeout: Duration) -> Queue {
    let options = Options::new(capacity, 32).visibility_timeout(timeout);
    Queue::create(dir.join("q"), options).expect("create")
}

#[test]
fn a_holder_past_its_timeout_loses_the_message_to_another_consumer_and_its_ack_says_expired() {
    let dir = common::tempdir();
    let timeout = Duration::from_millis(200);
    let q = queue_with_timeout(dir.path(), 8, timeout);
    q.send(b"job").unwrap();
    let holder = spawn_holder(dir.path(), 1500, 0);
    let line = held(&holder);
    let held_at: u64 = line.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(line.ends_with(" 1 job"), "{line}");
    // Blocked on the queue: the message comes back once the hold lapses.
    let again = q.recv_in_place_timeout(BOUND).expect("the expired message");
    let latency = Duration::from_nanos(common::monotonic_ns() - held_at);
    assert_eq!(&*again, b"job");
    assert_eq!(again.deliveries(), 2, "an expiry counts as a delivery");
    assert!(
        latency >= timeout,
        "handed out again after {latency:?}, before the timeout"
    );
    assert!(
        latency <= timeout + DETECTION + SCHEDULING,
        "handed out again only after {latency:?} (timeout {timeout:?} + {DETECTION:?})"
    );
    eprintln!(
        "expiry detected {:?} after the timeout (blocked receiver)",
        latency - timeout
    );
    again.ack().expect("the new holder acknowledges in time");
    let report = holder.wait(BOUND);
    assert!(
        report.contains("intact=true") && report.contains("ack=Err(Expired)"),
        "{report}"
    );
    assert_eq!(q.stats().expired, 1);
    // Exactly once: nothing else is left, and the holder's slot is back in the ring.
    assert_eq!(q.try_recv(&mut [0u8; 32]), Err(Error::Empty));
    for i in 0..8u8 {
        q.try_send(&[i]).expect("every slot is free again");
    }
}

#[test]
fn a_polling_consumer_gets_an_expired_message_within_the_bound() {
    let dir = common::tempdir();
    let timeout = Duration::from_millis(150);
    let q = queue_with_timeout(dir.path(), 8, timeout);
    q.send(b"job").unwrap();
    let holder = spawn_holder(dir.path(), 1000, 0);
    let held_at: u64 = held(&holder).split(' ').nth(1).unwrap().parse().unwrap();
    let mut buf = [0u8; 32];
    let got = loop {
        match q.try_recv_meta(&mut buf) {
            Ok(got) => break got,
            Err(Error::Empty) => std::hint::spin_loop(),
            Err(e) => panic!("{e}"),
        }
    };
    let latency = Duration::from_nanos(common::monotonic_ns() - held_at);
    assert_eq!((&buf[..got.len], got.deliveries), (&b"job"[..], 2));
    assert!(latency >= timeout, "{latency:?}");
    assert!(
        latency <= timeout + DETECTION + SCHEDULING,
        "handed out again only after {latency:?} (timeout {timeout:?})"
    );
    eprintln!(
        "expiry detected {:?} after the timeout (polling receiver)",
        latency - timeout
    );
    assert!(holder.wait(BOUND).contains("ack=Err(Expired)"));
}

#[test]
fn a_holder_that_extends_keeps_its_message() {
    let dir = common::tempdir();
    let q = queue_with_timeout(dir.path(), 8, Duration::from_millis(200));
    q.send(b"long job").unwrap();
    let holder = spawn_holder(dir.path(), 1200, 100);
    held(&holder);
    // Six timeouts long, nobody else gets it.
    let start = Instant::now();
    let mut buf = [0u8; 32];
    while start.elapsed() < Duration::from_millis(1000) {
        assert_eq!(q.try_recv(&mut buf), Err(Error::Empty));
        std::thread::sleep(Duration::from_millis(1));
    }
    let report = holder.wait(BOUND);
    assert!(
        report.contains("extended=Ok(())") && report.contains("ack=Ok(())"),
        "{report}"
    );
    assert_eq!(q.stats().expired, 0);
    assert_eq!(q.try_recv(&mut buf), Err(Error::Empty));
}

#[test]
fn a_hung_holder_neither_wedges_producers_nor_loses_messages_and_keeps_its_bytes() {
    let dir = common::tempdir();
    let capacity = 4u32;
    let q = queue_with_timeout(dir.path(), capacity, Duration::from_millis(50));
    q.send(b"held").unwrap();
    let holder = spawn_holder(dir.path(), 4000, 0);
    held(&holder);
    // Ten times the capacity through the ring, wrapping round the held slot many times, with a
    // receiver in another thread; nobody waits on the held slot for good.
    let total = 10 * capacity;
    let receiver = std::thread::scope(|s| {
        let q2 = Queue::open(dir.path().join("q")).unwrap();
        let receiver = s.spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0u8; 32];
            while got.len() < total as usize + 1 {
                let r = q2
                    .recv_meta_timeout(&mut buf, Duration::from_secs(5))
                    .expect("a receiver is never starved by the hung holder");
                got.push((
                    String::from_utf8_lossy(&buf[..r.len]).into_owned(),
                    r.deliveries,
                ));
            }
            got
        });
        for i in 0..total {
            q.send_timeout(format!("m{i}").as_bytes(), Duration::from_secs(5))
                .expect("a producer never waits on the hung holder's slot");
        }
        receiver.join().unwrap()
    });
    let mut expected: Vec<(String, u32)> = (0..total).map(|i| (format!("m{i}"), 1)).collect();
    expected.push(("held".into(), 2));
    let mut got = receiver;
    got.sort();
    expected.sort();
    assert_eq!(
        got, expected,
        "every message exactly once, the expired one redelivered"
    );
    let report = holder.wait(BOUND);
    assert!(
        report.contains("intact=true") && report.contains("ack=Err(Expired)"),
        "{report}"
    );
    // The holder let go: the whole capacity is usable again.
    for i in 0..capacity {
        q.try_send(&[i as u8])
            .expect("the held slot is back in the ring");
    }
    assert_eq!(q.try_send(b"x"), Err(Error::Full));
}

#[test]
fn a_hung_holder_that_is_killed_gives_its_slot_back() {
    let dir = common::tempdir();
    let capacity = 4u32;
    let q = queue_with_timeout(dir.path(), capacity, Duration::from_millis(50));
    q.send(b"held").unwrap();
    let holder = spawn_holder(dir.path(), 60_000, 0);
    held(&holder);
    let again = q.recv_in_place_timeout(BOUND).expect("the expired message");
    assert_eq!((&*again, again.deliveries()), (&b"held"[..], 2));
    again.ack().unwrap();
    holder.kill();
    // Recovery (a sweep, here asked for; a blocked call would run one) gives the dead holder's
    // withheld slot back: once the queue is drained, all of its capacity is usable again.
    let mut buf = [0u8; 32];
    common::wait_until(BOUND, "the withheld slot is given back", || {
        q.recover();
        while q.try_recv(&mut buf).is_ok() {}
        let mut sent = 0;
        while q.try_send(b"x").is_ok() {
            sent += 1;
        }
        while q.try_recv(&mut buf).is_ok() {}
        sent == capacity
    });
}

#[test]
fn without_a_timeout_a_hold_never_lapses_and_extend_and_ack_succeed() {
    let dir = common::tempdir();
    let q = Queue::create(dir.path().join("q"), Options::new(4, 32)).unwrap();
    assert_eq!(q.visibility_timeout(), None);
    q.send(b"a").unwrap();
    let g = q.try_recv_in_place().unwrap();
    g.extend(Duration::from_millis(1)).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    assert!(!q.recover());
    assert_eq!(q.try_recv(&mut [0u8; 8]), Err(Error::Empty));
    g.ack().unwrap();
}

#[test]
fn extending_after_the_deadline_before_anyone_took_the_hold_keeps_it_and_bad_timeouts_are_refused()
{
    let dir = common::tempdir();
    for bad in [Duration::ZERO, Duration::from_secs(13 * 3600)] {
        let options = Options::new(4, 32).visibility_timeout(bad);
        assert!(matches!(
            Queue::create(dir.path().join("bad"), options),
            Err(Error::InvalidOptions(_))
        ));
    }
    let q = queue_with_timeout(dir.path(), 4, Duration::from_millis(20));
    assert_eq!(q.visibility_timeout(), Some(Duration::from_millis(20)));
    q.send(b"a").unwrap();
    let g = q.try_recv_in_place().unwrap();
    std::thread::sleep(Duration::from_millis(40));
    // Nobody took it over yet (nobody scanned): the hold is still the holder's (issue 25).
    assert_eq!(g.extend(Duration::from_secs(1)), Ok(()));
    g.ack().unwrap();
    assert!(!q.recover());
    assert_eq!(q.try_recv(&mut [0u8; 8]), Err(Error::Empty));
}

#[test]
fn a_message_whose_holds_keep_lapsing_goes_to_the_dead_letter_queue_at_the_limit() {
    let dir = common::tempdir();
    let dlq = Queue::create(dir.path().join("dlq"), Options::new(4, 32)).unwrap();
    let options = Options::new(4, 32)
        .visibility_timeout(Duration::from_millis(50))
        .max_deliveries(2)
        .dead_letter_queue(dir.path().join("dlq"));
    let q = Queue::create(dir.path().join("q"), options).unwrap();
    q.send(b"poison").unwrap();
    // A hung holder (another process); a second consumer, blocked meanwhile, gets the message
    // when the hold lapses (delivery 2), and hangs too.
    let hang = || spawn_holder(dir.path(), 400, 0);
    let first = hang();
    assert!(held(&first).ends_with(" 1 poison"));
    let second = hang();
    assert!(held(&second).ends_with(" 2 poison"));
    // Blocked on the queue, this receiver finds the second hold lapsed: at the limit, the
    // message goes to the dead-letter queue, not to any receiver.
    assert_eq!(
        q.recv_timeout(&mut [0u8; 32], Duration::from_millis(500)),
        Err(Error::Timeout)
    );
    for holder in [first, second] {
        let report = holder.wait(BOUND);
        assert!(report.contains("ack=Err(Expired)"), "{report}");
    }
    // The second expiry reached the limit: the message left for the dead-letter queue, with its
    // count and where it came from.
    let dead = dlq
        .recv_in_place_timeout(BOUND)
        .expect("the dead-lettered message");
    assert_eq!((&*dead, dead.deliveries()), (&b"poison"[..], 2));
    assert_eq!(dead.origin().map(|o| o.queue), Some(q.identity()));
    let stats = q.stats();
    assert_eq!((stats.expired, stats.dead_lettered), (1, 1), "{stats:?}");
    assert_eq!(q.try_recv(&mut [0u8; 32]), Err(Error::Empty));
}

#[test]
fn two_hung_holders_side_by_side_at_the_tail_do_not_wedge_the_queue() {
    let dir = common::tempdir();
    let q = queue_with_timeout(dir.path(), 4, Duration::from_millis(100));
    let hang = || spawn_holder(dir.path(), 2500, 0);
    // Positions 0 and 1 held by two hung consumers, 2 and 3 full: the queue is full.
    q.send(b"h1").unwrap();
    let a = hang();
    held(&a);
    q.send(b"h2").unwrap();
    let b = hang();
    held(&b);
    q.send(b"m2").unwrap();
    q.send(b"m3").unwrap();
    assert_eq!(q.try_send(b"x"), Err(Error::Full));
    let mut buf = [0u8; 32];
    let mut recv = || {
        let r = q.recv_meta_timeout(&mut buf, BOUND).expect("a message");
        (
            String::from_utf8_lossy(&buf[..r.len]).into_owned(),
            r.deliveries,
        )
    };
    assert_eq!([recv(), recv()], [("m2".into(), 1), ("m3".into(), 1)]);
    // Now the tail stands on the first hung holder's slot, the second's right after it, and
    // two slots are free behind them. Both holds lapse; a blocked receiver moves both messages
    // past their slots at once.
    assert_eq!([recv(), recv()], [("h1".into(), 2), ("h2".into(), 2)]);
    // Producers pass the withheld slots: two free slots take two messages.
    q.try_send(b"m4").expect("not wedged");
    q.try_send(b"m5").expect("not wedged");
    assert_eq!(
        q.try_send(b"x"),
        Err(Error::Full),
        "two slots are still withheld"
    );
    assert_eq!([recv(), recv()], [("m4".into(), 1), ("m5".into(), 1)]);
    for holder in [a, b] {
        let report = holder.wait(BOUND);
        assert!(
            report.contains("intact=true") && report.contains("ack=Err(Expired)"),
            "{report}"
        );
    }
    // Both let go: the whole capacity again.
    for i in 0..4u8 {
        q.try_send(&[i]).expect("every slot is back");
    }
    assert_eq!(q.stats().expired, 2);
}

// Issue 25, an outside review of the visibility timeout.

/// Starts a `late_hold` child on the queue in `dir`, run by `launcher` (empty: directly).
fn spawn_late_holder(
    dir: &Path,
    launcher: &[&str],
    sleep_ms: u64,
    extend_ms: u64,
    then_ms: u64,
) -> Child {
    Child::spawn_under(
        dir,
        launcher,
        "late_hold",
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
    let holder = spawn_late_holder(dir.path(), &[], 300, 2000, 600);
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
    let holder = spawn_late_holder(dir.path(), &[], 1000, 2000, 0);
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
    let holder = spawn_late_holder(dir.path(), &launcher, 60_000, 0, 0);
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
    let holder = spawn_late_holder(dir.path(), &[], 60_000, 0, 0);
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
