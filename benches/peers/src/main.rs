// SPDX-License-Identifier: MIT OR Apache-2.0
//! `shmq-peers`: iceoryx2 beside shmq, the floor and the SPSC ring (the ceiling any queue
//! between two processes approaches), measured in one run exactly the way
//! `shmq bench` measures (the same harness: `src/bin/shmq/bench/`, included by path), and
//! printed in the same table or JSON.
//!
//! It lives in its own workspace member so that iceoryx2 stays out of the `shmq` crate's
//! dependency tree. Run it with `cargo run --release -p shmq-peers -- [--quick] [--json]
//! [--size N] [--plot FILE.svg]`.

// The peers binary uses part of the shared measurement code (not every row, not `run`).
#[allow(dead_code)]
#[path = "../../../src/bin/shmq/bench/mod.rs"]
mod bench;
mod iceoryx2_rtt;

use clap::Parser;
use std::process::ExitCode;

/// iceoryx2 publish-subscribe round trips beside shmq busy-poll, the floor and the SPSC ring.
#[derive(Parser)]
#[command(name = "shmq-peers", version)]
struct Cli {
    #[command(flatten)]
    bench: bench::BenchArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let all = bench::measurements();
    let row = |name| {
        *all.iter()
            .find(|m| m.name == name)
            .expect("`shmq bench` has this row")
    };
    let rows = [
        row("floor"),
        row("shmq_busy"),
        row("spsc_ring"),
        bench::Measurement {
            name: "iceoryx2",
            kind: bench::Kind::Rtt,
            run: iceoryx2_rtt::iceoryx2,
        },
    ];
    match bench::run_measurements(&cli.bench, &rows) {
        Ok(results) => {
            let p50 = |name| results.iter().find(|r| r.name == name)?.p50();
            if let (false, Some(iceoryx2)) = (cli.bench.json, p50("iceoryx2")) {
                println!();
                // The ring's ratio is the lowest any queue between two processes reaches here.
                for name in ["shmq_busy", "spsc_ring"] {
                    if let Some(p50) = p50(name) {
                        println!(
                            "{name} p50 / iceoryx2 p50 = {:.2}",
                            p50 as f64 / iceoryx2 as f64
                        );
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("shmq-peers: {e}");
            ExitCode::FAILURE
        }
    }
}
