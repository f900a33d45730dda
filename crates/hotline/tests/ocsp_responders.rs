//! Delegated OCSP responder certificates given as files: a directory that
//! checks out is used (and `openssl` verifies the answers to the issuer); one
//! whose certificate does not match its key, or was not issued by the issuer,
//! is refused at start-up with a message that says which; one that runs out
//! while the service answers makes its issuer's answers `tryLater`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod support;

use std::path::Path;
use std::time::Duration;

use hotline_testkit::{Backend, CaSimServer, TestDb};
use support::{Server, run};

const ISSUERS: [&str; 2] = ["jpki-sign", "jpki-auth"];

async fn sh(command: &str) {
    let out = tokio::process::Command::new("sh").arg("-c").arg(command).output().await.unwrap();
    assert!(out.status.success(), "{command}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A P-256 key (PKCS#8 PEM) at `key`, and a certificate for it issued by `ca` as `issuer`'s responder at `cert`.
async fn responder_pair(ca: &CaSimServer, issuer: &str, key: &Path, cert: &Path) {
    let key_path = key.display();
    sh(&format!("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out {key_path}")).await;
    let public = key.with_extension("pub");
    sh(&format!("openssl pkey -in {key_path} -pubout -outform DER -out {}", public.display())).await;
    let pem = ca.client().responder_certificate(issuer, &std::fs::read(&public).unwrap()).await.unwrap();
    std::fs::write(cert, pem).unwrap();
}

/// A directory of `{issuer}.pem` + `{issuer}.key` for every issuer, certified by `ca`.
async fn responder_dir(ca: &CaSimServer, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for issuer in ISSUERS {
        responder_pair(ca, issuer, &dir.join(format!("{issuer}.key")), &dir.join(format!("{issuer}.pem"))).await;
    }
}

/// The issuers' certificates alone, as a trust directory.
fn trust_dir(ca: &CaSimServer, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for issuer in ISSUERS {
        std::fs::copy(ca.issuer_pem_path(issuer), dir.join(format!("{issuer}.pem"))).unwrap();
    }
}

/// A CA, a database, and a directory with the CA's issuers as trust anchors
/// and a responder pair for each issuer that checks out.
struct Setup {
    ca: CaSimServer,
    db: TestDb,
    dir: tempfile::TempDir,
    responders: std::path::PathBuf,
}

impl Setup {
    async fn new() -> Setup {
        let ca = CaSimServer::start();
        let db = TestDb::new(Backend::Sqlite).await;
        let dir = tempfile::tempdir().unwrap();
        trust_dir(&ca, &dir.path().join("trust"));
        let responders = dir.path().join("responders");
        responder_dir(&ca, &responders).await;
        Setup { ca, db, dir, responders }
    }
}

fn serve(dir: &Path, db: &TestDb, ca: &CaSimServer) -> tokio::process::Command {
    let mut cmd = support::serve(dir);
    cmd.env("HOTLINE_DATABASE_URL", &db.url)
        .env("HOTLINE_CA_URL", ca.url())
        .env("HOTLINE_CA_TRUST_DIR", dir.join("trust"))
        .env("HOTLINE_OCSP_RESPONDER_DIR", dir.join("responders"))
        .env("HOTLINE_OCSP_ANONYMOUS", "true");
    cmd
}

#[tokio::test]
async fn a_responder_directory_is_used_when_it_checks_out_and_refused_when_it_does_not() {
    let Setup { ca, db, dir, responders } = Setup::new().await;

    let server = Server::start(serve(dir.path(), &db, &ca));
    let base = format!("http://{}/ocsp", server.addr().await);
    let pem = ca.issuer_pem_path("jpki-auth").display().to_string();
    let out = tokio::process::Command::new("openssl")
        .args(["ocsp", "-issuer", &pem, "-CAfile", &pem, "-serial", "0x0a0b0c", "-url", &base, "-resp_text"])
        .output()
        .await
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("Response verify OK") && text.contains("0x0a0b0c: unknown"), "{text}");
    assert!(text.contains("OCSP Signing"), "the responder certificate is sent with the answer: {text}");
    server.terminate().await;

    // Another key beside the certificate: refused, naming what is wrong.
    let stray = dir.path().join("stray.key");
    sh(&format!("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out {}", stray.display())).await;
    std::fs::copy(&stray, responders.join("jpki-auth.key")).unwrap();
    let (code, out, err) = run(serve(dir.path(), &db, &ca)).await;
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("does not certify the responder's key") && err.contains("jpki-auth"), "{err}");

    // A certificate another CA issued: refused.
    let stranger = CaSimServer::start();
    responder_pair(&stranger, "jpki-auth", &responders.join("jpki-auth.key"), &responders.join("jpki-auth.pem")).await;
    let (code, _, err) = run(serve(dir.path(), &db, &ca)).await;
    assert_ne!(code, 0);
    assert!(err.contains("is not issued by jpki-auth"), "{err}");

    // A missing pair (the other one sound again): refused.
    responder_pair(&ca, "jpki-auth", &responders.join("jpki-auth.key"), &responders.join("jpki-auth.pem")).await;
    std::fs::remove_file(responders.join("jpki-sign.pem")).unwrap();
    let (code, _, err) = run(serve(dir.path(), &db, &ca)).await;
    assert_ne!(code, 0);
    assert!(err.contains("jpki-sign.pem"), "{err}");
}

