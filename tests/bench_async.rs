// SPDX-License-Identifier: MIT OR Apache-2.0
//! The async bench rows run and report under their contract names: `shmq bench --quick --json
//! --only ...` measures them (async tasks in two processes, woken by the reactor); each async
//! row's peer forks from a process whose reactor threads of the row before have exited.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_shmq");

#[test]
fn async_rows_are_measured_under_their_contract_names() {
    let out = Command::new(BIN)
        .args([
            "bench",
            "--quick",
            "--json",
            "--only",
            "shmq_async_busy,shmq_async_idle,shmq_async_idle_1000q,shmq_busy",
        ])
        .output()
        .expect("run shmq bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "shmq bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout).expect("a JSON array");
    let names: Vec<&str> = rows.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "shmq_busy",
            "shmq_async_busy",
            "shmq_async_idle",
            "shmq_async_idle_1000q"
        ]
    );
    for row in &rows {
        assert_eq!(row["kind"], "rtt");
        assert!(row["p50_ns"].as_u64().unwrap() > 0, "{row}");
    }
}
