// SPDX-License-Identifier: MIT OR Apache-2.0
//! The topic (fanout) API from C and C++, linked against both `libshmq.a` and `libshmq.so`:
//! `c/topic.c` (arguments, statuses, BLOCK and DROP subscriptions, prefixes, all-or-nothing
//! publishes, unsubscribe) and `c/topic_wrapper.cpp` (the `shmqpp::topic` wrapper).

mod common;

use common::{c_test_source, compile, queue_dir, run_ok, Link};
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

fn run_in_scratch_dir(exe: std::path::PathBuf) -> String {
    let dir = queue_dir();
    let mut cmd = Command::new(exe);
    cmd.arg(dir.path());
    run_ok(cmd, LIMIT)
}

#[test]
fn c_topic_api_keeps_its_promises_with_both_libraries() {
    for link in Link::BOTH {
        let exe = compile("topic", &[c_test_source("topic.c")], link);
        let out = run_in_scratch_dir(exe);
        assert!(out.contains("topic: 0 failures"), "{out}");
    }
}

#[test]
fn cpp_topic_wrapper_publishes_and_owns_its_handle_with_both_libraries() {
    for link in Link::BOTH {
        let exe = compile("topic_wrapper", &[c_test_source("topic_wrapper.cpp")], link);
        let out = run_in_scratch_dir(exe);
        assert!(out.contains("topic_wrapper: 0 failures"), "{out}");
    }
}
