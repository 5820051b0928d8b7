// SPDX-License-Identifier: MIT OR Apache-2.0
//! Hooks for the tests, compiled only with the `test-hooks` feature; never enable it in
//! production. Without the feature every hook is an empty inline function (or returns its
//! input), so a normal build pays nothing and behaves exactly as written.
//!
//! - **Pause points.** With `SHMQ_TEST_PAUSE=<point>` in the environment, a process that reaches
//!   that point appends `<point> <pid>` to the file named by `SHMQ_TEST_PAUSE_FILE` (if set) and
//!   then sleeps forever, holding whatever it has claimed, so that a test can SIGKILL it at
//!   exactly that instant. Points: `send-claimed` (a slot claimed, nothing written or published),
//!   `recv-claimed` (a message claimed, not yet released) and `topic-table-locked` (a topic's
//!   subscription table lock just taken). With `SHMQ_TEST_PAUSE_AFTER=<n>` the process passes the
//!   point `n` times first and pauses at the next arrival, so that a test can stop a stream in its
//!   middle (the `n+1`-th claim) rather than at its first step.
//! - **Sleep slices.** A blocked call normally wakes every `recovery::SLEEP_SLICE` to run crash
//!   recovery, and so it would also notice, within a slice, progress whose wake-up was lost. With
//!   `SHMQ_TEST_SLEEP_SLICE=off` a blocked call sleeps until it is woken or its own deadline
//!   passes (`=<ms>` sets another slice), so that a lost wake-up hangs and a test fails fast.
//! - **Spin phase.** A blocked call normally spins (and yields) a while before it registers as a
//!   sleeper; on a loaded machine the yields stretch that phase to milliseconds, and a wait ends
//!   before it sleeps. With `SHMQ_TEST_SPIN=off` it registers and sleeps at once, so that a test
//!   of the register-then-sleep window exercises that window however busy the machine is.
//! - **Events.** With `SHMQ_TEST_EVENTS=<file>`, recovery appends one line per repair it makes
//!   that the queue's counters do not tell apart (`redelivered-in-place`, `redelivered-copy`), so
//!   that a test can assert which paths ran, across processes.

/// Pauses forever here if the test asked for this point.
#[cfg(feature = "test-hooks")]
pub(crate) fn pause_point(point: &str) {
    use std::sync::OnceLock;
    static REQUESTED: OnceLock<Option<String>> = OnceLock::new();
    let requested = REQUESTED.get_or_init(|| std::env::var("SHMQ_TEST_PAUSE").ok());
    if requested.as_deref() != Some(point) {
        return;
    }
    // Arrivals to pass first (`SHMQ_TEST_PAUSE_AFTER`), counted down across threads.
    static AFTER: OnceLock<std::sync::atomic::AtomicU64> = OnceLock::new();
    let after = AFTER.get_or_init(|| {
        let n = std::env::var("SHMQ_TEST_PAUSE_AFTER").map_or(0, |text| {
            text.parse()
                .unwrap_or_else(|_| panic!("SHMQ_TEST_PAUSE_AFTER={text}: expected a count"))
        });
        std::sync::atomic::AtomicU64::new(n)
    });
    let pass = after
        .fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            |n| n.checked_sub(1),
        )
        .is_ok();
    if pass {
        return;
    }
    if let Some(path) = std::env::var_os("SHMQ_TEST_PAUSE_FILE") {
        append_line(
            std::path::Path::new(&path),
            &format!("{point} {}", std::process::id()),
        );
    }
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// Pauses forever here if the test asked for this point (not compiled in: does nothing).
#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(crate) fn pause_point(_point: &str) {}

/// The longest single sleep of a blocked call: `slice`, unless the test environment says
/// otherwise (`SHMQ_TEST_SLEEP_SLICE`: `off` for none, or a number of milliseconds), read once
/// per process.
#[cfg(feature = "test-hooks")]
pub(crate) fn sleep_slice(slice: std::time::Duration) -> Option<std::time::Duration> {
    use std::sync::OnceLock;
    use std::time::Duration;
    // `None`: not set; `Some(None)`: off; `Some(Some(d))`: a slice of `d`.
    static SET: OnceLock<Option<Option<Duration>>> = OnceLock::new();
    let set = SET.get_or_init(|| {
        let text = std::env::var(testing::SLEEP_SLICE_VAR).ok()?;
        if text == "off" {
            return Some(None);
        }
        let ms = text.parse::<u64>().unwrap_or_else(|_| {
            panic!(
                "{}={text}: expected `off` or milliseconds",
                testing::SLEEP_SLICE_VAR
            )
        });
        Some(Some(Duration::from_millis(ms)))
    });
    set.unwrap_or(Some(slice))
}

