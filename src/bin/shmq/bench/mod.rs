// SPDX-License-Identifier: MIT OR Apache-2.0
//! `shmq bench`: shmq beside the physical floor and the mechanisms people would otherwise pick,
//! measured on this machine in one run.
//!
//! Every measurement is a [`Measurement`]: a row name, a kind, and a function that returns an
//! [`Outcome`]. Round trips ([`rtt`]) are ping-pongs between two processes (the second is a
//! forked [`peer`], pinned to another CPU); every round trip is a sample, and the percentiles
//! come from all of them (hdrhistogram). One-way throughputs ([`throughput`]) count what a
//! consumer receives while a producer in the other process sends as fast as it can. [`report`]
//! prints the table or the JSON array, [`plot`] draws the percentiles.
//!
//! The module depends on nothing else in the `shmq` binary, so that the iceoryx2 comparison in
//! `benches/peers` includes it by path and measures exactly the same way.

mod async_rtt;
pub mod peer;
mod plot;
pub mod report;
pub mod rtt;
mod spsc;
mod throughput;

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use peer::Pinning;
use std::path::PathBuf;
use std::time::Duration;

/// Options of `shmq bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Message size in bytes (8 to 65536); the floor moves no payload.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(8..=65536))]
    pub size: u32,
    /// A short run (under 10 s): one round of every row. The default run measures every row in
    /// five interleaved rounds (about 75 s).
    #[arg(long)]
    pub quick: bool,
    /// Print one JSON array on stdout (an object per row) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also draw the round-trip latency percentiles of every mechanism into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Measure only these rows (comma-separated names, e.g. `floor,shmq_busy`).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub only: Vec<String>,
}

/// What a row measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Round-trip latency: p50, p99, p99.9 and max of every sample.
    Rtt,
    /// One-way throughput in messages per second.
    Throughput,
}

/// What a measurement produced.
pub enum Outcome {
    /// One sample per round trip, in nanoseconds.
    Rtt(Histogram<u64>),
    /// Messages received per second.
    Throughput(f64),
    /// The mechanism cannot run here (the reason says why); nothing was measured.
    Unavailable(String),
}

/// One row of the benchmark.
#[derive(Clone, Copy)]
pub struct Measurement {
    /// The row name (a contract: scripts read these).
    pub name: &'static str,
    pub kind: Kind,
    pub run: fn(&Settings) -> Result<Outcome, String>,
}

/// How long and on what a run measures; shared by every measurement.
pub struct Settings {
    /// How many times every row is measured, round-robin; its rounds are merged.
    pub rounds: usize,
    /// Payload bytes per message.
    pub size: usize,
    /// Time spent before recording, per row and round (caches, page faults, CPU frequency).
    pub warmup: Duration,
    /// Recorded time per round-trip row and round.
    pub rtt_time: Duration,
    /// Recorded time per throughput row and round.
    pub tput_time: Duration,
    /// CPUs this process could run on before it pinned itself.
    pub cpus: usize,
    /// Where this process and its peers run.
    pub pinning: Pinning,
    /// A private directory for queue files (under /dev/shm when it exists), removed at the end.
    pub dir: tempfile::TempDir,
    /// Queue files made so far (see `queue_path`).
    pub queues_made: std::sync::atomic::AtomicU32,
}

impl Settings {
    /// The longest any one wait on a peer may take before the peer is declared broken.
    pub fn peer_limit(&self) -> Duration {
        self.warmup + self.rtt_time.max(self.tput_time) + Duration::from_secs(10)
    }

    /// Slots of the queues and rings: 1024, fewer for large messages (at most 16 MiB a ring).
    pub fn capacity(&self) -> u32 {
        capacity_for(self.size)
    }

    /// A new path for a queue file in the run's directory: `name` and a number, so that every
    /// round of a row gets fresh queues.
    pub fn queue_path(&self, name: &str) -> PathBuf {
        let n = self
            .queues_made
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.dir.path().join(format!("{name}-{n}"))
    }
}

/// Every row `shmq bench` measures, in the order of the table.
pub fn measurements() -> Vec<Measurement> {
    use Kind::{Rtt, Throughput};
    let m = |name, kind, run| Measurement { name, kind, run };
    vec![
        m("floor", Rtt, rtt::floor),
        m("shmq_busy", Rtt, rtt::shmq_busy),
        m("shmq_busy_8", Rtt, rtt::shmq_busy_8),
        m("shmq_busy_1024", Rtt, rtt::shmq_busy_1024),
        m("shmq_blocking", Rtt, rtt::shmq_blocking),
        m("shmq_blocking_idle", Rtt, rtt::shmq_blocking_idle),
        m("shmq_async_busy", Rtt, async_rtt::shmq_async_busy),
        m("shmq_async_idle", Rtt, async_rtt::shmq_async_idle),
        m(
            "shmq_async_idle_1000q",
            Rtt,
            async_rtt::shmq_async_idle_1000q,
        ),
        m("futex", Rtt, rtt::futex),
        m("pipe", Rtt, rtt::pipe),
        m("uds", Rtt, rtt::uds),
        m("posix_mq", Rtt, rtt::posix_mq),
        m("spsc_ring", Rtt, rtt::spsc_ring),
        m("crossbeam", Rtt, rtt::crossbeam),
        m("shmq_tput", Throughput, throughput::shmq_tput),
        m(
            "shmq_tput_batch32",
            Throughput,
            throughput::shmq_tput_batch32,
        ),
        m("shmq_tput_2p2c", Throughput, throughput::shmq_tput_2p2c),
        m("shmq_tput_4p4c", Throughput, throughput::shmq_tput_4p4c),
        m("spsc_ring_tput", Throughput, throughput::spsc_ring_tput),
        m("crossbeam_tput", Throughput, throughput::crossbeam_tput),
    ]
}

