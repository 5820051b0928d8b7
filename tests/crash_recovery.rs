// SPDX-License-Identifier: MIT OR Apache-2.0
//! Crash recovery, deterministically: a child process is stopped at a test pause point
//! (`SHMQ_TEST_PAUSE`, see `src/test_hooks.rs`) holding a claim, SIGKILLed there, and the
//! survivors are shown to repair what it left, with the counters right:
//!
//! - a producer that dies between claiming a slot and publishing it leaves a tombstone that a
//!   blocked receiver passes over within the README's detection bound, and a busy-polling one
//!   about a stuck interval after the death (kill instants sampled over the sleep slice and the
//!   stuck interval; the latencies are printed);
//! - a consumer that dies between claiming a message and releasing it has the message
//!   redelivered with its delivery count raised: on an idle queue, on a full queue (in place),
//!   and after `close`; or dropped under `OnConsumerDeath::Drop`; or dead-lettered past
//!   `max_deliveries`;
//! - a receiver or sender that dies asleep no longer counts as a sleeper, and new sleepers are
//!   still woken;
//! - a dead participant shows `alive: false` until a sweep frees its entry.
//!
//! Children run the roles in [`run_role`], and the consumers that die holding a message are
//! `common::paused_consumer`'s (entry point: the `child` test, see `common`).

mod common;

use common::{Child, Role};
use shmq::testing::{SLEEP_SLICE, STUCK, SWEEP_INTERVAL};
use shmq::{Error, OnConsumerDeath, Options, Queue, Stats};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const MAX_MESSAGE: u32 = 64;
/// Bound on any single wait of a test; a bug fails the test here instead of hanging it.
const BOUND: Duration = Duration::from_secs(10);
/// README, "Detection bound": a death is repaired "within about 70 ms while anyone is blocked on
/// the queue", because a blocked call sweeps before each sleep slice and sweeps are at most one
/// per sweep interval.
const README_BLOCKED_DETECTION: Duration = Duration::from_millis(70);
/// What the detection test asserts: the README's figure with room for a loaded machine (the
/// 100 ms of the crash-recovery contract). A sleep slice twice as long already breaks it.
const BLOCKED_DETECTION_BOUND: Duration = Duration::from_millis(100);
/// README: a busy-polling receiver "moves past a dead producer's slot about a millisecond after
/// the death": one [`STUCK`] interval (the poller asks the kernel once per interval).
const README_POLLING_DETECTION: Duration = Duration::from_millis(1);
/// What the busy-polling test asserts of the median of its trials: the README's figure with one
/// more of room.
const POLLING_DETECTION_MEDIAN_BOUND: Duration =
    Duration::from_nanos(2 * README_POLLING_DETECTION.as_nanos() as u64);
/// How many kill instants the detection tests sample, spread evenly over one sleep slice (or
/// one stuck interval).
const PHASES: u32 = 5;
/// The detection tests measure latencies of milliseconds: they run one at a time, so that one
/// does not steal the other's core.
static TIMING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Not a property: the entry point of the child processes these tests spawn (see `common`).
/// Ignored, so that a test run does not count it; the children run it with `--ignored`.
#[test]
#[ignore = "the entry point of child processes, not a test"]
fn child() {
    common::child_main(run_role);
}

