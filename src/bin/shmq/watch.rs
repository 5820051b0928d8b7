// SPDX-License-Identifier: MIT OR Apache-2.0
//! `shmq stat PATH --watch`: a live view of one queue, redrawn in place every interval: depth
//! against capacity as a bar, send and receive rates, the recovery counters with their change
//! since the view started, the participants with role and liveness.
//!
//! Every sample is a [`Queue::inspect`]: read permission only, no participant entry, no mapping,
//! so watching a queue changes nothing in it. On a terminal the view takes the alternate screen
//! in raw mode (crossterm) and ends on `q`, Esc or Ctrl-C; when stdout is not a terminal it
//! prints one `key=value` line per interval instead. Either way it ends, with status 0, when the
//! queue file goes away.
//!
//! The frame and the line are built by pure functions of two samples, so they are tested
//! without a terminal; the terminal part only positions those lines.

use crate::failure::Failure;
use crate::lifecycle::policy_name;
use crate::stat::{role, utc_timestamp};
use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::{cursor, style, terminal, QueueableCommand};
use shmq::{Error, Queue, Stats};
use std::collections::VecDeque;
use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One snapshot and when it was taken.
struct Sample {
    at: Instant,
    stats: Stats,
}

/// The rates are averaged over at least this long (or one interval, if longer): a per-interval
/// rate of a bursty queue flickers between 0 and thousands too fast to read.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// What the view remembers between samples: the first snapshot of the current file (the
/// counters' changes are shown against it) and the recent samples, oldest first, reaching back
/// at least [`RATE_WINDOW`] from the latest (the rates are measured across them).
struct History {
    first: Stats,
    recent: VecDeque<(Instant, u64, u64)>,
    latest: Sample,
}

impl History {
    fn new(first: Sample) -> Self {
        Self {
            first: first.stats.clone(),
            recent: VecDeque::from([(first.at, first.stats.sent, first.stats.received)]),
            latest: first,
        }
    }

    /// Records `next` and returns the rates across the recent samples. A queue file replaced
    /// by a new queue (another creation time) starts over, without rates.
    fn record(&mut self, next: Sample) -> Option<Rates> {
        if next.stats.created_unix_ns != self.first.created_unix_ns {
            *self = History::new(next);
            return None;
        }
        self.recent
            .push_back((next.at, next.stats.sent, next.stats.received));
        // Drop the oldest while the one after it still reaches back a whole window.
        while self.recent.len() > 2 && next.at.duration_since(self.recent[1].0) >= RATE_WINDOW {
            self.recent.pop_front();
        }
        self.latest = next;
        let (&(then, sent0, received0), &(now, sent1, received1)) =
            (self.recent.front()?, self.recent.back()?);
        let secs = now.duration_since(then).as_secs_f64().max(1e-9);
        Some(Rates {
            sent: sent1.saturating_sub(sent0) as f64 / secs,
            received: received1.saturating_sub(received0) as f64 / secs,
            over: now.duration_since(then),
        })
    }
}

/// Messages per second across `over`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Rates {
    sent: f64,
    received: f64,
    over: Duration,
}

/// `shmq stat PATH --watch --interval INTERVAL`.
pub fn watch(path: &Path, interval: Duration) -> Result<(), Failure> {
    // A zero interval would spin; a tenth of a millisecond is already far below what a terminal
    // can show.
    let interval = interval.max(Duration::from_micros(100));
    let first = sample(path)?;
    if io::stdout().is_terminal() {
        live(path, interval, first)
    } else {
        lines(path, interval, first)
    }
}

