// SPDX-License-Identifier: MIT OR Apache-2.0
//! Every error of [`shmq::Error`], produced from a real file or a real call: bad paths, racing
//! creators, refused permissions, invalid options, damaged or foreign files (each damage written
//! into a real queue file), and the transient errors of the send and receive calls. A bad file
//! gives a typed error and never a panic, whatever its bytes.

mod common;

use common::{Child, Role};
use proptest::prelude::*;
use shmq::{Error, Geometry, Options, Queue, MAGIC, VERSION};
use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Bound on every child's run.
const BOUND: Duration = Duration::from_secs(10);

/// Offsets of the identity block's fields (native endian; see `src/layout.rs`).
mod identity {
    pub const MAGIC: u64 = 0;
    pub const VERSION: u64 = 8;
    pub const PLATFORM: u64 = 12;
    pub const CAPACITY: u64 = 16;
    pub const MAX_MESSAGE_SIZE: u64 = 20;
    pub const SLOT_STRIDE: u64 = 24;
    pub const PARTICIPANTS: u64 = 28;
    pub const PARTICIPANTS_OFFSET: u64 = 32;
    pub const SLOTS_OFFSET: u64 = 40;
    pub const FILE_LEN: u64 = 48;
    /// Size of the identity block (its 128-byte line).
    pub const LEN: usize = 128;
}
/// Offset of a slot's `len` field from the start of the slot.
const SLOT_LEN: u64 = 8;

/// Creates a queue at `dir/name`, closes the handle and returns the path.
fn fresh(dir: &Path, name: &str, capacity: u32, max: u32) -> PathBuf {
    let path = dir.join(name);
    drop(Queue::create(&path, Options::new(capacity, max)).unwrap());
    path
}

/// Writes `bytes` at `offset` of the file with plain file I/O (not through a mapping).
fn patch(path: &Path, offset: u64, bytes: &[u8]) {
    let file = OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, offset).unwrap();
}

fn open_err(path: &Path) -> Error {
    match Queue::open(path) {
        Ok(q) => panic!("{} opened: {q:?}", path.display()),
        Err(e) => e,
    }
}

fn assert_corrupt(path: &Path, case: &str) {
    let e = open_err(path);
    assert!(matches!(e, Error::Corrupt { .. }), "{case}: {e:?}");
}

/// Names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// ---- Child roles -------------------------------------------------------------------------------

/// Waits for the shared start time, then creates (`open_or_create=false`) or opens-or-creates
/// the queue, and reports what happened.
fn race(role: &Role) {
    let path = role.path("queue");
    let options = Options::new(role.arg("capacity"), 64);
    let start: u64 = role.arg("start_ns");
    while common::monotonic_ns() < start {
        std::hint::spin_loop();
    }
    if role.arg("open_or_create") {
        let q = Queue::open_or_create(&path, options).unwrap();
        let me: u32 = role.arg("id");
        q.send(format!("{me}").as_bytes()).unwrap();
        role.report(&format!("capacity={}", q.capacity()));
    } else {
        match Queue::create(&path, options) {
            Ok(_) => role.report("won"),
            Err(Error::AlreadyExists(p)) => {
                assert_eq!(p, path);
                role.report("AlreadyExists")
            }
            Err(e) => panic!("create: {e:?}"),
        }
    }
}

/// Drops to the unprivileged user `nobody`, then checks that opening a root-owned 0600 queue and
/// creating a queue in a root-owned 0755 directory are both refused. Reports nothing: the
/// report file is not writable once unprivileged, so failure is a panic (non-zero exit).
fn as_nobody(role: &Role) {
    const NOBODY: u32 = 65534;
    // SAFETY: setgroups/setgid/setuid take integers and a null pointer for an empty list; the
    // process is single-purpose and drops privileges before touching the queue.
    unsafe {
        assert_eq!(libc::setgroups(0, std::ptr::null()), 0, "setgroups");
        assert_eq!(libc::setgid(NOBODY), 0, "setgid");
        assert_eq!(libc::setuid(NOBODY), 0, "setuid");
    }
    let queue = role.path("queue");
    let e = Queue::open(&queue).expect_err("nobody opened a root-owned 0600 queue");
    assert!(
        matches!(e, Error::PermissionDenied { ref path, .. } if *path == queue),
        "{e:?}"
    );
    let new = role.path("new");
    let e = Queue::create(&new, Options::new(4, 8)).expect_err("nobody created a queue");
    assert!(matches!(e, Error::PermissionDenied { .. }), "{e:?}");
}

