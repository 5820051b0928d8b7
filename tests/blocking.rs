// SPDX-License-Identifier: MIT OR Apache-2.0
//! Blocking calls across processes: a sleeper in one process is woken by progress or `close` in
//! another, timeouts fire on time, and every sleeper is counted while asleep and uncounted after.

mod common;

use common::{Child, Role};
use shmq::{Error, Options, Queue};
use std::path::Path;
use std::time::{Duration, Instant};

/// Bound for "returns promptly": generous, so a loaded machine does not make the test flaky,
/// yet far below "never" (a lost wake-up would block until the child's own bound).
const PROMPT: Duration = Duration::from_secs(2);
/// How long to wait for a child to fall asleep, or to exit.
const BOUND: Duration = Duration::from_secs(10);
/// How much later than its timeout a timed call may return.
const LATE: Duration = Duration::from_millis(1500);

/// One blocking call in a child process. Reports three lines: the outcome (`ok <payload>` or the
/// error's name), the `CLOCK_MONOTONIC` time at which the call returned, and how long it took.
fn call(role: &Role) {
    let q = Queue::open(role.path("queue")).unwrap();
    let op: String = role.arg("op");
    let timeout = Duration::from_millis(role.arg("timeout_ms"));
    let msg: String = role.arg("msg");
    let mut buf = [0u8; 64];
    let start = Instant::now();
    let result = match op.as_str() {
        "recv" => q.recv(&mut buf),
        "recv_timeout" => q.recv_timeout(&mut buf, timeout),
        "send" => q.send(msg.as_bytes()).map(|()| 0),
        "send_timeout" => q.send_timeout(msg.as_bytes(), timeout).map(|()| 0),
        other => panic!("unknown op {other}"),
    };
    let returned = common::monotonic_ns();
    let elapsed = start.elapsed();
    let outcome = match result {
        Ok(n) => format!("ok {}", String::from_utf8_lossy(&buf[..n])),
        Err(e) => format!("{e:?}"),
    };
    role.report(&format!("{outcome}\n{returned}\n{}", elapsed.as_nanos()));
}

/// Not a property: the entry point of the child processes these tests spawn (see `common`).
/// Ignored, so that a test run does not count it; the children run it with `--ignored`.
#[test]
#[ignore = "the entry point of child processes, not a test"]
fn child() {
    common::child_main(|role| match role.name() {
        "call" => call(role),
        other => panic!("unknown role {other}"),
    });
}

/// What a `call` child reported.
struct Outcome {
    outcome: String,
    returned_ns: u64,
    elapsed: Duration,
}

impl Outcome {
    fn parse(report: &str) -> Outcome {
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(lines.len(), 3, "bad report {report:?}");
        Outcome {
            outcome: lines[0].to_string(),
            returned_ns: lines[1].parse().unwrap(),
            elapsed: Duration::from_nanos(lines[2].parse().unwrap()),
        }
    }
}

fn spawn_call(dir: &Path, queue: &Path, op: &str, timeout: Duration, msg: &str) -> Child {
    Child::spawn(
        dir,
        "call",
        &[
            ("queue", &queue.display()),
            ("op", &op),
            ("timeout_ms", &timeout.as_millis()),
            ("msg", &msg),
        ],
    )
}

/// Waits until `q` counts `recv` receivers and `send` senders asleep, checking that every child
/// is still blocked (has not returned) meanwhile.
fn wait_for_sleepers(q: &Queue, recv: u32, send: u32, children: &mut [&mut Child]) {
    common::wait_until(BOUND, "children to fall asleep", || {
        for c in children.iter_mut() {
            assert!(!c.has_exited(), "a child returned instead of sleeping");
        }
        let s = q.stats();
        (s.recv_sleepers, s.send_sleepers) == (recv, send)
    });
}

fn assert_no_sleepers(q: &Queue) {
    let s = q.stats();
    assert_eq!((s.recv_sleepers, s.send_sleepers), (0, 0));
}

