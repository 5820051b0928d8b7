// SPDX-License-Identifier: MIT OR Apache-2.0
//! Queue counters in the Prometheus text exposition format (version 0.0.4), for
//! `shmq stat PATH… --format prometheus` (node_exporter's textfile collector) and for
//! `shmq exporter` (served at `/metrics`).
//!
//! Every metric family is written once, with its `# HELP` and `# TYPE` lines, followed by one
//! sample per queue labelled `queue="<path>"`. Counters end in `_total`. A queue that cannot be
//! read (missing, corrupt, no permission) appears only as `shmq_up{queue="…"} 0`, so one bad
//! queue never hides the others and an alert can fire on it.
//!
//! Every value comes from [`Queue::inspect`]: read permission only, nothing registered.

use crate::lifecycle::policy_name;
use shmq::{Queue, Stats};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The `Content-Type` of this format, for HTTP.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether a family only grows (`counter`) or goes up and down (`gauge`).
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// One metric family: its name, kind, help text, and its value for a snapshot taken at `now`
/// (Unix nanoseconds).
struct Family {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    value: fn(&Stats, u64) -> f64,
}

/// The table of [`Family`] rows, one per family: `name Kind value, "help";`.
macro_rules! families {
    ($($name:ident $kind:ident $value:expr, $help:literal;)*) => {
        &[$(Family {
            name: stringify!($name),
            kind: Kind::$kind,
            help: $help,
            value: $value,
        }),*]
    };
}

/// Every family, in output order (`shmq_up` and `shmq_info` are written separately, first).
const FAMILIES: &[Family] = families! {
    shmq_depth Gauge |s, _| s.len as f64,
        "Messages in the queue now (approximate while sends and receives are in flight).";
    shmq_capacity Gauge |s, _| f64::from(s.capacity),
        "Slots in the queue: the most messages it can hold.";
    shmq_max_message_size_bytes Gauge |s, _| f64::from(s.max_message_size),
        "Largest message the queue accepts, in bytes.";
    shmq_file_size_bytes Gauge |s, _| s.file_len as f64,
        "Size of the queue file, in bytes.";
    shmq_creation_time_seconds Gauge |s, _| s.created_unix_ns as f64 / 1e9,
        "When the queue was created, in seconds since the Unix epoch.";
    shmq_sent_total Counter |s, _| s.sent as f64,
        "Positions claimed by senders since creation (committed or cancelled messages).";
    shmq_received_total Counter |s, _| s.received as f64,
        "Positions claimed by receivers since creation.";
    shmq_cancelled_sends_total Counter |s, _| s.cancelled_sends as f64,
        "Sends cancelled after claiming a slot (a reserve guard dropped without commit).";
    shmq_abandoned_sends_total Counter |s, _| s.abandoned_sends as f64,
        "Sends whose producer died between claiming and publishing a slot (skipped).";
    shmq_abandoned_receives_total Counter |s, _| s.abandoned_receives as f64,
        "Messages dropped because their consumer died (policy drop).";
    shmq_redelivered_total Counter |s, _| s.redelivered as f64,
        "Messages given back to the queue because their consumer died (policy redeliver).";
    shmq_dead_lettered_total Counter |s, _| s.dead_lettered as f64,
        "Messages that reached max_deliveries and left the queue (to its dead-letter queue, or dropped if it has none).";
    shmq_dead_letter_failures_total Counter |s, _| s.dead_letter_failures as f64,
        "Messages that reached max_deliveries but could not be sent to the dead-letter queue (kept and delivered again).";
    shmq_expired_total Counter |s, _| s.expired as f64,
        "Messages held in place past the visibility timeout and handed out again.";
    shmq_in_flight Gauge |s, _| s.in_flight as f64,
        "Messages claimed by receivers and not yet released.";
    shmq_visibility_timeout_seconds Gauge |s, _| s.visibility_timeout_ns as f64 / 1e9,
        "The queue's visibility timeout (0: none).";
    shmq_full_waits_total Counter |s, _| s.full_waits as f64,
        "Times a sender found the queue full and went to sleep.";
    shmq_empty_waits_total Counter |s, _| s.empty_waits as f64,
        "Times a receiver found the queue empty and went to sleep.";
    shmq_send_sleepers Gauge |s, _| f64::from(s.send_sleepers),
        "Senders asleep now, waiting for room.";
    shmq_recv_sleepers Gauge |s, _| f64::from(s.recv_sleepers),
        "Receivers asleep now, waiting for a message.";
    shmq_closed Gauge |s, _| f64::from(u8::from(s.closed)),
        "1 if the queue is closed (no more sends), else 0.";
    shmq_max_deliveries Gauge |s, _| f64::from(s.max_deliveries),
        "Deliveries to dying consumers after which a message is dead-lettered (0: no limit).";
    shmq_participants Gauge |s, _| s.participants.len() as f64,
        "Participant entries in use: handles with the queue open, and dead ones not yet swept.";
    shmq_dead_participants Gauge |s, _| s.participants.iter().filter(|p| !p.alive).count() as f64,
        "Participant entries whose process died and whose claims are not yet resolved.";
    shmq_held_slots Gauge held_slots,
        "Slots claimed and not yet published or released (sends and receives in progress).";
    shmq_oldest_hold_seconds Gauge oldest_hold_seconds,
        "How long the longest-held guard has been held (0 if none): producers cannot pass a held slot.";
};

