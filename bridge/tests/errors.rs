// SPDX-License-Identifier: MIT OR Apache-2.0
//! The bridge's clear errors: one line and exit status 1, nothing lost.

mod common;

use async_nats::jetstream::stream::{Config, RetentionPolicy, StorageType};
use common::{bridge, export_args, import_args, runtime, stream_len, wait_timeout, NatsServer};
use shmq::{Options, Queue};
use std::time::Duration;

/// Runs the bridge to its exit, which must be status 1; returns its last line on standard
/// error (the error; a line before it may say what the bridge was setting up).
fn fails(args: &[String]) -> String {
    let mut child = bridge()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_timeout(&mut child, Duration::from_secs(30));
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{args:?}: {status}: {err}");
    let last = err.lines().last().unwrap_or_default().to_owned();
    assert!(last.starts_with("shmq-bridge: "), "{err}");
    last
}

#[test]
fn unreachable_server_missing_stream_and_a_park_subject_without_a_stream_of_its_own_are_clear_errors(
) {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    let _queue = Queue::create(&path, Options::new(8, 64)).unwrap();

    // A port nobody listens on: the server's own, once it is ours and closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("nats://{}", closed.local_addr().unwrap());
    drop(closed);
    let err = fails(&export_args(&path, &dead, "S", "s", 256));
    assert!(err.contains("cannot reach the NATS server"), "{err}");

    let url = server.url();
    let err = fails(&import_args(&url, "NOPE", "c", 256, None, &path));
    assert!(err.contains("no stream NOPE"), "{err}");

    let missing = dir.path().join("q-missing");
    let err = fails(&export_args(&missing, &url, "S", "s", 256));
    assert!(err.contains("no shmq queue"), "{err}");

    // A park subject that no stream stores, or that the imported stream itself stores (parked
    // messages would come back): refused at start, with the message left in the stream.
    runtime().block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
        js.create_stream(Config {
            name: "BIG".into(),
            subjects: vec!["big".into(), "big.parked".into()],
            retention: RetentionPolicy::WorkQueue,
            storage: StorageType::File,
            ..Default::default()
        })
        .await
        .unwrap();
        js.publish("big", vec![1u8; 100].into())
            .await
            .unwrap()
            .await
            .unwrap();
    });
    let with_park = |subject: &str| {
        let mut args = import_args(&url, "BIG", "c", 256, None, &path);
        let queue = args.pop().unwrap();
        args.extend(["--park-subject".to_owned(), subject.to_owned(), queue]);
        args
    };
    let err = fails(&with_park("nowhere"));
    assert!(
        err.contains("no stream stores the park subject nowhere"),
        "{err}"
    );
    let err = fails(&with_park("big.parked"));
    assert!(
        err.contains("stored by the imported stream BIG itself"),
        "{err}"
    );
    assert_eq!(runtime().block_on(stream_len(&url, "BIG")), 1);
    assert_eq!(Queue::inspect(&path).unwrap().len, 0);
}
