// SPDX-License-Identifier: MIT OR Apache-2.0
//! Every promise of the README's "Guarantees" and "When processes die", and the test that keeps
//! it. Promises with no test elsewhere are tested here.
//!
//! | README promise | Test |
//! |---|---|
//! | Exactly-once claim | `exactly_once.rs`: `every_message_claimed_exactly_once_across_processes`, `batch_and_in_place_calls_claim_exactly_once_across_processes` |
//! | Order: one producer's messages in order in every consumer's stream | `exactly_once.rs` (per-producer order checked in every consumer's stream); `api.rs`: `messages_come_out_in_order_and_full_pushes_back` |
//! | Order: across producers, the order of their claims | here: `order_across_producers_is_the_order_of_their_claims` |
//! | Full pushes back (`Full`, `send` waits, `Timeout`; nothing dropped) | `api.rs`: `messages_come_out_in_order_and_full_pushes_back`; `blocking.rs`: `send_timeout_in_another_process_fires_on_time_and_sends_nothing`, `sender_blocked_on_full_queue_in_another_process_wakes_promptly_on_receive` |
//! | Empty (`Empty`, `recv` waits, `Timeout`) | `bad_input.rs`: `a_full_queue_is_full_and_an_empty_one_is_empty`; `blocking.rs`: `recv_timeout_in_another_process_fires_on_time_and_receives_nothing` |
//! | Closed: sends fail, receivers drain then `Closed`; `close` wakes every sleeper | `api.rs`: `close_drains_then_reports_closed`; `blocking.rs`: `close_wakes_every_sleeping_receiver_and_sender_in_other_processes`; `wakeups.rs`: `close_wakes_a_sleeping_receiver`, `close_wakes_a_sleeping_sender` |
//! | Every waking path wakes (no lost wake-up) | `wakeups.rs` (one test per path, sleep slices off) |
//! | No syscall on the non-blocking path | `fast_path.rs`: `non_blocking_operations_make_no_syscall`, `non_blocking_operations_allocate_nothing_after_warm_up` |
//! | Untrusted memory: header validated on open, only a private copy used after | here: `the_header_is_validated_on_open_and_only_a_private_copy_is_used_after`; `bad_input.rs` (each bad header field) |
//! | Untrusted memory: bad state words and lengths give `Corrupt`, never a panic | `hostile_memory.rs`: `a_state_word_with_an_unknown_phase_is_corrupt_for_every_send_and_receive`, `a_slot_state_more_than_a_lap_from_its_cursor_is_corrupt`, `a_committed_length_beyond_the_maximum_is_corrupt_and_frees_the_slot`, `scribbled_queue_with_dead_participants_gives_only_the_errors_each_call_can_give` |
//! | A dead sender's claim becomes a tombstone (`abandoned_sends`) | `crash_recovery.rs`: `dead_producer_claim_becomes_a_tombstone_and_the_blocked_receiver_moves_on` |
//! | A dead receiver's message is redelivered, count raised (`redelivered`) | `crash_recovery.rs`: `dead_consumer_message_is_redelivered_*`; `chaos.rs` (in place and by copy); here: `a_message_whose_consumers_die_twice_is_redelivered_by_copy_with_every_death_counted` |
//! | `max_deliveries` dead-letters (`dead_lettered`) | `crash_recovery.rs`: `poison_message_is_dead_lettered_after_max_deliveries` |
//! | `OnConsumerDeath::Drop` drops (`abandoned_receives`) | `crash_recovery.rs`: `dead_consumer_message_is_dropped_under_on_consumer_death_drop` |
//! | A dead sleeper is recounted | `crash_recovery.rs`: `dead_receiver_asleep_is_no_longer_counted_and_new_sleepers_are_woken`, `dead_sender_asleep_…` |
//! | Death decided by the lock, never a timeout: a stopped process is never declared dead | `crash_recovery.rs`: both detection tests (a stopped producer is waited for); here: `a_forked_child_keeps_its_parents_claims_alive_until_it_exits` |
//! | Exactly once among consumers that finish; nothing lost to a crash | `chaos.rs`: `every_sent_message_is_released_despite_sigkills_every_50ms` |
//! | Detection bound: ~70 ms while anyone is blocked | `crash_recovery.rs`: `dead_producer_claim_becomes_a_tombstone_and_the_blocked_receiver_moves_on` |
//! | Detection bound: ~1 ms for a busy-polling receiver | `crash_recovery.rs`: `dead_producer_claim_is_skipped_by_a_busy_polling_receiver` |
//! | A `FUTEX_WAKE` that wakes nobody sweeps | `crash_recovery.rs`: `dead_receiver_asleep_is_no_longer_counted_and_new_sleepers_are_woken` |
//! | A receiver sweeps before `Closed` | `crash_recovery.rs`: `dead_consumer_message_is_redelivered_before_closed_is_reported` |
//! | A new handle reusing a dead participant's entry resolves what it left | here: `a_new_handle_that_must_reuse_a_dead_participants_entry_resolves_its_claims`; `crash_recovery.rs`: `dead_participant_is_shown_dead_until_swept_then_its_entry_is_freed` |
//! | `Queue::recover()` sweeps on demand (and a message away from both cursors waits for it) | here: `recover_gives_back_a_message_held_away_from_both_cursors`, `recover_resolves_dead_claims_in_every_slot_of_the_ring` |
//! | CLI: `shmq recv` killed at any instant loses nothing, reprints at most what was in flight | here: `a_cli_recv_killed_at_any_instant_loses_nothing_and_reprints_only_what_was_in_flight`; `cli.rs`: `a_recv_killed_holding_a_message_loses_nothing_the_next_recv_gets_it` |
//! | CLI: a `shmq send` killed mid-way never wedges the queue | `cli.rs`: `a_send_killed_between_claim_and_publish_leaves_a_skipped_slot_not_a_stuck_queue`, `a_send_killed_while_blocked_on_a_full_queue_does_not_wedge_it` |
//! | Inherited descriptors: a `fork` child keeps its parent alive; `exec` does not (`O_CLOEXEC`) | here: `a_forked_child_keeps_its_parents_claims_alive_until_it_exits`, `a_forked_child_that_execs_does_not_keep_its_parent_alive` |