/// Not a property: the entry point of the child processes these tests spawn (see `common`).
/// Ignored, so that a test run does not count it; the children run it with `--ignored`.
#[test]
#[ignore = "the entry point of child processes, not a test"]
fn child() {
    common::child_main(|role| match role.name() {
        "race" => race(role),
        "as_nobody" => as_nobody(role),
        other => panic!("unknown role {other}"),
    });
}

// ---- Paths -------------------------------------------------------------------------------------

#[test]
fn opening_or_removing_a_missing_queue_is_not_found() {
    let dir = common::tempdir();
    let path = dir.path().join("missing");
    assert!(matches!(open_err(&path), Error::NotFound(p) if p == path));
    assert!(matches!(Queue::unlink(&path), Err(Error::NotFound(p)) if p == path));
    let gone = fresh(dir.path(), "gone", 4, 8);
    Queue::unlink(&gone).unwrap();
    assert!(matches!(open_err(&gone), Error::NotFound(_)));
}

#[test]
fn creating_over_an_existing_file_is_already_exists_and_leaves_it_untouched() {
    let dir = common::tempdir();
    let path = fresh(dir.path(), "q", 4, 8);
    let before = std::fs::read(&path).unwrap();
    let e = Queue::create(&path, Options::new(8, 16)).unwrap_err();
    assert!(
        matches!(e, Error::AlreadyExists(ref p) if *p == path),
        "{e:?}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);

    let other = dir.path().join("not-a-queue");
    std::fs::write(&other, b"precious").unwrap();
    assert!(matches!(
        Queue::create(&other, Options::new(4, 8)),
        Err(Error::AlreadyExists(_))
    ));
    assert_eq!(std::fs::read(&other).unwrap(), b"precious");
    // No temporary file is left behind by the failed creates.
    assert_eq!(names(dir.path()), ["not-a-queue", "q"]);
}

fn spawn_racers(dir: &Path, queue: &Path, open_or_create: bool) -> Vec<Child> {
    let start = common::monotonic_ns() + 300_000_000;
    (0..4u32)
        .map(|id| {
            Child::spawn(
                dir,
                "race",
                &[
                    ("queue", &queue.display()),
                    ("capacity", &(8u32 << id)),
                    ("start_ns", &start),
                    ("open_or_create", &open_or_create),
                    ("id", &id),
                ],
            )
        })
        .collect()
}

#[test]
fn processes_racing_to_create_one_path_have_exactly_one_winner() {
    let dir = common::tempdir();
    let queues = dir.path().join("queues");
    std::fs::create_dir(&queues).unwrap();
    for round in 0..3 {
        let path = queues.join(format!("q{round}"));
        let reports = common::wait_all(spawn_racers(dir.path(), &path, false), BOUND);
        let winners = reports.iter().filter(|r| *r == "won").count();
        let losers = reports.iter().filter(|r| *r == "AlreadyExists").count();
        assert_eq!((winners, losers), (1, 3), "round {round}: {reports:?}");
        let winner = reports.iter().position(|r| r == "won").unwrap();
        assert_eq!(Queue::open(&path).unwrap().capacity(), 8 << winner);
    }
    // Losers leave no temporary files.
    assert_eq!(names(&queues), ["q0", "q1", "q2"]);
}

#[test]
fn processes_racing_to_open_or_create_one_path_all_share_one_queue() {
    let dir = common::tempdir();
    let path = dir.path().join("q");
    let reports = common::wait_all(spawn_racers(dir.path(), &path, true), BOUND);
    assert!(
        reports.iter().all(|r| *r == reports[0]),
        "racers opened different queues: {reports:?}"
    );
    let q = Queue::open(&path).unwrap();
    assert_eq!(reports[0], format!("capacity={}", q.capacity()));
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while let Ok(n) = q.try_recv(&mut buf) {
        got.push(String::from_utf8(buf[..n].to_vec()).unwrap());
    }
    got.sort();
    assert_eq!(got, ["0", "1", "2", "3"]);
}

#[test]
fn a_queue_the_caller_may_not_open_or_create_is_permission_denied() {
    let dir = common::tempdir();
    let path = fresh(dir.path(), "q", 4, 8);
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // Root bypasses permission bits: check them with an unprivileged process instead.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600,
            "queues are created private"
        );
        Child::spawn(
            dir.path(),
            "as_nobody",
            &[
                ("queue", &path.display()),
                ("new", &locked.join("q").display()),
            ],
        )
        .wait(BOUND);
    } else {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
        assert!(
            matches!(open_err(&path), Error::PermissionDenied { path: ref p, .. } if *p == path)
        );
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
        let e = Queue::create(locked.join("q"), Options::new(4, 8)).unwrap_err();
        assert!(matches!(e, Error::PermissionDenied { .. }), "{e:?}");
    }
}

