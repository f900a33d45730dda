//! What the HTTP benchmarks share: wrk runs, nginx serving a static 200 as
//! the HTTP ceiling, and open-loop runs on the client's own threads with
//! latency counted from each request's scheduled send time and CPU counted
//! per request for the server and for the client.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use crate::common::{free_port, percentile};
use crate::cpu::CpuTime;

pub struct Wrk {
    pub rps: f64,
    pub p50: String,
    pub p99: String,
}

pub async fn wrk(url: &str, script: Option<&str>, seconds: u32, connections: u32) -> anyhow::Result<Wrk> {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency"]);
    if let Some(s) = script {
        cmd.args(["-s", s]);
    }
    let out = cmd.arg(url).output().await.context("wrk is not installed (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if text.contains("Non-2xx") {
        bail!("wrk saw errors:\n{text}");
    }
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(str::to_owned)
    };
    Ok(Wrk {
        rps: field("Requests/sec:").and_then(|v| v.parse().ok()).context(format!("no rate in wrk output:\n{text}"))?,
        p50: field("50%").unwrap_or_default(),
        p99: field("99%").unwrap_or_default(),
    })
}

pub fn spawn(cmd: &mut Command) -> anyhow::Result<Child> {
    spawn_logging_to(cmd, Stdio::null())
}

pub fn spawn_logging_to(cmd: &mut Command, log: Stdio) -> anyhow::Result<Child> {
    Ok(cmd.stdout(Stdio::null()).stderr(log).kill_on_drop(true).spawn()?)
}

/// nginx serving a static 200; stopped when dropped.
pub struct Nginx {
    pub master: Child,
    conf: std::path::PathBuf,
    dir: std::path::PathBuf,
    pub port: u16,
}

impl Nginx {
    pub async fn start(dir: &std::path::Path) -> anyhow::Result<Self> {
        let port = free_port()?;
        // One worker per core, each on its own SO_REUSEPORT socket: nginx's fastest
        // setup, and the steadiest (with one shared socket, how connections split
        // between the workers changes from run to run).
        let conf = format!(
            "worker_processes 2; daemon off; pid {dir}/nginx.pid; error_log {dir}/error.log;
             events {{ worker_connections 1024; }}
             http {{ access_log off; keepalive_requests 10000000; client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir};
                     uwsgi_temp_path {dir}; scgi_temp_path {dir};
                     server {{ listen 127.0.0.1:{port} reuseport; location / {{ return 200 'ok'; }} }} }}",
            dir = dir.display()
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf)?;
        let master = spawn(Command::new("nginx").arg("-c").arg(&path).arg("-p").arg(dir))
            .context("nginx is not installed (apt-get install nginx-light)")?;
        Ok(Self { master, conf: path, dir: dir.to_owned(), port })
    }
}

impl Drop for Nginx {
    /// Killing the master would leave its workers running: ask it to stop
    /// them, and wait (briefly) until it has.
    fn drop(&mut self) {
        let _ = std::process::Command::new("nginx")
            .arg("-c")
            .arg(&self.conf)
            .arg("-p")
            .arg(&self.dir)
            .args(["-s", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        for _ in 0..100 {
            if !matches!(self.master.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.master.start_kill();
    }
}

/// One line per request, in the order they were due: `due_ms,latency_us`.
pub fn write_timeline(path: &std::path::Path, samples: &[crate::rawhttp::Sample]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("could not create {}", path.display()))?,
    );
    writeln!(out, "due_ms,latency_us")?;
    for s in samples {
        writeln!(out, "{:.3},{}", s.due.as_secs_f64() * 1e3, s.latency.as_micros())?;
    }
    out.flush()?;
    Ok(())
}

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// One open-loop run: latency percentiles, and CPU microseconds per request
/// (user, system) of the server and of this process, the client.
pub struct OpenLoopRun {
    pub p50: Duration,
    pub p99: Duration,
    pub answered: usize,
    pub server_cpu: (f64, f64),
    pub client_cpu: (f64, f64),
    /// Pages the server read back from disk during the run.
    pub server_major_faults: u64,
}

/// How long an open-loop run lasts, over how many connections, and where its timeline goes.
pub struct OpenLoop {
    pub seconds: u32,
    pub lanes: usize,
    pub timeline: Option<std::path::PathBuf>,
}

/// Open-loop load at `rate` on the client's own threads, against the server
/// whose processes are `server`; with `--timeline`, the samples go to `{name}.csv`.
pub async fn open_loop(
    addr: &str,
    paths: &[String],
    token: &str,
    rate: f64,
    settings: &OpenLoop,
    server: &[u32],
    name: &str,
) -> anyhow::Result<OpenLoopRun> {
    let (addr, paths, token, seconds, lanes) =
        (addr.to_owned(), paths.to_vec(), token.to_owned(), settings.seconds, settings.lanes);
    let me = [std::process::id()];
    let (server_before, client_before) = (CpuTime::of(server)?, CpuTime::of(&me)?);
    let (samples, failed) =
        tokio::task::spawn_blocking(move || crate::rawhttp::open_loop(&addr, &paths, &token, rate, seconds, lanes))
            .await??;
    let (server_after, client_after) = (CpuTime::of(server)?, CpuTime::of(&me)?);
    if failed > 0 {
        bail!("{failed} requests failed during the open-loop run");
    }
    // The directory was made when the server started.
    if let Some(dir) = &settings.timeline {
        write_timeline(&dir.join(format!("{name}.csv")), &samples)?;
    }
    let mut latencies: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    latencies.sort();
    Ok(OpenLoopRun {
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        answered: latencies.len(),
        server_cpu: server_after.per_request_since(server_before, latencies.len()),
        client_cpu: client_after.per_request_since(client_before, latencies.len()),
        server_major_faults: server_after.major_faults - server_before.major_faults,
    })
}
