// SPDX-License-Identifier: MIT OR Apache-2.0
//! What fanout costs: `try_publish` of a 64-byte message to N `Block` subscriptions, beside
//! N plain `try_send`s of the same message to N queues (what a program that fanned out by hand
//! would pay), for N = 1, 4, 16. The target (issue 11): a publish to N subscriptions costs at
//! most 1.2× N sends. Only the sends are timed; the queues are drained between rounds of 512
//! messages, untimed.
//!
//! `cargo bench --bench topic`; compare `topic_fanout_64B/publish/N` with
//! `topic_fanout_64B/n_try_sends/N`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
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
        let dir = tempfile::Builder::new()
            .prefix("shmq-criterion-")
            .tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .expect("temporary directory");
        let topic = Topic::create(dir.path().join("topic"), TopicOptions::new(64)).unwrap();
        let subscribed: Vec<Queue> = (0..n)
            .map(|i| {
                let path = dir.path().join(format!("sub-{i}"));
                topic.subscribe(&path, Subscription::new(1024, 64)).unwrap();
                Queue::open(path).unwrap()
            })
            .collect();
        let plain: Vec<Queue> = (0..n)
            .map(|i| {
                Queue::create(
                    dir.path().join(format!("plain-{i}")),
                    Options::new(1024, 64),
                )
            })
            .collect::<Result<_, _>>()
            .unwrap();
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

criterion_group!(benches, fanout);
criterion_main!(benches);
