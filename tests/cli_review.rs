// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `shmq` command against what a shared directory and a network can throw at it, run as the
//! built binary: a FIFO where a queue should be (`stat`, `stat --watch`, `stat TOPIC`, the
//! exporter), a planted sparse file whose header claims 2^24 slots (`ls`), and hostile HTTP
//! clients of `shmq exporter` (one that pipelines requests and never reads, connections up to
//! the descriptor limit, an endless request line).
//!
//! Every bound below is generous (a loaded machine) and finite (a bug fails, never hangs): what
//! the tests tell apart is "answers within seconds" from "hangs until killed".

mod common;

use shmq::{Options, Queue, Subscription, Topic, TopicOptions};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::FileExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_shmq");
/// How long a command that must answer at once may take on a loaded machine.
const PROMPT: Duration = Duration::from_secs(10);

/// A child process killed (and reaped) when dropped, so a failing test leaves none behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `shmq args…` with stdout and stderr captured; panics, naming `what`, if it has not
/// exited within `bound` (it is killed).
fn shmq_within(bound: Duration, args: &[&std::ffi::OsStr]) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = Running(
        Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    while child.0.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < bound,
            "shmq {args:?} did not exit within {bound:?} (hangs)"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = started.elapsed();
    let mut out = Output {
        status: child.0.wait().unwrap(),
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut out.stdout)
        .unwrap();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut out.stderr)
        .unwrap();
    (out, took)
}

macro_rules! args {
    ($($a:expr),* $(,)?) => { &[$(std::ffi::OsStr::new($a)),*] };
}

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

/// Asserts that `out` is a failure whose one line of stderr says that `path` is a FIFO.
fn assert_refused_as_fifo(out: &Output, path: &Path) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr.contains(&format!("not a queue file: {} is a FIFO", path.display())),
        "{stderr}"
    );
}

#[test]
fn stat_of_a_fifo_fails_at_once_saying_it_is_a_fifo() {
    let dir = common::tempdir();
    let fifo = dir.path().join("jobs");
    mkfifo(&fifo);
    for extra in [
        &[][..],
        &["--json"][..],
        &["--watch", "--interval", "10ms"][..],
    ] {
        let mut args = vec![std::ffi::OsStr::new("stat"), fifo.as_os_str()];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        let (out, _) = shmq_within(PROMPT, &args);
        assert_refused_as_fifo(&out, &fifo);
    }
    // Several queues, one a FIFO: the others are still reported, the FIFO is down.
    let real = dir.path().join("real");
    drop(Queue::create(&real, Options::new(4, 8)).unwrap());
    let (out, _) = shmq_within(
        PROMPT,
        args!["stat", &real, &fifo, "--format", "prometheus"],
    );
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(
        text.contains(&format!("shmq_up{{queue=\"{}\"}} 1", real.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("shmq_up{{queue=\"{}\"}} 0", fifo.display())),
        "{text}"
    );
    assert_refused_as_fifo(&out, &fifo);
}

#[test]
fn stat_of_a_topic_whose_queue_was_replaced_by_a_fifo_answers_at_once() {
    let dir = common::tempdir();
    let topic_path = dir.path().join("orders");
    let queue = dir.path().join("billing");
    let topic = Topic::create(&topic_path, TopicOptions::new(64)).unwrap();
    topic.subscribe(&queue, Subscription::new(8, 64)).unwrap();
    drop(topic);
    std::fs::remove_file(&queue).unwrap();
    mkfifo(&queue);
    let (out, _) = shmq_within(PROMPT, args!["stat", &topic_path]);
    assert!(out.status.success(), "{out:?}");
    // The subscription is still listed, by its queue's path.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(queue.to_str().unwrap()), "{stdout}");
}

/// Spawns `shmq exporter --listen :0 extra… paths…`, with `RLIMIT_NOFILE` set to `nofile` in the
/// child if given; the running process and the address it listens on.
fn exporter(paths: &[&Path], extra: &[&str], nofile: Option<u64>) -> (Running, String) {
    let mut command = Command::new(BIN);
    command
        .args(["exporter", "--listen", ":0"])
        .args(extra)
        .args(paths)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(limit) = nofile {
        let rlimit = libc::rlimit {
            rlim_cur: limit,
            rlim_max: limit,
        };
        // SAFETY: the closure runs in the forked child before exec and only calls setrlimit,
        // which is async-signal-safe, on a value copied into it.
        unsafe {
            command.pre_exec(move || {
                if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = Running(command.spawn().unwrap());
    let addr = common::exporter_address(child.0.stdout.take().unwrap());
    (child, addr)
}

/// `GET /metrics` on a fresh connection, answered within [`PROMPT`]: the status and the body.
fn scrape(addr: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(PROMPT))?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("incomplete response {response:?}")))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
    Ok((status, body.to_string()))
}

fn up(body: &str, path: &Path) -> Option<u8> {
    let prefix = format!("shmq_up{{queue=\"{}\"}} ", path.display());
    body.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.parse().ok())
}

#[test]
fn exporter_scrapes_are_not_hung_by_a_fifo_among_its_queues() {
    let dir = common::tempdir();
    let real = dir.path().join("real");
    drop(Queue::create(&real, Options::new(4, 8)).unwrap());
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let (mut exporter, addr) = exporter(&[&real, &fifo], &[], None);
    let (status, body) = scrape(&addr).expect("a scrape answered within the bound");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (up(&body, &real), up(&body, &fifo)),
        (Some(1), Some(0)),
        "{body}"
    );
    assert!(exporter.0.try_wait().unwrap().is_none());
}