/// The roles children play.
fn run_role(role: &Role) {
    let q = Queue::open(role.path("queue")).expect("open the queue");
    match role.name() {
        // Sends each of the comma-separated `msgs`, waiting for room.
        "send" => {
            let msgs: String = role.arg("msgs");
            for msg in msgs.split(',') {
                q.send_timeout(msg.as_bytes(), BOUND).expect("send");
            }
            role.report("sent");
        }
        // Receives `count` messages by copy, each within `timeout_ms`; reports one line
        // `<monotonic ns> <deliveries> <message>` per message, or `error <e>` and stops.
        "recv" => {
            let count: usize = role.arg("count");
            let timeout = Duration::from_millis(role.arg("timeout_ms"));
            let mut lines = Vec::new();
            let mut buf = [0u8; MAX_MESSAGE as usize];
            for _ in 0..count {
                let got = q
                    .recv_meta_timeout(&mut buf, timeout)
                    .map(|r| (r.deliveries, text(&buf[..r.len])));
                match got {
                    Ok((deliveries, msg)) => {
                        lines.push(format!("{} {deliveries} {msg}", common::monotonic_ns()))
                    }
                    Err(e) => {
                        lines.push(format!("error {e}"));
                        break;
                    }
                }
            }
            role.report(&lines.join("\n"));
        }
        // Holds the queue open and does nothing (until killed, or for a minute at most).
        "hold" => {
            role.report("ready");
            std::thread::sleep(Duration::from_secs(60));
        }
        other => panic!("unknown role {other}"),
    }
}

fn text(msg: &[u8]) -> String {
    String::from_utf8_lossy(msg).into_owned()
}

/// One test's queue, in its own directory.
struct Setup {
    dir: tempfile::TempDir,
    path: PathBuf,
    queue: Queue,
}