mod common;

#[cfg(feature = "cli")]
use common::Rng;
use common::{Child, Role};
use shmq::testing::STUCK;
use shmq::{Error, Options, Queue};
use std::ffi::CString;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
#[cfg(feature = "cli")]
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MAX_MESSAGE: u32 = 16;
/// Bound on any single wait of a test; a bug fails the test here instead of hanging it.
const BOUND: Duration = Duration::from_secs(10);

/// Not a test: the entry point of the child processes these tests spawn (see `common`).
/// Ignored, so that a test run does not count it; the children run it with `--ignored`.
#[test]
#[ignore = "the entry point of child processes, not a test"]
fn child() {
    common::child_main(|role| match role.name() {
        // Reserves a slot and writes `msg`, says so, and commits once the file `go` exists.
        "reserve-then-commit" => {
            let q = Queue::open(role.path("queue")).unwrap();
            let msg: String = role.arg("msg");
            let mut slot = q.try_reserve().unwrap();
            slot[..msg.len()].copy_from_slice(msg.as_bytes());
            role.report("reserved");
            common::wait_until(BOUND, "the go file", || role.path("go").exists());
            slot.commit(msg.len()).unwrap();
            role.report("committed");
        }
        "send" => {
            let q = Queue::open(role.path("queue")).unwrap();
            q.try_send(role.arg::<String>("msg").as_bytes()).unwrap();
            role.report("sent");
        }
        // Crash-recovery victims: stopped at a pause point holding a claim.
        "victim-send" => {
            let q = Queue::open(role.path("queue")).unwrap();
            let _ = q.send(b"lost");
            unreachable!("the pause point stops this process");
        }
        "victim-recv" => {
            let q = Queue::open(role.path("queue")).unwrap();
            let _ = q.recv(&mut [0u8; MAX_MESSAGE as usize]);
            unreachable!("the pause point stops this process");
        }
        "forker" => forker(role),
        other => panic!("unknown role {other}"),
    });
}

