// SPDX-License-Identifier: MIT OR Apache-2.0
//! `shmq-bridge export` against a real `nats-server`: every message that entered the queue
//! reaches the stream exactly once, across kill -9 of the bridge and a server restart.

mod common;

use common::{
    count_by_seq, drain_stream, export_args, message, message_count, runtime, wait_drained, Bridge,
    NatsServer, Pace,
};
use shmq::{Options, Queue};
use std::time::{Duration, Instant};

#[test]
fn export_publishes_every_message_exactly_once_across_kill_9_and_a_server_restart() {
    let Some(mut server) = NatsServer::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a");
    let queue = Queue::create(&path, Options::new(8192, 64)).unwrap();
    let total = message_count(200_000) / 4;
    let url = server.url();
    let args = export_args(&path, &url, "EXP", "exp.a", 128);

    // Paced over ~8 s, so that the kills and the restart land while messages flow.
    let producer = std::thread::spawn(move || {
        let pace = Pace::new(total, Duration::from_secs(8));
        for seq in 0..total as u32 {
            pace.wait(u64::from(seq));
            queue.send(&message(0, seq, 64)).unwrap();
        }
        queue
    });
    // Kill the bridge at arbitrary instants while the producer fills the queue, and restart the
    // server once in the middle, with bridges running.
    let mut kills = 0;
    let mut restarted = false;
    let started = Instant::now();
    let mut run = 0;
    while !producer.is_finished() || kills < 3 {
        run += 1;
        let crash_server = !restarted && run == 3;
        if crash_server {
            // A backlog of thousands, so that the bridge has a full window in flight when the
            // server goes down.
            let deadline = Instant::now() + Duration::from_secs(10);
            while Queue::inspect(&path).unwrap().len < 4000 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let mut bridge = Bridge::spawn(dir.path(), &format!("export-{run}"), &args);
        if crash_server {
            bridge.wait_ready();
            std::thread::sleep(Duration::from_millis(10));
        } else {
            std::thread::sleep(Duration::from_millis(200 + (run * 137 % 400)));
        }
        if let Some(why) = bridge.exited() {
            panic!("export bridge exited: {why}");
        }
        if crash_server {
            server.restart();
            restarted = true;
            // Past the bridge's 5 s ack timeout: acks lost with the server fail, and this
            // bridge publishes those messages again (the copies that were stored are dropped).
            std::thread::sleep(Duration::from_secs(7));
        }
        if crash_server {
            // This one stops cleanly, to show whether the restart hit publishes in flight (it
            // does when the server goes down before answering them; a clean shutdown often
            // answers them all, so this is printed, not required).
            let counters = bridge.terminate();
            println!("export: the bridge across the server restart: {counters}");
            continue;
        }
        bridge.kill9();
        kills += 1;
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "producer stuck"
        );
    }
    let queue = producer.join().unwrap();
    assert!(restarted, "the server was not restarted");

    // A last bridge drains what is left, and stops cleanly.
    let bridge = Bridge::spawn(dir.path(), "export-last", &args);
    wait_drained(&queue, Duration::from_secs(120));
    let counters = bridge.terminate();
    println!("export: {kills} kills, 1 server restart, last bridge {counters}");

    let got = runtime().block_on(drain_stream(&url, "EXP", Duration::from_secs(2)));
    let seen = count_by_seq(got.iter().map(Vec::as_slice));
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    assert_eq!(seen.len() as u64, total, "lost messages");
    assert_eq!(got.len() as u64, total);
}

#[test]
fn export_of_a_queue_deleted_and_created_again_at_the_same_path_stores_both_queues_messages() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a");
    let url = server.url();
    let args = export_args(&path, &url, "EXPR", "exp.r", 64);
    let total = 200u32;
    // Two incarnations of the queue, within the stream's duplicate window: the second one's
    // message ids start from 0 again, as the first one's did.
    for incarnation in 0..2u32 {
        let queue = Queue::create(&path, Options::new(256, 64)).unwrap();
        for seq in 0..total {
            queue.send(&message(incarnation, seq, 64)).unwrap();
        }
        let bridge = Bridge::spawn(dir.path(), &format!("export-{incarnation}"), &args);
        wait_drained(&queue, Duration::from_secs(60));
        let counters = bridge.terminate();
        assert_eq!(
            counters["duplicates"], 0,
            "incarnation {incarnation}: messages taken for the other queue's: {counters}"
        );
        drop(queue);
        std::fs::remove_file(&path).unwrap();
    }
    let got = runtime().block_on(drain_stream(&url, "EXPR", Duration::from_secs(2)));
    let mut seen = std::collections::HashMap::new();
    for m in &got {
        *seen.entry(common::key(m)).or_insert(0u32) += 1;
    }
    for incarnation in 0..2 {
        let stored = (0..total)
            .filter(|seq| seen.get(&(incarnation, *seq)) == Some(&1))
            .count();
        assert_eq!(
            stored, total as usize,
            "incarnation {incarnation}: {stored} of {total} messages stored once"
        );
    }
    assert_eq!(got.len(), 2 * total as usize);
}
