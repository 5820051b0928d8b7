// SPDX-License-Identifier: MIT OR Apache-2.0
//! A crossbeam-channel program ported to shmq: a producer, four workers and a collector, joined
//! by two bounded channels that end by disconnection. Against the crossbeam original, the port
//! changes the import, `main`'s signature and its `Ok(())`, the two `bounded` calls (a file path
//! and options each, with `close_when_producers_gone` for crossbeam's disconnect) and the
//! result type: a tuple is not plain old data, so the pair is a `[u64; 2]`. Everything else,
//! clones, `iter`, `drop` to disconnect, `join`, is unchanged (see "Coming from
//! crossbeam-channel" in the crate docs). The channels are files, so the workers could as well
//! be other processes (`Queue::open_receiver` / `Queue::open_sender` on the same paths).
//!
//! ```text
//! cargo run --example crossbeam_port
//! ```

use shmq::Options;
use std::thread;

fn main() -> Result<(), shmq::Error> {
    let dir = tempfile::tempdir()?;
    let options = |size| Options::new(64, size).close_when_producers_gone(true);
    let (jobs_tx, jobs_rx) = shmq::channel::<u64>(dir.path().join("jobs"), options(8))?;
    let (results_tx, results_rx) =
        shmq::channel::<[u64; 2]>(dir.path().join("results"), options(16))?;

    let workers: Vec<_> = (0..4)
        .map(|_| {
            let jobs = jobs_rx.clone();
            let results = results_tx.clone();
            thread::spawn(move || {
                for n in jobs.iter() {
                    results.send([n, n * n]).unwrap();
                }
            })
        })
        .collect();
    drop(results_tx);

    let producer = thread::spawn(move || {
        for n in 0..10_000 {
            jobs_tx.send(n).unwrap();
        }
    });

    let mut sum = 0;
    for [n, square] in results_rx.iter() {
        assert_eq!(square, n * n);
        sum += square;
    }
    producer.join().unwrap();
    for worker in workers {
        worker.join().unwrap();
    }
    println!("sum of squares: {sum}");
    Ok(())
}
