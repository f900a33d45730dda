//! The console's API on both databases: identifying a caller
//! (`POST /v1/holders/identify`), console sessions (sign-in, the cookie, the
//! console's header, idle timeout, sign-out on every instance), and releases
//! that name the identity documents checked.

use hotline_testkit::{Backend, TestApp, TestOptions, both_backends};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn identification(app: &TestApp, holder: usize) -> Value {
    let h = &app.holders[holder];
    json!({
        "call_id": "call-identify-1",
        "holder": {
            "individual_number": h.individual_number.expose_digits(),
            "date_of_birth": h.date_of_birth.format("%Y-%m-%d").to_string(),
        },
    })
}

async fn audit_actions(app: &TestApp, action: &str) -> Vec<(String, String, String)> {
    app.wait_sealed().await;
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT actor, subject, details FROM audit_log WHERE action = $1 ORDER BY seq")
            .bind(action)
            .fetch_all(app.store.pool())
            .await
            .unwrap();
    rows
}

async fn an_operator_identifies_a_holder_and_the_look_up_is_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let phone = app.phone_holder(0).clone();
    let body = identification(&app, 0);
    let (status, answer) = app.post("/v1/holders/identify", &app.operator, None, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["found"], true);
    assert_eq!(answer["card"]["status"], "active");
    assert!(answer["card"]["held_by"].is_null());
    let devices: Vec<&str> =
        answer["smartphones"].as_array().unwrap().iter().map(|p| p["device_id"].as_str().unwrap()).collect();
    let expected: Vec<&str> = phone.smartphones.iter().map(|p| p.device_id.as_str()).collect();
    assert_eq!(devices, expected);
    assert!(answer["smartphones"][0]["label"].as_str().unwrap().starts_with('…'));
    let number = phone.individual_number.expose_digits();
    assert!(!answer.to_string().contains(&number), "the number is never echoed");

    // Suspended, the card says by which reference.
    let (_, receipt) = app.suspend("s1", &TestApp::report(&phone, "card")).await;
    let (_, answer) = app.post("/v1/holders/identify", &app.supervisor, None, &body).await;
    assert_eq!(answer["card"]["status"], "suspended");
    assert_eq!(answer["card"]["held_by"], receipt["reference"]);

    // Not found: said plainly, and audited too.
    let mut unknown = body.clone();
    unknown["holder"]["date_of_birth"] = json!("1901-01-01");
    let (status, answer) = app.post("/v1/holders/identify", &app.operator, None, &unknown).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"found": false, "card": null, "smartphones": []})));

    let audited = audit_actions(&app, "holder.identified").await;
    assert_eq!(audited.len(), 3, "each look-up is one audit record");
    assert!(audited[0].1.starts_with("holder:") && audited[2].1 == "holder:not_found", "{audited:?}");
    assert!(audited.iter().all(|(_, _, details)| details.contains("call-identify-1") && !details.contains(&number)));
    assert!(app.store.verify_audit().await.unwrap().first_break.is_none());
}

async fn identification_refusals_store_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let good = identification(&app, 0);
    let before = app.counts().await;
    for token in [&app.clerk, &app.validator] {
        assert_eq!(app.post("/v1/holders/identify", token, None, &good).await.0, StatusCode::FORBIDDEN);
    }
    assert_eq!(app.post("/v1/holders/identify", "nope", None, &good).await.0, StatusCode::UNAUTHORIZED);
    let mut bad_check = good.clone();
    let digits = good["holder"]["individual_number"].as_str().unwrap();
    let last = (digits.as_bytes()[11] - b'0' + 1) % 10;
    bad_check["holder"]["individual_number"] = json!(format!("{}{last}", &digits[..11]));
    let (status, body) = app.post("/v1/holders/identify", &app.operator, None, &bad_check).await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("holder.individual_number"))
    );
    assert!(!body.to_string().contains(&digits[..11]), "the number is not echoed in the refusal: {body}");
    let (status, body) =
        app.post("/v1/holders/identify", &app.operator, None, &json!({"holder": {}, "extra": 1})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["call_id", "holder.individual_number", "holder.date_of_birth", "extra"]);
    let response = app
        .client
        .post(format!("{}/v1/holders/identify", app.base))
        .bearer_auth(&app.operator)
        .header("content-type", "text/plain")
        .body(good.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(app.counts().await, before, "no refusal stores anything, not even an audit record");
}

/// A client that keeps the session cookie, as a browser does, and sends the console's header unless told not to.
struct Console {
    http: reqwest::Client,
    base: String,
    cookie: std::sync::Mutex<Option<String>>,
}

impl Console {
    fn new(app: &TestApp) -> Self {
        Self { http: reqwest::Client::new(), base: app.base.clone(), cookie: std::sync::Mutex::new(None) }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        header: bool,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if header {
            request = request.header("X-Hotline-Console", "1");
        }
        let kept = self.cookie.lock().unwrap().clone();
        if let Some(cookie) = kept {
            request = request.header("cookie", cookie);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let headers = response.headers().clone();
        if let Some(set) = headers.get("set-cookie").and_then(|v| v.to_str().ok()) {
            let pair = set.split(';').next().unwrap().to_owned();
            *self.cookie.lock().unwrap() = (!set.contains("Max-Age=0")).then_some(pair);
        }
        let (status, body) = TestApp::read(response).await;
        (status, body, headers)
    }

    async fn sign_in(&self, token: &str) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        self.send(reqwest::Method::POST, "/console/session", Some(json!({"token": token})), true).await
    }
}