fn setup(options: Options) -> (tempfile::TempDir, PathBuf, Queue) {
    let dir = common::tempdir();
    let path = dir.path().join("q");
    let q = Queue::create(&path, options).unwrap();
    (dir, path, q)
}

fn recv_text(q: &Queue) -> Result<(String, u32), Error> {
    let mut buf = [0u8; MAX_MESSAGE as usize];
    q.try_recv_meta(&mut buf).map(|r| {
        (
            String::from_utf8_lossy(&buf[..r.len]).into_owned(),
            r.deliveries,
        )
    })
}

fn victim(dir: &Path, path: &Path, role: &str, point: &str) -> Child {
    let queue = path.display();
    common::spawn_paused(dir, role, &[("queue", &queue)], point, BOUND)
}

#[test]
fn order_across_producers_is_the_order_of_their_claims() {
    let (dir, path, q) = setup(Options::new(8, MAX_MESSAGE));
    let queue = path.display();
    // Three producers in three processes claim positions 0, 1, 2 in that order, and commit in
    // the opposite order.
    let mut a = q.try_reserve().unwrap();
    a[..1].copy_from_slice(b"A");
    let go = dir.path().join("go");
    let go_text = go.display();
    let b = Child::spawn(
        dir.path(),
        "reserve-then-commit",
        &[("queue", &queue), ("msg", &"B"), ("go", &go_text)],
    );
    common::wait_until(BOUND, "B to reserve", || b.report_so_far() == "reserved");
    let c = Child::spawn(dir.path(), "send", &[("queue", &queue), ("msg", &"C")]);
    assert_eq!(c.wait(BOUND), "sent");
    // C is committed, but behind two claims that are not: nothing is ready.
    assert!(matches!(recv_text(&q), Err(Error::Empty)));
    std::fs::write(&go, "").unwrap();
    assert_eq!(b.wait(BOUND), "committed");
    assert!(matches!(recv_text(&q), Err(Error::Empty)));
    a.commit(1).unwrap();
    let got: Vec<String> = (0..3).map(|_| recv_text(&q).unwrap().0).collect();
    assert_eq!(got, ["A", "B", "C"], "claim order, not commit order");
}

/// Byte offsets of the identity block's fields (README, "File format").
mod identity {
    pub const MAGIC: u64 = 0;
    pub const VERSION: u64 = 8;
    pub const PLATFORM: u64 = 12;
    pub const CAPACITY: u64 = 16;
    pub const MAX_MESSAGE_SIZE: u64 = 20;
    pub const SLOT_STRIDE: u64 = 24;
    pub const SLOTS_OFFSET: u64 = 40;
    pub const FILE_LEN: u64 = 48;
    pub const FLAGS: u64 = 64;
}

