// SPDX-License-Identifier: MIT OR Apache-2.0
//! What fanout costs: `try_publish` of a 64-byte message to N `Block` subscriptions, beside
//! N plain `try_send`s of the same message to N queues (what a program that fanned out by hand
//! would pay), for N = 1, 4, 16. The target (issue 11): a publish to N subscriptions costs at
//! most 1.2× N sends. Only the sends are timed; the queues are drained between rounds of 512
//! messages, untimed.
//!
//! `cargo bench --bench topic`. Criterion measures `topic_fanout_64B/publish/N` and
//! `topic_fanout_64B/n_try_sends/N` one after the other, so on a shared machine load that comes
//! and goes lands on one and not the other; the bench therefore first prints the ratios from
//! interleaved rounds (a round of publishes, then a round of sends, 300 times; the fastest
//! round of each), which is the figure to compare with the target.

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use shmq::{Options, Queue, Subscription, Topic, TopicOptions};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Messages sent per timed round; the queues hold 1024, so a round never finds one full.
const ROUND: u64 = 512;

fn drain(queues: &[Queue]) {
    for q in queues {
        while q
            .try_recv_batch(1024, |m| {
                black_box(m);
            })
            .is_ok()
        {}
    }
}

/// Times `iters` calls of `send`, in rounds of `ROUND` with the queues drained in between.
fn timed(iters: u64, queues: &[Queue], mut send: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(ROUND);
        let start = Instant::now();
        for _ in 0..n {
            send();
        }
        total += start.elapsed();
        drain(queues);
        left -= n;
    }
    total
}

fn fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("topic_fanout_64B");
    let msg = [0x5au8; 64];
    for n in [1usize, 4, 16] {
        let (_dir, topic, subscribed, plain) = setup(n);
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("publish", n), |b| {
            b.iter_custom(|iters| {
                timed(iters, &subscribed, || {
                    topic.try_publish(black_box(&msg)).unwrap()
                })
            })
        });
        group.bench_function(BenchmarkId::new("n_try_sends", n), |b| {
            b.iter_custom(|iters| {
                timed(iters, &plain, || {
                    for q in &plain {
                        q.try_send(black_box(&msg)).unwrap();
                    }
                })
            })
        });
    }
    group.finish();
}

/// A topic with `n` subscriptions and `n` plain queues beside it, in a fresh directory.
fn setup(n: usize) -> (tempfile::TempDir, Topic, Vec<Queue>, Vec<Queue>) {
    let dir = tempfile::Builder::new()
        .prefix("shmq-criterion-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("temporary directory");
    let topic = Topic::create(dir.path().join("topic"), TopicOptions::new(64)).unwrap();
    let subscribed = (0..n)
        .map(|i| {
            let path = dir.path().join(format!("sub-{i}"));
            topic.subscribe(&path, Subscription::new(1024, 64)).unwrap();
            Queue::open(path).unwrap()
        })
        .collect();
    let plain = (0..n)
        .map(|i| {
            Queue::create(
                dir.path().join(format!("plain-{i}")),
                Options::new(1024, 64),
            )
        })
        .collect::<Result<_, _>>()
        .unwrap();
    (dir, topic, subscribed, plain)
}

/// Prints, for each N, the fastest of 300 interleaved rounds of publishes and of N sends, and
/// their ratio.
fn interleaved_ratios() {
    let msg = [0x5au8; 64];
    println!("publish to N subscriptions vs N try_sends, 64 B, interleaved rounds of {ROUND}:");
    for n in [1usize, 4, 16] {
        let (_dir, topic, subscribed, plain) = setup(n);
        let (mut publish, mut sends) = (f64::MAX, f64::MAX);
        for _ in 0..300 {
            let t = timed(ROUND, &subscribed, || {
                topic.try_publish(black_box(&msg)).unwrap()
            });
            publish = publish.min(t.as_nanos() as f64 / ROUND as f64);
            let t = timed(ROUND, &plain, || {
                for q in &plain {
                    q.try_send(black_box(&msg)).unwrap();
                }
            });
            sends = sends.min(t.as_nanos() as f64 / ROUND as f64);
        }
        println!(
            "  N = {n:>2}: publish {publish:>6.0} ns, {n:>2} try_sends {sends:>6.0} ns, ratio {:.2}",
            publish / sends
        );
    }
}

criterion_group!(benches, fanout);

fn main() {
    interleaved_ratios();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
