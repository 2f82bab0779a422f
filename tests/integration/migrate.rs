//! `migrate check` (and its line in `status`) on the simulator; the upstream tier repeats it
//! against the real apiserver.
use crate::harness::*;

pub const TOKEN_SECRET: &str = r#"{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "deployer-token", "annotations": {"kubernetes.io/service-account.name": "deployer"}}, "type": "kubernetes.io/service-account-token"}"#;
pub const RUNNER_POD: &str = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "runner"}, "spec": {"serviceAccountName": "default", "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}], "volumes": [{"name": "sa", "secret": {"secretName": "deployer-token"}}]}}"#;

/// POSTs `object` to `path` with the real kubectl (`kubectl` runs it with its arguments).
pub fn create_raw(kubectl: impl Fn(&[&str]) -> Output, path: &str, object: &str) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), object).unwrap();
    let out = kubectl(&["create", "--raw", path, "-f", file.path().to_str().unwrap()]);
    assert_eq!(out.code, 0, "POST {path}: {}", out.stderr);
}

/// A service-account-token Secret, and a pod that mounts it, in `default`.
pub fn legacy_token_in_use(kubectl: impl Fn(&[&str]) -> Output) {
    create_raw(&kubectl, "/api/v1/namespaces/default/secrets", TOKEN_SECRET);
    create_raw(&kubectl, "/api/v1/namespaces/default/pods", RUNNER_POD);
}

/// `migrate check -o json`: (exit code, document).
pub fn check(node: &impl Sandbox) -> (i32, serde_json::Value) {
    let out = node.run().args(["migrate", "check", "-o", "json"]).output();
    (out.code, out.json())
}

pub fn assert_finds_the_legacy_token(doc: &serde_json::Value) {
    assert_eq!(doc["tokenSecrets"][0]["name"], "deployer-token", "{doc}");
    assert_eq!(doc["tokenSecrets"][0]["serviceAccount"], "deployer");
    assert_eq!(doc["tokenSecrets"][0]["mountedBy"][0], "default/runner");
    assert_eq!(doc["secretMounts"][0]["volume"], "sa");
    assert!(
        doc["secretMounts"][0]["projectedVolume"]
            .as_str()
            .unwrap()
            .contains("serviceAccountToken:"),
        "{doc}"
    );
    assert_eq!(doc["dependsOnExtension"], true);
}

#[test]
fn migrate_check_finds_legacy_tokens_the_pods_mounting_them_and_stale_token_users() {
    let sim = SimNode::with(NodeOptions {
        extra_args: vec!["--audit-log-path=/var/log/kubernetes/audit.log".into()],
        ..Default::default()
    });
    let (code, doc) = check(&sim);
    assert_eq!(
        (code, &doc["dependsOnExtension"]),
        (0, &serde_json::json!(false)),
        "{doc}"
    );
    assert_eq!(
        sim.status()["migration"],
        "nothing depends on long-lived or stale tokens"
    );

    legacy_token_in_use(|args| sim.kubectl("/etc/kubernetes/admin.conf", args));
    crate::sessions::use_a_stale_token(&sim);
    let (code, doc) = check(&sim);
    assert_eq!(code, 1, "something still depends on the extension: {doc}");
    assert_eq!(doc["kind"], "MigrationCheck");
    assert_finds_the_legacy_token(&doc);
    assert_eq!(
        doc["staleTokenUsers"][0]["subject"], "web/frontend",
        "{doc}"
    );
    let status = sim.status();
    assert!(
        status["migration"].as_str().unwrap().starts_with(
            "1 service-account-token secret(s), 1 pod(s) mounting one, 1 stale-token user(s)"
        ),
        "{status}"
    );
    let text = sim.run().args(["migrate", "check"]).code(1).stdout;
    assert!(
        text.contains("default/runner volume sa (secret deployer-token); use instead:"),
        "{text}"
    );
}
