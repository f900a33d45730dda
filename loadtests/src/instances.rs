//! API instances with a near-cache, started over a rebuilt shared cache:
//! one at a time (how long until it serves from its near-cache), or a fleet
//! at once, as after a deployment or a Redis restart, to measure what their
//! fills cost the database together against one alone.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use tokio::sync::oneshot;

use crate::common::{KEY, free_port, psql_value};
use crate::cpu::{CpuTime, machine_busy};

/// Where an instance finds its registry, its shared cache and its CA.
pub struct Setting<'a> {
    pub hotline: &'a str,
    pub db: &'a str,
    pub redis_port: u16,
    pub ca_url: &'a str,
}

/// `hotline api` with a near-cache, starting.
pub struct Instance {
    pub child: Child,
    pub listen: String,
    /// Seconds from `since` (given at launch) to the instance's log saying its near-cache is filled.
    filled: oneshot::Receiver<f64>,
}

impl Instance {
    /// Starts an instance; its log is read to the end on a task of its own,
    /// so the instance never blocks on a full pipe.
    pub fn launch(setting: &Setting<'_>, since: Instant) -> anyhow::Result<Self> {
        let listen = format!("127.0.0.1:{}", free_port()?);
        let mut child = crate::common::hotline_command(setting.hotline)
            .args(["api", "--listen", &listen])
            .env("HOTLINE_DATABASE_URL", setting.db)
            .env("HOTLINE_PII_KEY", KEY)
            .env("HOTLINE_REDIS_URL", format!("redis://127.0.0.1:{}", setting.redis_port))
            .env("HOTLINE_NEAR_CACHE", "true")
            .env("HOTLINE_CA_URL", setting.ca_url)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut lines = BufReader::new(child.stderr.take().context("no stderr")?).lines();
        let (tell, filled) = oneshot::channel();
        tokio::spawn(async move {
            let mut tell = Some(tell);
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("cache rebuilt")
                    && let Some(tell) = tell.take()
                {
                    let _ = tell.send(since.elapsed().as_secs_f64());
                }
            }
        });
        Ok(Instance { child, listen, filled })
    }

    /// Waits until the instance serves from its near-cache; the seconds since its launch's `since`.
    pub async fn serving(&mut self) -> anyhow::Result<f64> {
        (&mut self.filled).await.context("hotline api ended before its near-cache was filled")
    }

    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("the instance has ended")
    }
}

/// Instances started at once, each until it served from its near-cache.
pub struct Fleet {
    pub instances: usize,
    /// Seconds from the launch to each instance serving from its near-cache, sorted.
    pub serving: Vec<f64>,
    /// The machine's busy CPU time meanwhile, all cores.
    pub busy: f64,
    /// The instances' own CPU time: the rest of `busy` is the database's (and Redis's, idle here).
    pub instances_cpu: f64,
    /// Blocks the database read from its buffers, and those it asked of the operating system.
    pub blocks_hit: f64,
    pub blocks_read: f64,
}

/// The database's block counters so far: (found in its buffers, read from the operating system).
async fn block_counters(db: &str) -> anyhow::Result<(f64, f64)> {
    let sql = "SELECT blks_hit || ' ' || blks_read FROM pg_stat_database WHERE datname = current_database()";
    let text = psql_value(db, sql).await?;
    let (hit, read) = text.split_once(' ').context("no pg_stat_database row")?;
    Ok((hit.parse()?, read.parse()?))
}

/// Starts `n` instances at once and waits until each serves from its near-cache.
pub async fn start_at_once(setting: &Setting<'_>, n: usize) -> anyhow::Result<Fleet> {
    let (hit_before, read_before) = block_counters(setting.db).await?;
    let busy_before = machine_busy()?;
    let since = Instant::now();
    let mut fleet = (0..n).map(|_| Instance::launch(setting, since)).collect::<anyhow::Result<Vec<_>>>()?;
    let mut serving = Vec::with_capacity(n);
    for instance in &mut fleet {
        serving.push(instance.serving().await?);
    }
    let busy = (machine_busy()? - busy_before).as_secs_f64();
    let pids = fleet.iter().map(Instance::pid).collect::<anyhow::Result<Vec<_>>>()?;
    let used = CpuTime::of(&pids)?;
    for instance in &mut fleet {
        instance.child.kill().await?;
    }
    // A backend sends its statistics when its connection ends: wait until the instances' have.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (hit, read) = block_counters(setting.db).await?;
    serving.sort_by(f64::total_cmp);
    Ok(Fleet {
        instances: n,
        serving,
        busy,
        instances_cpu: (used.user + used.system).as_secs_f64(),
        blocks_hit: hit - hit_before,
        blocks_read: read - read_before,
    })
}
