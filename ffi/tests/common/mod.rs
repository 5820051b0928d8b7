// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the C tests share: building `libshmq.so` and `libshmq.a` (once per test binary),
//! compiling C and C++ programs against them, and running processes with a time limit.
//!
//! `cargo test` builds no `.so` or `.a` (only what the tests link), so [`lib`] runs a nested
//! `cargo build -p shmq-ffi` into its own target directory under `CARGO_TARGET_TMPDIR`: the outer
//! cargo holds the lock on the workspace's.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// What a static link of `libshmq.a` needs besides it (`cargo rustc -- --print
/// native-static-libs`); the same list is in `shmq.pc`'s `Libs.private`.
pub const NATIVE_STATIC_LIBS: &[&str] = &["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl"];

/// The ffi crate's directory.
pub fn ffi_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The workspace root.
pub fn workspace_dir() -> PathBuf {
    ffi_dir().parent().unwrap().to_path_buf()
}

/// The directory with `shmq.h` and `shmq.hpp`.
pub fn include_dir() -> PathBuf {
    ffi_dir().join("include")
}

/// The target directory of the nested build.
pub fn nested_target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("shmq-ffi-build")
}

/// The cargo that runs these tests.
pub fn cargo() -> PathBuf {
    std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO")))
}

/// Scratch space for compiled programs of this test binary.
pub fn bin_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("shmq-ffi-programs")
        .join(env!("CARGO_CRATE_NAME"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The cargo profile of the nested build: the tests' own (`cargo test --release` measures the
/// release library).
pub const PROFILE: &str = if cfg!(debug_assertions) {
    "debug"
} else {
    "release"
};

/// The directory holding `libshmq.so` and `libshmq.a`, built on first use.
pub fn lib_dir() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let target = nested_target_dir();
        let started = Instant::now();
        let mut cmd = Command::new(cargo());
        cmd.args(["build", "--quiet", "-p", "shmq-ffi"]);
        if PROFILE == "release" {
            cmd.arg("--release");
        }
        let out = cmd
            .arg("--manifest-path")
            .arg(workspace_dir().join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .env_remove("CARGO_TARGET_DIR")
            .output()
            .expect("cannot run cargo for the nested build of shmq-ffi");
        assert!(
            out.status.success(),
            "nested `cargo build -p shmq-ffi` failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = target.join(PROFILE);
        for lib in ["libshmq.so", "libshmq.a"] {
            assert!(dir.join(lib).is_file(), "the nested build made no {lib}");
        }
        eprintln!(
            "built libshmq.so and libshmq.a in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        dir
    })
}

/// How a program links the library.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// `libshmq.a`, and the system libraries it needs.
    Static,
    /// `-lshmq` against `libshmq.so`, found at run time through an rpath.
    Shared,
}

impl Link {
    pub const BOTH: [Link; 2] = [Link::Static, Link::Shared];

    pub fn name(self) -> &'static str {
        match self {
            Link::Static => "static",
            Link::Shared => "shared",
        }
    }
}

/// A compiler or build tool from `PATH`; its absence fails the test (`scripts/test` installs
/// gcc, g++, make, pkg-config and binutils). These are not optional: every test here needs them.
pub fn tool(name: &str) -> PathBuf {
    which(name).unwrap_or_else(|| {
        panic!(
            "`{name}` is not installed: the C/C++ tests need it \
             (apt-get install gcc g++ make pkg-config binutils, or run scripts/test)"
        )
    })
}

/// `name` on `PATH`, if it is there.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

#[path = "../../../tests/common/skip.rs"]
mod skip;

/// An optional tool from `PATH` (cmake, valgrind), or `None` where it is missing and `var=1`
/// lets `test` pass without it (printing and recording a `SKIPPED` line); missing and `var`
/// unset fails the test, naming the variable (`tests/common`'s `skip_or_fail`, shared by path).
/// Where the tool is present the test runs either way.
pub fn optional_tool(name: &str, var: &str, test: &str) -> Option<PathBuf> {
    let found = which(name);
    if found.is_none() {
        skip::skip_or_fail(var, test, &format!("{name} is not installed"));
    }
    found
}

