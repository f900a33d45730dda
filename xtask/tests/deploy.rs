//! The deployment files parse, and refer only to what the service really
//! has: its commands, flags and `HOTLINE_*` variables (from its own list of
//! settings and clap's description of its CLI), ca-sim's flags, and the
//! binaries the image builds.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml_documents(path: &str) -> Vec<Value> {
    let text = read(path);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap_or_else(|e| panic!("{path} does not parse: {e}")))
        .collect()
}

/// Every `HOTLINE_…` variable the service reads, from the service's own list of settings and its CLI.
fn real_variables() -> BTreeSet<String> {
    let vars: BTreeSet<String> = hotline::variables().into_iter().collect();
    assert!(vars.contains("HOTLINE_DATABASE_URL") && vars.contains("HOTLINE_CA_URL") && vars.contains("HOTLINE_LOG"));
    vars
}

/// Every long flag of a command and its subcommands.
fn long_flags(command: &clap::Command, out: &mut BTreeSet<String>) {
    out.extend(command.get_arguments().filter_map(|a| a.get_long()).map(|l| format!("--{l}")));
    for sub in command.get_subcommands() {
        long_flags(sub, out);
    }
}

/// `hotline` subcommands and long flags, from clap's own description of the CLI.
fn real_commands() -> (BTreeSet<String>, BTreeSet<String>) {
    let cli = <hotline::cli::Cli as clap::CommandFactory>::command();
    let commands: BTreeSet<String> = cli.get_subcommands().map(|c| c.get_name().to_owned()).collect();
    let mut flags = BTreeSet::new();
    long_flags(&cli, &mut flags);
    assert!(flags.contains("--listen") && flags.contains("--holders"), "{flags:?}");
    (commands, flags)
}

/// ca-sim's long flags, from clap's description of its CLI.
fn ca_sim_flags() -> BTreeSet<String> {
    let mut flags = BTreeSet::new();
    long_flags(&<ca_sim::cli::Args as clap::CommandFactory>::command(), &mut flags);
    assert!(flags.contains("--latency-ms"), "{flags:?}");
    flags
}

fn variables_in(value: &Value, found: &mut BTreeSet<String>) {
    match value {
        Value::String(s) if s.starts_with("HOTLINE_") => {
            found.insert(s.clone());
        }
        Value::Mapping(m) => {
            for (k, v) in m {
                variables_in(k, found);
                variables_in(v, found);
            }
        }
        Value::Sequence(items) => items.iter().for_each(|v| variables_in(v, found)),
        Value::Tagged(t) => variables_in(&t.value, found),
        _ => {}
    }
}

fn strings(value: &Value) -> Vec<String> {
    value.as_sequence().map(|s| s.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

/// Checks a container's arguments against the real commands and flags.
fn check_hotline_args(args: &[String], commands: &BTreeSet<String>, flags: &BTreeSet<String>, where_: &str) {
    let first = args.first().unwrap_or_else(|| panic!("{where_}: no command"));
    assert!(commands.contains(first), "{where_}: `hotline {first}` is not a command ({commands:?})");
    for arg in args.iter().skip(1).filter(|a| a.starts_with("--")) {
        let flag = arg.split('=').next().unwrap();
        assert!(flags.contains(flag), "{where_}: `{flag}` is not a hotline flag");
    }
}

#[test]
fn the_kubernetes_manifests_parse_and_use_only_real_commands_and_variables() {
    let vars = real_variables();
    let (commands, flags) = real_commands();
    let mut kinds = BTreeSet::new();
    let mut used = BTreeSet::new();
    for entry in std::fs::read_dir(root().join("deploy/kubernetes")).unwrap() {
        let path = entry.unwrap().path();
        let rel = path.strip_prefix(root()).unwrap().to_string_lossy().into_owned();
        for doc in yaml_documents(&rel) {
            let kind = doc["kind"].as_str().unwrap_or_else(|| panic!("{rel}: no kind")).to_owned();
            kinds.insert(kind.clone());
            if kind == "ConfigMap" {
                let data = doc["data"].as_mapping().unwrap();
                used.extend(data.keys().filter_map(|k| k.as_str().map(str::to_owned)));
            }
            let pod = match kind.as_str() {
                "Deployment" | "Job" => &doc["spec"]["template"]["spec"],
                _ => continue,
            };
            assert_eq!(pod["securityContext"]["runAsNonRoot"], Value::Bool(true), "{rel}: non-root");
            for container in pod["containers"].as_sequence().unwrap() {
                assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], Value::Bool(true), "{rel}");
                assert!(
                    container["resources"]["requests"].is_mapping() && container["resources"]["limits"].is_mapping(),
                    "{rel}: resources"
                );
                check_hotline_args(&strings(&container["args"]), &commands, &flags, &rel);
                variables_in(&container["env"], &mut used);
            }
        }
    }
    for kind in ["Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Job", "ConfigMap"] {
        assert!(kinds.contains(kind), "deploy/kubernetes has a {kind}");
    }
    let unknown: Vec<_> = used.difference(&vars).collect();
    assert!(unknown.is_empty(), "variables the service does not read: {unknown:?}");
    // The Secret the manifests refer to carries these two, as the ConfigMap's comment says.
    for secret in ["HOTLINE_DATABASE_URL", "HOTLINE_PII_KEY"] {
        assert!(vars.contains(secret));
    }
    let api = read("deploy/kubernetes/api-deployment.yaml");
    assert!(api.contains("path: /readyz") && api.contains("path: /healthz"), "API probes use the real endpoints");
}