impl Setup {
    fn new(options: Options) -> Setup {
        let dir = common::tempdir();
        let path = dir.path().join("q");
        let queue = Queue::create(&path, options).expect("create the queue");
        Setup { dir, path, queue }
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs a child that sends `msgs` (comma-separated) and waits for it to finish.
    fn send_from_child(&self, msgs: &str) {
        let path = self.path.display();
        let child = Child::spawn(self.dir(), "send", &[("queue", &path), ("msgs", &msgs)]);
        assert_eq!(child.wait(BOUND), "sent");
    }

    /// Starts a producer child that sends `msgs` and stops at the pause point `send-claimed`,
    /// its first slot claimed (nothing written or published), and waits until it is there.
    /// Returns the child, still stopped.
    fn paused_producer(&self, msgs: &str) -> Child {
        let path = self.path.display();
        let args: [(&str, &dyn std::fmt::Display); 2] = [("queue", &path), ("msgs", &msgs)];
        common::spawn_paused(self.dir(), "send", &args, "send-claimed", BOUND)
    }

    /// Starts a consumer child that stops holding the next message claimed (see
    /// `common::paused_consumer`). Returns the child, still stopped.
    fn paused_consumer(&self) -> Child {
        common::paused_consumer(self.dir(), &self.path, BOUND)
    }

    /// Starts a receiver child (`count` messages by copy) that runs unpaused.
    fn receiver(&self, count: usize, timeout: Duration) -> Child {
        let path = self.path.display();
        Child::spawn(
            self.dir(),
            "recv",
            &[
                ("queue", &path),
                ("count", &count),
                ("timeout_ms", &timeout.as_millis()),
            ],
        )
    }

    fn stats(&self) -> Stats {
        self.queue.stats()
    }

    /// Calls `poke` (queue calls that sweep on their slow path) until `done` holds of the
    /// stats; panics naming `what` after [`BOUND`].
    fn poke_until(&self, what: &str, mut poke: impl FnMut(&Queue), done: impl Fn(&Stats) -> bool) {
        let start = Instant::now();
        loop {
            let stats = self.stats();
            if done(&stats) {
                return;
            }
            assert!(
                start.elapsed() < BOUND,
                "timed out waiting for {what}; stats: {stats:#?}"
            );
            poke(&self.queue);
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Receives by copy within [`BOUND`]: (message, deliveries).
    fn recv(&self) -> (String, u32) {
        let mut buf = [0u8; MAX_MESSAGE as usize];
        let r = self
            .queue
            .recv_meta_timeout(&mut buf, BOUND)
            .expect("recv_meta_timeout");
        (text(&buf[..r.len]), r.deliveries)
    }

    /// Receives in place within [`BOUND`], reading the count from the guard: (message,
    /// deliveries).
    fn recv_guard(&self) -> (String, u32) {
        let guard = self
            .queue
            .recv_in_place_timeout(BOUND)
            .expect("recv_in_place_timeout");
        (text(&guard), guard.deliveries())
    }

    /// Asserts that nothing more is queued (a short blocking wait, which also runs sweeps).
    fn assert_drained(&self) {
        let mut buf = [0u8; MAX_MESSAGE as usize];
        match self
            .queue
            .recv_meta_timeout(&mut buf, Duration::from_millis(200))
        {
            Err(Error::Timeout) => {}
            other => panic!(
                "expected nothing left, got {:?} ({:?})",
                other,
                other.as_ref().map(|r| text(&buf[..r.len]))
            ),
        }
    }
}

/// One line of a "recv" child's report.
#[derive(Debug, PartialEq, Eq)]
struct Line {
    at_ns: u64,
    deliveries: u32,
    msg: String,
}

fn parse_report(report: &str) -> Vec<Line> {
    report
        .lines()
        .map(|l| {
            let mut parts = l.splitn(3, ' ');
            let at = parts.next().unwrap();
            assert_ne!(at, "error", "receiver failed: {l}");
            Line {
                at_ns: at.parse().unwrap(),
                deliveries: parts.next().unwrap().parse().unwrap(),
                msg: parts.next().unwrap_or_default().to_string(),
            }
        })
        .collect()
}

/// Waits until `condition` holds of the stats, or panics naming `what`.
fn wait_stats(setup: &Setup, what: &str, condition: impl Fn(&Stats) -> bool) {
    common::wait_until(BOUND, what, || condition(&setup.stats()));
}

/// One run of the dead-producer scenario; returns the time from the SIGKILL to the blocked
/// receiver getting the next message. `phase` shifts the kill against the receiver's sleep
/// slices, so that the trials sample the whole range of the detection delay.
fn dead_producer_trial(phase: Duration) -> Duration {
    let s = Setup::new(Options::new(8, MAX_MESSAGE));
    // Other processes send before and after the producer that dies holding position 1.
    s.send_from_child("before");
    let producer = s.paused_producer("lost");
    s.send_from_child("after-1,after-2");
    let receiver = s.receiver(3, BOUND);

    // The receiver takes "before", then waits on the dead producer's slot, asleep.
    wait_stats(&s, "the receiver to sleep on position 1", |st| {
        st.received == 1 && st.recv_sleepers == 1
    });
    // A stopped (but live) producer is never declared dead: nothing moves while it lives,
    // though the sleeping receiver sweeps between its sleep slices (six of them here).
    std::thread::sleep(6 * SLEEP_SLICE + phase);
    let st = s.stats();
    assert_eq!(
        (st.received, st.sent, st.abandoned_sends),
        (1, 4, 0),
        "a live producer's claim must be waited for: {st:#?}"
    );

    let killed_at = common::monotonic_ns();
    producer.kill();
    let lines = parse_report(&receiver.wait(BOUND));

    let got: Vec<(&str, u32)> = lines
        .iter()
        .map(|l| (l.msg.as_str(), l.deliveries))
        .collect();
    assert_eq!(got, [("before", 1), ("after-1", 1), ("after-2", 1)]);
    let st = s.stats();
    assert_eq!(st.abandoned_sends, 1, "{st:#?}");
    assert_eq!(
        (st.redelivered, st.abandoned_receives, st.dead_lettered),
        (0, 0, 0)
    );
    s.assert_drained();
    // The tombstone's slot is reused on the next lap.
    for i in 0..16 {
        s.queue.send(format!("lap-{i}").as_bytes()).unwrap();
        assert_eq!(s.recv(), (format!("lap-{i}"), 1));
    }
    Duration::from_nanos(lines[1].at_ns.saturating_sub(killed_at))
}

/// Runs `trial` at each of [`PHASES`] kill instants spread over `period`; a trial over `bound`
/// is run once more at the same instant (a loaded machine can delay one process by tens of
/// milliseconds), and fails the test if it is over again. Returns the latency of each phase.
fn sample_phases(
    period: Duration,
    bound: Duration,
    trial: impl Fn(Duration) -> Duration,
) -> Vec<Duration> {
    (0..PHASES)
        .map(|i| {
            let phase = period * i / PHASES;
            let first = trial(phase);
            if first < bound {
                return first;
            }
            let again = trial(phase);
            assert!(
                again < bound,
                "at phase {phase:?}: detection took {first:?}, then {again:?} (bound {bound:?})"
            );
            again
        })
        .collect()
}

fn millis(latencies: &[Duration]) -> String {
    let ms: Vec<String> = latencies
        .iter()
        .map(|d| format!("{:.2}", d.as_secs_f64() * 1e3))
        .collect();
    ms.join(", ")
}

#[test]
fn dead_producer_claim_becomes_a_tombstone_and_the_blocked_receiver_moves_on() {
    let _serial = TIMING.lock().unwrap_or_else(|e| e.into_inner());
    // The README's figure is the design's worst case: a sleep slice, then a sweep that may have
    // to wait for the sweep interval.
    assert!(
        SLEEP_SLICE + SWEEP_INTERVAL <= README_BLOCKED_DETECTION,
        "sleep slice {SLEEP_SLICE:?} + sweep interval {SWEEP_INTERVAL:?} exceed the README's {README_BLOCKED_DETECTION:?}"
    );
    // Kills at phases spread over the receiver's sleep slice, so that one lands just after a
    // sweep (the worst case, a whole slice).
    let latencies = sample_phases(SLEEP_SLICE, BLOCKED_DETECTION_BOUND, dead_producer_trial);
    println!(
        "dead producer detection latency (SIGKILL to the blocked receiver's next message), ms: {}",
        millis(&latencies)
    );
}

/// One run of the busy-polling scenario: polls a live (stopped) producer's claim for 100 stuck
/// intervals plus `phase` (it must never be declared dead), kills it, and returns the time
/// from its death (seen as a zombie) to the poller's next message.
fn busy_polling_trial(phase: Duration) -> Duration {
    let s = Setup::new(Options::new(8, MAX_MESSAGE));
    s.send_from_child("before");
    let producer = s.paused_producer("lost");
    s.send_from_child("after");
    let mut buf = [0u8; MAX_MESSAGE as usize];
    let n = s.queue.try_recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"before");
    let until = Instant::now() + 100 * STUCK + phase;
    while Instant::now() < until {
        assert!(matches!(s.queue.try_recv(&mut buf), Err(Error::Empty)));
    }
    assert_eq!(
        s.stats().abandoned_sends,
        0,
        "a live producer was declared dead"
    );

    // The death is taken as the instant the producer shows as a zombie: the kernel closes a
    // dying process's files (dropping its lock) before it makes it a zombie, so this is at or
    // after the true instant. This thread both watches for it and polls, so that a loaded
    // machine delays both alike.
    let pid = producer.pid() as libc::pid_t;
    // SAFETY: kill(2) takes integer arguments only; `pid` is our child, not reaped yet.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let reaped = || {
        let mut status = 0;
        // SAFETY: waitpid(2) writes only `status`, a valid, exclusively borrowed i32.
        unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) == pid }
    };
    let started = Instant::now();
    let mut died_at = None;
    let n = loop {
        if died_at.is_none() && reaped() {
            died_at = Some(Instant::now());
        }
        match s.queue.try_recv(&mut buf) {
            Ok(n) => break n,
            Err(Error::Empty) => {
                assert!(started.elapsed() < BOUND, "the poller never moved on");
                std::hint::spin_loop();
            }
            Err(e) => panic!("{e}"),
        }
    };
    let got_at = Instant::now();
    assert_eq!(&buf[..n], b"after");
    // Moved on before the zombie showed: a latency of zero (reap it now).
    let died_at = died_at.unwrap_or_else(|| {
        common::wait_until(BOUND, "the producer to exit", reaped);
        got_at
    });
    drop(producer); // already reaped: nothing left to do
    let latency = got_at.saturating_duration_since(died_at);
    assert_eq!(s.stats().abandoned_sends, 1);
    s.assert_drained();
    latency
}

