//! ca-sim served on a real listener in this process, spoken to through the
//! worker's own client: idempotency by event id, refusals, the journal
//! surviving a restart, increasing CRL numbers, and the timeout fault.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::path::Path;
use std::time::Duration;

use ca_sim::CaSim;
use ca_sim::control::Control;
use hotline_ca::{CaClient, EntryState, Faults, RevocationRequest, SendError, TrustedIssuer};
use hotline_core::{CaAction, RevocationReason};

/// ca-sim on a free port: the worker's client, ca-sim's own controls, and the serving task.
async fn serve(dir: &Path, faults: Faults) -> (CaClient, Control, tokio::task::JoinHandle<()>) {
    let ca = CaSim::open(dir, faults).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move { ca.serve(listener).await.unwrap() });
    (CaClient::new(&url, Duration::from_millis(500)).unwrap(), Control::new(&url).unwrap(), task)
}

fn request(event_id: &str, serial: &str, action: CaAction) -> RevocationRequest {
    let reason = match action {
        CaAction::Hold => RevocationReason::CertificateHold,
        CaAction::Release => RevocationReason::RemoveFromCrl,
        CaAction::Revoke => RevocationReason::Superseded,
    };
    RevocationRequest { event_id: event_id.into(), issuer: "jpki-auth".into(), serial: serial.into(), action, reason }
}

fn refusal_code(result: Result<hotline_ca::RevocationAnswer, SendError>) -> (u16, String) {
    match result {
        Err(SendError::Refused { status, code, .. }) => (status, code),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn crl_number(client: &CaClient) -> u128 {
    let pem = client.issuer_pem("jpki-auth").await.unwrap();
    let der = client.crl("jpki-auth").await.unwrap();
    let crl = TrustedIssuer::from_pem(&pem).unwrap().verify(&der, chrono::Utc::now()).unwrap();
    crl.number.unwrap().parse().unwrap()
}

#[tokio::test]
async fn an_event_is_applied_once_and_a_replay_gets_the_first_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (client, control, _task) = serve(dir.path(), Faults::default()).await;
    let first = client.send(&request("e1", "0a0b", CaAction::Hold)).await.unwrap();
    assert_eq!((first.entry, first.replay), (EntryState::Held, false));
    let again = client.send(&request("e1", "0a0b", CaAction::Hold)).await.unwrap();
    assert!(again.replay);
    assert_eq!(again.applied_at, first.applied_at, "the first answer, not a new one");
    let stats = control.stats().await.unwrap();
    assert_eq!((stats.applied["e1"], stats.replays["e1"]), (1, 1));
    // The same id with other content is not a replay.
    assert_eq!(
        refusal_code(client.send(&request("e1", "0c0d", CaAction::Hold)).await),
        (422, "event_id_reused".into())
    );
}

#[tokio::test]
async fn releases_of_what_is_not_held_and_changes_after_a_revocation_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (client, control, _task) = serve(dir.path(), Faults::default()).await;
    assert_eq!(refusal_code(client.send(&request("r1", "01", CaAction::Release)).await), (409, "not_on_hold".into()));
    client.send(&request("h1", "01", CaAction::Hold)).await.unwrap();
    client.send(&request("v1", "01", CaAction::Revoke)).await.unwrap();
    assert_eq!(refusal_code(client.send(&request("h2", "01", CaAction::Hold)).await), (409, "already_revoked".into()));
    assert_eq!(
        refusal_code(client.send(&request("r2", "01", CaAction::Release)).await),
        (409, "already_revoked".into())
    );
    let unknown = RevocationRequest { issuer: "nobody".into(), ..request("u1", "01", CaAction::Hold) };
    assert_eq!(refusal_code(client.send(&unknown).await), (404, "unknown_issuer".into()));
    let mismatched =
        RevocationRequest { reason: RevocationReason::KeyCompromise, ..request("m1", "02", CaAction::Hold) };
    assert_eq!(refusal_code(client.send(&mismatched).await), (422, "reason_mismatch".into()));
    assert_eq!(refusal_code(client.send(&request("s1", "xyz", CaAction::Hold)).await), (422, "invalid_serial".into()));
    let stats = control.stats().await.unwrap();
    assert_eq!(stats.refused, 6);
    assert_eq!(stats.applied.len(), 2, "refusals apply nothing");
}

#[tokio::test]
async fn a_restarted_ca_remembers_its_events_keys_and_crl_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, task) = serve(dir.path(), Faults::default()).await;
    let first = client.send(&request("e1", "0a0b", CaAction::Hold)).await.unwrap();
    let number_before = crl_number(&client).await;
    let pem_before = client.issuer_pem("jpki-auth").await.unwrap();
    task.abort();

    let (client, _, _task) = serve(dir.path(), Faults::default()).await;
    assert_eq!(client.issuer_pem("jpki-auth").await.unwrap(), pem_before, "same issuing key");
    let replay = client.send(&request("e1", "0a0b", CaAction::Hold)).await.unwrap();
    assert!(replay.replay);
    assert_eq!(replay.applied_at, first.applied_at);
    client.send(&request("e2", "0a0c", CaAction::Hold)).await.unwrap();
    assert!(crl_number(&client).await > number_before, "CRL numbers keep increasing across restarts");
}

#[tokio::test]
async fn a_hanging_ca_is_reported_as_unavailable_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (client, control, _task) = serve(dir.path(), Faults { timeout_rate: 1.0, ..Faults::default() }).await;
    match client.send(&request("t1", "01", CaAction::Hold)).await {
        Err(e @ SendError::Unavailable(_)) => assert!(!e.is_permanent() && e.to_string().contains("timed out"), "{e}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(control.stats().await.unwrap().applied.is_empty(), "a hang applies nothing");
}

#[tokio::test]
async fn faults_out_of_range_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, control, _task) = serve(dir.path(), Faults::default()).await;
    let bad = control.set_faults(&Faults { error_rate: 1.5, ..Faults::default() }).await;
    let refused = bad.unwrap_err().to_string();
    assert!(refused.contains("422"), "{refused}");
}
