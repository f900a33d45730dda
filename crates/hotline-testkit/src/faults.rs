//! Faults on demand, without touching the shared services: a private
//! `redis-server` on a free port that a test can kill and restart, and a TCP
//! proxy in front of PostgreSQL that a test can cut.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Redis's settings as the revocation cache needs them (`deploy/redis/cache.conf`).
pub const REDIS_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/redis/cache.conf");

/// Where tests reach the shared Redis (tests that do not kill it).
pub fn redis_url() -> String {
    std::env::var("HOTLINE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A key prefix no other test uses, for tests sharing one Redis.
pub fn unique_prefix() -> String {
    format!("hlt{}", uuid::Uuid::new_v4().simple())
}

/// Waits (up to 5 s) until a process of ours accepts connections on `port`.
pub(crate) fn wait_listening(port: u16, what: &str) {
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not start listening on {port}");
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A Redis server owned by one test, keeping nothing on disk.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let mut server = RedisServer { port: free_port(), child: None };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .arg(REDIS_CONFIG)
            .args(["--port", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("redis-server could not start ({e}); run the README's test command"));
        self.child = Some(child);
        wait_listening(self.port, "redis-server");
    }

    /// Kills it (SIGKILL: it keeps nothing on disk anyway).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP proxy to a real server that a test can cut (every connection dropped,
/// new ones refused), stall (connections kept open, nothing passed on: a
/// server that hangs) and mend.
pub struct TcpProxy {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    cut_now: Arc<Notify>,
    stalled: Arc<AtomicBool>,
}

impl TcpProxy {
    pub async fn start(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let cut_now = Arc::new(Notify::new());
        let stalled = Arc::new(AtomicBool::new(false));
        let (c, n, st) = (cut.clone(), cut_now.clone(), stalled.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if c.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                let (n, st) = (n.clone(), st.clone());
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else { return };
                    tokio::select! {
                        _ = relay(&mut inbound, &mut outbound, &st) => {}
                        () = n.notified() => {}
                    }
                    // Held open, silent, while stalled: the client waits for an answer that never comes.
                    while st.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                });
            }
        });
        TcpProxy { addr, cut, cut_now, stalled }
    }

    /// Keeps every connection open but passes nothing on, as a hung server would.
    pub fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
    }

    /// Lets stalled connections go (they close, unanswered, if the proxy is cut) without mending a cut.
    pub fn unstall(&self) {
        self.stalled.store(false, Ordering::SeqCst);
    }

    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.cut_now.notify_waiters();
    }

    pub fn mend(&self) {
        self.cut.store(false, Ordering::SeqCst);
        self.stalled.store(false, Ordering::SeqCst);
    }
}

/// Copies both ways until either side closes, passing nothing while `stalled`.
async fn relay(a: &mut TcpStream, b: &mut TcpStream, stalled: &AtomicBool) {
    let (mut a_read, mut a_write) = a.split();
    let (mut b_read, mut b_write) = b.split();
    tokio::select! {
        () = pass(&mut a_read, &mut b_write, stalled) => {}
        () = pass(&mut b_read, &mut a_write, stalled) => {}
    }
}

/// Copies `from` to `to`, holding each read back while `stalled`.
async fn pass(
    from: &mut (impl tokio::io::AsyncRead + Unpin),
    to: &mut (impl tokio::io::AsyncWrite + Unpin),
    stalled: &AtomicBool,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A PostgreSQL server owned by one test (its own data directory and port),
/// that the test can kill with SIGKILL and start again on the same data.
pub struct PostgresServer {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    /// The process started (postgres, or runuser around it), reaped after a kill.
    child: Option<Child>,
}

fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

impl PostgresServer {
    /// A fresh cluster (trust authentication, nothing fsynced: it is thrown away), started.
    pub fn start() -> PostgresServer {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| versions.flatten().map(|v| v.path().join("bin")).find(|b| b.join("initdb").exists()))
            .expect("PostgreSQL's server binaries are installed by the README's test command");
        let dir = tempfile::tempdir().unwrap();
        let mut server = PostgresServer { port: free_port(), dir, bin, child: None };
        if running_as_root() {
            // PostgreSQL refuses to run as root: the cluster belongs to its own user.
            let status = Command::new("chown").arg("-R").arg("postgres").arg(server.dir.path()).status().unwrap();
            assert!(status.success());
        }
        let data = server.data().display().to_string();
        let initdb = server.bin.join("initdb").display().to_string();
        let out =
            server.as_owner(&[&initdb, "-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"]).output().unwrap();
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        server.launch();
        server
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    fn as_owner(&self, args: &[&str]) -> Command {
        let mut cmd = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]);
            c
        } else {
            Command::new(args[0])
        };
        let rest = if running_as_root() { args } else { &args[1..] };
        cmd.args(rest).stdout(Stdio::null()).stderr(Stdio::null());
        cmd
    }

    fn launch(&mut self) {
        let postgres = self.bin.join("postgres").display().to_string();
        let (data, port, sockets) =
            (self.data().display().to_string(), self.port.to_string(), self.dir.path().display().to_string());
        let socket_dir = format!("unix_socket_directories={sockets}");
        let child = self
            .as_owner(&[
                &postgres,
                "-D",
                &data,
                "-p",
                &port,
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                &socket_dir,
                "-c",
                "fsync=off",
            ])
            .spawn()
            .expect("could not start postgres");
        self.child = Some(child);
        // Listening comes before accepting queries ("the database system is starting up"): wait for the latter.
        let ready = self.bin.join("pg_isready");
        for _ in 0..300 {
            let answered = Command::new(&ready)
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if answered {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("postgres on port {} never became ready", self.port);
    }

    /// The URL of its `postgres` database, as a role that may create databases.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// SIGKILL of the postmaster, as a crash would; its backends follow it.
    pub fn kill(&mut self) {
        let pid = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next().map(str::to_owned));
        let killed = pid.is_some_and(|pid| Command::new("kill").args(["-9", &pid]).status().is_ok_and(|s| s.success()));
        if let Some(mut child) = self.child.take() {
            // The process started (runuser, as root) reaps the postmaster and then ends. Killed
            // first, it would leave the postmaster an orphan, a zombie no one may reap, whose PID
            // in `postmaster.pid` keeps the next start from taking the data directory.
            if !killed {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts it again on the same data (crash recovery runs first).
    pub fn restart(&mut self) {
        self.launch();
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.kill();
    }
}
