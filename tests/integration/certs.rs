//! `certs check` on simulated nodes with the whole control-plane PKI: what each file holds, what
//! the running apiserver presents (a real TLS handshake with the simulated apiserver, which
//! re-reads its serving certificate as the real one does), and what status and diagnose say.
use std::process::Command;

use crate::harness::*;
use kubeadm_recover::credentials::pki::KeyType;

fn full_node(serving_cert_reload: bool) -> SimNode {
    let mut options = NodeOptions {
        key_type: KeyType::EcdsaP256,
        full_pki: true,
        ..NodeOptions::default()
    };
    options.config.serving_cert_reload = serving_cert_reload;
    SimNode::with(options)
}

/// Re-signs certificates of the node (all kubeadm's when `names` is empty) to have ended
/// `days_ago` days ago (negative: to end in the future).
fn resign(node: &dyn Sandbox, days_ago: i64, names: &[&str]) {
    let out = Command::new(simulator())
        .args([
            "expire-certs",
            &format!("--ended-days-ago={days_ago}"),
            "--root",
        ])
        .arg(node.root())
        .args(names)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn check(node: &dyn Sandbox, code: i32) -> serde_json::Value {
    node.run()
        .args(["certs", "check", "-o", "json"])
        .code(code)
        .json()
}

fn entry<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {doc}"))
}