// ---- Options -----------------------------------------------------------------------------------

#[test]
fn invalid_options_are_refused_and_leave_no_file() {
    let dir = common::tempdir();
    let path = dir.path().join("q");
    let cases = [
        Options::new(0, 8),
        Options::new((1 << 24) + 1, 8),
        Options::new(1 << 30, 8),
        Options::new(4, 0),
        Options::new(4, (16 << 20) + 1),
        Options::new(4, 8).mode(0o10000),
    ];
    for options in cases {
        let e = Queue::create(&path, options.clone()).unwrap_err();
        assert!(matches!(e, Error::InvalidOptions(_)), "{options:?}: {e:?}");
        let e = Queue::open_or_create(&path, options.clone()).unwrap_err();
        assert!(matches!(e, Error::InvalidOptions(_)), "{options:?}: {e:?}");
    }
    assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
}

// ---- Damaged and foreign files -----------------------------------------------------------------

#[test]
fn a_truncated_or_resized_queue_file_is_corrupt() {
    let dir = common::tempdir();
    let g = Geometry::new(64, 64).unwrap();
    for (name, len) in [
        ("one byte short", g.file_len - 1),
        ("half", g.file_len / 2),
        ("just the header", 1920),
        ("shorter than a header", 100),
        ("one page longer", g.file_len + 4096),
    ] {
        let path = fresh(dir.path(), "q", 64, 64);
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len)
            .unwrap();
        assert_corrupt(&path, name);
        std::fs::remove_file(&path).unwrap();
    }
}

#[test]
fn an_empty_file_is_corrupt() {
    let dir = common::tempdir();
    let path = dir.path().join("empty");
    std::fs::write(&path, b"").unwrap();
    assert_corrupt(&path, "empty file");
}

#[test]
fn a_directory_is_corrupt() {
    let dir = common::tempdir();
    let path = dir.path().join("a-directory");
    std::fs::create_dir(&path).unwrap();
    assert_corrupt(&path, "directory");
}

/// Asserts that `result` is `Error::Io` whose OS error is `errno` (through a wrapper such as
/// tempfile's, which adds the path, only the kind survives) and whose message is one line.
fn assert_io<T: std::fmt::Debug>(result: shmq::Result<T>, errno: i32, case: &str) {
    let kind = std::io::Error::from_raw_os_error(errno).kind();
    match result {
        Err(Error::Io(ref e)) => {
            assert_eq!(e.kind(), kind, "{case}: {e:?}");
            if let Some(raw) = e.raw_os_error() {
                assert_eq!(raw, errno, "{case}: {e:?}");
            }
            let message = result.unwrap_err().to_string();
            assert!(message.starts_with("I/O error: "), "{case}: {message}");
            assert!(!message.contains('\n'), "{case}: {message:?}");
        }
        other => panic!("{case}: expected Error::Io ({kind:?}), got {other:?}"),
    }
}

