// SPDX-License-Identifier: MIT OR Apache-2.0
//! `include/shmq.h` and the library agree: the header declares exactly the functions the
//! library exports, a program that takes the address of every declared function links against
//! both `libshmq.so` and `libshmq.a`, and the headers compile cleanly as C and as C++.
//!
//! The status values and struct layouts are checked at run time by real calls: `c_api.rs` runs
//! C programs that need every `SHMQ_*` value to be the one `shmq_strerror` names, and every field
//! of `struct shmq_stats` to hold what `shmq_stats()` wrote there.

mod common;

use common::{compile, include_dir, lib_dir, run_ok, tool, Link};
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

/// Names of the functions `shmq.h` declares: identifiers `shmq_*` followed by `(` in the
/// preprocessed header (comments removed; a function-pointer typedef's name is followed by `)`).
fn declared_functions() -> BTreeSet<String> {
    let out = Command::new(tool("cc"))
        .args(["-E", "-P", "-x", "c"])
        .arg(include_dir().join("shmq.h"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let bytes = text.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut names = BTreeSet::new();
    let mut i = 0;
    while let Some(found) = text[i..].find("shmq_") {
        let start = i + found;
        let mut end = start;
        while end < bytes.len() && is_ident(bytes[end]) {
            end += 1;
        }
        let mut next = end;
        while next < bytes.len() && bytes[next].is_ascii_whitespace() {
            next += 1;
        }
        let starts_ident = start == 0 || !is_ident(bytes[start - 1]);
        if starts_ident && bytes.get(next) == Some(&b'(') {
            names.insert(text[start..end].to_string());
        }
        i = end;
    }
    names
}

/// Names of the functions `libshmq.so` exports (`nm -D --defined-only`, text symbols).
fn exported_functions() -> BTreeSet<String> {
    let out = Command::new(tool("nm"))
        .args(["-D", "--defined-only"])
        .arg(lib_dir().join("libshmq.so"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(
            |line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                [_, kind, name] if kind != "A" => Some(name.to_string()),
                _ => None,
            },
        )
        .collect()
}

#[test]
fn every_exported_symbol_is_declared_in_the_header_and_vice_versa() {
    let declared = declared_functions();
    let exported = exported_functions();
    assert!(
        declared.len() >= 20,
        "the header parse found only {declared:?}"
    );
    let undeclared: Vec<_> = exported.difference(&declared).collect();
    let missing: Vec<_> = declared.difference(&exported).collect();
    assert!(
        undeclared.is_empty() && missing.is_empty(),
        "exported by libshmq.so but not declared in shmq.h: {undeclared:?}\n\
         declared in shmq.h but not exported by libshmq.so: {missing:?}"
    );
    for required in [
        "shmq_create",
        "shmq_open",
        "shmq_open_or_create",
        "shmq_detach",
        "shmq_unlink",
        "shmq_close",
        "shmq_try_send",
        "shmq_send",
        "shmq_try_recv",
        "shmq_recv",
        "shmq_capacity",
        "shmq_max_message_size",
        "shmq_strerror",
    ] {
        assert!(
            declared.contains(required),
            "the contract's {required} is missing"
        );
    }
}

#[test]
fn a_program_taking_every_declared_function_links_against_both_libraries() {
    let declared = declared_functions();
    let mut src = String::from(
        "#include \"shmq.h\"\n#include <stdio.h>\n\ntypedef void (*any_fn)(void);\n\
         static any_fn const functions[] = {\n",
    );
    for name in &declared {
        src += &format!("    (any_fn)&{name},\n");
    }
    src += "};\n\nint main(void) {\n    size_t n = 0;\n    for (size_t i = 0; i < \
            sizeof functions / sizeof functions[0]; i++) n += functions[i] != NULL;\n    \
            printf(\"%zu functions\\n\", n);\n    return 0;\n}\n";
    let file = common::bin_dir().join("every_function.c");
    std::fs::write(&file, src).unwrap();
    for link in Link::BOTH {
        let exe = compile("every_function", std::slice::from_ref(&file), link);
        let out = run_ok(Command::new(exe), Duration::from_secs(10));
        assert_eq!(out.trim(), format!("{} functions", declared.len()));
    }
}

#[test]
fn the_headers_compile_cleanly_as_c_and_as_cpp() {
    let check = |compiler: &str, std: &str, header: &str| {
        let out = Command::new(tool(compiler))
            .args(["-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-pedantic"])
            .arg(format!("-std={std}"))
            .args(["-x", if compiler == "cc" { "c" } else { "c++" }])
            .arg(include_dir().join(header))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{header} as {std}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    for std in ["c11", "c17"] {
        check("cc", std, "shmq.h");
    }
    for std in ["c++11", "c++17", "c++20"] {
        check("c++", std, "shmq.h");
    }
    for std in ["c++17", "c++20"] {
        check("c++", std, "shmq.hpp");
    }
}