fn problem_ids(doc: &serde_json::Value) -> Vec<String> {
    doc["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}:{}",
                p["certificate"].as_str().unwrap(),
                p["severity"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn a_healthy_node_lists_every_certificate_and_the_apiserver_presents_its_own() {
    let sim = full_node(true);
    let doc = check(&sim, 0);
    let names: Vec<&str> = doc["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "admin.conf",
            "apiserver",
            "apiserver-etcd-client",
            "apiserver-kubelet-client",
            "controller-manager.conf",
            "etcd-healthcheck-client",
            "etcd-peer",
            "etcd-server",
            "front-proxy-client",
            "scheduler.conf",
            "super-admin.conf",
            "kubelet-client",
            "kubelet-serving",
        ]
    );
    let apiserver = entry(&doc, "apiserver");
    assert_eq!(apiserver["inUse"]["state"], "presented", "{apiserver}");
    assert_eq!(apiserver["signedBy"], "ca");
    assert_eq!(entry(&doc, "etcd-server")["signedBy"], "etcd-ca");
    assert_eq!(
        entry(&doc, "front-proxy-client")["signedBy"],
        "front-proxy-ca"
    );
    assert_eq!(entry(&doc, "kubelet-serving")["signedBy"], "self-signed");
    assert_eq!(
        entry(&doc, "kubelet-client")["path"],
        "/var/lib/kubelet/pki/kubelet-client-current.pem",
        "read through the kubelet's symlink, inside the root"
    );
    assert_eq!(entry(&doc, "kubelet-client")["file"], "present");
    // A sandbox's etcd and kubelet ports would be the host's: never asked.
    assert_eq!(entry(&doc, "etcd-server")["inUse"]["state"], "not-checked");
    assert_eq!(
        entry(&doc, "controller-manager.conf")["inUse"]["state"],
        "not-checked"
    );
    assert!(
        doc["authorities"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["keyOnNode"] == true)
    );
    assert_eq!(doc["problems"], serde_json::json!([]));
    assert!(
        !doc.to_string().contains("PRIVATE KEY"),
        "never a key in the report"
    );
    crate::snapshots::pin(&sim, "certs-check", &["certs", "check"], 0);
}

#[test]
fn expired_leaves_are_each_named_with_their_fix_and_exit_1_in_status_and_diagnose_too() {
    let sim = full_node(true);
    resign(&sim, 30, &[]);
    let doc = check(&sim, 1);
    let problems = problem_ids(&doc);
    for name in [
        "apiserver",
        "apiserver-etcd-client",
        "apiserver-kubelet-client",
        "controller-manager.conf",
        "etcd-healthcheck-client",
        "etcd-peer",
        "etcd-server",
        "front-proxy-client",
        "scheduler.conf",
        "admin.conf",
        "super-admin.conf",
    ] {
        assert!(
            problems.contains(&format!("{name}:critical")),
            "{name}: {problems:?}"
        );
    }
    assert_eq!(
        problems.len(),
        11,
        "the kubelet's own and the CAs are fine: {problems:?}"
    );
    // The apiserver re-read the (expired) file: it presents exactly what is on disk.
    assert_eq!(entry(&doc, "apiserver")["inUse"]["state"], "presented");
    let fix = |name: &str| {
        doc["problems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["certificate"] == name)
            .unwrap()["fix"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(fix("scheduler.conf").contains("then restart kube-scheduler"));
    assert!(fix("apiserver").contains("kube-apiserver re-reads it by itself"));
    assert!(fix("admin.conf").starts_with("kubeadm-recover admin-conf regenerate"));

    let status = sim.status();
    assert_eq!(
        status["certificates"]["expired"].as_array().unwrap().len(),
        11
    );
    let text = sim.run().args(["status"]).ok().stdout;
    assert!(
        text.contains("certificates  EXPIRED: admin.conf, apiserver,"),
        "{text}"
    );

    let diagnosis = sim.run().args(["diagnose", "-o", "json"]).ok().json();
    let ids: Vec<&str> = diagnosis["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"certificate-etcd-server"), "{ids:?}");
    assert!(
        ids.contains(&"certificate-controller-manager.conf"),
        "{ids:?}"
    );
    assert!(ids.contains(&"admin-expired"), "{ids:?}");
    assert!(
        !ids.contains(&"certificate-admin.conf"),
        "admin.conf's expiry is one finding, with this tool's fix: {ids:?}"
    );
}

#[test]
fn a_serving_certificate_renewed_on_disk_but_not_picked_up_is_its_own_finding() {
    let sim = full_node(false);
    let before = entry(&check(&sim, 0), "apiserver")["serial"].clone();
    resign(&sim, -300, &["apiserver"]);
    let doc = check(&sim, 1);
    let apiserver = entry(&doc, "apiserver");
    assert_ne!(apiserver["serial"], before, "renewed on disk");
    assert_eq!(
        apiserver["inUse"]["state"], "presents-another",
        "{apiserver}"
    );
    assert_eq!(
        apiserver["inUse"]["serial"], before,
        "the port still presents the old one"
    );
    assert_eq!(problem_ids(&doc), ["apiserver:warning"]);
    assert!(
        doc["problems"][0]["summary"]
            .as_str()
            .unwrap()
            .contains("renewed on disk but not in use")
    );
    let diagnosis = sim.run().args(["diagnose", "-o", "json"]).ok().json();
    assert!(
        diagnosis["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == "certificate-not-in-use-apiserver"),
        "{diagnosis}"
    );
    assert_eq!(
        sim.status()["certificates"]["notInUse"],
        serde_json::json!(["apiserver"])
    );
}

#[test]
fn a_damaged_certificate_is_named_with_its_file_and_a_link_out_of_the_root_is_not_followed() {
    let node = Node::new();
    std::fs::write(
        node.path("/etc/kubernetes/pki/apiserver.crt"),
        "not a certificate\n",
    )
    .unwrap();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("front-proxy-client.crt");
    std::fs::copy(node.path("/etc/kubernetes/pki/ca.crt"), &secret).unwrap();
    let link = node.path("/etc/kubernetes/pki/front-proxy-client.crt");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    let doc = check(&node, 1);
    let apiserver = entry(&doc, "apiserver");
    assert_eq!(apiserver["file"], "unreadable");
    assert_eq!(apiserver["problem"], "no PEM CERTIFICATE block");
    assert!(problem_ids(&doc).contains(&"apiserver:critical".to_string()));
    // The absolute link resolves inside the root, where nothing is: never the host's file.
    assert_eq!(
        entry(&doc, "front-proxy-client")["file"],
        "missing",
        "{doc}"
    );
}
