// SPDX-License-Identifier: MIT OR Apache-2.0
//! The operator's views, run as the built `shmq` binary against real queues: the live view in a
//! real terminal (tmux) and without one, the Prometheus text (parsed with a Prometheus parser)
//! from `stat --format prometheus` and from the exporter over loopback HTTP, `shmq ls` on a
//! directory of queues, broken queues and other files, shell completions and man pages.
//!
//! Every view must leave what it watches unchanged: each test that watches a queue checks that
//! no participant entry appeared for the watcher.

mod common;

use prometheus_parse::{LineInfo, Scrape, Value};
use shmq::{Options, Queue};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_shmq");
/// How long anything may take before the test gives up: generous for a loaded machine, finite
/// so that a bug cannot hang the suite.
const LIMIT: Duration = Duration::from_secs(60);

fn shmq(args: &[&std::ffi::OsStr]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + LIMIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("shmq {args:?} did not exit within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().unwrap()
}

/// `shmq args…`, which must succeed with nothing on stderr; its stdout.
fn shmq_ok(args: &[&std::ffi::OsStr]) -> String {
    let out = shmq(args);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "shmq {args:?}: {out:?}"
    );
    String::from_utf8(out.stdout).unwrap()
}

macro_rules! args {
    ($($a:expr),* $(,)?) => { &[$(std::ffi::OsStr::new($a)),*] };
}