#[test]
fn the_header_is_validated_on_open_and_only_a_private_copy_is_used_after() {
    let capacity = 4u32;
    let (_dir, path, q) = setup(Options::new(capacity, MAX_MESSAGE));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut original = [0u8; 128];
    file.read_exact_at(&mut original, 0).unwrap();
    let u32_bytes = |v: u32| v.to_ne_bytes().to_vec();
    let u64_bytes = |v: u64| v.to_ne_bytes().to_vec();
    // Each scribble, and whether a new open must call the file `Corrupt` (or else
    // `Incompatible`).
    let cases: [(&str, u64, Vec<u8>, bool); 9] = [
        ("magic", identity::MAGIC, b"NOTAQUEU".to_vec(), true),
        ("version", identity::VERSION, u32_bytes(99), false),
        ("platform", identity::PLATFORM, u32_bytes(0), false),
        ("capacity", identity::CAPACITY, u32_bytes(1 << 20), true),
        (
            "max message size",
            identity::MAX_MESSAGE_SIZE,
            u32_bytes(1 << 20),
            true,
        ),
        ("slot stride", identity::SLOT_STRIDE, u32_bytes(8), true),
        ("slots offset", identity::SLOTS_OFFSET, u64_bytes(0), true),
        ("file length", identity::FILE_LEN, u64_bytes(u64::MAX), true),
        ("flags", identity::FLAGS, u32_bytes(0x80), false),
    ];
    let max = MAX_MESSAGE as usize;
    for (field, offset, bytes, corrupt) in cases {
        file.write_all_at(&bytes, offset).unwrap();
        // A new open validates the header and refuses it.
        match Queue::open(&path) {
            Err(Error::Corrupt { .. }) if corrupt => {}
            Err(Error::Incompatible { .. }) if !corrupt => {}
            other => panic!("{field}: open gave {other:?}"),
        }
        // The live handle goes on with its private copy: same capacity and size limits, and
        // messages of the full size go through every slot.
        assert_eq!(
            (q.capacity(), q.max_message_size()),
            (capacity, max),
            "{field}"
        );
        let st = q.stats();
        assert_eq!((st.capacity, st.max_message_size), (capacity, MAX_MESSAGE));
        assert!(
            matches!(q.try_send(&vec![0u8; max + 1]), Err(Error::TooLarge { max: m, .. }) if m == max),
            "{field}"
        );
        for i in 0..capacity {
            q.try_send(&[i as u8; MAX_MESSAGE as usize]).unwrap();
        }
        assert!(matches!(q.try_send(b"x"), Err(Error::Full)), "{field}");
        for i in 0..capacity {
            let mut buf = [0u8; MAX_MESSAGE as usize];
            assert_eq!(q.try_recv(&mut buf).unwrap(), max, "{field}");
            assert_eq!(buf, [i as u8; MAX_MESSAGE as usize], "{field}");
        }
        file.write_all_at(&original, 0).unwrap();
        Queue::open(&path).unwrap();
    }
}

#[test]
fn recover_gives_back_a_message_held_away_from_both_cursors() {
    let (dir, path, q) = setup(Options::new(8, MAX_MESSAGE));
    q.try_send(b"held").unwrap();
    q.try_send(b"next").unwrap();
    let consumer = victim(dir.path(), &path, "victim-recv", "recv-claimed");
    assert_eq!(recv_text(&q).unwrap(), ("next".to_string(), 1));
    consumer.kill();
    // The dead consumer's message sits behind the head and far from the tail: nothing a
    // non-blocking call looks at, so busy polling alone never gets it back...
    let until = Instant::now() + 20 * STUCK;
    while Instant::now() < until {
        assert!(matches!(recv_text(&q), Err(Error::Empty)));
    }
    assert_eq!(q.stats().redelivered, 0);
    // ...and `recover` does.
    assert!(q.recover(), "recover found nothing to repair");
    assert_eq!(recv_text(&q).unwrap(), ("held".to_string(), 2));
    assert_eq!(q.stats().redelivered, 1);
    assert!(!q.recover(), "a second recover repaired something again");
}

#[test]
fn a_message_whose_consumers_die_twice_is_redelivered_by_copy_with_every_death_counted() {
    let (dir, path, q) = setup(Options::new(8, MAX_MESSAGE));
    q.try_send(b"twice").unwrap();
    // Two consumers in turn die holding it. The queue is nearly empty, so each time it is
    // copied to the slot at the tail, and its count must travel with it.
    for round in 1..=2 {
        let consumer = victim(dir.path(), &path, "victim-recv", "recv-claimed");
        consumer.kill();
        assert!(q.recover(), "round {round}");
        let st = q.stats();
        assert_eq!((st.redelivered, st.sent), (round, 1 + round), "{st:?}");
    }
    let guard = q.try_recv_in_place().unwrap();
    assert_eq!((&*guard, guard.deliveries()), (&b"twice"[..], 3));
}

