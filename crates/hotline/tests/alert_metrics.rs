//! Every metric an alert rule or a dashboard names is exported by the running service
//! (`hotline serve`: API and worker in one process), so no alert watches a
//! series that never exists; and with `HOTLINE_ADMIN_LISTEN` the on-call
//! routes move to their own address.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod support;

use std::collections::BTreeSet;

/// `hotline_…` names in a text, without the suffixes a sample adds to a family's name.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("hotline_") {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_lowercase() || c == '_')).unwrap_or(tail.len());
        let mut name = &tail[..end];
        for suffix in ["_total", "_bucket", "_count", "_sum"] {
            name = name.strip_suffix(suffix).unwrap_or(name);
        }
        names.insert(name.to_owned());
        rest = &tail[end..];
    }
    names
}

#[tokio::test]
async fn every_metric_in_the_alert_rules_and_dashboards_is_exported() {
    let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy");
    let mut wanted = BTreeSet::new();
    for file in [
        "prometheus/alerts.yaml",
        "grafana/dashboards/operators.json",
        "grafana/dashboards/validators.json",
        "grafana/dashboards/ca-sync.json",
    ] {
        let text = std::fs::read_to_string(format!("{deploy}/{file}")).unwrap();
        let names = metric_names(&text);
        assert!(names.len() >= 4, "{file}: {names:?}");
        wanted.extend(names);
    }

    let dir = tempfile::tempdir().unwrap();
    let server = support::embedded(dir.path());
    // Exercise a suspension (and so the worker) before scraping.
    let addr = server.suspend_the_sample().await;
    let scraped = reqwest::get(format!("http://{addr}/metrics")).await.unwrap().text().await.unwrap();
    let families: BTreeSet<String> = scraped
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(|name| metric_names(name).into_iter().next().unwrap_or_default())
        .collect();
    let missing: Vec<_> = wanted.difference(&families).collect();
    assert!(missing.is_empty(), "alerts name metrics the service does not export: {missing:?}");
    // The cache lag is a real figure for a running instance with a complete cache.
    let lag: f64 =
        scraped.lines().find_map(|l| l.strip_prefix("hotline_cache_lag_seconds ")).unwrap().trim().parse().unwrap();
    assert!((0.0..5.0).contains(&lag), "cache lag {lag}");
    server.terminate().await;
}

#[tokio::test]
async fn with_an_admin_address_metrics_and_the_status_page_are_served_there_and_not_beside_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = support::serve(dir.path());
    cmd.env("HOTLINE_ADMIN_LISTEN", "127.0.0.1:0");
    let server = support::Server::start(cmd);
    let api = server.addr().await;
    let admin = server.logged_addr("on-call routes (/metrics, /ops) listening").await;
    assert_ne!(api, admin);
    let client = reqwest::Client::new();
    let status = |url: String| {
        let client = client.clone();
        async move { client.get(url).send().await.unwrap().status().as_u16() }
    };
    for path in ["/metrics", "/ops", "/ops/summary", "/healthz"] {
        assert_eq!(status(format!("http://{admin}{path}")).await, 200, "{path} on the admin address");
    }
    for path in ["/metrics", "/ops", "/ops/summary"] {
        assert_eq!(status(format!("http://{api}{path}")).await, 404, "{path} beside the API");
    }
    // The API itself is where it was, and its requests are counted on the admin address.
    assert_eq!(status(format!("http://{api}/openapi.json")).await, 200);
    let metrics = client.get(format!("http://{admin}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"route="/openapi.json""#), "{metrics}");
    let (code, _, _) = server.terminate().await;
    assert_eq!(code, 0);
}
