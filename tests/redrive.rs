// SPDX-License-Identifier: MIT OR Apache-2.0
//! Redrive moves each message of a dead-letter queue exactly once, even when it is SIGKILLed:
//!
//! - deterministically, at each window of its protocol (the `redrive-*` pause points, see
//!   `src/redrive.rs` and `src/test_hooks.rs`): before the ledger is written, between the
//!   ledger and the decision point, between the decision and the publish, between the publish
//!   and the release, after the release; then run again until the DLQ is empty;
//! - a redrive killed at the decision point is finished by the destination's own recovery
//!   (the reservation published, not tombstoned), without any rerun;
//! - `shmq redrive` itself, SIGKILLed at random instants many times over a large DLQ, then run
//!   to the end.
//!
//! Every message must arrive in the destination once (checked by payload), and nothing be left
//! in the DLQ.
//!
//! Children run the roles in [`run_role`] (entry point: the `child` test, see `common`).

mod common;

use common::Role;
use shmq::{Error, Options, Queue};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const MAX_MESSAGE: u32 = 64;
/// Bound on any single wait of a test; a bug fails the test here instead of hanging it.
const BOUND: Duration = Duration::from_secs(20);

/// Not a property: the entry point of the child processes these tests spawn (see `common`).
#[test]
#[ignore = "the entry point of child processes, not a test"]
fn child() {
    common::child_main(run_role);
}

fn run_role(role: &Role) {
    match role.name() {
        // Redrives the whole `dlq` into `to`.
        "redrive" => {
            let dlq = Queue::open(role.path("dlq")).expect("open the DLQ");
            let to = Queue::open(role.path("to")).expect("open the destination");
            let moved = dlq.redrive_to(&to, None).expect("redrive");
            role.report(&moved.to_string());
        }
        other => panic!("unknown role {other}"),
    }
}

/// A DLQ holding `count` messages `m0`, `m1`, … and an empty destination.
struct Setup {
    dir: tempfile::TempDir,
    dlq_path: PathBuf,
    to_path: PathBuf,
    dlq: Queue,
    to: Queue,
    count: usize,
}

impl Setup {
    fn new(count: usize) -> Setup {
        let dir = common::tempdir();
        let dlq_path = dir.path().join("dlq");
        let to_path = dir.path().join("to");
        let capacity = (count as u32 + 8).next_power_of_two();
        let dlq = Queue::create(&dlq_path, Options::new(capacity, MAX_MESSAGE)).unwrap();
        let to = Queue::create(&to_path, Options::new(capacity * 2, MAX_MESSAGE)).unwrap();
        for i in 0..count {
            dlq.send(format!("m{i}").as_bytes()).unwrap();
        }
        Setup {
            dir,
            dlq_path,
            to_path,
            dlq,
            to,
            count,
        }
    }

