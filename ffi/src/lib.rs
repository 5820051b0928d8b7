// SPDX-License-Identifier: MIT OR Apache-2.0
//! The C ABI of shmq: `libshmq.so` and `libshmq.a`, declared by `include/shmq.h`.
//!
//! Every exported function:
//! - returns a status code (`SHMQ_OK` or the reason it did nothing), except the accessors and the
//!   release calls, whose results cannot fail;
//! - checks its pointer arguments for NULL and its sizes for range (`SHMQ_INVALID_ARGUMENT`)
//!   before it does anything;
//! - runs inside `catch_unwind`, so a panic (a bug) returns `SHMQ_INTERNAL` instead of unwinding
//!   into C.
//!
//! The header is written by hand; `tests/header.rs` fails when the header and the exported symbols,
//! status values or struct layouts disagree. The contract that C users read (threads, fork,
//! ownership of guards, timeouts) is documented there, in `include/shmq.h`.
//!
//! Modules, by concept: `status` (codes, `shmq_strerror`, the panic boundary), `timeout` (the
//! `timeout_ns` convention), `handle` (open, create with options, detach, close, stats),
//! `messages` (copying sends and receives, one or a batch, and the receive with its delivery
//! count), `zero_copy` (reserve/commit, receive in place/release, the delivery count), `origin` (where a
//! dead-lettered message came from), `topic`
//! (fanout: topics whose subscriptions are queues), `select` (`shmq_wait_any`: one thread waits on
//! many queues).

#![deny(unsafe_op_in_unsafe_fn)]

mod handle;
mod messages;
mod origin;
mod select;
mod status;
mod timeout;
mod topic;
mod zero_copy;

pub use handle::{
    shmq, shmq_capacity, shmq_close, shmq_create, shmq_create_ex, shmq_detach, shmq_is_closed,
    shmq_max_message_size, shmq_open, shmq_open_or_create, shmq_open_or_create_ex, shmq_options,
    shmq_stats, shmq_unlink, SHMQ_ON_CONSUMER_DEATH_DROP, SHMQ_ON_CONSUMER_DEATH_REDELIVER,
};
pub use messages::{
    shmq_buf, shmq_recv, shmq_recv_batch, shmq_recv_fn, shmq_recv_meta, shmq_send, shmq_send_batch,
    shmq_try_recv, shmq_try_recv_batch, shmq_try_send, shmq_try_send_batch,
};
pub use origin::shmq_message_origin;
pub use select::shmq_wait_any;
pub use status::*;
pub use topic::{
    shmq_subscription_options, shmq_topic, shmq_topic_create, shmq_topic_detach, shmq_topic_open,
    shmq_topic_publish, shmq_topic_subscribe, shmq_topic_try_publish, shmq_topic_unsubscribe,
    SHMQ_WHEN_FULL_BLOCK, SHMQ_WHEN_FULL_DROP,
};
pub use zero_copy::{
    shmq_cancel, shmq_commit, shmq_message, shmq_message_deliveries, shmq_message_id,
    shmq_recv_in_place, shmq_release, shmq_reservation, shmq_reserve, shmq_try_recv_in_place,
    shmq_try_reserve,
};