#[test]
fn receiver_asleep_in_another_process_wakes_promptly_on_send() {
    let dir = common::tempdir();
    let path = dir.path().join("q");
    let q = Queue::create(&path, Options::new(4, 64)).unwrap();
    let mut receiver = spawn_call(dir.path(), &path, "recv", Duration::ZERO, "-");
    wait_for_sleepers(&q, 1, 0, &mut [&mut receiver]);
    assert!(q.stats().empty_waits >= 1);

    let sent_at = common::monotonic_ns();
    q.send(b"wake up").unwrap();
    let out = Outcome::parse(&receiver.wait(BOUND));
    assert_eq!(out.outcome, "ok wake up");
    assert!(out.returned_ns > sent_at, "returned before the send");
    let latency = Duration::from_nanos(out.returned_ns - sent_at);
    assert!(latency < PROMPT, "woke {latency:?} after the send");
    assert_no_sleepers(&q);
    assert_eq!(q.stats().len, 0);
}

#[test]
fn sender_blocked_on_full_queue_in_another_process_wakes_promptly_on_receive() {
    let dir = common::tempdir();
    let path = dir.path().join("q");
    let q = Queue::create(&path, Options::new(2, 64)).unwrap();
    q.try_send(b"first").unwrap();
    q.try_send(b"second").unwrap();
    let mut sender = spawn_call(dir.path(), &path, "send", Duration::ZERO, "third");
    wait_for_sleepers(&q, 0, 1, &mut [&mut sender]);
    assert!(q.stats().full_waits >= 1);

    let mut buf = [0u8; 64];
    let freed_at = common::monotonic_ns();
    let n = q.try_recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"first");
    let out = Outcome::parse(&sender.wait(BOUND));
    assert_eq!(out.outcome, "ok ");
    assert!(out.returned_ns > freed_at, "returned before room was made");
    let latency = Duration::from_nanos(out.returned_ns - freed_at);
    assert!(latency < PROMPT, "woke {latency:?} after the receive");
    assert_no_sleepers(&q);
    // The woken sender's message is queued after the one that was waiting.
    for expected in [&b"second"[..], b"third"] {
        let n = q.try_recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], expected);
    }
    assert!(matches!(q.try_recv(&mut buf), Err(Error::Empty)));
}

#[test]
fn recv_timeout_in_another_process_fires_on_time_and_receives_nothing() {
    let dir = common::tempdir();
    let path = dir.path().join("q");
    let q = Queue::create(&path, Options::new(4, 64)).unwrap();
    let timeout = Duration::from_millis(400);
    let out =
        Outcome::parse(&spawn_call(dir.path(), &path, "recv_timeout", timeout, "-").wait(BOUND));
    assert_eq!(out.outcome, "Timeout");
    assert!(
        out.elapsed >= timeout,
        "fired early, after {:?}",
        out.elapsed
    );
    assert!(
        out.elapsed < timeout + LATE,
        "fired late, after {:?}",
        out.elapsed
    );
    assert_no_sleepers(&q);
    let s = q.stats();
    assert_eq!((s.sent, s.received), (0, 0));
    assert!(s.empty_waits >= 1, "the receiver never waited");
}

#[test]
fn send_timeout_in_another_process_fires_on_time_and_sends_nothing() {
    let dir = common::tempdir();
    let path = dir.path().join("q");
    let q = Queue::create(&path, Options::new(2, 64)).unwrap();
    q.try_send(b"a").unwrap();
    q.try_send(b"b").unwrap();
    let timeout = Duration::from_millis(400);
    let out =
        Outcome::parse(&spawn_call(dir.path(), &path, "send_timeout", timeout, "c").wait(BOUND));
    assert_eq!(out.outcome, "Timeout");
    assert!(
        out.elapsed >= timeout,
        "fired early, after {:?}",
        out.elapsed
    );
    assert!(
        out.elapsed < timeout + LATE,
        "fired late, after {:?}",
        out.elapsed
    );
    assert_no_sleepers(&q);
    let s = q.stats();
    assert_eq!((s.sent, s.received, s.len), (2, 0, 2));
    assert!(s.full_waits >= 1, "the sender never waited");
}

