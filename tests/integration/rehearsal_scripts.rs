//! The kind and Vagrant rehearsal scripts' own logic: the kind script's preflight refusals
//! (with fakes: it runs for real at the end of tests/run.sh), and the admin.conf expiry both
//! rehearsals start from, on a simulated node.
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::*;

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/rehearsal")
        .join(name)
}

/// A PATH of only the given programs: real ones (linked from the system) and fakes (scripts
/// that log their arguments to `calls` and print `output` on stdout and stderr).
struct FakePath {
    dir: tempfile::TempDir,
}

impl FakePath {
    fn new(real: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for program in real {
            let found = kubeadm_recover::node::on_path(program)
                .unwrap_or_else(|| panic!("{program} is not on PATH"));
            std::os::unix::fs::symlink(found, dir.path().join(program)).unwrap();
        }
        FakePath { dir }
    }

    fn fake(self, program: &str, exit: i32, output: &str) -> Self {
        let path = self.dir.path().join(program);
        let calls = self.dir.path().join("calls");
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"{program} $*\" >> '{}'\necho '{output}'\necho '{output}' >&2\nexit {exit}\n",
                calls.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        self
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("calls")).unwrap_or_default()
    }

    fn run_kind_script(&self, env: &[(&str, &str)]) -> (i32, String) {
        let out = Command::new("/bin/bash")
            .arg(script("kind.sh"))
            .env_clear()
            .env("PATH", self.dir.path())
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// What kind.sh uses before it decides.
const SHELL_TOOLS: &[&str] = &["dirname", "date", "tail", "grep"];

/// A PATH with the tools kind.sh asks for first (never run before it refuses).
fn basics() -> FakePath {
    FakePath::new(SHELL_TOOLS)
        .fake("python3", 0, "")
        .fake("ssh", 0, "")
        .fake("ssh-keygen", 0, "")
}

#[test]
fn the_kind_rehearsal_refuses_clearly_and_touches_nothing_without_what_it_needs() {
    // No docker at all.
    let path = basics().fake("kind", 0, "");
    let (code, err) = path.run_kind_script(&[]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("refused: docker (the client) is not installed")
            && err.contains(
                "what to do: install Docker (or Debian's docker.io), or rehearse on the simulator"
            ),
        "{err}"
    );

    // Docker, but no static binary: refused, with the command that builds it.
    let path = basics().fake("docker", 0, "").fake("kind", 0, "");
    let (code, err) =
        path.run_kind_script(&[("KUBEADM_RECOVER_BINARY", "/nonexistent/kubeadm-recover")]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("refused: no static kubeadm-recover at /nonexistent/kubeadm-recover")
            && err.contains("cargo build --release --target x86_64-unknown-linux-musl"),
        "{err}"
    );
    assert_eq!(path.calls(), "", "nothing asked, nothing created");

    // No engine answers, and not root: starting one needs root.
    let no_engine = || {
        basics()
            .fake(
                "docker",
                1,
                "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?",
            )
            .fake("kind", 0, "")
            .fake("dockerd", 0, "")
    };
    let path = no_engine().fake("id", 0, "1000");
    let (code, err) = path.run_kind_script(&[("KUBEADM_RECOVER_BINARY", "/bin/sh")]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("refused: no Docker engine answers, and starting one of its own needs root")
            && err.contains("systemctl start docker"),
        "{err}"
    );
    assert_eq!(
        path.calls(),
        "docker info\nid -u\n",
        "only asked, created nothing"
    );

    // Root, but a kernel without overlayfs: the engine's overlay2 cannot work.
    let filesystems = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(filesystems.path(), "nodev\ttmpfs\n\text4\n").unwrap();
    let path = no_engine().fake("id", 0, "0").fake("modprobe", 1, "");
    let (code, err) = path.run_kind_script(&[
        ("KUBEADM_RECOVER_BINARY", "/bin/sh"),
        ("PROC_FILESYSTEMS", filesystems.path().to_str().unwrap()),
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("refused: this kernel has no overlayfs"),
        "{err}"
    );
    assert_eq!(path.calls(), "docker info\nid -u\nmodprobe overlay\n");

    // A cluster of one of its names exists on the user's engine: it is someone's, and the
    // script deletes the clusters it uses at the end, so it refuses rather than use (and
    // delete) it.
    let path = basics()
        .fake("docker", 0, "")
        .fake("kind", 0, "kubeadm-recover-single");
    let (code, err) = path.run_kind_script(&[("KUBEADM_RECOVER_BINARY", "/bin/sh")]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("a kind cluster named kubeadm-recover-single exists already"),
        "{err}"
    );
    assert_eq!(
        path.calls(),
        "docker info\nkind version\nkind get clusters\n",
        "nothing created, nothing deleted"
    );
}

#[test]
fn expire_admin_conf_locks_the_admin_out_and_regenerate_lets_them_back_in() {
    let node = SimNode::start();
    let admin = node.path("/etc/kubernetes/admin.conf");
    let mode_before = std::fs::metadata(&admin).unwrap().permissions().mode();
    let before = std::fs::read_to_string(&admin).unwrap();

    bash_ok([
        script("expire-admin-conf.sh").as_os_str(),
        node.root().as_os_str(),
    ]);

    // Only the two credential lines changed, owner and mode kept.
    let after = std::fs::read_to_string(&admin).unwrap();
    let changed: Vec<(&str, &str)> = before
        .lines()
        .zip(after.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(changed.len(), 2, "{changed:?}");
    assert!(
        changed[0]
            .0
            .trim_start()
            .starts_with("client-certificate-data:")
    );
    assert!(changed[1].0.trim_start().starts_with("client-key-data:"));
    assert_eq!(
        std::fs::metadata(&admin).unwrap().permissions().mode(),
        mode_before
    );

    // The tool sees it expired, with the same identity; the apiserver refuses it.
    let status = node.status();
    let credential = &status["credentials"][0];
    assert_eq!(credential["expired"], true, "{status}");
    assert_eq!(credential["notAfter"], "2020-01-02T00:00:00Z");
    assert_eq!(
        credential["subject"],
        "O=kubeadm:cluster-admins, CN=kubernetes-admin"
    );
    let refused = node.kubectl("/etc/kubernetes/admin.conf", &["auth", "whoami"]);
    assert_ne!(refused.code, 0, "an expired admin.conf still works");

    // The break-glass step the rehearsals then run.
    node.run()
        .args(["admin-conf", "regenerate", "--yes", "-o", "json"])
        .ok();
    let whoami = node.kubectl(
        "/etc/kubernetes/admin.conf",
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    );
    assert_eq!(whoami.stdout, "kubernetes-admin", "{}", whoami.stderr);
}
