//! The store's contract: the same behaviour on PostgreSQL and SQLite, proven
//! by running every test here against both.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use chrono::{Duration, NaiveDate};
use hotline_core::{CertificateStatus, DeviceId, IssuerId, Item, Role, Serial};
use hotline_store::{
    Backend, IdempotencyClaim, NewSuspension, Release, ReleaseOutcome, SavedResponse, Store, SuspendOutcome,
};
use hotline_testkit::{Registry, both_backends, day_instant, render_reference};

/// The seeded registry of the test kit: every test here runs on it.
struct Fixture(Registry);

impl std::ops::Deref for Fixture {
    type Target = Registry;

    fn deref(&self) -> &Registry {
        &self.0
    }
}

async fn fixture(backend: Backend) -> Fixture {
    let registry = Registry::new(backend, 12).await;
    assert!(!registry.holders[0].smartphones.is_empty());
    Fixture(registry)
}

impl Fixture {
    async fn suspend(&self, new: &NewSuspension) -> SuspendOutcome {
        self.store.suspend(new, render_reference).await.unwrap()
    }

    async fn count(&self, table: &str) -> i64 {
        self.store.table_counts().await.unwrap().into_iter().find(|(t, _)| *t == table).unwrap().1
    }

    async fn status(&self, issuer: &str, serial: &Serial) -> CertificateStatus {
        let key = (IssuerId::parse(issuer).unwrap(), serial.clone());
        let found = self.store.certificate_statuses(&[key]).await.unwrap();
        found[0].as_ref().map(|r| r.status).unwrap_or_else(|| panic!("{issuer}/{serial} is not listed"))
    }

    fn release(&self, suspension_id: &str, key: &str) -> Release {
        Release {
            suspension_id: suspension_id.into(),
            clerk_token_id: self.clerk.clone(),
            verified_with: None,
            documents_checked: vec![hotline_core::IdentityDocument::Passport],
            note: None,
            at: day_instant() + Duration::days(2),
            idempotency: IdempotencyClaim {
                token_id: self.clerk.clone(),
                key: key.into(),
                request_fingerprint: "rel".into(),
            },
        }
    }
}

async fn a_suspension_commits_everything_together(backend: Backend) {
    let f = fixture(backend).await;
    let before = f.store.table_counts().await.unwrap();
    let SuspendOutcome::Created(view) = f.suspend(&f.report(5, Item::Card, "k1")).await else { panic!() };
    assert_eq!(view.certificates.len(), 2);
    assert!(view.certificates.iter().all(|c| c.status == CertificateStatus::Suspended));
    let after = f.store.table_counts().await.unwrap();
    let delta =
        |t: &str| after.iter().find(|(n, _)| *n == t).unwrap().1 - before.iter().find(|(n, _)| *n == t).unwrap().1;
    assert_eq!(
        (
            delta("suspensions"),
            delta("suspension_certificates"),
            delta("outbox"),
            delta("audit_pending"),
            delta("status_changes_pending"),
            delta("idempotency")
        ),
        (1, 2, 2, 1, 2, 1),
        "the audit record and the stream's changes commit with the suspension, to be sealed after"
    );
    for c in &f.holders[5].card {
        assert_eq!(f.status(&c.issuer, &c.serial).await, CertificateStatus::Suspended);
    }
    // The smartphone's certificates are untouched by a card report.
    for c in &f.holders[0].smartphones[0].certificates {
        assert_eq!(f.status(&c.issuer, &c.serial).await, CertificateStatus::Good);
    }
}

async fn a_smartphone_report_holds_only_that_phone(backend: Backend) {
    let f = fixture(backend).await;
    let SuspendOutcome::Created(view) = f.suspend(&f.report(0, Item::Smartphone, "k1")).await else { panic!() };
    assert_eq!(view.certificates.len(), 2);
    for c in &f.holders[0].smartphones[0].certificates {
        assert_eq!(f.status(&c.issuer, &c.serial).await, CertificateStatus::Suspended);
    }
    for c in &f.holders[0].card {
        assert_eq!(f.status(&c.issuer, &c.serial).await, CertificateStatus::Good);
    }
    let mut wrong_device = f.report(0, Item::Smartphone, "k2");
    wrong_device.device_id = Some(DeviceId::parse("android-unknown").unwrap());
    assert_eq!(f.suspend(&wrong_device).await, SuspendOutcome::DeviceNotFound);
}