    fn args(&self) -> [(&'static str, String); 2] {
        [
            ("dlq", self.dlq_path.display().to_string()),
            ("to", self.to_path.display().to_string()),
        ]
    }

    /// A child redrive stopped at pause point `point`, then SIGKILLed there.
    fn kill_redrive_at(&self, point: &str) {
        let args = self.args();
        let args: Vec<(&str, &dyn std::fmt::Display)> = args
            .iter()
            .map(|(k, v)| (*k, v as &dyn std::fmt::Display))
            .collect();
        common::spawn_paused(self.dir.path(), "redrive", &args, point, BOUND).kill();
    }

    /// Runs the redrive in this process until the DLQ is empty; returns how many runs it took.
    fn redrive_until_empty(&self) -> u32 {
        let start = Instant::now();
        let mut runs = 0;
        loop {
            runs += 1;
            self.dlq.redrive_to(&self.to, None).expect("redrive");
            if self.dlq.stats().len == 0 && self.dlq.stats().in_flight == 0 {
                return runs;
            }
            assert!(start.elapsed() < BOUND, "the DLQ does not empty");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Receives everything from the destination (a blocking receive, which also runs its
    /// recovery) and asserts that each message arrived exactly once, as a first delivery, and
    /// that nothing is left in the DLQ.
    fn assert_exactly_once(&self) {
        let mut seen: BTreeMap<String, u32> = BTreeMap::new();
        let mut buf = [0u8; MAX_MESSAGE as usize];
        loop {
            match self
                .to
                .recv_meta_timeout(&mut buf, Duration::from_millis(300))
            {
                Ok(r) => {
                    assert_eq!(r.deliveries, 1, "a redriven message starts over");
                    assert_eq!(r.origin, None, "a redriven message has no origin");
                    let text = String::from_utf8_lossy(&buf[..r.len]).into_owned();
                    *seen.entry(text).or_default() += 1;
                }
                Err(Error::Timeout) => break,
                Err(e) => panic!("receiving from the destination: {e}"),
            }
        }
        let doubled: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).collect();
        let lost: Vec<_> = (0..self.count)
            .map(|i| format!("m{i}"))
            .filter(|m| !seen.contains_key(m))
            .collect();
        assert!(
            doubled.is_empty() && lost.is_empty(),
            "doubled {doubled:?}, lost {lost:?}"
        );
        assert_eq!(seen.len(), self.count, "unexpected messages: {seen:?}");
        match self.dlq.try_recv_in_place() {
            Err(Error::Empty) => {}
            Ok(g) => panic!(
                "left in the DLQ: {:?}",
                String::from_utf8_lossy(&g).into_owned()
            ),
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn redrive_moves_every_message_once_and_they_start_over() {
    let s = Setup::new(20);
    let held = s.dlq.try_recv_in_place().unwrap(); // m0, held by a live consumer
    assert_eq!(s.dlq.redrive_to(&s.to, Some(5)).unwrap(), 5);
    assert_eq!(s.dlq.redrive_to(&s.to, None).unwrap(), 14);
    drop(held); // m0 is released: it was consumed, not moved
    let mut buf = [0u8; MAX_MESSAGE as usize];
    for i in 1..20 {
        let r = s.to.try_recv_meta(&mut buf).unwrap();
        assert_eq!(&buf[..r.len], format!("m{i}").as_bytes(), "in order");
    }
    assert!(matches!(s.to.try_recv_meta(&mut buf), Err(Error::Empty)));
    // Into itself: refused.
    assert!(matches!(
        s.dlq.redrive_to(&Queue::open(&s.dlq_path).unwrap(), None),
        Err(Error::RedriveRefused(_))
    ));
}

#[test]
fn a_second_redrive_into_the_same_queue_is_refused_while_one_runs() {
    let s = Setup::new(3);
    let args = s.args();
    let args: Vec<(&str, &dyn std::fmt::Display)> = args
        .iter()
        .map(|(k, v)| (*k, v as &dyn std::fmt::Display))
        .collect();
    let running = common::spawn_paused(s.dir.path(), "redrive", &args, "redrive-committed", BOUND);
    match s.dlq.redrive_to(&s.to, None) {
        Err(Error::RedriveRefused(why)) => assert!(why.contains("another redrive"), "{why}"),
        other => panic!("expected RedriveRefused, got {other:?}"),
    }
    running.kill();
    // Its lock went with it.
    s.redrive_until_empty();
    s.assert_exactly_once();
}

/// Kills a redrive at `point` on its first message, then reruns it until the DLQ is empty.
fn killed_at(point: &str) {
    let s = Setup::new(8);
    s.kill_redrive_at(point);
    s.redrive_until_empty();
    s.assert_exactly_once();
}

#[test]
fn killed_before_the_ledger_nothing_is_lost_or_doubled() {
    killed_at("redrive-received");
}

#[test]
fn killed_between_the_ledger_and_the_decision_nothing_is_lost_or_doubled() {
    killed_at("redrive-prepared");
}

#[test]
fn killed_between_the_decision_and_the_publish_nothing_is_lost_or_doubled() {
    killed_at("redrive-committed");
}

#[test]
fn killed_between_the_publish_and_the_release_nothing_is_lost_or_doubled() {
    killed_at("redrive-published");
}

#[test]
fn killed_after_the_release_nothing_is_lost_or_doubled() {
    killed_at("redrive-released");
}

#[test]
fn a_redrive_killed_at_the_decision_point_is_published_by_the_destinations_recovery() {
    let s = Setup::new(3);
    s.kill_redrive_at("redrive-committed");
    // No rerun: a receiver of the destination finds the dead reservation, and its recovery
    // publishes it because the ledger names it.
    let mut buf = [0u8; MAX_MESSAGE as usize];
    let r = s.to.recv_meta_timeout(&mut buf, BOUND).unwrap();
    assert_eq!(&buf[..r.len], b"m0");
    assert_eq!(s.to.stats().abandoned_sends, 0, "published, not tombstoned");
    // m0 is still held in the DLQ by the dead redrive: the next run removes it, moving the rest.
    assert_eq!(
        s.dlq.redrive_to(&s.to, None).unwrap(),
        3,
        "m0 (settled), m1, m2"
    );
    let mut rest = Vec::new();
    while let Ok(r) = s.to.try_recv_meta(&mut buf) {
        rest.push(String::from_utf8_lossy(&buf[..r.len]).into_owned());
    }
    assert_eq!(rest, ["m1", "m2"]);
    assert!(matches!(s.dlq.try_recv_in_place(), Err(Error::Empty)));
}

#[test]
fn a_redrive_from_another_dlq_waits_for_an_interrupted_one_to_be_finished() {
    let s = Setup::new(2);
    s.kill_redrive_at("redrive-published");
    let other_path = s.dir.path().join("other");
    let other = Queue::create(&other_path, Options::new(8, MAX_MESSAGE)).unwrap();
    other.send(b"x").unwrap();
    match other.redrive_to(&s.to, None) {
        Err(Error::RedriveRefused(why)) => assert!(why.contains("interrupted"), "{why}"),
        r => panic!("expected RedriveRefused, got {r:?}"),
    }
    s.redrive_until_empty();
    assert_eq!(other.redrive_to(&s.to, None).unwrap(), 1);
    let mut buf = [0u8; MAX_MESSAGE as usize];
    let mut got = Vec::new();
    while let Ok(r) = s.to.recv_meta_timeout(&mut buf, Duration::from_millis(200)) {
        got.push(String::from_utf8_lossy(&buf[..r.len]).into_owned());
    }
    got.sort();
    assert_eq!(got, ["m0", "m1", "x"]);
}

#[test]
fn an_interrupted_redrive_from_a_queue_that_is_gone_can_be_forgotten() {
    let s = Setup::new(2);
    s.kill_redrive_at("redrive-committed");
    let other = Queue::create(s.dir.path().join("other"), Options::new(8, MAX_MESSAGE)).unwrap();
    other.send(b"x").unwrap();
    assert!(matches!(
        other.redrive_to(&s.to, None),
        Err(Error::RedriveRefused(_))
    ));
    // The DLQ it came from is "gone": forget that redrive. Its committed message is published.
    assert_eq!(
        s.to.forget_interrupted_redrive().unwrap(),
        Some(s.dlq.identity())
    );
    assert_eq!(s.to.forget_interrupted_redrive().unwrap(), None);
    // The command's flag (a no-op now that it is forgotten), or without the command (the
    // `cli` feature, as under the sanitizers) the library call it makes.
    #[cfg(feature = "cli")]
    {
        let out = command::shmq_redrive(other.path(), &s.to_path)
            .arg("--forget-interrupted")
            .stdout(std::process::Stdio::piped())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    #[cfg(not(feature = "cli"))]
    other.redrive_to(&s.to, None).unwrap();
    let mut buf = [0u8; MAX_MESSAGE as usize];
    let mut got = Vec::new();
    while let Ok(r) = s.to.try_recv_meta(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..r.len]).into_owned());
    }
    assert_eq!(got, ["m0", "x"], "m0 published once, x moved");
}

/// The `shmq redrive` command's tests: its binary is built with the `cli` feature only (the
/// sanitizer runs leave it out).
#[cfg(feature = "cli")]
mod command {
    use super::common::Rng;
    use super::*;
    use std::path::Path;
    use std::process::{Command, Stdio};

    /// How many times the CLI redrive is killed at a random instant.
    const RANDOM_KILLS: u32 = 40;
    /// Messages in the DLQ for the random kills.
    const RANDOM_MESSAGES: usize = 100_000;
    /// The most one run moves (`--count`), so that the kills outlast the messages.
    const PER_RUN: usize = 1_000;

    pub(super) fn shmq_redrive(dlq: &Path, to: &Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_shmq"));
        cmd.arg("redrive")
            .arg(dlq)
            .arg("--to")
            .arg(to)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    }

    #[test]
    fn shmq_redrive_killed_at_random_instants_and_rerun_moves_each_message_once() {
        let s = Setup::new(RANDOM_MESSAGES);
        let seed = std::env::var("SHMQ_TEST_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| common::monotonic_ns() | 1);
        println!("seed {seed} (SHMQ_TEST_SEED replays it)");
        let mut rng = Rng(seed);
        let mut killed_midway = 0;
        let mut kills = 0;
        // The window the kill instant is drawn from: widened while kills land before the run moved
        // anything (process start-up), narrowed when a run finishes first.
        let mut window = Duration::from_millis(5);
        while kills < RANDOM_KILLS {
            let before = s.dlq.stats().len;
            if before == 0 {
                break;
            }
            // At most `PER_RUN` a run: one that finishes before its kill (the command moves the
            // whole queue in milliseconds) leaves the rest for the next kills.
            let mut child = shmq_redrive(&s.dlq_path, &s.to_path)
                .arg("--count")
                .arg(PER_RUN.to_string())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_nanos(rng.next() % window.as_nanos() as u64));
            let _ = child.kill();
            let status = child.wait().unwrap();
            if status.code().is_some() {
                assert!(status.success(), "shmq redrive failed");
                window /= 2;
                continue;
            }
            kills += 1;
            let after = s.dlq.stats().len;
            if after < before && after > 0 {
                killed_midway += 1;
            } else if after == before {
                window += Duration::from_millis(2);
            }
        }
        let out = shmq_redrive(&s.dlq_path, &s.to_path)
            .stdout(Stdio::piped())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary = String::from_utf8_lossy(&out.stdout);
        assert!(summary.starts_with("moved "), "{summary}");
        assert!(summary.contains("; 0 left in"), "{summary}");
        println!("{RANDOM_MESSAGES} messages, {killed_midway} of {kills} kills landed midway");
        assert!(
            killed_midway >= RANDOM_KILLS / 4,
            "too few kills landed midway: {killed_midway} of {kills}"
        );
        s.assert_exactly_once();
    }

    #[test]
    fn shmq_redrive_count_moves_that_many_and_says_so_and_a_missing_queue_is_one_line() {
        let s = Setup::new(3);
        let out = shmq_redrive(&s.dlq_path, &s.to_path)
            .arg("--count")
            .arg("2")
            .stdout(Stdio::piped())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(
            out.stderr.is_empty(),
            "no progress bar off a terminal: {out:?}"
        );
        let summary = String::from_utf8(out.stdout).unwrap();
        let expected_start = format!(
            "moved 2 messages from {} to {} in ",
            s.dlq_path.display(),
            s.to_path.display()
        );
        assert!(summary.starts_with(&expected_start), "{summary}");
        assert!(
            summary.ends_with(&format!("; 1 left in {}\n", s.dlq_path.display())),
            "{summary}"
        );
        let mut buf = [0u8; MAX_MESSAGE as usize];
        for m in ["m0", "m1"] {
            let r = s.to.try_recv_meta(&mut buf).unwrap();
            assert_eq!(&buf[..r.len], m.as_bytes());
        }
        let missing = s.dir.path().join("missing");
        let out = shmq_redrive(&s.dlq_path, &missing).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.starts_with("shmq: ") && err.lines().count() == 1 && err.contains("missing"),
            "{err}"
        );
        assert_eq!(s.dlq.redrive_to(&s.to, None).unwrap(), 1);
    }
}

#[test]
fn a_message_given_back_to_the_dlq_after_it_was_moved_is_found_behind_the_others() {
    let s = Setup::new(4);
    s.kill_redrive_at("redrive-published");
    // The DLQ's recovery gives m0 back before the next redrive: copied to the tail, behind
    // m1..m3, with its delivery count raised. The next run must remove it, not move it again.
    assert!(s.dlq.recover());
    let stats = s.dlq.stats();
    assert_eq!(stats.redelivered, 1, "{stats:#?}");
    assert_eq!(
        s.dlq.redrive_to(&s.to, None).unwrap(),
        4,
        "m0 (settled), m1..m3"
    );
    s.assert_exactly_once();
}