#[test]
fn a_path_through_a_regular_file_or_with_an_overlong_name_is_io() {
    let dir = common::tempdir();
    // A path component that is a regular file: ENOTDIR, which has no variant of its own.
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let below = file.join("q");
    assert_io(Queue::open(&below), libc::ENOTDIR, "open below a file");
    assert_io(
        Queue::create(&below, Options::new(4, 8)),
        libc::ENOTDIR,
        "create below a file",
    );
    assert_io(
        Queue::open_or_create(&below, Options::new(4, 8)),
        libc::ENOTDIR,
        "open_or_create below a file",
    );
    assert_io(Queue::unlink(&below), libc::ENOTDIR, "unlink below a file");
    // A name longer than NAME_MAX (255 bytes): ENAMETOOLONG, from open(2) and from link(2)
    // (create writes its temporary file under a short name first, then removes it).
    let long = dir.path().join("q".repeat(256));
    assert_io(
        Queue::open(&long),
        libc::ENAMETOOLONG,
        "open an overlong name",
    );
    assert_io(
        Queue::create(&long, Options::new(4, 8)),
        libc::ENAMETOOLONG,
        "create an overlong name",
    );
    assert_eq!(
        names(dir.path()),
        ["plain-file"],
        "a failed create left a file"
    );
}

/// Deterministic pseudo-random bytes (xorshift), so a failure reproduces.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn a_file_of_random_bytes_is_corrupt() {
    let dir = common::tempdir();
    let path = dir.path().join("noise");
    let g = Geometry::new(64, 64).unwrap();
    for (seed, len) in [
        (1, 1),
        (2, 1919),
        (3, 1920),
        (4, 4096),
        (5, g.file_len as usize),
    ] {
        std::fs::write(&path, noise(len, seed)).unwrap();
        assert_corrupt(&path, &format!("{len} random bytes"));
    }
}

#[test]
fn a_file_with_the_wrong_magic_is_corrupt() {
    let dir = common::tempdir();
    let path = fresh(dir.path(), "q", 4, 8);
    let mut magic = MAGIC;
    magic[7] ^= 0x20;
    patch(&path, identity::MAGIC, &magic);
    assert_corrupt(&path, "wrong magic");
}

#[test]
fn a_header_capacity_that_disagrees_with_the_file_size_is_corrupt() {
    let dir = common::tempdir();
    let g128 = Geometry::new(128, 64).unwrap();
    // The capacity alone changed: the header's own file length no longer matches.
    let path = fresh(dir.path(), "alone", 64, 64);
    patch(&path, identity::CAPACITY, &128u32.to_ne_bytes());
    assert_corrupt(&path, "capacity 128 in a 64-slot file");
    // The header consistently describes 128 slots, but the file holds 64.
    let path = fresh(dir.path(), "consistent", 64, 64);
    patch(&path, identity::CAPACITY, &128u32.to_ne_bytes());
    patch(&path, identity::FILE_LEN, &g128.file_len.to_ne_bytes());
    assert_corrupt(&path, "a 128-slot header on a 64-slot file");
    // Another capacity than the file holds, zero, and far too large.
    for capacity in [63u32, 0, u32::MAX] {
        let path = fresh(dir.path(), &format!("cap{capacity}"), 64, 64);
        patch(&path, identity::CAPACITY, &capacity.to_ne_bytes());
        assert_corrupt(&path, &format!("capacity {capacity}"));
    }
}

#[test]
fn header_sizes_and_offsets_that_disagree_with_the_geometry_are_corrupt() {
    let dir = common::tempdir();
    let cases: [(&str, u64, Vec<u8>); 6] = [
        (
            "max message size",
            identity::MAX_MESSAGE_SIZE,
            (1u32 << 30).to_ne_bytes().to_vec(),
        ),
        (
            "slot stride",
            identity::SLOT_STRIDE,
            64u32.to_ne_bytes().to_vec(),
        ),
        (
            "participants",
            identity::PARTICIPANTS,
            1u32.to_ne_bytes().to_vec(),
        ),
        (
            "participants offset",
            identity::PARTICIPANTS_OFFSET,
            0u64.to_ne_bytes().to_vec(),
        ),
        (
            "slots offset",
            identity::SLOTS_OFFSET,
            (1u64 << 40).to_ne_bytes().to_vec(),
        ),
        (
            "file length",
            identity::FILE_LEN,
            u64::MAX.to_ne_bytes().to_vec(),
        ),
    ];
    for (name, offset, bytes) in cases {
        let path = fresh(dir.path(), name, 64, 64);
        patch(&path, offset, &bytes);
        assert_corrupt(&path, name);
    }
}

#[test]
fn a_file_of_another_layout_version_is_incompatible() {
    let dir = common::tempdir();
    for version in [0, VERSION + 1, u32::MAX] {
        let path = fresh(dir.path(), &format!("v{version}"), 4, 8);
        patch(&path, identity::VERSION, &version.to_ne_bytes());
        let e = open_err(&path);
        assert!(
            matches!(e, Error::Incompatible { ref found, .. } if found.contains(&version.to_string())),
            "version {version}: {e:?}"
        );
    }
}

