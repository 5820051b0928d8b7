// SPDX-License-Identifier: MIT OR Apache-2.0
//! What a bridge tells its operator: a progress line on a terminal while it runs, and its
//! counters as one JSON object at exit (`--json`).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Named counters of one bridge run, shared between the bridge's loop and the progress line.
pub struct Counters {
    mode: &'static str,
    names: &'static [&'static str],
    values: Vec<AtomicU64>,
    /// Messages taken and not yet acknowledged (a gauge, not a counter).
    in_flight: AtomicU64,
    started: Instant,
}

impl Counters {
    /// `names[0]` counts what the progress line's rate is made of (messages acknowledged).
    pub fn new(mode: &'static str, names: &'static [&'static str]) -> Arc<Counters> {
        Arc::new(Counters {
            mode,
            names,
            values: names.iter().map(|_| AtomicU64::new(0)).collect(),
            in_flight: AtomicU64::new(0),
            started: Instant::now(),
        })
    }

    fn index(&self, name: &str) -> usize {
        self.names
            .iter()
            .position(|n| *n == name)
            .unwrap_or_else(|| panic!("no counter named {name}"))
    }

    pub fn add(&self, name: &str, n: u64) {
        self.values[self.index(name)].fetch_add(n, Ordering::Relaxed);
    }

    pub fn set_in_flight(&self, n: usize) {
        self.in_flight.store(n as u64, Ordering::Relaxed);
    }

    /// The counters as one JSON object.
    pub fn json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        map.insert("mode".into(), self.mode.into());
        for (name, value) in self.names.iter().zip(&self.values) {
            map.insert((*name).into(), value.load(Ordering::Relaxed).into());
        }
        map.insert(
            "in_flight".into(),
            self.in_flight.load(Ordering::Relaxed).into(),
        );
        map.insert(
            "elapsed_s".into(),
            self.started.elapsed().as_secs_f64().into(),
        );
        serde_json::Value::Object(map)
    }

    /// Prints the JSON counters (if asked) and clears the progress line.
    pub fn finish(&self, json: bool) {
        if std::io::stderr().is_terminal() {
            eprint!("\r\x1b[2K");
        }
        if json {
            println!("{}", self.json());
        }
    }

    /// Redraws a one-line summary on standard error once a second, when it is a terminal.
    pub fn spawn_progress(self: &Arc<Self>) {
        if !std::io::stderr().is_terminal() {
            return;
        }
        let counters = Arc::clone(self);
        tokio::spawn(async move {
            let mut last = (Instant::now(), counters.values[0].load(Ordering::Relaxed));
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = (Instant::now(), counters.values[0].load(Ordering::Relaxed));
                let rate = (now.1 - last.1) as f64 / (now.0 - last.0).as_secs_f64();
                last = now;
                let mut err = std::io::stderr().lock();
                let _ = write!(
                    err,
                    "\r\x1b[2K{}: {:.0} msg/s, in flight {}, {} {}",
                    counters.mode,
                    rate,
                    counters.in_flight.load(Ordering::Relaxed),
                    counters.names[0],
                    now.1
                );
                let _ = err.flush();
            }
        });
    }
}
