//! Names the commit the binary was built from, for `hotline_build_info` and
//! the status page: `HOTLINE_GIT_COMMIT` when the builder sets it (an image
//! built without `.git`), otherwise what git says, otherwise "unknown".

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=HOTLINE_GIT_COMMIT");
    let commit = std::env::var("HOTLINE_GIT_COMMIT").ok().filter(|c| !c.is_empty()).or_else(git_commit);
    println!("cargo:rustc-env=HOTLINE_GIT_COMMIT={}", commit.as_deref().unwrap_or("unknown"));
}

fn git_commit() -> Option<String> {
    let git_dir = git(&["rev-parse", "--git-dir"])?;
    // Build again when HEAD moves: HEAD itself, the branch it names, packed refs.
    for file in ["HEAD", "packed-refs"] {
        watch(&Path::new(&git_dir).join(file));
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch(&Path::new(&git_dir).join(branch));
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}

/// Only existing files: Cargo would rebuild on every run for a missing one.
fn watch(path: &Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