/// A sample of the queue, or `None` once its file is gone.
fn sample_or_gone(path: &Path) -> Result<Option<Sample>, Failure> {
    match Queue::inspect(path) {
        Ok(stats) => Ok(Some(Sample {
            at: Instant::now(),
            stats,
        })),
        Err(Error::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The first sample: a file missing at the start is an error, like for `shmq stat`.
fn sample(path: &Path) -> Result<Sample, Failure> {
    sample_or_gone(path)?.ok_or_else(|| Error::NotFound(path.to_path_buf()).into())
}

/// The non-terminal form: one line per interval until the file goes away or stdout's reader
/// does.
fn lines(path: &Path, interval: Duration, first: Sample) -> Result<(), Failure> {
    let mut stdout = io::stdout().lock();
    let mut history = History::new(first);
    let mut rates = None;
    loop {
        let text = line(&history.latest.stats, &history.first, rates, unix_ns());
        match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(Failure::Stdout(e)),
            Ok(()) => {}
        }
        std::thread::sleep(interval);
        match sample_or_gone(path)? {
            Some(next) => rates = history.record(next),
            None => break,
        }
    }
    writeln!(stdout, "gone path={}", path.display()).map_err(Failure::Stdout)
}

/// One interval as `key=value` pairs (logfmt), for logs and pipes.
fn line(s: &Stats, first: &Stats, rates: Option<Rates>, now_unix_ns: u64) -> String {
    let rate = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.1}"));
    let dead = s.participants.iter().filter(|p| !p.alive).count();
    let held: u32 = s.participants.iter().map(|p| p.holding).sum::<u32>() + s.unattributed_holds;
    format!(
        "time={} depth={} capacity={} sent={} received={} send_rate={} recv_rate={} \
         abandoned_sends={} abandoned_receives={} redelivered={} dead_lettered={} \
         expired={} dead_letter_failures={} in_flight={} \
         recovered_since_start={} participants={} dead={dead} held={held} closed={}",
        rfc3339(now_unix_ns),
        s.len,
        s.capacity,
        s.sent,
        s.received,
        rate(rates.map(|r| r.sent)),
        rate(rates.map(|r| r.received)),
        s.abandoned_sends,
        s.abandoned_receives,
        s.redelivered,
        s.dead_lettered,
        s.expired,
        s.dead_letter_failures,
        s.in_flight,
        recovered(s).saturating_sub(recovered(first)),
        s.participants.len(),
        s.closed,
    )
}

/// `2026-12-01T14:51:30.488Z`: [`utc_timestamp`] in RFC 3339 form, one word for logfmt.
fn rfc3339(unix_ns: u64) -> String {
    let text = utc_timestamp(unix_ns);
    let text = text.strip_suffix(" UTC").unwrap_or(&text);
    format!("{}Z", text.replacen(' ', "T", 1))
}

/// All recovery events so far (saturating: the counters come from shared memory).
fn recovered(s: &Stats) -> u64 {
    [
        s.abandoned_sends,
        s.abandoned_receives,
        s.redelivered,
        s.dead_lettered,
    ]
    .into_iter()
    .fold(0, u64::saturating_add)
}

/// The terminal form: the alternate screen, redrawn every interval and on resize.
fn live(path: &Path, interval: Duration, first: Sample) -> Result<(), Failure> {
    let screen = Screen::enter().map_err(Failure::Stdout)?;
    let mut history = History::new(first);
    let mut rates = None;
    let draw = |history: &History, rates| {
        let lines = frame(
            path,
            interval,
            &history.latest.stats,
            &history.first,
            rates,
            unix_ns(),
            screen.size(),
        );
        screen.draw(&lines).map_err(Failure::Stdout)
    };
    loop {
        draw(&history, rates)?;
        // Wait out the interval, answering keys and resizes at once.
        let deadline = history.latest.at + interval;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !event::poll(left).map_err(Failure::Stdout)? {
                break;
            }
            match event::read().map_err(Failure::Stdout)? {
                Event::Key(key) if key.kind != KeyEventKind::Release => {
                    let ctrl_c = key.code == KeyCode::Char('c')
                        && key.modifiers.contains(KeyModifiers::CONTROL);
                    if ctrl_c || matches!(key.code, KeyCode::Char('q' | 'Q') | KeyCode::Esc) {
                        return Ok(());
                    }
                }
                Event::Resize(..) => draw(&history, rates)?,
                _ => {}
            }
        }
        match sample_or_gone(path)? {
            Some(next) => rates = history.record(next),
            None => {
                drop(screen);
                println!(
                    "{}: the queue file is gone; stopped watching",
                    path.display()
                );
                return Ok(());
            }
        }
    }
}

/// The terminal in raw mode on the alternate screen with the cursor hidden, restored on drop
/// (also when a panic unwinds through the view).
struct Screen;

impl Screen {
    fn enter() -> io::Result<Self> {
        terminal::enable_raw_mode()?;
        let screen = Screen;
        let mut out = io::stdout();
        out.queue(terminal::EnterAlternateScreen)?
            .queue(cursor::Hide)?
            .queue(terminal::Clear(terminal::ClearType::All))?;
        out.flush()?;
        Ok(screen)
    }

