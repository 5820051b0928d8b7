// SPDX-License-Identifier: MIT OR Apache-2.0
//! The topic (fanout) API from C and C++, linked against both `libshmq.a` and `libshmq.so`:
//! `c/topic.c` (arguments, statuses, BLOCK and DROP subscriptions, prefixes, all-or-nothing
//! publishes, unsubscribe) and `c/topic_wrapper.cpp` (the `shmqpp::topic` wrapper).

mod common;

use common::c_test_passes_with_both_libraries;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn c_topic_api_keeps_its_promises_with_both_libraries() {
    c_test_passes_with_both_libraries("topic", "topic.c", LIMIT);
}

#[test]
fn cpp_topic_wrapper_publishes_and_owns_its_handle_with_both_libraries() {
    c_test_passes_with_both_libraries("topic_wrapper", "topic_wrapper.cpp", LIMIT);
}