/// The longest single sleep of a blocked call (not compiled in: always `slice`).
#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(crate) fn sleep_slice(slice: std::time::Duration) -> Option<std::time::Duration> {
    Some(slice)
}

/// How many tries a blocked call spins before it sleeps: `tries`, or 0 with `SHMQ_TEST_SPIN=off`
/// (read once per process).
#[cfg(feature = "test-hooks")]
pub(crate) fn spin_tries(tries: u32) -> u32 {
    use std::sync::OnceLock;
    static OFF: OnceLock<bool> = OnceLock::new();
    let off = *OFF.get_or_init(|| match std::env::var(testing::SPIN_VAR).as_deref() {
        Ok("off") => true,
        Ok(other) => panic!("{}={other}: expected `off`", testing::SPIN_VAR),
        Err(_) => false,
    });
    if off {
        0
    } else {
        tries
    }
}

/// How many tries a blocked call spins before it sleeps (not compiled in: always `tries`).
#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(crate) fn spin_tries(tries: u32) -> u32 {
    tries
}

/// Records that `event` happened, if the test asked for events.
#[cfg(feature = "test-hooks")]
pub(crate) fn event(event: &str) {
    use std::sync::OnceLock;
    static FILE: OnceLock<Option<std::path::PathBuf>> = OnceLock::new();
    let file = FILE.get_or_init(|| std::env::var_os(testing::EVENTS_VAR).map(Into::into));
    if let Some(path) = file {
        append_line(path, event);
    }
}

/// Records that `event` happened (not compiled in: does nothing).
#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(crate) fn event(_event: &str) {}

/// Appends `line` and a newline to `path` with one `write(2)` on an `O_APPEND` descriptor, so
/// that lines from several processes never interleave. Errors are ignored: a hook must not
/// change what the queue does.
#[cfg(feature = "test-hooks")]
fn append_line(path: &std::path::Path, line: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(format!("{line}\n").as_bytes());
    }
}

/// What the tests need to know about the queue's timing, and the names of the switches above
/// (re-exported as `shmq::testing` with the `test-hooks` feature). The tests derive their
/// sample points and bounds from these instead of writing the numbers in.
#[cfg(feature = "test-hooks")]
pub mod testing {
    use std::time::Duration;

    /// Longest single sleep of a blocked call before it runs a sweep (`recovery::SLEEP_SLICE`).
    pub const SLEEP_SLICE: Duration = crate::recovery::SLEEP_SLICE;
    /// Least time between two sweeps started by slow paths, across all processes
    /// (`recovery::SWEEP_INTERVAL_NS`).
    pub const SWEEP_INTERVAL: Duration = Duration::from_nanos(crate::recovery::SWEEP_INTERVAL_NS);
    /// How long the slot at a cursor must stay claimed by another participant before a
    /// non-blocking call asks whether that claimer lives (`recovery::STUCK_NS`).
    pub const STUCK: Duration = Duration::from_nanos(crate::recovery::STUCK_NS);
    /// Least time between two "are the senders gone?" checks of one receiver
    /// (`channel::PRODUCERS_CHECK_INTERVAL`).
    pub const PRODUCERS_CHECK_INTERVAL: Duration = crate::channel::PRODUCERS_CHECK_INTERVAL;
    /// Environment variable: `off` removes the sleep slices of blocked calls (they then sleep
    /// until woken or until their deadline), a number of milliseconds sets them.
    pub const SLEEP_SLICE_VAR: &str = "SHMQ_TEST_SLEEP_SLICE";
    /// Environment variable: `off` removes the spin phase of blocked calls (they register as
    /// sleepers at once).
    pub const SPIN_VAR: &str = "SHMQ_TEST_SPIN";
    /// Environment variable: a file to which recovery appends one line per redelivery,
    /// `redelivered-in-place` or `redelivered-copy`.
    pub const EVENTS_VAR: &str = "SHMQ_TEST_EVENTS";
}