async fn an_unknown_holder_stores_nothing(backend: Backend) {
    let f = fixture(backend).await;
    let before = f.store.table_counts().await.unwrap();
    let mut wrong_birth = f.report(5, Item::Card, "k1");
    wrong_birth.date_of_birth = NaiveDate::from_ymd_opt(1901, 1, 1).unwrap();
    assert_eq!(f.suspend(&wrong_birth).await, SuspendOutcome::HolderNotFound);
    let mut other_number = f.report(5, Item::Card, "k1");
    other_number.holder = f.holders[6].individual_number.fingerprint(&f.key);
    assert_eq!(f.suspend(&other_number).await, SuspendOutcome::HolderNotFound);
    assert_eq!(f.store.table_counts().await.unwrap(), before);
}

async fn a_retry_gets_the_first_answer_and_a_reused_key_is_refused(backend: Backend) {
    let f = fixture(backend).await;
    let SuspendOutcome::Created(first) = f.suspend(&f.report(5, Item::Card, "k1")).await else { panic!() };
    let outbox = f.count("outbox").await;
    assert_eq!(
        f.suspend(&f.report(5, Item::Card, "k1")).await,
        SuspendOutcome::Replay(SavedResponse { status_code: 201, body: first.reference.clone() })
    );
    let mut different = f.report(6, Item::Card, "k1");
    different.idempotency.request_fingerprint = "something else".into();
    assert_eq!(f.suspend(&different).await, SuspendOutcome::KeyReused);
    assert_eq!(f.count("outbox").await, outbox);
    assert_eq!(f.count("suspensions").await, 1);
}

async fn sixteen_concurrent_identical_requests_make_one_suspension(backend: Backend) {
    let f = fixture(backend).await;
    let new = f.report(5, Item::Card, "same-key");
    let outcomes = futures::future::join_all((0..16).map(|_| f.store.suspend(&new, render_reference))).await;
    let outcomes: Vec<SuspendOutcome> = outcomes.into_iter().map(Result::unwrap).collect();
    let created = outcomes.iter().filter(|o| matches!(o, SuspendOutcome::Created(_))).count();
    let replays = outcomes.iter().filter(|o| matches!(o, SuspendOutcome::Replay(s) if s.status_code == 201)).count();
    assert_eq!((created, replays), (1, 15), "{outcomes:?}");
    assert_eq!(f.count("suspensions").await, 1);
    assert_eq!(f.count("outbox").await, 2);
    assert_eq!(f.count("audit_pending").await, 1);
}

async fn concurrent_reports_of_one_card_under_different_keys_hold_it_once(backend: Backend) {
    let f = fixture(backend).await;
    let reports: Vec<NewSuspension> = (0..8).map(|i| f.report(5, Item::Card, &format!("key-{i}"))).collect();
    let outcomes = futures::future::join_all(reports.iter().map(|r| f.store.suspend(r, render_reference))).await;
    let outcomes: Vec<SuspendOutcome> = outcomes.into_iter().map(Result::unwrap).collect();
    let created: Vec<_> =
        outcomes.iter().filter_map(|o| if let SuspendOutcome::Created(v) = o { Some(v) } else { None }).collect();
    assert_eq!(created.len(), 1, "{outcomes:?}");
    for o in &outcomes {
        if let SuspendOutcome::AlreadySuspended(v) = o {
            assert_eq!(v.id, created[0].id);
        } else {
            assert!(matches!(o, SuspendOutcome::Created(_)), "{o:?}");
        }
    }
    assert_eq!(f.count("outbox").await, 2);
}

