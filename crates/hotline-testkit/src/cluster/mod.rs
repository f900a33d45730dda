//! A replicated PostgreSQL owned by one test: etcd, three Patroni nodes and
//! HAProxy in front, on free loopback ports in a temporary directory, from
//! the deployment's own configuration files ([`config`]). PostgreSQL refuses
//! to run as root, so when the tests run as root every process of the
//! cluster runs as the `postgres` user.
//!
//! A test kills nodes as a crash would (SIGKILL of Patroni and of its
//! postmaster), starts them again (they rejoin, rewound, as replicas),
//! switches over with `patronictl`, and reads the cluster's view of itself
//! from Patroni's REST API.

mod config;
mod processes;

use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use serde::Deserialize;

use crate::faults::free_port;

/// A cluster member as Patroni's `GET /cluster` reports it.
#[derive(Debug, Clone, Deserialize)]
pub struct Member {
    pub name: String,
    /// `leader`, `sync_standby` or `replica`.
    pub role: String,
    /// `running`, `streaming`, `starting`, `stopped`, …
    pub state: String,
}

#[derive(Deserialize)]
struct ClusterView {
    members: Vec<Member>,
}

struct Node {
    name: String,
    pg_port: u16,
    api_port: u16,
    dir: PathBuf,
    patroni: Option<Child>,
}

pub struct PatroniCluster {
    dir: tempfile::TempDir,
    /// The `postgres` user's uid and gid, when the tests run as root.
    owner: Option<(u32, u32)>,
    etcd: Option<Child>,
    /// etcd's client and peer ports.
    etcd_ports: (u16, u16),
    haproxy: Option<Child>,
    nodes: Vec<Node>,
    /// HAProxy's port: the primary, whichever node it is.
    pub port: u16,
    http: reqwest::Client,
}

impl PatroniCluster {
    /// Starts etcd, three nodes and HAProxy, and waits until a leader with a
    /// synchronous standby serves writes through HAProxy.
    pub async fn start() -> PatroniCluster {
        let dir = tempfile::tempdir().unwrap();
        let nodes = (1..=3)
            .map(|i| Node {
                name: format!("node{i}"),
                pg_port: free_port(),
                api_port: free_port(),
                dir: dir.path().join(format!("node{i}")),
                patroni: None,
            })
            .collect();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
        let owner = processes::postgres_owner();
        let etcd_ports = (free_port(), free_port());
        let mut cluster =
            PatroniCluster { dir, owner, etcd: None, etcd_ports, haproxy: None, nodes, port: free_port(), http };
        cluster.write_configs();
        cluster.start_etcd();
        for name in cluster.names() {
            cluster.start_node(&name);
        }
        cluster.start_haproxy();
        cluster.wait_healthy(Duration::from_secs(120)).await;
        cluster
    }

    /// The `postgres` database through HAProxy, as the superuser.
    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// `database` through HAProxy, on whichever node is primary, as the superuser.
    pub fn url_of(&self, database: &str) -> String {
        format!("postgres://postgres:{}@127.0.0.1:{}/{database}", config::PASSWORD, self.port)
    }

    /// `database` on one node directly, not through HAProxy (a standby answers reads).
    pub fn node_url(&self, name: &str, database: &str) -> String {
        format!("postgres://postgres:{}@127.0.0.1:{}/{database}", config::PASSWORD, self.node(name).pg_port)
    }