/// The same death, seen by a receiver that only busy-polls with `try_recv` (it never sleeps,
/// so it never runs a blocked call's sweep): the non-blocking path notices that the slot at the
/// head has been claimed by the same producer for a stuck interval, asks the kernel, and while
/// the producer lives (stopped at its pause point) it is waited for; once it is killed, the
/// poller moves on about one stuck interval later (the README's "about a millisecond").
#[test]
fn dead_producer_claim_is_skipped_by_a_busy_polling_receiver() {
    let _serial = TIMING.lock().unwrap_or_else(|e| e.into_inner());
    // The README's figure is the design's: the poller asks once per stuck interval.
    assert!(
        STUCK <= README_POLLING_DETECTION,
        "the stuck interval {STUCK:?} exceeds the README's {README_POLLING_DETECTION:?}"
    );
    // Each trial within the blocked bound (a poller is never slower than a sleeper), the median
    // within two stuck intervals.
    let mut latencies = sample_phases(STUCK, BLOCKED_DETECTION_BOUND, busy_polling_trial);
    println!(
        "dead producer detection latency, busy-polling receiver, ms: {}",
        millis(&latencies)
    );
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    assert!(
        median < POLLING_DETECTION_MEDIAN_BOUND,
        "the poller's median detection latency is {median:?}"
    );
}

