// SPDX-License-Identifier: MIT OR Apache-2.0
//! Child processes for the multi-process tests.
//!
//! A test binary re-executes itself to run one *role* in a fresh process, so that every queue
//! operation goes through a real mapping in another address space (never threads sharing one).
//!
//! - **Parent**: [`Child::spawn`] runs
//!   `current_exe() --ignored --exact child --nocapture --test-threads=1` with the role, its arguments and a report file named in environment variables; the child's
//!   stdout and stderr go to a log file that is quoted if the child fails. [`Child::wait`] waits
//!   with a bound and returns what the child reported. A `Child` dropped while its process still
//!   runs kills it, so a failing test leaves no orphan.
//! - **Child**: every test file that spawns children has one `#[test] #[ignore] fn child()`
//!   that calls [`child_main`]. Ignored, so that a test run never counts an entry point as a
//!   passing test (CI must not pass on tests that did nothing); the parent runs it with
//!   `--ignored`. In a spawned child it runs the role, which reports with [`Role::report`] and
//!   fails by panicking (the test harness then exits non-zero). Run by hand without a role
//!   (`--ignored`), it fails, saying it is not a test.
//! - **Roles every test binary plays**: besides its file's own roles, [`child_main`] runs the
//!   child of [`paused_consumer`] (a consumer stopped holding a message, to be SIGKILLed), so a
//!   test file spawns it without a role of its own.
//!
//! Children also die with the test thread that spawned them (`PR_SET_PDEATHSIG`).

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt::Display;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Name of the entry-point test function every spawning test file defines.
pub const ENTRY: &str = "child";
const ROLE_VAR: &str = "SHMQ_TEST_ROLE";
const ARGS_VAR: &str = "SHMQ_TEST_ARGS";
const REPORT_VAR: &str = "SHMQ_TEST_REPORT";

/// A directory for queue files, removed on drop: under `/dev/shm` (where queues normally live)
/// when it exists, else the system temporary directory.
pub fn tempdir() -> tempfile::TempDir {
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix("shmq-test-");
        b
    };
    if Path::new("/dev/shm").is_dir() {
        if let Ok(dir) = builder.tempdir_in("/dev/shm") {
            return dir;
        }
    }
    builder.tempdir().expect("create a temporary directory")
}

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for every process on the host, so a child's
/// timestamps can be compared with the parent's.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, exclusively borrowed timespec; CLOCK_MONOTONIC always exists.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Polls `condition` every millisecond until it holds; panics naming `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Variables that let a test pass without a component it needs (`scripts/test` installs them
/// all): set to `1`, the test prints a `SKIPPED` line and passes where the component is missing;
/// unset, it fails naming the variable. Where the component is present the test runs either way.
pub const SKIP_ROOT_TESTS: &str = "SHMQ_SKIP_ROOT_TESTS";
/// See [`SKIP_ROOT_TESTS`]: tmux, bash, make and man for the operator tests.
pub const SKIP_OPERATOR_TOOLS: &str = "SHMQ_SKIP_OPERATOR_TOOLS";

mod skip;
#[allow(unused_imports)] // as dead_code above: each test binary uses a different part
pub use skip::{record_skip, skip_or_fail};

/// xorshift64: reproducible pseudo-random numbers from a seed that the test prints or fixes,
/// so that a failure can be replayed. The seed must not be 0 (the sequence would stay 0).
pub struct Rng(pub u64);

impl Rng {
    /// The next number of the sequence.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

static SPAWNED: AtomicUsize = AtomicUsize::new(0);

/// A child process running one role of this test binary.
pub struct Child {
    process: std::process::Child,
    label: String,
    log: PathBuf,
    report: PathBuf,
}

impl Child {
    /// Starts a process that runs `role` with `args`; its log and report files go in `dir`.
    pub fn spawn(dir: &Path, role: &str, args: &[(&str, &dyn Display)]) -> Child {
        Child::spawn_with_env(dir, role, args, &[])
    }

    /// Like [`spawn`](Self::spawn), with extra environment variables for the child (for example
    /// the crash-recovery pause point, `SHMQ_TEST_PAUSE`).
    pub fn spawn_with_env(
        dir: &Path,
        role: &str,
        args: &[(&str, &dyn Display)],
        env: &[(&str, &str)],
    ) -> Child {
        Child::spawn_under(dir, &[], role, args, env)
    }