#[test]
fn recv_timeout_in_another_process_returns_promptly_when_a_message_arrives() {
    let dir = common::tempdir();
    let path = dir.path().join("q");
    let q = Queue::create(&path, Options::new(4, 64)).unwrap();
    let mut receiver = spawn_call(dir.path(), &path, "recv_timeout", BOUND, "-");
    wait_for_sleepers(&q, 1, 0, &mut [&mut receiver]);
    let sent_at = common::monotonic_ns();
    q.send(b"in time").unwrap();
    let out = Outcome::parse(&receiver.wait(BOUND));
    assert_eq!(out.outcome, "ok in time");
    let latency = Duration::from_nanos(out.returned_ns - sent_at);
    assert!(latency < PROMPT, "woke {latency:?} after the send");
    assert_no_sleepers(&q);
}

#[test]
fn close_wakes_every_sleeping_receiver_and_sender_in_other_processes() {
    let dir = common::tempdir();
    let empty_path = dir.path().join("empty");
    let full_path = dir.path().join("full");
    let empty = Queue::create(&empty_path, Options::new(4, 64)).unwrap();
    let full = Queue::create(&full_path, Options::new(2, 64)).unwrap();
    full.try_send(b"1").unwrap();
    full.try_send(b"2").unwrap();
    let mut receivers: Vec<Child> = (0..3)
        .map(|_| spawn_call(dir.path(), &empty_path, "recv", Duration::ZERO, "-"))
        .collect();
    let mut sender = spawn_call(dir.path(), &full_path, "send", Duration::ZERO, "3");
    wait_for_sleepers(&empty, 3, 0, &mut receivers.iter_mut().collect::<Vec<_>>());
    wait_for_sleepers(&full, 0, 1, &mut [&mut sender]);

    let closed_at = common::monotonic_ns();
    assert!(empty.close());
    assert!(full.close());
    let mut outcomes: Vec<Outcome> = common::wait_all(receivers, BOUND)
        .iter()
        .map(|r| Outcome::parse(r))
        .collect();
    outcomes.push(Outcome::parse(&sender.wait(BOUND)));
    for out in &outcomes {
        assert_eq!(out.outcome, "Closed");
        assert!(out.returned_ns > closed_at, "returned before the close");
        let latency = Duration::from_nanos(out.returned_ns - closed_at);
        assert!(latency < PROMPT, "woke {latency:?} after the close");
    }
    assert_no_sleepers(&empty);
    assert_no_sleepers(&full);
    // Closing loses nothing already sent.
    let mut buf = [0u8; 64];
    for expected in [b"1", b"2"] {
        let n = full.try_recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], expected);
    }
    assert!(matches!(full.try_recv(&mut buf), Err(Error::Closed)));
}

#[test]
fn close_lets_in_flight_sends_commit_and_sleeping_receivers_drain_them() {
    let dir = common::tempdir();
    let path = dir.path().join("q");
    let q = Queue::create(&path, Options::new(2, 64)).unwrap();
    // Both slots claimed, neither committed: receivers find nothing, senders find no room.
    let mut first = q.try_reserve().unwrap();
    let second = q.try_reserve().unwrap();
    let mut receivers: Vec<Child> = (0..2)
        .map(|_| spawn_call(dir.path(), &path, "recv", Duration::ZERO, "-"))
        .collect();
    let mut sender = spawn_call(dir.path(), &path, "send", Duration::ZERO, "late");
    let mut all: Vec<&mut Child> = receivers.iter_mut().collect();
    all.push(&mut sender);
    wait_for_sleepers(&q, 2, 1, &mut all);

    assert!(q.close());
    // The sender is refused at once; the receivers wait for the claimed slots to resolve.
    assert_eq!(Outcome::parse(&sender.wait(BOUND)).outcome, "Closed");
    std::thread::sleep(Duration::from_millis(100));
    assert!(receivers.iter_mut().all(|c| !c.has_exited()));

    first[..6].copy_from_slice(b"inside");
    first.commit(6).unwrap();
    drop(second); // cancelled: receivers skip it and then see the queue closed and drained
    let mut outcomes: Vec<String> = common::wait_all(receivers, BOUND)
        .iter()
        .map(|r| Outcome::parse(r).outcome)
        .collect();
    outcomes.sort();
    assert_eq!(outcomes, ["Closed", "ok inside"]);
    assert_no_sleepers(&q);
}

