// SPDX-License-Identifier: MIT OR Apache-2.0
//! `shmq stat`: a queue's header fields and counters ([`shmq::Stats`]), as an aligned table or as
//! one JSON object whose keys are the `Stats` field names.
//!
//! The participants are listed after the counters: each handle that has the queue open, or that
//! held it when its process died and whose claims no survivor has resolved yet (a sweep frees
//! such an entry once nothing of it is left), with its role and whether it is alive.

use crate::failure::Failure;
use crate::lifecycle::policy_name;
use serde_json::json;
use shmq::{
    ParticipantInfo, Queue, Stats, FLAG_ALLOW_OTHER_ACCESS, FLAG_CLOSE_WHEN_PRODUCERS_GONE,
    FLAG_DROP_ON_CONSUMER_DEATH,
};
use std::io::Write;
use std::path::{Path, PathBuf};

/// How `shmq stat` prints: `--format`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// Aligned `name  value` rows, then the participants
    #[default]
    Table,
    /// One JSON object keyed by the `shmq::Stats` field names
    Json,
    /// The Prometheus text exposition format, for node_exporter's textfile collector
    Prometheus,
}

/// `shmq stat`: prints the stats of the queue at `path` to stdout.
///
/// Needs read permission only, and changes nothing: [`Queue::inspect`] reads the file without
/// opening a handle, so `stat` takes no participant entry (it works when all 512 are taken) and
/// is not listed among the participants.
pub fn stat(path: &Path, json: bool) -> Result<(), Failure> {
    let stats = Queue::inspect(path)?;
    let text = if json {
        to_json(&stats).to_string()
    } else {
        table(&stats)
    };
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::Stdout(e)),
        _ => Ok(()),
    }
}

/// `shmq stat PATH… --format prometheus`: every queue's counters and gauges in the Prometheus
/// text format on stdout (see [`crate::metrics`]).
///
/// Every queue is written even when some cannot be read (those show `shmq_up 0`); the command
/// then fails with one line naming each of them, so a script can tell, yet a textfile written
/// from the output still reports the bad queues as down.
pub fn prometheus(paths: &[PathBuf]) -> Result<(), Failure> {
    let queues = crate::metrics::inspect_all(paths);
    let text = crate::metrics::render(&queues);
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(Failure::Stdout(e)),
        _ => {}
    }
    let unreadable: Vec<String> = queues
        .iter()
        .filter_map(|(path, stats)| {
            let e = stats.as_ref().err()?;
            Some(format!("{}: {e}", path.display()))
        })
        .collect();
    if unreadable.is_empty() {
        Ok(())
    } else {
        Err(Failure::Other(format!(
            "{} of {} queues could not be read (shown as shmq_up 0): {}",
            unreadable.len(),
            queues.len(),
            unreadable.join("; ")
        )))
    }
}

/// The stats as a JSON object with the `Stats` field names (the platform tag and the flags as
/// the raw numbers).
fn to_json(s: &Stats) -> serde_json::Value {
    json!({
        "version": s.version,
        "platform": s.platform,
        "flags": s.flags,
        "capacity": s.capacity,
        "max_message_size": s.max_message_size,
        "file_len": s.file_len,
        "created_unix_ns": s.created_unix_ns,
        "len": s.len,
        "sent": s.sent,
        "received": s.received,
        "cancelled_sends": s.cancelled_sends,
        "abandoned_sends": s.abandoned_sends,
        "abandoned_receives": s.abandoned_receives,
        "redelivered": s.redelivered,
        "dead_lettered": s.dead_lettered,
        "expired": s.expired,
        "dead_letter_failures": s.dead_letter_failures,
        "in_flight": s.in_flight,
        "oldest_hold_ns": s.oldest_hold_ns,
        "visibility_timeout_ns": s.visibility_timeout_ns,
        "dead_letter_queue": s.dead_letter_queue.as_ref().map(|p| p.display().to_string()),
        "on_consumer_death": policy_name(s.on_consumer_death),
        "max_deliveries": s.max_deliveries,
        "full_waits": s.full_waits,
        "empty_waits": s.empty_waits,
        "send_sleepers": s.send_sleepers,
        "recv_sleepers": s.recv_sleepers,
        "closed": s.closed,
        "participants": s.participants.iter().map(|p| json!({
            "index": p.index,
            "pid": p.pid,
            "alive": p.alive,
            "sender": p.sender,
            "receiver": p.receiver,
            "role": role(p),
            "holding": p.holding,
            "holding_since_unix_ns": p.holding_since_unix_ns,
        })).collect::<Vec<_>>(),
        "unattributed_holds": s.unattributed_holds,
    })
}

