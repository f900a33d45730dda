//! Strict configuration, through the real binary: a mistyped key in
//! `hotline.toml` or a `HOTLINE_*` variable the service does not read is
//! refused at start-up with the nearest real name, an out-of-range or
//! ill-typed value with the setting, the value and what is allowed; nothing
//! is served. And the README's configuration table lists exactly the
//! variables the service reads.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod support;

use std::collections::BTreeSet;

use support::run;

/// `hotline serve` in a fresh directory with `file` as its `hotline.toml` and `env` set; returns (code, stderr).
async fn start(file: Option<&str>, env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    if let Some(text) = file {
        std::fs::write(dir.path().join("hotline.toml"), text).unwrap();
    }
    let mut cmd = support::serve(dir.path());
    cmd.envs(env.iter().copied());
    let (code, out, err) = run(cmd).await;
    assert!(!out.contains("curl ") && !err.contains("\"listening\""), "nothing may start: {out}{err}");
    assert!(!dir.path().join("hotline-data").exists(), "nothing may be created: {err}");
    (code, err)
}

#[tokio::test]
async fn a_mistyped_key_in_the_file_is_refused_with_the_nearest_setting() {
    let (code, err) = start(Some("cache_freshnes_ms = 60000\n"), &[]).await;
    assert_ne!(code, 0);
    assert!(err.contains("unknown setting cache_freshnes_ms"), "{err}");
    assert!(err.contains("did you mean cache_freshness_ms?"), "{err}");
    assert!(err.contains("hotline.toml"), "the message says where: {err}");
}

#[tokio::test]
async fn an_unknown_hotline_variable_is_refused_with_the_nearest_one() {
    let (code, err) = start(None, &[("HOTLINE_CACHE_FRESHNES_MS", "60000")]).await;
    assert_ne!(code, 0);
    assert!(err.contains("unknown environment variable HOTLINE_CACHE_FRESHNES_MS"), "{err}");
    assert!(err.contains("did you mean HOTLINE_CACHE_FRESHNESS_MS?"), "{err}");
}

#[tokio::test]
async fn out_of_range_and_ill_typed_values_are_refused_with_the_setting_value_and_range() {
    let (code, err) = start(None, &[("HOTLINE_WORKER_BATCH", "0")]).await;
    assert_ne!(code, 0);
    for part in ["worker_batch", "HOTLINE_WORKER_BATCH", "0", "from 1 to 10000"] {
        assert!(err.contains(part), "{part:?} missing: {err}");
    }
    let (code, err) = start(Some("cache_freshness_ms = 600000\n"), &[]).await;
    assert_ne!(code, 0);
    for part in ["cache_freshness_ms", "600000", "from 100 to 60000", "hotline.toml"] {
        assert!(err.contains(part), "{part:?} missing: {err}");
    }
    let (code, err) = start(None, &[("HOTLINE_CACHE_FRESHNESS_MS", "soon")]).await;
    assert_ne!(code, 0);
    assert!(err.contains("cache_freshness_ms") && err.contains("not a whole number"), "{err}");
    let (code, err) =
        start(None, &[("HOTLINE_WORKER_BACKOFF_BASE_MS", "5000"), ("HOTLINE_WORKER_BACKOFF_CAP_MS", "100")]).await;
    assert_ne!(code, 0);
    assert!(err.contains("worker_backoff_cap_ms") && err.contains("worker_backoff_base_ms"), "{err}");
    let (code, err) = start(None, &[("HOTLINE_LOG", "hotline_api=loud")]).await;
    assert_ne!(code, 0);
    assert!(err.contains("HOTLINE_LOG") && err.contains("not a log filter"), "{err}");
}

#[tokio::test]
async fn a_bad_secret_is_refused_without_being_repeated() {
    let secret = "not-hex-but-secret-0123";
    let (code, err) = start(None, &[("HOTLINE_PII_KEY", secret)]).await;
    assert_ne!(code, 0);
    assert!(err.contains("pii_key") && err.contains("64 or more hex digits"), "{err}");
    assert!(!err.contains(secret), "the key is never echoed: {err}");
}

/// The `HOTLINE_…` names in the rows of the README's configuration table.
fn readme_table_variables() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let section = &readme[readme.find("## Configure it").unwrap()..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut found = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with('|')) {
        // Only the first column names variables; the others may mention one in passing.
        let name_column = row.split('|').nth(1).unwrap_or_default();
        let mut rest = name_column;
        while let Some(i) = rest.find("HOTLINE_") {
            let tail = &rest[i..];
            let end = tail.find(|c: char| !(c.is_ascii_uppercase() || c == '_')).unwrap_or(tail.len());
            found.insert(tail[..end].to_owned());
            rest = &tail[end..];
        }
    }
    found
}

#[test]
fn the_readme_table_lists_every_variable_the_service_reads_and_no_other() {
    let documented = readme_table_variables();
    let read: BTreeSet<String> = hotline::variables().into_iter().collect();
    let undocumented: Vec<_> = read.difference(&documented).collect();
    let unread: Vec<_> = documented.difference(&read).collect();
    assert!(undocumented.is_empty(), "README's table lacks {undocumented:?}");
    assert!(unread.is_empty(), "README's table names variables the service does not read: {unread:?}");
}