/// Runs `shmq bench`.
pub fn run(args: &BenchArgs) -> Result<(), String> {
    run_measurements(args, &measurements()).map(drop)
}

/// Measures `rows` (those named by `--only`, if given), then prints the table or the JSON and
/// draws the plot; returns the results. Fails if a measurement broke (a mechanism that cannot
/// run here is reported, not a failure).
pub fn run_measurements(
    args: &BenchArgs,
    rows: &[Measurement],
) -> Result<Vec<report::Row>, String> {
    for name in &args.only {
        if !rows.iter().any(|m| m.name == name) {
            let known: Vec<_> = rows.iter().map(|m| m.name).collect();
            return Err(format!("no row named {name:?}; rows: {}", known.join(", ")));
        }
    }
    let selected: Vec<&Measurement> = rows
        .iter()
        .filter(|m| args.only.is_empty() || args.only.iter().any(|n| n == m.name))
        .collect();
    let settings = settings(args)?;
    let rounds = settings.rounds;

    let progress = ProgressBar::with_draw_target(
        Some((selected.len() * rounds) as u64),
        ProgressDrawTarget::stderr(),
    );
    progress.set_style(
        ProgressStyle::with_template("shmq bench [{bar:30}] {pos}/{len} {msg}")
            .map_err(|e| e.to_string())?
            .progress_chars("=> "),
    );
    // Round-robin: every row is measured once per round, and its rounds are merged. On a shared
    // machine the noise comes and goes in phases of seconds; measured one after another, one
    // row could take a quiet phase and the next a noisy one, and their ratio would say nothing.
    // Interleaved, every row sees the same mix of phases.
    let mut outcomes: Vec<Option<Result<Outcome, String>>> =
        selected.iter().map(|_| None).collect();
    for round in 0..rounds {
        for (m, merged) in selected.iter().zip(&mut outcomes) {
            progress.set_message(format!("{} (round {}/{rounds})", m.name, round + 1));
            let keep_going = !matches!(merged, Some(Err(_)) | Some(Ok(Outcome::Unavailable(_))));
            if keep_going {
                let outcome = (m.run)(&settings);
                *merged = Some(match merged.take() {
                    None => outcome,
                    Some(Ok(before)) => outcome.and_then(|now| merge(before, now)),
                    Some(done) => done,
                });
            }
            progress.inc(1);
        }
    }
    progress.finish_and_clear();
    let results: Vec<report::Row> = selected
        .iter()
        .zip(outcomes)
        .map(|(m, outcome)| report::Row {
            name: m.name,
            kind: m.kind,
            outcome: outcome
                .unwrap_or_else(|| Err("not measured".into()))
                .map(|o| match o {
                    Outcome::Throughput(sum) => Outcome::Throughput(sum / rounds as f64),
                    other => other,
                }),
        })
        .collect();

    let machine = report::Machine::describe(&settings, args.quick);
    if args.json {
        println!("{}", report::json(&results));
    } else {
        print!("{}", report::table(&machine, &results));
    }
    if let Some(path) = &args.plot {
        plot::draw(path, &machine, &results)?;
        eprintln!("shmq bench: wrote {}", path.display());
    }
    let broken: Vec<String> = results
        .iter()
        .filter_map(|r| match &r.outcome {
            Err(e) => Some(format!("{}: {e}", r.name)),
            Ok(_) => None,
        })
        .collect();
    if broken.is_empty() {
        Ok(results)
    } else {
        Err(format!("measurement failed: {}", broken.join("; ")))
    }
}

/// Adds one round's outcome to the rounds before it: round-trip samples are merged into one
/// histogram; throughputs are summed (every round lasts as long, so `run_measurements` divides
/// the sum by the number of rounds).
fn merge(before: Outcome, now: Outcome) -> Result<Outcome, String> {
    match (before, now) {
        (Outcome::Rtt(mut all), Outcome::Rtt(more)) => {
            all.add(&more).map_err(|e| format!("merging rounds: {e}"))?;
            Ok(Outcome::Rtt(all))
        }
        (Outcome::Throughput(a), Outcome::Throughput(b)) => Ok(Outcome::Throughput(a + b)),
        (_, unavailable @ Outcome::Unavailable(_)) => Ok(unavailable),
        _ => Err("a row changed kind between rounds".into()),
    }
}

fn settings(args: &BenchArgs) -> Result<Settings, String> {
    // Per round: the full run is five rounds of every row (about 70 s in all), `--quick` one.
    let (rounds, warmup, rtt_time, tput_time) = if args.quick {
        (1, ms(100), ms(300), ms(300))
    } else {
        (5, ms(150), ms(900), ms(700))
    };
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = tempfile::Builder::new()
        .prefix("shmq-bench-")
        .tempdir_in(&base)
        .map_err(|e| format!("cannot make a directory in {}: {e}", base.display()))?;
    let cpus = peer::allowed_cpus()?.len();
    Ok(Settings {
        rounds,
        size: args.size as usize,
        cpus,
        warmup,
        rtt_time,
        tput_time,
        pinning: Pinning::setup()?,
        dir,
        queues_made: std::sync::atomic::AtomicU32::new(0),
    })
}

/// Slots of a queue or ring of `size`-byte messages (see `Settings::capacity`).
pub fn capacity_for(size: usize) -> u32 {
    ((16 << 20) / size).clamp(16, 1024).next_power_of_two() as u32
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
