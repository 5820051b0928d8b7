// SPDX-License-Identifier: MIT OR Apache-2.0
//! No lost wake-ups: every path that makes progress a sleeping peer waits for wakes it, and a
//! path that forgets to fails here within [`WAKE_BOUND`].
//!
//! A blocked call normally wakes every sleep slice (`shmq::testing::SLEEP_SLICE`) to run crash
//! recovery, which would also hide a lost wake-up behind a delay of one slice. The sleepers here
//! run in child processes with the slices off (`SHMQ_TEST_SLEEP_SLICE=off`, the `test-hooks`
//! switch) and with no deadline: they return only if someone wakes them. The parent waits until
//! a sleeper is parked in the kernel (counted as a sleeper, and every thread of the child
//! asleep with no context switch for a while), makes one kind of progress, and requires the
//! sleeper to return within [`WAKE_BOUND`].
//!
//! Paths covered, each by its own test: send, batch send, commit of a reserved slot, cancel of
//! a reserved slot (receivers skip it), receive by copy, batch receive, release of an in-place
//! receive, a receive that recycles cancelled slots, close (receivers and senders), and
//! recovery's repairs (a dead producer's claim tombstoned, a dead consumer's message redelivered
//! in place and by copy, dropped, and dead-lettered).

mod common;

use common::Child;
use shmq::testing::{SLEEP_SLICE, SLEEP_SLICE_VAR, SPIN_VAR};
use shmq::{OnConsumerDeath, Options, Queue};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How soon a woken sleeper must return. With the slices off a lost wake-up never returns, so
/// any bound catches it; this one is tight enough to fail fast and loose enough for a loaded
/// 2-core machine, where a woken process can wait a few scheduler periods for a core.
const WAKE_BOUND: Duration = Duration::from_millis(100);
/// Bound on setting a test up (children starting, falling asleep, pausing).
const SETUP_BOUND: Duration = Duration::from_secs(10);
const MAX_MESSAGE: u32 = 64;

/// Not a test: the entry point of the child processes these tests spawn (see `common`).
/// Ignored, so that a test run does not count it; the children run it with `--ignored`.
#[test]
#[ignore = "the entry point of child processes, not a test"]
fn child() {
    common::child_main(|role| match role.name() {
        "recv" => {
            let q = Queue::open(role.path("queue")).unwrap();
            let mut buf = [0u8; MAX_MESSAGE as usize];
            let outcome = match q.recv_meta(&mut buf) {
                Ok(r) => format!(
                    "ok {} {}",
                    String::from_utf8_lossy(&buf[..r.len]),
                    r.deliveries
                ),
                Err(e) => format!("{e:?}"),
            };
            role.report(&format!("{outcome}\n{}", common::monotonic_ns()));
        }
        "send" => {
            let q = Queue::open(role.path("queue")).unwrap();
            let msg: String = role.arg("msg");
            let outcome = match q.send(msg.as_bytes()) {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("{e:?}"),
            };
            role.report(&format!("{outcome}\n{}", common::monotonic_ns()));
        }
        // One side of a ping-pong with random pauses (`racing_wake_ups_...`).
        "pinger" | "ponger" => {
            let ping = Queue::open(role.path("ping")).unwrap();
            let pong = Queue::open(role.path("pong")).unwrap();
            let rounds: u32 = role.arg("rounds");
            let max_pause_us: f64 = role.arg("max_pause_us");
            let (inbox, outbox) = if role.name() == "pinger" {
                (&pong, &ping)
            } else {
                (&ping, &pong)
            };
            let mut random = common::Rng(u64::from(std::process::id()) | 1);
            let mut buf = [0u8; MAX_MESSAGE as usize];
            for round in 0..rounds {
                if role.name() == "ponger" {
                    let n = inbox.recv(&mut buf).unwrap();
                    assert_eq!(&buf[..n], round.to_le_bytes());
                }
                // A pause from 1 µs to `max_pause_us`, spread evenly over the orders of
                // magnitude, so that messages land before, inside and after the window where the
                // peer counts itself as a sleeper, fences, looks again and sleeps, however long
                // the peer's spin phase lasts in this build (a few µs optimised, milliseconds
                // under a sanitizer).
                let fraction = (random.next() % 1_000_000) as f64 / 1e6;
                let pause = Duration::from_secs_f64(1e-6 * max_pause_us.powf(fraction));
                let start = Instant::now();
                while start.elapsed() < pause {
                    std::hint::spin_loop();
                }
                outbox.send(&round.to_le_bytes()).unwrap();
                if role.name() == "pinger" {
                    let n = inbox.recv(&mut buf).unwrap();
                    assert_eq!(&buf[..n], round.to_le_bytes());
                }
            }
            role.report("done");
        }
        // Crash-recovery victims: stopped at a pause point holding a claim.
        "victim-send" => {
            let q = Queue::open(role.path("queue")).unwrap();
            q.send(b"lost").unwrap();
            unreachable!("the pause point stops this process");
        }
        "victim-recv" => {
            let q = Queue::open(role.path("queue")).unwrap();
            let _ = q.recv(&mut [0u8; MAX_MESSAGE as usize]);
            unreachable!("the pause point stops this process");
        }
        other => panic!("unknown role {other}"),
    });
}

