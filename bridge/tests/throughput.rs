// SPDX-License-Identifier: MIT OR Apache-2.0
//! Figures, not a check (ignored; run it in release):
//!
//! ```text
//! cargo test --release -p shmq-bridge --test throughput -- --ignored --nocapture
//! ```
//!
//! In one run against one fresh `nats-server`: (1) what the server accepts from the client
//! crate's own pipelined publisher, (2) end-to-end throughput of 64-byte messages through both
//! bridges (queue A → export → JetStream → import → queue B), and their ratio; (3) the latency
//! the bridges add at low load, one message at a time, A → B, p50 and p99.
//! `SHMQ_BRIDGE_MESSAGES` (200,000) and `SHMQ_BRIDGE_WINDOW` (256) change the run.

mod common;

use async_nats::jetstream::stream::{Config, RetentionPolicy, StorageType};
use common::{export_args, import_args, message_count, runtime, Bridge, NatsServer};
use shmq::{Options, Queue};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LEN: usize = 64;

fn stream_config(name: &str, subject: &str) -> Config {
    Config {
        name: name.into(),
        subjects: vec![subject.into()],
        retention: RetentionPolicy::WorkQueue,
        storage: StorageType::File,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    }
}

/// Messages per second the server accepts from a pipelined async JetStream publisher.
async fn plain_publisher(url: &str, total: u64, window: usize) -> f64 {
    let client = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.create_stream(stream_config("PLAIN", "plain"))
        .await
        .unwrap();
    let payload = bytes::Bytes::from(vec![7u8; LEN]);
    let started = Instant::now();
    let mut acks = std::collections::VecDeque::with_capacity(window);
    for _ in 0..total {
        acks.push_back(js.publish("plain", payload.clone()).await.unwrap());
        if acks.len() >= window {
            acks.pop_front().unwrap().await.unwrap();
        }
    }
    for ack in acks {
        ack.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

#[test]
#[ignore = "prints throughput and latency figures; run in release with --nocapture"]
fn throughput_and_latency_through_both_bridges() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let url = server.url();
    let total = message_count(200_000);
    let window: u32 = std::env::var("SHMQ_BRIDGE_WINDOW")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(256);
    let plain = runtime().block_on(plain_publisher(&url, total, window as usize));

    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let queue_a = Arc::new(Queue::create(&a, Options::new(4096, LEN as u32)).unwrap());
    let queue_b = Queue::create(&b, Options::new(4096, LEN as u32)).unwrap();
    let export = Bridge::spawn(
        dir.path(),
        "export",
        &export_args(&a, &url, "BRIDGED", "bridged", window),
    );
    // The import bridge needs the stream that the export bridge creates.
    let deadline = Instant::now() + Duration::from_secs(30);
    while runtime().block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
        js.get_stream("BRIDGED").await.is_err()
    }) {
        assert!(
            Instant::now() < deadline,
            "export bridge did not create the stream"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let import = Bridge::spawn(
        dir.path(),
        "import",
        &import_args(&url, "BRIDGED", "b", window, None, &b),
    );

    // Low load first: one message at a time, A → B.
    let mut latency = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    let mut buf = [0u8; LEN];
    let msg = [1u8; LEN];
    for i in 0..1100 {
        let sent = Instant::now();
        queue_a.send(&msg).unwrap();
        queue_b
            .recv_timeout(&mut buf, Duration::from_secs(10))
            .unwrap();
        if i >= 100 {
            latency.record(sent.elapsed().as_micros() as u64).unwrap();
        }
    }

    // Then throughput: a producer fills A as fast as the bridges take it; B is drained here.
    let started = Instant::now();
    let producer = {
        let q = queue_a.clone();
        std::thread::spawn(move || {
            for _ in 0..total {
                q.send(&msg).unwrap();
            }
        })
    };
    for _ in 0..total {
        queue_b
            .recv_timeout(&mut buf, Duration::from_secs(30))
            .unwrap();
    }
    let bridged = total as f64 / started.elapsed().as_secs_f64();
    producer.join().unwrap();
    let export = export.terminate();
    let import = import.terminate();
    println!("messages: {total} of {LEN} bytes, window {window}");
    println!("plain pipelined JetStream publisher: {plain:.0} msg/s");
    println!(
        "through export + import (A -> B):   {bridged:.0} msg/s = {:.2}x the plain publisher",
        bridged / plain
    );
    println!(
        "added latency A -> B, one at a time (1000 messages): p50 {} us, p99 {} us, max {} us",
        latency.value_at_quantile(0.5),
        latency.value_at_quantile(0.99),
        latency.max()
    );
    println!("export bridge: {export}\nimport bridge: {import}");
}