#[test]
fn the_compose_file_parses_and_uses_only_real_commands_flags_and_variables() {
    let vars = real_variables();
    let (commands, flags) = real_commands();
    let ca_sim_flags = ca_sim_flags();
    let mut compose = yaml_documents("deploy/compose.yaml").remove(0);
    // Resolve the `<<: *hotline` merge keys, so the merged services are checked too.
    compose.apply_merge().unwrap();
    let services = compose["services"].as_mapping().unwrap();
    let names: BTreeSet<&str> = services.keys().filter_map(|k| k.as_str()).collect();
    for wanted in [
        "etcd",
        "patroni1",
        "patroni2",
        "patroni3",
        "haproxy",
        "db-init",
        "redis",
        "api-1",
        "api-2",
        "worker",
        "ca-sim",
        "prometheus",
        "grafana",
        "otel-collector",
    ] {
        assert!(names.contains(wanted), "compose has {wanted}");
    }
    let mut used = BTreeSet::new();
    let mut checked = 0;
    for (name, service) in services {
        let name = name.as_str().unwrap();
        variables_in(&service["environment"], &mut used);
        let command = strings(&service["command"]);
        if service["image"].as_str() == Some("hotline:latest") {
            if strings(&service["entrypoint"]) == ["ca-sim"] {
                for flag in command.iter().filter(|a| a.starts_with("--")) {
                    let flag = flag.split('=').next().unwrap();
                    assert!(ca_sim_flags.contains(flag), "compose {name}: `{flag}` is not a ca-sim flag");
                }
            } else {
                check_hotline_args(&command, &commands, &flags, &format!("compose {name}"));
                checked += 1;
            }
        }
    }
    assert!(checked >= 4, "the merged hotline services were checked ({checked})");
    let unknown: Vec<_> = used.difference(&vars).collect();
    assert!(unknown.is_empty(), "variables the service does not read: {unknown:?}");
    // Prometheus scrapes both API instances and the worker.
    let prometheus = yaml_documents("deploy/prometheus/prometheus.yml").remove(0);
    let targets: Vec<String> = prometheus["scrape_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|job| strings(&job["static_configs"][0]["targets"]))
        .collect();
    assert_eq!(targets, ["api-1:8080", "api-2:8080", "worker:8080"]);
    // Traces go to the collector's OTLP/HTTP receiver.
    let otlp = compose["x-hotline"]["environment"]["HOTLINE_OTLP_ENDPOINT"].as_str().unwrap();
    let collector = yaml_documents("deploy/otel/collector.yaml").remove(0);
    let receiver = collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"].as_str().unwrap();
    let port = receiver.rsplit(':').next().unwrap();
    assert_eq!(otlp, format!("http://otel-collector:{port}"), "the services export to the collector");
    assert!(strings(&collector["service"]["pipelines"]["traces"]["receivers"]).contains(&"otlp".to_owned()));
}

#[test]
fn the_image_builds_the_binaries_and_runs_as_a_non_root_user() {
    let dockerfile = read("deploy/Dockerfile");
    assert!(dockerfile.contains("-p hotline -p ca-sim"));
    assert!(dockerfile.lines().filter(|l| l.starts_with("FROM ")).count() >= 2, "multi-stage");
    let user = dockerfile.lines().rev().find_map(|l| l.strip_prefix("USER ")).unwrap();
    assert!(!user.starts_with("root") && !user.starts_with('0'), "runs as {user}");
    assert!(dockerfile.contains("ENTRYPOINT [\"hotline\"]"));
}

#[test]
fn the_grafana_dashboards_are_valid_json_with_queries() {
    for name in ["operators", "validators", "ca-sync"] {
        let text = read(&format!("deploy/grafana/dashboards/{name}.json"));
        let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
        let panels = dash["panels"].as_array().unwrap();
        assert!(panels.len() >= 4, "{name}");
        assert!(
            panels.iter().all(|p| p["targets"].as_array().is_some_and(|t| !t.is_empty())),
            "{name}: every panel queries"
        );
    }
}

#[test]
fn the_database_is_replicated_synchronously_wherever_it_is_deployed() {
    // Patroni (compose, servers): synchronous mode, commits wait for the standby, timings that fit.
    let patroni = yaml_documents("deploy/patroni/patroni.yml").remove(0);
    let dcs = &patroni["bootstrap"]["dcs"];
    assert_eq!(dcs["synchronous_mode"], Value::Bool(true));
    assert_eq!(dcs["postgresql"]["parameters"]["synchronous_commit"].as_str(), Some("on"));
    let seconds = |key: &str| dcs[key].as_u64().unwrap();
    assert!(seconds("loop_wait") + 2 * seconds("retry_timeout") <= seconds("ttl"), "Patroni's rule for its timings");
    // HAProxy routes to the node whose REST API says it is primary, and cuts sessions to one that stops being it.
    let haproxy = read("deploy/haproxy/haproxy.cfg");
    for wanted in ["option httpchk GET /primary", "http-check expect status 200", "on-marked-down shutdown-sessions"] {
        assert!(haproxy.contains(wanted), "haproxy.cfg: {wanted}");
    }
    // Compose: three nodes, each named as its service, and the service reaching the primary through HAProxy.
    let mut compose = yaml_documents("deploy/compose.yaml").remove(0);
    compose.apply_merge().unwrap();
    for node in ["patroni1", "patroni2", "patroni3"] {
        let env = &compose["services"][node]["environment"];
        assert_eq!(env["PATRONI_NAME"].as_str(), Some(node));
        assert_eq!(env["PATRONI_POSTGRESQL_CONNECT_ADDRESS"].as_str(), Some(format!("{node}:5432").as_str()));
        assert!(haproxy.contains(&format!("server {node} {node}:5432")), "HAProxy knows {node}");
    }
    let hotline = &compose["x-hotline"]["environment"];
    assert!(hotline["HOTLINE_DATABASE_URL"].as_str().unwrap().contains("@haproxy:5432/"));
    assert_eq!(hotline["HOTLINE_DATABASE_SYNCHRONOUS_STANDBY"].as_str(), Some("true"));
    // Kubernetes: a CloudNativePG Cluster of three with one synchronous replica, reached by its -rw Service.
    let cluster = yaml_documents("deploy/kubernetes/database-cluster.yaml").remove(0);
    assert_eq!(cluster["kind"].as_str(), Some("Cluster"));
    assert_eq!(cluster["spec"]["instances"].as_u64(), Some(3));
    assert_eq!(cluster["spec"]["postgresql"]["synchronous"]["number"].as_u64(), Some(1));
    let rw = format!("{}-rw", cluster["metadata"]["name"].as_str().unwrap());
    assert!(read("deploy/kubernetes/configmap.yaml").contains(&format!("@{rw}:5432/")), "the Secret's URL names {rw}");
}
