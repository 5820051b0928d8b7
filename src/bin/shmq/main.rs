// SPDX-License-Identifier: MIT OR Apache-2.0
//! `shmq`: create, feed, drain, inspect and remove shmq queue files from the shell.
//!
//! This file parses the command line and dispatches; each family of subcommands lives in its
//! own module: [`lifecycle`] (create, close, rm), [`transfer`] (send and recv: lines of stdin
//! in, lines of stdout out), [`stat`] (the header and counters), and `bench`. Every failure is
//! reported as one line `shmq: <cause>` on stderr (see [`failure`]).

mod bench;
mod duration;
mod failure;
mod lifecycle;
mod stat;
mod topic;
mod transfer;

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
        /// Number of slots: a power of two from 2 to 2^24
        #[arg(long, value_name = "N")]
        capacity: u32,
        /// Largest message in bytes (every slot reserves this much)
        #[arg(long, value_name = "BYTES")]
        max_message_size: u32,
        /// Permission bits of the new file, in octal
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
    },
    /// Send each line of stdin (without its newline) as one message; waits while the queue is full
    Send {
        /// The queue
        path: PathBuf,
    },
    /// Print each received message on its own line
    ///
    /// Exits after N messages, once the queue is closed and drained, or after DURATION without
    /// a message. A message is released from the queue only after it has been written to
    /// stdout and flushed.
    Recv {
        /// The queue
        path: PathBuf,
        /// Exit after receiving N messages
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Exit after waiting this long without a message (500ms, 2s, 1.5s, 1m, or seconds)
        #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
        timeout: Option<Duration>,
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
    /// Print the queue's header fields, counters and participants
    ///
    /// Lists the processes that have the queue open (or held it when they died, until a
    /// survivor has resolved what they left behind) with their role, whether they are alive,
    /// and how many slots each holds and since when (a held slot stops producers when the ring
    /// comes round to it), and the crash-recovery counters: abandoned_sends,
    /// abandoned_receives, redelivered, dead_lettered. Needs read permission only, and does not
    /// register as a participant.
    Stat {
        /// The queue
        path: PathBuf,
        /// Print one JSON object instead of a table
        #[arg(long)]
        json: bool,
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

/// Parses a permission mode written in octal (`600`, `0640`, `0o660`).
fn parse_octal_mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|mode| mode & !0o7777 == 0)
        .ok_or_else(|| format!("`{text}` is not an octal permission mode such as 600 or 0640"))
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
        } => {
            if on_consumer_death == lifecycle::Policy::Drop && max_deliveries != 0 {
                return usage_error(Cli::command().error(
                    clap::error::ErrorKind::ArgumentConflict,
                    "--max-deliveries applies only with --on-consumer-death redeliver",
                ));
            }
            let options = Options::new(capacity, max_message_size)
                .mode(mode)
                .on_consumer_death(on_consumer_death.into())
                .max_deliveries(max_deliveries)
                .allow_other_access(allow_other_access);
            lifecycle::create(&path, options)
        }
        Command::Send { path } => transfer::send(&path),
        Command::Recv {
            path,
            count,
            timeout,
        } => transfer::recv(&path, count, timeout),
        Command::Close { path } => lifecycle::close(&path),
        Command::Rm { path } => lifecycle::rm(&path),
        Command::Stat { path, json } if topic::is_topic(&path) => topic::stat(&path, json),
        Command::Stat { path, json } => stat::stat(&path, json),
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
        assert!(parse_octal_mode("800").is_err());
        assert!(parse_octal_mode("17777").is_err());
        assert!(parse_octal_mode("").is_err());
        assert!(parse_octal_mode("rw").is_err());
    }
}
