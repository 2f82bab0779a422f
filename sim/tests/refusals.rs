//! The simulator is a token minter with the node's signing key: it must never act on a real root.
use std::process::Command;

fn sim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kubeadm-recover-sim"))
}

/// The personas, started the way the sandbox's symlinks start them.
fn persona(name: &str, dir: &std::path::Path) -> Command {
    let link = dir.join(name);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kubeadm-recover-sim"), &link).unwrap();
    Command::new(link)
}

#[test]
fn personas_refuse_without_a_sandbox_built_by_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["kube-apiserver", "kubelet"] {
        for root in [None, Some("/"), Some(dir.path().to_str().unwrap())] {
            let mut command = persona(name, dir.path());
            command.env_remove("KUBEADM_RECOVER_SIM_ROOT");
            if let Some(root) = root {
                command.env("KUBEADM_RECOVER_SIM_ROOT", root);
            }
            let out = command
                .args([
                    "--secure-port=1",
                    "--tls-cert-file=/etc/kubernetes/pki/apiserver.crt",
                ])
                .output()
                .unwrap();
            assert_ne!(out.status.code(), Some(0), "{name} with root {root:?}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains("simulat") || stderr.contains("sandbox"),
                "{name} with root {root:?} says why: {stderr}"
            );
            std::fs::remove_file(dir.path().join(name)).unwrap();
        }
    }
}

#[test]
fn commands_refuse_the_real_root_and_nonempty_directories() {
    for args in [
        &["node", "--root", "/"][..],
        &["kubelet", "--root", "/"],
        &["config", "--root", "/", "frozen=true"],
    ] {
        let out = sim().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("never on a real root"));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin.conf"), "precious").unwrap();
    let out = sim()
        .args(["node", "--root"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("admin.conf")).unwrap(),
        "precious"
    );
}

#[test]
fn config_rejects_unknown_knobs() {
    let dir = tempfile::tempdir().unwrap();
    let out = sim()
        .args(["config", "--root"])
        .arg(dir.path())
        .arg("frozn=true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("frozn"));
}

/// `kubeadm-recover rehearse` hands over to `rehearse`: it refuses as the product's commands do
/// (the `error:` line, the `Error` document with `-o json`, exit 3), before building anything.
#[test]
fn rehearse_refuses_as_the_product_does() {
    let out = sim()
        .args([
            "rehearse",
            "--product=/nonexistent",
            "--dir=/",
            "--output=json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: --dir /: a rehearsal never runs on a real root"),
        "{stderr}"
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["kind"], "Error");
    assert_eq!(doc["reason"], "Refused");
    assert_eq!(doc["exitCode"], 3);
}