#[test]
fn recover_resolves_dead_claims_in_every_slot_of_the_ring() {
    let capacity = 4u32;
    // Dead consumers holding a message in every slot: each is given back (in place, the tail
    // having come round to each slot in turn).
    let (dir, path, q) = setup(Options::new(capacity, MAX_MESSAGE));
    let sent: Vec<String> = (0..capacity).map(|i| format!("m{i}")).collect();
    for m in &sent {
        q.try_send(m.as_bytes()).unwrap();
    }
    let consumers: Vec<Child> = (0..capacity)
        .map(|_| victim(dir.path(), &path, "victim-recv", "recv-claimed"))
        .collect();
    consumers.into_iter().for_each(Child::kill);
    assert!(matches!(recv_text(&q), Err(Error::Empty)));
    assert!(q.recover());
    assert_eq!(q.stats().redelivered, u64::from(capacity));
    let got: Vec<(String, u32)> = (0..capacity).map(|_| recv_text(&q).unwrap()).collect();
    let expected: Vec<(String, u32)> = sent.iter().map(|m| (m.clone(), 2)).collect();
    assert_eq!(got, expected);

    // Dead producers holding a claim in every slot: each becomes a tombstone.
    let (dir, path, q) = setup(Options::new(capacity, MAX_MESSAGE));
    let producers: Vec<Child> = (0..capacity)
        .map(|_| victim(dir.path(), &path, "victim-send", "send-claimed"))
        .collect();
    assert!(matches!(q.try_send(b"x"), Err(Error::Full)));
    producers.into_iter().for_each(Child::kill);
    assert!(q.recover());
    assert_eq!(q.stats().abandoned_sends, u64::from(capacity));
    // Receivers pass the tombstones, and the next lap goes through every slot.
    assert!(matches!(recv_text(&q), Err(Error::Empty)));
    for m in &sent {
        q.try_send(m.as_bytes()).unwrap();
    }
    let got: Vec<String> = (0..capacity).map(|_| recv_text(&q).unwrap().0).collect();
    assert_eq!(got, sent);
}

#[test]
fn a_new_handle_that_must_reuse_a_dead_participants_entry_resolves_its_claims() {
    let (dir, path, q) = setup(Options::new(8, MAX_MESSAGE));
    q.try_send(b"held").unwrap();
    let consumer = victim(dir.path(), &path, "victim-recv", "recv-claimed");
    // Every other entry of the table taken by a live handle.
    let others: Vec<Queue> = (2..shmq::PARTICIPANTS)
        .map(|_| Queue::open(&path).unwrap())
        .collect();
    let dead_index = q
        .stats()
        .participants
        .iter()
        .find(|p| p.pid == consumer.pid())
        .expect("the consumer is listed")
        .index;
    consumer.kill();
    let newcomer = Queue::open(&path).expect("the dead consumer's entry is free to take");
    // That open had to take the dead consumer's entry, and gave its message back (no sweep has
    // run: nobody blocked, nobody called recover).
    let st = q.stats();
    assert_eq!(st.redelivered, 1, "{st:?}");
    assert!(st.participants.iter().all(|p| p.alive), "{st:?}");
    assert!(st.participants.iter().any(|p| p.index == dead_index));
    assert_eq!(recv_text(&newcomer).unwrap(), ("held".to_string(), 2));
    drop(others);
}

