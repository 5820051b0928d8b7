// SPDX-License-Identifier: MIT OR Apache-2.0
//! `nats-server` SIGKILLed (not stopped) while messages flow: what JetStream acknowledged
//! stays in the stream, and the export bridge, which releases a message only on that
//! acknowledgement, loses nothing and stores nothing twice.

mod common;

use common::{
    count_by_seq, drain_stream_with_seq, export_args, message, runtime, wait_drained, Bridge,
    NatsServer,
};
use shmq::{Options, Queue};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `jetstream { }` lines of the servers here: `SHMQ_BRIDGE_SYNC` (e.g. `always`) sets
/// `sync_interval`; by default the server's own (an fsync every 2 minutes).
fn jetstream_config() -> String {
    match std::env::var("SHMQ_BRIDGE_SYNC") {
        Ok(interval) => format!("sync_interval: {interval}"),
        Err(_) => String::new(),
    }
}

/// The evidence about the server alone, without the bridge: a pipelined publisher records every
/// PubAck (message id → stream sequence) while the server is SIGKILLed at arbitrary instants;
/// afterwards every acknowledged message is in the stream at the sequence its ack named.
#[test]
fn every_publish_the_server_acknowledged_survives_its_sigkill() {
    let Some(mut server) = NatsServer::start_with(&jetstream_config()) else {
        return;
    };
    let url = server.url();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "ACKED".into(),
            subjects: vec!["acked".into()],
            storage: async_nats::jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await
        .unwrap();
    });
    let acked: Arc<Mutex<HashMap<u32, u64>>> = Arc::default();
    let kills = 3;
    let mut next_id = 0u32;
    for round in 0..kills {
        // A publisher with 256 publishes in flight, until the server dies under it.
        let publisher = {
            let (url, acked) = (url.clone(), acked.clone());
            let first = next_id;
            rt.spawn(async move {
                let client = async_nats::ConnectOptions::new()
                    .max_reconnects(Some(0))
                    .connect(&url)
                    .await
                    .unwrap();
                let js = async_nats::jetstream::new(client);
                let mut window = std::collections::VecDeque::new();
                for id in first.. {
                    let payload = message(0, id, 64);
                    let Ok(ack) = js.publish("acked", payload.into()).await else {
                        return;
                    };
                    window.push_back((id, ack));
                    if window.len() >= 256 {
                        let (id, ack) = window.pop_front().unwrap();
                        match ack.await {
                            Ok(ack) => {
                                acked.lock().unwrap().insert(id, ack.sequence);
                            }
                            Err(_) => return,
                        }
                    }
                }
            })
        };
        // Kill it once the publisher is well under way (a few hundred acks more, varied per
        // round, so the kills land at different points of the window).
        let start = acked.lock().unwrap().len();
        let deadline = Instant::now() + Duration::from_secs(20);
        while acked.lock().unwrap().len() < start + 300 + 97 * round as usize {
            assert!(Instant::now() < deadline, "the publisher is stuck");
            std::thread::sleep(Duration::from_millis(1));
        }
        server.kill9_and_restart();
        rt.block_on(async {
            let _ = tokio::time::timeout(Duration::from_secs(10), publisher).await;
        });
        next_id = acked.lock().unwrap().keys().max().unwrap() + 100_000;
    }
    let stored = runtime().block_on(drain_stream_with_seq(&url, "ACKED", Duration::from_secs(2)));
    let by_seq: HashMap<u64, (u32, u32)> = stored
        .iter()
        .map(|(seq, payload)| (*seq, common::key(payload)))
        .collect();
    let acked = acked.lock().unwrap();
    let missing: Vec<_> = acked
        .iter()
        .filter(|(id, seq)| by_seq.get(seq).map(|k| k.1) != Some(**id))
        .map(|(id, seq)| (*id, *seq))
        .collect();
    println!(
        "server alone: {kills} SIGKILLs, {} publishes acknowledged, {} stored, {} acknowledged and missing",
        acked.len(),
        stored.len(),
        missing.len()
    );
    assert!(
        missing.is_empty(),
        "acknowledged (id, seq) not in the stream after SIGKILL: {:?} ... ({} in all); server log:\n{}",
        &missing[..missing.len().min(10)],
        missing.len(),
        server.log()
    );
}

/// The bridge across server crashes: one export bridge runs throughout while the server is
/// SIGKILLed three times with a full window in flight; every message reaches the stream exactly
/// once.
#[test]
fn export_stores_every_message_exactly_once_across_server_sigkills() {
    let Some(mut server) = NatsServer::start_with(&jetstream_config()) else {
        return;
    };
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a");
    let total: u32 = 20_000;
    // Room for all of them: the sends here never wait for the bridge.
    let queue = Queue::create(&path, Options::new(32768, 64)).unwrap();
    for seq in 0..total / 2 {
        queue.send(&message(0, seq, 64)).unwrap();
    }
    let mut bridge = Bridge::spawn(
        dir.path(),
        "export",
        &export_args(&path, &url, "CRASH", "crash", 256),
    );
    bridge.wait_ready();
    let kills = 3;
    let mut sent = total / 2;
    for kill in 0..kills {
        // Let the bridge get going (its window full), then kill the server under it, and
        // give the queue more while the server is away.
        let acked_before = queue.stats().len;
        let deadline = Instant::now() + Duration::from_secs(20);
        while queue.stats().len + 500 > acked_before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(37 * kill));
        server.kill9_and_restart();
        let more = (total - sent) / (kills - kill) as u32;
        for seq in sent..sent + more {
            queue.send(&message(0, seq, 64)).unwrap();
        }
        sent += more;
        if let Some(why) = bridge.exited() {
            panic!("export bridge exited: {why}");
        }
    }
    assert_eq!(sent, total);
    wait_drained(&queue, Duration::from_secs(60));
    let counters = bridge.terminate();
    let stored = runtime().block_on(drain_stream_with_seq(&url, "CRASH", Duration::from_secs(2)));
    let seen = count_by_seq(stored.iter().map(|(_, m)| m.as_slice()));
    let lost: Vec<u32> = (0..total).filter(|s| !seen.contains_key(s)).collect();
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    println!(
        "export across {kills} server SIGKILLs: {total} messages, {} stored, lost {}, stored twice {}; bridge {counters}",
        stored.len(),
        lost.len(),
        seen.values().filter(|n| **n > 1).count()
    );
    assert!(
        lost.is_empty(),
        "lost {} messages, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    assert_eq!(stored.len(), total as usize);
}