/// A queue in a fresh directory.
struct Setup {
    dir: tempfile::TempDir,
    path: PathBuf,
    q: Queue,
}

impl Setup {
    fn new(options: Options) -> Setup {
        let dir = common::tempdir();
        let path = dir.path().join("q");
        let q = Queue::create(&path, options).unwrap();
        Setup { dir, path, q }
    }

    /// A child blocked in `recv` (no deadline, no sleep slices), once it is parked.
    fn sleeping_receiver(&self) -> Child {
        let mut child = self.spawn_sleeper("recv", "-");
        self.wait_parked(&mut child, 1, 0);
        child
    }

    /// A child blocked in `send(msg)` (no deadline, no sleep slices), once it is parked.
    fn sleeping_sender(&self, msg: &str) -> Child {
        let mut child = self.spawn_sleeper("send", msg);
        self.wait_parked(&mut child, 0, 1);
        child
    }

    fn spawn_sleeper(&self, role: &str, msg: &str) -> Child {
        let path = self.path.display();
        Child::spawn_with_env(
            self.dir.path(),
            role,
            &[("queue", &path), ("msg", &msg)],
            &[(SLEEP_SLICE_VAR, "off")],
        )
    }

    /// Waits until the queue counts `recv` and `send` sleepers and `child` is parked in the
    /// kernel: every thread asleep, with no voluntary context switch for two sleep slices (a
    /// sleeper that wakes every slice, or one between counting itself and sleeping, would
    /// switch).
    fn wait_parked(&self, child: &mut Child, recv: u32, send: u32) {
        let start = Instant::now();
        let mut last: Option<(u64, Instant)> = None;
        loop {
            assert!(
                !child.has_exited(),
                "the sleeper returned: {}",
                child.report_so_far()
            );
            assert!(
                start.elapsed() < SETUP_BOUND,
                "the sleeper never parked; stats {:?}",
                self.q.stats()
            );
            let s = self.q.stats();
            let counted = (s.recv_sleepers, s.send_sleepers) == (recv, send);
            match (counted, asleep_switches(child.pid())) {
                (true, Some(switches)) => match last {
                    Some((before, since)) if before == switches => {
                        if since.elapsed() >= 2 * SLEEP_SLICE {
                            return;
                        }
                    }
                    _ => last = Some((switches, Instant::now())),
                },
                _ => last = None,
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Starts a child that stops at the test pause point `point` holding a claim, and returns
    /// it once it is there.
    fn victim(&self, role: &str, point: &str) -> Child {
        let path = self.path.display();
        common::spawn_paused(
            self.dir.path(),
            role,
            &[("queue", &path)],
            point,
            SETUP_BOUND,
        )
    }
}

/// If every thread of process `pid` is asleep (state `S`), their total voluntary context
/// switches; `None` if one is running or the process is gone.
fn asleep_switches(pid: u32) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let dir = task.ok()?.path();
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        // The state follows the parenthesised command name, which may hold spaces.
        let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
        if state != 'S' {
            return None;
        }
        let status = std::fs::read_to_string(dir.join("status")).ok()?;
        total += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))?
            .trim()
            .parse::<u64>()
            .ok()?;
    }
    Some(total)
}

