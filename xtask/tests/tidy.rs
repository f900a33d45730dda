//! Tidy checks, run as ordinary tests so `cargo test` is the one gate: every
//! Rust file says what it is for, nothing is ignored or left half-done,
//! formatting is settled, and the documents name every crate.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn all_rust_files() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    for dir in ["crates", "tests", "xtask", "loadtests"] {
        rust_files(&root().join(dir), &mut files);
    }
    assert!(files.len() > 30, "found only {} Rust files", files.len());
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

#[test]
fn every_rust_file_starts_with_a_module_doc() {
    let missing: Vec<_> = all_rust_files()
        .into_iter()
        .filter(|(_, text)| !text.trim_start().starts_with("//!"))
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a //! line: {missing:?}");
}

#[test]
fn no_debugging_leftovers_or_ignored_tests() {
    let dbg = concat!("dbg", "!(");
    let ignore = concat!("#[", "ignore");
    let todo = concat!("todo", "!(");
    for (path, text) in all_rust_files() {
        for needle in [dbg, ignore, todo] {
            assert!(!text.contains(needle), "{} contains {needle}", path.display());
        }
    }
}

#[test]
fn formatting_is_settled() {
    let out =
        std::process::Command::new("cargo").args(["fmt", "--all", "--check"]).current_dir(root()).output().unwrap();
    assert!(out.status.success(), "run `cargo fmt --all`:\n{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn architecture_names_every_crate() {
    let architecture = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    for entry in std::fs::read_dir(root().join("crates")).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(architecture.contains(&format!("`{name}`")), "ARCHITECTURE.md does not describe `{name}`");
    }
}

#[test]
fn both_databases_have_the_same_migrations() {
    let names = |db: &str| {
        let mut v: Vec<String> = std::fs::read_dir(root().join("migrations").join(db))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("postgres"), names("sqlite"));
    assert!(!names("postgres").is_empty());
}

#[test]
fn ci_runs_the_readme_test_command() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(readme.contains("cargo xtask test"), "README must give the test command");
    assert!(ci.lines().any(|l| l.trim() == "cargo xtask test"), ".ci/run must call the README's test command");
}

#[test]
fn every_package_is_named_for_its_folder() {
    let mut folders: Vec<std::path::PathBuf> =
        std::fs::read_dir(root().join("crates")).unwrap().flatten().map(|e| e.path()).collect();
    folders.extend(["tests", "loadtests", "xtask"].map(|f| root().join(f)));
    for folder in folders {
        let manifest = std::fs::read_to_string(folder.join("Cargo.toml")).unwrap();
        let name = manifest
            .lines()
            .find_map(|l| l.strip_prefix("name = \"").and_then(|rest| rest.strip_suffix('"')))
            .unwrap_or_else(|| panic!("{} has no package name", folder.display()));
        let folder_name = folder.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(name, folder_name, "the package in {} is named for its folder", folder.display());
    }
}
