use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use crate::harness::*;

fn expired() -> NodeOptions {
    NodeOptions {
        admin_expired: true,
        ..Default::default()
    }
}

fn kubectl(sim: &SimNode, kubeconfig: &str, args: &[&str]) -> std::process::Output {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(sim.path(kubeconfig))
        .args(args)
        .output()
        .expect("kubectl on PATH")
}

/// The client certificate embedded in a kubeconfig, as PEM.
fn embedded(sim: &SimNode, kubeconfig: &str, field: &str) -> String {
    use base64::Engine;
    let text = std::fs::read_to_string(sim.path(kubeconfig)).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(field))
        .unwrap();
    let b64 = line.split_once(':').unwrap().1.trim();
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

fn subject(sim: &SimNode, index: usize) -> String {
    sim.status()["credentials"][index]["subject"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn an_expired_admin_conf_is_reissued_with_the_same_identity_and_works_with_kubectl() {
    let sim = SimNode::with(expired());
    let old_bytes = std::fs::read(sim.path("/etc/kubernetes/admin.conf")).unwrap();
    let old_subject = subject(&sim, 0);
    assert_eq!(sim.status()["credentials"][0]["expired"], true);
    let denied = kubectl(&sim, "/etc/kubernetes/admin.conf", &["auth", "whoami"]);
    assert!(
        !denied.status.success(),
        "the expired credential is refused first"
    );

    let doc = sim
        .run()
        .args(["admin-conf", "regenerate", "--yes", "-o", "json"])
        .ok()
        .json();
    assert_eq!(doc["verified"], true);
    assert_eq!(
        doc["credentials"][0]["verifiedAs"]["username"],
        "kubernetes-admin"
    );

    let whoami = kubectl(
        &sim,
        "/etc/kubernetes/admin.conf",
        &["auth", "whoami", "-o", "json"],
    );
    assert!(
        whoami.status.success(),
        "{}",
        String::from_utf8_lossy(&whoami.stderr)
    );
    let who: serde_json::Value = serde_json::from_slice(&whoami.stdout).unwrap();
    assert_eq!(who["status"]["userInfo"]["username"], "kubernetes-admin");
    let livez = kubectl(
        &sim,
        "/etc/kubernetes/admin.conf",
        &["get", "--raw", "/livez"],
    );
    assert_eq!(String::from_utf8_lossy(&livez.stdout).trim(), "ok");

    let cert = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        cert.path(),
        embedded(
            &sim,
            "/etc/kubernetes/admin.conf",
            "client-certificate-data",
        ),
    )
    .unwrap();
    let verify = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(sim.path("/etc/kubernetes/pki/ca.crt"))
        .arg(cert.path())
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "openssl verify: {}",
        String::from_utf8_lossy(&verify.stdout)
    );

    assert_eq!(subject(&sim, 0), old_subject, "same CN and O");
    assert_eq!(sim.status()["credentials"][0]["expired"], false);
    let backup = sim.path(doc["backup"]["path"].as_str().unwrap());
    assert_eq!(
        std::fs::read(backup.join("admin.conf")).unwrap(),
        old_bytes,
        "the old file is in the backup"
    );
    let meta = std::fs::metadata(sim.path("/etc/kubernetes/admin.conf")).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
}