async fn a_second_report_of_held_certificates_names_the_first_and_adds_no_events(backend: Backend) {
    let f = fixture(backend).await;
    let SuspendOutcome::Created(first) = f.suspend(&f.report(5, Item::Card, "k1")).await else { panic!() };
    let outbox = f.count("outbox").await;
    let audit = f.count("audit_log").await;
    // A lost Notification Card suspends the same card: already held.
    let SuspendOutcome::AlreadySuspended(again) = f.suspend(&f.report(5, Item::NotificationCard, "k2")).await else {
        panic!()
    };
    assert_eq!(again.reference, first.reference);
    assert_eq!((f.count("outbox").await, f.count("audit_log").await), (outbox, audit));
    // ...and its answer is replayed too.
    assert!(
        matches!(f.suspend(&f.report(5, Item::NotificationCard, "k2")).await, SuspendOutcome::Replay(s) if s.status_code == 200)
    );
}

async fn a_release_resumes_identification_and_revokes_signature(backend: Backend) {
    let f = fixture(backend).await;
    let SuspendOutcome::Created(s) = f.suspend(&f.report(5, Item::Card, "k1")).await else { panic!() };
    let outbox = f.count("outbox").await;
    let ReleaseOutcome::Released(view) = f
        .store
        .release(&f.release(&s.id, "r1"), |_| Ok(SavedResponse { status_code: 200, body: "ok".into() }))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(view.state, hotline_core::SuspensionState::Released);
    assert_eq!(view.documents_checked, vec![hotline_core::IdentityDocument::Passport], "stored with the release");
    let reread = f.store.suspension_by_reference(&view.reference).await.unwrap().unwrap();
    assert_eq!(reread.documents_checked, view.documents_checked);
    for c in &f.holders[5].card {
        let expected = match c.kind {
            hotline_core::CertificateKind::Signature => CertificateStatus::Revoked,
            hotline_core::CertificateKind::UserIdentification => CertificateStatus::Good,
        };
        assert_eq!(f.status(&c.issuer, &c.serial).await, expected, "{:?}", c.kind);
    }
    assert_eq!(f.count("outbox").await, outbox + 2);
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM outbox ORDER BY seq").fetch_all(f.store.pool()).await.unwrap();
    assert_eq!(actions[2..].iter().map(String::as_str).collect::<Vec<_>>(), ["revoke", "release"]);
    // A second release under another key changes nothing.
    assert!(matches!(
        f.store.release(&f.release(&s.id, "r2"), |_| anyhow::bail!("not rendered")).await.unwrap(),
        ReleaseOutcome::AlreadyReleased(_)
    ));
    assert_eq!(
        f.store.release(&f.release("no-such-id", "r3"), |_| anyhow::bail!("not rendered")).await.unwrap(),
        ReleaseOutcome::NotFound
    );
    assert_eq!(f.count("outbox").await, outbox + 2);
    // After a release the card can be suspended again; the revoked signature certificate stays revoked.
    let SuspendOutcome::Created(again) = f.suspend(&f.report(5, Item::Card, "k3")).await else { panic!() };
    assert_eq!(again.certificates.len(), 1);
    assert_eq!(again.certificates[0].kind, hotline_core::CertificateKind::UserIdentification);
}

async fn status_follows_crl_semantics(backend: Backend) {
    let f = fixture(backend).await;
    let issuers: Vec<String> = f.store.issuers().await.unwrap().iter().map(|i| i.to_string()).collect();
    assert_eq!(issuers, ["jpki-auth", "jpki-sign"], "the issuers a validator may ask about");
    let unlisted = (IssuerId::parse("jpki-auth").unwrap(), Serial::parse("00ff").unwrap());
    let listed = &f.holders[3].card[1];
    let listed_key = (IssuerId::parse(&listed.issuer).unwrap(), listed.serial.clone());
    let found = f.store.certificate_statuses(&[unlisted, listed_key]).await.unwrap();
    assert_eq!(found[0], None, "a serial the registry does not list has no record: good, as on a CRL");
    assert_eq!(found[1].as_ref().map(|r| r.status), Some(CertificateStatus::Good));
}

