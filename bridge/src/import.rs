// SPDX-License-Identifier: MIT OR Apache-2.0
//! `shmq-bridge import`: a JetStream stream into a local queue, each message at least once.
//!
//! The invariant: a message is acknowledged to JetStream only after its send into the queue
//! committed, and the acknowledgement is confirmed by the server (a double ack). A bridge that
//! dies between the two leaves the message unacknowledged, and JetStream delivers it again
//! once the consumer's ack wait has passed, with its delivery count raised: duplicates occur
//! only after such a death (or a lost acknowledgement), never a loss.
//!
//! Backpressure: messages are pulled in batches of at most the window, and the next pull is
//! asked for only when the batch has been sent into the queue. A full queue therefore stops the
//! pulling instead of dropping anything.

use crate::export::is_stream_not_found;
use crate::report::Counters;
use crate::{connect, open_queue, Common, Fatal, Result};
use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use async_nats::jetstream::{self, AckKind};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// The durable consumer (created if missing: pull, explicit acks).
    #[arg(long)]
    consumer: String,
    /// Ack wait of a consumer created here, in seconds: how long JetStream waits for an
    /// acknowledgement before it delivers a message again.
    #[arg(long, default_value_t = 30)]
    ack_wait: u64,
    /// The queue to send messages into.
    queue: PathBuf,
}

/// The counters' names; the first is what the progress line's rate counts.
const COUNTERS: &[&str] = &[
    "acknowledged",
    "pulled",
    "sent",
    "redelivered",
    "waited_full",
    "given_back",
    "ack_errors",
    "pull_errors",
];

