//! The test cluster's configuration, made from the deployment's own files
//! (`deploy/patroni/patroni.yml`, `deploy/haproxy/haproxy.cfg`) with only
//! what must differ on one machine changed: addresses, ports, directories,
//! passwords. What the tests exercise (timings, synchronous mode, the
//! HAProxy check) is what a deployment runs.

use std::path::Path;

use serde_yaml_ng::{Mapping, Value};

/// Where the deployment's files are.
const PATRONI_YML: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/patroni/patroni.yml");
const HAPROXY_CFG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/haproxy/haproxy.cfg");

/// One node's own settings.
pub(super) struct NodeSpec<'a> {
    pub name: &'a str,
    pub pg_port: u16,
    pub api_port: u16,
    pub dir: &'a Path,
}

/// The password of every role the cluster has (superuser, replication, rewind).
pub(super) const PASSWORD: &str = "hotline-test";

fn set(map: &mut Value, path: &[&str], value: Value) {
    let mut at = map;
    for key in &path[..path.len() - 1] {
        let key = Value::from(*key);
        let Value::Mapping(m) = at else { panic!("{path:?}: not a mapping in deploy/patroni/patroni.yml") };
        at = m.entry(key).or_insert_with(|| Value::Mapping(Mapping::new()));
    }
    let Value::Mapping(m) = at else { panic!("{path:?}: not a mapping in deploy/patroni/patroni.yml") };
    m.insert(Value::from(*path.last().unwrap_or(&"")), value);
}

/// The server binaries' directory of the PostgreSQL installed here.
pub(super) fn pg_bin_dir() -> String {
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|versions| versions.flatten().map(|v| v.path().join("bin")).find(|b| b.join("initdb").exists()))
        .expect("PostgreSQL's server binaries are installed by the README's test command")
        .display()
        .to_string()
}

/// `deploy/patroni/patroni.yml` for one node of a cluster on loopback.
pub(super) fn patroni(node: &NodeSpec<'_>, etcd_port: u16) -> String {
    let base = std::fs::read_to_string(PATRONI_YML).expect("deploy/patroni/patroni.yml");
    let mut yml: Value = serde_yaml_ng::from_str(&base).expect("deploy/patroni/patroni.yml is YAML");
    let dir = node.dir.display().to_string();
    let api = format!("127.0.0.1:{}", node.api_port);
    let pg = format!("127.0.0.1:{}", node.pg_port);
    let edits: [(&[&str], Value); 14] = [
        (&["name"], node.name.into()),
        (&["restapi", "listen"], api.clone().into()),
        (&["restapi", "connect_address"], api.into()),
        (&["etcd3", "hosts"], format!("127.0.0.1:{etcd_port}").into()),
        (&["postgresql", "listen"], pg.clone().into()),
        (&["postgresql", "connect_address"], pg.into()),
        (&["postgresql", "data_dir"], format!("{dir}/data").into()),
        (&["postgresql", "bin_dir"], pg_bin_dir().into()),
        (&["postgresql", "pgpass"], format!("{dir}/pgpass").into()),
        (&["postgresql", "parameters", "unix_socket_directories"], dir.clone().into()),
        (&["postgresql", "authentication", "superuser", "password"], PASSWORD.into()),
        (&["postgresql", "authentication", "replication", "password"], PASSWORD.into()),
        (&["postgresql", "authentication", "rewind", "password"], PASSWORD.into()),
        (&["log", "dir"], dir.into()),
    ];
    for (path, value) in edits {
        set(&mut yml, path, value);
    }
    serde_yaml_ng::to_string(&yml).expect("YAML out")
}

/// `deploy/haproxy/haproxy.cfg` on loopback: the primary's listener on
/// `port`, one server line per node in place of the deployment's, no stats
/// listener and no Docker resolver.
pub(super) fn haproxy(port: u16, nodes: &[NodeSpec<'_>]) -> String {
    let base = std::fs::read_to_string(HAPROXY_CFG).expect("deploy/haproxy/haproxy.cfg");
    let mut out = String::new();
    let mut section = String::new();
    let mut servers_written = false;
    for line in base.lines() {
        let trimmed = line.trim_start();
        if !line.starts_with(' ') && !trimmed.is_empty() && !trimmed.starts_with('#') {
            section = trimmed.to_owned();
        }
        if section.starts_with("resolvers") || section.starts_with("listen stats") {
            continue;
        }
        if trimmed.starts_with("bind ") {
            out.push_str(&format!("  bind 127.0.0.1:{port}\n"));
        } else if trimmed.starts_with("default-server ") {
            let kept: Vec<&str> = trimmed.split(" resolvers ").next().unwrap_or(trimmed).split_whitespace().collect();
            out.push_str(&format!("  {}\n", kept.join(" ")));
        } else if let Some(server) = trimmed.strip_prefix("server ") {
            if !servers_written {
                // The deployment's options for every node, its address and check port changed.
                let options: Vec<&str> = server.split_whitespace().skip(2).collect();
                for n in nodes {
                    let mut line = format!("  server {} 127.0.0.1:{}", n.name, n.pg_port);
                    let mut tokens = options.iter();
                    while let Some(token) = tokens.next() {
                        line.push(' ');
                        line.push_str(token);
                        if *token == "port" {
                            tokens.next();
                            line.push_str(&format!(" {}", n.api_port));
                        }
                    }
                    out.push_str(&line);
                    out.push('\n');
                }
                servers_written = true;
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(servers_written, "deploy/haproxy/haproxy.cfg has server lines to replace");
    out
}