async fn tokens_are_stored_as_hashes(backend: Backend) {
    let f = fixture(backend).await;
    let (record, secret) = f.store.create_token(Role::Validator, "v").await.unwrap();
    assert_eq!(f.store.find_token(&secret).await.unwrap(), Some(record));
    assert_eq!(f.store.find_token("hl_not-a-token").await.unwrap(), None);
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT token_hash FROM api_tokens").fetch_all(f.store.pool()).await.unwrap();
    assert!(!stored.contains(&secret));
    assert!(stored.contains(&hotline_store::hash_secret(&secret)));
}

async fn registering_a_known_holder_again_adds_nothing(backend: Backend) {
    let f = fixture(backend).await;
    let rows: Vec<_> = f.holders.iter().take(3).map(|h| h.to_new_holder(&f.key)).collect();
    let certs = f.count("certificates").await;
    assert_eq!(f.store.insert_holders(&rows, day_instant()).await.unwrap(), 0);
    assert_eq!(f.count("certificates").await, certs);
    assert_eq!(f.store.migrate().await.unwrap(), 0, "migrations are applied once");
}

/// Runs SQL as someone with the database owner's rights would, bypassing the append-only guard.
async fn tamper(store: &Store, sql: &str) {
    // Like the service, take SQLite's write lock up front so a busy database is waited for.
    let begin = if store.backend() == Backend::Sqlite { "BEGIN IMMEDIATE" } else { "BEGIN" };
    let mut tx = store.pool().begin_with(begin).await.unwrap();
    match store.backend() {
        Backend::Postgres => {
            sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only").execute(&mut *tx).await.unwrap();
            sqlx::query(sql).execute(&mut *tx).await.unwrap();
            sqlx::query("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only").execute(&mut *tx).await.unwrap();
        }
        Backend::Sqlite => {
            sqlx::raw_sql("DROP TRIGGER IF EXISTS audit_log_no_update; DROP TRIGGER IF EXISTS audit_log_no_delete;")
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query(sql).execute(&mut *tx).await.unwrap();
        }
    }
    tx.commit().await.unwrap();
}

async fn three_audited_suspensions(backend: Backend) -> Fixture {
    let f = fixture(backend).await;
    for (i, holder) in [5, 6, 7].into_iter().enumerate() {
        assert!(matches!(f.suspend(&f.report(holder, Item::Card, &format!("k{i}"))).await, SuspendOutcome::Created(_)));
    }
    let report = f.store.verify_audit().await.unwrap();
    assert_eq!((report.records, report.unsealed), (0, 3), "committed, not chained yet");
    f.seal().await;
    let report = f.store.verify_audit().await.unwrap();
    assert_eq!((report.records, report.first_break, report.unsealed), (3, None, 0));
    f
}

async fn the_audit_log_refuses_edits(backend: Backend) {
    let f = three_audited_suspensions(backend).await;
    assert!(sqlx::query("UPDATE audit_log SET actor = 'x' WHERE seq = 1").execute(f.store.pool()).await.is_err());
    assert!(sqlx::query("DELETE FROM audit_log WHERE seq = 1").execute(f.store.pool()).await.is_err());
    assert_eq!(f.store.verify_audit().await.unwrap().first_break, None);
}

async fn audit_verification_finds_an_edited_record(backend: Backend) {
    let f = three_audited_suspensions(backend).await;
    tamper(&f.store, "UPDATE audit_log SET details = replace(details, 'theft', 'loss') WHERE seq = 2").await;
    let broken = f.store.verify_audit().await.unwrap().first_break.unwrap();
    assert_eq!(broken.seq, 2);
    assert!(broken.problem.contains("altered"), "{broken:?}");
}

async fn audit_verification_finds_a_deleted_record(backend: Backend) {
    let f = three_audited_suspensions(backend).await;
    tamper(&f.store, "DELETE FROM audit_log WHERE seq = 2").await;
    let broken = f.store.verify_audit().await.unwrap().first_break.unwrap();
    assert_eq!(broken.seq, 2);
    assert!(broken.problem.contains("missing"), "{broken:?}");
}

