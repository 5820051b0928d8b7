// SPDX-License-Identifier: MIT OR Apache-2.0
//! `shmq_wait_any` from C: the example `examples/c/wait_any.c` serves 100 and 1,000 queues
//! fed by a forked producer process and gets every message exactly once, on the queue it was
//! sent to, linked against both libraries; and the call checks its arguments.

mod common;

use common::{c_test_passes_with_both_libraries, compile, example_source, queue_dir, run_ok, Link};
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn c_example_serves_many_queues_with_wait_any_with_both_libraries() {
    for (link, n) in Link::BOTH.into_iter().zip([100, 1000]) {
        let exe = compile("wait_any", &[example_source("c/wait_any.c")], link);
        let dir = queue_dir();
        let mut cmd = Command::new(exe);
        cmd.arg(dir.path()).arg(n.to_string()).arg("500");
        let out = run_ok(cmd, LIMIT);
        assert!(
            out.contains(&format!(
                "wait_any: received 500 messages from {n} queues, 0 failures"
            )),
            "{out}"
        );
        print!("{out}");
    }
}

#[test]
fn wait_any_checks_arguments_and_reports_ready_queues_with_both_libraries() {
    c_test_passes_with_both_libraries("wait_any_api", "wait_any.c", LIMIT);
}