/// Runs `progress`, then requires the parked `sleeper` to return within [`WAKE_BOUND`] with
/// `expected` as its outcome. Returns the latency from the start of `progress` to the
/// sleeper's return.
fn wakes(sleeper: Child, expected: &str, progress: impl FnOnce()) -> Duration {
    let before = common::monotonic_ns();
    progress();
    let done = Instant::now();
    let report = loop {
        let report = sleeper.report_so_far();
        if !report.is_empty() {
            break report;
        }
        assert!(
            done.elapsed() < WAKE_BOUND,
            "the sleeper was not woken within {WAKE_BOUND:?} (a lost wake-up)"
        );
        std::thread::sleep(Duration::from_micros(200));
    };
    let mut lines = report.lines();
    assert_eq!(lines.next(), Some(expected), "report {report:?}");
    let returned: u64 = lines.next().unwrap().parse().unwrap();
    assert!(
        returned > before,
        "the sleeper returned before the progress"
    );
    let latency = Duration::from_nanos(returned - before);
    assert!(latency < WAKE_BOUND, "woken after {latency:?}");
    sleeper.wait(SETUP_BOUND);
    println!("woken after {:.3} ms", latency.as_secs_f64() * 1e3);
    latency
}

fn assert_no_sleepers(q: &Queue) {
    let s = q.stats();
    assert_eq!((s.recv_sleepers, s.send_sleepers), (0, 0), "{s:?}");
}

/// A full queue of two slots, holding "a" and "b".
fn full_pair() -> Setup {
    let s = Setup::new(Options::new(2, MAX_MESSAGE));
    s.q.try_send(b"a").unwrap();
    s.q.try_send(b"b").unwrap();
    s
}

#[test]
fn switch_off_sleep_slices_keeps_a_sleeper_parked_until_woken() {
    // The premise of every test here: with the slices off, nothing but a wake moves a sleeper.
    // (`wait_parked` already saw two slices pass without a context switch; look for longer.)
    let s = Setup::new(Options::new(4, MAX_MESSAGE));
    let mut receiver = s.sleeping_receiver();
    let switches = asleep_switches(receiver.pid()).expect("parked");
    std::thread::sleep(4 * SLEEP_SLICE);
    assert!(!receiver.has_exited());
    assert_eq!(
        asleep_switches(receiver.pid()),
        Some(switches),
        "the sleeper woke up by itself"
    );
    wakes(receiver, "ok m 1", || s.q.try_send(b"m").unwrap());
}

#[test]
fn send_wakes_a_sleeping_receiver() {
    let s = Setup::new(Options::new(4, MAX_MESSAGE));
    let receiver = s.sleeping_receiver();
    wakes(receiver, "ok sent 1", || s.q.try_send(b"sent").unwrap());
    assert_no_sleepers(&s.q);
}

#[test]
fn blocking_send_wakes_a_sleeping_receiver() {
    let s = Setup::new(Options::new(4, MAX_MESSAGE));
    let receiver = s.sleeping_receiver();
    wakes(receiver, "ok sent 1", || s.q.send(b"sent").unwrap());
}

#[test]
fn batch_send_wakes_a_sleeping_receiver() {
    let s = Setup::new(Options::new(4, MAX_MESSAGE));
    let receiver = s.sleeping_receiver();
    wakes(receiver, "ok one 1", || {
        assert_eq!(s.q.try_send_batch(&[b"one", b"two"]).unwrap(), 2)
    });
}

#[test]
fn commit_wakes_a_sleeping_receiver() {
    let s = Setup::new(Options::new(4, MAX_MESSAGE));
    let receiver = s.sleeping_receiver();
    let mut slot = s.q.try_reserve().unwrap();
    slot[..8].copy_from_slice(b"in place");
    // Reserving publishes nothing: the receiver sleeps on (an absence, which only a span of
    // time can show: not a wait for some state).
    std::thread::sleep(SLEEP_SLICE);
    wakes(receiver, "ok in place 1", || slot.commit(8).unwrap());
}

#[test]
fn cancel_wakes_a_receiver_sleeping_on_the_cancelled_slot() {
    let s = Setup::new(Options::new(4, MAX_MESSAGE));
    // The receiver waits at position 0, claimed and never to be written; "next" waits behind it.
    let slot = s.q.try_reserve().unwrap();
    s.q.try_send(b"next").unwrap();
    let receiver = s.sleeping_receiver();
    wakes(receiver, "ok next 1", || drop(slot));
    assert_eq!(s.q.stats().cancelled_sends, 1);
}

