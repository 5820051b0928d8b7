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
//! pulling instead of dropping anything, and while it is full the messages pulled are reported
//! in progress (`+WPI`) every third of the ack wait, so JetStream does not deliver them again.
//!
//! A message larger than the queue's slots is parked on `--park-subject` (acknowledged only
//! once the park stream acknowledged its copy), or else left in the stream and delivered again
//! later; the others flow meanwhile. A fatal error (a closed queue) confirms the acks of what
//! was committed before the bridge exits.

use crate::export::is_stream_not_found;
use crate::report::Counters;
use crate::{connect, open_queue, Common, Fatal, Result};
use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use async_nats::jetstream::{self, AckKind};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use std::collections::VecDeque;
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
    /// acknowledgement before it delivers a message again. While the queue is full the bridge
    /// tells JetStream that the messages it holds are in progress, so a full queue does not
    /// run this clock out.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    ack_wait: u64,
    /// Where a message too large for the queue's slots goes: it is published on this subject
    /// (which a stream other than the imported one must store) and acknowledged in the imported
    /// stream only once that publish is acknowledged. Without it, such a message stays in the
    /// stream, delivered again every minute and counted, while the others flow.
    #[arg(long)]
    park_subject: Option<String>,
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
    "in_progress",
    "given_back",
    "parked",
    "oversized",
    "ack_errors",
    "pull_errors",
];

/// How long a message too large for the queue waits in the stream (no `--park-subject`, or a
/// park that failed) before JetStream delivers it again.
const OVERSIZED_DELAY: Duration = Duration::from_secs(60);

/// What became of the message in hand.
enum Outcome {
    /// Committed in the queue, or parked: it may be acknowledged.
    Done,
    /// Left in the stream (too large, not parked): not to be acknowledged.
    Left,
    /// A stop request came first: not sent, to be given back.
    Stopped,
}

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
    let park = match &args.park_subject {
        None => None,
        Some(subject) => {
            // The imported stream's identity: its sequences restart in a stream deleted and
            // created again under the same name.
            let created = stream.cached_info().created.unix_timestamp_nanos();
            let origin = format!("{name}-{created:x}");
            Some(Park::check(&js, subject, name, origin).await?)
        }
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
    // The consumer's own ack wait (an existing consumer keeps its own): messages held behind a
    // full queue are reported in progress three times within it.
    let ack_wait = consumer.cached_info().config.ack_wait;
    let progress_every = (ack_wait / 3).max(Duration::from_millis(100));

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
    // Messages of the current pull taken from it while the queue was full (to be reported in
    // progress); they are sent before the pull's next ones.
    let mut held: VecDeque<jetstream::Message> = VecDeque::new();
    let outcome: Result<()> = 'pulling: loop {
        if *stop.borrow() {
            break Ok(());
        }
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
            let next = match held.pop_front() {
                Some(msg) => Some(Ok(msg)),
                None => tokio::select! {
                    biased;
                    _ = stop.changed() => {
                        give_back(&mut held, &mut batch, &counters).await;
                        break 'pulling Ok(());
                    }
                    Some(result) = acks.next(), if !acks.is_empty() => { on_ack(result); continue; }
                    next = batch.next() => next,
                },
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
            let deliveries = u32::try_from(delivered).unwrap_or(u32::MAX);
            let outcome = if msg.payload.len() > max {
                oversized(&msg, seq, name, max, park.as_ref(), &counters).await
            } else {
                let mut wait = FullWait {
                    batch: &mut batch,
                    held: &mut held,
                    stop: &mut stop,
                    every: progress_every,
                    counters: &counters,
                };
                match send(&queue, &msg, deliveries, &mut wait).await {
                    Ok(Outcome::Done) => {
                        counters.add("sent", 1);
                        if delivered > 1 {
                            counters.add("redelivered", 1);
                        }
                        Outcome::Done
                    }
                    Ok(outcome) => outcome,
                    Err(e) => {
                        // Fatal: what it pulled goes back to the stream at once, and the acks
                        // of what it committed are flushed below, before the bridge exits.
                        let _ = msg.ack_with(AckKind::Nak(None)).await;
                        counters.add("given_back", 1);
                        give_back(&mut held, &mut batch, &counters).await;
                        break 'pulling Err(send_error(e));
                    }
                }
            };
            match outcome {
                Outcome::Done => {}
                Outcome::Left => continue,
                Outcome::Stopped => {
                    // Give it back now rather than after the ack wait.
                    let _ = msg.ack_with(AckKind::Nak(None)).await;
                    counters.add("given_back", 1);
                    give_back(&mut held, &mut batch, &counters).await;
                    break 'pulling Ok(());
                }
            }
            // Committed locally (or parked): now, and only now, the message may leave the
            // stream.
            acks.push(async move { msg.double_ack().await });
            while acks.len() >= window {
                if let Some(result) = acks.next().await {
                    on_ack(result);
                }
            }
        }
    };
    // On every way out, a fatal error included: the acks of what was committed are confirmed
    // before the bridge exits, so that a restarted bridge does not send those messages again.
    while let Some(result) = acks.next().await {
        on_ack(result);
    }
    counters.set_in_flight(0);
    counters.finish(args.common.json);
    outcome
}

