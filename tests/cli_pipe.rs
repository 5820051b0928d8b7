// SPDX-License-Identifier: MIT OR Apache-2.0
//! `shmq recv` writing into pipes and sockets whose readers stop early, are killed or read
//! slowly, and the command line's refusals of negative durations and special mode bits; all by
//! running the built binary as child processes (and real `sh`/`head` where a shell pipeline is
//! the point) on queue files in a temporary directory.

#[path = "common/cli.rs"]
mod cli_common;

use cli_common::*;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

#[test]
fn negative_timeouts_are_refused_as_negative_with_a_usage_error() {
    let (_dir, path) = queue(2, 8);
    for (args, shown) in [
        (&["--timeout", "-1"][..], "`-1` is negative"),
        (&["--timeout=-1s"][..], "`-1s` is negative"),
        (&["--timeout=-0.5"][..], "`-0.5` is negative"),
        (&["--timeout=-250ms"][..], "`-250ms` is negative"),
    ] {
        shmq(&at("recv", &path, args), b"").assert_usage_error(&["--timeout", shown]);
    }
    // A missing value followed by another option is still reported as missing.
    shmq(&at("recv", &path, &["--timeout", "--count", "1"]), b"")
        .assert_usage_error(&["a value is required for '--timeout"]);
}

#[test]
fn create_takes_permission_bits_only_and_refuses_setuid_setgid_and_sticky() {
    let dir = tempfile::tempdir().unwrap();
    for mode in ["7777", "4600", "2600", "1600", "0o4600"] {
        let path = dir.path().join(format!("q{mode}"));
        let args = ["--capacity", "2", "--max-message-size", "8", "--mode", mode];
        shmq(&at("create", &path, &args), b"")
            .assert_usage_error(&["--mode", "setuid, setgid or sticky"]);
        assert!(!path.exists(), "--mode {mode} left a file");
    }
    // Plain permission bits are taken as given. (Not 777: bits for "other" are a separate
    // matter, refused unless asked for.)
    let path = dir.path().join("q660");
    let args = [
        "--capacity",
        "2",
        "--max-message-size",
        "8",
        "--mode",
        "0660",
    ];
    shmq(&at("create", &path, &args), b"").assert_ok();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(
        mode & !0o660 & 0o7777,
        0,
        "{mode:o}: at most 0660 (less the umask)"
    );
}

/// `first..=last` as lines of text, for `shmq send`.
fn numbered(first: u32, last: u32) -> Vec<u8> {
    (first..=last)
        .map(|i| format!("{i}\n"))
        .collect::<String>()
        .into_bytes()
}

/// Runs the shell pipeline `shmq recv PATH ARGS... | READER` to completion (`sh -c`, with the
/// path and the binary passed as arguments, not spliced into the script).
fn recv_into(path: &Path, args: &str, reader: &str) -> Run {
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(format!("\"$0\" recv \"$1\" {args} | {reader}"))
        .arg(BIN)
        .arg(path);
    run(sh, b"")
}

/// Receives every message left in the queue at `path` with the library, sorted by payload, each
/// with its delivery count; fails if fewer than `expected` arrive within [`LIMIT`].
fn drain(path: &Path, expected: usize) -> Vec<(String, u32)> {
    let queue = shmq::Queue::open(path).unwrap();
    let mut buf = vec![0u8; queue.max_message_size()];
    let mut got = Vec::new();
    while got.len() < expected {
        let meta = queue.recv_meta_timeout(&mut buf, LIMIT).unwrap();
        let text = String::from_utf8(buf[..meta.len].to_vec()).unwrap();
        got.push((text, meta.deliveries));
    }
    assert!(matches!(queue.try_recv(&mut buf), Err(shmq::Error::Empty)));
    got.sort_by_key(|(text, _)| text.parse::<u64>().unwrap());
    got
}

#[test]
fn recv_into_head_prints_what_head_reads_and_leaves_every_other_message_queued() {
    for (lines, queued) in [(1, 5), (3, 10)] {
        let (_dir, path) = queue(16, 64);
        shmq(&at("send", &path, &[]), &numbered(1, queued)).assert_ok();
        let run = recv_into(&path, "", &format!("head -n {lines}"));
        assert_eq!(
            run.assert_ok().stdout,
            numbered(1, lines),
            "head -n {lines}"
        );

        // The message written after head's last line was never read: it went back to the
        // queue, redelivered once; the ones not yet claimed are untouched.
        let json = stat_json(&path);
        assert_eq!(json["len"], queued - lines, "head -n {lines}: {json}");
        assert_eq!(json["redelivered"], 1, "head -n {lines}: {json}");
        let count = (queued - lines).to_string();
        let rest = shmq(
            &at("recv", &path, &["--count", &count, "--timeout", "10s"]),
            b"",
        );
        let mut got: Vec<u32> = String::from_utf8(rest.assert_ok().stdout.clone())
            .unwrap()
            .lines()
            .map(|line| line.parse().unwrap())
            .collect();
        got.sort();
        assert_eq!(got, (lines + 1..=queued).collect::<Vec<_>>());
        let json = stat_json(&path);
        assert_eq!(
            (json["len"].as_u64(), json["redelivered"].as_u64()),
            (Some(0), Some(1))
        );
    }
}

