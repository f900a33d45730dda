//! `hotline registry import`, run as the issuing side's operators run it: a
//! file with good and bad records, the same file twice, an import killed
//! halfway and run again, a delta whose changes reach the cache, the outbox
//! and the audit log, and a record that would lift a hold. The Individual
//! Numbers of the file appear in no table and no output line.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use hotline_store::synthetic::{Generator, SampleHolder};
use hotline_testkit::{Backend, TestApp, both_backends};
use rand::SeedableRng;
use serde_json::{Value, json};
use support::{hotline, run};

/// The key the test instances use, so that a holder imported here is the one the API identifies.
const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// Holders with valid Individual Numbers, none of them the test instance's samples.
fn people(n: usize) -> Vec<SampleHolder> {
    let mut generator = Generator::new(rand::rngs::StdRng::seed_from_u64(2026));
    (0..n).map(|_| generator.holder()).collect()
}

fn cert(issuer: &str, serial: &str) -> Value {
    json!({"issuer": issuer, "serial": serial})
}

/// A holder's line: a card with a signature and an identification certificate, and the smartphones given.
fn line(person: &SampleHolder, card: Option<(&str, &str)>, phones: &[(&str, &str)]) -> Value {
    let mut record = json!({
        "individual_number": person.individual_number.expose_digits(),
        "date_of_birth": person.date_of_birth.format("%Y-%m-%d").to_string(),
    });
    if let Some((sign, auth)) = card {
        record["card"] = json!({"certificates": [cert("jpki-sign", sign), cert("jpki-auth", auth)]});
    }
    if !phones.is_empty() {
        record["smartphones"] = phones
            .iter()
            .map(|(device, serial)| json!({"device_id": device, "certificates": [cert("jpki-auth", serial)]}))
            .collect();
    }
    record
}

fn write(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn json_lines(values: &[Value]) -> Vec<String> {
    values.iter().map(Value::to_string).collect()
}

/// A synthetic registry file of `holders` holders, written by `hotline registry generate`.
async fn generated(dir: &Path, holders: i64) -> PathBuf {
    let file = dir.join("registry.jsonl");
    let mut cmd = hotline(dir);
    cmd.args(["registry", "generate", "--holders", &holders.to_string()]).arg(&file);
    let (code, out, err) = run(cmd).await;
    assert_eq!(code, 0, "{out}{err}");
    file
}

/// `hotline registry import FILE ARGS…` against the test instance's database.
async fn import(app: &TestApp, file: &Path, args: &[&str]) -> (i32, String) {
    let dir = file.parent().unwrap();
    let mut cmd = hotline(dir);
    cmd.args(["registry", "import"]).arg(file).args(args);
    cmd.env("HOTLINE_DATABASE_URL", &app.db.url).env("HOTLINE_PII_KEY", KEY);
    let (code, out, err) = run(cmd).await;
    (code, format!("{out}{err}"))
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(app.store.pool()).await.unwrap()
}

/// Holders the audit log says imports added: a bulk entry counts its batch, a single one its holder.
async fn audited_holders(app: &TestApp) -> u64 {
    app.wait_sealed().await;
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT action, details FROM audit_log WHERE action IN ('registry.imported', 'registry.holder_added')",
    )
    .fetch_all(app.store.pool())
    .await
    .unwrap();
    rows.iter()
        .map(|(action, details)| match action.as_str() {
            "registry.imported" => serde_json::from_str::<Value>(details).unwrap()["holders_added"].as_u64().unwrap(),
            _ => 1,
        })
        .sum()
}

async fn counts(app: &TestApp) -> Vec<(&'static str, i64)> {
    app.counts().await.into_iter().filter(|(t, _)| *t != "api_tokens").collect()
}

