// SPDX-License-Identifier: MIT OR Apache-2.0
//! An async worker: one tokio runtime serves several job queues, a task per queue, and sends
//! every result to one results queue. The tasks sleep while their queues are idle (shmq's own
//! helper thread wakes them; no thread per queue, no polling), and each ends when its queue is
//! closed and drained.
//!
//! ```text
//! cargo run --example async_worker -- [DIR] [QUEUES] [JOBS]
//! ```
//! Creates `QUEUES` (default 4) job queues and a results queue in `DIR` (default: a new
//! directory under /dev/shm), starts a producer process's worth of jobs from a plain thread
//! (in a real system, other processes), and prints what the worker did.

use shmq::{Error, Options, Queue};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Serves one job queue: takes each job in place, "handles" it (upper-cases it), sends the
/// result. Returns how many jobs it handled once the queue is closed and drained.
async fn serve(name: String, jobs: Arc<Queue>, results: Arc<Queue>) -> Result<u64, Error> {
    let mut handled = 0;
    loop {
        let result = match jobs.recv_in_place_async().await {
            Ok(job) => format!("{name}: {}", String::from_utf8_lossy(&job).to_uppercase()),
            Err(Error::Closed) => return Ok(handled),
            Err(e) => return Err(e),
        }; // the job's slot is freed here, as the guard drops
        results.send_async(result.as_bytes()).await?;
        handled += 1;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let scratch;
    let dir = match args.next() {
        Some(dir) => std::path::PathBuf::from(dir),
        None => {
            scratch = tempfile::Builder::new()
                .prefix("async-worker-")
                .tempdir_in("/dev/shm")
                .or_else(|_| tempfile::tempdir())?;
            scratch.path().to_path_buf()
        }
    };
    let queues: usize = args.next().map_or(Ok(4), |n| n.parse())?;
    let jobs_each: usize = args.next().map_or(Ok(25), |n| n.parse())?;

    let job_queues: Vec<Arc<Queue>> = (0..queues)
        .map(|i| Queue::create(dir.join(format!("jobs-{i}")), Options::new(64, 256)).map(Arc::new))
        .collect::<Result<_, _>>()?;
    let results = Arc::new(Queue::create(dir.join("results"), Options::new(1024, 256))?);

    // The producer: a job to each queue in turn, a millisecond apart, then close them all.
    let producer = {
        let paths: Vec<_> = job_queues.iter().map(|q| q.path().to_path_buf()).collect();
        std::thread::spawn(move || -> Result<(), Error> {
            let handles: Vec<Queue> = paths.iter().map(Queue::open).collect::<Result<_, _>>()?;
            for k in 0..jobs_each {
                for (i, q) in handles.iter().enumerate() {
                    q.send(format!("job {k} for queue {i}").as_bytes())?;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            handles.iter().for_each(|q| {
                q.close();
            });
            Ok(())
        })
    };

    let start = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let handled = runtime.block_on(async {
        let tasks: Vec<_> = job_queues
            .iter()
            .enumerate()
            .map(|(i, q)| {
                tokio::spawn(serve(
                    format!("worker {i}"),
                    Arc::clone(q),
                    Arc::clone(&results),
                ))
            })
            .collect();
        let mut handled = Vec::new();
        for task in tasks {
            handled.push(task.await.expect("worker task")?);
        }
        Ok::<_, Error>(handled)
    })?;
    producer.join().expect("producer thread")?;

    let mut buf = vec![0u8; results.max_message_size()];
    let mut last = String::new();
    let mut count = 0;
    while let Ok(n) = results.try_recv(&mut buf) {
        last = String::from_utf8_lossy(&buf[..n]).into_owned();
        count += 1;
    }
    println!(
        "async_worker: {queues} queues served by one thread in {:?}: handled {handled:?} jobs, \
         {count} results (last: {last:?})",
        start.elapsed()
    );
    Ok(())
}
