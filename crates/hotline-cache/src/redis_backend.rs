//! The Redis backend, shared by every API instance.
//!
//! Key layout (prefix `hl` by default; see ARCHITECTURE.md):
//! - `hl:marker`: hash `gen`, `pos`, `as_of` (ms): the completeness marker;
//! - `hl:generation`: counter of rebuild generations;
//! - `hl:g{gen}:{issuer}:{bucket}`: hash serial → `s|since|reason`, only for
//!   certificates that are not good; 65 536 buckets per issuer keep each hash
//!   small enough for Redis's compact encoding.
//!
//! Reads and applies are Lua scripts, so the marker and the entries are read
//! and written atomically in one round trip. The connection is made lazily and
//! re-made after failures, so the service starts and keeps answering (from the
//! store) while Redis is down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use chrono::{DateTime, Utc};
use hotline_core::{CertificateStatus, IssuerId, Serial};
use hotline_store::StatusChange;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use tokio::sync::Mutex;

use crate::codec::{bucket, decode, encode};
use crate::{Applied, Lookup, Marker, Rebuild};

/// How to reach Redis.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub url: String,
    /// Prefix of every key, so several deployments (or tests) can share one Redis.
    pub prefix: String,
    /// Limit on connecting and on each command: a slow Redis must not hold up a validator.
    pub timeout: Duration,
}

struct Connection {
    manager: Option<ConnectionManager>,
    last_failure: Option<Instant>,
}

#[derive(Clone)]
pub struct RedisCache {
    client: redis::Client,
    settings: RedisSettings,
    connection: Arc<Mutex<Connection>>,
    scripts: Arc<Scripts>,
}

struct Scripts {
    lookup: Script,
    apply: Script,
    switch: Script,
}

/// After a failed connection attempt, callers fail fast for this long instead of queueing.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);
const LOAD_PIPELINE: usize = 1_000;