#[test]
fn a_file_of_another_platform_is_incompatible() {
    let dir = common::tempdir();
    let path = fresh(dir.path(), "q", 4, 8);
    let mut tag = [0u8; 4];
    OpenOptions::new()
        .read(true)
        .open(&path)
        .unwrap()
        .read_exact_at(&mut tag, identity::PLATFORM)
        .unwrap();
    let tag = u32::from_ne_bytes(tag);
    // The other byte order, and half the pointer width.
    let other_endian = tag ^ (u32::from(b'L' ^ b'B') << 24);
    let other_width = (tag & !0xFF) | ((tag & 0xFF) / 2);
    for foreign in [other_endian, other_width] {
        assert_ne!(foreign, tag);
        patch(&path, identity::PLATFORM, &foreign.to_ne_bytes());
        let e = open_err(&path);
        assert!(
            matches!(e, Error::Incompatible { .. }),
            "{foreign:#x}: {e:?}"
        );
    }
}

/// A queue of capacity 4 and maximum message size 16 holding `a`, `b`, `c`, whose first
/// message's length field was overwritten with `len` through plain file I/O while the queue was
/// open (as a foreign process would).
fn queue_with_bad_length(dir: &Path, len: u32) -> Queue {
    let path = dir.join(format!("len{len}"));
    let q = Queue::create(&path, Options::new(4, 16)).unwrap();
    for m in [b"a", b"b", b"c"] {
        q.try_send(m).unwrap();
    }
    let g = Geometry::new(4, 16).unwrap();
    patch(&path, g.slots_offset + SLOT_LEN, &len.to_ne_bytes());
    q
}

/// Checks that the damaged message was consumed with `Corrupt` and the queue still works: `rest`
/// are what the receive calls got after it.
fn assert_recovers(q: &Queue, rest: &[&[u8]]) {
    let mut buf = [0u8; 16];
    let mut got: Vec<Vec<u8>> = rest.iter().map(|m| m.to_vec()).collect();
    while let Ok(n) = q.try_recv(&mut buf) {
        got.push(buf[..n].to_vec());
    }
    assert_eq!(got, [b"b".to_vec(), b"c".to_vec()]);
    q.try_send(b"after").unwrap();
    let n = q.try_recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"after");
    let s = q.stats();
    assert_eq!((s.sent, s.received, s.len), (4, 4, 0));
}

#[test]
fn a_committed_message_longer_than_the_maximum_is_corrupt_for_try_recv_and_the_queue_recovers() {
    let dir = common::tempdir();
    for len in [17, u32::MAX] {
        let q = queue_with_bad_length(dir.path(), len);
        // A buffer of the full maximum size: the length is wrong, not the buffer too small.
        let mut buf = [0u8; 16];
        let e = q.try_recv(&mut buf).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "len {len}: {e:?}");
        assert_recovers(&q, &[]);
    }
}

#[test]
fn a_committed_message_longer_than_the_maximum_is_corrupt_for_in_place_and_batch_receives() {
    let dir = common::tempdir();
    let q = queue_with_bad_length(dir.path(), 17);
    let e = q.try_recv_in_place().map(|m| m.to_vec()).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
    assert_recovers(&q, &[]);

    // A batch delivers the good messages around the bad one, then reports it.
    let dir = common::tempdir();
    let q = queue_with_bad_length(dir.path(), 1 << 20);
    let mut got = Vec::new();
    let e = q.try_recv_batch(8, |m| got.push(m.to_vec())).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
    assert_eq!(got, [b"b".to_vec(), b"c".to_vec()]);
    q.try_send(b"x").unwrap();
    q.try_send(b"y").unwrap();
    let mut buf = [0u8; 16];
    for expected in [b"x", b"y"] {
        let n = q.try_recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], expected);
    }
}

// ---- Errors of the send and receive calls ------------------------------------------------------

