// SPDX-License-Identifier: MIT OR Apache-2.0
//! Topics from the shell (fanout, [`shmq::Topic`]): `shmq topic create|subscribe|unsubscribe`,
//! `shmq publish` (each line of stdin to every matching subscription), and `shmq stat` of a
//! topic file (`main` dispatches on the file's magic: [`is_topic`]). Consumers read a
//! subscription with `shmq recv QUEUE`, as any queue.

use crate::failure::Failure;
use serde_json::json;
use shmq::{Error, Subscription, Topic, TopicOptions, TopicStats, WhenFull};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

/// Most lines published by one `publish_batch`: only lines already complete in the input
/// buffer join a batch, so an interactive pipeline sees each line at once.
const PUBLISH_BATCH: usize = 64;

/// `shmq topic ...`: the topic's life and its subscriptions.
#[derive(clap::Subcommand, Debug)]
pub enum TopicCommand {
    /// Create a new topic file; fails if TOPIC exists
    Create {
        /// Where to create the topic (e.g. /dev/shm/orders)
        topic: PathBuf,
        /// Permission bits of the new file, in octal (no bits for other users)
        #[arg(long, value_name = "OCTAL", default_value = "600", value_parser = crate::parse_octal_mode)]
        mode: u32,
        /// Longest message the topic accepts; every subscribed queue must hold at least this
        #[arg(long, value_name = "BYTES", default_value_t = 256)]
        max_message_size: u32,
    },
    /// Subscribe a queue to the topic (creating the queue if --capacity and --max-message-size
    /// are given and it does not exist; an existing queue is subscribed as it is)
    Subscribe {
        /// The topic
        topic: PathBuf,
        /// The subscription's queue
        queue: PathBuf,
        /// When the queue is full: `block` holds publishers back, `drop` counts a drop
        #[arg(long, value_name = "POLICY", value_enum, default_value_t = Policy::Block)]
        when_full: Policy,
        /// Deliver only messages that start with TEXT
        #[arg(long, value_name = "TEXT")]
        prefix: Option<String>,
        /// Slots of the queue, if it is created
        #[arg(long, value_name = "N", requires = "max_message_size")]
        capacity: Option<u32>,
        /// Largest message of the queue, if it is created
        #[arg(long, value_name = "BYTES", requires = "capacity")]
        max_message_size: Option<u32>,
    },
    /// Remove a queue's subscription (the queue and its messages stay)
    Unsubscribe {
        /// The topic
        topic: PathBuf,
        /// The subscribed queue
        queue: PathBuf,
    },
}

/// `--when-full`: the command-line names of [`WhenFull`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Policy {
    /// Publishers wait for room.
    Block,
    /// The message is dropped for this subscription (and counted).
    Drop,
}

/// Runs a `shmq topic` subcommand.
pub fn run(command: TopicCommand) -> Result<(), Failure> {
    match command {
        TopicCommand::Create {
            topic,
            mode,
            max_message_size,
        } => {
            Topic::create(&topic, TopicOptions::new(max_message_size).mode(mode))?;
        }
        TopicCommand::Subscribe {
            topic,
            queue,
            when_full,
            prefix,
            capacity,
            max_message_size,
        } => {
            let topic = Topic::open(&topic)?;
            if capacity.is_none() && !queue.exists() {
                return Err(Failure::Other(format!(
                    "no queue at {}: give --capacity and --max-message-size to create it",
                    queue.display()
                )));
            }
            let policy = match when_full {
                Policy::Block => WhenFull::Block,
                Policy::Drop => WhenFull::Drop,
            };
            let subscription =
                Subscription::new(capacity.unwrap_or(0), max_message_size.unwrap_or(0))
                    .when_full(policy)
                    .prefix(prefix.unwrap_or_default());
            topic.subscribe(&queue, subscription)?;
        }
        TopicCommand::Unsubscribe { topic, queue } => Topic::open(&topic)?.unsubscribe(&queue)?,
    }
    Ok(())
}

/// Whether the file at `path` starts with the topic magic (anything unreadable: no). Opened
/// without blocking, so that a FIFO there cannot hang `stat`.
pub fn is_topic(path: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let mut magic = [0u8; 8];
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| magic == shmq::TOPIC_MAGIC)
}