#[test]
fn recv_wakes_a_sender_sleeping_on_a_full_queue() {
    let s = full_pair();
    let sender = s.sleeping_sender("c");
    let mut buf = [0u8; 8];
    wakes(sender, "ok", || {
        assert_eq!(s.q.try_recv(&mut buf).unwrap(), 1)
    });
    assert_no_sleepers(&s.q);
}

#[test]
fn batch_recv_wakes_a_sender_sleeping_on_a_full_queue() {
    let s = full_pair();
    let sender = s.sleeping_sender("c");
    wakes(sender, "ok", || {
        assert_eq!(s.q.try_recv_batch(8, |_| {}).unwrap(), 2)
    });
}

#[test]
fn release_of_an_in_place_receive_wakes_a_sender_sleeping_on_a_full_queue() {
    let s = full_pair();
    let mut sender = s.sleeping_sender("c");
    let guard = s.q.try_recv_in_place().unwrap();
    // Claimed, not released: still no room, and the sender sleeps on (an absence, which only a
    // span of time can show: not a wait for some state).
    std::thread::sleep(SLEEP_SLICE);
    assert!(!sender.has_exited(), "woke before the slot was freed");
    wakes(sender, "ok", || drop(guard));
}

#[test]
fn a_receive_that_recycles_cancelled_slots_wakes_a_sleeping_sender() {
    let s = Setup::new(Options::new(2, MAX_MESSAGE));
    // Both slots cancelled: no message, yet no room until a receiver recycles them.
    drop(s.q.try_reserve().unwrap());
    drop(s.q.try_reserve().unwrap());
    let sender = s.sleeping_sender("c");
    let mut buf = [0u8; 8];
    // The receive recycles both slots and wakes the sender, which may send "c" before the
    // receive looks at the slot after them (on a busy machine): it finds nothing or "c",
    // whatever the schedule, and never a cancelled slot's bytes.
    let mut first = None;
    wakes(sender, "ok", || {
        first = Some(s.q.try_recv(&mut buf).map(|n| buf[..n].to_vec()))
    });
    let first = first.unwrap();
    // Either way "c" is delivered exactly once: by that receive, or by the next.
    let next = s.q.try_recv(&mut buf).map(|n| buf[..n].to_vec());
    match (first, next) {
        (Ok(got), Err(shmq::Error::Empty)) | (Err(shmq::Error::Empty), Ok(got)) => {
            assert_eq!(got, b"c")
        }
        other => panic!("expected \"c\" once, from either receive: {other:?}"),
    }
    assert_eq!(s.q.stats().len, 0);
}

#[test]
fn close_wakes_a_sleeping_receiver() {
    let s = Setup::new(Options::new(4, MAX_MESSAGE));
    let receiver = s.sleeping_receiver();
    wakes(receiver, "Closed", || assert!(s.q.close()));
    assert_no_sleepers(&s.q);
}

#[test]
fn close_wakes_a_sleeping_sender() {
    let s = full_pair();
    let sender = s.sleeping_sender("c");
    wakes(sender, "Closed", || assert!(s.q.close()));
    assert_no_sleepers(&s.q);
}

#[test]
fn recovery_tombstoning_a_dead_producers_claim_wakes_a_sleeping_receiver() {
    let s = Setup::new(Options::new(4, MAX_MESSAGE));
    let producer = s.victim("victim-send", "send-claimed");
    s.q.try_send(b"after").unwrap();
    // The receiver waits at the producer's claim, with "after" behind it.
    let receiver = s.sleeping_receiver();
    producer.kill();
    wakes(receiver, "ok after 1", || assert!(s.q.recover()));
    assert_eq!(s.q.stats().abandoned_sends, 1);
}

#[test]
fn recovery_redelivering_in_place_wakes_a_sleeping_receiver() {
    let s = Setup::new(Options::new(2, MAX_MESSAGE));
    s.q.try_send(b"m0").unwrap();
    s.q.try_send(b"m1").unwrap();
    let consumer = s.victim("victim-recv", "recv-claimed");
    let mut buf = [0u8; 8];
    assert_eq!(s.q.try_recv(&mut buf).unwrap(), 2);
    // The tail has come round to the dead consumer's slot: only the in-place path applies.
    let receiver = s.sleeping_receiver();
    consumer.kill();
    wakes(receiver, "ok m0 2", || assert!(s.q.recover()));
    let st = s.q.stats();
    assert_eq!((st.redelivered, st.sent), (1, 3), "{st:?}");
}

