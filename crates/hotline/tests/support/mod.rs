//! Running the real `hotline` binary: a child process whose output is
//! collected line by line, and helpers to wait for what it prints.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // Shared by test binaries; tests fail loudly by design.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_hotline");

/// A `hotline` command with a clean environment: no HOTLINE_* variable leaks in from the caller.
pub fn hotline(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).kill_on_drop(true);
    cmd
}

/// Runs a command to completion; returns (exit code, stdout, stderr).
pub async fn run(mut cmd: Command) -> (i32, String, String) {
    let out = cmd.output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A running server and everything it printed so far.
pub struct Server {
    pub child: Child,
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

fn collect(reader: impl tokio::io::AsyncRead + Unpin + Send + 'static, into: Arc<Mutex<Vec<String>>>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(reader).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            into.lock().unwrap().push(line);
        }
    });
}

/// `hotline serve` on port 0 in `dir`, to add settings to before starting it.
pub fn serve(dir: &Path) -> Command {
    let mut cmd = hotline(dir);
    cmd.args(["serve", "--listen", "127.0.0.1:0"]);
    cmd
}

/// `hotline serve` on port 0 in `dir`, the embedded default's first start.
pub fn embedded(dir: &Path) -> Server {
    Server::start(serve(dir))
}

/// Reads a suspension until the CA has confirmed it (up to 10 s); returns its last reading.
pub async fn wait_ca_confirmed(addr: &str, token: &str, id: &str) -> serde_json::Value {
    let client = reqwest::Client::new();
    let mut detail = serde_json::Value::Null;
    for _ in 0..200 {
        let url = format!("http://{addr}/v1/suspensions/{id}");
        detail = client.get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap();
        if detail["ca_sync"] == "confirmed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(detail["ca_sync"], "confirmed", "{detail}");
    detail
}

/// Runs a printed command line through `sh`, as a person pasting it would.
pub async fn paste(line: &str) -> std::process::Output {
    Command::new("sh").arg("-c").arg(line).output().await.unwrap()
}

/// Runs a printed command line through `sh` in `dir`, where the server runs (its paths are relative).
pub async fn paste_in(line: &str, dir: &Path) -> std::process::Output {
    Command::new("sh").arg("-c").arg(line).current_dir(dir).output().await.unwrap()
}

impl Server {
    /// The `curl` line the first start prints.
    pub async fn curl_line(&self) -> String {
        self.wait_for(|l| l.starts_with("curl ").then(|| l.to_owned())).await
    }

    /// Suspends the sample as a person does, by pasting the `curl` line; returns the server's address.
    pub async fn suspend_the_sample(&self) -> String {
        let curl = self.curl_line().await;
        let addr = self.addr().await;
        let out = paste(&curl).await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        addr
    }

    pub fn start(mut cmd: Command) -> Server {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let (stdout, stderr) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
        collect(child.stdout.take().unwrap(), stdout.clone());
        collect(child.stderr.take().unwrap(), stderr.clone());
        Server { child, stdout, stderr }
    }

    /// Waits (up to 30 s) for a line on stdout or stderr that `pick` accepts.
    pub async fn wait_for<T>(&self, mut pick: impl FnMut(&str) -> Option<T>) -> T {
        for _ in 0..300 {
            for stream in [&self.stdout, &self.stderr] {
                if let Some(found) = stream.lock().unwrap().iter().find_map(|l| pick(l)) {
                    return found;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the server never printed the expected line; stderr:\n{}", self.stderr.lock().unwrap().join("\n"));
    }

    /// The address from the "listening" log line.
    pub async fn addr(&self) -> String {
        self.logged_addr("listening").await
    }

    /// The `addr` of the log line whose message is `message`.
    pub async fn logged_addr(&self, message: &str) -> String {
        self.wait_for(|line| {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            (v["message"] == message).then(|| v["addr"].as_str().map(str::to_owned)).flatten()
        })
        .await
    }

    /// Sends SIGTERM and waits for the exit code.
    pub async fn terminate(mut self) -> (i32, Vec<String>, Vec<String>) {
        let pid = self.child.id().unwrap();
        let status = tokio::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await.unwrap();
        assert!(status.success());
        let code = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .unwrap()
            .unwrap()
            .code()
            .unwrap_or(-1);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let out = self.stdout.lock().unwrap().clone();
        let err = self.stderr.lock().unwrap().clone();
        (code, out, err)
    }
}