async fn audit_verification_finds_a_removed_last_record(backend: Backend) {
    let f = three_audited_suspensions(backend).await;
    tamper(&f.store, "DELETE FROM audit_log WHERE seq = 3").await;
    let report = f.store.verify_audit().await.unwrap();
    assert_eq!(report.first_break.unwrap().seq, 3);
}

async fn status_changes_form_a_gap_free_ordered_stream(backend: Backend) {
    let f = fixture(backend).await;
    let reports: Vec<NewSuspension> = (4..10).map(|h| f.report(h, Item::Card, &format!("k{h}"))).collect();
    let outcomes = futures::future::join_all(reports.iter().map(|r| f.store.suspend(r, render_reference))).await;
    let first = outcomes.into_iter().map(Result::unwrap).find_map(|o| match o {
        SuspendOutcome::Created(v) => Some(v),
        _ => None,
    });
    let released = first.unwrap();
    let ok = |_: &_| Ok(SavedResponse { status_code: 200, body: String::new() });
    assert!(matches!(f.store.release(&f.release(&released.id, "r"), ok).await.unwrap(), ReleaseOutcome::Released(_)));
    assert!(f.store.status_changes_after(0, 1000).await.unwrap().changes.is_empty(), "nothing sealed yet");
    assert_eq!(f.seal().await, 14);
    let window = f.store.status_changes_after(0, 1000).await.unwrap();
    let positions: Vec<i64> = window.changes.iter().map(|c| c.position).collect();
    assert_eq!(positions, (1..=14).collect::<Vec<_>>(), "six card suspensions and one release: 14 changes, no gaps");
    assert_eq!((window.to, window.complete_as_of.is_some()), (14, true));
    assert_eq!(f.store.status_head().await.unwrap(), 14);
    assert_eq!(f.store.status_changes_after(12, 1000).await.unwrap().changes.len(), 2);
    let partial = f.store.status_changes_after(0, 5).await.unwrap();
    assert_eq!((partial.changes.len(), partial.to, partial.complete_as_of), (5, 5, None));
    // Each changed certificate is read as it is now, whichever of its changes names it.
    for c in &window.changes {
        assert_eq!(f.status(c.issuer.as_str(), &c.serial).await, c.record.status);
    }
}

async fn the_snapshot_lists_every_certificate_not_good_at_one_position(backend: Backend) {
    let f = fixture(backend).await;
    for h in [4, 5, 6] {
        assert!(matches!(f.suspend(&f.report(h, Item::Card, &format!("k{h}"))).await, SuspendOutcome::Created(_)));
    }
    f.seal().await;
    let (pages, mut received) = tokio::sync::mpsc::channel(16);
    let position = f.store.status_snapshot(4, pages).await.unwrap();
    let mut seen = Vec::new();
    while let Some(page) = received.recv().await {
        assert!(page.len() <= 4);
        seen.extend(page);
    }
    assert_eq!(position, 6);
    assert_eq!(seen.len(), 6);
    assert!(seen.iter().all(|c| c.position == 6 && c.record.status == CertificateStatus::Suspended));
    let mut keys: Vec<_> = seen.iter().map(|c| (c.issuer.clone(), c.serial.clone())).collect();
    let sorted = {
        let mut k = keys.clone();
        k.sort();
        k
    };
    assert_eq!(keys, sorted, "pages come in key order");
    keys.dedup();
    assert_eq!(keys.len(), 6);
}

async fn a_snapshot_page_seeks_to_its_key_instead_of_filtering(backend: Backend) {
    let f = fixture(backend).await;
    let plan = f.store.plan_of(hotline_store::ScaledQuery::SnapshotPage).await.unwrap().join("\n");
    match backend {
        Backend::Postgres => {
            assert!(
                plan.contains("Index Only Scan using certificates_not_good"),
                "the partial index alone answers, no table row read per entry: {plan}"
            );
            assert!(
                plan.contains("Index Cond: (ROW(issuer, serial) > ROW("),
                "the page's key starts the index scan: {plan}"
            );
            assert!(!plan.contains("Filter: ((issuer >"), "no page is found by filtering: {plan}");
        }
        Backend::Sqlite => {
            assert!(
                plan.contains("SEARCH certificates USING COVERING INDEX certificates_not_good ((issuer,serial)>(?,?))"),
                "the page's key starts the search of the index, which alone answers: {plan}"
            );
        }
    }
}

