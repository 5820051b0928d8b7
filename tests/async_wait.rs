// SPDX-License-Identifier: MIT OR Apache-2.0
//! Async sends and receives across processes: a task is woken by progress in another process,
//! costs no CPU while it waits (one queue or 1,000), can be dropped at any await point without
//! losing a message or leaving a sleeper counted, is counted as a sleeper so that crash
//! recovery repairs the count of a dead one and keeps a live one, and sees a message given back
//! after its holder died. The same runs on the fallback for kernels without `futex_waitv`.

mod common;

use common::{Child, Rng, Role};
use shmq::{Error, Options, Queue};
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long to wait for a child to get somewhere, or to exit.
const BOUND: Duration = Duration::from_secs(20);

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// CPU time (user + system) of this whole process so far, from getrusage.
fn process_cpu() -> Duration {
    // SAFETY: `usage` is a valid, writable rusage; RUSAGE_SELF always exists.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage");
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// `queues` queues `dir/q0..`, one task per queue awaiting `recv_async` on a current-thread
/// runtime. Measures the process's CPU time over one idle second, reports it (`cpu_ns`,
/// `helpers`) and waits for `messages` messages, each carrying the monotonic time it was sent
/// at; reports the latencies (send to task woken) when all came.
fn idle_waiters(role: &Role) {
    let dir = role.path("dir");
    let n: usize = role.arg("queues");
    let messages: usize = role.arg("messages");
    let threads = || std::fs::read_dir("/proc/self/task").unwrap().count();
    let threads_before = threads();
    let queues: Vec<Arc<Queue>> = (0..n)
        .map(|i| Arc::new(Queue::open(dir.join(format!("q{i}"))).unwrap()))
        .collect();
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let got = Arc::new(AtomicUsize::new(0));
    let rt = current_thread();
    let idle = rt.block_on(async {
        for q in &queues {
            let q = Arc::clone(q);
            let latencies = Arc::clone(&latencies);
            let got = Arc::clone(&got);
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                loop {
                    match q.recv_async(&mut buf).await {
                        Ok(_) => {
                            let now = common::monotonic_ns();
                            let sent = u64::from_le_bytes(buf[..8].try_into().unwrap());
                            latencies.lock().unwrap().push(now - sent);
                            got.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(Error::Closed) => return,
                        Err(e) => panic!("{e}"),
                    }
                }
            });
        }
        // Let every task park, then measure one idle second.
        let parked = Instant::now();
        while shmq::helper_threads().1 < n {
            assert!(
                parked.elapsed() < BOUND,
                "not every receive word is watched"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (helpers, _) = shmq::helper_threads();
        let before = process_cpu();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let cpu = process_cpu() - before;
        let idle = format!("idle {} {helpers}\n", cpu.as_nanos());
        role.report(&idle);
        while got.load(Ordering::SeqCst) < messages {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        idle
    });
    drop(rt);
    // With nothing left to wait on, the helper threads exit: the process is down to this
    // thread again.
    let stopped = Instant::now();
    while shmq::helper_threads().0 > 0 || threads() > threads_before {
        assert!(stopped.elapsed() < BOUND, "the helper threads did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
    let lat = latencies.lock().unwrap();
    let text: Vec<String> = lat.iter().map(|l| l.to_string()).collect();
    role.report(&format!(
        "{idle}lat {}\nthreads gone after {} ms\n",
        text.join(" "),
        stopped.elapsed().as_millis()
    ));
}

/// Awaits one message with `recv_async` (or `recv_in_place_async` if `in_place=1`) and
/// reports it with its delivery count.
fn await_one(role: &Role) {
    let q = Queue::open(role.path("queue")).unwrap();
    let in_place: u32 = role.arg("in_place");
    current_thread().block_on(async {
        if in_place == 1 {
            let m = q.recv_in_place_async().await.unwrap();
            role.report(&format!(
                "ok {} {}",
                String::from_utf8_lossy(&m),
                m.deliveries()
            ));
        } else {
            let mut buf = [0u8; 64];
            let n = q.recv_async(&mut buf).await.unwrap();
            role.report(&format!("ok {} 1", String::from_utf8_lossy(&buf[..n])));
        }
    });
}

/// Takes one message in place, says so, and holds it until killed.
fn hold(role: &Role) {
    let q = Queue::open(role.path("queue")).unwrap();
    let m = q.recv_in_place_timeout(BOUND).unwrap();
    role.report(&format!("held {}", String::from_utf8_lossy(&m)));
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Sends `count` numbered messages with `send_async`, dropping the future at random points
/// (a timeout of 0 to 2 ms, or after its first poll) and sending the same message again.
/// Reports how many futures it dropped.
fn cancelling_producer(role: &Role) {
    let q = Queue::open(role.path("queue")).unwrap();
    let count: u64 = role.arg("count");
    let mut rng = Rng(role.arg::<u64>("seed") | 1);
    let mut cancelled = 0u64;
    current_thread().block_on(async {
        for seq in 0..count {
            // Now and then a pause, so that the receivers run dry and register to wait.
            if seq % 64 == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let msg = seq.to_le_bytes();
            loop {
                match cancel_at_random(&mut rng, q.send_async(&msg)).await {
                    Some(result) => {
                        result.unwrap();
                        break;
                    }
                    None => cancelled += 1,
                }
            }
        }
    });
    role.report(&format!("cancelled {cancelled}"));
}

/// Not a test: the entry point of the child processes these tests spawn (see `common`).
/// Ignored, so that a test run does not count it; the children run it with `--ignored`.
#[test]
#[ignore = "the entry point of child processes, not a test"]
fn child() {
    common::child_main(|role| match role.name() {
        "idle_waiters" => idle_waiters(role),
        "await_one" => await_one(role),
        "hold" => hold(role),
        "cancelling_producer" => cancelling_producer(role),
        other => panic!("unknown role {other}"),
    });
}

/// Runs `fut` and drops it at a random point: after a timeout of 0 to 2 ms, after its first
/// poll, or never. `None` if it was dropped before completing.
async fn cancel_at_random<F: std::future::Future>(rng: &mut Rng, fut: F) -> Option<F::Output> {
    match rng.next() % 3 {
        0 => tokio::time::timeout(Duration::from_micros(rng.next() % 2000), fut)
            .await
            .ok(),
        1 => {
            tokio::select! {
                out = fut => Some(out),
                () = tokio::task::yield_now() => None,
            }
        }
        _ => Some(fut.await),
    }
}

fn create(dir: &Path, name: &str, capacity: u32) -> Queue {
    Queue::create(dir.join(name), Options::new(capacity, 64)).unwrap()
}

/// Sends messages stamped with the monotonic time to the queues at `indices`, 20 ms apart so
/// that the waiting task is asleep before each.
fn send_stamped(queues: &[Queue], indices: impl Iterator<Item = usize>) {
    for i in indices {
        std::thread::sleep(Duration::from_millis(20));
        let mut msg = [0u8; 16];
        msg[..8].copy_from_slice(&common::monotonic_ns().to_le_bytes());
        queues[i].send(&msg).unwrap();
    }
}

fn parse_idle(report: &str) -> (Duration, usize) {
    let line = report
        .lines()
        .find(|l| l.starts_with("idle "))
        .expect("idle line");
    let mut parts = line.split(' ').skip(1);
    let cpu = Duration::from_nanos(parts.next().unwrap().parse().unwrap());
    let helpers = parts.next().unwrap().parse().unwrap();
    (cpu, helpers)
}

fn parse_latencies(report: &str) -> Vec<Duration> {
    let line = report
        .lines()
        .find(|l| l.starts_with("lat"))
        .expect("lat line");
    line.split(' ')
        .skip(1)
        .filter(|s| !s.is_empty())
        .map(|s| Duration::from_nanos(s.parse().unwrap()))
        .collect()
}

/// Runs `idle_waiters` over `n` fresh queues in a child (with `env`), sends `messages` stamped
/// messages spread over the queues; returns the child's idle CPU, its helper threads and the
/// sorted wake latencies.
fn run_idle_waiters(
    n: usize,
    messages: usize,
    env: &[(&str, &str)],
) -> (Duration, usize, Vec<Duration>) {
    let dir = common::tempdir();
    let queues: Vec<Queue> = (0..n)
        .map(|i| create(dir.path(), &format!("q{i}"), 8))
        .collect();
    let mut child = Child::spawn_with_env(
        dir.path(),
        "idle_waiters",
        &[
            ("dir", &dir.path().display()),
            ("queues", &n),
            ("messages", &messages),
        ],
        env,
    );
    common::wait_until(BOUND, "the idle measurement", || {
        assert!(
            !child.has_exited(),
            "the child died: {}",
            child.log_so_far()
        );
        child.report_so_far().contains("idle ")
    });
    send_stamped(&queues, (0..messages).map(|k| (k * 337) % n));
    let report = child.wait(BOUND);
    let (cpu, helpers) = parse_idle(&report);
    assert!(report.contains("threads gone"), "{report}");
    let mut lat = parse_latencies(&report);
    lat.sort();
    assert_eq!(lat.len(), messages);
    (cpu, helpers, lat)
}

/// A task awaiting an idle queue costs (next to) no CPU: over one idle second the whole
/// process uses less than 5 % of a core (a task or helper that polled would use ~100 %; what
/// is left is the crash-recovery slice: one wake-up and sweep a second). A message sent from
/// another process then wakes it.
#[test]
fn a_task_awaiting_an_idle_queue_uses_no_cpu_and_wakes_on_a_send() {
    let (cpu, helpers, lat) = run_idle_waiters(1, 10, &[]);
    eprintln!(
        "1 queue: idle CPU {cpu:?}/s, {helpers} helper thread(s), wake p50 {:?} max {:?}",
        lat[lat.len() / 2],
        lat[lat.len() - 1]
    );
    assert!(cpu < Duration::from_millis(50), "idle CPU {cpu:?} in 1 s");
    assert_eq!(helpers, 1);
}

/// 1,000 idle queues, one task each: at most ceil(1000 / 127) = 8 helper threads, next to no
/// CPU while idle, and a message on any one queue wakes its task.
#[test]
fn a_thousand_idle_queues_use_eight_threads_and_little_cpu() {
    let (cpu, helpers, lat) = run_idle_waiters(1000, 20, &[]);
    eprintln!(
        "1000 queues: idle CPU {cpu:?}/s, {helpers} helper threads, wake p50 {:?} max {:?}",
        lat[lat.len() / 2],
        lat[lat.len() - 1]
    );
    assert!(helpers <= 1000usize.div_ceil(127), "{helpers} helpers");
    assert!(cpu < Duration::from_millis(100), "idle CPU {cpu:?} in 1 s");
}

/// Without `futex_waitv` (forced by the test hook on this kernel): one helper per word, and
/// tasks are still woken by sends from another process.
#[test]
fn without_futex_waitv_one_helper_per_queue_still_wakes_every_task() {
    let (cpu, helpers, lat) = run_idle_waiters(3, 6, &[("SHMQ_TEST_NO_FUTEX_WAITV", "1")]);
    eprintln!(
        "fallback, 3 queues: idle CPU {cpu:?}/s, {helpers} helpers, wake p50 {:?}",
        lat[3]
    );
    assert_eq!(helpers, 3);
    assert!(cpu < Duration::from_millis(50), "idle CPU {cpu:?} in 1 s");
}

/// Futures dropped at random await points under load, on both sides and in two processes: every
/// message arrives exactly once, and once every future is gone no sleeper is counted.
#[test]
fn futures_dropped_at_random_points_lose_nothing_and_leave_no_sleeper() {
    const COUNT: u64 = 20_000;
    let dir = common::tempdir();
    let q = create(dir.path(), "q", 4);
    let seed = common::monotonic_ns();
    eprintln!("seed {seed}");
    let mut producer = Child::spawn(
        dir.path(),
        "cancelling_producer",
        &[
            ("queue", &q.path().display()),
            ("count", &COUNT),
            ("seed", &seed),
        ],
    );
    let seen = Arc::new(Mutex::new(vec![0u32; COUNT as usize]));
    let received = Arc::new(AtomicUsize::new(0));
    let cancelled = Arc::new(AtomicUsize::new(0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let q = Arc::new(q);
    rt.block_on(async {
        let tasks: Vec<_> = (0..4u64)
            .map(|t| {
                let (q, seen, received, cancelled) = (
                    Arc::clone(&q),
                    Arc::clone(&seen),
                    Arc::clone(&received),
                    Arc::clone(&cancelled),
                );
                tokio::spawn(async move {
                    let mut rng = Rng((seed ^ (t + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1);
                    let mut buf = [0u8; 64];
                    while received.load(Ordering::SeqCst) < COUNT as usize {
                        let seq = if t % 2 == 0 {
                            match cancel_at_random(&mut rng, q.recv_async(&mut buf)).await {
                                Some(n) => {
                                    assert_eq!(n.unwrap(), 8);
                                    u64::from_le_bytes(buf[..8].try_into().unwrap())
                                }
                                None => {
                                    cancelled.fetch_add(1, Ordering::Relaxed);
                                    continue;
                                }
                            }
                        } else {
                            match cancel_at_random(&mut rng, q.recv_in_place_async()).await {
                                Some(m) => u64::from_le_bytes(m.unwrap()[..8].try_into().unwrap()),
                                None => {
                                    cancelled.fetch_add(1, Ordering::Relaxed);
                                    continue;
                                }
                            }
                        };
                        seen.lock().unwrap()[seq as usize] += 1;
                        // Now and then a pause, so that the queue fills and the producer
                        // registers to wait for room.
                        if received.fetch_add(1, Ordering::SeqCst) % 97 == 0 {
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                    }
                })
            })
            .collect();
        // The last receives may wait for a message that never comes: stop them once all came.
        // A producer that ended without its report (it reports only after its last send)
        // will never send the rest: fail at once, with its log, rather than at the deadline.
        let deadline = Instant::now() + Duration::from_secs(120);
        while received.load(Ordering::SeqCst) < COUNT as usize {
            let ended = producer.has_exited() && producer.report_so_far().is_empty();
            if ended || Instant::now() >= deadline {
                panic!(
                    "received {received:?} of {COUNT}; the producer {}; stats {:?}; its log:\n{}",
                    if ended {
                        "ended without its report"
                    } else {
                        "runs"
                    },
                    q.stats(),
                    producer.log_so_far()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
    });
    let report = producer.wait(BOUND);
    drop(rt);
    let seen = seen.lock().unwrap();
    let wrong: Vec<_> = seen
        .iter()
        .enumerate()
        .filter(|(_, &n)| n != 1)
        .take(5)
        .collect();
    assert!(
        wrong.is_empty(),
        "messages not received exactly once: {wrong:?}"
    );
    let stats = q.stats();
    assert_eq!((stats.recv_sleepers, stats.send_sleepers), (0, 0));
    assert_eq!(
        q.try_recv(&mut [0u8; 64]).unwrap_err().to_string(),
        "queue is empty"
    );
    eprintln!(
        "producer {report}; receivers cancelled {} futures",
        cancelled.load(Ordering::Relaxed)
    );
    assert!(cancelled.load(Ordering::Relaxed) > 0);
    let producer_cancelled: u64 = report
        .strip_prefix("cancelled ")
        .and_then(|n| n.trim().parse().ok())
        .expect("the producer's report");
    assert!(producer_cancelled > 0, "no send future was dropped");
}

/// An async sleeper is counted like a blocked one: when its process is SIGKILLed, a sweep
/// takes it out of the count; the other, live one stays counted and a send wakes it.
#[test]
fn a_killed_async_sleeper_is_uncounted_and_a_live_one_still_woken() {
    let dir = common::tempdir();
    let q = create(dir.path(), "q", 8);
    let spawn = || {
        Child::spawn(
            dir.path(),
            "await_one",
            &[("queue", &q.path().display()), ("in_place", &0)],
        )
    };
    let doomed = spawn();
    common::wait_until(BOUND, "the first async sleeper", || {
        q.stats().recv_sleepers == 1
    });
    let live = spawn();
    common::wait_until(BOUND, "the second async sleeper", || {
        q.stats().recv_sleepers == 2
    });
    doomed.kill();
    assert!(q.recover(), "the sweep repairs the count");
    assert_eq!(q.stats().recv_sleepers, 1);
    q.send(b"hello").unwrap();
    assert_eq!(live.wait(BOUND), "ok hello 1");
    common::wait_until(BOUND, "no sleeper", || q.stats().recv_sleepers == 0);
}

/// A task awaiting an empty queue while the only message is held by a consumer that then dies:
/// its wait runs crash recovery between slices, so the message comes back to it.
#[test]
fn an_awaiting_task_gets_the_message_of_a_consumer_that_died() {
    let dir = common::tempdir();
    let q = create(dir.path(), "q", 8);
    q.send(b"job").unwrap();
    let holder = Child::spawn(dir.path(), "hold", &[("queue", &q.path().display())]);
    common::wait_until(BOUND, "the holder", || {
        holder.report_so_far().starts_with("held")
    });
    let waiter = Child::spawn(
        dir.path(),
        "await_one",
        &[("queue", &q.path().display()), ("in_place", &1)],
    );
    common::wait_until(BOUND, "the async sleeper", || q.stats().recv_sleepers == 1);
    let killed = Instant::now();
    holder.kill();
    assert_eq!(waiter.wait(BOUND), "ok job 2");
    eprintln!("redelivered {:?} after the kill", killed.elapsed());
}

/// A future leaked with `mem::forget` while waiting leaves its sleeper counted only until its
/// handle is dropped.
#[test]
fn a_leaked_future_is_uncounted_when_its_handle_drops() {
    let dir = common::tempdir();
    let q = create(dir.path(), "q", 8);
    let other = Queue::open(q.path()).unwrap();
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut buf = [0u8; 64];
    let mut fut = Box::pin(other.recv_async(&mut buf));
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    assert_eq!(q.stats().recv_sleepers, 1);
    std::mem::forget(fut);
    drop(other);
    assert_eq!(q.stats().recv_sleepers, 0);
    // The helper keeps serving other queues.
    let third = Queue::open(q.path()).unwrap();
    current_thread().block_on(async {
        let waiting = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            let n = third.recv_async(&mut buf).await.unwrap();
            buf[..n].to_vec()
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        q.send(b"after").unwrap();
        assert_eq!(waiting.await.unwrap(), b"after");
    });
}

/// `close` wakes a task awaiting a receive (`Closed`) and one awaiting room (`Closed`).
#[test]
fn close_wakes_awaiting_tasks_with_closed() {
    let dir = common::tempdir();
    let q = Arc::new(create(dir.path(), "q", 2));
    q.send(b"1").unwrap();
    q.send(b"2").unwrap();
    let empty = Arc::new(create(dir.path(), "e", 2));
    current_thread().block_on(async {
        let (q2, e2) = (Arc::clone(&q), Arc::clone(&empty));
        let sender = tokio::spawn(async move { q2.send_async(b"3").await });
        let receiver = tokio::spawn(async move { e2.recv_async(&mut [0u8; 64]).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(q.stats().send_sleepers, 1);
        q.close();
        empty.close();
        assert!(matches!(sender.await.unwrap(), Err(Error::Closed)));
        assert!(matches!(receiver.await.unwrap(), Err(Error::Closed)));
    });
}

/// Idle async round trips, each waiter asleep in the reactor before its peer sends: none waits
/// for a timer. A wake-up the reactor lost would be found only when its helper next wakes for
/// a deadline: a lingering word's (`IDLE_EXIT`, 250 ms) or a waiter's crash-recovery slice
/// (1 s), so a round trip that takes 200 ms or more is counted as one. (A helper that compared
/// its word with a value read after checking its waiters' epochs lost about one wake-up in
/// 10,000 this way.)
#[test]
fn idle_async_round_trips_never_wait_for_a_timer() {
    const ROUND_TRIPS: u64 = 5_000;
    let dir = common::tempdir();
    let ping = create(dir.path(), "ping", 8);
    let pong = create(dir.path(), "pong", 8);
    let (ping_path, pong_path) = (ping.path().to_path_buf(), pong.path().to_path_buf());
    let peer = std::thread::spawn(move || {
        let (ping, pong) = (
            Queue::open(ping_path).unwrap(),
            Queue::open(pong_path).unwrap(),
        );
        current_thread().block_on(async {
            let mut buf = [0u8; 64];
            while let Ok(n) = ping.recv_async(&mut buf).await {
                pong.send_async(&buf[..n]).await.unwrap();
            }
        });
    });
    let mut slow = Vec::new();
    current_thread().block_on(async {
        let mut buf = [0u8; 64];
        for seq in 0..ROUND_TRIPS {
            // The peer asleep first (its count is up just before it parks).
            common::wait_until(BOUND, "the peer to wait", || {
                ping.stats().recv_sleepers == 1
            });
            let start = Instant::now();
            ping.send_async(&seq.to_le_bytes()).await.unwrap();
            let n = pong.recv_async(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], &seq.to_le_bytes());
            if start.elapsed() >= Duration::from_millis(200) {
                slow.push((seq, start.elapsed()));
            }
        }
    });
    ping.close();
    peer.join().unwrap();
    assert!(
        slow.is_empty(),
        "round trips that waited for a timer: {slow:?}"
    );
}