impl RedisCache {
    pub fn new(settings: RedisSettings) -> anyhow::Result<Self> {
        let client =
            redis::Client::open(settings.url.as_str()).context("HOTLINE_REDIS_URL is not a valid Redis URL")?;
        Ok(Self {
            client,
            settings,
            connection: Arc::new(Mutex::new(Connection { manager: None, last_failure: None })),
            scripts: Arc::new(Scripts {
                lookup: Script::new(include_str!("lookup.lua")),
                apply: Script::new(include_str!("apply.lua")),
                switch: Script::new(include_str!("switch.lua")),
            }),
        })
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.settings.prefix)
    }

    async fn conn(&self) -> anyhow::Result<ConnectionManager> {
        let mut c = self.connection.lock().await;
        if let Some(m) = &c.manager {
            return Ok(m.clone());
        }
        if c.last_failure.is_some_and(|t| t.elapsed() < RECONNECT_PAUSE) {
            bail!("Redis is unreachable (retrying shortly)");
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.settings.timeout)
            .set_response_timeout(self.settings.timeout)
            .set_number_of_retries(1)
            .set_max_delay(200);
        match self.client.get_connection_manager_with_config(config).await {
            Ok(m) => {
                c.manager = Some(m.clone());
                c.last_failure = None;
                Ok(m)
            }
            Err(e) => {
                c.last_failure = Some(Instant::now());
                Err(anyhow!(e).context("could not connect to Redis"))
            }
        }
    }

    /// Runs `f` under the command timeout.
    async fn timed<T>(&self, f: impl Future<Output = redis::RedisResult<T>>) -> anyhow::Result<T> {
        match tokio::time::timeout(self.settings.timeout, f).await {
            Ok(result) => Ok(result?),
            Err(_) => bail!("Redis did not answer within {:?}", self.settings.timeout),
        }
    }

    pub(crate) async fn lookup(&self, keys: &[(IssuerId, Serial)]) -> anyhow::Result<Lookup> {
        let mut conn = self.conn().await?;
        let mut invocation = self.scripts.lookup.key(self.key("marker"));
        invocation.arg(&self.settings.prefix);
        for (issuer, serial) in keys {
            invocation.arg(issuer.as_str()).arg(bucket(serial.as_str())).arg(serial.as_str());
        }
        let values: Vec<String> = self.timed(invocation.invoke_async(&mut conn)).await?;
        if values.is_empty() {
            return Ok(Lookup::Cold);
        }
        let marker = parse_marker(&values[0], &values[1], &values[2])?;
        let entries = values[3..]
            .iter()
            .map(|v| if v.is_empty() { Ok(None) } else { decode(v).map(Some) })
            .collect::<anyhow::Result<_>>()?;
        Ok(Lookup::Known { marker, entries })
    }

    pub(crate) async fn marker(&self) -> anyhow::Result<Option<Marker>> {
        let mut conn = self.conn().await?;
        let (g, p, a): (Option<String>, Option<String>, Option<String>) = self
            .timed(
                redis::cmd("HMGET").arg(self.key("marker")).arg("gen").arg("pos").arg("as_of").query_async(&mut conn),
            )
            .await?;
        match (g, p, a) {
            (Some(g), Some(p), Some(a)) => Ok(Some(parse_marker(&g, &p, &a)?)),
            _ => Ok(None),
        }
    }

    pub(crate) async fn apply(
        &self,
        from: i64,
        changes: &[StatusChange],
        to: i64,
        as_of: Option<DateTime<Utc>>,
    ) -> anyhow::Result<Applied> {
        let mut conn = self.conn().await?;
        let mut invocation = self.scripts.apply.key(self.key("marker"));
        invocation
            .arg(&self.settings.prefix)
            .arg(from)
            .arg(to)
            .arg(as_of.map(|t| t.timestamp_millis().to_string()).unwrap_or_default());
        for c in changes {
            let value = if c.record.status == CertificateStatus::Good { String::new() } else { encode(&c.record) };
            let serial = c.serial.as_str();
            invocation.arg(c.position).arg(c.issuer.as_str()).arg(bucket(serial)).arg(serial).arg(value);
        }
        let answer: Vec<String> = self.timed(invocation.invoke_async(&mut conn)).await?;
        let position =
            || answer.get(1).and_then(|p| p.parse::<i64>().ok()).ok_or_else(|| anyhow!("bad apply answer {answer:?}"));
        match answer.first().map(String::as_str) {
            Some("ok") => Ok(Applied::Advanced { position: position()? }),
            Some("gap") => Ok(Applied::Gap { marker: position()? }),
            Some("nomarker") => Ok(Applied::NoMarker),
            _ => bail!("unexpected answer from the apply script: {answer:?}"),
        }
    }

    pub(crate) async fn begin_rebuild(&self) -> anyhow::Result<Rebuild> {
        let mut conn = self.conn().await?;
        let generation: u64 = self.timed(conn.incr(self.key("generation"), 1)).await?;
        Ok(Rebuild { generation })
    }

    pub(crate) async fn load(&self, rebuild: Rebuild, entries: &[StatusChange]) -> anyhow::Result<()> {
        let mut conn = self.conn().await?;
        for chunk in entries.chunks(LOAD_PIPELINE) {
            let mut pipe = redis::pipe();
            for c in chunk.iter().filter(|c| c.record.status != CertificateStatus::Good) {
                let serial = c.serial.as_str();
                let key = self.key(&format!("g{}:{}:{}", rebuild.generation, c.issuer, bucket(serial)));
                pipe.hset(key, serial, encode(&c.record)).ignore();
            }
            // Loading is bulk work: allow it more time per round trip than a lookup.
            let f = pipe.query_async::<()>(&mut conn);
            tokio::time::timeout(self.settings.timeout * 20, f).await.context("Redis load timed out")??;
        }
        Ok(())
    }

    pub(crate) async fn finish_rebuild(
        &self,
        rebuild: Rebuild,
        position: i64,
        as_of: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let mut conn = self.conn().await?;
        let mut invocation = self.scripts.switch.key(self.key("marker"));
        invocation.arg(rebuild.generation).arg(position).arg(as_of.timestamp_millis());
        let old: String = self.timed(invocation.invoke_async(&mut conn)).await?;
        if !old.is_empty() && old != rebuild.generation.to_string() {
            self.drop_generation(&mut conn, &old).await?;
        }
        Ok(())
    }

    async fn drop_generation(&self, conn: &mut ConnectionManager, generation: &str) -> anyhow::Result<()> {
        let pattern = self.key(&format!("g{generation}:*"));
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = self
                .timed(
                    redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(1000).query_async(conn),
                )
                .await?;
            if !keys.is_empty() {
                self.timed(redis::cmd("UNLINK").arg(&keys).query_async::<()>(conn)).await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

impl RedisCache {
    /// Tells every instance that the store has new changes (Redis pub/sub; best effort).
    pub async fn poke(&self) -> anyhow::Result<()> {
        let mut conn = self.conn().await?;
        self.timed(conn.publish::<_, _, ()>(self.key("poke"), "")).await
    }

    /// Pokes published by any instance, until the connection drops.
    pub async fn pokes(&self) -> anyhow::Result<redis::aio::PubSubStream> {
        let connect = self.client.get_async_pubsub();
        let mut pubsub =
            tokio::time::timeout(self.settings.timeout, connect).await.context("Redis pub/sub connect timed out")??;
        pubsub.subscribe(self.key("poke")).await?;
        Ok(pubsub.into_on_message())
    }
}

fn parse_marker(generation: &str, position: &str, as_of_ms: &str) -> anyhow::Result<Marker> {
    Ok(Marker {
        generation: generation.parse().context("marker generation")?,
        position: position.parse().context("marker position")?,
        as_of: DateTime::from_timestamp_millis(as_of_ms.parse().context("marker as_of")?).context("marker as_of")?,
    })
}
