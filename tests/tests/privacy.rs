//! Invariant 5: after every kind of request, no table holds an Individual
//! Number in clear, in any column.

use hotline_testkit::{Backend, TestApp, both_backends};
use serde_json::json;
use sqlx::Row;

async fn no_table_holds_an_individual_number(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Accepted, replayed, already suspended, refused and invalid requests, and a release.
    let (_, created) = app.suspend("k1", &TestApp::report(app.card_holder(0), "card")).await;
    app.suspend("k1", &TestApp::report(app.card_holder(0), "card")).await;
    app.suspend("k2", &TestApp::report(app.card_holder(0), "notification_card")).await;
    app.suspend("k3", &TestApp::report(app.phone_holder(0), "smartphone")).await;
    let mut bad = TestApp::report(app.card_holder(1), "card");
    bad["holder"]["date_of_birth"] = json!("1901-01-01");
    app.suspend("k4", &bad).await;
    // Identifications, found and not, as the console makes them.
    for (holder, date) in [(app.phone_holder(1), None), (app.card_holder(2), Some("1901-01-01"))] {
        let mut body = TestApp::report(holder, "card");
        body.as_object_mut().unwrap().retain(|k, _| k == "call_id" || k == "holder");
        if let Some(date) = date {
            body["holder"]["date_of_birth"] = json!(date);
        }
        app.post("/v1/holders/identify", &app.operator, None, &body).await;
    }
    let id = created["id"].as_str().unwrap();
    app.post(&format!("/v1/suspensions/{id}/release"), &app.clerk, Some("r1"), &json!({"verified_with": "passport"}))
        .await;

    let numbers: Vec<String> = app.holders.iter().map(|h| h.individual_number.expose_digits()).collect();
    let mut cells = 0;
    for table in hotline_store::TABLES {
        let rows = sqlx::query(&format!("SELECT * FROM {table}")).fetch_all(app.store.pool()).await.unwrap();
        for row in rows {
            for i in 0..row.len() {
                let text = row
                    .try_get::<String, _>(i)
                    .ok()
                    .or_else(|| row.try_get::<i64, _>(i).ok().map(|n| n.to_string()))
                    .unwrap_or_default();
                cells += 1;
                for n in &numbers {
                    assert!(!text.contains(n.as_str()), "table {table} column {i} holds an Individual Number");
                }
            }
        }
    }
    assert!(cells > 500, "the scan must have read the tables ({cells} cells)");
}

both_backends!(no_table_holds_an_individual_number);