/// `shmq publish`: each line of stdin (without its `\n`) is published, in order, waiting while
/// a `Block` subscription is full; a last line without `\n` is published too. A line longer
/// than the topic's maximum message size stops it with an error naming the line; every earlier
/// line was published.
pub fn publish(path: &Path) -> Result<(), Failure> {
    let topic = Topic::open(path)?;
    let max = topic.max_message_size();
    let mut input = BufReader::with_capacity(64 * 1024, io::stdin().lock());
    let mut lines: Vec<Vec<u8>> = Vec::with_capacity(PUBLISH_BATCH);
    let mut next_line: u64 = 1;
    loop {
        lines.clear();
        let mut stop = None;
        loop {
            let mut line = Vec::new();
            let n = Read::take(&mut input, max as u64 + 1)
                .read_until(b'\n', &mut line)
                .map_err(Failure::Stdin)?;
            if n == 0 {
                stop = Some(Ok(()));
            } else if line.last() == Some(&b'\n') {
                line.pop();
                lines.push(line);
            } else if line.len() <= max {
                lines.push(line); // the last line, without a newline
            } else {
                stop = Some(Err(Failure::Line {
                    line: next_line + lines.len() as u64,
                    source: Error::TooLarge {
                        len: line.len(),
                        max,
                    },
                }));
            }
            if stop.is_some() || lines.len() == PUBLISH_BATCH || !input.buffer().contains(&b'\n') {
                break;
            }
        }
        topic
            .publish_batch(&lines)
            .map_err(|source| Failure::Line {
                line: next_line,
                source,
            })?;
        next_line += lines.len() as u64;
        if let Some(result) = stop {
            return result;
        }
    }
}

/// `shmq stat TOPIC`: the topic's header, counters and subscriptions, as a table or one JSON
/// object. Reads the file without opening a handle ([`Topic::inspect`]).
pub fn stat(path: &Path, json: bool) -> Result<(), Failure> {
    let stats = Topic::inspect(path)?;
    let text = if json {
        to_json(&stats).to_string()
    } else {
        table(&stats)
    };
    let mut stdout = io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Failure::Stdout(e)),
        _ => Ok(()),
    }
}

fn policy_name(when_full: WhenFull) -> &'static str {
    match when_full {
        WhenFull::Block => "block",
        WhenFull::Drop => "drop",
    }
}

/// The stats as JSON, keyed by the `TopicStats` and `SubscriptionInfo` field names, plus
/// `"kind": "topic"` and, per subscription, its queue's `capacity`, `closed` and
/// `abandoned_sends` (null if the queue could not be read).
fn to_json(s: &TopicStats) -> serde_json::Value {
    json!({
        "kind": "topic",
        "version": s.version,
        "max_message_size": s.max_message_size,
        "created_unix_ns": s.created_unix_ns,
        "generation": s.generation,
        "publishers": s.publishers,
        "interrupted_publishes": s.interrupted_publishes,
        "subscriptions": s.subscriptions.iter().map(|sub| json!({
            "path": sub.path.display().to_string(),
            "when_full": policy_name(sub.when_full),
            "prefix": String::from_utf8_lossy(&sub.prefix),
            "depth": sub.depth,
            "delivered": sub.delivered,
            "dropped": sub.dropped,
            "subscribed_unix_ns": sub.subscribed_unix_ns,
            "capacity": sub.queue.as_ref().map(|q| q.capacity),
            "closed": sub.queue.as_ref().map(|q| q.closed),
            "abandoned_sends": sub.queue.as_ref().map(|q| q.abandoned_sends),
        })).collect::<Vec<_>>(),
    })
}

/// The stats as `name  value` rows, then one row per subscription.
fn table(s: &TopicStats) -> String {
    let rows = [
        ("kind", "topic".to_string()),
        ("version", s.version.to_string()),
        ("max_message_size", s.max_message_size.to_string()),
        ("created_unix_ns", s.created_unix_ns.to_string()),
        ("generation", s.generation.to_string()),
        ("publishers", s.publishers.to_string()),
        ("interrupted_publishes", s.interrupted_publishes.to_string()),
        ("subscriptions", s.subscriptions.len().to_string()),
    ];
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (name, value) in &rows {
        out.push_str(&format!("{name:<width$}  {value}\n"));
    }
    for sub in &s.subscriptions {
        let depth = sub.depth.map_or("?".to_string(), |d| d.to_string());
        let state = match &sub.queue {
            None => " (queue missing)",
            Some(q) if q.closed => " (closed)",
            Some(_) => "",
        };
        out.push_str(&format!(
            "  {}  when_full {}  prefix {:?}  depth {depth}  delivered {}  dropped {}{state}\n",
            sub.path.display(),
            policy_name(sub.when_full),
            String::from_utf8_lossy(&sub.prefix),
            sub.delivered,
            sub.dropped,
        ));
    }
    out.pop();
    out
}