    /// Like [`spawn_with_env`](Self::spawn_with_env), run by `launcher` (a program and its
    /// arguments, to which the child's command line is appended: `unshare --time --fork`, say);
    /// with an empty `launcher`, the same.
    pub fn spawn_under(
        dir: &Path,
        launcher: &[&str],
        role: &str,
        args: &[(&str, &dyn Display)],
        env: &[(&str, &str)],
    ) -> Child {
        let n = SPAWNED.fetch_add(1, Ordering::Relaxed);
        let label = format!("{role}#{n}");
        let log = dir.join(format!("child-{n}-{role}.log"));
        let report = dir.join(format!("child-{n}-{role}.report"));
        let encoded: Vec<String> = args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let log_file = File::create(&log).expect("create child log");
        let exe = std::env::current_exe().expect("current_exe");
        let mut command = match launcher.split_first() {
            Some((program, launcher_args)) => {
                let mut c = Command::new(program);
                c.args(launcher_args).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        let process = command
            .args([
                "--ignored",
                "--exact",
                ENTRY,
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE_VAR, role)
            .env(ARGS_VAR, encoded.join("\n"))
            .env(REPORT_VAR, &report)
            .env_remove("RUST_TEST_THREADS")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("dup log"))
            .stderr(log_file)
            .spawn()
            .expect("spawn child test process");
        Child {
            process,
            label,
            log,
            report,
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Whether the process has exited (it is reaped if so).
    pub fn has_exited(&mut self) -> bool {
        self.process.try_wait().expect("try_wait").is_some()
    }

    /// Waits at most `timeout` for the child to exit; kills it and panics if it does not.
    pub fn wait_status(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.process.try_wait().expect("try_wait") {
                return status;
            }
            if start.elapsed() > timeout {
                let _ = self.process.kill();
                let _ = self.process.wait();
                panic!(
                    "child {} did not exit within {timeout:?}; its report so far: {:?}; its log:\n{}",
                    self.label,
                    self.report_so_far(),
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits at most `timeout` for the child to exit successfully and returns its report (empty
    /// if it reported nothing). Panics, quoting the child's log, if it failed.
    pub fn wait(mut self, timeout: Duration) -> String {
        let status = self.wait_status(timeout);
        assert!(
            status.success(),
            "child {} failed ({status}); its log:\n{}",
            self.label,
            self.log_text()
        );
        // The harness ran no entry point (a `fn child()` without `#[ignore]`, which
        // `--ignored` filters out): the child did nothing, and its silence must not pass.
        assert!(
            !self.log_text().contains("running 0 tests"),
            "child {} ran no `{ENTRY}` entry point: it must be `#[test] #[ignore]` (see common)",
            self.label
        );
        std::fs::read_to_string(&self.report).unwrap_or_default()
    }

    /// What the child has reported so far (empty if nothing yet), while it may still run.
    pub fn report_so_far(&self) -> String {
        std::fs::read_to_string(&self.report).unwrap_or_default()
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill(mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }

    /// The child's log so far (its stdout and stderr), for failure messages.
    pub fn log_so_far(&self) -> String {
        self.log_text()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("(no log: {e})"))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Ok(None) = self.process.try_wait() {
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
    }
}

/// Waits for every child (each within what is left of one shared `timeout`) and returns their
/// reports in order.
pub fn wait_all(children: Vec<Child>, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    children
        .into_iter()
        .map(|c| c.wait(deadline.saturating_duration_since(Instant::now())))
        .collect()
}

/// The role a child process was started to play, with its arguments.
pub struct Role {
    name: String,
    args: HashMap<String, String>,
    report: PathBuf,
}

impl Role {
    fn from_env() -> Option<Role> {
        let name = std::env::var(ROLE_VAR).ok()?;
        let args = std::env::var(ARGS_VAR)
            .unwrap_or_default()
            .lines()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let report = PathBuf::from(std::env::var(REPORT_VAR).expect("report path"));
        Some(Role { name, args, report })
    }

    /// The role's name, as given to [`Child::spawn`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Argument `key`, parsed; panics if it is missing or does not parse.
    pub fn arg<T: FromStr>(&self, key: &str) -> T {
        let text = self
            .args
            .get(key)
            .unwrap_or_else(|| panic!("role {} has no argument {key}", self.name));
        text.parse()
            .unwrap_or_else(|_| panic!("argument {key}={text} does not parse"))
    }

    /// Argument `key` as a path.
    pub fn path(&self, key: &str) -> PathBuf {
        self.arg::<String>(key).into()
    }

    /// Replaces the report the parent reads from [`Child::wait`].
    pub fn report(&self, text: &str) {
        std::fs::write(&self.report, text).expect("write report");
    }
}

/// The body of each test file's `child` entry point: runs the role this process was spawned to
/// play. Run by hand (`--ignored`) with no role, it panics: it is not a test.
pub fn child_main(run: impl FnOnce(&Role)) {
    let Some(role) = Role::from_env() else {
        panic!("`{ENTRY}` is the entry point of child processes (see tests/common), not a test");
    };
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes integer arguments only and touches no memory of ours.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    match role.name() {
        PAUSED_CONSUMER => consume_one(&role),
        _ => run(&role),
    }
}

/// Starts a child that runs `role` with `args` and stops at the crash-recovery pause point
/// `point` (`SHMQ_TEST_PAUSE`, see `src/test_hooks.rs`), holding what it claimed there; returns
/// it once it is there (panics, quoting its log, if it is not within `bound`).
pub fn spawn_paused(
    dir: &Path,
    role: &str,
    args: &[(&str, &dyn Display)],
    point: &str,
    bound: Duration,
) -> Child {
    let pause_file = dir.join(format!("paused-{}", SPAWNED.load(Ordering::Relaxed)));
    let pause_text = pause_file.display().to_string();
    let mut child = Child::spawn_with_env(
        dir,
        role,
        args,
        &[
            ("SHMQ_TEST_PAUSE", point),
            ("SHMQ_TEST_PAUSE_FILE", &pause_text),
        ],
    );
    let line = format!("{point} {}", child.pid());
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(&pause_file).unwrap_or_default();
        if text.lines().any(|l| l == line) {
            return child;
        }
        if child.has_exited() || start.elapsed() > bound {
            panic!(
                "child {role} did not reach pause point {point}; its log:\n{}",
                child.log_so_far()
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The role of [`paused_consumer`]'s child, which [`child_main`] plays in every test binary.
const PAUSED_CONSUMER: &str = "paused-consumer";

/// Starts a consumer child on the queue at `queue` and returns it stopped at the pause point
/// `recv-claimed`, holding the next message claimed (delivered, not released); panics, quoting
/// its log, if it is not there within `bound`. SIGKILLed there, it leaves a dead consumer's
/// message for recovery (given back, dropped or dead-lettered). The claim is the same for a
/// receive by copy or in place: both stop at that point before they read the message.
pub fn paused_consumer(dir: &Path, queue: &Path, bound: Duration) -> Child {
    spawn_paused(
        dir,
        PAUSED_CONSUMER,
        &[
            ("queue", &queue.display()),
            ("timeout_ms", &bound.as_millis()),
        ],
        "recv-claimed",
        bound,
    )
}

/// The child of [`paused_consumer`]: receives one message in place, waiting at most
/// `timeout_ms` for it. The pause point stops it inside the receive.
fn consume_one(role: &Role) {
    let queue = shmq::Queue::open(role.path("queue")).expect("open the queue");
    let timeout = Duration::from_millis(role.arg("timeout_ms"));
    queue
        .recv_in_place_timeout(timeout)
        .expect("a message to consume");
}

/// The address `shmq exporter` listens on, read from its first line of output
/// (`listening on http://ADDR/metrics`, the contract the README documents).
pub fn exporter_address(stdout: std::process::ChildStdout) -> String {
    use std::io::BufRead;
    let mut first_line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut first_line)
        .unwrap();
    first_line
        .strip_prefix("listening on http://")
        .and_then(|rest| rest.trim_end().strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("unexpected first line {first_line:?}"))
        .to_string()
}

/// Sets the mode of the file at `path` to exactly `mode` (whatever the umask was at create).
pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}