/// Opens the queue, claims a message and holds it (in place), then forks: the fork child either
/// stays (`mode=stay`, sharing the open file description) or execs `sleep` (`mode=exec`). Reports
/// the fork child's pid, then waits to be killed.
fn forker(role: &Role) {
    let q = Queue::open(role.path("queue")).unwrap();
    let held = q.try_recv_in_place().unwrap();
    let exec = role.arg::<String>("mode") == "exec";
    // Everything the fork child needs is made before the fork (a forked child of a threaded
    // process may only make async-signal-safe calls).
    let program = CString::new("/bin/sleep").unwrap();
    let arg = CString::new("60").unwrap();
    let argv = [program.as_ptr(), arg.as_ptr(), std::ptr::null()];
    // SAFETY: fork has no preconditions; the child below only calls execv, pause and _exit,
    // which are async-signal-safe, on memory prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: `argv` is a null-terminated array of valid C strings, alive until exec.
        unsafe {
            if exec {
                libc::execv(program.as_ptr(), argv.as_ptr());
                libc::_exit(127);
            }
            loop {
                libc::pause();
            }
        }
    }
    assert!(pid > 0, "fork failed");
    role.report(&pid.to_string());
    std::mem::forget(held);
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// A process that is not our child (the forker's fork child), killed on drop.
struct Stray(libc::pid_t);

impl Stray {
    fn alive(&self) -> bool {
        // A zombie has released everything; count it as gone.
        std::fs::read_to_string(format!("/proc/{}/stat", self.0))
            .map(|s| !s.rsplit_once(')').unwrap().1.trim_start().starts_with('Z'))
            .unwrap_or(false)
    }

    fn comm(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/comm", self.0))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    fn kill(&self) {
        // SAFETY: kill(2) takes integers only.
        unsafe { libc::kill(self.0, libc::SIGKILL) };
    }
}