#[test]
fn the_message_head_left_unread_comes_back_on_its_second_delivery() {
    let (_dir, path) = queue(16, 64);
    shmq(&at("send", &path, &[]), &numbered(1, 5)).assert_ok();
    assert_eq!(recv_into(&path, "", "head -1").assert_ok().stdout, b"1\n");
    let got = drain(&path, 4);
    let expected: Vec<(String, u32)> = [(2, 2), (3, 1), (4, 1), (5, 1)]
        .iter()
        .map(|&(n, deliveries)| (n.to_string(), deliveries))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn release_on_write_keeps_the_fast_batches_and_loses_what_head_leaves_in_the_pipe() {
    let (_dir, path) = queue(16, 64);
    shmq(&at("send", &path, &[]), &numbered(1, 5)).assert_ok();
    // The five ready messages go out as one batch in one write; head reads them all at once,
    // prints the first and exits: the other four were released, unread. This is the risk the
    // flag documents.
    let run = recv_into(&path, "--release-on-write", "head -1");
    assert_eq!(run.assert_ok().stdout, b"1\n");
    let json = stat_json(&path);
    assert_eq!(
        (json["len"].as_u64(), json["redelivered"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(json["received"], 5, "{json}");
}

/// Spawns `shmq recv PATH ARGS...` writing into `stdout`.
fn spawn_recv(path: &Path, args: &[&str], stdout: impl Into<Stdio>) -> Child {
    command(&at("recv", path, args))
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for a `shmq recv` child to exit and asserts that it succeeded with nothing on stderr.
fn assert_exits_quietly(mut child: Child) {
    let status = wait_limited(&mut child);
    let mut stderr = String::new();
    let mut err = child.stderr.take().unwrap();
    err.read_to_string(&mut stderr).unwrap();
    assert!(status.success(), "{status:?}: {stderr}");
    assert_eq!(stderr, "");
}

#[test]
fn a_reader_killed_with_a_message_unread_in_the_pipe_loses_nothing() {
    let (_dir, path) = queue(16, 64);
    shmq(&at("send", &path, &[]), &numbered(1, 5)).assert_ok();
    // The reader prints two lines, then keeps the pipe open without reading.
    let mut reader = Command::new("sh")
        .args(["-c", "head -n 2; exec sleep 600"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let receiver = spawn_recv(&path, &[], reader.stdin.take().unwrap());
    let mut printed = String::new();
    let mut out = reader.stdout.take().unwrap();
    // `sleep` keeps the reader's stdout open, so read exactly the two lines.
    let mut byte = [0u8; 1];
    while printed.matches('\n').count() < 2 {
        out.read_exact(&mut byte).unwrap();
        printed.push(byte[0] as char);
    }
    assert_eq!(printed, "1\n2\n");
    // recv has written the third message and waits for it to be read.
    let queue = shmq::Queue::open(&path).unwrap();
    wait_until("recv claims the third message", || {
        queue.stats().received == 3
    });
    reader.kill().unwrap(); // SIGKILL, with "3" unread in the pipe
    reader.wait().unwrap();
    assert_exits_quietly(receiver);

    let got = drain(&path, 3);
    let expected: Vec<(String, u32)> = [(3, 2), (4, 1), (5, 1)]
        .iter()
        .map(|&(n, deliveries)| (n.to_string(), deliveries))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(queue.stats().redelivered, 1);
}

/// CPU time (user + system) `pid` has used so far, from `/proc/PID/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses and may hold spaces): utime and
    // stime are the 12th and 13th, in clock ticks.
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

#[test]
fn recv_waiting_for_a_reader_that_does_not_read_sleeps_and_a_kill_there_loses_nothing() {
    let (_dir, path) = queue(16, 64);
    shmq(&at("send", &path, &[]), &numbered(1, 5)).assert_ok();
    let (reader, writer) = std::io::pipe().unwrap();
    let mut receiver = spawn_recv(&path, &[], writer);
    let queue = shmq::Queue::open(&path).unwrap();
    wait_until("recv claims the first message", || {
        queue.stats().received == 1
    });

    // The line is in the pipe, unread: recv waits, and waiting is mostly sleeping. A busy
    // loop would use most of a core over the second; naps of at most 10 ms cost about a
    // hundred wake-ups, a few milliseconds (the clock ticks every 10 ms).
    let before = cpu_time(receiver.id());
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_time(receiver.id()) - before;
    assert!(
        used < Duration::from_millis(250),
        "recv used {used:?} of CPU waiting"
    );
    assert_eq!(
        queue.stats().received,
        1,
        "recv claimed more while one is unread"
    );

    // Killed there, it loses nothing: the unread message comes back on its second delivery.
    receiver.kill().unwrap();
    receiver.wait().unwrap();
    drop(reader);
    let got = drain(&path, 5);
    let expected: Vec<(String, u32)> = [(1, 2), (2, 1), (3, 1), (4, 1), (5, 1)]
        .iter()
        .map(|&(n, deliveries)| (n.to_string(), deliveries))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn a_slow_reader_gets_every_message_in_order_one_at_a_time() {
    let (_dir, path) = queue(16, 64);
    shmq(&at("send", &path, &[]), &numbered(1, 8)).assert_ok();
    let (reader, writer) = std::io::pipe().unwrap();
    let receiver = spawn_recv(&path, &["--count", "8"], writer);
    let queue = shmq::Queue::open(&path).unwrap();
    let mut reader = std::io::BufReader::new(reader);
    for i in 1..=8u64 {
        // Before the reader reads line i, recv holds only message i: claimed, not released.
        wait_until("recv claims the next message", || {
            queue.stats().received == i
        });
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            queue.stats().received,
            i,
            "recv claimed beyond the unread line"
        );
        assert_eq!(queue.stats().len, 8 - i, "the unread message was released");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
        assert_eq!(line, format!("{i}\n"));
    }
    assert_exits_quietly(receiver);
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
}

#[test]
fn many_messages_and_ones_larger_than_the_pipe_all_arrive_whole_and_in_order() {
    const COUNT: u32 = 20_000;
    const BIG: usize = 200_000; // over three times a pipe's 64 KiB buffer
    let (_dir, path) = queue(64, 256 * 1024);
    // Every 5000th message is big; the rest are their numbers. A sender runs alongside.
    let message = |i: u32| match i % 5000 {
        0 => vec![b'0' + (i / 5000 % 10) as u8; BIG],
        _ => i.to_string().into_bytes(),
    };
    let mut input = Vec::new();
    for i in 1..=COUNT {
        input.extend(message(i));
        input.push(b'\n');
    }
    let mut sender = command(&at("send", &path, &[]))
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_sender = sender.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || to_sender.write_all(&input).unwrap());
    let count = COUNT.to_string();
    let run = shmq(&at("recv", &path, &["--count", &count]), b"");
    feeder.join().unwrap();
    assert!(wait_limited(&mut sender).success());
    let mut expected = Vec::new();
    for i in 1..=COUNT {
        expected.extend(message(i));
        expected.push(b'\n');
    }
    assert!(run.assert_ok().stdout == expected, "output differs");
    let json = stat_json(&path);
    assert_eq!(
        (json["len"].as_u64(), json["redelivered"].as_u64()),
        (Some(0), Some(0))
    );
}

#[test]
fn a_unix_socket_reader_that_stops_early_leaves_the_rest_queued() {
    let (_dir, path) = queue(16, 64);
    shmq(&at("send", &path, &[]), &numbered(1, 5)).assert_ok();
    let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let receiver = spawn_recv(&path, &[], std::os::fd::OwnedFd::from(theirs));
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while byte[0] != b'\n' {
        ours.read_exact(&mut byte).unwrap();
        line.push(byte[0]);
    }
    assert_eq!(line, b"1\n");
    // Once recv has claimed the second message it has released the first, read. Then the
    // reader goes away with "2" unread.
    let queue = shmq::Queue::open(&path).unwrap();
    wait_until("recv claims the second message", || {
        queue.stats().received == 2
    });
    drop(ours);
    assert_exits_quietly(receiver);
    let got = drain(&path, 4);
    let expected: Vec<(String, u32)> = [(2, 2), (3, 1), (4, 1), (5, 1)]
        .iter()
        .map(|&(n, deliveries)| (n.to_string(), deliveries))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn into_a_regular_file_every_message_is_written_and_released() {
    let (dir, path) = queue(16, 64);
    shmq(&at("send", &path, &[]), &numbered(1, 10)).assert_ok();
    let out = dir.path().join("out");
    let file = std::fs::File::create(&out).unwrap();
    assert_exits_quietly(spawn_recv(&path, &["--count", "10"], file));
    assert_eq!(std::fs::read(&out).unwrap(), numbered(1, 10));
    let json = stat_json(&path);
    assert_eq!(
        (json["len"].as_u64(), json["redelivered"].as_u64()),
        (Some(0), Some(0))
    );
}