/// How the surviving receiver reads the redelivered message (and its delivery count).
#[derive(Clone, Copy)]
enum Via {
    RecvMeta,
    Guard,
}

fn dead_consumer_on_idle_queue(via: Via) {
    let s = Setup::new(Options::new(8, MAX_MESSAGE));
    s.send_from_child("only");
    let consumer = s.paused_consumer();
    assert_eq!(s.stats().received, 1);
    consumer.kill();
    // No producer comes: the surviving receiver's own wait finds the death.
    let got = match via {
        Via::RecvMeta => s.recv(),
        Via::Guard => s.recv_guard(),
    };
    assert_eq!(
        got,
        ("only".to_string(), 2),
        "redelivered with its delivery count raised"
    );
    let st = s.stats();
    assert_eq!(
        (st.redelivered, st.abandoned_receives, st.dead_lettered),
        (1, 0, 0),
        "{st:#?}"
    );
    s.assert_drained();
}

#[test]
fn dead_consumer_message_is_redelivered_on_an_idle_queue_recv_meta() {
    dead_consumer_on_idle_queue(Via::RecvMeta);
}

#[test]
fn dead_consumer_message_is_redelivered_on_an_idle_queue_guard() {
    dead_consumer_on_idle_queue(Via::Guard);
}

#[test]
fn dead_consumer_message_is_redelivered_in_place_when_the_queue_is_full() {
    let s = Setup::new(Options::new(4, MAX_MESSAGE));
    s.send_from_child("m0,m1,m2,m3");
    let consumer = s.paused_consumer();
    // The queue is full: m1..m3 and the dead consumer's slot, which the tail has come round to.
    assert!(matches!(s.queue.try_send(b"m4"), Err(Error::Full)));
    consumer.kill();
    // A full-queue send runs a sweep; there is no free slot to copy into, so only the in-place
    // path can give the message back.
    s.poke_until(
        "the dead consumer's message to be redelivered",
        |q| assert!(matches!(q.try_send(b"m4"), Err(Error::Full))),
        |st| st.redelivered == 1,
    );
    let st = s.stats();
    assert_eq!((st.sent, st.received, st.len), (5, 1, 4), "{st:#?}");
    assert!(
        matches!(s.queue.try_send(b"m4"), Err(Error::Full)),
        "still full: m1..m3 and m0 again"
    );
    let got: Vec<(String, u32)> = (0..4).map(|_| s.recv()).collect();
    let expected: Vec<(String, u32)> = [("m1", 1), ("m2", 1), ("m3", 1), ("m0", 2)]
        .iter()
        .map(|(m, d)| (m.to_string(), *d))
        .collect();
    assert_eq!(got, expected);
    // The queue goes on.
    s.queue.try_send(b"m4").unwrap();
    assert_eq!(s.recv_guard(), ("m4".to_string(), 1));
    s.assert_drained();
    assert_eq!(s.stats().redelivered, 1);
}

