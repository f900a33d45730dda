//! The cluster's processes: started as the `postgres` user when the tests
//! run as root, each writing to its own log; killed as a crash would kill
//! them, and reaped so that a node can start again on its data.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The `postgres` user's uid and gid when running as root (PostgreSQL refuses root).
pub(super) fn postgres_owner() -> Option<(u32, u32)> {
    let id = |args: &[&str]| -> Option<u32> {
        let out = Command::new("id").args(args).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    if id(&["-u"]) != Some(0) {
        return None;
    }
    let uid = id(&["-u", "postgres"]).expect("a postgres user (Debian's postgresql package creates it)");
    Some((uid, id(&["-g", "postgres"]).unwrap_or(uid)))
}

/// Where `program` is installed: on the `PATH`, or in `/usr/sbin` (HAProxy's
/// place on Debian, not on every user's `PATH`).
fn installed(program: &str) -> std::path::PathBuf {
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join(program)).find(|p| p.is_file()));
    on_path.unwrap_or_else(|| Path::new("/usr/sbin").join(program))
}

/// `program`, its output to `log`, as `owner` if given, with `home` as its home.
pub(super) fn command(program: &str, log: &Path, owner: Option<(u32, u32)>, home: &Path) -> Command {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    let mut cmd = Command::new(installed(program));
    cmd.stdin(Stdio::null()).stdout(out).stderr(err).env("HOME", home);
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// Gives `dir` and everything in it to `uid`:`gid`.
pub(super) fn chown_tree(dir: &Path, uid: u32, gid: u32) {
    let status = Command::new("chown").arg("-R").arg(format!("{uid}:{gid}")).arg(dir).status().unwrap();
    assert!(status.success(), "chown {}", dir.display());
}

/// The postmaster's process id from its lock file, if it has one.
fn postmaster_pid(data: &Path) -> Option<u32> {
    std::fs::read_to_string(data.join("postmaster.pid")).ok()?.lines().next()?.trim().parse().ok()
}

/// Whether `pid` is a live process (not gone, not a zombie waiting to be reaped).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
}

fn sigkill(pid: u32) {
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
}

/// SIGKILL of the node's postmaster, then of its Patroni (which reaps the
/// postmaster first, so no zombie keeps its lock file).
pub(super) fn kill_node(data: &Path, patroni: Option<Child>) {
    if let Some(pid) = postmaster_pid(data).filter(|pid| alive(*pid)) {
        sigkill(pid);
        for _ in 0..50 {
            if !alive(pid) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    stop(patroni);
}

/// SIGKILL and reap.
pub(super) fn stop(child: Option<Child>) {
    if let Some(mut child) = child {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Before a node starts again on `data`: its old postmaster is gone, and a
/// lock file it left is removed if the process it names is dead or a zombie
/// nobody reaped (PostgreSQL would refuse the data directory otherwise).
pub(super) fn wait_postmaster_gone(data: &Path) {
    let Some(pid) = postmaster_pid(data) else { return };
    for _ in 0..500 {
        if !alive(pid) {
            let _ = std::fs::remove_file(data.join("postmaster.pid"));
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the postmaster {pid} of {} did not end", data.display());
}

/// The last `lines` lines of a log, headed by its name.
pub(super) fn tail(file: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    format!("== {}\n{}", file.display(), all[all.len().saturating_sub(lines)..].join("\n"))
}