/// Every stored byte of the database as text: each row rendered by PostgreSQL, or SQLite's files read whole.
async fn everything_stored(app: &TestApp) -> String {
    match app.db.backend {
        Backend::Postgres => {
            let mut all = String::new();
            for table in hotline_store::TABLES {
                let sql = format!("SELECT COALESCE(string_agg(t::text, E'\\n'), '') FROM {table} t");
                all.push_str(&sqlx::query_scalar::<_, String>(&sql).fetch_one(app.store.pool()).await.unwrap());
            }
            all
        }
        Backend::Sqlite => {
            let path = app.db.url.trim_start_matches("sqlite://").to_owned();
            let mut all = String::new();
            for file in [path.clone(), format!("{path}-wal")] {
                if let Ok(bytes) = std::fs::read(&file) {
                    all.push_str(&String::from_utf8_lossy(&bytes));
                }
            }
            all
        }
    }
}

fn assert_no_number(people: &[SampleHolder], text: &str, what: &str) {
    for p in people {
        let digits = p.individual_number.expose_digits();
        assert!(!text.contains(digits.as_str()), "{what} carries an Individual Number");
    }
}

/// Waits until the instance's cache answers `want` for a certificate.
async fn wait_status(app: &TestApp, issuer: &str, serial: &str, want: &str) -> Value {
    let path = format!("/v1/status/{issuer}/{serial}");
    for _ in 0..200 {
        let (_, body) = app.get(&path, &app.validator).await;
        if body["status"] == want {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{issuer} {serial} never became {want}: {}", app.get(&path, &app.validator).await.1);
}

async fn a_file_with_bad_records_applies_the_good_ones_and_names_each_bad_line(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let p = people(6);
    let mut bad_check_digit = line(&p[1], Some(("b101", "b102")), &[]);
    let digits = p[1].individual_number.expose_digits();
    let last = digits.chars().last().unwrap().to_digit(10).unwrap();
    let wrong = format!("{}{}", &digits[..11], (last + 1) % 10);
    bad_check_digit["individual_number"] = json!(wrong);
    let mut unknown_issuer = line(&p[2], Some(("b201", "b202")), &[]);
    unknown_issuer["card"]["certificates"][1]["issuer"] = json!("jpki-elsewhere");
    let lines = vec![
        line(&p[0], Some(("a001", "a002")), &[("iphone-a0", "a003")]).to_string(),
        bad_check_digit.to_string(),
        unknown_issuer.to_string(),
        line(&p[3], Some(("a301", "a302")), &[]).to_string(),
        // A serial registered to the first holder, under another holder: refused whole, its other serial too.
        line(&p[4], Some(("a001", "b402")), &[]).to_string(),
        format!("{{\"individual_number\": \"{digits}\", \"date_of_birth\": "),
        line(&p[5], None, &[("pixel-a5", "a501")]).to_string(),
    ];
    let file = write(dir.path(), "mixed.jsonl", &lines);
    let before = counts(&app).await;

    let (code, out) = import(&app, &file, &["--on-error", "continue"]).await;
    assert_eq!(code, 2, "refusals make a non-zero exit: {out}");
    for (n, why) in [(2, "individual_number"), (3, "jpki-elsewhere"), (5, "registered to another holder"), (6, "")] {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("line {n}: ")) && l.contains(why)),
            "line {n} ({why}) in: {out}"
        );
    }
    assert!(!out.lines().any(|l| ["line 1:", "line 4:", "line 7:"].iter().any(|ok| l.starts_with(ok))), "{out}");
    assert!(
        out.contains(
            "7 records read; 3 holders added, 0 changed, 0 unchanged; 6 certificates registered, 0 revoked; 4 refused"
        ),
        "{out}"
    );
    assert_no_number(&p, &out, "the import's output");
    assert!(!out.contains(&wrong), "not even a wrong number is echoed: {out}");

    // Exactly the three good holders and their certificates, and nothing of the refused ones.
    let after = counts(&app).await;
    let grew: Vec<_> = before
        .iter()
        .zip(&after)
        // The audit log and the stream grow too, through their pending tables, as the sealer chains them.
        .filter(|(b, a)| b.1 != a.1 && !["audit_log", "audit_pending", "status_changes_pending"].contains(&b.0))
        .map(|(b, a)| (b.0, a.1 - b.1))
        .collect();
    assert_eq!(grew, [("holders", 3), ("cards", 2), ("certificates", 6)]);
    assert_eq!(audited_holders(&app).await, 3, "each holder added is audited");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM certificates WHERE serial IN ('b402', 'b101', 'b201')").await, 0);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM certificates WHERE serial = 'a001'").await, 1);
    wait_status(&app, "jpki-auth", "a003", "good").await;
    wait_status(&app, "jpki-auth", "a501", "good").await;
    app.store.verify_audit().await.unwrap();

    // The same file again changes nothing: the good records are unchanged, the bad ones refused again.
    let (code, out) = import(&app, &file, &["--on-error", "continue"]).await;
    assert_eq!(code, 2);
    assert!(
        out.contains("0 holders added, 0 changed, 3 unchanged; 0 certificates registered, 0 revoked; 4 refused"),
        "{out}"
    );
    assert_eq!(counts(&app).await, after, "a second run stores nothing");

    // Stopping at the first refusal: the records before it are applied, none after.
    let fresh = people(9).split_off(6);
    let mut unborn = line(&fresh[1], Some(("c101", "c102")), &[]);
    unborn["date_of_birth"] = json!("2999-01-01");
    let stopping = write(
        dir.path(),
        "stop.jsonl",
        &json_lines(&[
            line(&fresh[0], Some(("c001", "c002")), &[]),
            unborn,
            line(&fresh[2], Some(("c201", "c202")), &[]),
        ]),
    );
    let (code, out) = import(&app, &stopping, &[]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("line 2: date_of_birth"), "{out}");
    assert!(out.contains("stopped at line 2"), "{out}");
    assert!(out.contains("1 holders added"), "{out}");
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM certificates WHERE serial IN ('c001', 'c002', 'c101', 'c102', 'c201', 'c202')"
        )
        .await,
        2,
        "only line 1 was applied"
    );

    let mut all = p.clone();
    all.extend(fresh);
    assert_no_number(&all, &everything_stored(&app).await, "a table");
}

