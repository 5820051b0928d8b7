// SPDX-License-Identifier: MIT OR Apache-2.0
//! In-process cost of a send + receive pair on one thread (no other party touches the queue):
//! by message size, by batch size, and blocking calls against the non-blocking ones (on this
//! uncontended path neither waits, so the difference is the API's own overhead).
//!
//! `cargo bench --bench queue`; criterion writes HTML reports to `target/criterion/report/`.
//! Cross-process latency and throughput are `shmq bench`'s job.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shmq::{Options, Queue};
use std::hint::black_box;
use tempfile::TempDir;

/// A fresh queue of 1024 slots of `size` bytes, in /dev/shm when it exists.
fn queue(size: usize) -> (TempDir, Queue) {
    let dir = tempfile::Builder::new()
        .prefix("shmq-criterion-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("temporary directory");
    let q = Queue::create(dir.path().join("q"), Options::new(1024, size as u32)).expect("queue");
    (dir, q)
}

fn by_size(c: &mut Criterion) {
    let mut group = c.benchmark_group("send_recv_by_size");
    for size in [8usize, 64, 256, 1024, 4096] {
        let (_dir, q) = queue(size);
        let msg = vec![0x5au8; size];
        let mut buf = vec![0u8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::from_parameter(size), |b| {
            b.iter(|| {
                q.try_send(black_box(&msg)).unwrap();
                black_box(q.try_recv(&mut buf).unwrap());
            })
        });
    }
    group.finish();
}

fn by_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("send_recv_batch_64B");
    for batch in [1usize, 8, 32, 128] {
        let (_dir, q) = queue(64);
        let msg = [0x5au8; 64];
        let msgs = vec![&msg[..]; batch];
        let mut buf = [0u8; 64];
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(BenchmarkId::from_parameter(batch), |b| {
            b.iter(|| {
                assert_eq!(q.try_send_batch(black_box(&msgs)).unwrap(), batch);
                let got = q
                    .try_recv_batch(batch, |m| buf[..m.len()].copy_from_slice(m))
                    .unwrap();
                black_box((got, &buf));
            })
        });
    }
    group.finish();
}

fn blocking_vs_busy(c: &mut Criterion) {
    let mut group = c.benchmark_group("blocking_vs_busy_64B");
    let (_dir, q) = queue(64);
    let msg = [0x5au8; 64];
    let mut buf = [0u8; 64];
    group.throughput(Throughput::Elements(1));
    group.bench_function("try_send+try_recv", |b| {
        b.iter(|| {
            q.try_send(black_box(&msg)).unwrap();
            black_box(q.try_recv(&mut buf).unwrap());
        })
    });
    group.bench_function("send+recv", |b| {
        b.iter(|| {
            q.send(black_box(&msg)).unwrap();
            black_box(q.recv(&mut buf).unwrap());
        })
    });
    group.bench_function("try_reserve+try_recv_in_place", |b| {
        b.iter(|| {
            let mut slot = q.try_reserve().unwrap();
            slot[..64].copy_from_slice(black_box(&msg));
            slot.commit(64).unwrap();
            let got = q.try_recv_in_place().unwrap();
            black_box(&*got);
        })
    });
    group.finish();
}

criterion_group!(benches, by_size, by_batch, blocking_vs_busy);
criterion_main!(benches);
