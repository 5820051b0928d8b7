// SPDX-License-Identifier: MIT OR Apache-2.0
//! Running the built `shmq` command in the tests that drive it (tests/cli.rs, tests/cli_pipe.rs):
//! a run to completion with its input given and its output collected ([`shmq`], [`run`]), a
//! bounded wait for a child ([`wait_limited`]), the assertions on a finished [`Run`], and a queue
//! made by `shmq create` ([`queue`]).
//!
//! Included by path (`#[path = "common/cli.rs"] mod cli_common;`), since only the command's
//! tests, built with the `cli` feature, have the binary to run.

// Each test file uses only part of it.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The `shmq` binary that cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_shmq");
/// How long any child may take before the test gives up on it: generous, so that a loaded
/// machine cannot fail a test, but finite, so that a bug cannot hang the suite.
pub const LIMIT: Duration = Duration::from_secs(60);

/// What a finished `shmq` run left behind.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Asserts success with nothing on stderr.
    pub fn assert_ok(&self) -> &Self {
        assert!(self.status.success(), "shmq failed: {self:?}");
        assert_eq!(self.stderr, "", "unexpected stderr");
        self
    }

    /// Asserts exit status `code`, nothing on stdout, and exactly one line `shmq: ...` on stderr
    /// that contains `needle`.
    pub fn assert_one_line_error(&self, code: i32, needle: &str) {
        assert_eq!(self.status.code(), Some(code), "{self:?}");
        assert!(self.stdout.is_empty(), "stdout not empty: {self:?}");
        assert!(
            self.stderr.starts_with("shmq: ")
                && self.stderr.ends_with('\n')
                && self.stderr.lines().count() == 1,
            "not one `shmq: ` line: {:?}",
            self.stderr
        );
        assert!(
            self.stderr.contains(needle),
            "{:?} does not mention {needle:?}",
            self.stderr
        );
    }

    /// Asserts a usage error (exit status 2) in one `shmq: ` line that contains each of
    /// `needles`.
    pub fn assert_usage_error(&self, needles: &[&str]) {
        self.assert_one_line_error(2, "");
        for needle in needles {
            self.assert_one_line_error(2, needle);
        }
    }
}

/// `shmq args...` as a command.
pub fn command<S: AsRef<OsStr>>(args: &[S]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    cmd
}

/// Waits for `child` to exit, killing it and failing the test after [`LIMIT`].
pub fn wait_limited(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child did not exit within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `cmd` to completion with `stdin` as its input and its stdout and stderr collected.
pub fn run(mut cmd: Command, stdin: &[u8]) -> Run {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    // A child that fails early stops reading: ignore the broken pipe that gives the writer.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut buf = Vec::new();
        out.read_to_end(&mut buf).unwrap();
        buf
    });
    let stderr = std::thread::spawn(move || {
        let mut buf = String::new();
        err.read_to_string(&mut buf).unwrap();
        buf
    });
    let status = wait_limited(&mut child);
    writer.join().unwrap();
    Run {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Runs `shmq args...` with `stdin` as its input, to completion.
pub fn shmq<S: AsRef<OsStr>>(args: &[S], stdin: &[u8]) -> Run {
    run(command(args), stdin)
}

/// Polls `done` until it holds, failing the test after [`LIMIT`].
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `[cmd, path, rest...]` as arguments.
pub fn at<'a>(cmd: &'a str, path: &'a Path, rest: &[&'a str]) -> Vec<&'a OsStr> {
    let mut args = vec![OsStr::new(cmd), path.as_os_str()];
    args.extend(rest.iter().map(|s| OsStr::new(*s)));
    args
}

/// A temporary directory holding a fresh queue `q` of `capacity` slots of `max` bytes.
pub fn queue(capacity: u32, max: u32) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    let (cap, max) = (capacity.to_string(), max.to_string());
    let create = ["--capacity", &cap, "--max-message-size", &max];
    shmq(&at("create", &path, &create), b"").assert_ok();
    (dir, path)
}

/// `shmq stat --json` of the queue at `path`, parsed.
pub fn stat_json(path: &Path) -> serde_json::Value {
    let run = shmq(&at("stat", path, &["--json"]), b"");
    run.assert_ok();
    assert_eq!(run.stdout.iter().filter(|&&b| b == b'\n').count(), 1);
    serde_json::from_slice(&run.stdout).expect("stat --json prints JSON")
}