async fn an_issuers_certificates_not_good_come_in_pages_that_end_at_the_issuer(backend: Backend) {
    let f = fixture(backend).await;
    for h in 3..8 {
        assert!(matches!(f.suspend(&f.report(h, Item::Card, &format!("k{h}"))).await, SuspendOutcome::Created(_)));
    }
    for issuer in ["jpki-auth", "jpki-sign"] {
        let (mut serials, mut after, mut pages) = (Vec::new(), String::new(), 0);
        loop {
            let page = f.store.certificates_not_good_page(issuer, &after, 2).await.unwrap();
            pages += 1;
            assert!(page.iter().all(|c| c.status == CertificateStatus::Suspended), "{page:?}");
            serials.extend(page.iter().map(|c| c.serial.clone()));
            match page.last() {
                Some(last) if page.len() == 2 => after.clone_from(&last.serial),
                _ => break,
            }
        }
        assert_eq!(pages, 3, "{issuer}: pages of 2, 2 and 1, the last ending where the issuer does");
        let mut expected: Vec<String> = (3..8)
            .flat_map(|h| f.holders[h].card.iter())
            .filter(|c| c.issuer == issuer)
            .map(|c| c.serial.as_str().to_owned())
            .collect();
        expected.sort();
        assert_eq!(serials, expected, "{issuer}: each certificate once, in key order");
    }
}

