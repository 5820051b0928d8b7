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
//! the bridges add at low load, one message at a time, A → B, p50 and p99; (4) the CPU each
//! process used per message (/proc/PID/stat), and the server's per-message CPU split into the
//! halves of the bridges' path: publishes with a `Nats-Msg-Id` (export's), a pull consumer with
//! confirmed acks (import's), and one with plain acks for comparison.
//! `SHMQ_BRIDGE_MESSAGES` (200,000) and `SHMQ_BRIDGE_WINDOW` (256) change the run.

mod common;

use async_nats::jetstream::stream::{Config, RetentionPolicy, StorageType};
use common::{cpu_time, export_args, import_args, message_count, runtime, Bridge, NatsServer};
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

/// Messages per second the server accepts from a pipelined async JetStream publisher (the
/// reference), into a new stream `name`; with `ids`, each publish carries a `Nats-Msg-Id` (what
/// the export bridge adds, and the server then deduplicates).
async fn plain_publisher(url: &str, name: &str, total: u64, window: usize, ids: bool) -> f64 {
    use async_nats::jetstream::message::PublishMessage;
    let client = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let subject = name.to_lowercase();
    js.create_stream(stream_config(name, &subject))
        .await
        .unwrap();
    let payload = bytes::Bytes::from(vec![7u8; LEN]);
    let started = Instant::now();
    let mut acks = std::collections::VecDeque::with_capacity(window);
    for i in 0..total {
        let ack = if ids {
            let message = PublishMessage::build()
                .payload(payload.clone())
                .message_id(i.to_string());
            js.send_publish(subject.clone(), message).await.unwrap()
        } else {
            js.publish(subject.clone(), payload.clone()).await.unwrap()
        };
        acks.push_back(ack);
        if acks.len() >= window {
            acks.pop_front().unwrap().await.unwrap();
        }
    }
    for ack in acks {
        ack.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// Messages per second a durable pull consumer takes out of stream `name` with confirmed acks,
/// `window` unconfirmed at most (what the import bridge asks of the server, without the queue);
/// with `confirmed` false, plain acks instead (for comparison: the server sends no reply).
async fn plain_consumer(url: &str, name: &str, total: u64, window: usize, confirmed: bool) -> f64 {
    use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
    use futures_util::stream::{FuturesUnordered, StreamExt};
    let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
    let consumer: PullConsumer = js
        .get_stream(name)
        .await
        .unwrap()
        .create_consumer(pull::Config {
            durable_name: Some("plain".into()),
            ack_policy: AckPolicy::Explicit,
            // Room for a window of acks in flight and as many the server has not processed yet
            // (plain acks are not waited for); the default (1000) would hold back the pulls of
            // a larger window.
            max_ack_pending: (2 * window).max(1000) as i64,
            ..Default::default()
        })
        .await
        .unwrap();
    let started = Instant::now();
    let mut got = 0;
    let mut acks = FuturesUnordered::new();
    while got < total {
        let mut batch = consumer
            .batch()
            // No more than are left: a pull for more would wait for its expiry.
            .max_messages(window.min((total - got) as usize))
            .messages()
            .await
            .unwrap();
        while let Some(msg) = batch.next().await {
            let msg = msg.unwrap();
            got += 1;
            acks.push(async move {
                if confirmed {
                    msg.double_ack().await.unwrap()
                } else {
                    msg.ack().await.unwrap()
                }
            });
            while acks.len() >= window {
                acks.next().await;
            }
        }
    }
    while acks.next().await.is_some() {}
    total as f64 / started.elapsed().as_secs_f64()
}

/// Runs `work`, returning what it returns and the CPU time that each of `pids` used meanwhile.
fn cpu_of<T>(pids: &[u32], work: impl FnOnce() -> T) -> (T, Vec<Duration>) {
    let before: Vec<Duration> = pids.iter().map(|p| cpu_time(*p)).collect();
    let out = work();
    let used = pids
        .iter()
        .zip(&before)
        .map(|(p, b)| cpu_time(*p) - *b)
        .collect();
    (out, used)
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
    let me = std::process::id();
    let w = window as usize;
    // CPU microseconds per message.
    let per = |d: &Duration| d.as_secs_f64() * 1e6 / total as f64;
    let (plain, plain_cpu) = cpu_of(&[server.pid(), me], || {
        runtime().block_on(plain_publisher(&url, "PLAIN", total, w, false))
    });
    // Where the server's time goes on the bridges' path: the publishes as export makes them
    // (with ids), and a consumer that acknowledges as import does.
    let (with_ids, ids_cpu) = cpu_of(&[server.pid(), me], || {
        runtime().block_on(plain_publisher(&url, "PLAINID", total, w, true))
    });
    let (consumed, consumer_cpu) = cpu_of(&[server.pid(), me], || {
        runtime().block_on(plain_consumer(&url, "PLAIN", total, w, true))
    });
    let (consumed_plain, plain_ack_cpu) = cpu_of(&[server.pid(), me], || {
        runtime().block_on(plain_consumer(&url, "PLAINID", total, w, false))
    });

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
    let pids = [server.pid(), export.pid(), import.pid(), me];
    let before: Vec<Duration> = pids.iter().map(|p| cpu_time(*p)).collect();
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
    let bridged_cpu: Vec<Duration> = pids
        .iter()
        .zip(&before)
        .map(|(p, b)| cpu_time(*p) - *b)
        .collect();
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
    println!(
        "CPU per message, plain publisher: server {:.1} us, publisher (this process) {:.1} us",
        per(&plain_cpu[0]),
        per(&plain_cpu[1])
    );
    println!(
        "publisher with Nats-Msg-Id: {with_ids:.0} msg/s; CPU per message: server {:.1} us, publisher {:.1} us",
        per(&ids_cpu[0]),
        per(&ids_cpu[1])
    );
    println!(
        "pull consumer with confirmed acks: {consumed:.0} msg/s; CPU per message: server {:.1} us, consumer {:.1} us",
        per(&consumer_cpu[0]),
        per(&consumer_cpu[1])
    );
    println!(
        "pull consumer with plain acks:     {consumed_plain:.0} msg/s; CPU per message: server {:.1} us, consumer {:.1} us",
        per(&plain_ack_cpu[0]),
        per(&plain_ack_cpu[1])
    );
    println!(
        "CPU per message, through both bridges: server {:.1} us, export {:.1} us, import {:.1} us, \
         producer and consumer (this process) {:.1} us",
        per(&bridged_cpu[0]),
        per(&bridged_cpu[1]),
        per(&bridged_cpu[2]),
        per(&bridged_cpu[3])
    );
    println!("export bridge: {export}\nimport bridge: {import}");
}
