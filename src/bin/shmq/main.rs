// SPDX-License-Identifier: MIT OR Apache-2.0
//! `shmq`: create, feed, drain, inspect and remove shmq queue files from the shell.
//!
//! This file parses the command line and dispatches; each family of subcommands lives in its
//! own module: [`lifecycle`] (create, close, rm), [`transfer`] (send and recv: lines of stdin
//! in, lines of stdout out), [`stat`] (the header and counters), [`watch`] (`stat --watch`),
//! [`metrics`] and [`exporter`] (Prometheus text, printed or served), [`ls`], [`generated`]
//! (completions and man pages), and `bench`. Every failure is reported as one line
//! `shmq: <cause>` on stderr (see [`failure`]).

mod bench;
mod duration;
mod exporter;
mod failure;
mod generated;
mod lifecycle;
mod ls;
mod metrics;
mod redrive;
mod stat;
mod topic;
mod transfer;
mod watch;

use clap::{CommandFactory, Parser, Subcommand};
use failure::Failure;
use shmq::Options;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Exit status of a command that failed (bad file, I/O error, closed queue, ...).
const EXIT_FAILURE: u8 = 1;
/// Exit status of a command line that could not be parsed.
const EXIT_USAGE: u8 = 2;

const LONG_ABOUT: &str = "\
Create, feed, drain, inspect and remove shmq queues: bounded multi-producer multi-consumer \
message queues that live in a memory-mapped file (usually under /dev/shm) and are shared by \
processes on one host.

Exit status:
  0  success (recv: also when --count was reached, the queue was closed and drained, the \
--timeout passed without a message, or stdout was closed by its reader)
  1  error: the file is missing, is not a queue, is corrupt or of another version; the queue \
is closed; a line is too long; an I/O error
  2  usage error: the command line could not be parsed

Every error is reported as one line on stderr, starting with `shmq: `.";