/// A follower's window reads the stream from its position by the stream's
/// key, and each changed certificate by the certificates' (issuer, serial)
/// key: never the stream's history, never the registry.
async fn a_stream_window_reads_from_its_position_and_each_certificate_by_its_key(backend: Backend) {
    let f = fixture(backend).await;
    let plan = f.store.plan_of(hotline_store::ScaledQuery::StreamWindow).await.unwrap().join("\n");
    match backend {
        Backend::Postgres => {
            assert!(plan.contains("Index Scan using status_changes_pkey on status_changes"), "{plan}");
            assert!(plan.contains(r#"Index Cond: (("position" > "#), "from the follower's position: {plan}");
            assert!(
                plan.contains("using certificates_issuer_serial_key on certificates c")
                    && plan.contains(
                        "Index Cond: ((issuer = status_changes.issuer) AND (serial = status_changes.serial))"
                    ),
                "each certificate by its key (the two sides compare alike): {plan}"
            );
            assert!(!plan.contains("Seq Scan"), "{plan}");
        }
        Backend::Sqlite => {
            assert!(plan.contains("SEARCH status_changes USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"), "{plan}");
            assert!(
                plan.contains("SEARCH c USING INDEX sqlite_autoindex_certificates_1 (issuer=? AND serial=?)"),
                "{plan}"
            );
        }
    }
}

/// The outbox keeps every event it delivered; at national scale that is
/// tens of millions of rows against a backlog of a few. What the worker and
/// on-call ask every few seconds must be read from the indexes of the
/// pending, dead or recently done events, in the order wanted: a plan that
/// sorts every due event, filters on the state or scans the table grows with
/// the history (a claim walked two million done rows, a second per claim).
async fn outbox_queries_read_the_backlog_never_the_history(backend: Backend) {
    use hotline_store::ScaledQuery;
    let f = fixture(backend).await;
    let mut plans = Vec::new();
    for query in [ScaledQuery::OutboxClaim, ScaledQuery::OutboxBacklog, ScaledQuery::DeadLetters, ScaledQuery::InFlight]
    {
        plans.push(f.store.plan_of(query).await.unwrap().join("\n"));
    }
    let [claim, backlog, dead, in_flight] = &plans[..] else { unreachable!() };
    match backend {
        Backend::Postgres => {
            assert!(claim.contains("Index Scan using outbox_due on outbox o"), "claims read the due index: {claim}");
            assert!(claim.contains("Index Cond: (next_attempt_at <= "), "from its start to now: {claim}");
            assert!(!claim.contains("Sort"), "in the order they are taken, so a claim stops at its batch: {claim}");
            assert!(
                claim.contains("Index Cond: ((certificate_id = o.certificate_id) AND (seq < o.seq))"),
                "each event's certificate asked by its key, not the events scanned per event: {claim}"
            );
            assert_eq!(backlog.matches("Index Only Scan using outbox_due").count(), 2, "{backlog}");
            assert!(backlog.contains("Index Only Scan using outbox_dead"), "{backlog}");
            assert!(dead.contains("Index Scan Backward using outbox_dead") && !dead.contains("Sort"), "{dead}");
            for index in ["outbox_due", "outbox_dead", "outbox_done_at"] {
                assert!(in_flight.contains(&format!("using {index} on outbox")), "{in_flight}");
            }
            assert!(in_flight.contains("Index Cond: (done_at >= "), "recent deliveries found by time: {in_flight}");
            for plan in [claim, backlog, dead, in_flight] {
                assert!(!plan.contains("Seq Scan on outbox"), "{plan}");
                assert!(!plan.contains("using outbox_pkey on outbox o "), "no walk of every event in order: {plan}");
            }
            for plan in [backlog, dead, in_flight] {
                assert!(!plan.contains("Filter: (state") && !plan.contains("Filter: ((state"), "{plan}");
            }
        }
        Backend::Sqlite => {
            assert!(claim.contains("SEARCH o USING INDEX outbox_due (next_attempt_at<?)"), "{claim}");
            assert!(
                claim.contains("SEARCH e USING INDEX outbox_by_certificate (certificate_id=? AND seq<?)"),
                "{claim}"
            );
            assert!(backlog.contains("USING COVERING INDEX outbox_due"), "{backlog}");
            assert!(backlog.contains("USING COVERING INDEX outbox_dead"), "{backlog}");
            assert!(dead.contains("SCAN outbox USING INDEX outbox_dead"), "{dead}");
            assert!(in_flight.contains("SEARCH outbox USING INDEX outbox_done_at (done_at>?)"), "{in_flight}");
            for plan in [claim, backlog, dead, in_flight] {
                assert!(!plan.contains("FOR ORDER BY"), "nothing sorted: {plan}");
                for line in plan.lines().filter(|l| l.starts_with("SCAN outbox") || l.starts_with("SCAN o ")) {
                    assert!(line.contains("INDEX outbox_d"), "a whole scan only of the due or dead events: {plan}");
                }
            }
        }
    }
}

both_backends!(
    a_snapshot_page_seeks_to_its_key_instead_of_filtering,
    a_stream_window_reads_from_its_position_and_each_certificate_by_its_key,
    outbox_queries_read_the_backlog_never_the_history,
    an_issuers_certificates_not_good_come_in_pages_that_end_at_the_issuer,
    a_suspension_commits_everything_together,
    a_smartphone_report_holds_only_that_phone,
    an_unknown_holder_stores_nothing,
    a_retry_gets_the_first_answer_and_a_reused_key_is_refused,
    sixteen_concurrent_identical_requests_make_one_suspension,
    concurrent_reports_of_one_card_under_different_keys_hold_it_once,
    a_second_report_of_held_certificates_names_the_first_and_adds_no_events,
    a_release_resumes_identification_and_revokes_signature,
    status_follows_crl_semantics,
    tokens_are_stored_as_hashes,
    registering_a_known_holder_again_adds_nothing,
    the_audit_log_refuses_edits,
    audit_verification_finds_an_edited_record,
    audit_verification_finds_a_deleted_record,
    audit_verification_finds_a_removed_last_record,
    status_changes_form_a_gap_free_ordered_stream,
    the_snapshot_lists_every_certificate_not_good_at_one_position,
);
