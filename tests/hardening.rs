// SPDX-License-Identifier: MIT OR Apache-2.0
//! The holes an outside review found (issue 8), one test or more each, with real processes,
//! real pipes and (as root) a real small tmpfs:
//!
//! 1. A handle dropped with claims it cannot give back (the tail slot held by a live consumer)
//!    keeps them recorded, so a later sweep redelivers them and producers are never wedged:
//!    through the library and through `shmq recv` losing its reader.
//! 2. A full filesystem is an `Io` error at create (nothing left behind) or open, never SIGBUS;
//!    sizes beyond the filesystem are refused up front.
//! 3. (`shmq recv | head`: tests/cli_pipe.rs.)
//! 4. Planted and shared files: `open_or_create` refuses another user's file; "other" access
//!    needs `allow_other_access`; symbolic links are refused with their own wording; read locks
//!    on a dead participant's lock byte do not keep it alive.
//! 5. `Queue::inspect` / `shmq stat` need read permission only, register nothing (so work with
//!    every participant entry taken), and show who holds which slots since when.
//! 6. Precise messages: a missing directory, modes that are not plain permission bits.

mod common;

use common::{Child, Role};
use shmq::{Error, Options, Queue};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
#[cfg(feature = "cli")]
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_shmq");
/// Bound on anything that must finish: generous for a loaded machine, finite for a bug.
const BOUND: Duration = Duration::from_secs(30);
/// How long a blocked call may wait for a message or room that a sweep must make: sweeps run
/// every sleep slice (50 ms) of a blocked call; this allows for a loaded machine, and a wedged
/// queue never makes progress at all.
const ROOM_BOUND: Duration = Duration::from_secs(5);
const NOBODY: u32 = 65534;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A scratch directory that the unprivileged user `nobody` may enter (for the read-only
/// monitor tests).
fn open_tempdir() -> tempfile::TempDir {
    let dir = common::tempdir();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Receives everything left (waiting up to `BOUND` for each of `expected` messages), as text,
/// with delivery counts.
fn drain(q: &Queue, expected: usize) -> Vec<(String, u32)> {
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while got.len() < expected {
        let r = q
            .recv_meta_timeout(&mut buf, ROOM_BOUND)
            .unwrap_or_else(|e| panic!("after {got:?}: {e}"));
        got.push((
            String::from_utf8_lossy(&buf[..r.len]).into_owned(),
            r.deliveries,
        ));
    }
    assert!(matches!(q.try_recv(&mut buf), Err(Error::Empty)), "{got:?}");
    got
}

// ---- 1. A dropped handle with claims it cannot resolve --------------------------------------

/// Claims `count` messages in place, leaks the guards (as `shmq recv` does with messages it
/// could not deliver), reports, and drops the handle: `Queue::drop` must then give them back,
/// or, finding no room, leave them recorded for a sweep.
fn claim_and_drop(role: &Role) {
    let q = Queue::open(role.path("queue")).unwrap();
    let count: usize = role.arg("count");
    for _ in 0..count {
        std::mem::forget(q.try_recv_in_place().unwrap());
    }
    drop(q);
    role.report("dropped");
}

#[test]
fn a_dropped_handle_whose_claims_find_no_room_leaves_them_for_a_sweep() {
    let dir = common::tempdir();
    let path = dir.path().join("q");
    let q = Queue::create(&path, Options::new(4, 64)).unwrap();
    for m in ["m0", "m1", "m2", "m3"] {
        q.send(m.as_bytes()).unwrap();
    }
    // Receiver A (alive): holds m0, whose slot the tail comes to next.
    let a = Queue::open(&path).unwrap();
    let m0 = a.try_recv_in_place().unwrap();
    assert_eq!(&*m0, b"m0");
    // Receiver B (another process): claims m1 and m2, then drops its handle with both claims
    // outstanding; there is no room to give them back while A holds the tail slot.
    let b = Child::spawn(
        dir.path(),
        "claim_and_drop",
        &[("queue", &path.display()), ("count", &2)],
    );
    assert_eq!(b.wait(BOUND), "dropped");
    let stats = Queue::inspect(&path).unwrap();
    let dead: Vec<_> = stats.participants.iter().filter(|p| !p.alive).collect();
    assert_eq!(dead.len(), 1, "B's entry stays recorded: {stats:?}");
    assert_eq!(dead[0].holding, 2, "{stats:?}");
    // A finishes m0; a producer takes its slot. B's two messages must come back: only a sweep
    // that still knows whose claims they are can give them back (before the fix they were
    // unattributable: receivers waited at them and producers, once the ring came round, behind
    // them, forever).
    drop(m0);
    q.send_timeout(b"m4", ROOM_BOUND).unwrap();
    let mut got = drain(&q, 4);
    got.sort();
    assert_eq!(
        got,
        [
            ("m1".into(), 2),
            ("m2".into(), 2),
            ("m3".into(), 1),
            ("m4".into(), 1)
        ],
        "every message once, B's two redelivered"
    );
    let stats = q.stats();
    assert_eq!(stats.redelivered, 2);
    assert!(stats.participants.iter().all(|p| p.alive), "{stats:?}");
    // And the ring goes round freely.
    for round in 0..3u8 {
        for i in 0..4u8 {
            q.send_timeout(&[round, i], ROOM_BOUND).unwrap();
        }
        assert_eq!(drain(&q, 4).len(), 4);
    }
}

/// A pipe whose buffer is full: a writer to `.1` blocks until someone reads `.0`.
#[cfg(feature = "cli")]
fn full_pipe() -> (File, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two descriptors for pipe2 to fill.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 returned two new descriptors that nothing else owns.
    let (read, write) = unsafe { (File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on a descriptor we own, with integer arguments.
    unsafe {
        let flags = libc::fcntl(write.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(write.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    let mut writer = File::from(write.try_clone().unwrap());
    let chunk = [b'x'; 4096];
    while writer.write(&chunk).is_ok() {}
    // SAFETY: as above; the receiving `shmq` must block on a full pipe, not get EAGAIN.
    unsafe {
        let flags = libc::fcntl(write.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(write.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK);
    }
    (read, write)
}

// Needs the shmq command: not compiled without the `cli` feature (the sanitizer run), rather
// than a test that passes doing nothing.
#[test]
#[cfg(feature = "cli")]
fn cli_recv_that_loses_its_reader_while_the_tail_slot_is_held_loses_nothing() {
    let dir = common::tempdir();
    let path = dir.path().join("q");
    let q = Queue::create(&path, Options::new(4, 64)).unwrap();
    for m in ["m0", "m1", "m2", "m3"] {
        q.send(m.as_bytes()).unwrap();
    }
    // Receiver A: `shmq recv --count 1` into a pipe that is full and that nobody reads yet: it
    // claims m0 and blocks writing it.
    let (mut a_out, a_pipe) = full_pipe();
    let mut a = Command::new(BIN)
        .args(["recv", "--count", "1"])
        .arg(&path)
        .stdout(Stdio::from(a_pipe))
        .spawn()
        .unwrap();
    common::wait_until(BOUND, "A to claim m0", || q.stats().received == 1);
    // Receiver B: `shmq recv --count 2` whose reader is already gone: it claims m1 (and m2),
    // fails to write, and exits with its claims outstanding and no room to give them back.
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two descriptors for pipe2 to fill.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 returned two new descriptors that nothing else owns.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read_end);
    let status = Command::new(BIN)
        .args(["recv", "--count", "2"])
        .arg(&path)
        .stdout(Stdio::from(write_end))
        .status()
        .unwrap();
    assert!(
        status.success(),
        "a reader going away is not an error: {status}"
    );
    // Let A finish: read its pipe up to m0.
    let mut sink = vec![0u8; 1 << 20];
    let mut seen = Vec::new();
    while !seen.ends_with(b"m0\n") {
        let n = a_out.read(&mut sink).unwrap();
        assert!(n > 0, "A's pipe closed before m0");
        seen.extend_from_slice(&sink[..n]);
    }
    assert!(wait_child(&mut a, BOUND).success());
    // A producer takes A's slot; nothing else is lost, and nothing wedges.
    let mut send = Command::new(BIN)
        .arg("send")
        .arg(&path)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    send.stdin.take().unwrap().write_all(b"m4\n").unwrap();
    assert!(wait_child(&mut send, BOUND).success());
    let got = drain(&q, 4);
    let mut texts: Vec<&str> = got.iter().map(|(t, _)| t.as_str()).collect();
    texts.sort();
    assert_eq!(texts, ["m1", "m2", "m3", "m4"], "{got:?}");
    for (text, deliveries) in &got {
        // m1 and m2 come back with their count raised if B had claimed them.
        let most = if text == "m1" || text == "m2" { 2 } else { 1 };
        assert!((1..=most).contains(deliveries), "{text}: {deliveries}");
    }
}

#[cfg(feature = "cli")]
fn wait_child(child: &mut std::process::Child, bound: Duration) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > bound {
            let _ = child.kill();
            panic!("child still running after {bound:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---- 2. Full filesystems ---------------------------------------------------------------------

/// A tmpfs of `size` mounted for the test, unmounted on drop; `None` where mounting is not
/// permitted and `SHMQ_SKIP_ROOT_TESTS=1` lets `test` pass without it (else the test fails).
struct SmallTmpfs {
    dir: tempfile::TempDir,
}

impl SmallTmpfs {
    fn mount(size: &str, test: &str) -> Option<SmallTmpfs> {
        if !is_root() {
            common::skip_or_fail(common::SKIP_ROOT_TESTS, test, "mounting a tmpfs needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status();
        match status {
            Ok(s) if s.success() => Some(SmallTmpfs { dir }),
            other => {
                common::skip_or_fail(
                    common::SKIP_ROOT_TESTS,
                    test,
                    &format!("cannot mount a tmpfs here, even as root ({other:?})"),
                );
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn assert_out_of_space(result: shmq::Result<Queue>, case: &str) {
    match result {
        Err(Error::Io(e)) => {
            assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "{case}: {e}");
        }
        other => panic!("{case}: expected Io(StorageFull), got {other:?}"),
    }
}

#[test]
fn a_queue_larger_than_its_filesystem_is_refused_and_leaves_nothing() {
    // /dev/shm (or the temp dir) cannot hold half a terabyte.
    let dir = common::tempdir();
    let result = Queue::create(dir.path().join("huge"), Options::new(1 << 24, 32 << 10));
    assert_out_of_space(result, "512 GiB queue");
    assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
    let Some(fs) = SmallTmpfs::mount(
        "1m",
        "a_queue_larger_than_its_filesystem_is_refused_and_leaves_nothing",
    ) else {
        return;
    };
    // The review's case: about 5 MB on a 1 MiB tmpfs, through the library and the command.
    assert_out_of_space(
        Queue::create(fs.path().join("q"), Options::new(32768, 100)),
        "5 MB on 1 MiB",
    );
    assert!(names(fs.path()).is_empty(), "{:?}", names(fs.path()));
    if cfg!(feature = "cli") {
        let out = Command::new(BIN)
            .args(["create", "--capacity", "32768", "--max-message-size", "100"])
            .arg(fs.path().join("q"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with("shmq: ") && stderr.contains("bytes available"),
            "{stderr}"
        );
        assert!(names(fs.path()).is_empty(), "{:?}", names(fs.path()));
    }
    // What fits is created, allocated in full, and works to the last slot.
    let q = Queue::create(fs.path().join("ok"), Options::new(4096, 64)).unwrap();
    let meta = std::fs::metadata(fs.path().join("ok")).unwrap();
    assert!(
        std::os::unix::fs::MetadataExt::blocks(&meta) * 512 >= meta.len(),
        "allocated in full"
    );
    for i in 0..4096u32 {
        q.try_send(&i.to_le_bytes()).unwrap();
    }
    assert_eq!(q.stats().len, 4096);
}

#[test]
fn a_sparse_queue_file_on_a_full_filesystem_is_an_error_at_open_not_sigbus() {
    let Some(fs) = SmallTmpfs::mount(
        "1m",
        "a_sparse_queue_file_on_a_full_filesystem_is_an_error_at_open_not_sigbus",
    ) else {
        return;
    };
    // A valid 8 MiB queue's header, copied into a sparse file of the same length on the small
    // tmpfs (as a copy tool or an older shmq would leave it).
    let scratch = common::tempdir();
    let original = scratch.path().join("q");
    drop(Queue::create(&original, Options::new(16384, 448)).unwrap());
    let len = std::fs::metadata(&original).unwrap().len();
    assert!(len > 4 << 20);
    let mut head = vec![0u8; 64 << 10];
    File::open(&original)
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    let sparse = fs.path().join("q");
    {
        let mut f = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode_600()
            .open(&sparse)
            .unwrap();
        f.write_all(&head).unwrap();
        f.set_len(len).unwrap();
    }
    assert_out_of_space(Queue::open(&sparse), "open of a sparse file");
    // A monitor reads it without mapping it: the holes read as zeros, no signal.
    let stats = Queue::inspect(&sparse).unwrap();
    assert_eq!((stats.capacity, stats.len), (16384, 0));
    if cfg!(feature = "cli") {
        let out = Command::new(BIN).arg("stat").arg(&sparse).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let out = Command::new(BIN)
            .arg("send")
            .arg(&sparse)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
    }
}

trait Mode600 {
    fn mode_600(&mut self) -> &mut Self;
}

impl Mode600 for std::fs::OpenOptions {
    fn mode_600(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
}

// ---- 4. Planted and shared files -------------------------------------------------------------

#[test]
fn open_or_create_refuses_a_queue_another_user_planted() {
    if !is_root() {
        common::skip_or_fail(
            common::SKIP_ROOT_TESTS,
            "open_or_create_refuses_a_queue_another_user_planted",
            "changing a file's owner needs root",
        );
        return;
    }
    let dir = common::tempdir();
    let path = dir.path().join("q");
    // "Another user" creates a small queue at the path first.
    drop(Queue::create(&path, Options::new(8, 64)).unwrap());
    std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
    let e = Queue::open_or_create(&path, Options::new(1024, 256)).unwrap_err();
    match &e {
        Error::PermissionDenied { path: p, reason } => {
            assert_eq!(p, &path);
            assert!(reason.contains("owned by uid 65534"), "{reason}");
        }
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
    // Attaching on purpose still works.
    assert_eq!(Queue::open(&path).unwrap().capacity(), 8);
}

#[test]
fn other_access_needs_allow_other_access_at_create_and_at_open() {
    let dir = common::tempdir();
    let path = dir.path().join("q");
    for mode in [0o604, 0o606, 0o666, 0o601] {
        let e = Queue::create(&path, Options::new(8, 64).mode(mode)).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidOptions(why) if why.contains("allow_other_access")),
            "{mode:o}: {e:?}"
        );
        assert!(names(dir.path()).is_empty());
    }
    // Group sharing needs nothing special.
    drop(Queue::create(&path, Options::new(8, 64).mode(0o660)).unwrap());
    // Widened later: refused at open, with the remedy named.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    match Queue::open(&path).unwrap_err() {
        Error::PermissionDenied { reason, .. } => {
            assert!(
                reason.contains("mode 0666") && reason.contains("chmod o="),
                "{reason}"
            )
        }
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
    // Created to allow it: recorded in the header, so opens accept it.
    let shared = dir.path().join("shared");
    drop(
        Queue::create(
            &shared,
            Options::new(8, 64).mode(0o666).allow_other_access(true),
        )
        .unwrap(),
    );
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o666)).unwrap();
    let q = Queue::open(&shared).unwrap();
    assert_eq!(
        q.stats().flags & shmq::FLAG_ALLOW_OTHER_ACCESS,
        shmq::FLAG_ALLOW_OTHER_ACCESS
    );
    if cfg!(feature = "cli") {
        // The CLI spells it --allow-other-access.
        let out = Command::new(BIN)
            .args([
                "create",
                "--capacity",
                "8",
                "--max-message-size",
                "8",
                "--mode",
                "644",
            ])
            .arg(dir.path().join("cli"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-other-access"));
        let out = Command::new(BIN)
            .args([
                "create",
                "--capacity",
                "8",
                "--max-message-size",
                "8",
                "--mode",
                "644",
            ])
            .arg("--allow-other-access")
            .arg(dir.path().join("cli"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
}

#[test]
fn a_symbolic_link_is_refused_with_its_own_wording() {
    let dir = common::tempdir();
    let path = dir.path().join("q");
    drop(Queue::create(&path, Options::new(8, 64)).unwrap());
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    for result in [
        Queue::open(&link).map(drop),
        Queue::open_or_create(&link, Options::new(8, 64)).map(drop),
        Queue::inspect(&link).map(drop),
    ] {
        match result.unwrap_err() {
            Error::PermissionDenied { path, reason } => {
                assert_eq!(path, link);
                assert!(reason.contains("symbolic link"), "{reason}");
            }
            other => panic!("expected PermissionDenied, got {other:?}"),
        }
    }
}

/// Opens the queue, claims one message in place, reports, and waits to be killed.
fn hold_until_killed(role: &Role) {
    let q = Queue::open(role.path("queue")).unwrap();
    let guard = q.recv_in_place().unwrap();
    role.report(&String::from_utf8_lossy(&guard));
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Takes a read lock (as any user who can read the file may) on participant `index`'s lock
/// byte, through its own open file description.
fn read_lock_participant_byte(path: &Path, index: u32) -> File {
    const LOCK_BASE: i64 = 1 << 40; // src/participant.rs
    let file = File::open(path).unwrap();
    // SAFETY: an all-zero flock is valid; fcntl reads the exclusively borrowed struct.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_RDLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = LOCK_BASE + i64::from(index);
    fl.l_len = 1;
    // SAFETY: a valid descriptor and a valid flock for F_OFD_SETLK.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) };
    assert_eq!(rc, 0, "read lock: {}", std::io::Error::last_os_error());
    file
}

#[test]
fn read_locks_on_a_dead_participants_byte_do_not_keep_it_alive() {
    let dir = common::tempdir();
    let path = dir.path().join("q");
    let q = Queue::create(&path, Options::new(8, 64)).unwrap();
    q.send(b"job").unwrap();
    let holder = Child::spawn(
        dir.path(),
        "hold_until_killed",
        &[("queue", &path.display())],
    );
    common::wait_until(BOUND, "the child to hold the job", || {
        holder.report_so_far() == "job"
    });
    let index = Queue::inspect(&path)
        .unwrap()
        .participants
        .iter()
        .find(|p| p.pid == holder.pid())
        .expect("the holder's entry")
        .index;
    // The holder dies; a reader of the file read-locks its byte (a write lock excludes that
    // while the holder lives).
    holder.kill();
    let _forger = read_lock_participant_byte(&path, index);
    let stats = Queue::inspect(&path).unwrap();
    let entry = stats
        .participants
        .iter()
        .find(|p| p.index == index)
        .unwrap();
    assert!(
        !entry.alive,
        "a read lock made a dead participant look alive"
    );
    assert!(q.recover(), "the dead holder's message is given back");
    let mut buf = [0u8; 64];
    let r = q.try_recv_meta(&mut buf).unwrap();
    assert_eq!((&buf[..r.len], r.deliveries), (&b"job"[..], 2));
}

// ---- 5. Monitors -------------------------------------------------------------------------------

#[test]
fn inspect_needs_read_permission_only_and_registers_nothing() {
    let dir = open_tempdir();
    let path = dir.path().join("q");
    let q = Queue::create(&path, Options::new(8, 64).mode(0o640)).unwrap();
    q.send(b"one").unwrap();
    let before = q.stats();
    let snapshot = Queue::inspect(&path).unwrap();
    assert_eq!(
        snapshot.participants, before.participants,
        "nothing registered"
    );
    assert_eq!((snapshot.sent, snapshot.len), (1, 1));
    // Read permission only: `shmq stat` as a user in the file's group (not its owner).
    if !is_root() {
        common::skip_or_fail(
            common::SKIP_ROOT_TESTS,
            "inspect_needs_read_permission_only_and_registers_nothing (its unprivileged half)",
            "running `shmq stat` as another user needs root",
        );
        return;
    }
    if !cfg!(feature = "cli") {
        return; // built without the command (the sanitizer run): its half is not compiled in
    }
    std::os::unix::fs::chown(&path, None, Some(NOBODY)).unwrap();
    let out = Command::new(BIN)
        .args(["stat", "--json"])
        .arg(&path)
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["len"], 1);
    assert_eq!(json["participants"].as_array().unwrap().len(), 1);
    // The same user cannot open a handle (no write permission): stat did not need one.
    let out = Command::new(BIN)
        .arg("send")
        .arg(&path)
        .stdin(Stdio::null())
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("permission denied"));
}

#[test]
fn inspect_works_when_every_participant_entry_is_taken() {
    let dir = common::tempdir();
    let path = dir.path().join("q");
    let handles: Vec<Queue> = (0..shmq::PARTICIPANTS)
        .map(|_| Queue::open_or_create(&path, Options::new(8, 64)).unwrap())
        .collect();
    match Queue::open(&path) {
        Err(shmq::Error::TooManyHandles { limit }) => assert_eq!(limit, shmq::PARTICIPANTS),
        other => panic!("the 513th handle: expected TooManyHandles, got {other:?}"),
    }
    let stats = Queue::inspect(&path).unwrap();
    assert_eq!(stats.participants.len(), shmq::PARTICIPANTS as usize);
    if cfg!(feature = "cli") {
        let out = Command::new(BIN).arg("stat").arg(&path).output().unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    // A limit, not damage: once a handle is dropped, the next open takes its entry.
    // (A child that another test of this process is spawning shares our descriptors until it
    // execs, and with them the dropped handle's lock: allow for that moment.)
    let mut handles = handles;
    handles.pop();
    common::wait_until(BOUND, "a free entry after a drop", || {
        match Queue::open(&path) {
            Ok(q) => {
                handles.push(q);
                true
            }
            Err(Error::TooManyHandles { .. }) => false,
            Err(e) => panic!("{e}"),
        }
    });
    drop(handles);
}

#[test]
fn stat_shows_which_participant_holds_slots_and_since_when() {
    let dir = common::tempdir();
    let path = dir.path().join("q");
    let q = Queue::create(&path, Options::new(8, 64)).unwrap();
    q.send(b"a").unwrap();
    q.send(b"b").unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let consumer = Queue::open(&path).unwrap();
    let a = consumer.try_recv_in_place().unwrap();
    let b = consumer.try_recv_in_place().unwrap();
    let stats = Queue::inspect(&path).unwrap();
    let holder = stats.participants.iter().find(|p| p.holding > 0).unwrap();
    assert_eq!(holder.holding, 2);
    // The coarse clock may lag the fine one by a tick (a few ms).
    let since = holder.holding_since_unix_ns;
    assert!(
        since + 20_000_000 >= before && since <= before + 5_000_000_000,
        "{since}"
    );
    if cfg!(feature = "cli") {
        let out = Command::new(BIN).arg("stat").arg(&path).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("holds 2 slots since"), "{text}");
    }
    drop(a);
    let stats = Queue::inspect(&path).unwrap();
    let holder = stats.participants.iter().find(|p| p.holding > 0).unwrap();
    assert_eq!((holder.holding, holder.holding_since_unix_ns), (1, since));
    drop(b);
    let stats = Queue::inspect(&path).unwrap();
    assert!(stats
        .participants
        .iter()
        .all(|p| p.holding == 0 && p.holding_since_unix_ns == 0));
}

// ---- 6. Precise messages -----------------------------------------------------------------------

#[test]
fn create_in_a_missing_directory_names_the_directory() {
    let dir = common::tempdir();
    let missing = dir.path().join("nonexistent-dir");
    let e = Queue::create(missing.join("q"), Options::new(8, 64)).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("directory")
            && text.contains("does not exist")
            && text.contains("nonexistent-dir"),
        "{text}"
    );
    assert!(!text.contains("no queue at"), "{text}");
}

#[test]
fn modes_must_be_permission_bits_that_let_the_owner_read_and_write() {
    let dir = common::tempdir();
    let path: PathBuf = dir.path().join("q");
    for (mode, needle) in [
        (0o7777, "setuid"),
        (0o4600, "setuid"),
        (0o1600, "sticky"),
        (0o400, "owner read and write"),
        (0o200, "owner read and write"),
    ] {
        let e = Queue::create(&path, Options::new(8, 64).mode(mode)).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidOptions(why) if why.contains(needle)),
            "{mode:o}: {e}"
        );
        assert!(
            names(dir.path()).is_empty(),
            "{mode:o} left {:?}",
            names(dir.path())
        );
    }
}

/// Not a test: the entry point of the child processes these tests spawn (see `common`).
/// Ignored, so that a test run does not count it; the children run it with `--ignored`.
#[test]
#[ignore = "the entry point of child processes, not a test"]
fn child() {
    common::child_main(|role| match role.name() {
        "claim_and_drop" => claim_and_drop(role),
        "hold_until_killed" => hold_until_killed(role),
        other => panic!("unknown role {other}"),
    });
}
