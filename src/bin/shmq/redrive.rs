// SPDX-License-Identifier: MIT OR Apache-2.0
//! `shmq redrive DLQ --to QUEUE [--count N]`: moves messages back from a dead-letter queue with
//! [`Queue::redrive_to_with_progress`] (exactly once, even if killed and run again: see the
//! library's `redrive` module), drawing a progress bar on standard error when it is a terminal,
//! and printing one summary line on standard output.

use crate::failure::Failure;
use shmq::Queue;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// Least time between two redraws of the progress bar.
const REDRAW: Duration = Duration::from_millis(100);
/// Width of the bar, in characters.
const BAR: usize = 30;

pub fn redrive(
    dlq_path: &Path,
    to_path: &Path,
    count: Option<u64>,
    forget_interrupted: bool,
) -> Result<(), Failure> {
    let dlq = Queue::open(dlq_path)?;
    let to = Queue::open(to_path)?;
    if forget_interrupted {
        if let Some(source) = to.forget_interrupted_redrive()? {
            println!(
                "forgot an interrupted redrive into {} from the queue with identity {source}",
                to_path.display()
            );
        }
    }
    let terminal = std::io::stderr().is_terminal();
    // What there is to move now (messages that arrive meanwhile are moved too), for the bar
    // only: `stats` reads every slot's state.
    let expected = if terminal {
        let queued = dlq.stats().len;
        count.map_or(queued, |n| n.min(queued))
    } else {
        0
    };
    let started = Instant::now();
    let mut drawn: Option<Instant> = None;
    let result = dlq.redrive_to_with_progress(&to, count, |moved| {
        if terminal && drawn.is_none_or(|at| at.elapsed() >= REDRAW) {
            draw(moved, expected);
            drawn = Some(Instant::now());
        }
    });
    if terminal && drawn.is_some() {
        eprint!("\r\x1b[2K");
    }
    let moved = result?;
    let left = dlq.stats().len;
    println!(
        "moved {moved} message{} from {} to {} in {:.1} s; {left} left in {}",
        if moved == 1 { "" } else { "s" },
        dlq_path.display(),
        to_path.display(),
        started.elapsed().as_secs_f64(),
        dlq_path.display(),
    );
    Ok(())
}

fn draw(moved: u64, expected: u64) {
    let total = expected.max(moved).max(1);
    let filled = (moved as usize * BAR) / total as usize;
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "\r\x1b[2Kredrive [{}{}] {moved}/{total}",
        "#".repeat(filled),
        " ".repeat(BAR - filled)
    );
    let _ = err.flush();
}