/// CPU time (user + system) the calling thread has used so far, from getrusage.
fn thread_cpu() -> Duration {
    // SAFETY: `usage` is a valid, writable rusage; RUSAGE_THREAD (Linux) names the caller.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// A call blocked for a second sleeps: a receiver on an empty queue and a sender on a full one,
/// each in its own thread, use next to no CPU over `WAIT` (measured per thread, so other tests
/// running at the same time do not count). What a correct sleeper spends is its spin before
/// sleeping (microseconds) and one wake-up per sleep slice with a sweep (`WAIT /
/// SLEEP_SLICE` = 20 of them, tens of microseconds each in a debug build): about a millisecond.
/// A waiter that busy-loops instead (a sleep that returns at once: the futex wait skipped, an
/// epoch or slice check that always says "wake up") spins for the whole second, and even on a
/// loaded 2-core machine that is hundreds of milliseconds of CPU, far above the bound. The
/// calls must also last their whole timeout (a waiter that gives up early is not asleep).
#[test]
fn a_call_blocked_for_a_second_sleeps_instead_of_spinning() {
    const WAIT: Duration = Duration::from_secs(1);
    /// Far above a sleeper's ~1 ms, far below a spinner's hundreds.
    const CPU_BOUND: Duration = Duration::from_millis(50);
    let dir = common::tempdir();
    let empty = Queue::create(dir.path().join("empty"), Options::new(4, 64)).unwrap();
    let full = Queue::create(dir.path().join("full"), Options::new(2, 64)).unwrap();
    full.send(b"1").unwrap();
    full.send(b"2").unwrap();
    // The blocked calls run on handles of their own, beside the creators' (so that their
    // sweeps have another live participant to ask the kernel about, as in real use).
    let (empty_path, full_path) = (empty.path().to_path_buf(), full.path().to_path_buf());
    let receiver = std::thread::spawn(move || {
        let q = Queue::open(empty_path).unwrap();
        let (start, cpu) = (Instant::now(), thread_cpu());
        let result = q.recv_timeout(&mut [0u8; 64], WAIT);
        (result.map(|_| ()), start.elapsed(), thread_cpu() - cpu)
    });
    let sender = std::thread::spawn(move || {
        let q = Queue::open(full_path).unwrap();
        let (start, cpu) = (Instant::now(), thread_cpu());
        let result = q.send_timeout(b"3", WAIT);
        (result, start.elapsed(), thread_cpu() - cpu)
    });
    for (side, handle) in [("receiver", receiver), ("sender", sender)] {
        let (result, elapsed, cpu) = handle.join().unwrap();
        eprintln!("{side}: {result:?} after {elapsed:?}, {cpu:?} of CPU");
        assert!(result.is_err(), "the {side} was not blocked: {result:?}");
        assert!(
            elapsed >= WAIT,
            "the {side} gave up after {elapsed:?}, before its {WAIT:?} timeout"
        );
        assert!(
            cpu < CPU_BOUND,
            "the {side} used {cpu:?} of CPU while blocked for {elapsed:?}: it did not sleep"
        );
    }
    assert_no_sleepers(&empty);
    assert_no_sleepers(&full);
}