#[test]
fn dead_consumer_message_is_redelivered_before_closed_is_reported() {
    let s = Setup::new(Options::new(8, MAX_MESSAGE));
    s.send_from_child("m0,m1");
    let consumer = s.paused_consumer();
    assert!(s.queue.close());
    consumer.kill();
    let mut buf = [0u8; MAX_MESSAGE as usize];
    let mut got = Vec::new();
    loop {
        match s.queue.recv_meta_timeout(&mut buf, BOUND) {
            Ok(r) => got.push((text(&buf[..r.len]), r.deliveries)),
            Err(Error::Closed) => break,
            Err(e) => panic!("recv after close: {e}"),
        }
        assert!(got.len() <= 2, "more messages than were sent: {got:?}");
    }
    assert_eq!(
        got,
        [("m1".to_string(), 1), ("m0".to_string(), 2)],
        "Closed only after the dead consumer's message came back"
    );
    let st = s.stats();
    assert_eq!((st.redelivered, st.abandoned_receives), (1, 0), "{st:#?}");
    assert!(matches!(s.queue.send(b"late"), Err(Error::Closed)));
}

#[test]
fn dead_consumer_message_is_dropped_under_on_consumer_death_drop() {
    // Two slots: the dropped message's slot must be usable again for the queue to fill.
    let s = Setup::new(Options::new(2, MAX_MESSAGE).on_consumer_death(OnConsumerDeath::Drop));
    s.send_from_child("m0,m1");
    let consumer = s.paused_consumer();
    consumer.kill();
    assert_eq!(s.recv(), ("m1".to_string(), 1));
    s.assert_drained();
    let st = s.stats();
    assert_eq!(
        (st.abandoned_receives, st.redelivered, st.dead_lettered),
        (1, 0, 0),
        "{st:#?}"
    );
    s.queue.try_send(b"m2").unwrap();
    s.queue.try_send(b"m3").unwrap();
    assert!(matches!(s.queue.try_send(b"m4"), Err(Error::Full)));
    assert_eq!(s.recv(), ("m2".to_string(), 1));
    assert_eq!(s.recv(), ("m3".to_string(), 1));
}

#[test]
fn poison_message_is_dead_lettered_after_max_deliveries() {
    let s = Setup::new(Options::new(8, MAX_MESSAGE).max_deliveries(2));
    s.send_from_child("poison");
    // First delivery: the consumer dies holding it.
    s.paused_consumer().kill();
    // Second delivery: the next consumer's own wait finds the death, takes the message back
    // (delivery 2), and dies holding it too.
    s.paused_consumer().kill();
    let st = s.stats();
    assert_eq!(st.redelivered, 1, "{st:#?}");
    // The message has been delivered max_deliveries times: it is not delivered again.
    s.send_from_child("next");
    assert_eq!(s.recv(), ("next".to_string(), 1));
    s.assert_drained();
    let st = s.stats();
    assert_eq!(
        (st.dead_lettered, st.redelivered, st.abandoned_receives),
        (1, 1, 0),
        "{st:#?}"
    );
    // The queue goes on.
    for i in 0..16 {
        s.queue.send(format!("after-{i}").as_bytes()).unwrap();
        assert_eq!(s.recv(), (format!("after-{i}"), 1));
    }
}

