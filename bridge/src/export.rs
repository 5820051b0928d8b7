// SPDX-License-Identifier: MIT OR Apache-2.0
//! `shmq-bridge export`: a local queue into a JetStream stream, each message exactly once.
//!
//! The invariant: a message is released from the queue only after JetStream acknowledged its
//! publish. Until then its `RecvGuard` lives in the window of publishes in flight. If the bridge
//! dies, the messages of that window are held by a dead consumer, and shmq gives them back to
//! the queue with their id unchanged; the next bridge publishes them again under the same
//! `Nats-Msg-Id`, and the stream's duplicate window discards the copies it already has. A
//! publish whose acknowledgement fails (a restarting server, a lost connection) is sent again
//! under the same id for the same reason.

use crate::report::Counters;
use crate::{connect, open_queue, Common, Fatal, Result};
use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{Config, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, Context};
use bytes::Bytes;
use shmq::RecvGuard;
use std::collections::VecDeque;
use std::mem::ManuallyDrop;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(clap::Args)]
pub struct Args {
    /// The queue to take messages from.
    queue: PathBuf,
    #[command(flatten)]
    common: Common,
    /// The subject to publish on; a stream created here listens on it.
    #[arg(long)]
    subject: String,
    /// Duplicate window of a stream created here, in seconds: how long a republished message
    /// is recognised. It must outlast the time a message can spend between its first publish
    /// and its release (a bridge restart, a server restart).
    #[arg(long, default_value_t = 120)]
    duplicate_window: u64,
}

/// The counters' names; the first is what the progress line's rate counts.
const COUNTERS: &[&str] = &[
    "acknowledged",
    "received",
    "published",
    "republished",
    "duplicates",
    "publish_errors",
];

/// How long a publish waits for its acknowledgement before it is sent again.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// One message between its receipt and its release: its slot stays claimed while it is here.
///
/// The guard is released only where JetStream's ack is handled. On every other way out (an
/// error, a panic) it is forgotten instead, and dropping the `Queue` gives forgotten claims
/// back to the queue, as recovery would after a crash: a message leaves only once acknowledged.
struct InFlight<'q> {
    guard: ManuallyDrop<RecvGuard<'q>>,
    msg_id: String,
    payload: Bytes,
    ack: PublishAckFuture,
    /// When it was (last) handed to the client.
    sent: Instant,
}