async fn a_console_session_works_across_instances_until_signed_out(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let other = app.instance(TestOptions::default()).await;
    let console = Console::new(&app);
    let (status, who, _) = console.send(reqwest::Method::GET, "/console/session", None, true).await;
    assert_eq!((status, who["signed_in"].as_bool()), (StatusCode::OK, Some(false)));

    let (status, who, headers) = console.sign_in(&app.operator).await;
    assert_eq!(status, StatusCode::OK, "{who}");
    assert_eq!((who["name"].as_str(), who["role"].as_str()), (Some("test-operator"), Some("operator")));
    let cookie = headers.get("set-cookie").unwrap().to_str().unwrap();
    assert!(cookie.starts_with("hotline_session=hs_"), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP, no Secure by default: {cookie}");
    let secret = cookie.split(';').next().unwrap().trim_start_matches("hotline_session=").to_owned();
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM console_sessions WHERE session_hash = $1")
        .bind(&secret)
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    assert_eq!(stored, 0, "the secret itself is never stored");

    // The session identifies on this instance and on the other one.
    let body = identification(&app, 0);
    let (status, _, _) = console.send(reqwest::Method::POST, "/v1/holders/identify", Some(body.clone()), true).await;
    assert_eq!(status, StatusCode::OK);
    let elsewhere = |path: &str| {
        other
            .client
            .post(format!("{}{path}", other.base))
            .header("cookie", format!("hotline_session={secret}"))
            .header("X-Hotline-Console", "1")
    };
    assert_eq!(elsewhere("/v1/holders/identify").json(&body).send().await.unwrap().status(), StatusCode::OK);

    // Without the console's header, a cookie-authenticated change is refused and stores nothing.
    let before = app.counts().await;
    let (status, problem, _) =
        console.send(reqwest::Method::POST, "/v1/holders/identify", Some(body.clone()), false).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::FORBIDDEN, Some("console_header_required")));
    let (status, _, _) = console
        .send(reqwest::Method::POST, "/v1/suspensions", Some(TestApp::report(app.card_holder(0), "card")), false)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(app.counts().await, before);

    // Signing out here ends it on the other instance too.
    let (status, _, headers) = console.send(reqwest::Method::DELETE, "/console/session", None, true).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("set-cookie").unwrap().to_str().unwrap().contains("Max-Age=0"));
    let refused = elsewhere("/v1/holders/identify").json(&body).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(TestApp::read(refused).await.1["code"], "session_ended");
}

async fn an_idle_session_ends_and_validators_get_none(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let console = Console::new(&app);
    assert_eq!(console.sign_in(&app.clerk).await.0, StatusCode::OK);
    let (status, who, _) = console.send(reqwest::Method::GET, "/console/session", None, true).await;
    assert_eq!(
        (status, who["role"].as_str(), who["idle_timeout_s"].as_u64()),
        (StatusCode::OK, Some("clerk"), Some(900))
    );
    // Fourteen minutes idle is fine, and each use moves the idle clock on ...
    app.clock.set(app.clock_now() + chrono::Duration::minutes(14));
    assert_eq!(console.send(reqwest::Method::GET, "/console/session", None, true).await.1["signed_in"], true);
    app.clock.set(app.clock_now() + chrono::Duration::minutes(14));
    assert_eq!(console.send(reqwest::Method::GET, "/v1/rules/now", None, true).await.0, StatusCode::OK);
    // ... sixteen minutes is not.
    app.clock.set(app.clock_now() + chrono::Duration::minutes(16));
    let (status, problem, _) = console.send(reqwest::Method::GET, "/v1/rules/now", None, true).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("session_ended")));
    assert_eq!(console.send(reqwest::Method::GET, "/console/session", None, true).await.1["signed_in"], false);

    let before = app.counts().await;
    let (status, problem, _) = console.sign_in(&app.validator).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::FORBIDDEN, Some("console_not_for_role")));
    assert_eq!(console.sign_in("hl_nope").await.0, StatusCode::UNAUTHORIZED);
    let (status, _, _) =
        console.send(reqwest::Method::POST, "/console/session", Some(json!({"token": app.operator})), false).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a sign-in without the console's header");
    let (status, problem, _) =
        console.send(reqwest::Method::POST, "/console/session", Some(json!({"secret": 1})), true).await;
    assert_eq!((status, problem["errors"].as_array().map(Vec::len)), (StatusCode::UNPROCESSABLE_ENTITY, Some(2)));
    assert_eq!(app.counts().await, before, "refused sign-ins open no session");
}

