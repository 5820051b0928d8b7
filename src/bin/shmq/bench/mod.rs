//! `shmq bench`: placeholder until the benchmark lands (replaced by the bench work).

/// Options of `shmq bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {}

/// Runs the benchmark.
pub fn run(_args: &BenchArgs) -> Result<(), String> {
    Err("shmq bench is not built yet".into())
}
