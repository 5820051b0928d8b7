// SPDX-License-Identifier: MIT OR Apache-2.0
//! The C user's path: `make -C ffi install PREFIX=...` installs the headers, both libraries and
//! `shmq.pc`; `pkg-config --cflags --libs shmq` then builds the examples, which run with the
//! installed library. And the C examples run clean under valgrind memcheck.

mod common;

use common::{compile, example_source, queue_dir, run, run_ok, tool, Link};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

/// `pkg-config <args> shmq` with the installed `shmq.pc`, split into arguments.
fn pkg_config(prefix: &Path, args: &[&str]) -> Vec<String> {
    let mut cmd = Command::new(tool("pkg-config"));
    cmd.args(args)
        .arg("shmq")
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"));
    run_ok(cmd, LIMIT)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn make_install_then_pkg_config_builds_examples_that_run_with_the_installed_library() {
    let prefix = tempfile::tempdir().unwrap();
    let prefix = prefix.path();
    let lib_dir = common::lib_dir(); // built already, so `make` only copies
    let mut make = Command::new(tool("make"));
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
    for file in [
        "include/shmq.h",
        "include/shmq.hpp",
        "lib/libshmq.so",
        "lib/libshmq.a",
        "lib/pkgconfig/shmq.pc",
    ] {
        assert!(
            prefix.join(file).is_file(),
            "make install did not install {file}"
        );
    }
    assert_eq!(
        std::fs::read(prefix.join("lib/libshmq.so")).unwrap(),
        std::fs::read(lib_dir.join("libshmq.so")).unwrap()
    );

    let flags = pkg_config(prefix, &["--cflags", "--libs"]);
    assert_eq!(
        flags,
        [
            format!("-I{}/include", prefix.display()),
            format!("-L{}/lib", prefix.display()),
            "-lshmq".to_string()
        ]
    );
    let version = pkg_config(prefix, &["--modversion"]);
    assert_eq!(version, [env!("CARGO_PKG_VERSION")]);

    // The documented one-liners, with the flags pkg-config gave.
    let out_dir = tempfile::tempdir().unwrap();
    let build = |compiler: &str, std: &str, source: &str, exe: &str| -> PathBuf {
        let exe = out_dir.path().join(exe);
        let mut cmd = Command::new(tool(compiler));
        cmd.arg(std)
            .args(["-Wall", "-Wextra", "-Werror"])
            .arg(example_source(source))
            .args(&flags)
            .arg("-o")
            .arg(&exe);
        run_ok(cmd, LIMIT);
        exe
    };
    let producer = build("cc", "-std=c11", "c/producer.c", "producer");
    let consumer = build("cc", "-std=c11", "c/consumer.c", "consumer");
    let pingpong = build("c++", "-std=c++17", "cpp/pingpong.cpp", "pingpong");

    let with_lib = |exe: &Path, args: &[&std::ffi::OsStr]| {
        let mut cmd = Command::new(exe);
        cmd.args(args).env("LD_LIBRARY_PATH", prefix.join("lib"));
        cmd
    };
    let queues = queue_dir();
    let path = queues.path().join("demo");
    let sent = run_ok(
        with_lib(&producer, &[path.as_os_str(), "50".as_ref()]),
        LIMIT,
    );
    assert!(sent.contains("sent 50 messages"), "{sent}");
    let got = run_ok(with_lib(&consumer, &[path.as_os_str()]), LIMIT);
    assert!(got.contains("consumer: received 50 messages"), "{got}");
    let pp = queues.path().join("pp");
    let out = run_ok(
        with_lib(&pingpong, &["100".as_ref(), pp.as_os_str()]),
        LIMIT,
    );
    assert!(out.starts_with("pingpong: 100 round trips"), "{out}");

    // Without the library path the programs cannot start: they use the installed libshmq.so.
    let mut bare = Command::new(&consumer);
    bare.arg(&path).env_remove("LD_LIBRARY_PATH");
    let out = run(bare, LIMIT);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("libshmq.so"));
}

#[test]
fn c_examples_run_clean_under_valgrind() {
    let Some(valgrind) = common::optional_tool(
        "valgrind",
        "SHMQ_SKIP_VALGRIND_TESTS",
        "c_examples_run_clean_under_valgrind",
    ) else {
        return;
    };
    let memcheck = |exe: &Path, args: &[&std::ffi::OsStr]| {
        let mut cmd = Command::new(&valgrind);
        cmd.args([
            "--error-exitcode=1",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect",
            "--quiet",
        ])
        .arg(exe)
        .args(args);
        let what = format!("{cmd:?}");
        let out = run(cmd, LIMIT);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{what} failed ({}):\n{stderr}",
            out.status
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for link in Link::BOTH {
        let producer = compile("producer", &[example_source("c/producer.c")], link);
        let consumer = compile("consumer", &[example_source("c/consumer.c")], link);
        let queues = queue_dir();
        let path = queues.path().join("demo");
        let sent = memcheck(&producer, &[path.as_os_str(), "200".as_ref()]);
        assert!(sent.contains("sent 200 messages"), "{sent}");
        let got = memcheck(&consumer, &[path.as_os_str()]);
        assert!(got.contains("consumer: received 200 messages"), "{got}");
        println!(
            "valgrind memcheck clean: producer and consumer ({})",
            link.name()
        );
    }
}
