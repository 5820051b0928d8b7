// SPDX-License-Identifier: MIT OR Apache-2.0
//! `shmq-bridge`: one end of a NATS JetStream stream as a local shmq queue.
//!
//! `export` moves messages from a queue into a stream, exactly once: each is received in place,
//! published with a `Nats-Msg-Id` built from the queue's identity and the message's id, and
//! released locally only after JetStream acknowledged it. A bridge killed with messages in
//! flight leaves them claimed by a dead consumer, so shmq gives them back and the next bridge
//! publishes them again under the same id, which the stream's duplicate window discards.
//!
//! `import` moves messages from a stream into a queue, at least once: a durable pull consumer
//! with explicit acks, each message acknowledged (a confirmed, double ack) only after its local
//! send committed. A full queue stops the pulling. A bridge killed before acknowledging leaves
//! the message to JetStream, which delivers it again after the consumer's ack wait.

mod export;
mod import;
mod report;

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "shmq-bridge",
    version,
    about = "Bridge shmq queues and NATS JetStream streams"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Publish every message of QUEUE to a JetStream stream, exactly once.
    Export(export::Args),
    /// Send every message of a JetStream stream (through a durable consumer) into QUEUE.
    Import(import::Args),
}

/// Options both directions share.
#[derive(clap::Args, Clone)]
struct Common {
    /// The NATS server, e.g. nats://127.0.0.1:4222.
    #[arg(long)]
    server: String,
    /// The JetStream stream.
    #[arg(long)]
    stream: String,
    /// Print the counters as one JSON object on standard output at exit.
    #[arg(long)]
    json: bool,
    /// Messages in flight at once (unacknowledged publishes for export, pulled and not yet
    /// acknowledged for import).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65536))]
    window: u32,
}

/// An error worth a clear one-line message, then exit status 1.
#[derive(Debug)]
struct Fatal(String);

impl<E: std::fmt::Display> From<E> for Fatal {
    fn from(e: E) -> Self {
        Fatal(e.to_string())
    }
}

type Result<T> = std::result::Result<T, Fatal>;

/// Connects to the server, failing fast (and clearly) if it cannot be reached at start. Once
/// connected, the client reconnects by itself for as long as the bridge runs: a restarted
/// server is waited for, not an error.
async fn connect(server: &str) -> Result<async_nats::Client> {
    async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(None)
        .name("shmq-bridge")
        .connect(server)
        .await
        .map_err(|e| Fatal(format!("cannot reach the NATS server at {server}: {e}")))
}

/// Opens the local queue, naming the path in the error.
fn open_queue(path: &std::path::Path) -> Result<shmq::Queue> {
    shmq::Queue::open(path).map_err(|e| match e {
        shmq::Error::NotFound(_) => Fatal(format!(
            "no shmq queue at {} (create it first: shmq create {})",
            path.display(),
            path.display()
        )),
        e => Fatal(format!("cannot open the queue {}: {e}", path.display())),
    })
}

/// A stop request: SIGINT or SIGTERM. The first asks the bridge to finish what is in flight;
/// the second exits at once, leaving in-flight messages to recovery (shmq gives back what a
/// dead exporter held; JetStream redelivers what a dead importer had not acknowledged).
fn stop_signal() -> Result<tokio::sync::watch::Receiver<bool>> {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        let mut seen = 0;
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            seen += 1;
            if seen == 1 {
                let _ = tx.send(true);
            } else {
                eprintln!("shmq-bridge: second signal, exiting now; recovery gives back what was in flight");
                std::process::exit(130);
            }
        }
    });
    Ok(rx)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One thread: the bridge's loop and the client's connection task then hand each publish,
    // ack and delivery to each other without waking another thread (measured: less CPU per
    // message, on the cores the server needs).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("shmq-bridge: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let stop = stop_signal()?;
        match cli.command {
            Command::Export(args) => export::run(args, stop).await,
            Command::Import(args) => import::run(args, stop).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fatal(message)) => {
            eprintln!("shmq-bridge: {message}");
            ExitCode::FAILURE
        }
    }
}
