// SPDX-License-Identifier: MIT OR Apache-2.0
//! A queue is a file: what one process leaves in it (messages, the closed flag, the queue itself)
//! is there for processes started after it exited, whether it exited or was killed.

mod common;

use common::{Child, Role};
use shmq::{Error, Options, Queue};
use std::path::Path;
use std::time::Duration;

/// Bound on every child's run.
const BOUND: Duration = Duration::from_secs(10);

fn message(i: u32) -> String {
    format!("message {i} from a process that is gone")
}

/// Creates the queue (unless `create=false`), sends `count` messages (alternating copying and
/// in-place sends), closes it if asked, and exits; with `hang=true` it instead reports `sent`
/// and waits to be killed.
fn send(role: &Role) {
    let path = role.path("queue");
    let q = if role.arg("create") {
        Queue::create(&path, Options::new(role.arg("capacity"), 64)).unwrap()
    } else {
        Queue::open(&path).unwrap()
    };
    for i in 0..role.arg::<u32>("count") {
        let msg = message(i);
        if i % 2 == 0 {
            q.try_send(msg.as_bytes()).unwrap();
        } else {
            let mut slot = q.try_reserve().unwrap();
            slot[..msg.len()].copy_from_slice(msg.as_bytes());
            slot.commit(msg.len()).unwrap();
        }
    }
    if role.arg("close") {
        assert!(q.close());
    }
    if role.arg("hang") {
        role.report("sent");
        std::thread::sleep(BOUND * 6);
        panic!("was not killed");
    }
}

/// Opens the queue and reports what `stats` says, then every message it can receive (until
/// `Empty` or `Closed`), then how receiving ended.
fn drain(role: &Role) {
    let q = Queue::open(role.path("queue")).unwrap();
    let s = q.stats();
    let mut report = format!(
        "capacity={} max={} sent={} received={} len={} closed={}\n",
        s.capacity, s.max_message_size, s.sent, s.received, s.len, s.closed
    );
    let mut buf = [0u8; 64];
    let end = loop {
        match q.try_recv(&mut buf) {
            Ok(n) => {
                report.push_str(std::str::from_utf8(&buf[..n]).unwrap());
                report.push('\n');
            }
            Err(e) => break e,
        }
    };
    report.push_str(&format!("{end:?}"));
    role.report(&report);
}

/// Opens the queue and receives one message, waiting for it.
fn recv_one(role: &Role) {
    let q = Queue::open(role.path("queue")).unwrap();
    let mut buf = [0u8; 64];
    let n = q.recv_timeout(&mut buf, BOUND).unwrap();
    role.report(&format!(
        "capacity={} max={} got={}",
        q.capacity(),
        q.max_message_size(),
        String::from_utf8_lossy(&buf[..n])
    ));
}

/// Not a property: the entry point of the child processes these tests spawn (see `common`).
/// Ignored, so that a test run does not count it; the children run it with `--ignored`.
#[test]
#[ignore = "the entry point of child processes, not a test"]
fn child() {
    common::child_main(|role| match role.name() {
        "send" => send(role),
        "drain" => drain(role),
        "recv_one" => recv_one(role),
        other => panic!("unknown role {other}"),
    });
}

fn spawn_send(
    dir: &Path,
    queue: &Path,
    create: bool,
    count: u32,
    close: bool,
    hang: bool,
) -> Child {
    Child::spawn(
        dir,
        "send",
        &[
            ("queue", &queue.display()),
            ("create", &create),
            ("capacity", &16),
            ("count", &count),
            ("close", &close),
            ("hang", &hang),
        ],
    )
}

fn drain_in_new_process(dir: &Path, queue: &Path) -> Vec<String> {
    Child::spawn(dir, "drain", &[("queue", &queue.display())])
        .wait(BOUND)
        .lines()
        .map(String::from)
        .collect()
}

fn expected_messages(count: u32) -> Vec<String> {
    (0..count).map(message).collect()
}

#[test]
fn messages_sent_by_an_exited_process_are_received_by_a_later_process() {
    let dir = common::tempdir();
    let path = dir.path().join("q");
    // The sender creates the queue; no other process has it open while it runs or after.
    spawn_send(dir.path(), &path, true, 10, false, false).wait(BOUND);

    let report = drain_in_new_process(dir.path(), &path);
    assert_eq!(
        report[0],
        "capacity=16 max=64 sent=10 received=0 len=10 closed=false"
    );
    assert_eq!(report[1..11], expected_messages(10));
    assert_eq!(report[11], "Empty");

    let q = Queue::open(&path).unwrap();
    let s = q.stats();
    assert_eq!((s.sent, s.received, s.len), (10, 10, 0));
    // Both children closed their handles on exit: only this handle is registered.
    assert_eq!(s.participants.len(), 1, "{:?}", s.participants);
    assert_eq!(s.participants[0].pid, std::process::id());
}

#[test]
fn queue_created_by_an_exited_process_opens_and_works_in_others() {
    let dir = common::tempdir();
    let path = dir.path().join("q");
    spawn_send(dir.path(), &path, true, 0, false, false).wait(BOUND);
    assert!(path.exists());

    let receiver = Child::spawn(dir.path(), "recv_one", &[("queue", &path.display())]);
    spawn_send(dir.path(), &path, false, 1, false, false).wait(BOUND);
    assert_eq!(
        receiver.wait(BOUND),
        format!("capacity=16 max=64 got={}", message(0))
    );
}

#[test]
fn close_by_an_exited_process_persists_and_later_receivers_drain_then_see_closed() {
    let dir = common::tempdir();
    let path = dir.path().join("q");
    spawn_send(dir.path(), &path, true, 3, true, false).wait(BOUND);

    let report = drain_in_new_process(dir.path(), &path);
    assert_eq!(
        report[0],
        "capacity=16 max=64 sent=3 received=0 len=3 closed=true"
    );
    assert_eq!(report[1..4], expected_messages(3));
    assert_eq!(report[4], "Closed");
    let q = Queue::open(&path).unwrap();
    assert!(matches!(q.try_send(b"x"), Err(Error::Closed)));
}

#[test]
fn messages_of_a_killed_sender_survive_it() {
    let dir = common::tempdir();
    let path = dir.path().join("q");
    let q = Queue::create(&path, Options::new(16, 64)).unwrap();
    let sender = spawn_send(dir.path(), &path, false, 5, false, true);
    let pid = sender.pid();
    // It reports `sent` after its last commit; then it is killed without closing anything.
    common::wait_until(BOUND, "the sender to send", || {
        sender.report_so_far() == "sent"
    });
    sender.kill();

    // The killed process never deregistered: its entry remains, and is known to be dead.
    let s = q.stats();
    let entry = s.participants.iter().find(|p| p.pid == pid);
    assert!(matches!(entry, Some(p) if !p.alive), "{:?}", s.participants);
    drop(q);

    let report = drain_in_new_process(dir.path(), &path);
    assert_eq!(
        report[0],
        "capacity=16 max=64 sent=5 received=0 len=5 closed=false"
    );
    assert_eq!(report[1..6], expected_messages(5));
    assert_eq!(report[6], "Empty");
}
