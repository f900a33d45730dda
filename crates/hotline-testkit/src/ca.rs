//! The real ca-sim process, owned by one test: on a free port, with its own
//! data directory, killed and restarted on the same port and data at will.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hotline_ca::CaClient;

use crate::faults::{free_port, wait_listening};

/// A binary of this workspace, built next to the test executables.
///
/// `cargo test` builds a package's binaries only for that package's own
/// tests, so the README's test command builds every binary first.
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // A test: target/<profile>/deps/<test> → target/<profile>/<name>; a
    // binary (a load generator): target/<profile>/<bin> → beside it.
    let dir = exe.parent().unwrap();
    let profile_dir = if dir.ends_with("deps") { dir.parent().unwrap() } else { dir };
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --workspace --bins` (the README's test command does)",
        path.display()
    );
    path
}

pub struct CaSimServer {
    pub port: u16,
    pub data: tempfile::TempDir,
    args: Vec<String>,
    child: Option<Child>,
}

impl CaSimServer {
    pub fn start() -> CaSimServer {
        Self::start_with(&[])
    }

    /// Starts ca-sim with extra start-up flags (faults).
    pub fn start_with(args: &[&str]) -> CaSimServer {
        let mut server = CaSimServer {
            port: free_port(),
            data: tempfile::tempdir().unwrap(),
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            child: None,
        };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A client with a short timeout, as the worker under test uses.
    pub fn client(&self) -> CaClient {
        CaClient::new(&self.url(), Duration::from_secs(2)).unwrap()
    }

    /// ca-sim's own controls: faults, stats, dropped entries.
    pub fn control(&self) -> ca_sim::control::Control {
        ca_sim::control::Control::new(&self.url()).unwrap()
    }

    /// The issuer's CA certificate file, for `openssl crl -CAfile`.
    pub fn issuer_pem_path(&self, issuer: &str) -> PathBuf {
        self.data.path().join(format!("{issuer}.pem"))
    }

    /// Starts it (again) on the same port and data directory: it remembers every event.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new(workspace_binary("ca-sim"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data")
            .arg(self.data.path())
            .args(&self.args)
            .env("CA_SIM_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_listening(self.port, "ca-sim");
    }

    /// Kills it (SIGKILL): the CA is down until [`CaSimServer::restart`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for CaSimServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Worker settings for tests: small batches, quick polls and retries, and no
/// reconciliation within a test's lifetime unless a test asks for one.
pub fn quick_worker_settings() -> hotline_worker::WorkerSettings {
    hotline_worker::WorkerSettings {
        batch: 32,
        concurrency: 8,
        lease: std::time::Duration::from_secs(10),
        poll: std::time::Duration::from_millis(20),
        max_attempts: 50,
        backoff: hotline_worker::Backoff {
            base: std::time::Duration::from_millis(10),
            cap: std::time::Duration::from_millis(100),
        },
        reconcile_interval: std::time::Duration::from_secs(3600),
    }
}