impl Drop for Stray {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts a forker in `mode` on a queue holding one message; returns the queue, the forker and
/// its fork child, once the forker holds the message.
fn forked(mode: &str) -> (tempfile::TempDir, Queue, Child, Stray) {
    let (dir, path, q) = setup(Options::new(8, MAX_MESSAGE));
    q.try_send(b"held").unwrap();
    let queue = path.display();
    let forker = Child::spawn(dir.path(), "forker", &[("queue", &queue), ("mode", &mode)]);
    common::wait_until(BOUND, "the forker to fork", || {
        !forker.report_so_far().is_empty()
    });
    let stray = Stray(forker.report_so_far().parse().unwrap());
    assert_eq!(q.stats().received, 1);
    (dir, q, forker, stray)
}

fn forker_alive(q: &Queue, pid: u32) -> Option<bool> {
    q.stats()
        .participants
        .iter()
        .find(|p| p.pid == pid)
        .map(|p| p.alive)
}

#[test]
fn a_forked_child_keeps_its_parents_claims_alive_until_it_exits() {
    let (_dir, q, forker, stray) = forked("stay");
    let pid = forker.pid();
    forker.kill();
    // The fork child shares the open file description, and with it the lock: the dead forker
    // counts as alive, and its message is not taken from it.
    assert_eq!(forker_alive(&q, pid), Some(true));
    let until = Instant::now() + 20 * STUCK;
    while Instant::now() < until {
        assert!(
            !q.recover(),
            "the forker was declared dead while its fork child lives"
        );
    }
    assert!(stray.alive());
    stray.kill();
    common::wait_until(BOUND, "the fork child to die", || !stray.alive());
    common::wait_until(BOUND, "the forker's entry to show dead", || {
        forker_alive(&q, pid) == Some(false)
    });
    assert!(q.recover());
    assert_eq!(recv_text(&q).unwrap(), ("held".to_string(), 2));
}

#[test]
fn a_forked_child_that_execs_does_not_keep_its_parent_alive() {
    let (_dir, q, forker, stray) = forked("exec");
    common::wait_until(BOUND, "the fork child to exec sleep", || {
        stray.comm() == "sleep"
    });
    let pid = forker.pid();
    forker.kill();
    // The queue's descriptor is O_CLOEXEC: `sleep` does not hold it, so the forker died with
    // its process (reaped by `kill`, so its descriptors are closed).
    assert_eq!(forker_alive(&q, pid), Some(false));
    assert!(
        stray.alive(),
        "the exec'd child must still run for this to mean anything"
    );
    assert!(q.recover());
    assert_eq!(recv_text(&q).unwrap(), ("held".to_string(), 2));
}

// Needs the shmq command: not compiled without the `cli` feature (the sanitizer run), rather
// than a test that passes doing nothing.
#[test]
#[cfg(feature = "cli")]
fn a_cli_recv_killed_at_any_instant_loses_nothing_and_reprints_only_what_was_in_flight() {
    const MESSAGES: u32 = 3000;
    /// Most lines `shmq recv` writes with one flush (its batch; `src/bin/shmq/transfer.rs`).
    const RECV_BATCH: usize = 64;
    let (dir, path, q) = setup(Options::new(64, MAX_MESSAGE));
    let seed = common::monotonic_ns() | 1;
    println!("kill instants from seed {seed:#x}");
    let mut rng = Rng(seed);
    let mut kills = 0;
    let outputs: Vec<PathBuf> = std::thread::scope(|scope| {
        // A producer sends steadily, so that receivers are often mid-batch when killed.
        let producer = scope.spawn(|| {
            for i in 0..MESSAGES {
                // Bounded, so that a wedged queue fails the test instead of hanging it.
                q.send_timeout(format!("{i}").as_bytes(), BOUND).unwrap();
                if i % 16 == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        });
        let mut files = Vec::new();
        let started = Instant::now();
        loop {
            assert!(
                started.elapsed() < 3 * BOUND,
                "the messages were never all sent"
            );
            let last = producer.is_finished();
            if last {
                q.close();
            }
            let out = dir.path().join(format!("recv-{}.out", files.len()));
            let mut recv = Command::new(env!("CARGO_BIN_EXE_shmq"))
                .arg("recv")
                .arg(&path)
                .stdout(std::fs::File::create(&out).unwrap())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            files.push(out);
            if last {
                // Drains what is left (with what the killed ones held), then sees Closed.
                let start = Instant::now();
                while recv.try_wait().unwrap().is_none() {
                    assert!(start.elapsed() < BOUND, "the last recv never finished");
                    std::thread::sleep(Duration::from_millis(5));
                }
                break;
            }
            std::thread::sleep(Duration::from_micros(2000 + rng.next() % 8000));
            recv.kill().unwrap();
            recv.wait().unwrap();
            kills += 1;
        }
        files
    });

    // Every message printed at least once; a message printed again was printed by a killed
    // receiver among the lines of its last flush (its batch in flight, which it had not
    // released), and those lines end its output.
    let mut printed: Vec<Vec<usize>> = vec![Vec::new(); MESSAGES as usize];
    let mut lines_of: Vec<Vec<u32>> = Vec::new();
    for (k, out) in outputs.iter().enumerate() {
        let text = std::fs::read_to_string(out).unwrap();
        let complete = text.strip_suffix('\n').map_or("", |t| t);
        let lines: Vec<u32> = if complete.is_empty() {
            Vec::new()
        } else {
            complete
                .split('\n')
                .map(|l| l.parse().unwrap_or_else(|_| panic!("garbage line {l:?}")))
                .collect()
        };
        for &m in &lines {
            assert!(m < MESSAGES, "a message never sent: {m}");
            printed[m as usize].push(k);
        }
        lines_of.push(lines);
    }
    let last = outputs.len() - 1;
    let mut reprinted = 0;
    for (m, by) in printed.iter().enumerate() {
        assert!(!by.is_empty(), "message {m} was lost");
        for &k in &by[..by.len() - 1] {
            assert_ne!(k, last, "the last receiver printed {m} twice");
            let lines = &lines_of[k];
            let at = lines.iter().position(|&l| l as usize == m).unwrap();
            let tail = lines.len() - at;
            assert!(
                tail <= RECV_BATCH,
                "message {m}, printed again later, was printed by killed receiver {k} {tail} lines \
                 before its end: it had been released"
            );
            reprinted += 1;
        }
    }
    let st = q.stats();
    println!(
        "{kills} receivers killed, {reprinted} lines printed again, redelivered {}",
        st.redelivered
    );
    assert!(reprinted <= st.redelivered);
    assert_eq!(st.len, 0);
}
