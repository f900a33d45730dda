//! Project automation. `cargo xtask test` is the README's test command: on a
//! fresh Debian machine with Rust it installs and starts PostgreSQL and Redis
//! from Debian packages when they are missing, prepares a database role for
//! the tests, and runs every test of the workspace against both databases.
//! `cargo xtask test --sqlite` is the quick loop for a machine without
//! PostgreSQL: the same, less every test with `postgres` in its path.

use std::net::{SocketAddr, TcpStream};
use std::process::{Command, ExitCode};
use std::thread::sleep;
use std::time::Duration;

type Result<T = ()> = std::result::Result<T, String>;

/// The role the tests use; it may create (and drop) its own databases.
const PG_ROLE: &str = "hotline";
const PG_TEST_URL: &str = "postgres://hotline:hotline@127.0.0.1:5432/postgres";
const REDIS_TEST_URL: &str = "redis://127.0.0.1:6379";
/// Redis's settings as the revocation cache needs them (shared with the tests and benchmarks).
const REDIS_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/redis/cache.conf");

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") if args.get(1).is_some_and(|a| a == "--sqlite") => test(Databases::SqliteOnly, &args[2..]),
        Some("test") => test(Databases::Both, &args[1..]),
        Some("services") => services(Databases::Both),
        _ => Err("usage: cargo xtask test [--sqlite] [<cargo test args>] | cargo xtask services".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Which databases the tests run against.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Databases {
    /// PostgreSQL and SQLite: every test (the README's test command, CI).
    Both,
    /// SQLite only: PostgreSQL is neither installed nor started, and tests needing it are left out.
    SqliteOnly,
}

fn test(databases: Databases, extra: &[String]) -> Result {
    services(databases)?;
    step("cargo clippy (warnings are errors)");
    run(Command::new("cargo").args(["clippy", "--workspace", "--all-targets", "--quiet", "--", "-D", "warnings"]))?;
    // Tests run the real binaries (ca-sim, hotline) from outside their own packages,
    // where cargo would not build them on its own.
    step("cargo build: every binary the tests run");
    run(Command::new("cargo").args(["build", "--workspace", "--bins", "--quiet"]))?;
    step("cargo test: every test of the workspace, against PostgreSQL and SQLite");
    let mut cmd = Command::new("cargo");
    cmd.args(["test", "--workspace", "--all-targets"]).env("HOTLINE_TEST_REDIS_URL", REDIS_TEST_URL);
    match databases {
        Databases::Both => {
            cmd.args(extra).env("HOTLINE_TEST_PG_URL", PG_TEST_URL);
        }
        Databases::SqliteOnly => {
            // Every test that needs PostgreSQL has `postgres` in its path; the test kit refuses one that does not.
            let (cargo_args, test_args) = match extra.iter().position(|a| a == "--") {
                Some(i) => (&extra[..i], &extra[i + 1..]),
                None => (extra, &[][..]),
            };
            cmd.args(cargo_args)
                .arg("--")
                .args(test_args)
                .args(["--skip", "postgres"])
                .env("HOTLINE_TEST_SQLITE_ONLY", "1");
        }
    }
    run(&mut cmd)?;
    // Doc tests run separately: `--all-targets` leaves them out.
    run(Command::new("cargo").args(["test", "--workspace", "--doc", "--quiet"]))
}

/// Makes sure PostgreSQL, Redis, curl, openssl, promtool, Chromium, chromedriver, a Japanese font and (with
/// PostgreSQL) etcd, Patroni and HAProxy are installed, and PostgreSQL and Redis are running.
fn services(databases: Databases) -> Result {
    let postgres = databases == Databases::Both;
    let mut missing = Vec::new();
    if postgres && !on_path("pg_ctlcluster") {
        missing.extend(["postgresql", "postgresql-client"]);
    }
    if !on_path("redis-server") {
        missing.push("redis-server");
    }
    if !on_path("curl") {
        missing.push("curl");
    }
    // The CA sync tests check CRLs with the openssl command as an independent verifier.
    if !on_path("openssl") {
        missing.push("openssl");
    }
    // The status page is tested in headless Chromium through chromedriver.
    if !on_path("chromedriver") {
        missing.extend(["chromium", "chromium-driver"]);
    }
    // The console's screenshots show Japanese: a Japanese font, or every character is a box.
    if !std::path::Path::new("/usr/share/fonts/opentype/ipafont-gothic").exists() {
        missing.push("fonts-ipafont-gothic");
    }
    // promtool checks and unit-tests the alert rules.
    if !on_path("promtool") {
        missing.push("prometheus");
    }
    // The failover tests run a replicated PostgreSQL of their own: etcd, Patroni, HAProxy.
    if postgres {
        for (program, package) in [("etcd", "etcd-server"), ("patroni", "patroni"), ("haproxy", "haproxy")] {
            if !on_path(program) {
                missing.push(package);
            }
        }
    }
    if !missing.is_empty() {
        step(&format!("installing Debian packages: {}", missing.join(" ")));
        as_root(&["apt-get", "update", "-qq"])?;
        let mut args =
            vec!["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq", "--no-install-recommends"];
        args.extend(&missing);
        as_root(&args)?;
    }
    if postgres && !listening(5432) {
        step("starting PostgreSQL");
        let versions = std::fs::read_dir("/etc/postgresql")
            .map_err(|e| format!("no PostgreSQL cluster in /etc/postgresql: {e}"))?;
        for version in versions.flatten() {
            let v = version.file_name().to_string_lossy().into_owned();
            as_root(&["pg_ctlcluster", "--skip-systemctl-redirect", &v, "main", "start"])?;
        }
        wait_for(5432, "PostgreSQL")?;
    }
    if postgres {
        ensure_pg_role()?;
    }
    if !listening(6379) {
        step("starting Redis (nothing kept on disk)");
        run(Command::new("redis-server").arg(REDIS_CONFIG).args(["--port", "6379", "--daemonize", "yes"]))?;
        wait_for(6379, "Redis")?;
    }
    forget_test_keys();
    Ok(())
}

/// Tests that share the standing Redis write under `hlt…` prefixes; clear what earlier runs left.
fn forget_test_keys() {
    let Ok(out) = Command::new("redis-cli").args(["--scan", "--pattern", "hlt*"]).output() else { return };
    let keys: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    for chunk in keys.chunks(500) {
        let _ = Command::new("redis-cli").arg("UNLINK").args(chunk).output();
    }
}

/// Creates the test role if it is missing, and drops databases left by interrupted runs.
fn ensure_pg_role() -> Result {
    let create = format!(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{PG_ROLE}') THEN \
         CREATE ROLE {PG_ROLE} LOGIN PASSWORD '{PG_ROLE}' CREATEDB; END IF; END $$;"
    );
    as_postgres(&["psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-c", &create])?;
    let leftovers = Command::new("psql")
        .args(["-At", "-d", PG_TEST_URL, "-c", "SELECT datname FROM pg_database WHERE datname LIKE 'hotline_test_%'"])
        .output()
        .map_err(|e| format!("psql: {e}"))?;
    for name in String::from_utf8_lossy(&leftovers.stdout).lines().filter(|l| !l.is_empty()) {
        let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        let _ = Command::new("psql").args(["-q", "-d", PG_TEST_URL, "-c", &drop]).status();
    }
    Ok(())
}

fn step(what: &str) {
    eprintln!("==> {what}");
}

fn run(cmd: &mut Command) -> Result {
    let status = cmd.status().map_err(|e| format!("could not run {cmd:?}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{cmd:?} failed ({status})")) }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

fn as_root(args: &[&str]) -> Result {
    if is_root() { run(Command::new(args[0]).args(&args[1..])) } else { run(Command::new("sudo").args(args)) }
}

/// Runs a command as the `postgres` system user (peer authentication on the local socket).
fn as_postgres(args: &[&str]) -> Result {
    if is_root() {
        run(Command::new("runuser").args(["-u", "postgres", "--"]).args(args))
    } else {
        run(Command::new("sudo").args(["-u", "postgres"]).args(args))
    }
}

/// Whether `program` is installed: on the `PATH`, or in `/usr/sbin`, where
/// Debian puts some (HAProxy) that a user's `PATH` may leave out.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
        || std::path::Path::new("/usr/sbin").join(program).is_file()
}

fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_millis(300)).is_ok()
}

fn wait_for(port: u16, what: &str) -> Result {
    for _ in 0..60 {
        if listening(port) {
            return Ok(());
        }
        sleep(Duration::from_millis(500));
    }
    Err(format!("{what} did not start listening on port {port}"))
}