/// Plants at `path` a file with a valid header for 2^24 slots of 60,000 bytes (a terabyte),
/// sparse: a few kilobytes on disk. Built from a real one-slot queue whose capacity and length
/// are rewritten (offsets of `layout::Identity`).
fn plant_sparse_queue(path: &Path) -> u64 {
    drop(Queue::create(path, Options::new(1, 60_000)).unwrap());
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let word = |offset: u64| {
        let mut bytes = [0u8; 8];
        file.read_exact_at(&mut bytes, offset).unwrap();
        u64::from_ne_bytes(bytes)
    };
    let stride = word(24) & 0xFFFF_FFFF;
    let slots_offset = word(40);
    let capacity: u32 = 1 << 24;
    let len = slots_offset + u64::from(capacity) * stride;
    file.write_all_at(&capacity.to_ne_bytes(), 16).unwrap();
    file.write_all_at(&len.to_ne_bytes(), 48).unwrap();
    file.set_len(len).unwrap();
    len
}

#[test]
fn ls_of_a_planted_sparse_file_claiming_2_24_slots_answers_promptly_and_lists_it() {
    let dir = common::tempdir();
    let planted = dir.path().join("planted");
    let len = plant_sparse_queue(&planted);
    assert_eq!(Queue::inspect_header(&planted).unwrap().file_len, len);
    drop(Queue::create(dir.path().join("small"), Options::new(4, 8)).unwrap());
    let (out, took) = shmq_within(Duration::from_secs(5), args!["ls", dir.path(), "--json"]);
    assert!(out.status.success(), "{out:?}");
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = listed.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{listed}");
    let row = &rows[0];
    assert_eq!(row["path"], planted.to_str().unwrap());
    assert_eq!(row["capacity"], 1 << 24);
    assert_eq!(row["max_message_size"], 60_000);
    assert_eq!(row["depth"], 0);
    assert_eq!(row["participants"], 0);
    eprintln!("shmq ls of a directory holding the planted file took {took:?}");
}

/// The exporter's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("a VmRSS line")
}

#[test]
fn exporter_answers_others_while_a_client_pipelines_requests_and_never_reads() {
    let dir = common::tempdir();
    let queue = dir.path().join("q");
    drop(Queue::create(&queue, Options::new(4, 8)).unwrap());
    let (mut exporter, addr) = exporter(&[&queue], &[], None);
    // Thousands of requests in one go (megabytes of answers, more than socket buffers hold),
    // and never a byte read.
    let mut hog = TcpStream::connect(&addr).unwrap();
    hog.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    for _ in 0..5_000 {
        if hog.write_all(request.as_bytes()).is_err() {
            break; // its own buffers are full: it is stuck, as intended
        }
    }
    // Give the exporter time to answer the hog until its socket is full.
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..3 {
        let (status, body) = scrape(&addr).expect("a scrape answered while the hog is stuck");
        assert_eq!((status, up(&body, &queue)), (200, Some(1)), "{body}");
    }
    assert!(exporter.0.try_wait().unwrap().is_none());
    drop(hog);
}