    /// The service's role and database, made as a deployment makes them
    /// (`deploy/patroni/create-database.sql` through HAProxy, as the
    /// superuser); the URL the service connects with, as that role.
    pub async fn create_service_database(&self) -> String {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/patroni/create-database.sql");
        let out = tokio::process::Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &self.url(), "-f", script])
            .output()
            .await
            .expect("psql (Debian package postgresql-client)");
        assert!(out.status.success(), "create-database.sql: {}", String::from_utf8_lossy(&out.stderr));
        format!("postgres://hotline:hotline@127.0.0.1:{}/hotline", self.port)
    }

    /// The nodes' names.
    pub fn names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    fn node(&self, name: &str) -> &Node {
        self.nodes.iter().find(|n| n.name == name).unwrap_or_else(|| panic!("no node {name}"))
    }

    fn node_mut(&mut self, name: &str) -> &mut Node {
        self.nodes.iter_mut().find(|n| n.name == name).unwrap_or_else(|| panic!("no node {name}"))
    }

    /// The members as the first node that answers sees them; empty if none answers.
    pub async fn members(&self) -> Vec<Member> {
        for node in &self.nodes {
            let url = format!("http://127.0.0.1:{}/cluster", node.api_port);
            if let Ok(answer) = self.http.get(url).send().await
                && let Ok(view) = answer.json::<ClusterView>().await
            {
                return view.members;
            }
        }
        Vec::new()
    }

    /// The member in `role` now, if there is one.
    pub async fn with_role(&self, role: &str) -> Option<String> {
        self.members().await.into_iter().find(|m| m.role == role).map(|m| m.name)
    }

    /// Waits until there is a leader with a synchronous standby, every node
    /// that runs Patroni runs PostgreSQL, and HAProxy routes writes to the
    /// leader; returns (leader, synchronous standby).
    pub async fn wait_healthy(&self, limit: Duration) -> (String, String) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(pair) = self.healthy().await {
                return pair;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("the cluster never became healthy: {:?}\n{}", self.members().await, self.logs());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn healthy(&self) -> Option<(String, String)> {
        let members = self.members().await;
        let live = self.nodes.iter().filter(|n| n.patroni.is_some()).count();
        let running = members.iter().filter(|m| m.state == "running" || m.state == "streaming").count();
        let leader = members.iter().find(|m| m.role == "leader")?.name.clone();
        let sync = members.iter().find(|m| m.role == "sync_standby")?.name.clone();
        (running == live && self.writable_through_haproxy().await).then_some((leader, sync))
    }

    /// Whether a connection through HAProxy reaches a primary.
    async fn writable_through_haproxy(&self) -> bool {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let Ok(Ok(mut conn)) =
            tokio::time::timeout(Duration::from_secs(2), sqlx::AnyConnection::connect(&self.url())).await
        else {
            return false;
        };
        let primary: Result<bool, _> = sqlx::query_scalar("SELECT NOT pg_is_in_recovery()").fetch_one(&mut conn).await;
        let _ = conn.close().await;
        primary.unwrap_or(false)
    }

    /// Kills a node as a crash would: SIGKILL of its postmaster and its Patroni.
    pub fn kill(&mut self, name: &str) {
        let node = self.node_mut(name);
        processes::kill_node(&node.dir.join("data"), node.patroni.take());
    }

    /// Starts a node's Patroni (again): a node that was primary rejoins as a replica.
    pub fn start_node(&mut self, name: &str) {
        let log = self.node(name).dir.join("patroni.out");
        processes::wait_postmaster_gone(&self.node(name).dir.join("data"));
        let mut cmd = processes::command("patroni", &log, self.owner, self.dir.path());
        let child = cmd
            .arg(self.node(name).dir.join("patroni.yml"))
            .spawn()
            .expect("patroni is installed by the README's test command (Debian package patroni)");
        self.node_mut(name).patroni = Some(child);
    }

    /// `patronictl switchover` from `leader` to `candidate`, as on-call runs it.
    pub async fn switchover(&self, leader: &str, candidate: &str) -> std::process::Output {
        let config = self.node(leader).dir.join("patroni.yml");
        let mut cmd = tokio::process::Command::new("patronictl");
        cmd.arg("-c").arg(config).args(["switchover", "--leader", leader, "--candidate", candidate, "--force"]);
        cmd.env("HOME", self.dir.path());
        cmd.output().await.expect("patronictl (Debian package patroni)")
    }

    /// The tail of every log of the cluster, for a failed test's message.
    pub fn logs(&self) -> String {
        let mut files = vec![self.dir.path().join("etcd.log"), self.dir.path().join("haproxy.log")];
        for node in &self.nodes {
            files.extend([node.dir.join("patroni.out"), node.dir.join("patroni.log")]);
        }
        files.iter().map(|f| processes::tail(f, 15)).collect::<Vec<_>>().join("\n")
    }

    fn start_etcd(&mut self) {
        let (client, peer) = self.etcd_ports;
        let log = self.dir.path().join("etcd.log");
        let mut cmd = processes::command("etcd", &log, self.owner, self.dir.path());
        let child = cmd
            .args(["--name", "etcd", "--data-dir"])
            .arg(self.dir.path().join("etcd"))
            .arg(format!("--listen-client-urls=http://127.0.0.1:{client}"))
            .arg(format!("--advertise-client-urls=http://127.0.0.1:{client}"))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
            .arg(format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"))
            .arg(format!("--initial-cluster=etcd=http://127.0.0.1:{peer}"))
            .spawn()
            .expect("etcd is installed by the README's test command (Debian package etcd-server)");
        self.etcd = Some(child);
        crate::faults::wait_listening(client, "etcd");
    }

    fn start_haproxy(&mut self) {
        let log = self.dir.path().join("haproxy.log");
        let mut cmd = processes::command("haproxy", &log, None, self.dir.path());
        // -db: in the foreground, so the child is HAProxy itself.
        let child = cmd
            .arg("-db")
            .arg("-f")
            .arg(self.dir.path().join("haproxy.cfg"))
            .spawn()
            .expect("haproxy is installed by the README's test command (Debian package haproxy)");
        self.haproxy = Some(child);
        crate::faults::wait_listening(self.port, "haproxy");
    }

    fn write_configs(&self) {
        let specs: Vec<config::NodeSpec<'_>> = self
            .nodes
            .iter()
            .map(|n| config::NodeSpec { name: &n.name, pg_port: n.pg_port, api_port: n.api_port, dir: &n.dir })
            .collect();
        for (node, spec) in self.nodes.iter().zip(&specs) {
            std::fs::create_dir_all(&node.dir).unwrap();
            std::fs::write(node.dir.join("patroni.yml"), config::patroni(spec, self.etcd_ports.0)).unwrap();
        }
        std::fs::write(self.dir.path().join("haproxy.cfg"), config::haproxy(self.port, &specs)).unwrap();
        if let Some((uid, gid)) = self.owner {
            processes::chown_tree(self.dir.path(), uid, gid);
        }
    }
}

impl Drop for PatroniCluster {
    fn drop(&mut self) {
        processes::stop(self.haproxy.take());
        for node in &mut self.nodes {
            processes::kill_node(&node.dir.join("data"), node.patroni.take());
        }
        processes::stop(self.etcd.take());
    }
}