/// What a send waiting on a full queue needs: the pull whose messages it holds, and the stop
/// request.
struct FullWait<'a> {
    batch: &'a mut pull::Batch,
    held: &'a mut VecDeque<jetstream::Message>,
    stop: &'a mut watch::Receiver<bool>,
    /// How often the messages held are reported in progress (a third of the ack wait).
    every: Duration,
    counters: &'a Counters,
}

impl FullWait<'_> {
    /// Tells JetStream that `msg` and every message of the pull that has arrived are in
    /// progress (`+WPI`), which restarts their ack wait: a full queue must not make JetStream
    /// deliver them again while the bridge still holds them.
    async fn in_progress(&mut self, msg: &jetstream::Message) {
        while let Some(Some(Ok(next))) = self.batch.next().now_or_never() {
            self.held.push_back(next);
        }
        for m in std::iter::once(msg).chain(self.held.iter()) {
            if m.ack_with(AckKind::Progress).await.is_ok() {
                self.counters.add("in_progress", 1);
            }
        }
    }
}

/// Sends `msg` into the queue, waiting while it is full (no more is pulled meanwhile; what the
/// pull holds is reported in progress). A message that JetStream delivered more than once keeps
/// its delivery count in the queue, so its consumers can tell.
async fn send(
    queue: &shmq::Queue,
    msg: &jetstream::Message,
    deliveries: u32,
    wait: &mut FullWait<'_>,
) -> std::result::Result<Outcome, shmq::Error> {
    let payload: &[u8] = &msg.payload;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + wait.every, wait.every);
    let mut waited = false;
    loop {
        let tried = if deliveries > 1 {
            queue.try_reserve().and_then(|mut slot| {
                slot[..payload.len()].copy_from_slice(payload);
                slot.set_deliveries(deliveries);
                slot.commit(payload.len())
            })
        } else {
            queue.try_send(payload)
        };
        match tried {
            Ok(()) => return Ok(Outcome::Done),
            Err(shmq::Error::Full) => {}
            Err(e) => return Err(e),
        }
        if !waited {
            wait.counters.add("waited_full", 1);
            waited = true;
        }
        // A redelivered message has no async reservation: redeliveries follow a bridge crash
        // only, so a short poll is enough for them.
        tokio::select! {
            biased;
            _ = wait.stop.changed() => return Ok(Outcome::Stopped),
            _ = tick.tick() => wait.in_progress(msg).await,
            sent = queue.send_async(payload), if deliveries <= 1 => {
                sent?;
                return Ok(Outcome::Done);
            }
            _ = tokio::time::sleep(Duration::from_millis(1)), if deliveries > 1 => {}
        }
    }
}

