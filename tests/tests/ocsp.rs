//! The OCSP responder, asked by real `openssl ocsp` as validators ask it:
//! answers that verify to the issuer through the delegated responder
//! certificate, that follow a suspension made through another instance and
//! a clerk's release, the GET form with RFC 5019's caching headers, every
//! refusal as an OCSP status, and `tryLater` (never `good`) when no tier can
//! answer.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use hotline_testkit::{Backend, CaSimServer, RedisServer, TcpProxy, TestApp, TestCache, TestOptions, both_backends};
use reqwest::StatusCode;
use serde_json::json;

/// Runs openssl with `args`; returns (success, stdout and stderr together).
async fn openssl(args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new("openssl")
        .args(args)
        .output()
        .await
        .expect("openssl is installed by the README's test command");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// An instance with a CA, so that it certifies its OCSP responder.
fn with_ca(ca: &CaSimServer, mut options: TestOptions) -> TestOptions {
    options.ca_url = Some(ca.url());
    options
}

/// `openssl ocsp` against `app` for `serial` of `issuer`, verifying the answer
/// against the issuer's certificate; `token` as a bearer token; `extra` appended.
async fn ask(
    app: &TestApp,
    ca: &CaSimServer,
    issuer: &str,
    serial: &str,
    token: Option<&str>,
    extra: &[&str],
) -> String {
    let pem = ca.issuer_pem_path(issuer).display().to_string();
    let (serial, url) = (format!("0x{serial}"), format!("{}/ocsp", app.base));
    let header = token.map(|t| format!("Authorization=Bearer {t}"));
    let mut args = vec!["ocsp", "-issuer", &pem, "-CAfile", &pem, "-serial", &serial, "-url", &url];
    if let Some(header) = &header {
        args.extend(["-header", header]);
    }
    args.extend(extra);
    openssl(&args).await.1
}

/// The status `openssl ocsp` printed for the serial: good, revoked, unknown, or the responder's error.
fn status_of(output: &str, serial: &str) -> String {
    let prefix = format!("0x{serial}: ");
    if let Some(line) = output.lines().find_map(|l| l.strip_prefix(&prefix)) {
        return line.trim().to_owned();
    }
    output.lines().find_map(|l| l.strip_prefix("Responder Error: ")).map_or_else(|| output.to_owned(), str::to_owned)
}

/// Asks until the status is `want` (up to 3 s: another instance learns of a change by pub/sub).
async fn eventually(app: &TestApp, ca: &CaSimServer, issuer: &str, serial: &str, want: &str) -> String {
    let mut last = String::new();
    for _ in 0..60 {
        last = ask(app, ca, issuer, serial, Some(&app.validator), &[]).await;
        if status_of(&last, serial) == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    last
}

/// Suspends a holder's card through `app`; returns the suspension id.
async fn suspend_card(app: &TestApp, holder: usize) -> String {
    let (code, body) = app.suspend(&format!("card-{holder}"), &TestApp::report(app.card_holder(holder), "card")).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn a_suspension_through_another_instance_and_its_release_reach_openssl(backend: Backend) {
    let ca = CaSimServer::start();
    let redis = TestOptions::shared_redis();
    let mut options = with_ca(&ca, redis);
    options.near_cache = true;
    let a = TestApp::spawn_with(backend, options.clone()).await;
    let b = a.instance(options).await;
    a.wait_for_cache().await;
    b.wait_for_cache().await;
    let card = a.card_holder(0).card.clone();
    let auth = card.iter().find(|c| c.issuer == "jpki-auth").unwrap().serial.as_str().to_owned();
    let sign = card.iter().find(|c| c.issuer == "jpki-sign").unwrap().serial.as_str().to_owned();
    let before = ask(&a, &ca, "jpki-auth", &auth, Some(&a.validator), &[]).await;
    assert!(before.contains("Response verify OK"), "{before}");
    assert_eq!(status_of(&before, &auth), "good", "{before}");
    assert!(!before.contains("WARNING"), "the nonce is echoed: {before}");

    let id = suspend_card(&b, 0).await;
    let held = eventually(&a, &ca, "jpki-auth", &auth, "revoked").await;
    assert_eq!(status_of(&held, &auth), "revoked", "{held}");
    assert!(held.contains("Response verify OK") && held.contains("Reason: certificateHold"), "{held}");
    assert!(held.contains("Revocation Time:"), "{held}");

    let (code, body) = b
        .post(&format!("/v1/suspensions/{id}/release"), &b.clerk, Some("r1"), &json!({"verified_with": "passport"}))
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let resumed = eventually(&a, &ca, "jpki-auth", &auth, "good").await;
    assert_eq!(status_of(&resumed, &auth), "good", "the user identification certificate resumes: {resumed}");
    let signature = eventually(&a, &ca, "jpki-sign", &sign, "revoked").await;
    assert_eq!(status_of(&signature, &sign), "revoked", "{signature}");
    assert!(signature.contains("Reason: superseded"), "the signature certificate is revoked for good: {signature}");
}

/// The DER request `openssl` would send for `serial` (without a nonce), written to `dir`.
async fn request_der(ca: &CaSimServer, issuer: &str, serial: &str, dir: &Path) -> Vec<u8> {
    let pem = ca.issuer_pem_path(issuer).display().to_string();
    let out = dir.join(format!("{serial}.req"));
    let serial = format!("0x{serial}");
    let (ok, text) =
        openssl(&["ocsp", "-issuer", &pem, "-serial", &serial, "-no_nonce", "-reqout", &out.display().to_string()])
            .await;
    assert!(ok, "{text}");
    std::fs::read(out).unwrap()
}

/// What `openssl` reads in a response: its text, with the certificate's status.
async fn read_response(ca: &CaSimServer, issuer: &str, serial: &str, der: &[u8], dir: &Path) -> String {
    let pem = ca.issuer_pem_path(issuer).display().to_string();
    let file = dir.join(format!("{serial}.resp"));
    std::fs::write(&file, der).unwrap();
    let serial = format!("0x{serial}");
    let file = file.display().to_string();
    let args = ["ocsp", "-respin", &file, "-issuer", &pem, "-CAfile", &pem, "-serial", &serial, "-resp_text"];
    openssl(&args).await.1
}

async fn get_answers_carry_caching_headers_and_are_never_older_than_a_change(backend: Backend) {
    let ca = CaSimServer::start();
    let app = TestApp::spawn_with(backend, with_ca(&ca, TestOptions::default())).await;
    app.wait_for_cache().await;
    let dir = tempfile::tempdir().unwrap();
    let serial = app.card_holder(1).card.iter().find(|c| c.issuer == "jpki-auth").unwrap().serial.as_str().to_owned();
    let request = request_der(&ca, "jpki-auth", &serial, dir.path()).await;
    // Standard base64 can hold '/' and '+': percent-encoded, as RFC 5019 asks.
    let encoded = base64::engine::general_purpose::STANDARD.encode(&request);
    let path: String = encoded.replace('/', "%2F").replace('+', "%2B").replace('=', "%3D");
    let get = |etag: Option<String>| {
        let mut r = app.client.get(format!("{}/ocsp/{path}", app.base)).bearer_auth(&app.validator);
        if let Some(etag) = etag {
            r = r.header("If-None-Match", etag);
        }
        r.send()
    };
    let first = get(None).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let headers = first.headers().clone();
    assert_eq!(headers["content-type"], "application/ocsp-response");
    let cache_control = headers["cache-control"].to_str().unwrap().to_owned();
    assert!(cache_control.contains("public, no-transform, must-revalidate"), "{cache_control}");
    let max_age: i64 = cache_control.trim_start_matches("max-age=").split(',').next().unwrap().parse().unwrap();
    assert!((1..=60).contains(&max_age), "never beyond nextUpdate (60 s by default): {cache_control}");
    for h in ["last-modified", "expires", "etag"] {
        assert!(headers.contains_key(h), "{h} missing: {headers:?}");
    }
    let first = first.bytes().await.unwrap();
    let text = read_response(&ca, "jpki-auth", &serial, &first, dir.path()).await;
    assert!(text.contains("Response verify OK") && text.contains(&format!("0x{serial}: good")), "{text}");
    let second = get(None).await.unwrap().bytes().await.unwrap();
    assert_eq!(first, second, "two GETs in a row are the same signed bytes");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let revalidated = get(Some(etag)).await.unwrap();
    assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);
    // The URL-safe alphabet, unpadded, is read too.
    let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&request);
    let answer = app.client.get(format!("{}/ocsp/{url_safe}", app.base)).bearer_auth(&app.validator).send().await;
    assert_eq!(answer.unwrap().bytes().await.unwrap(), first);
    // And standard base64 as it is, its '/', '+' and '=' not encoded (taken before the router).
    let plain = app.client.get(format!("{}/ocsp/{encoded}", app.base)).bearer_auth(&app.validator).send().await;
    assert_eq!(plain.unwrap().bytes().await.unwrap(), first);

    // Right after a suspension the same GET is revoked: a signed good is never served after it.
    suspend_card(&app, 1).await;
    let after = get(None).await.unwrap().bytes().await.unwrap();
    let text = read_response(&ca, "jpki-auth", &serial, &after, dir.path()).await;
    assert!(text.contains(&format!("0x{serial}: revoked")) && text.contains("certificateHold"), "{text}");
    // An independent read of the response: the times as specified, and the responder certificate it carries.
    let this = chrono_of(&text, "This Update: ");
    let next = chrono_of(&text, "Next Update: ");
    assert_eq!(next - this, chrono::Duration::seconds(60), "{text}");
    assert!((chrono::Utc::now() - this).num_seconds().abs() < 10, "thisUpdate is the answering tier's as_of: {text}");
    assert!(text.contains("OCSP Signing") && text.contains("OCSP No Check"), "{text}");
}

/// An instant `openssl` printed after `label` (`Dec  2 19:55:01 2026 GMT`).
fn chrono_of(text: &str, label: &str) -> chrono::DateTime<chrono::Utc> {
    let at = text.lines().find_map(|l| l.trim().strip_prefix(label)).unwrap_or_else(|| panic!("no {label}: {text}"));
    let at = at.split_whitespace().collect::<Vec<_>>().join(" ");
    chrono::NaiveDateTime::parse_from_str(&at, "%b %d %H:%M:%S %Y GMT").unwrap().and_utc()
}

async fn every_refusal_is_an_ocsp_status(backend: Backend) {
    let ca = CaSimServer::start();
    let app = TestApp::spawn_with(backend, with_ca(&ca, TestOptions::default())).await;
    app.wait_for_cache().await;
    let serial = app.card_holder(2).card.iter().find(|c| c.issuer == "jpki-auth").unwrap().serial.as_str().to_owned();
    let unknown = ask(&app, &ca, "jpki-auth", "0102030405", Some(&app.validator), &[]).await;
    assert!(unknown.contains("Response verify OK"), "{unknown}");
    assert_eq!(status_of(&unknown, "0102030405"), "unknown", "a serial the registry does not hold: {unknown}");
    // Another CA's issuer: not served here.
    let stranger = CaSimServer::start();
    let other = ask(&app, &stranger, "jpki-auth", &serial, Some(&app.validator), &[]).await;
    assert_eq!(status_of(&other, &serial), "unauthorized (6)", "{other}");
    let anonymous = ask(&app, &ca, "jpki-auth", &serial, None, &[]).await;
    assert_eq!(status_of(&anonymous, &serial), "unauthorized (6)", "{anonymous}");
    let operator = ask(&app, &ca, "jpki-auth", &serial, Some(&app.operator), &[]).await;
    assert_eq!(status_of(&operator, &serial), "unauthorized (6)", "only validators: {operator}");
    let wrong = ask(&app, &ca, "jpki-auth", &serial, Some("hl_not_a_token"), &[]).await;
    assert_eq!(status_of(&wrong, &serial), "unauthorized (6)", "{wrong}");
    // Malformed and oversized bodies: the DER of OCSPResponse { malformedRequest }.
    let malformed = [0x30, 0x03, 0x0a, 0x01, 0x01];
    for body in [b"not an OCSP request".to_vec(), vec![0x30; 10_001], Vec::new()] {
        let answer = app
            .client
            .post(format!("{}/ocsp", app.base))
            .bearer_auth(&app.validator)
            .header("Content-Type", "application/ocsp-request")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.headers()["content-type"], "application/ocsp-response");
        assert_eq!(answer.bytes().await.unwrap().as_ref(), malformed);
    }
    // A GET that is not base64 (routed), and base64 that is not a request (taken before the router), twice:
    // what could not be read is not remembered as read.
    for path in ["%%%not-base64", "AAAA", "AAAA"] {
        let bad_get = app.client.get(format!("{}/ocsp/{path}", app.base)).bearer_auth(&app.validator).send().await;
        assert_eq!(bad_get.unwrap().bytes().await.unwrap().as_ref(), malformed, "{path}");
    }
    // Refusals stored nothing.
    let before = app.counts().await;
    let _ = ask(&app, &ca, "jpki-auth", &serial, None, &[]).await;
    assert_eq!(app.counts().await, before);
}

