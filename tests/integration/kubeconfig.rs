//! `kubeconfig prune-expired` and `kubeconfig set-token`.
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use base64::Engine;

use crate::harness::*;

fn jwt(exp: i64) -> String {
    unsigned_jwt(serde_json::json!({"sub": "someone", "exp": exp}))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A kubeconfig mixing valid and expired OIDC, token and certificate users, and an exec user.
fn mixed(expired_cert_b64: &str, old: &str) -> String {
    let fresh = jwt(now() + 3600);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://127.0.0.1:6443\n  name: k\n\
         contexts:\n- context: {{cluster: k, user: admin}}\n  name: admin@k\ncurrent-context: admin@k\n\
         # people sign in with the IdP\nusers:\n\
         - name: admin\n  user:\n    client-certificate-data: {expired_cert_b64}\n    client-key-data: a2V5\n\
         - name: alice\n  user:\n    auth-provider:\n      name: oidc\n      config:\n        client-id: kubernetes\n        id-token: {old}\n        idp-issuer-url: https://idp.example\n        refresh-token: alice-refresh\n\
         - name: bob\n  user:\n    auth-provider:\n      name: oidc\n      config:\n        id-token: {fresh}\n        refresh-token: bob-refresh\n\
         - name: legacy-gcp\n  user:\n    auth-provider:\n      name: gcp\n      config:\n        access-token: {old}\n        refresh-token: gcp-refresh\n        cmd-path: gcloud\n\
         - name: ci\n  user:\n    token: {old}\n\
         - name: eks\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: aws\n      args: [eks, get-token, --cluster-name, prod]\n"
    )
}

/// `kubeconfig prune-expired --yes -o json` on `path`.
fn prune(sim: &SimNode, path: &std::path::Path) -> serde_json::Value {
    sim.run()
        .args([
            "kubeconfig",
            "prune-expired",
            "--yes",
            "-o",
            "json",
            "--kubeconfig",
        ])
        .arg(sim.node_path(path))
        .ok()
        .json()
}

fn expired_admin_cert(sim: &SimNode) -> String {
    std::fs::read_to_string(sim.path("/etc/kubernetes/admin.conf"))
        .unwrap()
        .lines()
        .find_map(|l| l.trim().strip_prefix("client-certificate-data: "))
        .unwrap()
        .to_string()
}

#[test]
fn prune_expired_removes_only_the_expired_token_fields() {
    let sim = SimNode::with(NodeOptions {
        admin_expired: true,
        ..Default::default()
    });
    let dir = sim.node_tempdir();
    let path = dir.path().join("config");
    let old_token = jwt(now() - 3600);
    let text = mixed(&expired_admin_cert(&sim), &old_token);
    std::fs::write(&path, &text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(&path, Some(1000), Some(1000)).unwrap();

    let dry = sim
        .run()
        .args(["kubeconfig", "prune-expired", "--dry-run", "--kubeconfig"])
        .arg(sim.node_path(&path))
        .ok();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "a dry run writes nothing"
    );
    assert!(
        dry.stdout.contains("-        id-token: <redacted sha256:"),
        "{}",
        dry.stdout
    );
    assert!(
        !dry.stdout.contains("alice-refresh"),
        "no secret in the diff: {}",
        dry.stdout
    );

    let doc = prune(&sim, &path);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        without_expired(&text, &old_token)
    );
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(
        (meta.mode() & 0o7777, meta.uid(), meta.gid()),
        (0o640, 1000, 1000)
    );
    let kinds: Vec<(String, String)> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().into(),
                f["user"].as_str().unwrap().into(),
            )
        })
        .collect();
    for expected in [
        ("expiredCertificate", "admin"),
        ("expiredToken", "alice"),
        ("expiredToken", "legacy-gcp"),
        ("expiredToken", "ci"),
        ("execPlugin", "eks"),
    ] {
        assert!(
            kinds.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} in {kinds:?}"
        );
    }
    assert!(
        doc.to_string()
            .contains("aws eks update-kubeconfig --name prod")
    );
    let backup = doc["backup"]["path"].as_str().unwrap();
    assert!(sim.path(backup).is_dir(), "backed up first: {backup}");

    // The real kubectl reads the result.
    let view = std::process::Command::new("kubectl")
        .args(["config", "view", "-o", "json", "--raw", "--kubeconfig"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        view.status.success(),
        "{}",
        String::from_utf8_lossy(&view.stderr)
    );
    let view: serde_json::Value = serde_json::from_slice(&view.stdout).unwrap();
    let user = |name: &str| {
        view["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == name)
            .unwrap()["user"]
            .clone()
    };
    assert_eq!(
        user("alice")["auth-provider"]["config"]["refresh-token"],
        "alice-refresh"
    );
    assert!(user("alice")["auth-provider"]["config"]["id-token"].is_null());
    assert!(user("bob")["auth-provider"]["config"]["id-token"].is_string());
    assert!(user("legacy-gcp")["auth-provider"]["config"]["refresh-token"].is_null());

    // Nothing left to do: a second run changes nothing.
    let again = prune(&sim, &path);
    assert_eq!(again["changed"], false);
}

/// `text` without the lines holding the expired token `old`, nor the refresh-token after an
/// expired access-token (an id-token's refresh-token stays).
fn without_expired(text: &str, old: &str) -> String {
    let mut out = String::new();
    let mut drop_refresh = false;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if (t.starts_with("id-token: ")
            || t.starts_with("token: ")
            || t.starts_with("access-token: "))
            && t.ends_with(old)
        {
            drop_refresh = t.starts_with("access-token");
            continue;
        }
        if drop_refresh && t.starts_with("refresh-token: ") {
            drop_refresh = false;
            continue;
        }
        out.push_str(line);
    }
    out
}

