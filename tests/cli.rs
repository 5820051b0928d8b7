// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `shmq` command's contract, tested by running the built binary as child processes on queue
//! files in a temporary directory: names, outputs, exit codes, one-line errors, and how `send`
//! and `recv` behave with real pipes and real peers.

#[path = "common/cli.rs"]
mod cli_common;

use cli_common::*;
use shmq::{OnConsumerDeath, Queue};
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

#[test]
fn create_makes_a_private_queue_file_and_refuses_an_existing_path() {
    let (dir, path) = queue(8, 64);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    shmq(
        &at(
            "create",
            &path,
            &["--capacity", "8", "--max-message-size", "64"],
        ),
        b"",
    )
    .assert_one_line_error(1, "already exists");

    let shared = dir.path().join("shared");
    shmq(
        &at(
            "create",
            &shared,
            &[
                "--capacity",
                "8",
                "--max-message-size",
                "64",
                "--mode",
                "640",
            ],
        ),
        b"",
    )
    .assert_ok();
    let mode = std::fs::metadata(&shared).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o640);
}

#[test]
fn invalid_options_fail_with_one_line_exit_1_and_unparsable_ones_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    let create = |rest: &[&str]| shmq(&at("create", &path, rest), b"");
    // Parsed, but refused by the queue.
    create(&["--capacity", "16777217", "--max-message-size", "64"])
        .assert_one_line_error(1, "capacity must be from 1 to 16777216");
    create(&["--capacity", "0", "--max-message-size", "64"]).assert_one_line_error(1, "invalid");
    create(&["--capacity", "8", "--max-message-size", "0"]).assert_one_line_error(1, "invalid");
    // Not parsable.
    create(&["--capacity", "many", "--max-message-size", "64"])
        .assert_one_line_error(2, "--capacity");
    create(&["--capacity", "8"]).assert_one_line_error(2, "--max-message-size");
    create(&["--capacity", "8", "--max-message-size", "64", "--mode", "9"])
        .assert_one_line_error(2, "--mode");
    assert!(!path.exists(), "a failed create left a file");

    shmq(&["frobnicate"], b"").assert_one_line_error(2, "frobnicate");
    shmq(&["recv"], b"").assert_one_line_error(2, "PATH");
    shmq(&at("recv", &path, &["--count", "x"]), b"").assert_one_line_error(2, "--count");
    shmq(&at("recv", &path, &["--timeout", "1x"]), b"").assert_one_line_error(2, "--timeout");
}

#[test]
fn help_documents_the_exit_statuses() {
    let run = shmq(&["--help"], b"");
    run.assert_ok();
    let help = run.stdout();
    for needle in [
        "Exit status",
        "1  error",
        "2  usage error",
        "create",
        "stat",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}");
    }
}

#[test]
fn lines_sent_by_one_process_are_received_unchanged_and_in_order_by_another() {
    let (_dir, path) = queue(8, 64);
    let input: &[u8] = b"first\n\nthird\r\n\xff\x00binary\nno newline at the end";
    shmq(&at("send", &path, &[]), input).assert_ok();
    let run = shmq(&at("recv", &path, &["--count", "5"]), b"");
    run.assert_ok();
    assert_eq!(
        run.stdout,
        b"first\n\nthird\r\n\xff\x00binary\nno newline at the end\n"
    );
    assert_eq!(stat_json(&path)["len"], 0);
}

#[test]
fn recv_count_takes_that_many_and_leaves_the_rest_queued() {
    let (_dir, path) = queue(8, 64);
    shmq(&at("send", &path, &[]), b"1\n2\n3\n4\n5\n").assert_ok();
    let run = shmq(&at("recv", &path, &["--count", "2"]), b"");
    assert_eq!(run.assert_ok().stdout(), "1\n2\n");
    assert_eq!(stat_json(&path)["len"], 3);
    let run = shmq(&at("recv", &path, &["--count", "3"]), b"");
    assert_eq!(run.assert_ok().stdout(), "3\n4\n5\n");
}

#[test]
fn more_lines_than_the_capacity_all_arrive_in_order() {
    let (_dir, path) = queue(4, 16);
    let input: String = (0..1000).map(|i| format!("{i}\n")).collect();
    let mut receiver = command(&at("recv", &path, &["--count", "1000"]))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = receiver.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        out.read_to_string(&mut text).unwrap();
        text
    });
    shmq(&at("send", &path, &[]), input.as_bytes()).assert_ok();
    assert!(wait_limited(&mut receiver).success());
    assert_eq!(reader.join().unwrap(), input);
}

