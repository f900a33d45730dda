//! The service as a deployment runs it, on a database a test owns: real
//! `hotline api` and `hotline worker` processes (the binary the tests were
//! built with), a Redis and a ca-sim of the test's own, and a TCP proxy in
//! front of the database (HAProxy of a [`crate::PatroniCluster`], or a
//! PostgreSQL) that the test can cut. Every process gets the same
//! `HOTLINE_*` settings, as a deployment's manifest gives them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::{CaSimServer, RedisServer, TcpProxy};

/// The PII key every process of a deployment uses.
const PII_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// A running process of the service, and every line it wrote to standard error.
pub struct Process {
    pub child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
    /// Its address (the API's, or the worker's probes).
    pub base: String,
}

impl Process {
    /// Whether it is still the process that was started: never exited, never restarted.
    pub fn still_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The lines it logged that contain `text`.
    pub fn logged(&self, text: &str) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|l| l.contains(text))
            .cloned()
            .collect()
    }
}

pub struct Deployment {
    pub bin: PathBuf,
    /// The database the service uses (through the proxy: `url`; directly: `direct_url`).
    pub direct_url: String,
    /// Between every process of the service and the database.
    pub proxy: TcpProxy,
    pub redis: RedisServer,
    pub ca: CaSimServer,
    pub apis: Vec<Process>,
    pub worker: Option<Process>,
    pub operator: String,
    pub clerk: String,
    pub validator: String,
    /// The seeded holders as `hotline seed --samples` wrote them (numbers in clear).
    pub holders: Vec<Value>,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

impl Deployment {
    /// The service on `database_url` (a loopback server) reached through a
    /// TCP proxy, `holders` seeded, a token per role, no process running yet.
    pub async fn prepare(bin: &Path, database_url: &str, holders: usize, settings: &[(&str, &str)]) -> Deployment {
        let (host_port, target) = host_and_port(database_url);
        let proxy = TcpProxy::start(target).await;
        let url = database_url.replacen(&host_port, &proxy.addr.to_string(), 1);
        let (redis, ca) = (RedisServer::start(), CaSimServer::start());
        let mut env: Vec<(String, String)> = [
            ("HOTLINE_DATABASE_URL", url.as_str()),
            ("HOTLINE_PII_KEY", PII_KEY),
            ("HOTLINE_REDIS_URL", &redis.url()),
            ("HOTLINE_CA_URL", &ca.url()),
            ("HOTLINE_LOG", "info,sqlx=warn,hyper=warn"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        env.extend(settings.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let mut deployment = Deployment {
            // Commands run in the deployment's own directory: the binary by its absolute path.
            bin: std::path::absolute(bin).unwrap_or_else(|_| bin.to_owned()),
            direct_url: database_url.to_owned(),
            proxy,
            redis,
            ca,
            apis: Vec::new(),
            worker: None,
            operator: String::new(),
            clerk: String::new(),
            validator: String::new(),
            holders: Vec::new(),
            env,
            dir: tempfile::tempdir().unwrap(),
        };
        deployment.seed(holders).await;
        deployment
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args).current_dir(self.dir.path()).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str()))).kill_on_drop(true);
        cmd
    }

    /// Runs a one-shot command to success; its standard output.
    pub async fn run(&self, args: &[&str]) -> String {
        let out = self.command(args).output().await.unwrap();
        assert!(out.status.success(), "hotline {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    async fn seed(&mut self, holders: usize) {
        let samples = self.dir.path().join("samples.json");
        self.run(&["migrate"]).await;
        self.run(&["seed", "--holders", &holders.to_string(), "--samples", &samples.display().to_string()]).await;
        let file: Value = serde_json::from_str(&std::fs::read_to_string(&samples).unwrap()).unwrap();
        self.holders = file["holders"].as_array().cloned().unwrap_or_default();
        for role in ["operator", "clerk", "validator"] {
            let out = self.run(&["token", "create", "--role", role, "--name", &format!("deployment-{role}")]).await;
            let secret = out.lines().last().unwrap_or_default().trim().to_owned();
            match role {
                "operator" => self.operator = secret,
                "clerk" => self.clerk = secret,
                _ => self.validator = secret,
            }
        }
    }

    /// Starts `hotline api` on a free port with `extra` settings beside the deployment's.
    pub async fn start_api(&mut self, extra: &[(&str, &str)]) -> usize {
        let mut cmd = self.command(&["api", "--listen", "127.0.0.1:0"]);
        cmd.envs(extra.iter().copied());
        self.apis.push(spawn(cmd, "listening").await);
        self.apis.len() - 1
    }

    /// Starts `hotline worker`.
    pub async fn start_worker(&mut self) {
        let cmd = self.command(&["worker", "--listen", "127.0.0.1:0"]);
        self.worker = Some(spawn(cmd, "worker metrics and health").await);
    }

    /// The API instances' addresses.
    pub fn bases(&self) -> Vec<String> {
        self.apis.iter().map(|p| p.base.clone()).collect()
    }

    /// A statement's single value, read directly from `url` (a node, not
    /// through the proxy); `None` while that server does not answer.
    pub async fn scalar(url: &str, sql: &str) -> Option<i64> {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(url).await.ok()?;
        let value = sqlx::query_scalar(sql).fetch_one(&mut conn).await.ok();
        let _ = conn.close().await;
        value
    }

    /// The database's name.
    pub fn database(&self) -> &str {
        self.direct_url.rsplit('/').next().unwrap_or_default()
    }
}

/// `host:port` of a database URL, and that address.
fn host_and_port(url: &str) -> (String, std::net::SocketAddr) {
    let after_at = url.rsplit_once('@').map_or(url, |(_, rest)| rest);
    let host_port = after_at.split('/').next().unwrap_or_default().to_owned();
    let addr = host_port.parse().unwrap_or_else(|_| panic!("{host_port}: the test database is on a loopback address"));
    (host_port, addr)
}

/// Spawns a serving process and waits (up to 30 s) for its log line `ready_message`, with its address.
async fn spawn(mut cmd: Command, ready_message: &str) -> Process {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (stderr, collected) = (child.stderr.take().unwrap(), lines.clone());
    tokio::spawn(async move {
        let mut reader = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            collected.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(line);
        }
    });
    for _ in 0..300 {
        let found = lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().find_map(|line| {
            let v: Value = serde_json::from_str(line).ok()?;
            (v["message"] == ready_message).then(|| v["addr"].as_str().map(str::to_owned)).flatten()
        });
        if let Some(addr) = found {
            return Process { child, lines, base: format!("http://{addr}") };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the process never logged {ready_message:?}: {:?}",
        lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    );
}