/// The stats as `name  value` rows, names aligned, then one row per participant.
fn table(s: &Stats) -> String {
    let max_deliveries = match s.max_deliveries {
        0 => "0 (unlimited)".to_string(),
        n => n.to_string(),
    };
    let visibility_timeout = match s.visibility_timeout_ns {
        0 => "none".to_string(),
        ns => format!("{ns} ({:?})", std::time::Duration::from_nanos(ns)),
    };
    let oldest_hold = match s.oldest_hold_ns {
        0 => "0 (none)".to_string(),
        ns => format!("{ns} ({:.3} s)", ns as f64 / 1e9),
    };
    let dead_letter_queue = s
        .dead_letter_queue
        .as_ref()
        .map_or_else(|| "none".to_string(), |p| p.display().to_string());
    let rows: [(&str, String); 30] = [
        ("version", s.version.to_string()),
        ("platform", platform(s.platform)),
        ("flags", flags(s.flags)),
        ("capacity", s.capacity.to_string()),
        ("max_message_size", s.max_message_size.to_string()),
        ("file_len", s.file_len.to_string()),
        (
            "created_unix_ns",
            format!(
                "{} ({})",
                s.created_unix_ns,
                utc_timestamp(s.created_unix_ns)
            ),
        ),
        ("len", s.len.to_string()),
        ("sent", s.sent.to_string()),
        ("received", s.received.to_string()),
        ("cancelled_sends", s.cancelled_sends.to_string()),
        ("abandoned_sends", s.abandoned_sends.to_string()),
        ("abandoned_receives", s.abandoned_receives.to_string()),
        ("redelivered", s.redelivered.to_string()),
        ("dead_lettered", s.dead_lettered.to_string()),
        ("dead_letter_failures", s.dead_letter_failures.to_string()),
        ("expired", s.expired.to_string()),
        ("in_flight", s.in_flight.to_string()),
        ("oldest_hold_ns", oldest_hold),
        (
            "on_consumer_death",
            policy_name(s.on_consumer_death).to_string(),
        ),
        ("max_deliveries", max_deliveries),
        ("visibility_timeout_ns", visibility_timeout),
        ("dead_letter_queue", dead_letter_queue),
        ("full_waits", s.full_waits.to_string()),
        ("empty_waits", s.empty_waits.to_string()),
        ("send_sleepers", s.send_sleepers.to_string()),
        ("recv_sleepers", s.recv_sleepers.to_string()),
        ("closed", s.closed.to_string()),
        ("participants", s.participants.len().to_string()),
        ("unattributed_holds", s.unattributed_holds.to_string()),
    ];
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (name, value) in &rows {
        out.push_str(&format!("{name:<width$}  {value}\n"));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    for p in &s.participants {
        let state = if p.alive { "alive" } else { "dead" };
        out.push_str(&format!(
            "  index {:<4} pid {:<8} role {:<8} {state:<5}  {}\n",
            p.index,
            p.pid,
            role(p),
            holding(p, now)
        ));
    }
    out.pop(); // the caller ends the last line
    out
}

/// The platform tag in hex, then what it says: `0x4c000040 (little-endian, 64-bit)`.
fn platform(tag: u32) -> String {
    let order = match (tag >> 24) as u8 {
        b'L' => "little-endian",
        b'B' => "big-endian",
        _ => "unknown byte order",
    };
    format!("{tag:#010x} ({order}, {}-bit)", tag & 0xFF)
}

/// The option flags in hex, then the names of the bits set: `0x1 (drop on consumer death)`.
fn flags(flags: u32) -> String {
    let mut names = vec![];
    if flags & FLAG_DROP_ON_CONSUMER_DEATH != 0 {
        names.push("drop on consumer death");
    }
    if flags & FLAG_ALLOW_OTHER_ACCESS != 0 {
        names.push("allow other access");
    }
    if flags & FLAG_CLOSE_WHEN_PRODUCERS_GONE != 0 {
        names.push("close when producers gone");
    }
    let known =
        FLAG_DROP_ON_CONSUMER_DEATH | FLAG_ALLOW_OTHER_ACCESS | FLAG_CLOSE_WHEN_PRODUCERS_GONE;
    if flags & !known != 0 {
        names.push("unknown bits");
    }
    if names.is_empty() {
        format!("{flags:#x}")
    } else {
        format!("{flags:#x} ({})", names.join(", "))
    }
}

/// What a participant holds: `holds 0 slots`, or `holds 2 slots since 2026-… UTC (12.5 s)`.
fn holding(p: &ParticipantInfo, now_unix_ns: u64) -> String {
    let slots = if p.holding == 1 { "slot" } else { "slots" };
    if p.holding == 0 || p.holding_since_unix_ns == 0 {
        return format!("holds {} {slots}", p.holding);
    }
    let held = now_unix_ns.saturating_sub(p.holding_since_unix_ns) as f64 / 1e9;
    format!(
        "holds {} {slots} since {} ({held:.1} s)",
        p.holding,
        utc_timestamp(p.holding_since_unix_ns)
    )
}

/// What a participant has done so far: `sender`, `receiver`, `both`, or `none` (a handle that
/// has only opened the queue, such as `shmq stat`'s or a consumer still waiting for its first
/// message).
pub(crate) fn role(p: &ParticipantInfo) -> &'static str {
    match (p.sender, p.receiver) {
        (true, true) => "both",
        (true, false) => "sender",
        (false, true) => "receiver",
        (false, false) => "none",
    }
}