async fn an_import_killed_halfway_completes_when_run_again(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let holders = 30_000;
    let file = generated(dir.path(), holders).await;
    let in_file: i64 = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let phones = v["smartphones"].as_array().unwrap().iter();
            let on_phones: usize = phones.map(|p| p["certificates"].as_array().unwrap().len()).sum();
            (v["card"]["certificates"].as_array().unwrap().len() + on_phones) as i64
        })
        .sum();
    let seeded = count(&app, "SELECT COUNT(*) FROM holders").await;
    let seeded_certs = count(&app, "SELECT COUNT(*) FROM certificates").await;

    let mut cmd = hotline(dir.path());
    cmd.args(["registry", "import", "--chunk", "500"]).arg(&file);
    cmd.env("HOTLINE_DATABASE_URL", &app.db.url).env("HOTLINE_PII_KEY", KEY);
    cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    for _ in 0..2_000 {
        if count(&app, "SELECT COUNT(*) FROM holders").await - seeded >= 1_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // SIGKILL: no handler runs, whatever transaction is open is lost.
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let killed_at = count(&app, "SELECT COUNT(*) FROM holders").await - seeded;
    assert!(killed_at > 0 && killed_at < holders, "killed halfway: {killed_at} of {holders} holders in");

    let (code, out) = import(&app, &file, &["--chunk", "500"]).await;
    assert_eq!(code, 0, "{out}");
    let added: i64 = out.split("; ").nth(1).and_then(|s| s.split(' ').next()).unwrap().parse().unwrap();
    assert_eq!(killed_at + added, holders, "the rerun adds exactly what the killed run had not: {out}");
    assert!(out.contains(&format!("{killed_at} unchanged")), "{out}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM holders").await - seeded, holders);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM certificates").await - seeded_certs, in_file);
    // Every holder added is audited once, the chain unbroken across the kill.
    assert_eq!(audited_holders(&app).await, holders as u64);
    app.store.verify_audit().await.unwrap();
}

