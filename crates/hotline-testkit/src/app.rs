//! The API on a real listener on port 0, over a fresh database with a seeded
//! registry, a token per role, and a clock the test sets.

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use hotline_api::{AppState, FixedClock, Services};
use hotline_core::{PiiKey, Role, RuleBook};
use hotline_store::synthetic::{Generator, SampleHolder};
use hotline_store::{Backend, Store};
use rand::SeedableRng;
use reqwest::StatusCode;
use serde_json::{Value, json};

use hotline_api::metrics::Metrics;
use hotline_api::status_service::{StatusService, StatusSettings};
use hotline_cache::{MemoryCache, NearCache, RedisCache, RedisSettings, RevocationCache};

use crate::TestDb;

struct Tokens {
    operator: String,
    supervisor: String,
    clerk: String,
    validator: String,
}

/// An instant in Tokyo time.
pub fn jst(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    chrono::FixedOffset::east_opt(9 * 3600).unwrap().with_ymd_and_hms(y, mo, d, h, mi, s).unwrap().with_timezone(&Utc)
}

/// Mid-afternoon in Tokyo: every report is accepted.
pub fn day_instant() -> DateTime<Utc> {
    jst(2026, 11, 20, 14, 0, 0)
}

/// 3 a.m. in Tokyo: only smartphone reports are accepted.
pub fn night_instant() -> DateTime<Utc> {
    jst(2026, 11, 21, 3, 0, 0)
}

/// Which revocation cache an instance uses.
#[derive(Debug, Clone)]
pub enum TestCache {
    /// In-process, as in the embedded default.
    Memory,
    /// A Redis server, under a key prefix.
    Redis { url: String, prefix: String },
}

/// How to start an instance.
#[derive(Debug, Clone)]
pub struct TestOptions {
    pub cache: TestCache,
    /// How often the background cache sync runs; `None`: no background sync.
    pub sync_interval: Option<std::time::Duration>,
    /// Connect to the database through this URL instead (a proxy a test can cut).
    pub database_url: Option<String>,
    pub status: StatusSettings,
    /// With a Redis cache: an in-process near-cache in front of it.
    pub near_cache: bool,
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            cache: TestCache::Memory,
            sync_interval: Some(std::time::Duration::from_millis(100)),
            database_url: None,
            status: StatusSettings::default(),
            near_cache: false,
        }
    }
}

