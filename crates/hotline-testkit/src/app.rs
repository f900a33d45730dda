//! The API on a real listener on port 0, over a fresh database with a seeded
//! registry, a token per role, and a clock the test sets. It is the binary's
//! own assembly (`hotline::app::Application`, as `hotline api` runs it),
//! configured through the binary's own settings.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use hotline::app::{Application, Assembly, CacheFollowing, Parts};
use hotline::config::{Bounded, Config};
use hotline_api::FixedClock;
use hotline_core::{PiiKey, Role};
use hotline_store::synthetic::{Generator, SampleHolder};
use hotline_store::{Backend, Store};
use rand::SeedableRng;
use reqwest::StatusCode;
use serde_json::{Value, json};

use hotline_api::metrics::Metrics;
use hotline_api::status_service::StatusService;

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
    pub sync_interval: Option<Duration>,
    /// Connect to the database through this URL instead (a proxy a test can cut).
    pub database_url: Option<String>,
    /// The cache answers only if confirmed complete this recently (`cache_freshness_ms`).
    pub freshness_bound: Duration,
    /// With a Redis cache: an in-process near-cache in front of it.
    pub near_cache: bool,
    /// The CA (a ca-sim's URL), which certifies the instance's OCSP responder; none: OCSP answers nothing.
    pub ca_url: Option<String>,
    /// How long a client may take to send a body (`http_body_timeout_ms`).
    pub body_timeout: Duration,
    /// How long `/readyz` waits for the database (`ready_timeout_ms`).
    pub ready_timeout: Duration,
    /// While the database cannot answer, the caches answer up to this stale (`cache_max_staleness_ms`).
    pub max_staleness: Duration,
    /// How long a suspension or release keeps trying through an outage (`write_deadline_ms`).
    pub write_deadline: Duration,
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            cache: TestCache::Memory,
            sync_interval: Some(Duration::from_millis(100)),
            database_url: None,
            freshness_bound: Duration::from_secs(2),
            near_cache: false,
            ca_url: None,
            body_timeout: Duration::from_secs(5),
            ready_timeout: Duration::from_millis(500),
            max_staleness: Duration::from_secs(60),
            write_deadline: Duration::from_secs(8),
        }
    }
}

fn millis<const MIN: u64, const MAX: u64>(d: Duration) -> Bounded<MIN, MAX> {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    Bounded::new(ms).unwrap_or_else(|| panic!("{ms} ms is outside the setting's range {MIN} to {MAX}"))
}

impl TestOptions {
    /// The binary's configuration for these options, over `database_url`.
    fn config(&self, database_url: &str) -> Config {
        let (redis_url, redis_prefix) = match &self.cache {
            TestCache::Memory => (None, "hl".to_owned()),
            TestCache::Redis { url, prefix } => (Some(url.clone()), prefix.clone()),
        };
        Config {
            database_url: Some(self.database_url.clone().unwrap_or_else(|| database_url.to_owned())),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            // Two serving threads, as on a 2-core machine, so tests cross threads as production does.
            http_threads: Bounded::new(2),
            pii_key: Some(TEST_PII_KEY.to_owned()),
            redis_url,
            redis_prefix,
            near_cache: self.near_cache,
            ca_url: self.ca_url.clone(),
            http_body_timeout_ms: millis(self.body_timeout),
            ready_timeout_ms: millis(self.ready_timeout),
            cache_freshness_ms: millis(self.freshness_bound),
            cache_max_staleness_ms: millis(self.max_staleness),
            write_deadline_ms: millis(self.write_deadline),
            // Without a background sync the near-cache still polls, at the default interval.
            cache_sync_interval_ms: millis(self.sync_interval.unwrap_or(Duration::from_millis(250))),
            ..Config::default()
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

/// The PII key every test instance uses: bytes 0 to 31.
const TEST_PII_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, TestOptions::default()).await
    }

    /// A fresh database with a seeded registry and a token per role, and one instance on it.
    pub async fn spawn_with(backend: Backend, options: TestOptions) -> TestApp {
        Self::spawn_on(TestDb::new(backend).await, options).await
    }

    /// A seeded registry and a token per role on `db`, and one instance on it.
    pub async fn spawn_on(db: TestDb, options: TestOptions) -> TestApp {
        let store = db.store().await;
        let pii_key = PiiKey::from_hex(TEST_PII_KEY).unwrap();
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
        let config = options.config(&db.url);
        let cache_following =
            if options.sync_interval.is_some() { CacheFollowing::Background } else { CacheFollowing::OnDemand };
        let assembly = Assembly { parts: Parts::Api, clock: clock.clone(), cache_following };
        let application = Application::build(&config, assembly).await.unwrap();
        let addr = application.addr();
        let state = application.state().expect("an API instance has its state").clone();
        let tasks = vec![tokio::spawn(async move {
            let _ = application.run_until_stopped(std::future::pending()).await;
        })];
        TestApp {
            addr,
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            store: state.store.clone(),
            clock,
            pii_key,
            holders,
            operator: tokens.operator,
            supervisor: tokens.supervisor,
            clerk: tokens.clerk,
            validator: tokens.validator,
            status: state.status.clone(),
            metrics: state.metrics.clone(),
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

    /// Waits (up to 10 s) until every committed audit record and status change
    /// is sealed: the running instances' sealer, or a command's, chains them
    /// within moments of their commit.
    pub async fn wait_sealed(&self) {
        for _ in 0..500 {
            if !self.store.seal_state().await.unwrap().waiting {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("records or changes were left unsealed");
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

    /// Row counts of every table, once everything committed is sealed (so
    /// the sealer moving rows from the pending tables does not count as a change).
    pub async fn counts(&self) -> Vec<(&'static str, i64)> {
        self.wait_sealed().await;
        self.store.table_counts().await.unwrap()
    }

    /// The status of a certificate as the registry has it.
    pub async fn cert_status(&self, issuer: &str, serial: &str) -> String {
        let (status, body) = self.get(&format!("/v1/status/{issuer}/{serial}"), &self.validator).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["status"].as_str().unwrap().to_owned()
    }
}
