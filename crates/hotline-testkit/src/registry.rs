//! A seeded store without an API in front: for the cache's and the worker's tests.

use hotline_core::{CallId, Cause, Item, Language, Mode, PiiKey, Role};
use hotline_store::synthetic::{Generator, SampleHolder};
use hotline_store::{Backend, IdempotencyClaim, NewSuspension, SavedResponse, Store, SuspendOutcome, SuspensionView};
use rand::SeedableRng;

use crate::{TestDb, day_instant};

pub struct Registry {
    pub store: Store,
    pub key: PiiKey,
    pub holders: Vec<SampleHolder>,
    pub operator: String,
    pub db: TestDb,
}

impl Registry {
    pub async fn new(backend: Backend, holders: usize) -> Registry {
        let db = TestDb::new(backend).await;
        let store = db.store().await;
        let key = PiiKey::from_bytes(vec![3; 32]).unwrap();
        let mut generator = Generator::new(rand::rngs::StdRng::seed_from_u64(11));
        let holders: Vec<SampleHolder> = (0..holders).map(|_| generator.holder()).collect();
        let rows: Vec<_> = holders.iter().map(|h| h.to_new_holder(&key)).collect();
        store.insert_holders(&rows, day_instant()).await.unwrap();
        let operator = store.create_token(Role::Operator, "op").await.unwrap().0.id;
        Registry { store, key, holders, operator, db }
    }

    /// Suspends holder `i`'s card; returns the suspension.
    pub async fn suspend_card(&self, i: usize) -> SuspensionView {
        let h = &self.holders[i];
        let new = NewSuspension {
            holder: h.individual_number.fingerprint(&self.key),
            date_of_birth: h.date_of_birth,
            item: Item::Card,
            cause: Cause::Loss,
            language: Language::Ja,
            call_id: CallId::parse("c").unwrap(),
            device_id: None,
            police_report_number: None,
            operator_token_id: self.operator.clone(),
            decided_at: day_instant(),
            rules_version: "jpki-2023-05".into(),
            mode: Mode::Day,
            idempotency: IdempotencyClaim {
                token_id: self.operator.clone(),
                key: format!("card-{i}"),
                request_fingerprint: format!("card-{i}"),
            },
        };
        let render = |_: &SuspendOutcome| Ok(SavedResponse { status_code: 201, body: String::new() });
        match self.store.suspend(&new, render).await.unwrap() {
            SuspendOutcome::Created(view) => view,
            other => panic!("holder {i}: {other:?}"),
        }
    }
}