#[test]
fn recv_timeout_exits_successfully_after_waiting_that_long_for_nothing() {
    let (_dir, path) = queue(8, 64);
    let start = Instant::now();
    let run = shmq(&at("recv", &path, &["--timeout", "300ms"]), b"");
    run.assert_ok();
    assert!(run.stdout.is_empty());
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[test]
fn recv_exits_successfully_once_the_queue_is_closed_and_drained() {
    let (_dir, path) = queue(8, 64);
    shmq(&at("send", &path, &[]), b"a\nb\n").assert_ok();
    shmq(&at("close", &path, &[]), b"").assert_ok();
    let run = shmq(&at("recv", &path, &[]), b"");
    assert_eq!(run.assert_ok().stdout(), "a\nb\n");
    // Closing again is not an error; sending is.
    shmq(&at("close", &path, &[]), b"").assert_ok();
    shmq(&at("send", &path, &[]), b"c\nd\n").assert_one_line_error(1, "line 1 not sent");
}

#[test]
fn close_wakes_a_waiting_recv_which_exits_successfully() {
    let (_dir, path) = queue(8, 64);
    let mut receiver = command(&at("recv", &path, &[]))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let q = Queue::open(&path).unwrap();
    wait_until("recv sleeps", || q.stats().recv_sleepers == 1);
    shmq(&at("close", &path, &[]), b"").assert_ok();
    assert!(wait_limited(&mut receiver).success());
}

#[test]
fn stat_reports_header_fields_and_counters_as_a_table_and_as_json() {
    let (_dir, path) = queue(8, 32);
    shmq(&at("send", &path, &[]), b"a\nb\nc\n").assert_ok();
    shmq(&at("recv", &path, &["--count", "1"]), b"").assert_ok();

    let json = stat_json(&path);
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = [
        "version",
        "platform",
        "flags",
        "capacity",
        "max_message_size",
        "file_len",
        "created_unix_ns",
        "len",
        "sent",
        "received",
        "cancelled_sends",
        "abandoned_sends",
        "abandoned_receives",
        "redelivered",
        "dead_lettered",
        "expired",
        "dead_letter_failures",
        "in_flight",
        "oldest_hold_ns",
        "visibility_timeout_ns",
        "dead_letter_queue",
        "on_consumer_death",
        "max_deliveries",
        "full_waits",
        "empty_waits",
        "send_sleepers",
        "recv_sleepers",
        "closed",
        "participants",
        "unattributed_holds",
    ];
    expected.sort_unstable();
    let mut keys_sorted = keys.clone();
    keys_sorted.sort_unstable();
    assert_eq!(keys_sorted, expected);
    assert_eq!(json["capacity"], 8);
    assert_eq!(json["max_message_size"], 32);
    assert_eq!(json["file_len"], std::fs::metadata(&path).unwrap().len());
    assert_eq!((&json["sent"], &json["received"]), (&3.into(), &1.into()));
    assert_eq!(json["len"], 2);
    assert_eq!(json["closed"], false);
    assert!(json["created_unix_ns"].as_u64().unwrap() > 0);
    assert_eq!(json["participants"], serde_json::json!([]));
    for counter in [
        "abandoned_sends",
        "abandoned_receives",
        "redelivered",
        "dead_lettered",
        "expired",
        "dead_letter_failures",
        "in_flight",
        "oldest_hold_ns",
        "visibility_timeout_ns",
    ] {
        assert_eq!(json[counter], 0, "{counter}");
    }
    assert_eq!(json["dead_letter_queue"], serde_json::Value::Null);
    assert_eq!(json["on_consumer_death"], "redeliver");
    assert_eq!(json["max_deliveries"], 0);
    // The identity words, raw: this build's layout version and platform tag, no option flags.
    assert_eq!(json["version"], shmq::VERSION);
    assert_eq!(json["platform"], shmq::PLATFORM);
    assert_eq!(json["flags"], 0);

    let run = shmq(&at("stat", &path, &[]), b"");
    let table = run.assert_ok().stdout();
    let value_of = |name: &str| {
        table
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no row {name} in\n{table}"))
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    for key in expected {
        let from_json = match &json[key] {
            // The table spells the platform tag and the flags in hex, then decoded.
            serde_json::Value::Number(n) if key == "platform" => {
                format!("{:#010x}", n.as_u64().unwrap())
            }
            serde_json::Value::Number(n) if key == "flags" => format!("{:#x}", n.as_u64().unwrap()),
            serde_json::Value::Array(a) => a.len().to_string(),
            serde_json::Value::String(text) => text.clone(),
            // No timeout, no dead-letter queue: the table says so in words.
            serde_json::Value::Null => "none".to_string(),
            serde_json::Value::Number(n)
                if key == "visibility_timeout_ns" && n.as_u64() == Some(0) =>
            {
                "none".to_string()
            }
            other => other.to_string(),
        };
        assert_eq!(value_of(key), from_json, "row {key}");
    }
    // The value column is aligned.
    let columns: Vec<usize> = table
        .lines()
        .filter(|line| !line.starts_with(' '))
        .map(|line| line.len() - line.split_at(line.find(' ').unwrap()).1.trim_start().len())
        .collect();
    assert!(columns.windows(2).all(|w| w[0] == w[1]), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l == format!("{:<23}0 (unlimited)", "max_deliveries")),
        "{table}"
    );
    let endian = if cfg!(target_endian = "little") {
        "little"
    } else {
        "big"
    };
    let platform = format!(
        "{:<23}{:#010x} ({endian}-endian, {}-bit)",
        "platform",
        shmq::PLATFORM,
        usize::BITS
    );
    assert!(table.lines().any(|l| l == platform), "{table}");
    assert!(
        table.lines().any(|l| l == format!("{:<23}0x0", "flags")),
        "{table}"
    );
}

#[test]
fn stat_lists_a_live_participant_and_never_shows_a_killed_one_alive() {
    let (_dir, path) = queue(8, 32);
    let mut receiver = command(&at("recv", &path, &[]))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = receiver.id();
    let entry = |json: &serde_json::Value| {
        json["participants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["pid"] == pid)
            .cloned()
    };
    wait_until("recv appears in stat", || {
        entry(&stat_json(&path)).is_some()
    });
    let live = entry(&stat_json(&path)).unwrap();
    assert_eq!(live["alive"], true);
    assert!(live["index"].is_u64());

    receiver.kill().unwrap();
    receiver.wait().unwrap();
    // The dead entry is either shown dead or already reused (by `stat`'s own open, which takes
    // the first free entry); it is never shown alive.
    if let Some(dead) = entry(&stat_json(&path)) {
        assert_eq!(dead["alive"], false);
    }
    let table = shmq(&at("stat", &path, &[]), b"").stdout();
    assert!(
        !table
            .lines()
            .any(|l| l.contains(&format!("pid {pid} ")) && l.ends_with("alive")),
        "{table}"
    );
}

#[test]
fn rm_removes_a_queue_and_refuses_what_is_not_one() {
    let (dir, path) = queue(8, 32);
    shmq(&at("rm", &path, &[]), b"").assert_ok();
    assert!(!path.exists());
    shmq(&at("rm", &path, &[]), b"").assert_one_line_error(1, "no queue at");

    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, b"precious, not a queue\n").unwrap();
    shmq(&at("rm", &notes, &[]), b"").assert_one_line_error(1, "not a queue");
    assert!(notes.exists(), "rm deleted a file that is not a queue");
    shmq(&at("rm", dir.path(), &[]), b"").assert_one_line_error(1, "not a queue");
}

#[test]
fn bad_files_give_one_line_errors_from_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let real = {
        let (_d, path) = queue(8, 64);
        std::fs::read(path).unwrap()
    };
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let random: Vec<u8> = (0..real.len() as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut wrong_version = real.clone();
    wrong_version[8..12].copy_from_slice(&99u32.to_ne_bytes());
    let cases = [
        (write("random", &random), "corrupt"),
        (write("empty", b""), "corrupt"),
        (write("header-only", &real[..100]), "corrupt"),
        (write("truncated", &real[..real.len() / 2]), "corrupt"),
        (write("wrong-version", &wrong_version), "incompatible"),
        (dir.path().join("missing"), "no queue at"),
        (dir.path().to_path_buf(), "directory"),
    ];
    for (path, needle) in &cases {
        for (cmd, rest) in [
            ("send", &[][..]),
            ("recv", &["--timeout", "1s"][..]),
            ("close", &[][..]),
            ("stat", &[][..]),
            ("stat", &["--json"][..]),
        ] {
            let run = shmq(&at(cmd, path, rest), b"hello\n");
            println!("{cmd} {}: {}", path.display(), run.stderr.trim_end());
            run.assert_one_line_error(1, needle);
        }
    }
    // Nothing was changed by the failed commands.
    assert_eq!(std::fs::read(&cases[4].0).unwrap(), wrong_version);
}

#[test]
fn a_line_longer_than_the_maximum_fails_naming_it_after_the_lines_before_were_sent() {
    let (_dir, path) = queue(8, 8);
    shmq(&at("send", &path, &[]), b"ok\n12345678\n123456789\nafter\n")
        .assert_one_line_error(1, "line 3 not sent: message of 9 bytes exceeds");
    let run = shmq(&at("recv", &path, &["--timeout", "200ms"]), b"");
    assert_eq!(run.assert_ok().stdout(), "ok\n12345678\n");
}

#[test]
fn send_waits_while_full_until_a_recv_in_another_process_frees_room() {
    let (_dir, path) = queue(2, 16);
    let mut sender = command(&at("send", &path, &[]))
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    sender
        .stdin
        .take()
        .unwrap()
        .write_all(b"1\n2\n3\n4\n5\n6\n")
        .unwrap(); // dropped here: end of input
    let q = Queue::open(&path).unwrap();
    wait_until("send sleeps on the full queue", || {
        q.stats().send_sleepers == 1
    });
    assert!(
        sender.try_wait().unwrap().is_none(),
        "send exited while full"
    );
    assert_eq!(q.stats().len, 2);

    let run = shmq(&at("recv", &path, &["--count", "6"]), b"");
    assert_eq!(run.assert_ok().stdout(), "1\n2\n3\n4\n5\n6\n");
    assert!(wait_limited(&mut sender).success());
}

/// Spawns `shmq recv PATH` with stdout and stderr piped.
fn spawn_recv(path: &Path) -> Child {
    command(&at("recv", path, &[]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` and returns its status and stderr.
fn finish(mut child: Child) -> (ExitStatus, String) {
    let status = wait_limited(&mut child);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status, stderr)
}

#[test]
fn closed_stdout_stops_recv_quietly_and_the_message_being_written_is_redelivered_later() {
    // A message larger than a pipe's buffer (64 KiB) cannot be written before its reader goes.
    const BIG: usize = 200_000;
    let (_dir, path) = queue(2, 256 * 1024);
    shmq(&at("send", &path, &[]), b"one\n").assert_ok();
    let mut receiver = spawn_recv(&path);
    // Read the first line, as `shmq recv q | head -1` does...
    let mut stdout = BufReader::new(receiver.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert_eq!(first, "one\n");
    // ...and go away while recv is writing the next message.
    let mut big = vec![b'2'; BIG];
    big.push(b'\n');
    shmq(&at("send", &path, &[]), &big).assert_ok();
    let q = Queue::open(&path).unwrap();
    wait_until("recv claims the big message", || q.stats().received == 2);
    drop(stdout);
    let (status, stderr) = finish(receiver);
    assert!(status.success(), "{status:?}");
    assert_eq!(stderr, "");

    // The big message was claimed but not fully written, so it was not released as consumed:
    // it stayed claimed by the receiver that went away, which gave it back to the queue (as
    // crash recovery would have, had it been killed). The next reader gets it whole, on its
    // second delivery; later messages reach it too.
    shmq(&at("send", &path, &[]), b"three\n").assert_ok();
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = Vec::new();
    for _ in 0..2 {
        let meta = q
            .recv_meta_timeout(&mut buf, Duration::from_secs(10))
            .expect("the unwritten message and the later one both arrive");
        got.push((buf[..meta.len].to_vec(), meta.deliveries));
    }
    got.sort_by_key(|(_, deliveries)| *deliveries);
    assert_eq!(got[0], (b"three".to_vec(), 1));
    assert_eq!(got[1], (vec![b'2'; BIG], 2));
    let stats = q.stats();
    assert_eq!((stats.redelivered, stats.len), (1, 0));
    // Nothing else is held: both slots are free again.
    q.try_send(b"four").unwrap();
    q.try_send(b"five").unwrap();
}

#[test]
fn idle_recv_exits_quietly_when_its_reader_goes_away_and_loses_nothing() {
    let (_dir, path) = queue(4, 64);
    shmq(&at("send", &path, &[]), b"one\n").assert_ok();
    let mut receiver = spawn_recv(&path);
    let mut stdout = BufReader::new(receiver.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert_eq!(first, "one\n");
    drop(stdout);
    // No further message comes: recv must notice on its own.
    let (status, stderr) = finish(receiver);
    assert!(status.success(), "{status:?}");
    assert_eq!(stderr, "");
    shmq(&at("send", &path, &[]), b"two\n").assert_ok();
    let run = shmq(
        &at("recv", &path, &["--count", "1", "--timeout", "10s"]),
        b"",
    );
    assert_eq!(run.assert_ok().stdout(), "two\n");
}

/// A temporary directory holding a fresh queue `q` created with the extra `create` flags.
fn queue_with(capacity: u32, max: u32, flags: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    let (cap, max) = (capacity.to_string(), max.to_string());
    let mut rest = vec!["--capacity", &cap, "--max-message-size", &max];
    rest.extend_from_slice(flags);
    shmq(&at("create", &path, &rest), b"").assert_ok();
    (dir, path)
}

/// The participant entry of `pid` in `stat --json`, if listed.
fn participant(json: &serde_json::Value, pid: u32) -> Option<serde_json::Value> {
    json["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == pid)
        .cloned()
}

#[test]
fn create_takes_the_consumer_death_policy_and_delivery_limit_and_stat_shows_them() {
    let (_d, default) = queue(8, 32);
    let json = stat_json(&default);
    assert_eq!(
        (&json["on_consumer_death"], &json["max_deliveries"]),
        (&"redeliver".into(), &0.into())
    );

    let (_d, drop) = queue_with(8, 32, &["--on-consumer-death", "drop"]);
    let json = stat_json(&drop);
    assert_eq!(
        (&json["on_consumer_death"], &json["max_deliveries"]),
        (&"drop".into(), &0.into())
    );
    assert_eq!(json["flags"], shmq::FLAG_DROP_ON_CONSUMER_DEATH);
    let stats = Queue::open(&drop).unwrap().stats();
    assert_eq!(stats.on_consumer_death, OnConsumerDeath::Drop);
    let table = shmq(&at("stat", &drop, &[]), b"").assert_ok().stdout();
    assert!(
        table.lines().any(|l| l
            .split_whitespace()
            .eq(["flags", "0x1", "(drop", "on", "consumer", "death)"])),
        "{table}"
    );

    let (_d, limited) = queue_with(
        8,
        32,
        &["--on-consumer-death", "redeliver", "--max-deliveries", "3"],
    );
    let json = stat_json(&limited);
    assert_eq!(
        (&json["on_consumer_death"], &json["max_deliveries"]),
        (&"redeliver".into(), &3.into())
    );
    let stats = Queue::open(&limited).unwrap().stats();
    assert_eq!(
        (stats.on_consumer_death, stats.max_deliveries),
        (OnConsumerDeath::Redeliver, 3)
    );
    let table = shmq(&at("stat", &limited, &[]), b"").assert_ok().stdout();
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().eq(["on_consumer_death", "redeliver"])),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().eq(["max_deliveries", "3"])),
        "{table}"
    );

    // Bad values and a limit that a dropping queue would ignore are usage errors; no file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    let create = |rest: &[&str]| {
        let mut args = vec!["--capacity", "8", "--max-message-size", "32"];
        args.extend_from_slice(rest);
        shmq(&at("create", &path, &args), b"")
    };
    create(&["--on-consumer-death", "requeue"]).assert_one_line_error(2, "--on-consumer-death");
    create(&["--max-deliveries", "x"]).assert_one_line_error(2, "--max-deliveries");
    create(&["--on-consumer-death", "drop", "--max-deliveries", "2"])
        .assert_one_line_error(2, "--max-deliveries applies only with");
    assert!(!path.exists(), "a refused create left a file");
}

#[test]
fn stat_lists_each_participant_with_its_role_and_liveness() {
    let (_dir, path) = queue(2, 32);
    // A receiver that has received (and waits for more)...
    shmq(&at("send", &path, &[]), b"hello\n").assert_ok();
    let mut receiver = command(&at("recv", &path, &[]))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(receiver.stdout.take().unwrap());
    let mut line = String::new();
    lines.read_line(&mut line).unwrap();
    assert_eq!(line, "hello\n");
    // ...and a sender that has sent and now waits on the full queue.
    let mut sender = command(&at("send", &path, &[]))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut input = sender.stdin.take().unwrap();
    input.write_all(b"1\n2\n3\n4\n5\n6\n").unwrap();
    let (rpid, spid) = (receiver.id(), sender.id());
    wait_until("both roles show", || {
        let json = stat_json(&path);
        participant(&json, rpid).is_some_and(|p| p["role"] == "receiver")
            && participant(&json, spid).is_some_and(|p| p["role"] == "sender")
    });
    let json = stat_json(&path);
    let r = participant(&json, rpid).unwrap();
    let s = participant(&json, spid).unwrap();
    assert_eq!(
        (&r["alive"], &r["sender"], &r["receiver"]),
        (&true.into(), &false.into(), &true.into())
    );
    assert_eq!(
        (&s["alive"], &s["sender"], &s["receiver"]),
        (&true.into(), &true.into(), &false.into())
    );
    for p in [&r, &s] {
        let keys: Vec<&String> = p.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "alive",
                "holding",
                "holding_since_unix_ns",
                "index",
                "pid",
                "receiver",
                "role",
                "sender"
            ],
            "{p}"
        );
    }
    let table = shmq(&at("stat", &path, &[]), b"").assert_ok().stdout();
    let row = |pid: u32| {
        table
            .lines()
            .find(|l| l.contains(&format!("pid {pid} ")))
            .unwrap_or_else(|| panic!("no row for pid {pid}:\n{table}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    // (A `shmq recv` into a pipe holds its last message until the reader has read it.)
    assert_eq!(row(rpid)[4..8], ["role", "receiver", "alive", "holds"]);
    assert_eq!(
        row(spid)[4..],
        ["role", "sender", "alive", "holds", "0", "slots"]
    );

    sender.kill().unwrap();
    sender.wait().unwrap();
    drop(input);
    // Dead and not yet swept (nobody has waited on the queue since): listed dead, with its role.
    let json = stat_json(&path);
    if let Some(dead) = participant(&json, spid) {
        assert_eq!(
            (&dead["alive"], &dead["role"]),
            (&false.into(), &"sender".into())
        );
        let table = shmq(&at("stat", &path, &[]), b"").assert_ok().stdout();
        assert!(
            table
                .lines()
                .any(|l| l.contains(&format!("pid {spid} ")) && l.contains(" dead ")),
            "{table}"
        );
    }
    drop(lines);
    let _ = receiver.kill();
    receiver.wait().unwrap();
}

/// Spawns `shmq args...` with `SHMQ_TEST_PAUSE=point` (the `test-hooks` pause points the tests
/// build into the binary) and waits until it has stopped there, holding its claim; returns it
/// and its pid. Feeds `stdin` (then closes it).
fn spawn_paused(args: &[&OsStr], point: &str, stdin: &[u8], dir: &Path) -> Child {
    let file = dir.join(format!("paused-{point}"));
    let _ = std::fs::remove_file(&file);
    let mut child = command(args)
        .env("SHMQ_TEST_PAUSE", point)
        .env("SHMQ_TEST_PAUSE_FILE", &file)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let want = format!("{point} {}\n", child.id());
    wait_until(&format!("shmq pauses at {point}"), || {
        assert!(
            child.try_wait().unwrap().is_none(),
            "shmq exited instead of pausing at {point}: is it built without `test-hooks`?"
        );
        std::fs::read_to_string(&file).is_ok_and(|text| text == want)
    });
    child
}

#[test]
fn a_recv_killed_holding_a_message_loses_nothing_the_next_recv_gets_it() {
    let (dir, path) = queue(8, 32);
    shmq(&at("send", &path, &[]), b"precious\nnext\n").assert_ok();
    let mut victim = spawn_paused(&at("recv", &path, &[]), "recv-claimed", b"", dir.path());
    let pid = victim.id();
    let json = stat_json(&path);
    assert_eq!(json["received"], 1, "the victim claimed the first message");
    victim.kill().unwrap(); // SIGKILL, holding "precious" claimed
    victim.wait().unwrap();

    // Both messages reach the next receiver; "next" was never blocked behind the dead claim.
    let run = shmq(
        &at("recv", &path, &["--count", "2", "--timeout", "10s"]),
        b"",
    );
    let mut got: Vec<String> = run.assert_ok().stdout().lines().map(String::from).collect();
    got.sort();
    assert_eq!(got, ["next", "precious"]);
    let json = stat_json(&path);
    assert_eq!(json["redelivered"], 1);
    assert_eq!(json["len"], 0);
    for counter in ["abandoned_sends", "abandoned_receives", "dead_lettered"] {
        assert_eq!(json[counter], 0, "{counter}");
    }
    // The dead receiver's entry was freed once nothing of it was left.
    assert!(participant(&json, pid).is_none(), "{json}");
}

/// Starts `shmq recv PATH` and returns it once it is blocked writing a message too large for
/// its stdout pipe: it holds that message, was handed its bytes (so the delivery counts), and
/// has not released it. The caller keeps the returned pipe unread.
fn recv_stuck_writing(path: &Path) -> (Child, std::process::ChildStdout) {
    let mut receiver = command(&at("recv", path, &[]))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = receiver.stdout.take().unwrap();
    // Its first byte on the pipe shows the write has begun; the rest cannot fit in the pipe.
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).unwrap();
    (receiver, stdout)
}

#[test]
fn a_dead_receivers_message_is_dropped_with_drop_policy_or_past_max_deliveries() {
    const BIG: usize = 200_000;
    let mut big = vec![b'p'; BIG];
    big.push(b'\n');
    for (flags, counter) in [
        (&["--on-consumer-death", "drop"][..], "abandoned_receives"),
        (&["--max-deliveries", "1"][..], "dead_lettered"),
    ] {
        let (_dir, path) = queue_with(4, 256 * 1024, flags);
        shmq(&at("send", &path, &[]), &big).assert_ok();
        let (mut victim, pipe) = recv_stuck_writing(&path);
        shmq(&at("send", &path, &[]), b"fine\n").assert_ok();
        victim.kill().unwrap();
        victim.wait().unwrap();
        drop(pipe);
        // "fine" comes; the poison message is gone, and waiting longer shows nothing else.
        let run = shmq(
            &at("recv", &path, &["--count", "2", "--timeout", "500ms"]),
            b"",
        );
        assert_eq!(run.assert_ok().stdout(), "fine\n", "{flags:?}");
        wait_until("the dead receiver's message is counted", || {
            stat_json(&path)[counter] == 1
        });
        let json = stat_json(&path);
        assert_eq!(json["redelivered"], 0, "{flags:?}");
        assert_eq!(json["len"], 0, "{flags:?}");
    }

    // Without a limit the same death redelivers it, to a receiver that sees the second delivery.
    let (_dir, path) = queue_with(4, 256 * 1024, &["--max-deliveries", "2"]);
    shmq(&at("send", &path, &[]), &big).assert_ok();
    let (mut victim, pipe) = recv_stuck_writing(&path);
    victim.kill().unwrap();
    victim.wait().unwrap();
    drop(pipe);
    let q = Queue::open(&path).unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let got = q
        .recv_meta_timeout(&mut buf, Duration::from_secs(10))
        .unwrap();
    assert_eq!((got.len, got.deliveries), (BIG, 2));
    assert_eq!(q.stats().redelivered, 1);
}

#[test]
fn a_send_killed_between_claim_and_publish_leaves_a_skipped_slot_not_a_stuck_queue() {
    let (dir, path) = queue(4, 32);
    let mut victim = spawn_paused(
        &at("send", &path, &[]),
        "send-claimed",
        b"lost\n",
        dir.path(),
    );
    victim.kill().unwrap();
    victim.wait().unwrap();
    // Later senders and receivers carry on: the receiver waiting at the dead claim's position
    // finds its sender dead and skips it (a tombstone)...
    shmq(&at("send", &path, &[]), b"a\nb\nc\n").assert_ok();
    let run = shmq(
        &at("recv", &path, &["--count", "3", "--timeout", "10s"]),
        b"",
    );
    assert_eq!(run.assert_ok().stdout(), "a\nb\nc\n");
    // ...and every slot is usable again: a full queue's worth goes round.
    shmq(&at("send", &path, &[]), b"d\ne\nf\ng\n").assert_ok();
    let run = shmq(
        &at("recv", &path, &["--count", "4", "--timeout", "10s"]),
        b"",
    );
    assert_eq!(run.assert_ok().stdout(), "d\ne\nf\ng\n");
    let json = stat_json(&path);
    assert_eq!(json["abandoned_sends"], 1, "{json}");
    assert_eq!((&json["sent"], &json["len"]), (&8.into(), &0.into()));
}

#[test]
fn a_send_killed_while_blocked_on_a_full_queue_does_not_wedge_it() {
    let (_dir, path) = queue(2, 16);
    let mut sender = command(&at("send", &path, &[]))
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = sender.stdin.take().unwrap();
    input.write_all(b"1\n2\n3\n").unwrap();
    let pid = sender.id();
    let q = Queue::open(&path).unwrap();
    wait_until("send sleeps on the full queue", || {
        q.stats().send_sleepers == 1
    });
    sender.kill().unwrap(); // SIGKILL while asleep, its count in the sleeper word
    sender.wait().unwrap();
    drop(input);

    // Shown dead (or already swept), never alive.
    if let Some(entry) = participant(&stat_json(&path), pid) {
        assert_eq!(
            (&entry["alive"], &entry["role"]),
            (&false.into(), &"sender".into())
        );
    }
    // The others go on: what it sent arrives, and new messages go both ways.
    let run = shmq(
        &at("recv", &path, &["--count", "2", "--timeout", "10s"]),
        b"",
    );
    assert_eq!(run.assert_ok().stdout(), "1\n2\n");
    shmq(&at("send", &path, &[]), b"x\ny\n").assert_ok();
    let run = shmq(
        &at("recv", &path, &["--count", "2", "--timeout", "10s"]),
        b"",
    );
    assert_eq!(run.assert_ok().stdout(), "x\ny\n");
    // A receiver that waits on the empty queue sweeps: the dead sender's entry is freed and its
    // sleeper count repaired, so senders stop paying for wake-ups nobody needs.
    let run = shmq(&at("recv", &path, &["--timeout", "300ms"]), b"");
    assert_eq!(run.assert_ok().stdout(), "");
    wait_until("the dead sender is swept", || {
        let json = stat_json(&path);
        participant(&json, pid).is_none() && json["send_sleepers"] == 0
    });
    let json = stat_json(&path);
    assert_eq!(
        (&json["abandoned_sends"], &json["len"]),
        (&0.into(), &0.into())
    );
}

/// The rows issue 10 measures against: each runs (the 4 + 4 processes of `shmq_tput_4p4c`
/// included), moves messages, and appears in the JSON under its contract name.
#[test]
fn bench_scaling_and_size_rows_run_and_keep_their_json_names() {
    let rows = [
        "shmq_busy_8",
        "shmq_busy_1024",
        "shmq_tput_2p2c",
        "shmq_tput_4p4c",
    ];
    let only = rows.join(",");
    let run = shmq(&["bench", "--quick", "--json", "--only", &only], b"");
    assert!(run.status.success(), "{}", run.stderr);
    let json: serde_json::Value = serde_json::from_slice(&run.stdout).expect("bench --json");
    let measured = json.as_array().expect("an array of rows");
    assert_eq!(measured.len(), rows.len(), "{json}");
    for (row, name) in measured.iter().zip(rows) {
        assert_eq!(row["name"], name, "{json}");
        let value = match row["kind"].as_str() {
            Some("rtt") => row["p50_ns"].as_f64(),
            Some("throughput") => row["msgs_per_sec"].as_f64(),
            _ => None,
        };
        assert!(value.is_some_and(|v| v > 0.0), "{name}: {row}");
    }
}

#[test]
fn create_takes_a_visibility_timeout_and_a_dead_letter_queue_and_refuses_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let dlq = dir.path().join("dlq");
    let dlq_text = dlq.to_str().unwrap();
    let (_d, path) = queue_with(
        8,
        32,
        &[
            "--visibility-timeout",
            "1.5s",
            "--dead-letter-queue",
            dlq_text,
        ],
    );
    let q = Queue::open(&path).unwrap();
    assert_eq!(q.visibility_timeout(), Some(Duration::from_millis(1500)));
    assert_eq!(q.dead_letter_queue(), Some(dlq.as_path()));
    // `stat` shows them, and a message held in place: in flight, with the age of its hold.
    q.send(b"job").unwrap();
    let held = q.try_recv_in_place().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let json = stat_json(&path);
    assert_eq!(json["visibility_timeout_ns"], 1_500_000_000u64);
    assert_eq!(json["dead_letter_queue"], dlq_text);
    assert_eq!(json["in_flight"], 1);
    assert!(
        json["oldest_hold_ns"].as_u64().unwrap() >= 10_000_000,
        "{json}"
    );
    let table = shmq(&at("stat", &path, &[]), b"").assert_ok().stdout();
    for (name, value) in [
        ("visibility_timeout_ns", "1500000000 (1.5s)"),
        ("dead_letter_queue", dlq_text),
        ("in_flight", "1"),
    ] {
        assert!(
            table.lines().any(|l| l == format!("{name:<23}{value}")),
            "{name}: {table}"
        );
    }
    drop(held);
    assert_eq!(stat_json(&path)["in_flight"], 0);

    // A relative dead-letter path is recorded absolute: whoever dead-letters a message opens it
    // from its own working directory.
    let path = dir.path().join("relative");
    let mut cmd = command(&at(
        "create",
        &path,
        &[
            "--capacity",
            "8",
            "--max-message-size",
            "32",
            "--dead-letter-queue",
            "dlq",
        ],
    ));
    cmd.current_dir(dir.path());
    run(cmd, b"").assert_ok();
    let q = Queue::open(&path).unwrap();
    assert_eq!(
        q.dead_letter_queue(),
        Some(
            std::fs::canonicalize(dir.path())
                .unwrap()
                .join("dlq")
                .as_path()
        )
    );

    let path = dir.path().join("q");
    let create = |rest: &[&str]| {
        let mut args = vec!["--capacity", "8", "--max-message-size", "32"];
        args.extend_from_slice(rest);
        shmq(&at("create", &path, &args), b"")
    };
    create(&["--visibility-timeout", "soon"]).assert_one_line_error(2, "--visibility-timeout");
    create(&["--visibility-timeout", "0"]).assert_one_line_error(1, "visibility timeout");
    create(&["--visibility-timeout", "13h"]).assert_one_line_error(1, "visibility timeout");
    let long = format!("/{}", "x".repeat(1100));
    create(&["--dead-letter-queue", &long]).assert_one_line_error(1, "dead-letter queue path");
    assert!(!path.exists(), "a refused create left a file");
}
