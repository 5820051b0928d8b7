// SPDX-License-Identifier: MIT OR Apache-2.0
//! The CMake user's path: after `make -C ffi install PREFIX=...`, a CMake project finds the
//! library with `find_package(shmq 0.1 CONFIG REQUIRED)` and links `shmq::shmq` (libshmq.so)
//! or `shmq::shmq_static` (libshmq.a); the C++ example built that way runs. A request for a
//! version the installed copy does not satisfy fails at configure time.

mod common;

use common::{example_source, queue_dir, run, run_ok};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Configuring runs compiler checks and building compiles the example twice: generous.
const LIMIT: Duration = Duration::from_secs(180);

/// cmake, or `None` where it is missing and `SHMQ_SKIP_CMAKE_TESTS=1` (else the test fails).
fn cmake(test: &str) -> Option<PathBuf> {
    common::optional_tool("cmake", "SHMQ_SKIP_CMAKE_TESTS", test)
}

/// `make -C ffi install PREFIX=prefix` with the library the tests build.
fn install(prefix: &Path) {
    common::lib_dir(); // built already, so `make` only copies
    let mut make = Command::new(common::tool("make"));
    make.arg("-C")
        .arg(common::ffi_dir())
        .arg("install")
        .arg(format!("PREFIX={}", prefix.display()))
        .arg(format!("PROFILE={}", common::PROFILE))
        .arg(format!(
            "CARGO_TARGET_DIR={}",
            common::nested_target_dir().display()
        ))
        .arg(format!("CARGO={}", common::cargo().display()));
    run_ok(make, LIMIT);
}

/// A CMake project in `dir` that asks for shmq `version` and builds the C++ example against
/// each imported target.
fn write_project(dir: &Path, version: &str) {
    let example = example_source("cpp/pingpong.cpp");
    std::fs::write(
        dir.join("CMakeLists.txt"),
        format!(
            r#"cmake_minimum_required(VERSION 3.16)
project(pingpong LANGUAGES CXX)
set(CMAKE_CXX_STANDARD 17)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
find_package(shmq {version} CONFIG REQUIRED)
add_executable(pingpong "{example}")
target_link_libraries(pingpong PRIVATE shmq::shmq)
add_executable(pingpong_static "{example}")
target_link_libraries(pingpong_static PRIVATE shmq::shmq_static)
"#,
            example = example.display()
        ),
    )
    .unwrap();
}

/// `cmake -S source -B build` against `prefix`.
fn configure(cmake: &Path, source: &Path, prefix: &Path) -> Command {
    let mut cmd = Command::new(cmake);
    cmd.arg("-S")
        .arg(source)
        .arg("-B")
        .arg(source.join("build"))
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
        .env("CXXFLAGS", "-Wall -Wextra -Werror");
    cmd
}

/// This crate's version (the library's), as numbers.
fn version() -> [u32; 3] {
    let parts: Vec<u32> = env!("CARGO_PKG_VERSION")
        .split(['.', '-'])
        .take(3)
        .map(|p| p.parse().unwrap())
        .collect();
    [parts[0], parts[1], parts[2]]
}

#[test]
fn find_package_then_shmq_targets_build_the_cpp_example_against_an_installed_copy() {
    let Some(cmake) =
        cmake("find_package_then_shmq_targets_build_the_cpp_example_against_an_installed_copy")
    else {
        return;
    };
    let prefix = tempfile::tempdir().unwrap();
    let prefix = prefix.path();
    install(prefix);
    for file in ["shmqConfig.cmake", "shmqConfigVersion.cmake"] {
        assert!(
            prefix.join("lib/cmake/shmq").join(file).is_file(),
            "make install did not install lib/cmake/shmq/{file}"
        );
    }

    let project = tempfile::tempdir().unwrap();
    let [major, minor, _] = version();
    write_project(project.path(), &format!("{major}.{minor}"));
    run_ok(configure(&cmake, project.path(), prefix), LIMIT);
    let mut build = Command::new(&cmake);
    build.arg("--build").arg(project.path().join("build"));
    run_ok(build, LIMIT);

    let queues = queue_dir();
    for exe in ["pingpong", "pingpong_static"] {
        let mut cmd = Command::new(project.path().join("build").join(exe));
        cmd.arg("100")
            .arg(queues.path().join(exe))
            .env_remove("LD_LIBRARY_PATH");
        let out = run_ok(cmd, LIMIT);
        assert!(out.starts_with("pingpong: 100 round trips"), "{exe}: {out}");
    }

    // The shared build uses the installed libshmq.so (found through the rpath CMake set): with
    // the library gone it cannot start; the static one does not need it.
    std::fs::remove_file(prefix.join("lib/libshmq.so")).unwrap();
    let mut shared = Command::new(project.path().join("build/pingpong"));
    shared
        .arg("10")
        .arg(queues.path().join("again"))
        .env_remove("LD_LIBRARY_PATH");
    let out = run(shared, LIMIT);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("libshmq.so"));
    let mut fixed = Command::new(project.path().join("build/pingpong_static"));
    fixed.arg("10").arg(queues.path().join("again-static"));
    run_ok(fixed, LIMIT);
}

#[test]
fn find_package_refuses_an_incompatible_version() {
    let Some(cmake) = cmake("find_package_refuses_an_incompatible_version") else {
        return;
    };
    let prefix = tempfile::tempdir().unwrap();
    install(prefix.path());
    let installed = env!("CARGO_PKG_VERSION");
    let [major, minor, patch] = version();
    // A newer version is never satisfied, nor another major version (nor, for 0.x, another
    // minor version).
    for wanted in [
        format!("{major}.{}", minor + 1),
        format!("{}.0", major + 1),
        format!("{major}.{minor}.{}", patch + 1),
    ] {
        let project = tempfile::tempdir().unwrap();
        write_project(project.path(), &wanted);
        let out = run(configure(&cmake, project.path(), prefix.path()), LIMIT);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "shmq {wanted} was accepted:\n{stderr}"
        );
        assert!(
            stderr.contains(&format!("version: {installed}")),
            "{wanted}: {stderr}"
        );
    }
}