#[test]
fn dead_receiver_asleep_is_no_longer_counted_and_new_sleepers_are_woken() {
    let s = Setup::new(Options::new(4, MAX_MESSAGE));
    let sleeper = s.receiver(1, BOUND * 3);
    wait_stats(&s, "the receiver to sleep", |st| st.recv_sleepers == 1);
    sleeper.kill();
    // A send pays for a FUTEX_WAKE that wakes nobody, and so sweeps, which repairs the count:
    // sends do not pay for the dead sleeper forever.
    s.poke_until(
        "the dead sleeper to be uncounted",
        |q| {
            q.try_send(b"poke").unwrap();
            let mut buf = [0u8; 64];
            assert_eq!(q.try_recv(&mut buf).unwrap(), 4);
        },
        |st| st.recv_sleepers == 0,
    );
    let st = s.stats();
    assert!(
        st.participants.iter().all(|p| p.alive),
        "the dead receiver's entry is freed: {st:#?}"
    );
    // A new sleeper is still woken by a send.
    let receiver = s.receiver(1, BOUND);
    wait_stats(&s, "the new receiver to sleep", |st| st.recv_sleepers == 1);
    s.queue.send(b"wake").unwrap();
    let lines = parse_report(&receiver.wait(BOUND));
    assert_eq!(lines.len(), 1);
    assert_eq!((lines[0].msg.as_str(), lines[0].deliveries), ("wake", 1));
    wait_stats(&s, "no sleepers", |st| st.recv_sleepers == 0);
}

#[test]
fn dead_sender_asleep_is_no_longer_counted_and_new_sleepers_are_woken() {
    let s = Setup::new(Options::new(2, MAX_MESSAGE));
    s.queue.send(b"a").unwrap();
    s.queue.send(b"b").unwrap();
    let path = s.path.display();
    let sleeper = Child::spawn(s.dir(), "send", &[("queue", &path), ("msgs", &"never")]);
    wait_stats(&s, "the sender to sleep", |st| st.send_sleepers == 1);
    sleeper.kill();
    // A send that waits for room sweeps before it sleeps, which repairs the count.
    s.poke_until(
        "the dead sleeper to be uncounted",
        |q| {
            let r = q.send_timeout(b"x", Duration::from_millis(5));
            assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
        },
        |st| st.send_sleepers == 0,
    );
    // A new sleeper is still woken when a slot is freed.
    let sender = Child::spawn(s.dir(), "send", &[("queue", &path), ("msgs", &"c")]);
    wait_stats(&s, "the new sender to sleep", |st| st.send_sleepers == 1);
    assert_eq!(s.recv(), ("a".to_string(), 1));
    assert_eq!(sender.wait(BOUND), "sent");
    assert_eq!(s.recv(), ("b".to_string(), 1));
    assert_eq!(s.recv(), ("c".to_string(), 1));
    s.assert_drained();
    assert_eq!(s.stats().send_sleepers, 0);
}

#[test]
fn dead_participant_is_shown_dead_until_swept_then_its_entry_is_freed() {
    let s = Setup::new(Options::new(4, MAX_MESSAGE));
    let path = s.path.display();
    let holder = Child::spawn(s.dir(), "hold", &[("queue", &path)]);
    common::wait_until(BOUND, "the holder to open the queue", || {
        holder.report_so_far() == "ready"
    });
    let pid = holder.pid();
    let entry = |st: &Stats| st.participants.iter().find(|p| p.pid == pid).cloned();
    let before = entry(&s.stats()).expect("the holder is listed");
    assert!(before.alive, "{before:?}");
    holder.kill();
    let after = entry(&s.stats()).expect("a dead participant stays listed until swept");
    assert!(!after.alive, "{after:?}");
    assert_eq!(after.index, before.index);
    // A receive that waits sweeps before it sleeps; the entry is then freed.
    s.poke_until(
        "the dead participant's entry to be freed",
        |q| {
            let r = q.recv_timeout(&mut [0u8; 64], Duration::from_millis(5));
            assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
        },
        |st| entry(st).is_none(),
    );
    let st = s.stats();
    assert_eq!(st.participants.len(), 1, "only we are left: {st:#?}");
    assert!(st.participants[0].alive);
    // The freed entry is taken by the next handle.
    let again = Queue::open(&s.path).unwrap();
    let st = again.stats();
    assert_eq!(st.participants.len(), 2, "{st:#?}");
    assert!(st.participants.iter().any(|p| p.index == before.index));
}
