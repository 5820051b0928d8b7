// SPDX-License-Identifier: MIT OR Apache-2.0
//! What is generated from the clap definition of the command line, so that it never drifts from
//! it: shell completion scripts (`shmq completions SHELL`, clap_complete) and man pages
//! (`shmq man DIR`, clap_mangen: `shmq.1` and one `shmq-SUBCOMMAND.1` per visible subcommand).

use crate::failure::Failure;
use clap_complete::Shell;
use std::io::{self, Write};
use std::path::Path;

/// `shmq completions SHELL`: the completion script for `shell` on stdout.
pub fn completions(mut command: clap::Command, shell: Shell) -> Result<(), Failure> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "shmq", &mut script);
    let mut stdout = io::stdout().lock();
    match stdout.write_all(&script).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Failure::Stdout(e)),
        _ => Ok(()),
    }
}

/// `shmq man DIR`: writes the man pages into `dir` (created if missing) and lists them on
/// stdout, one path a line.
pub fn man(command: clap::Command, dir: &Path) -> Result<(), Failure> {
    let failed =
        |e: io::Error| Failure::Other(format!("writing man pages to {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(failed)?;
    clap_mangen::generate_to(command, dir).map_err(failed)?;
    let mut pages: Vec<_> = std::fs::read_dir(dir)
        .map_err(failed)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("shmq") && name.ends_with(".1")
        })
        .collect();
    pages.sort();
    for page in pages {
        println!("{}", page.display());
    }
    Ok(())
}