/// Compiles `sources` (C if they end in `.c`, else C++17) with warnings as errors into an
/// executable named `<name>-<link>`, linked against the library the `link` way; returns its path.
pub fn compile(name: &str, sources: &[PathBuf], link: Link) -> PathBuf {
    let cpp = sources
        .iter()
        .any(|s| s.extension().is_some_and(|e| e != "c"));
    let exe = bin_dir().join(format!("{name}-{}", link.name()));
    let mut cmd = Command::new(tool(if cpp { "c++" } else { "cc" }));
    cmd.arg(if cpp { "-std=c++17" } else { "-std=c11" })
        .args([
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-g",
            "-pthread",
            "-I",
        ])
        .arg(include_dir())
        .args(sources)
        .arg("-o")
        .arg(&exe);
    let lib = lib_dir();
    match link {
        Link::Static => {
            cmd.arg(lib.join("libshmq.a")).args(NATIVE_STATIC_LIBS);
        }
        Link::Shared => {
            // DT_RPATH (`--disable-new-dtags`), not DT_RUNPATH: the loader searches it before
            // LD_LIBRARY_PATH, which `cargo test` points at target/debug, where an earlier
            // `cargo build --workspace` may have left a `libshmq.so` of an older layout.
            cmd.arg("-L")
                .arg(lib)
                .arg("-lshmq")
                .arg("-Wl,--disable-new-dtags")
                .arg(format!("-Wl,-rpath,{}", lib.display()));
        }
    }
    let out = cmd.output().expect("cannot run the compiler");
    assert!(
        out.status.success(),
        "compiling {name} ({}) failed: {cmd:?}\n{}{}",
        link.name(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        needs_libshmq_so(&exe),
        link == Link::Shared,
        "{name} was not linked the {} way",
        link.name()
    );
    exe
}

/// Whether the executable's dynamic section asks for `libshmq.so`.
fn needs_libshmq_so(exe: &Path) -> bool {
    let out = Command::new(tool("readelf"))
        .arg("-d")
        .arg(exe)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains("[libshmq.so]")
}

/// A C test program from `tests/c/`.
pub fn c_test_source(file: &str) -> PathBuf {
    ffi_dir().join("tests").join("c").join(file)
}

/// A source under the workspace's `examples/`.
pub fn example_source(file: &str) -> PathBuf {
    workspace_dir().join("examples").join(file)
}

/// A child process that is killed if the test ends (or panics) first.
pub struct Running {
    child: Option<Child>,
    what: String,
    stdout: Option<std::thread::JoinHandle<Vec<u8>>>,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
}

/// Starts `cmd` with its output captured.
pub fn spawn(mut cmd: Command) -> Running {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    Running {
        child: Some(child),
        what,
        stdout: Some(stdout),
        stderr: Some(stderr),
    }
}

impl Running {
    /// Waits at most `limit` for the process to exit (killing it and failing the test if it
    /// does not) and returns its status and output.
    pub fn wait(mut self, limit: Duration) -> Output {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} did not finish within {limit:?}", self.what);
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Output {
            status,
            stdout: self.stdout.take().unwrap().join().unwrap(),
            stderr: self.stderr.take().unwrap().join().unwrap(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `cmd` to completion within `limit`.
pub fn run(cmd: Command, limit: Duration) -> Output {
    spawn(cmd).wait(limit)
}

/// Runs `cmd` within `limit`, fails the test unless it exits 0, and returns its stdout.
pub fn run_ok(cmd: Command, limit: Duration) -> String {
    let what = format!("{cmd:?}");
    let out = run(cmd, limit);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs the test program `exe` with a fresh scratch directory (for its queue files) as its one
/// argument; fails the test unless it exits 0 within `limit`, and returns its stdout.
pub fn run_in_scratch_dir(exe: &Path, limit: Duration) -> String {
    let dir = queue_dir();
    let mut cmd = Command::new(exe);
    cmd.arg(dir.path());
    run_ok(cmd, limit)
}

/// Compiles the test program `source` (in `tests/c/`) as `name` against each library, runs it
/// in a scratch directory within `limit`, and requires its summary line `<name>: 0 failures`.
/// Returns each run's output (static library first).
pub fn c_test_passes_with_both_libraries(name: &str, source: &str, limit: Duration) -> Vec<String> {
    Link::BOTH
        .into_iter()
        .map(|link| {
            let exe = compile(name, &[c_test_source(source)], link);
            let out = run_in_scratch_dir(&exe, limit);
            assert!(
                out.contains(&format!("{name}: 0 failures")),
                "{name} ({}):\n{out}",
                link.name()
            );
            out
        })
        .collect()
}

/// A fresh directory for queue files, in /dev/shm when there is one.
pub fn queue_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let builder = tempfile::Builder::new().prefix("shmq-ffi-").tempdir_in(shm);
    builder.unwrap_or_else(|_| tempfile::tempdir().unwrap())
}
