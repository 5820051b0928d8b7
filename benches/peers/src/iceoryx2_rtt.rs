// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `iceoryx2` row: a publish-subscribe ping-pong between two processes, busy-polling, with
//! the settings of iceoryx2's own ping-pong benchmark (history 0, subscriber buffer 1, safe
//! overflow). Each message is a `[u8]` sample of the run's size, written into a loaned sample
//! (one copy in) and read in place by the receiver, who copies it into its reply; shmq's
//! `try_send` / `try_recv` copy in and out likewise.

use crate::bench::peer::{Patience, Peer, Shared, SharedSafe};
use crate::bench::rtt::{check_echo, sample, stamp};
use crate::bench::{Outcome, Settings};
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Start-up and shutdown signals between the two processes.
#[repr(C, align(128))]
struct Handshake {
    /// How many sides have created their ports.
    ready: AtomicU32,
    /// Set by the parent when it is done: the child drops its ports and node, then exits.
    stop: AtomicU32,
}

// SAFETY: atomics only, valid when zeroed.
unsafe impl SharedSafe for Handshake {}

struct Side {
    // Field order is drop order: ports before the node that owns them.
    publisher: Publisher<ipc::Service, [u8], ()>,
    subscriber: Subscriber<ipc::Service, [u8], ()>,
    node: Node<ipc::Service>,
}

fn fail(what: &str) -> impl Fn(&dyn std::fmt::Debug) -> String + '_ {
    move |e| format!("iceoryx2 {what}: {e:?}")
}

impl Side {
    /// A node that publishes on service `tx` and subscribes to service `rx`.
    fn new(tx: &str, rx: &str, size: usize) -> Result<Side, String> {
        let node = NodeBuilder::new()
            .signal_handling_mode(SignalHandlingMode::Disabled)
            .create::<ipc::Service>()
            .map_err(|e| fail("node")(&e))?;
        let service = |name: &str| {
            let name: ServiceName = name.try_into().map_err(|e| fail("service name")(&e))?;
            node.service_builder(&name)
                .publish_subscribe::<[u8]>()
                .max_publishers(1)
                .max_subscribers(1)
                .history_size(0)
                .subscriber_max_buffer_size(1)
                .enable_safe_overflow(true)
                .open_or_create()
                .map_err(|e| fail("service")(&e))
        };
        let publisher = service(tx)?
            .publisher_builder()
            .initial_max_slice_len(size)
            .create()
            .map_err(|e| fail("publisher")(&e))?;
        let subscriber = service(rx)?
            .subscriber_builder()
            .create()
            .map_err(|e| fail("subscriber")(&e))?;
        Ok(Side {
            publisher,
            subscriber,
            node,
        })
    }

    fn send(&self, msg: &[u8]) -> Result<(), String> {
        let sample = self
            .publisher
            .loan_slice_uninit(msg.len())
            .map_err(|e| fail("loan")(&e))?;
        sample
            .write_from_slice(msg)
            .send()
            .map_err(|e| fail("send")(&e))?;
        Ok(())
    }

    /// Copies the next message into `buf` if one is there.
    fn try_recv(&self, buf: &mut [u8]) -> Result<bool, String> {
        match self.subscriber.receive().map_err(|e| fail("receive")(&e))? {
            Some(sample) => {
                let payload = sample.payload();
                let n = payload.len().min(buf.len());
                buf[..n].copy_from_slice(&payload[..n]);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// `iceoryx2`: round trips of iceoryx2 publish-subscribe between two processes.
pub fn iceoryx2(s: &Settings) -> Result<Outcome, String> {
    set_log_level(LogLevel::Error);
    let handshake = Shared::<Handshake>::new(0)?;
    // SAFETY: getpid has no preconditions.
    let tag = format!("shmq-bench/{}", unsafe { libc::getpid() });
    let (ping, pong) = (format!("{tag}/ping"), format!("{tag}/pong"));
    let size = s.size;
    let peer = Peer::spawn(
        s,
        || {
            let side = Side::new(&pong, &ping, size)?;
            handshake.ready.fetch_add(1, Ordering::AcqRel);
            let mut buf = vec![0u8; size];
            while handshake.stop.load(Ordering::Relaxed) == 0 {
                if side.try_recv(&mut buf)? {
                    side.send(&buf)?;
                } else {
                    std::hint::spin_loop();
                }
            }
            Ok(())
        },
        || {},
    )?;
    let side = Side::new(&ping, &pong, size)?;
    handshake.ready.fetch_add(1, Ordering::AcqRel);
    let mut patience = peer.patience();
    while handshake.ready.load(Ordering::Acquire) < 2 {
        patience.spin()?;
    }
    let mut msg = vec![0u8; size];
    let mut reply = vec![0u8; size];
    connect(&side, &mut msg, &mut reply, &mut patience)?;
    let result = sample(
        s,
        || Ok(()),
        |seq| {
            stamp(&mut msg, seq);
            side.send(&msg)?;
            while !side.try_recv(&mut reply)? {
                patience.spin()?;
            }
            check_echo(&reply, seq)
        },
    );
    handshake.stop.store(1, Ordering::Relaxed);
    // Let the child drop its ports and node (iceoryx2 cleans up on drop), then kill it if need be.
    let until = Instant::now() + Duration::from_secs(2);
    while !peer.is_gone() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(peer);
    side.node.try_cleanup_dead_nodes();
    result
}

/// Pings (sequence number 0) until an echo comes back: a publisher connects to a subscriber
/// of another process on its next send after the subscriber appeared, so the first pings may
/// find nobody. Then lets stray echoes arrive and drops them.
fn connect(
    side: &Side,
    msg: &mut [u8],
    reply: &mut [u8],
    patience: &mut Patience<'_>,
) -> Result<(), String> {
    stamp(msg, 0);
    'ping: loop {
        side.send(msg)?;
        for _ in 0..100_000 {
            if side.try_recv(reply)? {
                break 'ping;
            }
            patience.spin()?;
        }
    }
    std::thread::sleep(Duration::from_millis(10));
    while side.try_recv(reply)? {}
    Ok(())
}