#[test]
fn ecdsa_cas_and_pre_1_29_nodes_keep_key_type_and_system_masters() {
    let sim = SimNode::with(NodeOptions {
        version: "1.27.9".into(),
        key_type: kubeadm_recover::credentials::pki::KeyType::EcdsaP256,
        admin_expired: true,
        ..Default::default()
    });
    let out = sim.run().args(["admin-conf", "regenerate", "--yes"]).ok();
    assert!(
        out.stderr.contains("system:masters") && out.stderr.contains("--validity 24h"),
        "warns that it cannot be revoked, and how to keep it short: {}",
        out.stderr
    );
    let short = sim
        .run()
        .args(["admin-conf", "regenerate", "--yes", "--validity", "24h"])
        .ok();
    assert!(
        short.stderr.contains("Keep it offline") && !short.stderr.contains("--validity 24h"),
        "already short-lived: {}",
        short.stderr
    );
    assert!(
        embedded(&sim, "/etc/kubernetes/admin.conf", "client-key-data")
            .starts_with("-----BEGIN EC PRIVATE KEY-----")
    );
    assert!(subject(&sim, 0).contains("O=system:masters"));
    let whoami = kubectl(&sim, "/etc/kubernetes/admin.conf", &["auth", "whoami"]);
    assert!(
        whoami.status.success(),
        "{}",
        String::from_utf8_lossy(&whoami.stderr)
    );
}

#[test]
fn a_missing_old_key_or_a_missing_old_file_is_no_obstacle() {
    let sim = SimNode::with(expired());
    let admin = sim.path("/etc/kubernetes/admin.conf");
    let without_key: String = std::fs::read_to_string(&admin)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("client-key-data"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&admin, without_key).unwrap();
    sim.run().args(["admin-conf", "regenerate", "--yes"]).ok();
    assert!(
        kubectl(&sim, "/etc/kubernetes/admin.conf", &["auth", "whoami"])
            .status
            .success()
    );

    std::fs::remove_file(&admin).unwrap();
    let doc = sim
        .run()
        .args(["admin-conf", "regenerate", "--yes", "-o", "json"])
        .ok()
        .json();
    assert!(
        doc["credentials"][0]["subjectFrom"]
            .as_str()
            .unwrap()
            .starts_with("kubeadm's defaults")
    );
    assert!(
        subject(&sim, 0).contains("O=kubeadm:cluster-admins, CN=kubernetes-admin"),
        "{}",
        subject(&sim, 0)
    );
    assert_eq!(std::fs::metadata(&admin).unwrap().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&admin).unwrap();
    assert!(
        text.contains("current-context: kubernetes-admin@kubernetes"),
        "kubeadm-shaped: {text}"
    );
    assert!(
        kubectl(&sim, "/etc/kubernetes/admin.conf", &["auth", "whoami"])
            .status
            .success()
    );
}

