//! Names the commit in `pps --version`: `pps 0.1.0 (commit 7a78605c1d2e)`.
//!
//! From `PPS_BUILD_COMMIT` when set (a build from a source archive), else from git;
//! without git or outside a checkout, "commit unknown": the build never fails for it.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=PPS_BUILD_COMMIT");
    let commit = std::env::var("PPS_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]));
    // Build again when HEAD moves: HEAD itself (a checkout), the branch it names (a
    // commit), packed refs (a gc). In a worktree HEAD is in its own git dir, the
    // branches in the common one.
    for (flag, files) in [
        ("--git-dir", &["HEAD"][..]),
        ("--git-common-dir", &["packed-refs"][..]),
    ] {
        if let Some(dir) = git(&["rev-parse", flag]) {
            for f in files {
                let p = PathBuf::from(&dir).join(f);
                if p.exists() {
                    println!("cargo:rerun-if-changed={}", p.display());
                }
            }
        }
    }
    if let (Some(common), Some(branch)) = (
        git(&["rev-parse", "--git-common-dir"]),
        git(&["symbolic-ref", "-q", "HEAD"]),
    ) {
        let p = PathBuf::from(common).join(branch);
        if p.exists() {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }
    let commit = commit.unwrap_or_else(|| "unknown".to_owned());
    println!(
        "cargo:rustc-env=PPS_VERSION_LONG={} (commit {commit})",
        env!("CARGO_PKG_VERSION")
    );
}
