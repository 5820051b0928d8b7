// SPDX-License-Identifier: MIT OR Apache-2.0
//! The scratch file of a fuzzing process, shared by the targets (each includes this file as a
//! module).

use std::path::PathBuf;
use std::sync::OnceLock;

/// One path per fuzzing process, rewritten for every input, named `shmq-fuzz-{tag}-{pid}`: in
/// /dev/shm where there is one, as the queues live there. The first call's `tag` names it.
pub fn path(tag: &str) -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let shm = PathBuf::from("/dev/shm");
        let dir = if shm.is_dir() {
            shm
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("shmq-fuzz-{tag}-{}", std::process::id()))
    })
}