/// `openssl ocsp` for an unlisted serial of `issuer`, stdout and stderr together.
async fn ask_unlisted(ca: &CaSimServer, base: &str, issuer: &str) -> String {
    let pem = ca.issuer_pem_path(issuer).display().to_string();
    let out = tokio::process::Command::new("openssl")
        .args(["ocsp", "-issuer", &pem, "-CAfile", &pem, "-serial", "0x0a0b0c", "-url", base])
        .output()
        .await
        .unwrap();
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test]
async fn a_responder_certificate_that_runs_out_while_serving_is_answered_try_later_and_refused_at_the_next_start() {
    let Setup { ca, db, dir, responders } = Setup::new().await;
    // jpki-auth's certificate replaced by one for the same key, valid for 15 seconds.
    let public = std::fs::read(responders.join("jpki-auth.pub")).unwrap();
    let validity = Duration::from_secs(15);
    let issued = tokio::time::Instant::now();
    let pem = ca.control().short_lived_responder("jpki-auth", &public, validity).await.unwrap();
    std::fs::write(responders.join("jpki-auth.pem"), pem).unwrap();

    let server = Server::start(serve(dir.path(), &db, &ca));
    let addr = server.addr().await;
    let base = format!("http://{addr}/ocsp");
    let text = ask_unlisted(&ca, &base, "jpki-auth").await;
    assert!(text.contains("Response verify OK") && text.contains("0x0a0b0c: unknown"), "before it runs out: {text}");

    tokio::time::sleep_until(issued + validity + Duration::from_secs(1)).await;
    let text = ask_unlisted(&ca, &base, "jpki-auth").await;
    assert!(text.contains("Responder Error: trylater"), "never signed by a certificate that ran out: {text}");
    assert!(!text.contains("Response verify OK"), "{text}");
    let other = ask_unlisted(&ca, &base, "jpki-sign").await;
    assert!(other.contains("Response verify OK"), "the other issuer's responder is sound: {other}");
    let metrics = reqwest::get(format!("http://{addr}/metrics")).await.unwrap().text().await.unwrap();
    let left: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hotline_ocsp_responder_expiry_seconds{issuer=\"jpki-auth\"} "))
        .unwrap_or_else(|| panic!("no expiry gauge for jpki-auth: {metrics}"))
        .parse()
        .unwrap();
    assert!(left < 0.0, "the gauge the alert reads says it ran out: {left}");
    server.terminate().await;

    let (code, _, err) = run(serve(dir.path(), &db, &ca)).await;
    assert_ne!(code, 0, "an expired responder certificate is refused at start-up");
    assert!(err.contains("jpki-auth") && err.contains("not now"), "{err}");
}
