// SPDX-License-Identifier: MIT OR Apache-2.0
//! Pause points for the crash-recovery tests, compiled only with the `test-hooks` feature.
//!
//! With the feature on and `SHMQ_TEST_PAUSE=<point>` in the environment, a process that reaches
//! that point appends `<point> <pid>` to the file named by `SHMQ_TEST_PAUSE_FILE` (if set) and
//! then sleeps forever, holding whatever it has claimed, so that a test can SIGKILL it at exactly
//! that instant. Points: `send-claimed` (a slot claimed, nothing written or published) and
//! `recv-claimed` (a message claimed, not yet released). Without the feature, `pause_point` is an
//! empty inline function.

/// Pauses forever here if the test asked for this point.
#[cfg(feature = "test-hooks")]
pub(crate) fn pause_point(point: &str) {
    use std::io::Write;
    use std::sync::OnceLock;
    static REQUESTED: OnceLock<Option<String>> = OnceLock::new();
    let requested = REQUESTED.get_or_init(|| std::env::var("SHMQ_TEST_PAUSE").ok());
    if requested.as_deref() != Some(point) {
        return;
    }
    if let Some(path) = std::env::var_os("SHMQ_TEST_PAUSE_FILE") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{point} {}", std::process::id());
        }
    }
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// Pauses forever here if the test asked for this point (not compiled in: does nothing).
#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(crate) fn pause_point(_point: &str) {}