/// A message larger than the queue's slots can never be sent: it is parked (and then may be
/// acknowledged), or else left in the stream for a while. Either way the bridge goes on with
/// the others, and says what it did on standard error.
async fn oversized(
    msg: &jetstream::Message,
    seq: u64,
    stream: &str,
    max: usize,
    park: Option<&Park>,
    counters: &Counters,
) -> Outcome {
    let len = msg.payload.len();
    let why = format!(
        "message {seq} of stream {stream} has {len} bytes, more than the queue's maximum of {max}"
    );
    if let Some(park) = park {
        match park.publish(msg, stream, seq, &why).await {
            Ok((parked_in, parked_seq)) => {
                counters.add("parked", 1);
                eprintln!(
                    "shmq-bridge: {why}: parked on {} (stream {parked_in}, seq {parked_seq})",
                    park.subject
                );
                return Outcome::Done;
            }
            Err(e) => eprintln!(
                "shmq-bridge: {why}: parking it on {} failed: {e}",
                park.subject
            ),
        }
    }
    counters.add("oversized", 1);
    let _ = msg.ack_with(AckKind::Nak(Some(OVERSIZED_DELAY))).await;
    eprintln!(
        "shmq-bridge: {why}; it stays in the stream (delivered again in {} s){}",
        OVERSIZED_DELAY.as_secs(),
        if park.is_none() {
            "; give --park-subject to move such messages out"
        } else {
            ""
        }
    );
    Outcome::Left
}

/// Where messages too large for the queue go: a subject that another stream stores.
struct Park {
    js: jetstream::Context,
    subject: String,
    /// The stream that stores the subject (checked at start).
    stream: String,
    /// The imported stream's name and creation time, the first half of a parked copy's
    /// `Nats-Msg-Id`.
    origin: String,
}

impl Park {
    /// Checks that a stream other than the imported one stores `subject`: parking into the
    /// imported stream would bring the message back to this bridge, for ever.
    async fn check(
        js: &jetstream::Context,
        subject: &str,
        imported: &str,
        origin: String,
    ) -> Result<Park> {
        let stream = js.stream_by_subject(subject).await.map_err(|e| {
            Fatal(format!(
                "no stream stores the park subject {subject} ({e}): create one for it first"
            ))
        })?;
        if stream == imported {
            return Err(Fatal(format!(
                "the park subject {subject} is stored by the imported stream {imported} itself: parked messages would come back; give it a stream of its own"
            )));
        }
        Ok(Park {
            js: js.clone(),
            subject: subject.to_owned(),
            stream,
            origin,
        })
    }

    /// Publishes a copy of `msg`, with headers naming where it came from and why, and waits
    /// for the PubAck: the stream and sequence that stored it.
    async fn publish(
        &self,
        msg: &jetstream::Message,
        stream: &str,
        seq: u64,
        why: &str,
    ) -> std::result::Result<(String, u64), String> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Shmq-Bridge-Stream", stream);
        headers.insert("Shmq-Bridge-Sequence", seq.to_string().as_str());
        headers.insert("Shmq-Bridge-Subject", msg.subject.as_str());
        headers.insert("Shmq-Bridge-Reason", why);
        // The same id for every copy of this stream message: a park repeated after a crash
        // (the original not yet acknowledged) is discarded by the park stream's duplicate
        // window. With the stream's creation time, so that a stream created again under the
        // same name (its sequences starting over) does not have its messages taken for those.
        headers.insert("Nats-Msg-Id", format!("{}-{seq:x}", self.origin).as_str());
        let ack = self
            .js
            .publish_with_headers(self.subject.clone(), headers, msg.payload.clone())
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        if ack.stream != self.stream {
            return Err(format!(
                "stored by stream {} (seq {}), not {}",
                ack.stream, ack.sequence, self.stream
            ));
        }
        Ok((ack.stream, ack.sequence))
    }
}

/// Naks what the current pull has delivered already and nobody will send now, so JetStream
/// delivers it again at once rather than after the ack wait.
async fn give_back(
    held: &mut VecDeque<jetstream::Message>,
    batch: &mut pull::Batch,
    counters: &Counters,
) {
    while let Some(msg) = held
        .pop_front()
        .or_else(|| match batch.next().now_or_never() {
            Some(Some(Ok(msg))) => Some(msg),
            _ => None,
        })
    {
        if msg.ack_with(AckKind::Nak(None)).await.is_ok() {
            counters.add("given_back", 1);
        }
    }
}

fn send_error(e: shmq::Error) -> Fatal {
    match e {
        shmq::Error::Closed => {
            Fatal("the queue was closed; what was sent into it is acknowledged, the rest stays in the stream".into())
        }
        e => Fatal(format!("sending into the queue: {e}")),
    }
}