async fn a_delta_reaches_the_cache_the_outbox_and_the_audit_log(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let p = people(3);
    let first = write(
        dir.path(),
        "day-0.jsonl",
        &json_lines(&[
            line(&p[0], Some(("d001", "d002")), &[("iphone-d0", "d003")]),
            line(&p[1], Some(("d101", "d102")), &[]),
            line(&p[2], Some(("d201", "d202")), &[("pixel-d2", "d203")]),
        ]),
    );
    let (code, out) = import(&app, &first, &[]).await;
    assert_eq!(code, 0, "{out}");
    for serial in ["d001", "d003", "d101", "d102"] {
        wait_status(&app, if serial == "d001" || serial == "d101" { "jpki-sign" } else { "jpki-auth" }, serial, "good")
            .await;
    }
    let outbox = count(&app, "SELECT COUNT(*) FROM outbox").await;
    let changes = count(&app, "SELECT COUNT(*) FROM status_changes").await;

    // Day 1: holder 0 has a new card and a new smartphone; holder 1 moved (signature revoked by the issuer)
    // and renewed the identification certificate; holder 2 did nothing.
    let mut moved = line(&p[1], Some(("d101", "d112")), &[]);
    moved["card"]["certificates"][0]["status"] = json!("revoked");
    moved["card"]["certificates"][0]["reason"] = json!("affiliation_changed");
    let delta = write(
        dir.path(),
        "day-1.jsonl",
        &json_lines(&[
            line(&p[0], Some(("d011", "d012")), &[("iphone-d0b", "d013")]),
            moved,
            line(&p[2], Some(("d201", "d202")), &[("pixel-d2", "d203")]),
        ]),
    );
    let (code, out) = import(&app, &delta, &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("0 holders added, 2 changed, 1 unchanged; 4 certificates registered, 5 revoked; 0 refused"),
        "{out}"
    );

    // The cache: the replaced card's, the replaced phone's and the renewed certificate superseded; the moved
    // holder's signature revoked with the issuer's reason; the new ones good.
    for (issuer, serial) in [("jpki-sign", "d001"), ("jpki-auth", "d002"), ("jpki-auth", "d003"), ("jpki-auth", "d102")]
    {
        let answer = wait_status(&app, issuer, serial, "revoked").await;
        assert_eq!(answer["reason"], "superseded", "{issuer} {serial}: {answer}");
    }
    let answer = wait_status(&app, "jpki-sign", "d101", "revoked").await;
    assert_eq!(answer["reason"], "affiliation_changed", "{answer}");
    for (issuer, serial) in [("jpki-sign", "d011"), ("jpki-auth", "d012"), ("jpki-auth", "d013"), ("jpki-auth", "d112")]
    {
        wait_status(&app, issuer, serial, "good").await;
    }

    // The outbox tells the CA of each revocation; the change stream carries each; the audit log says who changed.
    app.wait_sealed().await;
    assert_eq!(count(&app, "SELECT COUNT(*) FROM outbox").await - outbox, 5);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM status_changes").await - changes, 5);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM audit_log WHERE action = 'registry.holder_changed'").await, 2);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM cards WHERE status <> 'active'").await,
        1,
        "holder 0's old card is retired"
    );
    app.store.verify_audit().await.unwrap();

    // Applied twice, the delta changes nothing more.
    let (code, out) = import(&app, &delta, &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 changed, 3 unchanged"), "{out}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM outbox").await - outbox, 5);
}

