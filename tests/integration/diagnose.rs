//! `diagnose` on a simulated node: each finding that can be staged there.
use crate::harness::*;

fn findings(node: &impl Sandbox) -> Vec<(String, String)> {
    let doc = node.run().args(["diagnose", "-o", "json"]).ok().json();
    assert_eq!(doc["kind"], "Diagnosis");
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn ids(found: &[(String, String)]) -> Vec<&str> {
    found.iter().map(|(id, _)| id.as_str()).collect()
}

#[test]
fn diagnose_names_each_problem_with_its_fix() {
    let sim = SimNode::with(NodeOptions {
        admin_expired: true,
        ..Default::default()
    });
    let copy = sim.path("/root/.kube/config");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(sim.path("/etc/kubernetes/admin.conf"), &copy).unwrap();
    std::fs::write(
        sim.path("/etc/kubernetes/manifests/kube-apiserver.yaml.orig"),
        sim.manifest(),
    )
    .unwrap();

    let found = findings(&sim);
    assert_eq!(found[0].1, "critical", "most severe first: {found:?}");
    for id in [
        "admin-expired",
        "super-admin-expired",
        "stray-manifest",
        "token-extension-on",
    ] {
        assert!(ids(&found).contains(&id), "{id} in {found:?}");
    }
    let text = sim.run().arg("diagnose").ok().stdout;
    assert!(
        text.contains("fix: kubeadm-recover admin-conf regenerate --update-copies"),
        "{text}"
    );

    std::fs::remove_file(sim.path("/etc/kubernetes/manifests/kube-apiserver.yaml.orig")).unwrap();
    sim.run().args(["admin-conf", "regenerate", "--yes"]).ok();
    let found = findings(&sim);
    assert!(!ids(&found).contains(&"admin-expired"), "{found:?}");
    assert!(
        ids(&found).contains(&"kubeconfig-copy-stale"),
        "the copy kept the old one: {found:?}"
    );
}

#[test]
fn a_manifest_the_apiserver_refuses_shows_as_a_crash_loop() {
    let sim = SimNode::start();
    sim.configure(|c| c.reject_args = vec![format!("--{FLAG}=false")]);
    // Written by hand, as an operator with vim would: the kubelet restarts it into a crash loop.
    let text = sim.manifest().replace(
        "    - --advertise-address=127.0.0.1\n",
        &format!("    - --advertise-address=127.0.0.1\n    - --{FLAG}=false\n"),
    );
    std::fs::write(sim.manifest_path(), text).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let found = findings(&sim);
        if ids(&found).contains(&"apiserver-crash-looping") {
            assert_eq!(found[0].1, "critical");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{found:?}");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

/// The expired client certificate of an `admin_expired` node's admin.conf, as PEM.
fn expired_certificate(sim: &SimNode) -> Vec<u8> {
    use base64::Engine;
    let admin = std::fs::read_to_string(sim.path("/etc/kubernetes/admin.conf")).unwrap();
    let data = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("client-certificate-data: "))
        .unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .unwrap()
}

#[test]
fn every_finding_that_can_be_staged_on_a_live_node_is_named() {
    let sim = SimNode::with(NodeOptions {
        admin_expired: true,
        ..Default::default()
    });
    // Another certificate kubeadm manages, expired (the simulated apiserver does not read it).
    std::fs::write(
        sim.path("/etc/kubernetes/pki/apiserver-etcd-client.crt"),
        expired_certificate(&sim),
    )
    .unwrap();
    let found = findings(&sim);
    for id in [
        "certificate-apiserver-etcd-client",
        "admin-expired",
        "token-extension-on",
    ] {
        assert!(ids(&found).contains(&id), "{id} in {found:?}");
    }

    // A change killed while the (frozen) kubelet has not restarted anything: unfinished, and
    // the running apiserver is not the manifest's; its backup then tampered with; a manifest
    // parked by a nudge beside it.
    sim.run().args(["admin-conf", "regenerate", "--yes"]).ok();
    crate::migrate::legacy_token_in_use(|args| sim.kubectl("/etc/kubernetes/admin.conf", args));
    assert!(
        ids(&findings(&sim)).contains(&"depends-on-token-extension"),
        "{:?}",
        findings(&sim)
    );
    sim.killed_mid_change();
    let backup = sim.backup_dirs().pop().unwrap().join("kube-apiserver.yaml");
    std::fs::write(&backup, "tampered").unwrap();
    std::fs::write(
        sim.path("/etc/kubernetes/tmp/kube-apiserver.yaml.kubeadm-recover-nudge"),
        sim.manifest(),
    )
    .unwrap();
    let found = findings(&sim);
    for id in [
        "unfinished-session",
        "manifest-parked",
        "restart-pending",
        "backup-checksum",
    ] {
        assert!(ids(&found).contains(&id), "{id} in {found:?}");
    }
    let doc = sim.run().args(["diagnose", "-o", "json"]).ok().json();
    assert_eq!(
        doc["steps"][0]["args"][0], "resume",
        "finishing the change comes first: {doc}"
    );
}

#[test]
fn every_finding_that_can_be_staged_on_a_stopped_node_is_named() {
    let node = Node::new();
    let text = node.manifest().replace(
        "    - --advertise-address=",
        &format!("    - --{FLAG}=false\n    - --advertise-address="),
    );
    node.write_manifest(&text);
    let found = findings(&node);
    for id in [
        "kubelet-not-running",
        "apiserver-not-running",
        "token-extension-off",
    ] {
        assert!(ids(&found).contains(&id), "{id} in {found:?}");
    }
    let journal = node.path("/var/lib/kubeadm-recover/journal.json");
    std::fs::create_dir_all(journal.parent().unwrap()).unwrap();
    std::fs::write(&journal, "{ garbage").unwrap();
    node.write_manifest("apiVersion: v1\nkind: Pod\nspec:\n\tcontainers: []\n");
    let found = findings(&node);
    for id in ["journal-unreadable", "manifest-unreadable"] {
        assert!(ids(&found).contains(&id), "{id} in {found:?}");
    }
    let doc = node.run().args(["diagnose", "-o", "json"]).ok().json();
    assert_eq!(
        doc["steps"],
        serde_json::json!([]),
        "nothing can be changed: {doc}"
    );
}