#[test]
fn recovery_redelivering_by_copy_wakes_a_sleeping_receiver() {
    let s = Setup::new(Options::new(4, MAX_MESSAGE));
    s.q.try_send(b"m0").unwrap();
    let consumer = s.victim("victim-recv", "recv-claimed");
    let receiver = s.sleeping_receiver();
    consumer.kill();
    wakes(receiver, "ok m0 2", || assert!(s.q.recover()));
    assert_eq!(s.q.stats().redelivered, 1);
}

fn dead_consumers_message_dropped_wakes_a_sleeping_sender(options: Options) -> shmq::Stats {
    let s = Setup::new(options);
    s.q.try_send(b"m0").unwrap();
    s.q.try_send(b"m1").unwrap();
    let consumer = s.victim("victim-recv", "recv-claimed");
    // Full: "m1", and "m0" held by the consumer.
    let sender = s.sleeping_sender("m2");
    consumer.kill();
    wakes(sender, "ok", || assert!(s.q.recover()));
    s.q.stats()
}

#[test]
fn recovery_dropping_a_dead_consumers_message_wakes_a_sleeping_sender() {
    let options = Options::new(2, MAX_MESSAGE).on_consumer_death(OnConsumerDeath::Drop);
    let st = dead_consumers_message_dropped_wakes_a_sleeping_sender(options);
    assert_eq!(st.abandoned_receives, 1);
}

#[test]
fn recovery_dead_lettering_a_message_wakes_a_sleeping_sender() {
    let options = Options::new(2, MAX_MESSAGE).max_deliveries(1);
    let st = dead_consumers_message_dropped_wakes_a_sleeping_sender(options);
    assert_eq!(st.dead_lettered, 1);
}

/// Which side the sleepers of [`a_sweep_keeps_exactly_the_live_sleepers`] wait on.
#[derive(Clone, Copy, Debug)]
enum Side {
    /// Receivers on an empty queue.
    Recv,
    /// Senders on a full queue.
    Send,
}

/// Crash recovery recounts a side's sleepers from the live participants' own records: with one
/// sleeper SIGKILLed asleep beside two live ones (three processes, so three participants and
/// three records), the sweep leaves the shared count at exactly 2, and one act of progress wakes
/// both live sleepers (one completes, the other finds nothing and sleeps again), and a second
/// wakes the other. A recount that loses a live sleeper (a record skipped or overwritten, the
/// wrong side's bits, a wrong mask) leaves fewer than 2, and one that lowers the count to 0 makes
/// wakers skip `FUTEX_WAKE`: with the slices off, a lost wake-up. A recount that keeps the dead
/// one leaves 3.
fn a_sweep_keeps_exactly_the_live_sleepers(side: Side) {
    let s = match side {
        Side::Recv => Setup::new(Options::new(4, MAX_MESSAGE)),
        Side::Send => full_pair(),
    };
    let role = match side {
        Side::Recv => "recv",
        Side::Send => "send",
    };
    // (receivers, senders) asleep when `n` sleep on this side.
    let counts = |n: u32| match side {
        Side::Recv => (n, 0),
        Side::Send => (0, n),
    };
    let mut sleepers: Vec<Child> = (1..=3)
        .map(|n| {
            let mut child = s.spawn_sleeper(role, &format!("s{n}"));
            let (recv, send) = counts(n);
            s.wait_parked(&mut child, recv, send);
            child
        })
        .collect();
    sleepers.remove(0).kill();
    assert!(s.q.recover(), "the sweep repairs the count");
    let st = s.q.stats();
    assert_eq!(
        (st.recv_sleepers, st.send_sleepers),
        counts(2),
        "after the sweep: {st:?}"
    );
    // One act of progress: a message, or a slot freed.
    let mut progress = {
        let mut n = 0;
        let mut buf = [0u8; MAX_MESSAGE as usize];
        move |q: &Queue| {
            n += 1;
            match side {
                Side::Recv => q.try_send(format!("m{n}").as_bytes()).unwrap(),
                Side::Send => assert_eq!(q.try_recv(&mut buf).unwrap(), 1),
            }
        }
    };
    let switches: Vec<u64> = sleepers
        .iter()
        .map(|c| asleep_switches(c.pid()).expect("parked"))
        .collect();
    progress(&s.q);
    let woken = Instant::now();
    let done = loop {
        let reported: Vec<bool> = sleepers
            .iter()
            .map(|c| !c.report_so_far().is_empty())
            .collect();
        // The one that did not complete was woken too: it switched (woke, looked, slept again).
        let other_woke =
            |i: usize| asleep_switches(sleepers[i].pid()).is_some_and(|now| now > switches[i]);
        match reported[..] {
            [true, false] if other_woke(1) => break 0,
            [false, true] if other_woke(0) => break 1,
            [true, true] => panic!("one act of progress completed both sleepers"),
            _ => {}
        }
        assert!(
            woken.elapsed() < WAKE_BOUND,
            "one act of progress did not wake both live sleepers within {WAKE_BOUND:?} \
             (completed: {reported:?}; stats {:?})",
            s.q.stats()
        );
        std::thread::sleep(Duration::from_micros(200));
    };
    let first = sleepers.remove(done);
    let mut other = sleepers.pop().unwrap();
    let expected = |msg: &str| match side {
        Side::Recv => format!("ok {msg} 1"),
        Side::Send => "ok".to_string(),
    };
    assert_eq!(
        first.wait(SETUP_BOUND).lines().next(),
        Some(expected("m1").as_str())
    );
    let (recv, send) = counts(1);
    s.wait_parked(&mut other, recv, send);
    wakes(other, &expected("m2"), || progress(&s.q));
    assert_no_sleepers(&s.q);
}