async fn an_import_never_lifts_a_hold(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let p = people(2);
    let (code, out) =
        import(&app, &write(dir.path(), "load.jsonl", &json_lines(&[line(&p[0], Some(("e001", "e002")), &[])])), &[])
            .await;
    assert_eq!(code, 0, "{out}");
    let (status, body) = app.suspend("import-hold-1", &TestApp::report(&p[0], "card")).await;
    assert!(status.is_success(), "{body}");
    wait_status(&app, "jpki-sign", "e001", "suspended").await;

    // Said good by the issuing side: refused for that record, the rest of the file applied.
    let mut lifting = line(&p[0], Some(("e001", "e002")), &[]);
    lifting["card"]["certificates"][0]["status"] = json!("good");
    let file = write(dir.path(), "lift.jsonl", &json_lines(&[lifting, line(&p[1], Some(("e101", "e102")), &[])]));
    let (code, out) = import(&app, &file, &["--on-error", "continue"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("line 1: ") && out.contains("never makes a certificate good again"), "{out}");
    assert!(out.contains("1 holders added"), "{out}");
    // Listed as issued (the default), the held certificate is simply still there: unchanged, still held.
    let (code, out) =
        import(&app, &write(dir.path(), "same.jsonl", &json_lines(&[line(&p[0], Some(("e001", "e002")), &[])])), &[])
            .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 unchanged"), "{out}");
    for serial in ["e001", "e002"] {
        let issuer = if serial == "e001" { "jpki-sign" } else { "jpki-auth" };
        assert_eq!(app.cert_status(issuer, serial).await, "suspended");
        assert_eq!(
            count(
                &app,
                &format!("SELECT COUNT(*) FROM certificates WHERE serial = '{serial}' AND status = 'suspended'")
            )
            .await,
            1
        );
    }
}

/// The file is read on its own thread, chunks ahead of the one applied: a
/// refusal that only the registry can find (a serial registered to another
/// holder) still stops the import there, and nothing read ahead is applied.
async fn a_refusal_found_in_the_registry_stops_the_import_before_what_was_read_ahead(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let p = people(5);
    let first = write(dir.path(), "first.jsonl", &json_lines(&[line(&p[0], Some(("e001", "e002")), &[])]));
    let (code, out) = import(&app, &first, &[]).await;
    assert_eq!(code, 0, "{out}");
    let lines = json_lines(&[
        line(&p[1], Some(("e101", "e102")), &[]),
        // e001 is the first holder's: refused against the registry, not by reading the line.
        line(&p[2], Some(("e001", "e202")), &[]),
        line(&p[3], Some(("e301", "e302")), &[]),
        line(&p[4], Some(("e401", "e402")), &[]),
    ]);
    let file = write(dir.path(), "stop.jsonl", &lines);
    let (code, out) = import(&app, &file, &["--on-error", "stop", "--chunk", "1"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("line 2: ") && out.contains("registered to another holder"), "{out}");
    assert!(out.contains("stopped at line 2"), "{out}");
    assert!(out.contains("2 records read; 1 holders added"), "{out}");
    let applied =
        "SELECT COUNT(*) FROM certificates WHERE serial IN ('e101', 'e102', 'e202', 'e301', 'e302', 'e401', 'e402')";
    assert_eq!(count(&app, applied).await, 2, "only line 1 was applied: {out}");
    // Run again with the bad line left to be refused: the rest of the file completes.
    let (code, out) = import(&app, &file, &["--on-error", "continue", "--chunk", "1"]).await;
    assert_eq!(code, 2, "{out}");
    assert_eq!(count(&app, applied).await, 6, "lines 1, 3 and 4: {out}");
}

/// The registry as an import leaves it, ids aside: one line per certificate with its holder's fingerprint.
async fn registry_rows(store: &hotline_store::Store) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT concat_ws(' ', h.number_hmac, h.date_of_birth, c.issuer, c.serial, c.kind, c.medium, c.status,
                c.reason, c.device_id, k.status)
         FROM certificates c JOIN holders h ON h.id = c.holder_id LEFT JOIN cards k ON k.id = c.card_id ORDER BY 1",
    )
    .fetch_all(store.pool())
    .await
    .unwrap()
}