/// A child process killed (and reaped) when dropped, so a failing test leaves none behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `probe` until it returns `Some`, failing with `what` and the last value seen after
/// [`LIMIT`].
fn wait_for<T, S: std::fmt::Debug>(what: &str, mut probe: impl FnMut() -> Result<T, S>) -> T {
    let deadline = Instant::now() + LIMIT;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last) if Instant::now() > deadline => {
                panic!("gave up waiting until {what}; last seen:\n{last:?}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A tool from PATH, or `None` where it is missing and `SHMQ_SKIP_OPERATOR_TOOLS=1` says the
/// test may pass without it (with a `SKIPPED` line); missing otherwise fails the test.
fn tool(name: &str, test: &str) -> Option<PathBuf> {
    let found = which(name);
    if found.is_none() {
        let package = if name == "man" { "man-db" } else { name };
        common::skip_or_fail(
            common::SKIP_OPERATOR_TOOLS,
            test,
            &format!("{name} is not installed (apt-get install {package})"),
        );
    }
    found
}

/// `name` on PATH, if it is there.
fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// A tmux server of our own (its own socket in a temporary directory), killed on drop.
struct Tmux {
    tmux: PathBuf,
    socket: PathBuf,
    /// The session the view runs in (a new one for each start).
    session: std::cell::RefCell<String>,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new(&self.tmux)
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .env("TERM", "xterm-256color")
            .output()
            .unwrap();
        assert!(out.status.success(), "tmux {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The pane's visible text.
    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", &self.session.borrow()])
    }

    /// Runs `command` in a new session, 120×40, which from now on is the one looked at and
    /// typed into. The old session, if any, is killed after the new one exists: killing the last
    /// session would end the server, racing with the next start.
    fn start(&self, command: &str) {
        let old = self.session.borrow().clone();
        let new = format!("watch{}", old.len());
        self.run(&[
            "new-session",
            "-d",
            "-s",
            &new,
            "-x",
            "120",
            "-y",
            "40",
            command,
        ]);
        if !old.is_empty() {
            self.run(&["kill-session", "-t", &old]);
        }
        *self.session.borrow_mut() = new;
    }

    /// Types `key` into the session.
    fn key(&self, key: &str) {
        self.run(&["send-keys", "-t", &self.session.borrow(), key]);
    }

    /// Waits until the view is drawn.
    fn wait_for_view(&self) {
        wait_for("the view is drawn", || {
            let screen = self.screen();
            if screen.contains("depth") && screen.contains("participants") {
                Ok(())
            } else {
                Err(screen)
            }
        });
    }

    /// Waits until the command has exited (the pane's shell printed `exited STATUS`); the screen.
    fn wait_for_exit(&self) -> String {
        wait_for("the view exits", || {
            let screen = self.screen();
            if screen.contains("exited ") {
                Ok(screen)
            } else {
                Err(screen)
            }
        })
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new(&self.tmux)
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

/// `(send, receive, over)` from the view's `rate` line: `rate  send 12.0/s  receive 0.0/s  (over 1.0 s)`.
fn rates(screen: &str) -> Option<(f64, f64, f64)> {
    let line = screen.lines().find(|l| l.starts_with("rate "))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |key: &str| {
        let i = words.iter().position(|w| *w == key)?;
        words.get(i + 1)?.trim_end_matches("/s").parse::<f64>().ok()
    };
    Some((after("send")?, after("receive")?, after("(over")?))
}

#[test]
fn watch_view_in_a_terminal_shows_depth_and_rates_and_quits_on_q_ctrl_c_or_removal() {
    let test = "watch_view_in_a_terminal_shows_depth_and_rates_and_quits_on_q_ctrl_c_or_removal";
    let Some(tmux) = tool("tmux", test) else {
        return;
    };
    let dir = common::tempdir();
    let path = dir.path().join("jobs");
    Queue::create(&path, Options::new(1024, 64)).unwrap();
    let tmux = Tmux {
        tmux,
        socket: dir.path().join("tmux.sock"),
        session: Default::default(),
    };
    // The command runs under sh in the pane; after it ends, its status stays on the screen.
    let command = format!(
        "'{BIN}' stat '{}' --watch --interval 200ms; echo \"exited $?\"; sleep 600",
        path.display()
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "watch",
        "-x",
        "120",
        "-y",
        "40",
        &command,
    ]);
    wait_for("the view shows the empty queue", || {
        let screen = tmux.screen();
        if screen.contains("depth") && screen.contains(" 0 / 1024 (0%)") {
            Ok(())
        } else {
            Err(screen)
        }
    });
    // The view registers nothing: it is not among the participants.
    assert!(Queue::inspect(&path).unwrap().participants.is_empty());

    // A burst of 300 sends: the depth shows all of them, and the send rate times the window it
    // was measured over is at most the burst (and more than nothing).
    let producer = Queue::open(&path).unwrap();
    for i in 0..300u32 {
        producer.send(&i.to_le_bytes()).unwrap();
    }
    let screen = wait_for("the view shows the burst and a send rate", || {
        let screen = tmux.screen();
        match rates(&screen) {
            Some((send, _, _)) if screen.contains(" 300 / 1024 (29%)") && send > 0.0 => Ok(screen),
            _ => Err(screen),
        }
    });
    let (send, receive, over) = rates(&screen).unwrap();
    // The rate is printed to 0.1/s and the window to 0.1 s: allow for that rounding.
    assert!(
        send * (over - 0.05) <= 300.0 + 0.05 * over,
        "send rate {send}/s over {over} s claims more than the 300 sent:\n{screen}"
    );
    assert_eq!(receive, 0.0, "{screen}");
    assert!(screen.contains("sent 300   received 0"), "{screen}");
    // Our producer is listed, alive, as a sender, with our pid.
    let me = format!("{}", std::process::id());
    assert!(
        screen
            .lines()
            .any(|l| l.contains(&me) && l.contains("sender") && l.contains("alive")),
        "{screen}"
    );

    // Receive 100: the depth falls to 200 and a receive rate appears.
    let mut buf = [0u8; 64];
    for _ in 0..100 {
        producer.recv(&mut buf).unwrap();
    }
    wait_for("the view shows the receives", || {
        let screen = tmux.screen();
        match rates(&screen) {
            Some((_, receive, _)) if screen.contains(" 200 / 1024 (20%)") && receive > 0.0 => {
                Ok(())
            }
            _ => Err(screen),
        }
    });

    // `q` ends the view with status 0 and gives the terminal back (the alternate screen is gone).
    tmux.key("q");
    let screen = tmux.wait_for_exit();
    assert!(screen.contains("exited 0"), "{screen}");
    assert!(
        !screen.contains("depth"),
        "the view was left on the screen:\n{screen}"
    );
    drop(producer);
    assert!(Queue::inspect(&path).unwrap().participants.is_empty());

    // Ctrl-C ends it the same way (raw mode turns it into a key, not a signal).
    tmux.start(&command);
    tmux.wait_for_view();
    tmux.key("C-c");
    assert!(tmux.wait_for_exit().contains("exited 0"));

    // So does the file going away, with a line saying so on the restored screen.
    tmux.start(&command);
    tmux.wait_for_view();
    Queue::unlink(&path).unwrap();
    let screen = tmux.wait_for_exit();
    assert!(
        screen.contains("the queue file is gone; stopped watching") && screen.contains("exited 0"),
        "{screen}"
    );
}

#[test]
fn watch_without_a_terminal_prints_one_line_per_interval_until_the_file_goes_away() {
    let dir = common::tempdir();
    let path = dir.path().join("jobs");
    let queue = Queue::create(&path, Options::new(64, 32)).unwrap();
    for _ in 0..5 {
        queue.send(b"x").unwrap();
    }
    drop(queue);
    let mut child = Running(
        Command::new(BIN)
            .arg("stat")
            .arg(&path)
            .args(["--watch", "--interval", "100ms"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let mut next_line = || lines.next().expect("a line").unwrap();
    let started = Instant::now();
    let first = next_line();
    let third = {
        next_line();
        next_line()
    };
    // Three lines take two intervals at least.
    assert!(started.elapsed() >= Duration::from_millis(200));
    for line in [&first, &third] {
        assert!(line.starts_with("time=20"), "{line}");
        for field in [
            " depth=5 ",
            " capacity=64 ",
            " sent=5 ",
            " received=0 ",
            " abandoned_sends=0 ",
            " redelivered=0 ",
            " participants=0 ",
            " closed=false",
        ] {
            assert!(line.contains(field), "{field:?} missing in {line}");
        }
    }
    // No rate before a second sample; a measured 0 after.
    assert!(first.contains(" send_rate=- recv_rate=- "), "{first}");
    assert!(third.contains(" send_rate=0.0 recv_rate=0.0 "), "{third}");
    assert!(Queue::inspect(&path).unwrap().participants.is_empty());

    // The file goes away: one last line, status 0.
    Queue::unlink(&path).unwrap();
    let last = wait_for("the watcher notices the file is gone", || {
        let line = next_line();
        if line.starts_with("gone ") {
            Ok(line)
        } else {
            Err(line)
        }
    });
    assert_eq!(last, format!("gone path={}", path.display()));
    let status = wait_for("the watcher exits", || {
        child.0.try_wait().unwrap().ok_or(())
    });
    assert!(status.success(), "{status}");
}

/// Parses Prometheus text with prometheus-parse, after checking that the parser understood
/// every line (it skips lines it cannot read, which would hide a malformed one).
fn parse_prometheus(text: &str) -> Scrape {
    for line in text.lines() {
        assert!(
            !matches!(LineInfo::parse(line), LineInfo::Ignored | LineInfo::Empty),
            "not a Prometheus text line: {line:?}\n{text}"
        );
    }
    assert!(text.ends_with('\n'));
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

/// The value of `metric{queue="path"}`, as a counter or as a gauge.
fn value(scrape: &Scrape, metric: &str, queue: &Path) -> Option<Value> {
    let queue = queue.to_str().unwrap();
    scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && s.labels.get("queue") == Some(queue))
        .map(|s| s.value.clone())
}

/// Every family the format promises for each readable queue, with its type.
const COUNTERS: [&str; 11] = [
    "shmq_sent_total",
    "shmq_received_total",
    "shmq_cancelled_sends_total",
    "shmq_abandoned_sends_total",
    "shmq_abandoned_receives_total",
    "shmq_redelivered_total",
    "shmq_dead_lettered_total",
    "shmq_dead_letter_failures_total",
    "shmq_expired_total",
    "shmq_full_waits_total",
    "shmq_empty_waits_total",
];
const GAUGES: [&str; 17] = [
    "shmq_up",
    "shmq_info",
    "shmq_depth",
    "shmq_capacity",
    "shmq_max_message_size_bytes",
    "shmq_file_size_bytes",
    "shmq_creation_time_seconds",
    "shmq_send_sleepers",
    "shmq_recv_sleepers",
    "shmq_closed",
    "shmq_max_deliveries",
    "shmq_participants",
    "shmq_dead_participants",
    "shmq_held_slots",
    "shmq_oldest_hold_seconds",
    "shmq_in_flight",
    "shmq_visibility_timeout_seconds",
];

/// Checks the scrape against two queues in a known state: `busy` (capacity 64, 7 sent, 2
/// received, one receive guard held, one participant) and `closed` (capacity 8, empty,
/// closed), and `missing` down.
fn check_scrape(scrape: &Scrape, busy: &Path, closed: &Path, missing: &Path) {
    for queue in [busy, closed] {
        for name in COUNTERS {
            assert!(
                matches!(value(scrape, name, queue), Some(Value::Counter(_))),
                "{name} for {queue:?} is not a counter"
            );
            assert!(scrape.docs.contains_key(name), "no HELP for {name}");
        }
        for name in GAUGES {
            assert!(
                matches!(value(scrape, name, queue), Some(Value::Gauge(_))),
                "{name} for {queue:?} is not a gauge"
            );
            assert!(scrape.docs.contains_key(name), "no HELP for {name}");
        }
    }
    let gauge = |name, queue| match value(scrape, name, queue) {
        Some(Value::Gauge(v)) => v,
        other => panic!("{name}: {other:?}"),
    };
    let counter = |name, queue| match value(scrape, name, queue) {
        Some(Value::Counter(v)) => v,
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(gauge("shmq_up", busy), 1.0);
    assert_eq!(gauge("shmq_depth", busy), 4.0);
    assert_eq!(gauge("shmq_capacity", busy), 64.0);
    assert_eq!(gauge("shmq_max_message_size_bytes", busy), 32.0);
    assert_eq!(counter("shmq_sent_total", busy), 7.0);
    assert_eq!(counter("shmq_received_total", busy), 3.0);
    assert_eq!(gauge("shmq_closed", busy), 0.0);
    assert_eq!(gauge("shmq_participants", busy), 1.0);
    assert_eq!(gauge("shmq_held_slots", busy), 1.0);
    assert!(gauge("shmq_oldest_hold_seconds", busy) >= 0.0);
    assert_eq!(gauge("shmq_in_flight", busy), 1.0);
    assert_eq!(gauge("shmq_visibility_timeout_seconds", busy), 0.0);
    assert_eq!(counter("shmq_expired_total", busy), 0.0);
    assert_eq!(counter("shmq_dead_letter_failures_total", busy), 0.0);
    assert_eq!(gauge("shmq_up", closed), 1.0);
    assert_eq!(gauge("shmq_capacity", closed), 8.0);
    assert_eq!(gauge("shmq_closed", closed), 1.0);
    assert_eq!(gauge("shmq_depth", closed), 0.0);
    assert_eq!(gauge("shmq_participants", closed), 0.0);
    assert_eq!(gauge("shmq_up", missing), 0.0);
    // A queue that cannot be read has no other samples.
    let missing_samples = scrape
        .samples
        .iter()
        .filter(|s| s.labels.get("queue") == missing.to_str())
        .count();
    assert_eq!(missing_samples, 1);
}

/// Two queues in the state [`check_scrape`] expects, and the handle holding the guard.
fn scrape_fixture(dir: &Path) -> (PathBuf, PathBuf, PathBuf, Queue) {
    let busy = dir.join("busy");
    let closed = dir.join("closed");
    let missing = dir.join("missing");
    let queue = Queue::create(&busy, Options::new(64, 32)).unwrap();
    for _ in 0..7 {
        queue.send(b"m").unwrap();
    }
    let mut buf = [0u8; 32];
    queue.recv(&mut buf).unwrap();
    queue.recv(&mut buf).unwrap();
    Queue::create(&closed, Options::new(8, 16)).unwrap().close();
    (busy, closed, missing, queue)
}

#[test]
fn prometheus_format_gives_every_counter_and_gauge_of_every_queue() {
    let dir = common::tempdir();
    let (busy, closed, missing, queue) = scrape_fixture(dir.path());
    let guard = queue.recv_in_place().unwrap();
    let out = shmq(&[
        "stat".as_ref(),
        busy.as_os_str(),
        closed.as_os_str(),
        missing.as_os_str(),
        "--format".as_ref(),
        "prometheus".as_ref(),
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    check_scrape(&parse_prometheus(&text), &busy, &closed, &missing);
    // The unreadable queue makes the command fail, with one line naming it.
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("shmq: 1 of 3 queues could not be read"));
    assert!(stderr.contains(missing.to_str().unwrap()), "{stderr}");
    // Looking registered nothing: only the test's own handle is a participant.
    drop(guard);
    assert_eq!(Queue::inspect(&busy).unwrap().participants.len(), 1);

    // All readable: status 0, nothing on stderr.
    let text = shmq_ok(args!["stat", &busy, &closed, "--format", "prometheus"]);
    assert_eq!(
        parse_prometheus(&text).samples.len(),
        2 * (COUNTERS.len() + GAUGES.len())
    );
}

/// One HTTP/1.1 request on a fresh connection: the status code and the body.
fn http(addr: &str, method: &str, target: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .expect("a complete response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}

#[test]
fn exporter_serves_the_metrics_over_loopback_and_nothing_else() {
    let dir = common::tempdir();
    let (busy, closed, missing, queue) = scrape_fixture(dir.path());
    let guard = queue.recv_in_place().unwrap();
    // Port 0: the kernel picks one, and the exporter says which. `:0` means loopback.
    let mut exporter = Running(
        Command::new(BIN)
            .args(["exporter", "--listen", ":0"])
            .args([&busy, &closed, &missing])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let addr = common::exporter_address(exporter.0.stdout.take().unwrap());
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");

    let (status, head, body) = http(&addr, "GET", "/metrics");
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    check_scrape(&parse_prometheus(&body), &busy, &closed, &missing);
    assert_eq!(Queue::inspect(&busy).unwrap().participants.len(), 1);

    // Each scrape reads the queues afresh.
    drop(guard);
    queue.send(b"m").unwrap();
    let (_, _, body) = http(&addr, "GET", "/metrics?fresh=1");
    let scrape = parse_prometheus(&body);
    assert_eq!(value(&scrape, "shmq_depth", &busy), Some(Value::Gauge(5.0)));
    assert_eq!(
        value(&scrape, "shmq_held_slots", &busy),
        Some(Value::Gauge(0.0))
    );

    let (status, _, body) = http(&addr, "HEAD", "/metrics");
    assert_eq!((status, body.as_str()), (200, ""));
    assert_eq!(http(&addr, "GET", "/").0, 404);
    assert_eq!(http(&addr, "GET", "/metricsx").0, 404);
    let (status, head, _) = http(&addr, "POST", "/metrics");
    assert_eq!(status, 405);
    assert!(head.contains("Allow: GET, HEAD"), "{head}");
    // Still serving after all that.
    assert_eq!(http(&addr, "GET", "/metrics").0, 200);
    assert!(exporter.0.try_wait().unwrap().is_none());
}

#[test]
fn ls_lists_queues_and_broken_queues_and_skips_other_files() {
    let dir = common::tempdir();
    let d = dir.path();
    let jobs = Queue::create(d.join("jobs"), Options::new(16, 100)).unwrap();
    jobs.send(b"one").unwrap();
    jobs.send(b"two").unwrap();
    Queue::create(d.join("done"), Options::new(4, 8))
        .unwrap()
        .close();
    // A file that starts like a queue but is cut short: a broken queue, listed with why.
    let mut broken = b"SHMQUEUE".to_vec();
    broken.extend([0xAB; 100]);
    std::fs::write(d.join("broken"), broken).unwrap();
    // Not queues: skipped without a word.
    std::fs::write(d.join("notes.txt"), "hello, not a queue\n").unwrap();
    std::fs::write(d.join("empty"), "").unwrap();
    std::fs::create_dir(d.join("subdir")).unwrap();
    std::os::unix::fs::symlink(d.join("jobs"), d.join("link-to-jobs")).unwrap();

    let table = shmq_ok(args!["ls", d]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    let columns = |line: &str| {
        line.split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        columns(lines[0]),
        [
            "PATH",
            "DEPTH",
            "CAPACITY",
            "MAX_MESSAGE_SIZE",
            "PARTICIPANTS",
            "CLOSED"
        ]
    );
    let path = |name: &str| d.join(name).display().to_string();
    let broken_row = columns(lines[1]);
    assert_eq!(
        broken_row[..6],
        [
            path("broken"),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into()
        ]
    );
    assert!(
        lines[1].contains("unreadable queue: corrupt queue"),
        "{table}"
    );
    assert_eq!(
        columns(lines[2]),
        [
            path("done"),
            "0".into(),
            "4".into(),
            "8".into(),
            "0".into(),
            "yes".into()
        ]
    );
    assert_eq!(
        columns(lines[3]),
        [
            path("jobs"),
            "2".into(),
            "16".into(),
            "100".into(),
            "1".into(),
            "no".into()
        ]
    );

    let json: serde_json::Value = serde_json::from_str(&shmq_ok(args!["ls", d, "--json"])).unwrap();
    let expected = serde_json::json!([
        {"path": path("broken"), "error": json[0]["error"]},
        {"path": path("done"), "depth": 0, "capacity": 4, "max_message_size": 8, "participants": 0, "closed": true},
        {"path": path("jobs"), "depth": 2, "capacity": 16, "max_message_size": 100, "participants": 1, "closed": false},
    ]);
    assert_eq!(json, expected);
    assert!(
        json[0]["error"].as_str().unwrap().contains("corrupt"),
        "{json}"
    );
    // Listing registered nothing.
    assert_eq!(
        Queue::inspect(d.join("jobs")).unwrap().participants.len(),
        1
    );

    // An empty directory: just the header; a missing one: a one-line error.
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(shmq_ok(args!["ls", empty.path()]).lines().count(), 1);
    assert_eq!(shmq_ok(args!["ls", empty.path(), "--json"]), "[]\n");
    let out = shmq(args!["ls", &d.join("nonexistent")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("shmq: cannot list ") && stderr.lines().count() == 1,
        "{stderr}"
    );
}

#[test]
fn completions_are_generated_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _shmq"),
        ("zsh", "#compdef shmq"),
        ("fish", "complete -c shmq"),
    ] {
        let script = shmq_ok(args!["completions", shell]);
        assert!(script.contains(marker), "{shell}: no {marker:?}");
        for word in [
            "stat",
            "exporter",
            "ls",
            "completions",
            "--watch",
            "--interval",
            "--format",
        ] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    // The bash script works: completing `shmq st` offers `stat`, `shmq stat q --w` offers --watch.
    let Some(bash) = tool(
        "bash",
        "completions_are_generated_for_each_shell (bash part)",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("shmq.bash");
    std::fs::write(&script, shmq_ok(args!["completions", "bash"])).unwrap();
    let complete = |words: &str| {
        let program = format!(
            "source '{}'; COMP_WORDS=({words}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 )); \
             _shmq shmq \"${{COMP_WORDS[-1]}}\" \"${{COMP_WORDS[-2]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let out = Command::new(&bash).args(["-c", &program]).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(complete("shmq st").trim(), "stat");
    assert_eq!(complete("shmq stat q --wa").trim(), "--watch");
    assert_eq!(complete("shmq stat q --format p").trim(), "prometheus");
}

#[test]
fn man_pages_are_generated_for_every_visible_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let listed = shmq_ok(args!["man", dir.path()]);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for page in [
        "shmq.1",
        "shmq-create.1",
        "shmq-send.1",
        "shmq-recv.1",
        "shmq-close.1",
        "shmq-rm.1",
        "shmq-stat.1",
        "shmq-exporter.1",
        "shmq-ls.1",
        "shmq-completions.1",
        "shmq-bench.1",
    ] {
        assert!(names.iter().any(|n| n == page), "no {page} in {names:?}");
        assert!(listed.contains(&dir.path().join(page).display().to_string()));
    }
    // The hidden generator documents no page of its own.
    assert!(!names.iter().any(|n| n == "shmq-man.1"), "{names:?}");
    let stat = std::fs::read_to_string(dir.path().join("shmq-stat.1")).unwrap();
    assert!(
        stat.starts_with(".ie") || stat.contains(".TH shmq-stat 1"),
        "{stat}"
    );
    assert!(
        stat.contains("\\-\\-watch") && stat.contains("prometheus"),
        "{stat}"
    );
    // And man itself can render it.
    if let Some(man) = tool(
        "man",
        "man_pages_are_generated_for_every_visible_subcommand",
    ) {
        let out = Command::new(man)
            .args(["-l", "-P", "cat"])
            .arg(dir.path().join("shmq-stat.1"))
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("--watch"), "{text}");
    }
}

#[test]
fn make_install_cli_installs_the_command_its_man_pages_and_completions() {
    let Some(make) = tool(
        "make",
        "make_install_cli_installs_the_command_its_man_pages_and_completions",
    ) else {
        return;
    };
    let ffi = Path::new(env!("CARGO_MANIFEST_DIR")).join("ffi");
    if !ffi.join("Makefile").is_file() {
        // The crate as published has no ffi/ directory; the repository always has.
        common::skip_or_fail(
            common::SKIP_OPERATOR_TOOLS,
            "make_install_cli_installs_the_command_its_man_pages_and_completions",
            "no ffi/Makefile (not a repository checkout)",
        );
        return;
    }
    let prefix = tempfile::tempdir().unwrap();
    // SHMQ names the binary the tests built, so make does not build another.
    let out = Command::new(make)
        .arg("-C")
        .arg(&ffi)
        .arg("install-cli")
        .arg(format!("PREFIX={}", prefix.path().display()))
        .arg(format!("SHMQ={BIN}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let p = prefix.path();
    assert_eq!(
        std::fs::read(p.join("bin/shmq")).unwrap(),
        std::fs::read(BIN).unwrap()
    );
    for page in ["shmq.1", "shmq-stat.1", "shmq-ls.1", "shmq-exporter.1"] {
        assert!(p.join("share/man/man1").join(page).is_file(), "no {page}");
    }
    for (file, marker) in [
        (
            "share/bash-completion/completions/shmq",
            "complete -F _shmq",
        ),
        ("share/zsh/site-functions/_shmq", "#compdef shmq"),
        (
            "share/fish/vendor_completions.d/shmq.fish",
            "complete -c shmq",
        ),
    ] {
        let text = std::fs::read_to_string(p.join(file)).unwrap();
        assert!(text.contains(marker), "{file}");
    }
}