/// `YYYY-MM-DD hh:mm:ss.mmm UTC` for nanoseconds since the Unix epoch.
pub(crate) fn utc_timestamp(unix_ns: u64) -> String {
    let secs = unix_ns / 1_000_000_000;
    let millis = unix_ns % 1_000_000_000 / 1_000_000;
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let of_day = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{millis:03} UTC",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1, 0..=365
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_tags_and_flags_are_spelled_out() {
        assert_eq!(
            platform(u32::from(b'L') << 24 | 64),
            "0x4c000040 (little-endian, 64-bit)"
        );
        assert_eq!(
            platform(u32::from(b'B') << 24 | 32),
            "0x42000020 (big-endian, 32-bit)"
        );
        assert_eq!(flags(0), "0x0");
        assert_eq!(flags(1), "0x1 (drop on consumer death)");
        assert_eq!(flags(3), "0x3 (drop on consumer death, allow other access)");
        assert_eq!(
            flags(5),
            "0x5 (drop on consumer death, close when producers gone)"
        );
        assert_eq!(flags(9), "0x9 (drop on consumer death, unknown bits)");
    }

    #[test]
    fn timestamps_match_known_dates() {
        assert_eq!(utc_timestamp(0), "1970-01-01 00:00:00.000 UTC");
        // 2000-02-29 12:34:56.789 UTC, a leap day.
        assert_eq!(
            utc_timestamp(951_827_696_789_000_000),
            "2000-02-29 12:34:56.789 UTC"
        );
        // 2024-12-31 23:59:59 UTC.
        assert_eq!(
            utc_timestamp(1_735_689_599_000_000_000),
            "2024-12-31 23:59:59.000 UTC"
        );
    }
}