async fn a_clerk_finds_by_reference_and_releases_naming_the_documents(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, receipt) = app.suspend("s1", &TestApp::report(app.card_holder(0), "card")).await;
    let reference = receipt["reference"].as_str().unwrap();
    let (status, found) = app.get(&format!("/v1/suspensions/{}", reference.to_lowercase()), &app.clerk).await;
    assert_eq!((status, found["id"].clone()), (StatusCode::OK, receipt["id"].clone()));
    let path = format!("/v1/suspensions/{}/release", receipt["id"].as_str().unwrap());
    let before = app.counts().await;
    let (status, body) =
        app.post(&path, &app.clerk, Some("r"), &json!({"documents_checked": ["passport", "diary"]})).await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("documents_checked[1]"))
    );
    let (status, body) =
        app.post(&path, &app.clerk, Some("r"), &json!({"documents_checked": ["passport", "passport"]})).await;
    assert_eq!(
        (status, body["errors"][0]["message"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("is named twice"))
    );
    let (status, _) = app.post(&path, &app.clerk, Some("r"), &json!({"documents_checked": []})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.counts().await, before);
    let request = json!({"documents_checked": ["residence_card", "health_insurance_card"]});
    let (status, released) = app.post(&path, &app.clerk, Some("r"), &request).await;
    assert_eq!(status, StatusCode::OK, "{released}");
    assert_eq!(released["documents_checked"], json!(["residence_card", "health_insurance_card"]));
    assert!(released["verified_with"].is_null());
    let (_, reread) = app.get(&format!("/v1/suspensions/{reference}"), &app.operator).await;
    assert_eq!(reread["documents_checked"], released["documents_checked"]);
    let (status, missing) = app.get("/v1/suspensions/ZZZZ-ZZZZ", &app.clerk).await;
    assert_eq!((status, missing["code"].as_str()), (StatusCode::NOT_FOUND, Some("suspension_not_found")));
}

async fn the_console_is_served_with_its_guard_headers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (path, content_type) in [
        ("/console", "text/html; charset=utf-8"),
        ("/console/console.js", "text/javascript; charset=utf-8"),
        ("/console/console.css", "text/css; charset=utf-8"),
        ("/console/i18n/ja.json", "application/json"),
        ("/console/vocabulary.json", "application/json"),
        ("/console/session", "application/json"),
    ] {
        let response = app.client.get(format!("{}{path}", app.base)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let header =
            |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        assert_eq!(header("content-type"), content_type, "{path}");
        let csp = header("content-security-policy");
        for directive in ["default-src 'none'", "script-src 'self'", "frame-ancestors 'none'"] {
            assert!(csp.contains(directive), "{path}: {directive} in {csp}");
        }
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("http"),
            "{path}: no inline script, no other origin: {csp}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
    }
    let page = app.client.get(format!("{}/console", app.base)).send().await.unwrap().text().await.unwrap();
    assert_eq!(
        page.matches("<script").count(),
        page.matches("<script type=\"module\" src=\"/console/").count(),
        "no inline script"
    );
    let handler = page.split(|c: char| c.is_whitespace()).any(|word| {
        word.strip_prefix("on").is_some_and(|rest| {
            rest.split_once('=').is_some_and(|(name, _)| name.chars().all(|c| c.is_ascii_lowercase()))
        })
    });
    assert!(!handler, "no inline event handler");
    assert!(!page.contains("http://") && !page.contains("https://"), "nothing from another origin");
    // Every catalogue has every key the other has: no string missing in one language.
    let keys = |name: &str| {
        let app = &app;
        let name = name.to_owned();
        async move {
            let text =
                app.client.get(format!("{}/console/i18n/{name}", app.base)).send().await.unwrap().text().await.unwrap();
            let catalogue: serde_json::Map<String, Value> = serde_json::from_str(&text).unwrap();
            catalogue.keys().cloned().collect::<std::collections::BTreeSet<_>>()
        }
    };
    let (ja, en) = (keys("ja.json").await, keys("en.json").await);
    assert!(ja.len() > 100, "{} strings", ja.len());
    assert_eq!(ja, en, "the catalogues name the same strings");
    let (_, vocabulary) = app.get("/console/vocabulary.json", "").await;
    let documents: Vec<String> = hotline_core::IdentityDocument::ALL.iter().map(|d| d.as_str().to_owned()).collect();
    assert_eq!(vocabulary["identity_documents"], json!(documents));
    for document in &documents {
        assert!(en.contains(&format!("doc_{document}")), "every document the service knows has a name");
    }
    for item in hotline_core::Item::ALL {
        assert!(en.contains(&format!("item_{}", item.as_str())), "every item has a name");
    }
    for language in hotline_core::Language::ALL {
        assert!(en.contains(&format!("lang_{}", language.as_str())), "every language has a name");
    }
}

both_backends!(
    the_console_is_served_with_its_guard_headers,
    an_operator_identifies_a_holder_and_the_look_up_is_audited,
    identification_refusals_store_nothing,
    a_console_session_works_across_instances_until_signed_out,
    an_idle_session_ends_and_validators_get_none,
    a_clerk_finds_by_reference_and_releases_naming_the_documents,
);