impl TestOptions {
    /// The shared Redis under a fresh prefix.
    pub fn shared_redis() -> Self {
        Self { cache: TestCache::Redis { url: crate::redis_url(), prefix: crate::unique_prefix() }, ..Self::default() }
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub store: Store,
    pub clock: Arc<FixedClock>,
    pub pii_key: PiiKey,
    pub holders: Vec<SampleHolder>,
    pub operator: String,
    pub supervisor: String,
    pub clerk: String,
    pub validator: String,
    pub status: Arc<StatusService>,
    pub metrics: Arc<Metrics>,
    pub options: TestOptions,
    pub db: Arc<TestDb>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

const HOLDERS: usize = 40;

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, TestOptions::default()).await
    }

    /// A fresh database with a seeded registry and a token per role, and one instance on it.
    pub async fn spawn_with(backend: Backend, options: TestOptions) -> TestApp {
        let db = TestDb::new(backend).await;
        let store = db.store().await;
        let pii_key = PiiKey::from_bytes((0u8..32).collect()).unwrap();
        let mut generator = Generator::new(rand::rngs::StdRng::seed_from_u64(7));
        let mut holders: Vec<SampleHolder> = (0..HOLDERS).map(|_| generator.holder()).collect();
        // Put holders with smartphones first so tests can take them by index.
        holders.sort_by_key(|h| h.smartphones.is_empty());
        let rows: Vec<_> = holders.iter().map(|h| h.to_new_holder(&pii_key)).collect();
        store.insert_holders(&rows, day_instant() - chrono::Duration::days(30)).await.unwrap();
        let token = |role: Role| {
            let store = store.clone();
            async move { store.create_token(role, &format!("test-{role}")).await.unwrap().1 }
        };
        let tokens = Tokens {
            operator: token(Role::Operator).await,
            supervisor: token(Role::Supervisor).await,
            clerk: token(Role::Clerk).await,
            validator: token(Role::Validator).await,
        };
        let clock = Arc::new(FixedClock::new(day_instant()));
        Self::start(Arc::new(db), holders, tokens, clock, pii_key, options).await
    }

    /// Another instance on the same database (and the same Redis, if `options` say so).
    pub async fn instance(&self, options: TestOptions) -> TestApp {
        let tokens = Tokens {
            operator: self.operator.clone(),
            supervisor: self.supervisor.clone(),
            clerk: self.clerk.clone(),
            validator: self.validator.clone(),
        };
        Self::start(self.db.clone(), self.holders.clone(), tokens, self.clock.clone(), self.pii_key.clone(), options)
            .await
    }

    async fn start(
        db: Arc<TestDb>,
        holders: Vec<SampleHolder>,
        tokens: Tokens,
        clock: Arc<FixedClock>,
        pii_key: PiiKey,
        options: TestOptions,
    ) -> TestApp {
        let store = Store::connect(options.database_url.as_deref().unwrap_or(&db.url)).await.unwrap();
        let cache = match &options.cache {
            TestCache::Memory => RevocationCache::Memory(MemoryCache::new()),
            TestCache::Redis { url, prefix } => RevocationCache::Redis(
                RedisCache::new(RedisSettings {
                    url: url.clone(),
                    prefix: prefix.clone(),
                    timeout: std::time::Duration::from_millis(300),
                })
                .unwrap(),
            ),
        };
        let issuers = db.store().await.issuers().await.unwrap();
        let mut status = StatusService::new(store.clone(), cache.clone(), issuers, options.status);
        let mut near_task = None;
        if let (RevocationCache::Redis(redis), true) = (&cache, options.near_cache) {
            let near = NearCache::new(store.clone(), redis.clone());
            let interval = options.sync_interval.unwrap_or(std::time::Duration::from_millis(250));
            near_task = Some(tokio::spawn(near.clone().run(interval)));
            status = status.with_near_cache(near);
        }
        let status = Arc::new(status);
        let metrics = Arc::new(Metrics::new());
        let state = AppState::from(Services {
            store: store.clone(),
            rules: Arc::new(RuleBook::builtin().unwrap()),
            clock: clock.clone(),
            pii_key: pii_key.clone(),
            status: status.clone(),
            metrics: metrics.clone(),
            tokens: Arc::default(),
            ops: Arc::default(),
        });
        // Two serving threads, as on a 2-core machine, so tests cross threads as production does.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut tasks = vec![tokio::spawn(async move {
            let _ = hotline_api::serve(listener, 2, None, state, std::future::pending()).await;
        })];
        if let Some(interval) = options.sync_interval {
            tasks.push(tokio::spawn(status.sync.clone().run(interval)));
        }
        tasks.extend(near_task);
        TestApp {
            addr,
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            store,
            clock,
            pii_key,
            holders,
            operator: tokens.operator,
            supervisor: tokens.supervisor,
            clerk: tokens.clerk,
            validator: tokens.validator,
            status,
            metrics,
            options,
            db,
            tasks,
        }
    }

    /// How many status answers this instance gave from `source`.
    pub fn answers_from(&self, source: &str) -> u64 {
        let text = self.metrics.render();
        text.lines()
            .filter(|l| l.starts_with("hotline_status_answers_total{") && l.contains(&format!("source=\"{source}\"")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// Waits (up to 10 s) until the cache answers for this instance (the near-cache, if it has one).
    pub async fn wait_for_cache(&self) {
        let cache = self.status.near.as_ref().map_or(&self.status.cache, |n| n.cache());
        for _ in 0..200 {
            if let Ok(hotline_cache::Lookup::Known { marker, .. }) = cache.lookup(&[]).await
                && chrono::Utc::now().signed_duration_since(marker.as_of).num_milliseconds() < 1500
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the cache never became complete and fresh");
    }

    /// The test clock's current instant.
    pub fn clock_now(&self) -> DateTime<Utc> {
        hotline_api::Clock::now(self.clock.as_ref())
    }

    /// A holder with a smartphone (the first few have one).
    pub fn phone_holder(&self, i: usize) -> &SampleHolder {
        let h = &self.holders[i];
        assert!(!h.smartphones.is_empty(), "holder {i} has no smartphone; use a lower index");
        h
    }

    /// A holder without a smartphone, counted from the end.
    pub fn card_holder(&self, i: usize) -> &SampleHolder {
        &self.holders[self.holders.len() - 1 - i]
    }

    /// A valid suspension body for `holder` and `item`.
    pub fn report(holder: &SampleHolder, item: &str) -> Value {
        let mut body = json!({
            "call_id": "call-1",
            "language": "en",
            "item": item,
            "cause": "loss",
            "holder": {
                "individual_number": holder.individual_number.expose_digits(),
                "date_of_birth": holder.date_of_birth.format("%Y-%m-%d").to_string(),
            },
        });
        if item == "smartphone" {
            body["device_id"] = json!(holder.smartphones[0].device_id.as_str());
        }
        body
    }

    /// POSTs JSON with a token and an optional Idempotency-Key; returns status and parsed body.
    pub async fn post(&self, path: &str, token: &str, key: Option<&str>, body: &Value) -> (StatusCode, Value) {
        let mut req = self.client.post(format!("{}{path}", self.base)).bearer_auth(token).json(body);
        if let Some(key) = key {
            req = req.header("Idempotency-Key", key);
        }
        Self::read(req.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        Self::read(self.client.get(format!("{}{path}", self.base)).bearer_auth(token).send().await.unwrap()).await
    }

    pub async fn suspend(&self, key: &str, body: &Value) -> (StatusCode, Value) {
        self.post("/v1/suspensions", &self.operator, Some(key), body).await
    }

    pub async fn read(resp: reqwest::Response) -> (StatusCode, Value) {
        let status = resp.status();
        let is_problem =
            resp.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
        let text = resp.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_client_error() || status.is_server_error() {
            assert!(is_problem, "error responses must be problem+json: {status} {value}");
            assert!(value["code"].is_string(), "problem without code: {value}");
            assert_eq!(value["status"], json!(status.as_u16()), "{value}");
        }
        (status, value)
    }

    /// Row counts of every table.
    pub async fn counts(&self) -> Vec<(&'static str, i64)> {
        self.store.table_counts().await.unwrap()
    }

    /// The status of a certificate as the registry has it.
    pub async fn cert_status(&self, issuer: &str, serial: &str) -> String {
        let (status, body) = self.get(&format!("/v1/status/{issuer}/{serial}"), &self.validator).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["status"].as_str().unwrap().to_owned()
    }
}