    /// Columns and rows, or 80×24 if the terminal will not say.
    fn size(&self) -> (u16, u16) {
        terminal::size().unwrap_or((80, 24))
    }

    /// Writes `lines` from the top-left corner, each cut to the width and cleared to its end,
    /// and clears below them: only what changed moves on the screen, nothing flickers.
    fn draw(&self, lines: &[String]) -> io::Result<()> {
        let (width, height) = self.size();
        let mut out = io::stdout().lock();
        for (row, text) in lines.iter().take(usize::from(height)).enumerate() {
            let cut: String = text.chars().take(usize::from(width)).collect();
            out.queue(cursor::MoveTo(0, row as u16))?
                .queue(style::Print(cut))?
                .queue(terminal::Clear(terminal::ClearType::UntilNewLine))?;
        }
        out.queue(cursor::MoveTo(
            0,
            lines.len().min(usize::from(height)) as u16,
        ))?
        .queue(terminal::Clear(terminal::ClearType::FromCursorDown))?;
        out.flush()
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let mut out = io::stdout();
        let _ = out
            .queue(cursor::Show)
            .and_then(|o| o.queue(terminal::LeaveAlternateScreen))
            .and_then(|o| o.flush());
        let _ = terminal::disable_raw_mode();
    }
}

/// The screen's lines for the sample `s` (`first`: the first sample of this file; `rates`:
/// since the previous sample), fitted to `(columns, rows)`.
fn frame(
    path: &Path,
    interval: Duration,
    s: &Stats,
    first: &Stats,
    rates: Option<Rates>,
    now_unix_ns: u64,
    (columns, rows): (u16, u16),
) -> Vec<String> {
    let change = |now: u64, then: u64| match now.saturating_sub(then) {
        0 => String::new(),
        d => format!(" (+{d})"),
    };
    let rate = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.1}/s"));
    let max_deliveries = match s.max_deliveries {
        0 => "unlimited".to_string(),
        n => n.to_string(),
    };
    let mut lines = vec![
        format!(
            "shmq {}   every {:?}   {}   (q: quit)",
            path.display(),
            interval,
            &utc_timestamp(now_unix_ns)[11..19]
        ),
        String::new(),
        format!(
            "depth     {}  {} / {} ({:.0}%){}",
            bar(
                s.len,
                u64::from(s.capacity),
                usize::from(columns).clamp(20, 200) / 2
            ),
            s.len,
            s.capacity,
            s.len as f64 * 100.0 / f64::from(s.capacity.max(1)),
            if s.closed { "   CLOSED" } else { "" }
        ),
        format!(
            "rate      send {:>12}   receive {:>12}   (over {})",
            rate(rates.map(|r| r.sent)),
            rate(rates.map(|r| r.received)),
            rates.map_or("-".to_string(), |r| format!(
                "{:.1} s",
                r.over.as_secs_f64()
            ))
        ),
        format!(
            "total     sent {}   received {}   cancelled_sends {}",
            s.sent, s.received, s.cancelled_sends
        ),
        format!(
            "recovery  abandoned_sends {}{}   abandoned_receives {}{}   redelivered {}{}   \
             dead_lettered {}{}",
            s.abandoned_sends,
            change(s.abandoned_sends, first.abandoned_sends),
            s.abandoned_receives,
            change(s.abandoned_receives, first.abandoned_receives),
            s.redelivered,
            change(s.redelivered, first.redelivered),
            s.dead_lettered,
            change(s.dead_lettered, first.dead_lettered),
        ),
        format!(
            "holds     in_flight {}   oldest {}   expired {}{}   dead_letter_failures {}{}",
            s.in_flight,
            match s.oldest_hold_ns {
                0 => "-".to_string(),
                ns => format!("{:.1} s", ns as f64 / 1e9),
            },
            s.expired,
            change(s.expired, first.expired),
            s.dead_letter_failures,
            change(s.dead_letter_failures, first.dead_letter_failures),
        ),
        format!(
            "waits     full_waits {}{}   empty_waits {}{}   asleep: senders {} receivers {}",
            s.full_waits,
            change(s.full_waits, first.full_waits),
            s.empty_waits,
            change(s.empty_waits, first.empty_waits),
            s.send_sleepers,
            s.recv_sleepers
        ),
        format!(
            "policy    on_consumer_death {}   max_deliveries {max_deliveries}   message \
             size {} B",
            policy_name(s.on_consumer_death),
            s.max_message_size
        ),
        String::new(),
    ];
    let alive = s.participants.iter().filter(|p| p.alive).count();
    lines.push(format!(
        "participants {} ({alive} alive, {} dead)   changes in (+N) since the view started",
        s.participants.len(),
        s.participants.len() - alive
    ));
    lines.push(format!(
        "  {:<5}  {:<8}  {:<8}  {:<5}  holding",
        "index", "pid", "role", "state"
    ));
    // Leave the last row free; say how many participants did not fit.
    let room = usize::from(rows).saturating_sub(lines.len() + 1).max(1);
    let shown = if s.participants.len() > room {
        room - 1
    } else {
        room
    };
    for p in s.participants.iter().take(shown) {
        let holding = if p.holding == 0 {
            "-".to_string()
        } else if p.holding_since_unix_ns == 0 {
            p.holding.to_string()
        } else {
            let secs = now_unix_ns.saturating_sub(p.holding_since_unix_ns) as f64 / 1e9;
            format!("{} for {secs:.1} s", p.holding)
        };
        lines.push(format!(
            "  {:<5}  {:<8}  {:<8}  {:<5}  {holding}",
            p.index,
            p.pid,
            role(p),
            if p.alive { "alive" } else { "dead" }
        ));
    }
    if s.participants.len() > shown {
        lines.push(format!("  … {} more", s.participants.len() - shown));
    }
    if s.unattributed_holds != 0 {
        lines.push(format!(
            "  {} slots held by claims no participant entry names",
            s.unattributed_holds
        ));
    }
    lines
}