#[test]
fn a_message_longer_than_the_maximum_is_too_large_and_nothing_is_sent() {
    let dir = common::tempdir();
    let q = Queue::create(dir.path().join("q"), Options::new(4, 8)).unwrap();
    let big = [7u8; 9];
    let too_large = |r: shmq::Result<()>| matches!(r, Err(Error::TooLarge { len: 9, max: 8 }));
    assert!(too_large(q.try_send(&big)));
    assert!(too_large(q.send(&big)));
    assert!(too_large(q.send_timeout(&big, Duration::from_millis(1))));
    assert!(too_large(q.try_send_batch(&[&b"ok"[..], &big]).map(drop)));
    assert!(too_large(q.send_batch(&[&big[..]]).map(drop)));
    assert_eq!(q.stats().sent, 0, "nothing is sent");
    // Committing too long an in-place message refuses it and cancels the slot.
    let slot = q.try_reserve().unwrap();
    assert!(too_large(slot.commit(9)));
    let mut buf = [0u8; 8];
    assert!(matches!(q.try_recv(&mut buf), Err(Error::Empty)));
    let s = q.stats();
    assert_eq!((s.cancelled_sends, s.len), (1, 0));
}

#[test]
fn a_receive_buffer_too_small_is_refused_and_nothing_is_consumed() {
    let dir = common::tempdir();
    let q = Queue::create(dir.path().join("q"), Options::new(4, 16)).unwrap();
    q.try_send(b"twelve bytes").unwrap();
    let mut small = [0u8; 11];
    let needed = |r: shmq::Result<usize>| matches!(r, Err(Error::BufferTooSmall { needed: 12 }));
    assert!(needed(q.try_recv(&mut small)));
    assert!(needed(q.recv(&mut small)));
    assert!(needed(q.recv_timeout(&mut small, Duration::from_millis(1))));
    assert!(needed(q.try_recv(&mut [])));
    let s = q.stats();
    assert_eq!((s.received, s.len), (0, 1), "nothing is consumed");
    let mut buf = [0u8; 12];
    assert_eq!(q.try_recv(&mut buf).unwrap(), 12);
    assert_eq!(&buf, b"twelve bytes");
}

#[test]
fn a_full_queue_is_full_and_an_empty_one_is_empty() {
    let dir = common::tempdir();
    let q = Queue::create(dir.path().join("q"), Options::new(2, 8)).unwrap();
    let mut buf = [0u8; 8];
    assert!(matches!(q.try_recv(&mut buf), Err(Error::Empty)));
    assert!(matches!(q.try_recv_in_place().map(drop), Err(Error::Empty)));
    assert!(matches!(q.try_recv_batch(4, |_| ()), Err(Error::Empty)));
    q.try_send(b"1").unwrap();
    q.try_send(b"2").unwrap();
    assert!(matches!(q.try_send(b"3"), Err(Error::Full)));
    assert!(matches!(q.try_reserve().map(drop), Err(Error::Full)));
    assert!(matches!(q.try_send_batch(&[b"3"]), Err(Error::Full)));
    assert_eq!(q.stats().sent, 2);
}

#[test]
fn a_wait_that_outlasts_its_timeout_is_timeout() {
    let dir = common::tempdir();
    let q = Queue::create(dir.path().join("q"), Options::new(2, 8)).unwrap();
    let t = Duration::from_millis(20);
    let mut buf = [0u8; 8];
    assert!(matches!(q.recv_timeout(&mut buf, t), Err(Error::Timeout)));
    assert!(matches!(
        q.recv_in_place_timeout(t).map(drop),
        Err(Error::Timeout)
    ));
    assert!(matches!(
        q.recv_batch_timeout(2, t, |_| ()),
        Err(Error::Timeout)
    ));
    q.try_send(b"1").unwrap();
    q.try_send(b"2").unwrap();
    assert!(matches!(q.send_timeout(b"3", t), Err(Error::Timeout)));
    assert!(matches!(
        q.reserve_timeout(t).map(drop),
        Err(Error::Timeout)
    ));
    let s = q.stats();
    assert_eq!((s.sent, s.received), (2, 0));
}

