// SPDX-License-Identifier: MIT OR Apache-2.0
//! The results: the table, the JSON array, and the "× floor" ratios.
//!
//! `x_floor` puts every row beside its reference measured in the same run:
//! - round-trip rows: p50 ÷ the `floor` row's p50 (lower is better; 1.0 is the physical floor);
//! - throughput rows: msgs/s ÷ the `spsc_ring_tput` row's msgs/s, the ceiling of a queue between
//!   two processes (higher is better; 1.0 matches the minimal SPSC ring).

use super::{Kind, Outcome, Settings};
use serde_json::{json, Value};
use std::fmt::Write;

/// The reference row of each kind.
pub const RTT_REFERENCE: &str = "floor";
pub const THROUGHPUT_REFERENCE: &str = "spsc_ring_tput";

/// A measured (or failed, or unavailable) row.
pub struct Row {
    pub name: &'static str,
    pub kind: Kind,
    pub outcome: Result<Outcome, String>,
}

impl Row {
    pub fn p50(&self) -> Option<u64> {
        match &self.outcome {
            Ok(Outcome::Rtt(h)) => Some(h.value_at_quantile(0.5)),
            _ => None,
        }
    }

    fn msgs_per_sec(&self) -> Option<f64> {
        match &self.outcome {
            Ok(Outcome::Throughput(rate)) => Some(*rate),
            _ => None,
        }
    }
}

/// Each row's ratio to its reference (see the module doc), if both were measured.
pub fn x_floor(rows: &[Row], row: &Row) -> Option<f64> {
    let find = |name| rows.iter().find(|r| r.name == name);
    let ratio = match row.kind {
        Kind::Rtt => row.p50()? as f64 / find(RTT_REFERENCE)?.p50()? as f64,
        Kind::Throughput => row.msgs_per_sec()? / find(THROUGHPUT_REFERENCE)?.msgs_per_sec()?,
    };
    ratio.is_finite().then_some(ratio)
}

/// What the numbers were measured on.
pub struct Machine {
    pub cpu: String,
    pub cpus: usize,
    pub kernel: String,
    pub pinning: String,
    /// What one clock read costs here (each round-trip sample includes about one).
    pub clock_read_ns: u64,
    pub size: usize,
    pub quick: bool,
}

impl Machine {
    pub fn describe(settings: &Settings, quick: bool) -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        Machine {
            cpu,
            cpus: settings.cpus,
            kernel,
            pinning: settings.pinning.describe(),
            clock_read_ns: super::rtt::clock_read_ns(),
            size: settings.size,
            quick,
        }
    }

    /// One line: message size, CPU, kernel, pinning, run length.
    pub fn summary(&self) -> String {
        format!(
            "{}-byte messages; {}, {} CPUs, Linux {}; {}; {} run",
            self.size,
            self.cpu,
            self.cpus,
            self.kernel,
            self.pinning,
            if self.quick { "quick" } else { "full" }
        )
    }
}

fn ratio(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |x| format!("{x:.2}"))
}

/// The human-readable table.
pub fn table(machine: &Machine, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "shmq bench: {}", machine.summary());
    let rtt: Vec<&Row> = rows.iter().filter(|r| r.kind == Kind::Rtt).collect();
    if !rtt.is_empty() {
        let _ = writeln!(
            out,
            "\nRound trip, ns (two processes; crossbeam: two threads; _8, _1024: message bytes). \
             × floor = p50 / floor p50, lower is better.\n\
             Every sample includes one clock read (about {} ns here).",
            machine.clock_read_ns
        );
        let _ = writeln!(
            out,
            "{:<20} {:>9} {:>9} {:>9} {:>10} {:>8} {:>10}",
            "name", "p50", "p99", "p99.9", "max", "× floor", "samples"
        );
        for row in rtt {
            let _ = match &row.outcome {
                Ok(Outcome::Rtt(h)) => writeln!(
                    out,
                    "{:<20} {:>9} {:>9} {:>9} {:>10} {:>8} {:>10}",
                    row.name,
                    h.value_at_quantile(0.5),
                    h.value_at_quantile(0.99),
                    h.value_at_quantile(0.999),
                    h.max(),
                    ratio(x_floor(rows, row)),
                    h.len()
                ),
                other => writeln!(out, "{:<20} {}", row.name, not_measured(other)),
            };
        }
    }
    let tput: Vec<&Row> = rows.iter().filter(|r| r.kind == Kind::Throughput).collect();
    if !tput.is_empty() {
        let _ = writeln!(
            out,
            "\nOne-way throughput (two processes; NpNc: N producer and N consumer processes; \
             crossbeam: two threads).\n\
             × floor = msgs/s / spsc_ring_tput msgs/s (the ceiling), higher is better"
        );
        let _ = writeln!(out, "{:<20} {:>14} {:>8}", "name", "msgs/s", "× floor");
        for row in tput {
            let _ = match &row.outcome {
                Ok(Outcome::Throughput(rate)) => writeln!(
                    out,
                    "{:<20} {:>14} {:>8}",
                    row.name,
                    format!("{:.2} M", rate / 1e6),
                    ratio(x_floor(rows, row))
                ),
                other => writeln!(out, "{:<20} {}", row.name, not_measured(other)),
            };
        }
    }
    out
}

fn not_measured(outcome: &Result<Outcome, String>) -> String {
    match outcome {
        Ok(Outcome::Unavailable(why)) => format!("not measured: {why}"),
        Err(e) => format!("FAILED: {e}"),
        Ok(_) => "result of the wrong kind".into(),
    }
}

/// The JSON array: an object per measured row. Rows that were not measured are left out (the
/// reason goes to stderr).
pub fn json(rows: &[Row]) -> String {
    let objects: Vec<Value> = rows
        .iter()
        .filter_map(|row| {
            let x = x_floor(rows, row).map(|x| (x * 1000.0).round() / 1000.0);
            match &row.outcome {
                Ok(Outcome::Rtt(h)) => Some(json!({
                    "name": row.name,
                    "kind": "rtt",
                    "p50_ns": h.value_at_quantile(0.5),
                    "p99_ns": h.value_at_quantile(0.99),
                    "p999_ns": h.value_at_quantile(0.999),
                    "max_ns": h.max(),
                    "x_floor": x,
                })),
                Ok(Outcome::Throughput(rate)) => Some(json!({
                    "name": row.name,
                    "kind": "throughput",
                    "msgs_per_sec": rate.round(),
                    "x_floor": x,
                })),
                other => {
                    eprintln!("shmq bench: {}: {}", row.name, not_measured(other));
                    None
                }
            }
        })
        .collect();
    Value::Array(objects).to_string()
}