#[test]
fn a_sweep_uncounts_a_dead_receiver_and_keeps_exactly_the_two_live_ones() {
    a_sweep_keeps_exactly_the_live_sleepers(Side::Recv);
}

#[test]
fn a_sweep_uncounts_a_dead_sender_and_keeps_exactly_the_two_live_ones() {
    a_sweep_keeps_exactly_the_live_sleepers(Side::Send);
}

#[test]
fn racing_wake_ups_between_two_processes_are_never_lost() {
    // The tests above wake a sleeper that is parked already. Here the wake races the sleeper's
    // own handshake (count itself, fence, look again, sleep): two processes play ping-pong
    // through two queues with blocking calls, no sleep slices, and a random pause before each
    // send, so that sends land on every side of that window. A lost wake-up hangs both
    // players.
    const ROUNDS: u32 = 2_000;
    let dir = common::tempdir();
    let ping = dir.path().join("ping");
    let pong = dir.path().join("pong");
    let ping_q = Queue::create(&ping, Options::new(4, MAX_MESSAGE)).unwrap();
    let pong_q = Queue::create(&pong, Options::new(4, MAX_MESSAGE)).unwrap();
    let (ping_shown, pong_shown) = (ping.display(), pong.display());
    let args: [(&str, &dyn std::fmt::Display); 4] = [
        ("ping", &ping_shown),
        ("pong", &pong_shown),
        ("rounds", &ROUNDS),
        ("max_pause_us", &20_000),
    ];
    // No spin phase either: every receive not answered at once registers and sleeps, whatever
    // the machine's load (a loaded machine's yields stretch the spin beyond the pauses).
    let env = [(SLEEP_SLICE_VAR, "off"), (SPIN_VAR, "off")];
    let players = vec![
        Child::spawn_with_env(dir.path(), "ponger", &args, &env),
        Child::spawn_with_env(dir.path(), "pinger", &args, &env),
    ];
    // About 4 ms a round on average (two pauses of 2 ms): two minutes are far beyond a loaded
    // machine's slowness, and a lost wake-up never finishes.
    let reports = common::wait_all(players, Duration::from_secs(120));
    assert_eq!(reports, ["done", "done"]);
    let slept = ping_q.stats().empty_waits + pong_q.stats().empty_waits;
    println!("{slept} of {} receives went to sleep", 2 * ROUNDS);
    assert!(
        // Without a spin phase a receive sleeps unless its message is there at its first look:
        // with pauses of up to 20 ms, most do.
        slept >= u64::from(ROUNDS) / 4,
        "only {slept} receives slept: the race was not exercised"
    );
}
