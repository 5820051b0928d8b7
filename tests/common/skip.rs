// SPDX-License-Identifier: MIT OR Apache-2.0
//! No silent pass: what a test does when a component it needs is missing. Shared by the
//! `shmq` crate's tests (`tests/common`) and the C library's (`ffi/tests/common` includes this
//! file by path), so that every skip reads and is recorded alike.

/// A test that cannot run here because `missing`: with `var=1` prints a `SKIPPED` line (the
/// caller then returns), otherwise fails saying what is missing and which variable skips it.
/// Never a silent pass: CI must not pass on a test that did nothing.
pub fn skip_or_fail(var: &str, test: &str, missing: &str) {
    if std::env::var_os(var).is_some_and(|v| v == "1") {
        let line = format!("SKIPPED {test}: {missing} ({var}=1)");
        println!("{line}");
        record_skip(&line);
    } else {
        panic!(
            "{test} cannot run: {missing}. Provide it (scripts/test installs the tools the \
             tests need), or set {var}=1 to let this test pass without it"
        );
    }
}

/// Appends `line` to the file `SHMQ_TEST_SKIPPED_FILE` names, if set (`scripts/test` lists
/// the skipped tests from it: the harness hides a passing test's output).
pub fn record_skip(line: &str) {
    if let Some(path) = std::env::var_os("SHMQ_TEST_SKIPPED_FILE") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}