#[test]
fn a_closed_queue_refuses_sends_and_is_closed_once_drained() {
    let dir = common::tempdir();
    let q = Queue::create(dir.path().join("q"), Options::new(4, 8)).unwrap();
    q.try_send(b"last").unwrap();
    assert!(q.close());
    assert!(!q.close(), "closing twice reports it was closed already");
    assert!(matches!(q.try_send(b"x"), Err(Error::Closed)));
    assert!(matches!(q.send(b"x"), Err(Error::Closed)));
    assert!(matches!(q.try_reserve().map(drop), Err(Error::Closed)));
    assert!(matches!(q.send_batch(&[b"x"]), Err(Error::Closed)));
    let mut buf = [0u8; 8];
    assert_eq!(q.recv(&mut buf).unwrap(), 4);
    assert!(matches!(q.try_recv(&mut buf), Err(Error::Closed)));
    assert!(matches!(q.recv(&mut buf), Err(Error::Closed)));
    assert!(matches!(
        q.recv_timeout(&mut buf, Duration::from_secs(5)),
        Err(Error::Closed)
    ));
    assert!(matches!(q.recv_in_place().map(drop), Err(Error::Closed)));
    assert!(matches!(q.recv_batch(4, |_| ()), Err(Error::Closed)));
    // Another handle, opened after the close, sees it too.
    let other = Queue::open(q.path()).unwrap();
    assert!(other.is_closed());
    assert!(matches!(other.try_send(b"x"), Err(Error::Closed)));
}

// ---- Arbitrary bytes ---------------------------------------------------------------------------

/// The bytes of a fresh queue file of capacity 4 and maximum message size 16.
fn valid_file() -> Vec<u8> {
    let dir = common::tempdir();
    std::fs::read(fresh(dir.path(), "q", 4, 16)).unwrap()
}

/// Opens `bytes` as a queue file: `open` must give `Ok` or a typed error; if it opens, the
/// queue must work.
fn open_bytes(dir: &Path, bytes: &[u8]) -> Result<(), TestCaseError> {
    let path = dir.join("q");
    std::fs::write(&path, bytes).unwrap();
    let opened = Queue::open(&path);
    if let Ok(q) = opened {
        q.try_send(b"works").unwrap();
        let mut buf = [0u8; 16];
        prop_assert_eq!(q.try_recv(&mut buf).unwrap(), 5);
    }
    std::fs::remove_file(&path).unwrap();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_over_the_identity_block_never_panic_open(
        edits in prop::collection::vec((0..identity::LEN, any::<u8>()), 1..24),
        whole in prop::option::of(prop::collection::vec(any::<u8>(), identity::LEN)),
    ) {
        let mut bytes = valid_file();
        if let Some(whole) = whole {
            bytes[..identity::LEN].copy_from_slice(&whole);
        }
        for (at, b) in edits {
            bytes[at] = b;
        }
        let dir = common::tempdir();
        open_bytes(dir.path(), &bytes)?;
    }

    #[test]
    fn arbitrary_identity_fields_never_panic_open(
        field in 0..8usize,
        value in prop_oneof![any::<u64>(), 0..70_000u64],
        len_delta in prop_oneof![Just(0i64), -20_000..20_000i64],
    ) {
        let offsets = [
            identity::CAPACITY, identity::MAX_MESSAGE_SIZE, identity::SLOT_STRIDE,
            identity::PARTICIPANTS, identity::PARTICIPANTS_OFFSET, identity::SLOTS_OFFSET,
            identity::FILE_LEN, identity::VERSION,
        ];
        let mut bytes = valid_file();
        let at = offsets[field] as usize;
        if at >= identity::PARTICIPANTS_OFFSET as usize {
            bytes[at..at + 8].copy_from_slice(&value.to_ne_bytes());
        } else {
            bytes[at..at + 4].copy_from_slice(&(value as u32).to_ne_bytes());
        }
        let len = (bytes.len() as i64 + len_delta).max(0) as usize;
        bytes.resize(len, 0);
        let dir = common::tempdir();
        open_bytes(dir.path(), &bytes)?;
    }

    #[test]
    fn arbitrary_file_contents_never_panic_open(
        magic in any::<bool>(),
        version in any::<bool>(),
        mut bytes in prop::collection::vec(any::<u8>(), 0..4096),
    ) {
        if magic && bytes.len() >= 8 {
            bytes[..8].copy_from_slice(&MAGIC);
        }
        if version && bytes.len() >= 12 {
            bytes[8..12].copy_from_slice(&VERSION.to_ne_bytes());
        }
        let dir = common::tempdir();
        open_bytes(dir.path(), &bytes)?;
    }
}