/// What else an import writes, ids and instants aside: the outbox's events, the change stream, the schema's keys.
async fn side_effects(store: &hotline_store::Store) -> Vec<String> {
    let mut all = Vec::new();
    for sql in [
        "SELECT concat_ws(' ', 'outbox', issuer, serial, action, reason, state) FROM outbox ORDER BY 1",
        "SELECT concat_ws(' ', 'change', issuer, serial, status, reason) FROM status_changes ORDER BY 1",
        "SELECT concat_ws(' ', 'key', conrelid::regclass, pg_get_constraintdef(oid)) FROM pg_constraint
          WHERE conrelid IN ('holders'::regclass, 'cards'::regclass, 'certificates'::regclass) ORDER BY 1",
        "SELECT concat_ws(' ', 'index', indexdef) FROM pg_indexes
          WHERE tablename IN ('holders', 'cards', 'certificates') ORDER BY 1",
    ] {
        all.extend(sqlx::query_scalar::<_, String>(sql).fetch_all(store.pool()).await.unwrap());
    }
    all
}

/// `--first-load` into an empty registry leaves exactly what the chunked import leaves: a revoked
/// certificate through the outbox and the change stream, a holder listed twice applied as a change,
/// a serial shared between holders refused by line, every key and index built again; and it is
/// refused, changing nothing, once the registry is not empty.
async fn a_first_load_leaves_what_the_chunked_import_leaves() {
    let people = people(4);
    let dir = tempfile::tempdir().unwrap();
    let mut revoked = line(&people[1], Some(("f10a", "f10b")), &[("phone-1", "f10c")]);
    revoked["smartphones"][0]["certificates"][0]["status"] = json!("revoked");
    revoked["smartphones"][0]["certificates"][0]["reason"] = json!("key_compromise");
    let mut lines = json_lines(&[
        line(&people[0], Some(("f00a", "f00b")), &[]),
        revoked,
        line(&people[2], Some(("f20a", "f20b")), &[("phone-2", "f20c")]),
        // The first holder again, with a new card: a change to them.
        line(&people[0], Some(("f00d", "f00e")), &[]),
        // A serial of the second holder's: refused.
        line(&people[3], Some(("f30a", "f10b")), &[]),
    ]);
    lines.insert(2, "{not json".to_owned());
    let file = write(dir.path(), "first.jsonl", &lines);
    let mut results = Vec::new();
    for args in [&["--on-error", "continue"][..], &["--on-error", "continue", "--first-load"][..]] {
        let db = hotline_testkit::TestDb::new(Backend::Postgres).await;
        let mut cmd = hotline(dir.path());
        cmd.args(["registry", "import"]).arg(&file).args(args);
        cmd.env("HOTLINE_DATABASE_URL", &db.url).env("HOTLINE_PII_KEY", KEY);
        let (code, out, err) = run(cmd).await;
        let store = db.store().await;
        assert_eq!(store.verify_audit().await.unwrap().first_break, None, "{args:?}");
        let named: Vec<u64> = format!("{out}{err}")
            .lines()
            .filter_map(|l| l.strip_prefix("line ")?.split(':').next()?.parse().ok())
            .collect();
        assert_no_number(&people, &format!("{out}{err}"), "the import's output");
        results.push((code, named, registry_rows(&store).await, side_effects(&store).await, format!("{out}{err}"), db));
    }
    let (chunked, first) = (&results[0], &results[1]);
    assert!(first.4.contains("(first load)"), "{}", first.4);
    assert_eq!(first.0, 2, "refusals exit 2: {}", first.4);
    assert_eq!(first.0, chunked.0);
    let mut first_named = first.1.clone();
    first_named.sort_unstable();
    assert_eq!(first_named, vec![3, 6], "the bad line and the shared serial: {}", first.4);
    let mut chunked_named = chunked.1.clone();
    chunked_named.sort_unstable();
    assert_eq!(first_named, chunked_named);
    assert_eq!(first.2, chunked.2, "the registry differs");
    assert_eq!(first.3, chunked.3, "the outbox, the change stream or the keys differ");
    assert!(first.3.iter().any(|l| l.ends_with("f10c revoke key_compromise pending")), "{:?}", first.3);
    assert!(first.3.iter().any(|l| l.contains("UNIQUE (issuer, serial)")), "{:?}", first.3);

    // Not empty now: refused, and nothing changes.
    let db = &first.5;
    let before = registry_rows(&db.store().await).await;
    let mut cmd = hotline(dir.path());
    cmd.args(["registry", "import", "--first-load"]).arg(&file);
    cmd.env("HOTLINE_DATABASE_URL", &db.url).env("HOTLINE_PII_KEY", KEY);
    let (code, out, err) = run(cmd).await;
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(registry_rows(&db.store().await).await, before);
}