#[test]
fn super_admin_is_regenerated_on_request() {
    let sim = SimNode::with(expired());
    let doc = sim
        .run()
        .args([
            "admin-conf",
            "regenerate",
            "--super-admin",
            "--yes",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(doc["credentials"].as_array().unwrap().len(), 2);
    assert_eq!(
        doc["credentials"][1]["verifiedAs"]["username"],
        "kubernetes-super-admin"
    );
    assert!(subject(&sim, 1).contains("O=system:masters, CN=kubernetes-super-admin"));
    let only = sim
        .run()
        .args([
            "admin-conf",
            "regenerate",
            "--only-super-admin",
            "--yes",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(only["credentials"].as_array().unwrap().len(), 1);
    assert_eq!(only["credentials"][0]["kind"], "super-admin");
}

#[test]
fn copies_are_updated_in_place_and_users_get_a_kubeconfig() {
    let sim = SimNode::with(expired());
    let admin_text = std::fs::read_to_string(sim.path("/etc/kubernetes/admin.conf")).unwrap();
    let admin_user = admin_text.split("users:\n").nth(1).unwrap();
    let copy = format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    server: https://prod.example:6443\n  name: prod\ncontexts:\n- context:\n    cluster: prod\n    user: prod-user\n  name: prod\ncurrent-context: prod\nkind: Config\nusers:\n- name: prod-user\n  user:\n    token: not-a-real-token\n{admin_user}"
    );
    let alice = sim.path("/home/alice/.kube/config");
    std::fs::create_dir_all(alice.parent().unwrap()).unwrap();
    std::fs::write(&alice, &copy).unwrap();
    std::fs::set_permissions(&alice, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(&alice, Some(1000), Some(1000)).unwrap();
    std::fs::create_dir_all(sim.path("/etc")).unwrap();
    std::fs::write(
        sim.path("/etc/passwd"),
        "root:x:0:0:root:/root:/bin/bash\nbob:x:1001:1001::/home/bob:/bin/bash\n",
    )
    .unwrap();
    // bob's home exists and is his (a missing one is refused: tests/integration/confinement.rs).
    std::fs::create_dir_all(sim.path("/home/bob")).unwrap();
    std::os::unix::fs::chown(sim.path("/home/bob"), Some(1001), Some(1001)).unwrap();

    let doc = sim
        .run()
        .args([
            "admin-conf",
            "regenerate",
            "--update-copies",
            "--install-for",
            "bob",
            "--yes",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(doc["copiesUpdated"][0], "/home/alice/.kube/config");
    let updated = std::fs::read_to_string(&alice).unwrap();
    let new_admin = std::fs::read_to_string(sim.path("/etc/kubernetes/admin.conf")).unwrap();
    let prefix_len = copy.find("- name: kubernetes-admin").unwrap();
    assert_eq!(
        &updated[..prefix_len],
        &copy[..prefix_len],
        "every other entry byte for byte"
    );
    let field = |text: &str, name: &str| {
        text.lines()
            .rev()
            .find(|l| l.contains(name))
            .unwrap()
            .to_string()
    };
    assert_eq!(
        field(&updated, "client-certificate-data"),
        field(&new_admin, "client-certificate-data")
    );
    assert_eq!(
        field(&updated, "client-key-data"),
        field(&new_admin, "client-key-data")
    );
    let meta = std::fs::metadata(&alice).unwrap();
    assert_eq!(
        (meta.mode() & 0o777, meta.uid(), meta.gid()),
        (0o640, 1000, 1000)
    );

    let bob = sim.path("/home/bob/.kube/config");
    let meta = std::fs::metadata(&bob).unwrap();
    assert_eq!(
        (meta.mode() & 0o777, meta.uid(), meta.gid()),
        (0o600, 1001, 1001)
    );
    assert_eq!(std::fs::read_to_string(&bob).unwrap(), new_admin);
}

#[test]
fn no_private_key_or_token_is_ever_printed_or_logged() {
    let sim = SimNode::with(expired());
    let ca_key = std::fs::read_to_string(sim.path("/etc/kubernetes/pki/ca.key")).unwrap();
    let mut seen = String::new();
    for args in [
        &["admin-conf", "regenerate", "--yes", "-o", "json", "-v"][..],
        &["admin-conf", "regenerate", "--yes", "-v"],
        &["admin-conf", "regenerate", "--dry-run"],
        &["status", "-o", "json"],
    ] {
        let out = sim.run().args(args).ok();
        seen.push_str(&out.stdout);
        seen.push_str(&out.stderr);
    }
    seen.push_str(
        &std::fs::read_to_string(sim.path("/var/log/kubeadm-recover/audit.jsonl")).unwrap(),
    );
    let key_b64 = std::fs::read_to_string(sim.path("/etc/kubernetes/admin.conf"))
        .unwrap()
        .lines()
        .find(|l| l.contains("client-key-data"))
        .unwrap()
        .split(':')
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    assert!(!seen.contains(&key_b64), "the new key's data leaked");
    assert!(!seen.contains("PRIVATE KEY"), "key material leaked");
    let ca_body: String = ca_key.lines().nth(1).unwrap().to_string();
    assert!(!seen.contains(&ca_body), "the CA key leaked");
    assert!(
        seen.contains("\"serial\""),
        "the audit log does record serials"
    );
}

#[test]
fn with_the_apiserver_down_verification_fails_and_restores_unless_no_verify() {
    let node = Node::new();
    let admin = node.path("/etc/kubernetes/admin.conf");
    let original = std::fs::read(&admin).unwrap();
    let out = node
        .run()
        .args(["admin-conf", "regenerate", "--yes"])
        .code(1);
    assert!(out.stderr.contains("did not verify"), "{}", out.stderr);
    assert_eq!(std::fs::read(&admin).unwrap(), original, "restored");

    let out = node
        .run()
        .args(["admin-conf", "regenerate", "--yes", "--no-verify"])
        .ok();
    assert!(
        out.stdout.contains("NOT verified") && out.stderr.contains("nothing was proved"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert_ne!(std::fs::read(&admin).unwrap(), original);
}

#[test]
fn dry_run_writes_nothing() {
    let node = Node::new();
    let before = node.snapshot();
    let out = node
        .run()
        .args(["admin-conf", "regenerate", "--super-admin", "--dry-run"])
        .ok();
    assert!(out.stdout.contains("plan: re-issue /etc/kubernetes/admin.conf for CN=kubernetes-admin, O=kubeadm:cluster-admins"), "{}", out.stdout);
    assert_eq!(node.snapshot(), before);
}

#[test]
fn the_kubeadm_method_runs_kubeadm_or_says_it_is_missing() {
    let node = Node::new();
    let out = node
        .run()
        .args(["admin-conf", "regenerate", "--method", "kubeadm", "--yes"])
        .env("PATH", "/usr/bin:/bin")
        .code(3);
    assert!(
        out.stderr.contains("needs `kubeadm` on PATH"),
        "{}",
        out.stderr
    );

    let bin = tempfile::tempdir().unwrap();
    let log = bin.path().join("args");
    let fake = bin.path().join("kubeadm");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$@\" >> {}\necho '[renew] admin.conf renewed'\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.path().display());
    let out = node
        .run()
        .args([
            "admin-conf",
            "regenerate",
            "--method",
            "kubeadm",
            "--yes",
            "--no-verify",
        ])
        .env("PATH", &path)
        .ok();
    assert!(
        out.stderr.contains("[renew] admin.conf renewed"),
        "kubeadm's output is shown: {}",
        out.stderr
    );
    let args = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        args.trim(),
        format!("certs renew admin.conf --rootfs={}", node.root().display()),
        "kubeadm's own flags only (it has no --kubeconfig-dir)"
    );
}

#[test]
fn a_pkcs8_ca_key_key_type_override_custom_copy_and_validity_capped_at_the_ca() {
    let sim = SimNode::with(expired());
    let ca_key = sim.path("/etc/kubernetes/pki/ca.key");
    let pkcs8 = Command::new("openssl")
        .args(["pkcs8", "-topk8", "-nocrypt", "-in"])
        .arg(&ca_key)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&pkcs8.stdout).starts_with("-----BEGIN PRIVATE KEY-----"));
    std::fs::write(&ca_key, &pkcs8.stdout).unwrap();
    let copy = sim.path("/srv/ops/admin-copy.conf");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(sim.path("/etc/kubernetes/admin.conf"), &copy).unwrap();

    let doc = sim
        .run()
        .args([
            "admin-conf",
            "regenerate",
            "--key-type",
            "ecdsa-p256",
            "--validity",
            "200000h",
            "--update-copies",
            "--copy",
            "/srv/ops/admin-copy.conf",
            "--yes",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(
        doc["credentials"][0]["cappedToCaExpiry"], true,
        "never past the CA's expiry"
    );
    assert_eq!(doc["copiesUpdated"][0], "/srv/ops/admin-copy.conf");
    assert!(
        embedded(&sim, "/etc/kubernetes/admin.conf", "client-key-data")
            .starts_with("-----BEGIN EC PRIVATE KEY-----")
    );
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        std::fs::read(sim.path("/etc/kubernetes/admin.conf")).unwrap()
    );

    let cert = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        cert.path(),
        embedded(
            &sim,
            "/etc/kubernetes/admin.conf",
            "client-certificate-data",
        ),
    )
    .unwrap();
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(cert.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    assert!(text.contains("Authority Key Identifier"), "{text}");
    assert!(!text.contains("CA:TRUE"));
}