async fn answers_stay_right_through_redis_faults_and_are_try_later_when_nothing_can_answer(backend: Backend) {
    assert_eq!(backend, Backend::Postgres, "the database is cut with a TCP proxy");
    let ca = CaSimServer::start();
    let mut redis = RedisServer::start();
    let cache = TestCache::Redis { url: redis.url(), prefix: "hl".into() };
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let a = TestApp::spawn_with(backend, with_ca(&ca, TestOptions { cache: cache.clone(), ..TestOptions::default() }))
        .await;
    let mut options = TestOptions { cache, near_cache: true, ..TestOptions::default() };
    options.database_url = Some(a.db.url.replace("127.0.0.1:5432", &proxy.addr.to_string()));
    options.freshness_bound = Duration::from_millis(500);
    options.max_staleness = MAX_STALENESS;
    let b = a.instance(with_ca(&ca, options)).await;
    b.wait_for_cache().await;
    suspend_card(&a, 3).await;
    let held = a.card_holder(3).card.iter().find(|c| c.issuer == "jpki-auth").unwrap().serial.as_str().to_owned();
    let good = a.card_holder(4).card.iter().find(|c| c.issuer == "jpki-auth").unwrap().serial.as_str().to_owned();
    assert_eq!(status_of(&eventually(&b, &ca, "jpki-auth", &held, "revoked").await, &held), "revoked");
    // Redis down: the near-cache, then the store, answer; still right.
    redis.kill();
    for (serial, want) in [(&held, "revoked"), (&good, "good")] {
        assert_eq!(status_of(&ask(&b, &ca, "jpki-auth", serial, Some(&b.validator), &[]).await, serial), want);
    }
    // Redis back empty: rebuilt, and right meanwhile.
    redis.restart();
    for (serial, want) in [(&held, "revoked"), (&good, "good")] {
        assert_eq!(status_of(&ask(&b, &ca, "jpki-auth", serial, Some(&b.validator), &[]).await, serial), want);
    }
    // Redis and the database both unreachable: nothing can commit, so the near-cache's last
    // confirmed state is still the truth as of then. It answers with that older thisUpdate
    // up to the maximum staleness, and then nothing can say.
    redis.kill();
    let cut_at = chrono::Utc::now();
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(700)).await;
    for (serial, want) in [(&held, "revoked"), (&good, "good")] {
        let answer = ask(&b, &ca, "jpki-auth", serial, Some(&b.validator), &[]).await;
        assert_eq!(status_of(&answer, serial), want, "{answer}");
        assert!(chrono_of(&answer, "This Update: ") <= cut_at, "never fresher than the last confirmation: {answer}");
    }
    assert!(b.answers_from("near_cache_stale") >= 2, "{}", b.metrics.render());
    tokio::time::sleep(MAX_STALENESS).await;
    for serial in [&held, &good] {
        let answer = ask(&b, &ca, "jpki-auth", serial, Some(&b.validator), &[]).await;
        assert_eq!(status_of(&answer, serial), "trylater (3)", "never good by default: {answer}");
    }
}

/// How stale the faults test's instance may answer while the database is unreachable.
const MAX_STALENESS: Duration = Duration::from_millis(1_500);

both_backends!(
    a_suspension_through_another_instance_and_its_release_reach_openssl,
    get_answers_carry_caching_headers_and_are_never_older_than_a_change,
    every_refusal_is_an_ocsp_status,
);

mod postgres_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn answers_stay_right_through_redis_faults_and_are_try_later_when_nothing_can_answer() {
        super::answers_stay_right_through_redis_faults_and_are_try_later_when_nothing_can_answer(
            hotline_testkit::Backend::Postgres,
        )
        .await
    }
}