pub async fn run(args: Args, mut stop: watch::Receiver<bool>) -> Result<()> {
    let queue = open_queue(&args.queue)?;
    let max = queue.max_message_size();
    let client = connect(&args.common.server).await?;
    let js = jetstream::new(client);
    let name = &args.common.stream;
    let stream = match js.get_stream(name).await {
        Ok(stream) => stream,
        Err(e) if is_stream_not_found(&e) => {
            return Err(Fatal(format!(
                "no stream {name} on {}: start `shmq-bridge export`, which creates it, or create it first",
                args.common.server
            )))
        }
        Err(e) => return Err(Fatal(format!("looking up stream {name}: {e}"))),
    };
    let consumer: PullConsumer = stream
        .get_or_create_consumer(
            &args.consumer,
            pull::Config {
                durable_name: Some(args.consumer.clone()),
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_secs(args.ack_wait),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| {
            Fatal(format!(
                "creating consumer {} on {name}: {e}",
                args.consumer
            ))
        })?;

    eprintln!(
        "shmq-bridge: importing stream {name} (consumer {}) on {} into {}",
        args.consumer,
        args.common.server,
        args.queue.display()
    );
    let counters = Counters::new("import", COUNTERS);
    counters.spawn_progress();
    let window = args.common.window as usize;
    // Confirmed acks in flight: each resolves when the server has recorded the ack.
    let mut acks = FuturesUnordered::new();
    let on_ack = |result: std::result::Result<(), async_nats::Error>| match result {
        Ok(()) => counters.add("acknowledged", 1),
        // The message stays unacknowledged: JetStream delivers it again (a duplicate).
        Err(_) => counters.add("ack_errors", 1),
    };
    let mut failures = 0u32;
    'pulling: while !*stop.borrow() {
        let mut batch = match consumer
            .batch()
            .max_messages(window)
            .expires(Duration::from_secs(1))
            .messages()
            .await
        {
            Ok(batch) => batch,
            Err(_) => {
                // The server may be restarting; the client reconnects by itself.
                counters.add("pull_errors", 1);
                failures = failures.saturating_add(1);
                tokio::time::sleep(Duration::from_millis(50 << failures.min(5))).await;
                continue;
            }
        };
        loop {
            counters.set_in_flight(acks.len());
            let next = tokio::select! {
                biased;
                _ = stop.changed() => {
                    give_back(&mut batch, &counters).await;
                    break 'pulling;
                }
                Some(result) = acks.next(), if !acks.is_empty() => { on_ack(result); continue; }
                next = batch.next() => next,
            };
            let msg = match next {
                None => break,
                Some(Ok(msg)) => msg,
                Some(Err(_)) => {
                    counters.add("pull_errors", 1);
                    break;
                }
            };
            failures = 0;
            counters.add("pulled", 1);
            // Parsed from the reply subject once: delivery count and stream sequence.
            let (delivered, seq) = msg
                .info()
                .map(|info| (info.delivered, info.stream_sequence))
                .unwrap_or((1, 0));
            if msg.payload.len() > max {
                let _ = msg.ack_with(AckKind::Nak(None)).await;
                return Err(Fatal(format!(
                    "message {seq} of stream {name} has {} bytes, more than the queue's maximum of {max}; it stays in the stream",
                    msg.payload.len()
                )));
            }
            // A message JetStream delivers again (an import bridge died before its ack was
            // confirmed) keeps its delivery count in the queue, so its consumers can tell.
            if delivered > 1 {
                let deliveries = u32::try_from(delivered).unwrap_or(u32::MAX);
                if !send_redelivered(&queue, &msg.payload, deliveries, &mut stop).await? {
                    let _ = msg.ack_with(AckKind::Nak(None)).await;
                    counters.add("given_back", 1);
                    give_back(&mut batch, &counters).await;
                    break 'pulling;
                }
            } else {
                // Send, waiting while the queue is full: no more is pulled meanwhile.
                match queue.try_send(&msg.payload) {
                    Ok(()) => {}
                    Err(shmq::Error::Full) => {
                        counters.add("waited_full", 1);
                        tokio::select! {
                            sent = queue.send_async(&msg.payload) => sent.map_err(send_error)?,
                            _ = stop.changed() => {
                                // Give it back now rather than after the ack wait.
                                let _ = msg.ack_with(AckKind::Nak(None)).await;
                                counters.add("given_back", 1);
                                give_back(&mut batch, &counters).await;
                                break 'pulling;
                            }
                        }
                    }
                    Err(e) => return Err(send_error(e)),
                }
            }
            counters.add("sent", 1);
            if delivered > 1 {
                counters.add("redelivered", 1);
            }
            // Committed locally: now, and only now, the message may leave the stream.
            acks.push(async move { msg.double_ack().await });
            while acks.len() >= window {
                if let Some(result) = acks.next().await {
                    on_ack(result);
                }
            }
        }
    }
    while let Some(result) = acks.next().await {
        on_ack(result);
    }
    counters.set_in_flight(0);
    counters.finish(args.common.json);
    Ok(())
}

/// Sends a message that JetStream delivered `deliveries` times, with that count (see
/// `SendGuard::set_deliveries`), waiting while the queue is full. Redeliveries follow a bridge
/// crash only, so a short poll is enough here. `Ok(false)` if a stop came first (nothing sent).
async fn send_redelivered(
    queue: &shmq::Queue,
    payload: &[u8],
    deliveries: u32,
    stop: &mut watch::Receiver<bool>,
) -> Result<bool> {
    loop {
        match queue.try_reserve() {
            Ok(mut slot) => {
                slot[..payload.len()].copy_from_slice(payload);
                slot.set_deliveries(deliveries);
                slot.commit(payload.len()).map_err(send_error)?;
                return Ok(true);
            }
            Err(shmq::Error::Full) => {}
            Err(e) => return Err(send_error(e)),
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(1)) => {}
            _ = stop.changed() => return Ok(false),
        }
    }
}

/// Naks what the current pull has delivered already and nobody will send now, so JetStream
/// delivers it again at once rather than after the ack wait.
async fn give_back(batch: &mut pull::Batch, counters: &Counters) {
    while let Some(Some(Ok(msg))) = batch.next().now_or_never() {
        if msg.ack_with(AckKind::Nak(None)).await.is_ok() {
            counters.add("given_back", 1);
        }
    }
}

fn send_error(e: shmq::Error) -> Fatal {
    match e {
        shmq::Error::Closed => {
            Fatal("the queue was closed; unsent messages stay in the stream".into())
        }
        e => Fatal(format!("sending into the queue: {e}")),
    }
}
