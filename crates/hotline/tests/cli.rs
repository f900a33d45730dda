//! The real binary: the embedded first start and its curl line, the CLI
//! commands, start-up refusals, graceful shutdown, and logs that never carry
//! an Individual Number.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod support;

use hotline_testkit::{Backend, TestDb};
use serde_json::{Value, json};
use support::{Server, hotline, run};

#[tokio::test]
async fn the_embedded_default_prints_a_curl_line_that_suspends_a_sample() {
    let dir = tempfile::tempdir().unwrap();
    let server = support::embedded(dir.path());
    let curl = server.curl_line().await;
    let tokens = server
        .stdout
        .lock()
        .unwrap()
        .iter()
        .filter(|l| {
            l.trim_start().starts_with("operator ")
                || l.trim_start().starts_with("clerk ")
                || l.trim_start().starts_with("validator ")
        })
        .count();
    assert_eq!(tokens, 3, "one token per role is printed");
    // Run the printed lines exactly as a person would paste them: OCSP says good, the curl suspends, OCSP says held.
    let openssl = server.wait_for(|l| l.starts_with("openssl ocsp ").then(|| l.to_owned())).await;
    let asked = support::paste_in(&openssl, dir.path()).await;
    let before = format!("{}{}", String::from_utf8_lossy(&asked.stdout), String::from_utf8_lossy(&asked.stderr));
    assert!(before.contains("Response verify OK") && before.contains(": good"), "{openssl}\n{before}");
    let out = support::paste(&curl).await;
    assert!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["status"], "suspended", "{answer}");
    assert_eq!(answer["certificates"].as_array().unwrap().len(), 2);
    let asked = support::paste_in(&openssl, dir.path()).await;
    let after = format!("{}{}", String::from_utf8_lossy(&asked.stdout), String::from_utf8_lossy(&asked.stderr));
    assert!(after.contains("Response verify OK") && after.contains(": revoked"), "{after}");
    assert!(after.contains("Reason: certificateHold"), "{after}");
    let (code, _, stderr) = server.terminate().await;
    assert_eq!(code, 0, "SIGTERM is a clean exit: {}", stderr.join("\n"));
    assert!(stderr.iter().any(|l| l.contains("shutting down")));

    // A second start keeps the data and seeds nothing.
    let server = support::embedded(dir.path());
    server.addr().await;
    let (_, stdout, _) = server.terminate().await;
    assert!(!stdout.iter().any(|l| l.starts_with("curl ")), "only the first start seeds: {stdout:?}");
    assert!(dir.path().join("hotline-data/hotline.db").exists());
    assert!(dir.path().join("hotline-data/pii.key").exists());
}

async fn migrated(backend: Backend) -> (TestDb, tempfile::TempDir) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = hotline(dir.path());
    cmd.arg("migrate").env("HOTLINE_DATABASE_URL", &db.url);
    let (code, out, err) = run(cmd).await;
    assert_eq!(code, 0, "{out}{err}");
    (db, dir)
}

const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn with_db(cmd: &mut tokio::process::Command, db: &TestDb) {
    cmd.env("HOTLINE_DATABASE_URL", &db.url).env("HOTLINE_PII_KEY", KEY);
}

async fn token(dir: &std::path::Path, db: &TestDb, role: &str) -> String {
    let mut cmd = hotline(dir);
    cmd.args(["token", "create", "--role", role, "--name", &format!("t-{role}")]);
    with_db(&mut cmd, db);
    let (code, out, err) = run(cmd).await;
    assert_eq!(code, 0, "{err}");
    out.lines().last().unwrap().to_owned()
}

async fn token_create_prints_a_working_token_on_its_last_line() {
    let (db, dir) = migrated(Backend::Postgres).await;
    let secret = token(dir.path(), &db, "clerk").await;
    assert!(secret.starts_with("hl_") && !secret.contains(' '));
    let record = db.store().await.find_token(&secret).await.unwrap().unwrap();
    assert_eq!(record.role, hotline_core::Role::Clerk);
    let mut bad = hotline(dir.path());
    bad.args(["token", "create", "--role", "admin", "--name", "x"]);
    with_db(&mut bad, &db);
    let (code, _, err) = run(bad).await;
    assert_ne!(code, 0);
    assert!(err.contains("operator"), "the error lists the roles: {err}");
}

