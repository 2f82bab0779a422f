use crate::harness::*;

#[test]
fn status_shows_the_flag_version_and_credentials() {
    let node = Node::new();
    let out = node.run().arg("status").ok();
    assert!(
        out.stdout
            .contains("--service-account-extend-token-expiration: not set (default true)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("version 1.30.2"));
    assert!(out.stdout.contains("strays    none"));
    assert!(out.stdout.contains(
        "/etc/kubernetes/admin.conf: O=kubeadm:cluster-admins, CN=kubernetes-admin (expires in 36"
    ));
    assert!(
        out.stdout.contains(
            "/etc/kubernetes/super-admin.conf: O=system:masters, CN=kubernetes-super-admin"
        )
    );
}

#[test]
fn status_json_is_a_versioned_document_on_stdout() {
    let node = Node::with_fixture("hand-edited.yaml");
    // Global options are accepted after the subcommand too.
    let out = Run::new()
        .args(["status", "-o", "json", "--root"])
        .arg(node.root())
        .ok();
    let doc = out.json();
    assert_eq!(doc["apiVersion"], "kubeadm-recover/v1");
    assert_eq!(doc["kind"], "Status");
    let flag = &doc["manifest"]["extendTokenExpiration"];
    assert_eq!(flag["state"], "explicit");
    assert_eq!(flag["value"], true, "the last, bare occurrence wins");
    assert_eq!(flag["occurrences"].as_array().unwrap().len(), 2);
    assert_eq!(doc["manifest"]["version"], "1.29.4");
    assert_eq!(doc["credentials"][0]["expired"], false);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

#[test]
#[cfg_attr(
    not(feature = "test-clock"),
    ignore = "needs the test clock: run tests/run.sh (--features test-clock)"
)]
fn status_reports_expired_credentials_and_old_defaults() {
    let node = Node::with_fixture("kubeadm-1.18.yaml");
    let two_years_later = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2 * 365 * 86400)
        .to_string();
    let out = node
        .run()
        .arg("status")
        .env("KUBEADM_RECOVER_NOW", &two_years_later)
        .ok();
    assert!(
        out.stdout.contains("not set (default false)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("CN=kubernetes-admin (EXPIRED)"),
        "{}",
        out.stdout
    );
}

#[test]
fn status_reports_a_broken_manifest_and_a_missing_credential_without_failing() {
    let node = Node::with_manifest_text("apiVersion: v1\nkind: Pod\nspec:\n\tcontainers: []\n");
    std::fs::remove_file(node.path("/etc/kubernetes/super-admin.conf")).unwrap();
    std::fs::write(node.path("/etc/kubernetes/admin.conf"), "users: [").unwrap();
    let out = node.run().arg("status").ok();
    assert!(
        out.stdout
            .contains("PROBLEM: line 4, column 1: a tab is used for indentation"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("admin.conf: not a kubeconfig"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("super-admin.conf: not present"),
        "{}",
        out.stdout
    );
}

#[test]
fn status_lists_strays() {
    let node = Node::new();
    std::fs::copy(
        node.manifest_path(),
        node.path("/etc/kubernetes/manifests/kube-apiserver.yaml.bak"),
    )
    .unwrap();
    let doc = node.run().args(["status", "-o", "json"]).ok().json();
    assert_eq!(
        doc["strays"][0]["path"],
        "/etc/kubernetes/manifests/kube-apiserver.yaml.bak"
    );
}