/// A first load killed with SIGKILL while it copies leaves an empty registry with every key and
/// index in place (the schema changes were in its transaction), and run again it completes.
async fn a_first_load_killed_leaves_nothing_and_completes_when_run_again() {
    let db = hotline_testkit::TestDb::new(Backend::Postgres).await;
    let store = db.store().await;
    let schema = side_effects(&store).await;
    let dir = tempfile::tempdir().unwrap();
    let holders = 30_000;
    let file = generated(dir.path(), holders).await;
    let load = || {
        let mut cmd = hotline(dir.path());
        cmd.args(["registry", "import", "--first-load", "--chunk", "500"]).arg(&file);
        cmd.env("HOTLINE_DATABASE_URL", &db.url).env("HOTLINE_PII_KEY", KEY);
        cmd
    };
    let mut cmd = load();
    cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    // Halfway: the load's session has sent a few chunks of certificates (its rows are not visible outside it).
    let mut copying = false;
    for _ in 0..3_000 {
        let sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'COPY certificates%'";
        let n: i64 = sqlx::query_scalar(sql).fetch_one(store.pool()).await.unwrap();
        if n > 0 {
            copying = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(copying, "the first load never started copying");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(child.try_wait().unwrap().is_none(), "the load ended before it could be killed halfway");
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    // The killed session's transaction is rolled back as PostgreSQL notices it gone.
    for _ in 0..400 {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'holders' AND l.mode = 'AccessExclusiveLock'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let holders_in: i64 = sqlx::query_scalar("SELECT count(*) FROM holders").fetch_one(store.pool()).await.unwrap();
    assert_eq!(holders_in, 0, "a killed first load leaves nothing");
    let audited: i64 =
        sqlx::query_scalar("SELECT (SELECT count(*) FROM audit_log) + (SELECT count(*) FROM audit_pending)")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(audited, 0, "nor any audit record, sealed or not");
    assert_eq!(side_effects(&store).await, schema, "every key and index is in place after the kill");

    let (code, out, err) = run(load()).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("{holders} holders added")), "{out}");
    let holders_in: i64 = sqlx::query_scalar("SELECT count(*) FROM holders").fetch_one(store.pool()).await.unwrap();
    assert_eq!(holders_in, holders);
    assert_eq!(side_effects(&store).await, schema, "the keys and indexes are built again");
    store.verify_audit().await.unwrap();
}

hotline_testkit::postgres_only!(
    a_first_load_leaves_what_the_chunked_import_leaves,
    a_first_load_killed_leaves_nothing_and_completes_when_run_again,
);

both_backends!(
    a_refusal_found_in_the_registry_stops_the_import_before_what_was_read_ahead,
    a_file_with_bad_records_applies_the_good_ones_and_names_each_bad_line,
    an_import_killed_halfway_completes_when_run_again,
    a_delta_reaches_the_cache_the_outbox_and_the_audit_log,
    an_import_never_lifts_a_hold,
);
