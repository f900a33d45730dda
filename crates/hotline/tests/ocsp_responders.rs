//! Delegated OCSP responder certificates given as files: a directory that
//! checks out is used (and `openssl` verifies the answers to the issuer); one
//! whose certificate does not match its key, or was not issued by the issuer,
//! is refused at start-up with a message that says which.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod support;

use std::path::Path;

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
    let ca = CaSimServer::start();
    let db = TestDb::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    trust_dir(&ca, &dir.path().join("trust"));
    let responders = dir.path().join("responders");
    responder_dir(&ca, &responders).await;

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
