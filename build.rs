//! Puts the git commit the binary was built from into `--version`, so that an operator can tell
//! which build sits on a node: `kubeadm-recover 0.1.0 (a1a13ad0c2f4 2026-11-29)`. Built outside a
//! git checkout (a source tarball), it says `unknown commit` rather than failing the build.
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    let commit = match (
        git(&["rev-parse", "--short=12", "HEAD"]),
        git(&["log", "-1", "--format=%cs"]),
    ) {
        (Some(hash), Some(date)) => format!("{hash} {date}"),
        (Some(hash), None) => hash,
        _ => "unknown commit".to_string(),
    };
    println!("cargo:rustc-env=KUBEADM_RECOVER_COMMIT={commit}");
    // A new commit or checkout moves HEAD or the branch it names; rebuild the version then.
    // (Only files that exist: cargo reruns a build script on every build for a missing one.)
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        let mut watched = vec![format!("{dir}/HEAD"), format!("{dir}/packed-refs")];
        if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watched.push(format!("{dir}/{reference}"));
        }
        for path in watched.iter().filter(|p| std::path::Path::new(p).exists()) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