/// Seeds holders, serves, and sends every kind of request; returns the sample
/// numbers and everything the process printed.
///
/// The reports are for smartphones, which the line accepts at every hour: the
/// real binary decides with the real clock, and this test runs at any time.
async fn exercise(backend: Backend) -> (Vec<String>, Vec<String>, TestDb, tempfile::TempDir) {
    let (db, dir) = migrated(backend).await;
    let samples = dir.path().join("samples.json");
    let mut seed = hotline(dir.path());
    seed.args(["seed", "--holders", "60", "--samples"]).arg(&samples);
    with_db(&mut seed, &db);
    let (code, out, err) = run(seed).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("seeded 60 holders"), "{out}");
    let samples: Value = serde_json::from_slice(&std::fs::read(&samples).unwrap()).unwrap();
    let holders = samples["holders"].as_array().unwrap().clone();
    assert_eq!(holders.len(), 60);
    // About a third of the holders have a smartphone: fewer than six in sixty happens about once in 10^5.
    let with_phones: Vec<&Value> =
        holders.iter().filter(|h| h["smartphones"].as_array().is_some_and(|p| !p.is_empty())).collect();
    assert!(with_phones.len() >= 6, "{} holders with a smartphone", with_phones.len());
    let operator = token(dir.path(), &db, "operator").await;
    let clerk = token(dir.path(), &db, "clerk").await;

    let mut serve = support::serve(dir.path());
    serve.env("HOTLINE_LOG", "debug");
    with_db(&mut serve, &db);
    let server = Server::start(serve);
    let base = format!("http://{}", server.addr().await);
    let client = reqwest::Client::new();
    let mut numbers: Vec<String> =
        holders.iter().map(|h| h["individual_number"].as_str().unwrap().to_owned()).collect();
    for (i, h) in with_phones.iter().take(6).enumerate() {
        let mut body = json!({"call_id": format!("c{i}"), "language": "ja", "item": "smartphone", "cause": "theft",
                              "device_id": h["smartphones"][0]["device_id"],
                              "holder": {"individual_number": h["individual_number"], "date_of_birth": h["date_of_birth"]}});
        if i == 1 {
            body["holder"]["date_of_birth"] = json!("1901-01-01");
        }
        if i == 2 {
            // An invalid number (wrong check digit) is refused; it must not be logged either.
            let n = h["individual_number"].as_str().unwrap();
            let wrong = format!("{}{}", &n[..11], (n.as_bytes()[11] - b'0' + 1) % 10);
            numbers.push(wrong.clone());
            body["holder"]["individual_number"] = json!(wrong);
        }
        // The console identifies the caller first: found, not found and refused alike log no number.
        let identify = json!({"call_id": body["call_id"], "holder": body["holder"]});
        let looked_up = client
            .post(format!("{base}/v1/holders/identify"))
            .bearer_auth(&operator)
            .json(&identify)
            .send()
            .await
            .unwrap();
        assert!(looked_up.status() == 200 || looked_up.status() == 422, "{}", looked_up.status());
        let resp = client
            .post(format!("{base}/v1/suspensions"))
            .bearer_auth(&operator)
            .header("Idempotency-Key", format!("k{i}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let answer: Value = resp.json().await.unwrap();
        if i == 0 {
            let id = answer["id"].as_str().unwrap_or_else(|| panic!("{status} {answer}"));
            let r = client
                .post(format!("{base}/v1/suspensions/{id}/release"))
                .bearer_auth(&clerk)
                .header("Idempotency-Key", "r")
                .json(&json!({"verified_with": "passport"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
        assert!(status.is_success() || status.is_client_error(), "{status} {answer}");
    }
    let (code, out, err) = server.terminate().await;
    assert_eq!(code, 0);
    let mut lines = out;
    lines.extend(err);
    (numbers, lines, db, dir)
}

async fn logs_never_carry_an_individual_number() {
    let (numbers, lines, _db, _dir) = exercise(Backend::Postgres).await;
    assert!(lines.len() > 10, "the server logged: {lines:?}");
    for line in &lines {
        for n in &numbers {
            assert!(!line.contains(n.as_str()), "a log line carries an Individual Number: {line}");
        }
    }
    let requests: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["span"]["name"] == "request")
        .collect();
    assert!(requests.len() >= 6);
    assert!(
        requests.iter().all(|v| v["span"]["request_id"].as_str().is_some_and(|id| id.len() == 36)),
        "every request log line has its request id"
    );
}

async fn audit_verify(dir: &std::path::Path, db: &TestDb) -> (i32, String) {
    let mut cmd = hotline(dir);
    cmd.args(["audit", "verify"]);
    with_db(&mut cmd, db);
    let (code, out, err) = run(cmd).await;
    (code, format!("{out}{err}"))
}

async fn tamper(db: &TestDb, sql: &str) {
    let store = db.store().await;
    // Like the service, take SQLite's write lock up front so a busy database is waited for.
    let begin = if store.backend() == Backend::Sqlite { "BEGIN IMMEDIATE" } else { "BEGIN" };
    let mut tx = store.pool().begin_with(begin).await.unwrap();
    let (off, on) = match db.backend {
        Backend::Postgres => (
            "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
            "ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only",
        ),
        Backend::Sqlite => {
            ("DROP TRIGGER IF EXISTS audit_log_no_update; DROP TRIGGER IF EXISTS audit_log_no_delete", "SELECT 1")
        }
    };
    sqlx::raw_sql(off).execute(&mut *tx).await.unwrap();
    sqlx::query(sql).execute(&mut *tx).await.unwrap();
    sqlx::raw_sql(on).execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
}

async fn audit_verify_catches_edits_and_deletions(backend: Backend) {
    let (_numbers, _lines, db, dir) = exercise(backend).await;
    let (code, out) = audit_verify(dir.path(), &db).await;
    assert_eq!(code, 0, "{out}");
    let records: i64 = out.split_whitespace().find_map(|w| w.parse().ok()).unwrap();
    assert!(records >= 5, "{out}");
    tamper(&db, "UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2").await;
    let (code, out) = audit_verify(dir.path(), &db).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("record 2"), "{out}");
    tamper(&db, "DELETE FROM audit_log WHERE seq = 1").await;
    let (code, out) = audit_verify(dir.path(), &db).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("record 1 is missing"), "{out}");
}

#[tokio::test]
async fn audit_verify_catches_edits_and_deletions_on_postgres() {
    audit_verify_catches_edits_and_deletions(Backend::Postgres).await;
}

#[tokio::test]
async fn audit_verify_catches_edits_and_deletions_on_sqlite() {
    audit_verify_catches_edits_and_deletions(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_bad_rule_file_is_refused_at_start_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    let text = hotline_core::rules::DEFAULT_RULES_TOML
        .replace("night_items = [\"smartphone\"]", "night_items = [\"smartphone\", \"passport\"]");
    let line = text.lines().position(|l| l.contains("passport")).unwrap() + 1;
    std::fs::write(&rules, text).unwrap();
    let mut cmd = support::serve(dir.path());
    cmd.env("HOTLINE_RULES_FILE", &rules);
    let (code, _, err) = run(cmd).await;
    assert_ne!(code, 0);
    assert!(err.contains(&format!("line {line}")) && err.contains("passport"), "{err}");
}

#[tokio::test]
async fn postgres_without_a_pii_key_is_refused_at_start() {
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = support::serve(dir.path());
    cmd.env("HOTLINE_DATABASE_URL", &db.url);
    let (code, _, err) = run(cmd).await;
    assert_ne!(code, 0);
    assert!(err.contains("HOTLINE_PII_KEY is required"), "{err}");
}

async fn the_servers_own_time_zone_never_matters() {
    let (db, dir) = migrated(Backend::Postgres).await;
    let validator = token(dir.path(), &db, "validator").await;
    let mut modes = Vec::new();
    for tz in ["UTC", "America/Los_Angeles", "Pacific/Kiritimati"] {
        let mut serve = hotline(dir.path());
        serve.args(["serve", "--listen", "127.0.0.1:0"]).env("TZ", tz);
        with_db(&mut serve, &db);
        let server = Server::start(serve);
        let base = format!("http://{}", server.addr().await);
        let now: Value = reqwest::Client::new()
            .get(format!("{base}/v1/rules/now"))
            .bearer_auth(&validator)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let expected = hotline_core::RuleBook::builtin().unwrap().snapshot(chrono::Utc::now()).unwrap();
        assert_eq!(now["mode"], expected.mode.as_str(), "TZ={tz}");
        assert!(now["now"].as_str().unwrap().ends_with("+09:00"), "TZ={tz}: {now}");
        modes.push(now["next_change_at"].clone());
        server.terminate().await;
    }
    assert!(modes.windows(2).all(|w| w[0] == w[1]), "{modes:?}");
}

async fn http_threads_sets_how_many_threads_serve() {
    let (db, dir) = migrated(Backend::Postgres).await;
    let validator = token(dir.path(), &db, "validator").await;
    // One more than the default (one per core), so the default cannot pass for it.
    let threads = std::thread::available_parallelism().map_or(1, usize::from) + 1;
    let mut serve = support::serve(dir.path());
    serve.env("HOTLINE_HTTP_THREADS", threads.to_string());
    with_db(&mut serve, &db);
    let server = Server::start(serve);
    let base = format!("http://{}", server.addr().await);
    // Fresh connections, handed to the threads in turn, are all answered (the even split is a unit test of serving).
    // The threads start after the listening line: counted once they have answered, not before.
    for _ in 0..threads * 2 {
        let client = reqwest::Client::new();
        let answer = client.get(format!("{base}/v1/rules/now")).bearer_auth(&validator).send().await.unwrap();
        assert_eq!(answer.status(), 200);
    }
    let pid = server.child.id().unwrap();
    let serving: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.unwrap().path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| name.starts_with("hotline-http-"))
        .collect();
    assert_eq!(serving.len(), threads, "{serving:?}");
    let (code, _, err) = server.terminate().await;
    assert_eq!(code, 0, "{}", err.join("\n"));
    let named = format!("\"threads\":{threads}");
    assert!(err.iter().any(|l| l.contains(&named)), "the start-up line names the thread count: {err:?}");
}

hotline_testkit::postgres_only!(
    token_create_prints_a_working_token_on_its_last_line,
    logs_never_carry_an_individual_number,
    the_servers_own_time_zone_never_matters,
    http_threads_sets_how_many_threads_serve,
);
