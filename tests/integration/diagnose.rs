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