/// `[#####-----]`, `width` cells between the brackets, filled in proportion to `value / max`
/// (any value above 0 fills at least one cell, so a nearly empty queue still shows).
fn bar(value: u64, max: u64, width: usize) -> String {
    let width = width.max(1);
    let filled = if max == 0 || value == 0 {
        0
    } else {
        ((value as u128 * width as u128).div_ceil(max as u128) as usize).min(width)
    };
    format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real snapshot (of an empty queue) to vary.
    fn stats() -> Stats {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q");
        drop(Queue::create(&path, shmq::Options::new(8, 8)).unwrap());
        Queue::inspect(&path).unwrap()
    }

    #[test]
    fn rates_span_at_least_a_second_and_restart_with_a_new_file() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let base = stats();
        let with = |sent, received| {
            let mut s = base.clone();
            s.sent = sent;
            s.received = received;
            s
        };
        let mut history = History::new(Sample {
            at: at(0),
            stats: with(0, 0),
        });
        // Until a second has passed, the rate is over everything seen.
        let r = history.record(Sample {
            at: at(200),
            stats: with(100, 40),
        });
        assert_eq!(
            r,
            Some(Rates {
                sent: 500.0,
                received: 200.0,
                over: Duration::from_millis(200)
            })
        );
        // Then over the shortest stretch reaching back a second: the burst at 0..200 ms has left.
        let r = history
            .record(Sample {
                at: at(1400),
                stats: with(100, 100),
            })
            .unwrap();
        assert_eq!(r.over, Duration::from_millis(1200));
        assert_eq!(r.sent, 0.0);
        assert_eq!(r.received, 50.0);
        assert_eq!(history.first.sent, 0);
        // A file created anew (another creation time) starts over, without rates.
        let mut other = with(3, 3);
        other.created_unix_ns += 1;
        let r = history.record(Sample {
            at: at(1600),
            stats: other,
        });
        assert_eq!(r, None);
        assert_eq!(history.first.sent, 3);
    }

    #[test]
    fn bar_fills_in_proportion_and_shows_any_message() {
        assert_eq!(bar(0, 8, 8), "[--------]");
        assert_eq!(bar(1, 1024, 8), "[#-------]");
        assert_eq!(bar(4, 8, 8), "[####----]");
        assert_eq!(bar(8, 8, 8), "[########]");
        assert_eq!(bar(9, 8, 8), "[########]");
    }
}
