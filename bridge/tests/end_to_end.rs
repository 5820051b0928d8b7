// SPDX-License-Identifier: MIT OR Apache-2.0
//! Two hosts' worth of processes on one machine: 2 producers → queue A → export → JetStream →
//! import → queue B → 2 consumers, with both bridges SIGKILLed every ~2 s and restarted, and the
//! server SIGKILLed once and restarted (a crash, not a shutdown: nothing it held unwritten
//! survives). Nothing may be lost; duplicates are counted and printed.

mod common;

use common::{export_args, import_args, message, message_count, Bridge, NatsServer};
use shmq::{Options, Queue};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn end_to_end_two_producers_two_consumers_lose_nothing_across_bridge_kills_and_a_server_crash() {
    let Some(mut server) = NatsServer::start() else {
        return;
    };
    let url = server.url();
    let total = message_count(200_000);
    let per_producer = total / 2;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let queue_a = Queue::create(&a, Options::new(4096, 64)).unwrap();
    let queue_b = Arc::new(Queue::create(&b, Options::new(4096, 64)).unwrap());
    let export_args = export_args(&a, &url, "E2E", "e2e", 256);
    let import_args = import_args(&url, "E2E", "b", 256, Some(2), &b);

    let queue_a = Arc::new(queue_a);
    let producers: Vec<_> = (0..2u32)
        .map(|p| {
            let q = queue_a.clone();
            std::thread::spawn(move || {
                for seq in 0..per_producer as u32 {
                    q.send(&message(p, seq, 64)).unwrap();
                }
            })
        })
        .collect();
    let counts: Arc<Vec<AtomicU8>> = Arc::new((0..total).map(|_| AtomicU8::new(0)).collect());
    let distinct = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let (q, counts, distinct, received, stop) = (
                queue_b.clone(),
                counts.clone(),
                distinct.clone(),
                received.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                while !stop.load(Ordering::Relaxed) {
                    match q.recv_timeout(&mut buf, Duration::from_millis(50)) {
                        Ok(n) => {
                            let (p, seq) = common::key(&buf[..n]);
                            let i = p as usize * per_producer as usize + seq as usize;
                            if counts[i].fetch_add(1, Ordering::Relaxed) == 0 {
                                distinct.fetch_add(1, Ordering::Relaxed);
                            }
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(shmq::Error::Timeout) => {}
                        Err(e) => panic!("recv: {e}"),
                    }
                }
            })
        })
        .collect();

    // Both bridges run all along; each is SIGKILLed every ~2 s (the import one 1 s out of
    // phase) and restarted at once. The server restarts once, a third of the way through.
    let started = Instant::now();
    let mut export = Bridge::spawn(dir.path(), "export-0", &export_args);
    export.wait_ready();
    let mut import = Bridge::spawn(dir.path(), "import-0", &import_args);
    import.wait_ready();
    let (mut export_kills, mut import_kills, mut restarted) = (0u32, 0u32, false);
    let mut tick = 0u32;
    // At least 4 ticks: two kills of each bridge and the restart, however small the run.
    while distinct.load(Ordering::Relaxed) < total || tick < 4 {
        std::thread::sleep(Duration::from_millis(1000));
        tick += 1;
        for bridge in [&mut export, &mut import] {
            if let Some(why) = bridge.exited() {
                panic!("a bridge exited: {why}");
            }
        }
        // Bridges running, set up and connected: the server's crash hits them mid-stream.
        if !restarted && (distinct.load(Ordering::Relaxed) >= total / 3 || tick == 3) {
            server.kill9_and_restart();
            restarted = true;
        }
        if tick.is_multiple_of(2) {
            export_kills += 1;
            std::mem::replace(
                &mut export,
                Bridge::spawn(dir.path(), &format!("export-{export_kills}"), &export_args),
            )
            .kill9();
            export.wait_ready();
        } else {
            import_kills += 1;
            std::mem::replace(
                &mut import,
                Bridge::spawn(dir.path(), &format!("import-{import_kills}"), &import_args),
            )
            .kill9();
            import.wait_ready();
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "only {} of {total} arrived",
            distinct.load(Ordering::Relaxed)
        );
    }
    let elapsed = started.elapsed();
    for p in producers {
        p.join().unwrap();
    }
    // Let what the last killed importer left come again, then stop everything cleanly.
    std::thread::sleep(Duration::from_secs(3));
    let export_counters = export.terminate();
    let import_counters = import.terminate();
    stop.store(true, Ordering::Relaxed);
    for c in consumers {
        c.join().unwrap();
    }
    let received = received.load(Ordering::Relaxed);
    let lost = total - distinct.load(Ordering::Relaxed);
    println!(
        "end to end: {total} messages, {export_kills} export kills, {import_kills} import kills, \
         1 server restart, {:.1} s; lost {lost}, duplicates {}",
        elapsed.as_secs_f64(),
        received - total + lost
    );
    println!("last export bridge: {export_counters}\nlast import bridge: {import_counters}");
    assert!(restarted, "the server was not restarted");
    assert!(
        export_kills >= 2 && import_kills >= 2,
        "too few kills to mean anything"
    );
    assert_eq!(lost, 0);
}
