// SPDX-License-Identifier: MIT OR Apache-2.0
//! `shmq recv` writing into pipes and sockets whose readers stop early, are killed or read
//! slowly, and the command line's refusals of negative durations and special mode bits; all by
//! running the built binary as child processes (and real `sh`/`head` where a shell pipeline is
//! the point) on queue files in a temporary directory.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_shmq");
/// How long any child may take before the test gives up on it: generous, so that a loaded
/// machine cannot fail a test, but finite, so that a bug cannot hang the suite.
const LIMIT: Duration = Duration::from_secs(60);

/// What a finished `shmq` run left behind.
#[derive(Debug)]
struct Run {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    /// Asserts success with nothing on stderr.
    fn assert_ok(&self) -> &Self {
        assert!(self.status.success(), "failed: {self:?}");
        assert_eq!(self.stderr, "", "unexpected stderr");
        self
    }

    /// Asserts exit status 2 (usage), nothing on stdout, and exactly one line `shmq: ...` on
    /// stderr that contains each of `needles`.
    fn assert_usage_error(&self, needles: &[&str]) {
        assert_eq!(self.status.code(), Some(2), "{self:?}");
        assert!(self.stdout.is_empty(), "stdout not empty: {self:?}");
        assert!(
            self.stderr.starts_with("shmq: ") && self.stderr.lines().count() == 1,
            "not one `shmq: ` line: {:?}",
            self.stderr
        );
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "{:?} does not mention {needle:?}",
                self.stderr
            );
        }
    }
}

/// Waits for `child` to exit, killing it and failing the test after [`LIMIT`].
fn wait_limited(child: &mut Child) -> ExitStatus {
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
fn run(mut cmd: Command, stdin: &[u8]) -> Run {
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

/// `shmq args...` as a command.
fn command<S: AsRef<OsStr>>(args: &[S]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    cmd
}

/// Runs `shmq args...` with `stdin` as its input, to completion.
fn shmq<S: AsRef<OsStr>>(args: &[S], stdin: &[u8]) -> Run {
    run(command(args), stdin)
}

/// `[cmd, path, rest...]` as arguments.
fn at<'a>(cmd: &'a str, path: &'a Path, rest: &[&'a str]) -> Vec<&'a OsStr> {
    let mut args = vec![OsStr::new(cmd), path.as_os_str()];
    args.extend(rest.iter().map(|s| OsStr::new(*s)));
    args
}

/// A temporary directory holding a fresh queue `q` of `capacity` slots of `max` bytes.
fn queue(capacity: u32, max: u32) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    let (cap, max) = (capacity.to_string(), max.to_string());
    let create = ["--capacity", &cap, "--max-message-size", &max];
    shmq(&at("create", &path, &create), b"").assert_ok();
    (dir, path)
}

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
