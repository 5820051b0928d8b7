// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `timeout_ns` argument of the blocking calls.

use std::time::Duration;

/// How long a call may wait, decoded from `timeout_ns`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// `timeout_ns == 0`: do not wait; the call behaves as its `try_` form (`SHMQ_FULL`,
    /// `SHMQ_EMPTY`).
    No,
    /// `timeout_ns > 0`: wait at most this long, then `SHMQ_TIMEOUT`.
    For(Duration),
    /// `timeout_ns < 0`: wait as long as it takes.
    Forever,
}

impl Wait {
    pub(crate) fn from_ns(timeout_ns: i64) -> Wait {
        match timeout_ns {
            0 => Wait::No,
            n if n < 0 => Wait::Forever,
            n => Wait::For(Duration::from_nanos(n.unsigned_abs())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_waits_forever_zero_tries_positive_is_a_duration() {
        assert_eq!(Wait::from_ns(-1), Wait::Forever);
        assert_eq!(Wait::from_ns(i64::MIN), Wait::Forever);
        assert_eq!(Wait::from_ns(0), Wait::No);
        assert_eq!(Wait::from_ns(1_500), Wait::For(Duration::from_nanos(1_500)));
        assert_eq!(
            Wait::from_ns(i64::MAX),
            Wait::For(Duration::from_nanos(i64::MAX as u64))
        );
    }
}
