//! The alert rules: promtool accepts them and its unit tests fire the key
//! alerts on synthetic series; every alert has a summary and a runbook link
//! to a section that exists.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(root().join("deploy/prometheus"))
        .output()
        .expect("promtool is installed by the README's test command (Debian package prometheus)");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {args:?} failed:\n{said}");
    said
}

#[test]
fn promtool_accepts_the_rules() {
    let said = promtool(&["check", "rules", "alerts.yaml"]);
    assert!(said.contains("SUCCESS: 17 rules found"), "{said}");
}

#[test]
fn promtool_unit_tests_fire_the_key_alerts() {
    promtool(&["test", "rules", "alerts.test.yaml"]);
}

#[test]
fn every_alert_has_a_summary_and_a_runbook_section() {
    let rules = std::fs::read_to_string(root().join("deploy/prometheus/alerts.yaml")).unwrap();
    let runbook = std::fs::read_to_string(root().join("docs/RUNBOOK.md")).unwrap();
    let alerts: Vec<&str> = rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")).collect();
    assert_eq!(alerts.len(), 17);
    let links: Vec<&str> = rules.lines().filter_map(|l| l.trim().strip_prefix("runbook_url: ")).collect();
    let summaries = rules.lines().filter(|l| l.trim().starts_with("summary: ")).count();
    assert_eq!((links.len(), summaries), (alerts.len(), alerts.len()));
    for alert in alerts {
        let link = format!("\"docs/RUNBOOK.md#{}\"", alert.to_ascii_lowercase());
        assert!(links.contains(&link.as_str()), "{alert} links to {link}");
        assert!(runbook.contains(&format!("\n## {alert}\n")), "docs/RUNBOOK.md has a section for {alert}");
    }
}