#[test]
fn exporter_survives_running_out_of_descriptors_and_serves_again() {
    let dir = common::tempdir();
    let queue = dir.path().join("q");
    drop(Queue::create(&queue, Options::new(4, 8)).unwrap());
    const NOFILE: u64 = 24;
    let (mut exporter, addr) = exporter(&[&queue], &[], Some(NOFILE));
    let stderr = exporter.0.stderr.take().unwrap();
    // Idle connections, twice as many as the exporter has descriptors: it runs out.
    let idle: Vec<TcpStream> = (0..2 * NOFILE)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    let mut log = BufReader::new(stderr);
    let mut line = String::new();
    log.read_line(&mut line).unwrap();
    assert!(
        line.contains("cannot accept a connection") && line.contains("still serving"),
        "{line:?}"
    );
    assert!(
        exporter.0.try_wait().unwrap().is_none(),
        "the exporter exited"
    );
    drop(idle);
    // Once the connections are gone, a scrape is answered (the exporter may need a few
    // backoffs to drain the listen backlog of closed connections).
    let deadline = Instant::now() + PROMPT;
    let answered = loop {
        match scrape(&addr) {
            Ok((200, body)) if up(&body, &queue) == Some(1) => break true,
            _ if Instant::now() > deadline => break false,
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    assert!(answered, "no scrape answered after the connections closed");
    assert!(
        exporter.0.try_wait().unwrap().is_none(),
        "the exporter exited"
    );
}

#[test]
fn exporter_closes_an_endless_request_line_with_bounded_memory() {
    let dir = common::tempdir();
    let queue = dir.path().join("q");
    drop(Queue::create(&queue, Options::new(4, 8)).unwrap());
    let (mut exporter, addr) = exporter(&[&queue], &[], None);
    let pid = exporter.0.id();
    let before = rss_kib(pid);
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream.set_write_timeout(Some(PROMPT)).unwrap();
    stream.write_all(b"GET /").unwrap();
    // Up to 64 MiB of URL; the exporter must close the connection long before.
    const LIMIT: usize = 64 << 20;
    let chunk = vec![b'a'; 64 << 10];
    let mut sent = 0;
    let mut peak = before;
    let closed = loop {
        match stream.write_all(&chunk) {
            Ok(()) => sent += chunk.len(),
            Err(e) => {
                assert!(
                    matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
                    "{e}"
                );
                break true;
            }
        }
        peak = peak.max(rss_kib(pid));
        if sent >= LIMIT {
            break false;
        }
    };
    peak = peak.max(rss_kib(pid));
    assert!(
        closed,
        "{sent} bytes of request line accepted without closing"
    );
    let grown = peak.saturating_sub(before);
    eprintln!("closed after {sent} bytes sent; VmRSS {before} KiB before, peak {peak} KiB");
    assert!(
        grown < 16 << 10,
        "the exporter grew by {grown} KiB while reading {sent} bytes of request line"
    );
    let _ = stream.shutdown(Shutdown::Both);
    let (status, _) = scrape(&addr).expect("still serving");
    assert_eq!(status, 200);
    assert!(exporter.0.try_wait().unwrap().is_none());
}

#[test]
fn exporter_refuses_connections_beyond_max_connections_without_stopping() {
    let dir = common::tempdir();
    let queue = dir.path().join("q");
    drop(Queue::create(&queue, Options::new(4, 8)).unwrap());
    let (mut exporter, addr) = exporter(&[&queue], &["--max-connections", "2"], None);
    let idle: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    // The third is answered 503 at once (the two idle ones are still open: their header read
    // timeout is seconds away).
    let deadline = Instant::now() + PROMPT;
    loop {
        match scrape(&addr) {
            Ok((503, body)) => {
                assert!(body.contains("too many connections"), "{body}");
                break;
            }
            // Accepting the idle two may lag behind their connect: they may not hold their
            // permits yet.
            Ok((200, _)) | Err(_) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            other => panic!("no 503 beyond --max-connections 2: {other:?}"),
        }
    }
    drop(idle);
    let deadline = Instant::now() + PROMPT;
    while !matches!(scrape(&addr), Ok((200, _))) {
        assert!(
            Instant::now() < deadline,
            "no scrape once the idle ones closed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(exporter.0.try_wait().unwrap().is_none());
}