/// `shmq_held_slots`: the slots the participants hold, and those no live entry accounts for.
fn held_slots(s: &Stats, _now: u64) -> f64 {
    let attributed: u64 = s.participants.iter().map(|p| u64::from(p.holding)).sum();
    (attributed + u64::from(s.unattributed_holds)) as f64
}

/// `shmq_oldest_hold_seconds`: the age at `now` of the oldest hold (0 if none).
fn oldest_hold_seconds(s: &Stats, now: u64) -> f64 {
    s.participants
        .iter()
        .filter(|p| p.holding != 0 && p.holding_since_unix_ns != 0)
        .map(|p| now.saturating_sub(p.holding_since_unix_ns))
        .max()
        .unwrap_or(0) as f64
        / 1e9
}

/// Each queue's snapshot, or why it could not be read, in the order given (duplicates removed).
pub fn inspect_all(paths: &[PathBuf]) -> Vec<(PathBuf, Result<Stats, shmq::Error>)> {
    let mut seen = std::collections::HashSet::new();
    paths
        .iter()
        .filter(|p| seen.insert(p.as_path()))
        .map(|p| (p.clone(), Queue::inspect(p)))
        .collect()
}

/// The exposition of `queues` (as from [`inspect_all`]), ending in a newline.
pub fn render(queues: &[(PathBuf, Result<Stats, shmq::Error>)]) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut out = String::new();
    family_head(
        &mut out,
        "shmq_up",
        Kind::Gauge,
        "1 if the queue file could be read, 0 if not (missing, corrupt, no permission).",
    );
    for (path, stats) in queues {
        sample(
            &mut out,
            "shmq_up",
            path,
            "",
            f64::from(u8::from(stats.is_ok())),
        );
    }
    family_head(
        &mut out,
        "shmq_info",
        Kind::Gauge,
        "Always 1; the labels carry the queue's layout version and consumer-death policy.",
    );
    for (path, stats) in queues {
        if let Ok(s) = stats {
            let extra = format!(
                ",version=\"{}\",on_consumer_death=\"{}\"",
                s.version,
                policy_name(s.on_consumer_death)
            );
            sample(&mut out, "shmq_info", path, &extra, 1.0);
        }
    }
    for family in FAMILIES {
        family_head(&mut out, family.name, family.kind, family.help);
        for (path, stats) in queues {
            if let Ok(s) = stats {
                sample(&mut out, family.name, path, "", (family.value)(s, now));
            }
        }
    }
    out
}

fn family_head(out: &mut String, name: &str, kind: Kind, help: &str) {
    let kind = match kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
    };
    // HELP text escapes only backslash and newline; ours has neither, but stay correct.
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// `name{queue="path"<extra>} value`; `extra` is further labels, each starting with a comma.
fn sample(out: &mut String, name: &str, path: &Path, extra: &str, value: f64) {
    let _ = writeln!(
        out,
        "{name}{{queue=\"{}\"{extra}}} {value}",
        label_value(&path.to_string_lossy())
    );
}

/// A label value escaped as the format requires: backslash, double quote and newline.
fn label_value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        assert_eq!(label_value(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(label_value("x\ny"), r"x\ny");
        assert_eq!(label_value("/dev/shm/jobs"), "/dev/shm/jobs");
    }

    #[test]
    fn an_unreadable_queue_is_down_and_has_no_other_samples() {
        let missing = PathBuf::from("/nonexistent/shmq-metrics-test");
        let text = render(&inspect_all(&[missing.clone(), missing]));
        assert!(text.contains("shmq_up{queue=\"/nonexistent/shmq-metrics-test\"} 0\n"));
        // Heads for every family, but no other sample lines.
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(samples.len(), 1, "{text}");
        assert_eq!(
            text.lines().filter(|l| l.starts_with("# TYPE")).count(),
            FAMILIES.len() + 2
        );
    }
}
