// SPDX-License-Identifier: MIT OR Apache-2.0
//! C and C++ programs compiled against `shmq.h` / `shmq.hpp` and linked against both
//! `libshmq.a` and `libshmq.so` keep the contract: every status code, the API's behaviour,
//! crash recovery (consumers and producers SIGKILLed mid-claim), the C++ wrapper, and the
//! examples.

mod common;

use common::{
    c_test_passes_with_both_libraries, c_test_source, compile, example_source, queue_dir,
    run_in_scratch_dir, run_ok, Link,
};
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

/// Every status code of the contract and its value (15 is reserved for `SHMQ_EXPIRED`, issue 12).
const CONTRACT_CODES: [(usize, &str); 16] = [
    (0, "SHMQ_OK"),
    (1, "SHMQ_FULL"),
    (2, "SHMQ_EMPTY"),
    (3, "SHMQ_TIMEOUT"),
    (4, "SHMQ_CLOSED"),
    (5, "SHMQ_TOO_LARGE"),
    (6, "SHMQ_BUFFER_TOO_SMALL"),
    (7, "SHMQ_INVALID_ARGUMENT"),
    (8, "SHMQ_NOT_FOUND"),
    (9, "SHMQ_ALREADY_EXISTS"),
    (10, "SHMQ_PERMISSION_DENIED"),
    (11, "SHMQ_CORRUPT"),
    (12, "SHMQ_INCOMPATIBLE"),
    (13, "SHMQ_IO"),
    (14, "SHMQ_INTERNAL"),
    (16, "SHMQ_TOO_MANY_HANDLES"),
];

#[test]
fn every_status_code_is_produced_by_a_real_call_and_named_by_strerror() {
    for link in Link::BOTH {
        let exe = compile("status_codes", &[c_test_source("status_codes.c")], link);
        let out = run_in_scratch_dir(&exe, LIMIT);
        for (value, name) in CONTRACT_CODES {
            let line = out
                .lines()
                .find(|l| l.starts_with(&format!("{name} = {value} from ")))
                .unwrap_or_else(|| panic!("{name} was not produced ({link:?}):\n{out}"));
            assert!(line.contains(&format!(": {name}: ")), "{line}");
        }
        assert!(out.contains("17 codes produced, 0 failures"), "{out}");
    }
}

#[test]
fn c_api_checks_arguments_and_keeps_its_promises_with_both_libraries() {
    c_test_passes_with_both_libraries("api", "api.c", LIMIT);
}

#[test]
fn c_consumers_killed_holding_a_message_lose_nothing_with_both_libraries() {
    for out in c_test_passes_with_both_libraries("recovery", "recovery.c", LIMIT) {
        assert!(
            out.contains("redeliver: message back with deliveries 2"),
            "{out}"
        );
        print!("{out}");
    }
}

#[test]
fn cpp_wrapper_owns_handles_and_guards_with_both_libraries() {
    c_test_passes_with_both_libraries("wrapper", "wrapper.cpp", LIMIT);
}

#[test]
fn c_examples_exchange_every_message_with_both_libraries() {
    let producers = Link::BOTH.map(|l| compile("producer", &[example_source("c/producer.c")], l));
    let consumers = Link::BOTH.map(|l| compile("consumer", &[example_source("c/consumer.c")], l));
    // Static producer with shared consumer, and the other way round.
    for (producer, consumer) in [
        (&producers[0], &consumers[1]),
        (&producers[1], &consumers[0]),
    ] {
        let dir = queue_dir();
        let path = dir.path().join("demo");
        let mut cmd = Command::new(producer);
        cmd.arg(&path).arg("300");
        let sent = run_ok(cmd, LIMIT);
        assert!(sent.contains("sent 300 messages"), "{sent}");
        let mut cmd = Command::new(consumer);
        cmd.arg(&path);
        let got = run_ok(cmd, LIMIT);
        let lines: Vec<&str> = got.lines().collect();
        assert_eq!(lines.len(), 301, "{got}");
        for (i, line) in lines[..300].iter().enumerate() {
            assert!(line.starts_with(&format!("message {i} (")), "{line}");
        }
        assert!(
            lines[300].starts_with("consumer: received 300 messages"),
            "{got}"
        );
        assert!(!path.exists(), "the consumer removes the queue file");
    }
}

#[test]
fn cpp_pingpong_example_round_trips_with_both_libraries() {
    for link in Link::BOTH {
        let exe = compile("pingpong", &[example_source("cpp/pingpong.cpp")], link);
        let dir = queue_dir();
        let mut cmd = Command::new(exe);
        cmd.arg("1000").arg(dir.path().join("pp"));
        let out = run_ok(cmd, LIMIT);
        assert!(out.starts_with("pingpong: 1000 round trips"), "{out}");
        println!("{} ({})", out.trim(), link.name());
    }
}
