//! A seeded store without an API in front: for the store's contract suite and
//! the cache's tests. Holders with a smartphone come first, so tests can take
//! them by index.

use hotline_core::{CallId, Cause, Item, Language, Mode, PiiKey, Role};
use hotline_store::synthetic::{Generator, SampleHolder};
use hotline_store::{Backend, IdempotencyClaim, NewSuspension, SavedResponse, Store, SuspendOutcome, SuspensionView};
use rand::SeedableRng;

use crate::{TestDb, day_instant};

pub struct Registry {
    pub store: Store,
    pub key: PiiKey,
    pub holders: Vec<SampleHolder>,
    /// Token ids (not secrets): the store records who acted by id.
    pub operator: String,
    pub clerk: String,
    pub db: TestDb,
    /// Seals for the tests, as a serving process's sealer would.
    sealer: hotline_store::Sealer,
}

/// Saves the suspension's reference as the answer, so a replay can be compared.
pub fn render_reference(outcome: &SuspendOutcome) -> anyhow::Result<SavedResponse> {
    let (code, view) = match outcome {
        SuspendOutcome::Created(v) => (201, v),
        SuspendOutcome::AlreadySuspended(v) => (200, v),
        other => anyhow::bail!("unexpected {other:?}"),
    };
    Ok(SavedResponse { status_code: code, body: view.reference.clone() })
}

impl Registry {
    pub async fn new(backend: Backend, holders: usize) -> Registry {
        let db = TestDb::new(backend).await;
        let store = db.store().await;
        let key = PiiKey::from_bytes(vec![3; 32]).unwrap();
        let mut generator = Generator::new(rand::rngs::StdRng::seed_from_u64(11));
        let mut holders: Vec<SampleHolder> = (0..holders).map(|_| generator.holder()).collect();
        holders.sort_by_key(|h| h.smartphones.is_empty());
        let rows: Vec<_> = holders.iter().map(|h| h.to_new_holder(&key)).collect();
        assert_eq!(store.insert_holders(&rows, day_instant()).await.unwrap(), holders.len());
        let operator = store.create_token(Role::Operator, "op").await.unwrap().0.id;
        let clerk = store.create_token(Role::Clerk, "clerk").await.unwrap().0.id;
        let sealer = hotline_store::Sealer::new(store.clone(), std::time::Duration::from_secs(5));
        Registry { store, key, holders, operator, clerk, db, sealer }
    }

    /// Seals every record and change committed so far (as the service's sealer would); how many changes.
    pub async fn seal(&self) -> u64 {
        self.sealer.seal_all().await.unwrap()
    }

    /// A daytime report of `item` for holder `holder`, under Idempotency-Key `key`.
    pub fn report(&self, holder: usize, item: Item, key: &str) -> NewSuspension {
        let h = &self.holders[holder];
        NewSuspension {
            holder: h.individual_number.fingerprint(&self.key),
            date_of_birth: h.date_of_birth,
            item,
            cause: Cause::Theft,
            language: Language::Ja,
            call_id: CallId::parse("call-7").unwrap(),
            device_id: (item == Item::Smartphone).then(|| h.smartphones[0].device_id.clone()),
            police_report_number: None,
            operator_token_id: self.operator.clone(),
            decided_at: day_instant(),
            rules_version: "jpki-2023-05".into(),
            mode: Mode::Day,
            idempotency: IdempotencyClaim {
                token_id: self.operator.clone(),
                key: key.into(),
                request_fingerprint: format!("fp-{holder}-{item}"),
            },
        }
    }

    /// Releases a suspension at the counter; returns the released suspension.
    pub async fn release(&self, suspension_id: &str) -> SuspensionView {
        let release = hotline_store::Release {
            suspension_id: suspension_id.to_owned(),
            clerk_token_id: self.clerk.clone(),
            verified_with: Some("residence card".into()),
            documents_checked: vec![hotline_core::IdentityDocument::ResidenceCard],
            note: None,
            at: day_instant() + chrono::Duration::hours(1),
            idempotency: IdempotencyClaim {
                token_id: self.clerk.clone(),
                key: format!("release-{suspension_id}"),
                request_fingerprint: format!("fp-release-{suspension_id}"),
            },
        };
        match self.store.release(&release, |_| Ok(SavedResponse { status_code: 200, body: "{}".into() })).await.unwrap()
        {
            hotline_store::ReleaseOutcome::Released(view) => view,
            other => panic!("release of {suspension_id}: {other:?}"),
        }
    }

    /// Suspends holder `i`'s card; returns the suspension.
    pub async fn suspend_card(&self, i: usize) -> SuspensionView {
        match self.store.suspend(&self.report(i, Item::Card, &format!("card-{i}")), render_reference).await.unwrap() {
            SuspendOutcome::Created(view) => view,
            other => panic!("holder {i}: {other:?}"),
        }
    }
}