#[test]
fn malformed_or_missing_kubeconfigs_are_refused_and_nothing_changes() {
    let node = Node::new();
    let dir = node.node_tempdir();
    let path = dir.path().join("config");
    let out = node
        .run()
        .args(["kubeconfig", "prune-expired", "--yes", "--kubeconfig"])
        .arg(node.node_path(&path))
        .code(2);
    assert!(out.stderr.contains("--kubeconfig"), "{}", out.stderr);

    let broken = "users:\n- name: a\n  user:\n\ttoken: x\n";
    std::fs::write(&path, broken).unwrap();
    let out = node
        .run()
        .args(["kubeconfig", "prune-expired", "--yes", "--kubeconfig"])
        .arg(node.node_path(&path))
        .code(3);
    assert!(
        out.stderr.contains(&node.node_path(&path)),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("line 4"),
        "names the line: {}",
        out.stderr
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), broken);
}

#[test]
fn set_token_puts_a_fresh_service_account_token_in_a_ci_kubeconfig() {
    let sim = SimNode::start();
    let dir = sim.node_tempdir();
    let path = dir.path().join("ci.conf");
    let ca = base64::engine::general_purpose::STANDARD
        .encode(std::fs::read(sim.path("/etc/kubernetes/pki/ca.crt")).unwrap());
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: https://127.0.0.1:{}\n  name: k\n\
         contexts:\n- context:\n    cluster: k\n    user: ci\n  name: ci\ncurrent-context: ci\n\
         users:\n- name: ci\n  user:\n    token: a-long-lived-secret-token  # from 2019\n- name: person\n  user:\n    client-certificate-data: eA==\n",
        sim.port
    );
    std::fs::write(&path, &text).unwrap();
    let out = sim
        .run()
        .args([
            "kubeconfig",
            "set-token",
            "--user",
            "person",
            "--from",
            "deployer",
        ])
        .args(["-n", "ci", "--yes", "--kubeconfig"])
        .arg(sim.node_path(&path))
        .code(3);
    assert!(out.stderr.contains("no static `token`"), "{}", out.stderr);

    let out = sim
        .run()
        .args([
            "kubeconfig",
            "set-token",
            "--user",
            "ci",
            "--from",
            "deployer",
        ])
        .args(["-n", "ci", "--duration", "1h", "--yes", "--kubeconfig"])
        .arg(sim.node_path(&path))
        .ok();
    assert!(!out.stderr.contains("a-long-lived"), "{}", out.stderr);
    let new = std::fs::read_to_string(&path).unwrap();
    assert!(!new.contains("a-long-lived-secret-token"));
    assert!(
        new.contains("  # from 2019\n- name: person"),
        "only the value changed"
    );
    let whoami = std::process::Command::new("kubectl")
        .args(["auth", "whoami", "-o", "json", "--kubeconfig"])
        .arg(&path)
        .output()
        .unwrap();
    let who: serde_json::Value = serde_json::from_slice(&whoami.stdout).unwrap_or_default();
    assert_eq!(
        who["status"]["userInfo"]["username"],
        "system:serviceaccount:ci:deployer",
        "{}",
        String::from_utf8_lossy(&whoami.stderr)
    );
}
