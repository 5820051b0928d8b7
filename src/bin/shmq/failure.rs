// SPDX-License-Identifier: MIT OR Apache-2.0
//! [`Failure`]: why a subcommand failed. `main` prints its `Display` after `shmq: ` as the one
//! line of stderr, so every variant's message is a single line that names the cause.

use std::io;

/// Why a subcommand failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The queue library refused (bad file, closed queue, invalid options, ...).
    #[error("{0}")]
    Queue(#[from] shmq::Error),
    /// Line `line` of stdin (counting from 1) could not be sent; earlier lines were sent.
    #[error("line {line} not sent: {source}")]
    Line {
        /// The line's number, from 1.
        line: u64,
        /// Why it was not sent.
        source: shmq::Error,
    },
    /// Reading stdin failed.
    #[error("reading stdin: {0}")]
    Stdin(io::Error),
    /// Writing stdout failed (other than its reader going away, which is not a failure).
    #[error("writing stdout: {0}")]
    Stdout(io::Error),
    /// A failure reported by a subcommand as text (`bench`).
    #[error("{0}")]
    Other(String),
}