pub async fn run(args: Args, mut stop: watch::Receiver<bool>) -> Result<()> {
    let queue = open_queue(&args.queue)?;
    // The queue's identity: ids restart from 0 when a queue file is deleted and created again at
    // the same path, so the creation time keeps a new queue's messages apart from the old one's.
    let origin = queue.stats().created_unix_ns;
    let client = connect(&args.common.server).await?;
    if client.server_info().max_payload < queue.max_message_size() {
        eprintln!(
            "shmq-bridge: warning: the queue's messages may be up to {} bytes, the server accepts at most {}",
            queue.max_message_size(),
            client.server_info().max_payload
        );
    }
    let js = jetstream::new(client);
    ensure_stream(&js, &args).await?;

    eprintln!(
        "shmq-bridge: exporting {} to stream {} (subject {}) on {}",
        args.queue.display(),
        args.common.stream,
        args.subject,
        args.common.server
    );
    let counters = Counters::new("export", COUNTERS);
    counters.spawn_progress();
    let window = args.common.window as usize;
    let mut in_flight: VecDeque<InFlight<'_>> = VecDeque::with_capacity(window);
    let mut closed = false;
    loop {
        let stopping = *stop.borrow();
        // Take what is ready, up to the window.
        while !stopping && !closed && in_flight.len() < window {
            match queue.try_recv_in_place() {
                Ok(guard) => {
                    counters.add("received", 1);
                    in_flight.push_back(publish_new(&js, &args.subject, origin, guard).await?);
                    counters.add("published", 1);
                }
                Err(shmq::Error::Empty) => break,
                Err(shmq::Error::Closed) => closed = true,
                Err(e) => return Err(Fatal(format!("receiving from the queue: {e}"))),
            }
        }
        counters.set_in_flight(in_flight.len());
        let Some(oldest) = in_flight.pop_front() else {
            if stopping || closed {
                break;
            }
            // Nothing in flight: wait for a message or a stop request. A consumer that died
            // holding a message away from the cursors is found by `recover`, now and then.
            tokio::select! {
                got = queue.recv_in_place_async() => match got {
                    Ok(guard) => {
                        counters.add("received", 1);
                        in_flight.push_back(publish_new(&js, &args.subject, origin, guard).await?);
                        counters.add("published", 1);
                    }
                    Err(shmq::Error::Closed) => closed = true,
                    Err(e) => return Err(Fatal(format!("receiving from the queue: {e}"))),
                },
                _ = stop.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => { queue.recover(); }
            }
            continue;
        };
        // Wait for the oldest publish's acknowledgement; acks come back in order.
        let InFlight {
            guard,
            msg_id,
            payload,
            ack,
            sent,
        } = oldest;
        // The client's own ack timeout starts only when its future is first polled, which for
        // the back of a full window is long after the publish: count from the publish instead,
        // so that a server crash fails the whole window's acks at once, not one by one.
        let outcome = match tokio::time::timeout_at((sent + ACK_TIMEOUT).into(), ack).await {
            Ok(outcome) => outcome,
            Err(_) => Err(PublishErrorKind::TimedOut.into()),
        };
        match outcome {
            Ok(ack) if ack.stream != args.common.stream => {
                // A PubAck names the stream that stored the message: another stream (one that
                // also listens on the subject) is not where this bridge promised to put it.
                return Err(Fatal(format!(
                    "message {msg_id} was stored by stream {} (seq {}), not {}; it stays in the queue",
                    ack.stream, ack.sequence, args.common.stream
                )));
            }
            Ok(ack) => {
                if ack.duplicate {
                    counters.add("duplicates", 1);
                }
                // Acknowledged: now, and only now, the message may leave the queue.
                drop(ManuallyDrop::into_inner(guard));
                counters.add("acknowledged", 1);
            }
            Err(e) => {
                counters.add("publish_errors", 1);
                // "No responders" also answers a publish while a restarted server is still
                // loading its streams: only a stream that the server says is gone is fatal.
                if matches!(e.kind(), PublishErrorKind::StreamNotFound) {
                    if let Err(e) = js.get_stream(&args.common.stream).await {
                        if is_stream_not_found(&e) {
                            return Err(Fatal(format!(
                                "stream {} is gone from {} (was it deleted?)",
                                args.common.stream, args.common.server
                            )));
                        }
                    }
                }
                // The server may be restarting, or the ack was lost with a connection: send it
                // again under the same id. A timeout has paced this already; an error that came
                // back at once (a server refusing for now) waits a little first. It goes to the
                // back of the window: the others are in flight already.
                if sent.elapsed() < Duration::from_secs(1) {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                let ack = publish(&js, &args.subject, &msg_id, payload.clone()).await?;
                counters.add("republished", 1);
                in_flight.push_back(InFlight {
                    guard,
                    msg_id,
                    payload,
                    ack,
                    sent: Instant::now(),
                });
            }
        }
    }
    counters.set_in_flight(0);
    counters.finish(args.common.json);
    Ok(())
}

/// Publishes a message just received, under the id that its queue and position give it.
async fn publish_new<'q>(
    js: &Context,
    subject: &str,
    origin: u64,
    guard: RecvGuard<'q>,
) -> Result<InFlight<'q>> {
    let guard = ManuallyDrop::new(guard);
    let msg_id = format!("{origin:x}-{:x}", guard.id());
    let payload = Bytes::copy_from_slice(&guard);
    let ack = publish(js, subject, &msg_id, payload.clone()).await?;
    Ok(InFlight {
        guard,
        msg_id,
        payload,
        ack,
        sent: Instant::now(),
    })
}

/// Hands one publish to the client; the returned future resolves with JetStream's ack. While
/// the client cannot take it (a long outage fills its buffer), it tries again.
async fn publish(
    js: &Context,
    subject: &str,
    msg_id: &str,
    payload: Bytes,
) -> Result<PublishAckFuture> {
    loop {
        let message = PublishMessage::build()
            .payload(payload.clone())
            .message_id(msg_id);
        match js.send_publish(subject.to_owned(), message).await {
            Ok(ack) => return Ok(ack),
            Err(e) if matches!(e.kind(), PublishErrorKind::MaxPayloadExceeded) => {
                return Err(Fatal(format!(
                    "a message of {} bytes is larger than the server's maximum payload; it stays in the queue",
                    payload.len()
                )))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Finds the stream, or creates it: work-queue retention (a message leaves the stream once a
/// consumer acknowledged it), file storage, and the duplicate window that makes republishing
/// safe.
async fn ensure_stream(js: &Context, args: &Args) -> Result<()> {
    let name = &args.common.stream;
    match js.get_stream(name).await {
        Ok(mut stream) => {
            let info = stream.info().await?;
            if info.config.duplicate_window.is_zero() {
                return Err(Fatal(format!(
                    "stream {name} has no duplicate window: republished messages would be stored twice"
                )));
            }
            Ok(())
        }
        Err(e) if is_stream_not_found(&e) => {
            js.create_stream(Config {
                name: name.clone(),
                subjects: vec![args.subject.clone()],
                retention: RetentionPolicy::WorkQueue,
                storage: StorageType::File,
                duplicate_window: Duration::from_secs(args.duplicate_window),
                ..Default::default()
            })
            .await
            .map_err(|e| Fatal(format!("creating stream {name}: {e}")))?;
            Ok(())
        }
        Err(e) => Err(Fatal(format!("looking up stream {name}: {e}"))),
    }
}

pub fn is_stream_not_found(e: &async_nats::jetstream::context::GetStreamError) -> bool {
    use async_nats::jetstream::context::GetStreamErrorKind;
    use async_nats::jetstream::ErrorCode;
    matches!(e.kind(), GetStreamErrorKind::JetStream(js) if js.error_code() == ErrorCode::STREAM_NOT_FOUND)
}