/// The `shmq` command line.
#[derive(Parser, Debug)]
#[command(name = "shmq", version, about = "Shared-memory message queues from the shell", long_about = LONG_ABOUT)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands; each one's doc comment is its `--help` text.
#[derive(Subcommand, Debug)]
enum Command {
    /// Create a new queue file; fails if PATH exists
    Create {
        /// Where to create the queue (e.g. /dev/shm/jobs)
        path: PathBuf,
        /// Number of slots: 1 to 2^24 (any number)
        #[arg(long, value_name = "N")]
        capacity: u32,
        /// Largest message in bytes (every slot reserves this much)
        #[arg(long, value_name = "BYTES")]
        max_message_size: u32,
        /// Permission bits of the new file, in octal, from 000 to 777 (setuid, setgid and
        /// sticky bits are refused)
        #[arg(long, value_name = "OCTAL", default_value = "600", value_parser = parse_octal_mode)]
        mode: u32,
        /// What happens to a message whose receiver dies before releasing it: `redeliver` gives
        /// it back to the queue (at-least-once), `drop` discards it (at-most-once)
        #[arg(long, value_name = "POLICY", value_enum, default_value_t = lifecycle::Policy::Redeliver)]
        on_consumer_death: lifecycle::Policy,
        /// With `redeliver`: a message whose receiver dies on its Nth delivery is dropped instead
        /// of redelivered (counted as dead_lettered), so a poison message cannot kill receivers
        /// forever; 0 means unlimited
        #[arg(long, value_name = "N", default_value_t = 0)]
        max_deliveries: u32,
        /// Permit a --mode that gives other users access (recorded in the queue; without it such
        /// a mode is refused, at create and at every open): anyone who can read the file can
        /// keep handles from registering, anyone who can write it can corrupt it. Share with a
        /// group (--mode 660) instead where you can
        #[arg(long)]
        allow_other_access: bool,
        /// How long a message received in place may be held before it is handed out again,
        /// with its delivery count raised (SQS's visibility timeout; 1ms to 12h, e.g. 30s).
        /// Without it a message is held until its receiver releases it or dies
        #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
        visibility_timeout: Option<std::time::Duration>,
        /// Where a message goes once it has been delivered --max-deliveries times without being
        /// released: another shmq queue (which must exist by then), instead of being dropped
        #[arg(long, value_name = "PATH")]
        dead_letter_queue: Option<PathBuf>,
    },
    /// Send each line of stdin (without its newline) as one message; waits while the queue is full
    Send {
        /// The queue
        path: PathBuf,
    },
    /// Print each received message on its own line
    ///
    /// Exits after N messages, once the queue is closed and drained, after DURATION without a
    /// message, or when stdout's reader goes away.
    ///
    /// When stdout is a pipe or a socket, a message leaves the queue only once the reader has
    /// read it: messages go out one at a time, each released once the pipe (or the socket's
    /// output queue) is empty again, so a reader that stops early (`| head -1`) loses nothing;
    /// the message it left unread goes back to the queue with its delivery count raised. To a
    /// file or a terminal, messages go out in batches, each released once written and flushed.
    Recv {
        /// The queue
        path: PathBuf,
        /// Exit after receiving N messages
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Exit after waiting this long without a message (500ms, 2s, 1.5s, 1m, or seconds)
        // Negative numbers reach the parser, so that `--timeout -1` is refused as a negative
        // duration rather than reported as an unknown option (`--timeout=-1s` reaches it too).
        #[arg(long, value_name = "DURATION", value_parser = duration::parse, allow_negative_numbers = true)]
        timeout: Option<Duration>,
        /// Release messages once written and flushed, in batches, also into a pipe or a
        /// socket: about 20 times faster into a fast reader, but what a reader leaves unread in
        /// the pipe when it stops (`| head -1`) is lost
        #[arg(long)]
        release_on_write: bool,
    },
    /// Close the queue: sends fail from now on; receivers drain what is left, then stop
    Close {
        /// The queue
        path: PathBuf,
    },
    /// Remove the queue file (processes that have it open keep using it)
    Rm {
        /// The queue
        path: PathBuf,
    },
    /// Move the messages of a dead-letter queue back into a queue, each exactly once
    ///
    /// Each message is received in place, written into QUEUE, committed there through QUEUE's
    /// redrive ledger, and only then released from DLQ: a redrive killed at any instant and run
    /// again moves every message once (as long as it is the only consumer of DLQ). Moved
    /// messages start over: delivery count 1. Waits while QUEUE is full. One redrive at a time
    /// per QUEUE; a second fails at once. Shows a progress bar when stderr is a terminal, and
    /// prints a summary line on stdout.
    Redrive {
        /// The dead-letter queue to empty
        #[arg(value_name = "DLQ")]
        dlq: PathBuf,
        /// The queue to move the messages into
        #[arg(long, value_name = "QUEUE")]
        to: PathBuf,
        /// Move at most N messages
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// First forget a redrive into QUEUE from another dead-letter queue that was
        /// interrupted (which otherwise refuses this one): for when that queue is gone. A
        /// message it had moved may be moved again if that queue is redriven
        #[arg(long)]
        forget_interrupted: bool,
    },
    /// Print the queue's header fields, counters and participants
    ///
    /// Lists the processes that have the queue open (or held it when they died, until a
    /// survivor has resolved what they left behind) with their role, whether they are alive,
    /// and how many slots each holds and since when (a held slot stops producers when the ring
    /// comes round to it), and the crash-recovery counters: abandoned_sends,
    /// abandoned_receives, redelivered, dead_lettered. Needs read permission only, and does not
    /// register as a participant.
    Stat {
        /// The queue (several only with --format prometheus)
        #[arg(value_name = "PATH", required = true)]
        paths: Vec<PathBuf>,
        /// Print one JSON object instead of a table (the same as --format json)
        #[arg(long, conflicts_with = "format")]
        json: bool,
        /// How to print: `table`, `json`, or `prometheus` (the text exposition format, every
        /// counter and gauge of every PATH, for node_exporter's textfile collector)
        #[arg(long, value_name = "FORMAT", value_enum)]
        format: Option<stat::Format>,
        /// Show a live view, redrawn every --interval, until q, Esc or Ctrl-C or until the file
        /// goes away; when stdout is not a terminal, print one line per interval instead
        #[arg(long, conflicts_with_all = ["json", "format"])]
        watch: bool,
        /// Time between samples with --watch (500ms, 2s, 1.5s, 1m, or seconds)
        #[arg(long, value_name = "DURATION", value_parser = duration::parse, requires = "watch")]
        interval: Option<Duration>,
    },
    /// Serve the queues' counters over HTTP at /metrics in the Prometheus text format
    ///
    /// Every scrape reads each PATH afresh (read permission only, nothing registered); a queue
    /// that cannot be read shows as shmq_up 0. Answers GET and HEAD on /metrics, 404 elsewhere.
    Exporter {
        /// Where to listen: ADDR:PORT, or :PORT / PORT for loopback (127.0.0.1)
        #[arg(long, value_name = "ADDR:PORT", default_value = exporter::DEFAULT_LISTEN)]
        listen: String,
        /// Connections served at once; a connection beyond them is answered 503 and closed
        /// (each connection must send a request head of at most 16 KiB within 10 s, and is
        /// closed after 60 s; a scrape that takes over 10 s is answered 503)
        #[arg(long, value_name = "N", default_value_t = exporter::DEFAULT_MAX_CONNECTIONS,
              value_parser = clap::value_parser!(u32).range(1..=65536))]
        max_connections: u32,
        /// The queues
        #[arg(value_name = "PATH", required = true)]
        paths: Vec<PathBuf>,
    },
    /// List the queue files in a directory with depth, capacity, message size, participants
    ///
    /// Files that are not shmq queues are skipped silently; a queue file that cannot be read
    /// (corrupt, other version) is listed with the reason. Needs read permission only.
    Ls {
        /// The directory
        #[arg(value_name = "DIR", default_value = ls::DEFAULT_DIR)]
        dir: PathBuf,
        /// Print a JSON array instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script (e.g. `shmq completions bash > /etc/bash_completion.d/shmq`)
    Completions {
        /// The shell
        #[arg(value_name = "SHELL", value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (shmq.1, shmq-SUBCOMMAND.1) into DIR
    #[command(hide = true)]
    Man {
        /// The directory (created if missing)
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Fanout topics: create one, subscribe and unsubscribe queues
    Topic {
        #[command(subcommand)]
        command: topic::TopicCommand,
    },
    /// Publish each line of stdin (without its newline) to every matching subscription of a
    /// topic; waits while a `block` subscription is full
    Publish {
        /// The topic
        topic: PathBuf,
    },
    /// Measure latency and throughput against the floor and the alternatives
    #[command(about = "Measure latency and throughput against the floor and the alternatives")]
    Bench(bench::BenchArgs),
}

/// Parses permission bits written in octal (`600`, `0640`, `0o660`): 0 to 0o777.
///
/// The setuid, setgid and sticky bits (0o7000) are refused: on a queue file they mean nothing
/// but a hazard (`--mode 7777` would make a setuid, world-writable file).
fn parse_octal_mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    let not_a_mode = || format!("`{text}` is not an octal permission mode such as 600 or 0640");
    // `from_str_radix` alone would also take a sign (`+600`).
    let mode = Some(digits)
        .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| u32::from_str_radix(d, 8).ok())
        .ok_or_else(not_a_mode)?;
    match mode {
        0..=0o777 => Ok(mode),
        0o1000..=0o7777 => Err(format!(
            "`{text}` sets setuid, setgid or sticky bits; a queue's mode is permission bits \
             only, from 000 to 777, such as 600 or 0640"
        )),
        _ => Err(not_a_mode()),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let result = match cli.command {
        Command::Create {
            path,
            capacity,
            max_message_size,
            mode,
            on_consumer_death,
            max_deliveries,
            allow_other_access,
            visibility_timeout,
            dead_letter_queue,
        } => {
            if on_consumer_death == lifecycle::Policy::Drop && max_deliveries != 0 {
                return usage_error(Cli::command().error(
                    clap::error::ErrorKind::ArgumentConflict,
                    "--max-deliveries applies only with --on-consumer-death redeliver",
                ));
            }
            let mut options = Options::new(capacity, max_message_size)
                .mode(mode)
                .on_consumer_death(on_consumer_death.into())
                .max_deliveries(max_deliveries)
                .allow_other_access(allow_other_access);
            if let Some(timeout) = visibility_timeout {
                options = options.visibility_timeout(timeout);
            }
            if let Some(dlq) = dead_letter_queue {
                options = options.dead_letter_queue(dlq);
            }
            lifecycle::create(&path, options)
        }
        Command::Send { path } => transfer::send(&path),
        Command::Recv {
            path,
            count,
            timeout,
            release_on_write,
        } => {
            let release = match release_on_write {
                true => transfer::Release::OnWrite,
                false => transfer::Release::OnRead,
            };
            transfer::recv(&path, count, timeout, release)
        }
        Command::Close { path } => lifecycle::close(&path),
        Command::Redrive {
            dlq,
            to,
            count,
            forget_interrupted,
        } => redrive::redrive(&dlq, &to, count, forget_interrupted),
        Command::Rm { path } => lifecycle::rm(&path),
        Command::Stat {
            paths,
            json,
            format,
            watch,
            interval,
        } => {
            let format = if json {
                Some(stat::Format::Json)
            } else {
                format
            };
            match (paths.as_slice(), format) {
                (paths, Some(stat::Format::Prometheus)) => stat::prometheus(paths),
                ([path], format) if !watch && topic::is_topic(path) => {
                    topic::stat(path, format == Some(stat::Format::Json))
                }
                ([path], _) if watch => {
                    watch::watch(path, interval.unwrap_or(Duration::from_secs(1)))
                }
                ([path], format) => stat::stat(path, format == Some(stat::Format::Json)),
                _ => {
                    return usage_error(Cli::command().error(
                        clap::error::ErrorKind::TooManyValues,
                        "several PATHs need --format prometheus",
                    ))
                }
            }
        }
        Command::Exporter {
            listen,
            max_connections,
            paths,
        } => exporter::exporter(&listen, &paths, max_connections),
        Command::Ls { dir, json } => ls::ls(&dir, json),
        Command::Completions { shell } => generated::completions(Cli::command(), shell),
        Command::Man { dir } => generated::man(Cli::command(), &dir),
        Command::Topic { command } => topic::run(command),
        Command::Publish { topic } => topic::publish(&topic),
        Command::Bench(args) => bench::run(&args).map_err(Failure::Other),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("shmq: {failure}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Reports a command line clap rejected as one line (help and version go to stdout in full).
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // Help asked for (or nothing given): print it whole; clap picks stdout or stderr.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
        _ => {}
    }
    // Clap's message is a paragraph, then usage and tips: keep the first paragraph, on one line.
    let rendered = e.render().to_string();
    let first_paragraph = rendered.split("\n\n").next().unwrap_or_default();
    let message = first_paragraph
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    eprintln!("shmq: {message} (see shmq --help)");
    ExitCode::from(EXIT_USAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn octal_modes_parse_and_non_modes_are_rejected() {
        assert_eq!(parse_octal_mode("600"), Ok(0o600));
        assert_eq!(parse_octal_mode("0640"), Ok(0o640));
        assert_eq!(parse_octal_mode("0o660"), Ok(0o660));
        assert_eq!(parse_octal_mode("0"), Ok(0));
        assert_eq!(parse_octal_mode("777"), Ok(0o777));
        for special in ["1777", "2600", "4755", "7777", "0o4600"] {
            let message = parse_octal_mode(special).unwrap_err();
            assert!(message.contains("setuid"), "{special}: {message}");
        }
        assert!(parse_octal_mode("800").is_err());
        assert!(parse_octal_mode("17777").is_err());
        assert!(parse_octal_mode("-600").is_err());
        assert!(parse_octal_mode("+600").is_err());
        assert!(parse_octal_mode("").is_err());
        assert!(parse_octal_mode("rw").is_err());
    }
}
