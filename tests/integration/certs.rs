//! `certs check` on simulated nodes with the whole control-plane PKI: what each file holds, what
//! the running apiserver presents (a real TLS handshake with the simulated apiserver, which
//! re-reads its serving certificate as the real one does), and what status and diagnose say.

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

fn resign(node: &dyn Sandbox, days_ago: i64, names: &[&str]) {
    expire_certs(node.root(), days_ago, names);
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
    assert!(
        fix("scheduler.conf")
            .starts_with("kubeadm-recover certs renew scheduler.conf (it restarts kube-scheduler")
    );
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

fn renew(node: &dyn Sandbox, args: &[&str], code: i32) -> Output {
    node.run()
        .args(["certs", "renew", "--reason", "certificates expired"])
        .args(args)
        .code(code)
}

#[test]
fn renew_all_brings_an_expired_node_back_step_by_step_each_proved_and_the_real_kubectl_works() {
    let sim = full_node(true);
    resign(&sim, 30, &[]);
    let denied = sim.kubectl("/etc/kubernetes/admin.conf", &["get", "--raw", "/livez"]);
    assert_ne!(
        denied.code, 0,
        "an expired serving certificate: {}",
        denied.stdout
    );
    assert!(
        denied.stderr.contains("x509") || denied.stderr.contains("expired"),
        "{}",
        denied.stderr
    );

    let before = sim.snapshot();
    let dry = renew(&sim, &["all", "--dry-run"], 0);
    assert!(sim.snapshot() == before, "--dry-run writes nothing");
    assert!(
        dry.stdout.contains("re-issue etcd-server"),
        "{}",
        dry.stdout
    );

    let doc = renew(&sim, &["all", "--yes", "-o", "json"], 0).json();
    let titles: Vec<&str> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        [
            "etcd",
            "kube-apiserver",
            "admin credentials",
            "kube-controller-manager",
            "kube-scheduler"
        ]
    );
    assert_eq!(
        doc["validitySource"], "default",
        "the ConfigMap cannot be read with an expired admin.conf"
    );
    assert_eq!(doc["validity"], "8760h0m0s");
    let apiserver = renew_step(&doc, "kube-apiserver");
    assert_eq!(
        apiserver["components"][0]["proof"], "reloaded",
        "{apiserver}"
    );
    assert_eq!(apiserver["renewed"].as_array().unwrap().len(), 4);
    assert!(apiserver["session"].is_string() && apiserver["backup"]["path"].is_string());
    assert_eq!(
        renew_step(&doc, "admin credentials")["verified"][0]["username"],
        "kubernetes-admin"
    );
    assert_eq!(
        renew_step(&doc, "kube-scheduler")["components"][0]["proof"],
        "not-running",
        "a sandbox's scheduler is never the host's"
    );
    for s in doc["steps"].as_array().unwrap() {
        for r in s["renewed"].as_array().unwrap() {
            assert_ne!(r["oldSerial"], r["new"]["serial"], "{r}");
        }
    }
    assert!(!doc.to_string().contains("PRIVATE KEY"));

    let after = check(&sim, 0);
    assert_eq!(after["problems"], serde_json::json!([]), "{after}");
    assert_eq!(entry(&after, "apiserver")["inUse"]["state"], "presented");
    let works = sim.kubectl("/etc/kubernetes/admin.conf", &["get", "--raw", "/livez"]);
    assert_eq!(works.code, 0, "{}", works.stderr);
    // Kept: the key files' modes, and kubeadm's key type.
    let mode = |p: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(sim.path(p)).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode("/etc/kubernetes/pki/apiserver.key"), 0o600);
    assert_eq!(mode("/etc/kubernetes/pki/apiserver.crt"), 0o644);
    assert!(
        std::fs::read_to_string(sim.path("/etc/kubernetes/pki/etcd/peer.key"))
            .unwrap()
            .starts_with("-----BEGIN EC PRIVATE KEY-----")
    );
    // Each step is its own session: the last one can be reverted alone.
    let sessions = sim
        .run()
        .args(["journal", "list", "-o", "json"])
        .ok()
        .json();
    assert_eq!(
        sessions["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["command"] == "certs renew")
            .count(),
        5,
        "{sessions}"
    );
}

#[test]
fn a_component_that_does_not_pick_its_certificate_up_is_rolled_back_alone_and_exit_1() {
    let sim = full_node(false);
    resign(&sim, -100, &[]);
    let apiserver_before = std::fs::read(sim.path("/etc/kubernetes/pki/apiserver.crt")).unwrap();
    let etcd_before = std::fs::read(sim.path("/etc/kubernetes/pki/etcd/server.crt")).unwrap();
    let args = [
        "etcd-server",
        "apiserver",
        "scheduler.conf",
        "--yes",
        "--timeout",
        "2s",
    ];
    let out = renew(&sim, &args, 1);
    assert!(
        out.stderr.contains("kube-apiserver was not proved"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("Rolled back"), "{}", out.stderr);
    assert!(
        out.stdout.contains("etcd:\n  etcd-server: serial"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("not run: kube-apiserver (failed"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("not run: kube-scheduler"),
        "{}",
        out.stdout
    );
    assert_eq!(
        std::fs::read(sim.path("/etc/kubernetes/pki/apiserver.crt")).unwrap(),
        apiserver_before,
        "the failed step's files are back"
    );
    assert_ne!(
        std::fs::read(sim.path("/etc/kubernetes/pki/etcd/server.crt")).unwrap(),
        etcd_before,
        "the step before it stays renewed"
    );
    let journal = sim
        .run()
        .args(["journal", "list", "-o", "json"])
        .ok()
        .json();
    let states: Vec<(&str, &str)> = journal["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["state"].as_str().unwrap(), s["step"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [
            (
                "done",
                "written; not proved (no check was made beyond the bytes on disk)"
            ),
            ("rolled-back", "not proved; put back and proved as before")
        ],
        "etcd is not running in a sandbox; the failed step closed as before, nothing unfinished"
    );
    // The same failure with -o json: one document, the Error one.
    resign(&sim, -100, &["apiserver"]);
    let json = sim
        .run()
        .args([
            "certs",
            "renew",
            "apiserver",
            "--yes",
            "--timeout",
            "1s",
            "-o",
            "json",
        ])
        .code(1);
    let doc = json.json();
    assert_eq!(doc["kind"], "Error", "{doc}");
    assert_eq!(doc["exitCode"], 1);
}

#[test]
fn the_validity_comes_from_a_kubeadm_configuration_and_never_passes_the_ca() {
    let sim = full_node(true);
    let config = sim.path("/root/kubeadm.yaml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(
        &config,
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncertificateValidityPeriod: 48h0m0s\n",
    )
    .unwrap();
    let doc = renew(
        &sim,
        &[
            "front-proxy-client",
            "--config",
            "/root/kubeadm.yaml",
            "--yes",
            "-o",
            "json",
        ],
        0,
    )
    .json();
    assert_eq!(
        doc["validitySource"]["config-file"], "/root/kubeadm.yaml",
        "{doc}"
    );
    assert_eq!(doc["validity"], "48h0m0s");
    let left = entry(&check(&sim, 0), "front-proxy-client")["notAfter"]
        .as_str()
        .unwrap()
        .to_string();
    let left = kubeadm_recover::runtime::clock::parse_rfc3339(&left).unwrap() - unix_now();
    assert!((47 * 3600..=48 * 3600).contains(&left), "{left}");

    let capped = renew(
        &sim,
        &[
            "apiserver-kubelet-client",
            "--validity",
            "20000d",
            "--yes",
            "-o",
            "json",
        ],
        0,
    )
    .json();
    let renewed = &renew_step(&capped, "kube-apiserver")["renewed"][0];
    assert_eq!(renewed["cappedToCa"], true, "{renewed}");
    let ca = capped["authorities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "ca")
        .unwrap();
    assert_eq!(renewed["new"]["notAfter"], ca["notAfter"]);

    let short = renew(&sim, &["apiserver", "--validity", "5m", "--yes"], 2);
    assert!(short.stderr.contains("too short"), "{}", short.stderr);
    let wrong = renew(&sim, &["etcd/server", "--yes"], 2);
    assert!(
        wrong
            .stderr
            .contains("not a certificate kubeadm-recover renews"),
        "{}",
        wrong.stderr
    );
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `--method kubeadm` runs the real kubeadm only where it cannot fall back to its defaults:
/// no kubeadm, no configuration (the simulated apiserver has no kubeadm-config ConfigMap and no
/// --config is given), or a --validity kubeadm would not honour are each refused before
/// anything runs or changes. (It running, and being proved, is the upstream tier's test.)
#[test]
fn the_kubeadm_method_is_refused_where_kubeadm_would_fall_back_or_cannot_run() {
    let sim = full_node(true);
    let pki = |sim: &SimNode| {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(sim.path("/etc/kubernetes/pki"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_file())
            .map(|e| {
                (
                    e.path().display().to_string(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    };
    let before = pki(&sim);
    let out = renew(
        &sim,
        &["all", "--method", "kubeadm", "--validity", "48h", "--yes"],
        2,
    );
    assert!(
        out.stderr
            .contains("set certificateValidityPeriod in --config FILE"),
        "{}",
        out.stderr
    );
    let bin = tempfile::tempdir().unwrap();
    let out = sim
        .run()
        .args(["certs", "renew", "all", "--method", "kubeadm", "--yes"])
        .env("PATH", bin.path().to_str().unwrap())
        .code(3);
    assert!(
        out.stderr.contains("needs `kubeadm` on PATH"),
        "{}",
        out.stderr
    );
    // A kubeadm that must never be run: it leaves a mark if it is.
    let mark = bin.path().join("ran");
    let kubeadm = bin.path().join("kubeadm");
    std::fs::write(&kubeadm, format!("#!/bin/sh\ntouch {}\n", mark.display())).unwrap();
    std::fs::set_permissions(
        &kubeadm,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let out = sim
        .run()
        .args(["certs", "renew", "all", "--method", "kubeadm", "--yes"])
        .env("PATH", &format!("{}:/usr/bin:/bin", bin.path().display()))
        .code(3);
    assert!(
        out.stderr.contains("kubeadm renews with its defaults")
            && out.stderr.contains("--config FILE"),
        "{}",
        out.stderr
    );
    assert!(!mark.exists(), "kubeadm was not run");
    assert!(pki(&sim) == before, "nothing changed");
    assert!(
        !sim.path("/var/lib/kubeadm-recover/journal.json").exists(),
        "no session was recorded"
    );
}

/// `revert` of a renewal puts the files back and proves the component on them as the
/// renewal's own rollback would: the simulated apiserver (which re-reads its serving
/// certificate as the real one does) presents the restored certificate again.
#[test]
fn a_renewal_reverted_is_proved_on_the_files_put_back() {
    let sim = full_node(true);
    let cert = sim.path("/etc/kubernetes/pki/apiserver.crt");
    let before = std::fs::read(&cert).unwrap();
    let renewed = renew(&sim, &["apiserver", "--yes", "-o", "json"], 0).json();
    let session = renew_step(&renewed, "kube-apiserver")["session"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(std::fs::read(&cert).unwrap(), before);

    let dry = sim
        .run()
        .args(["revert", "--session", &session, "--dry-run"])
        .ok();
    assert!(
        dry.stdout
            .contains("then prove kube-apiserver on the files put back"),
        "{}",
        dry.stdout
    );
    let reverted = sim
        .run()
        .args(["revert", "--session", &session, "--yes", "-o", "json"])
        .ok();
    assert!(
        std::fs::read(&cert).unwrap() == before,
        "the old file is back"
    );
    let reverted = reverted.json();
    assert_eq!(
        reverted["components"][0]["proof"], "reloaded",
        "proved on the restored certificate: {reverted}"
    );
    let check = check(&sim, 0);
    assert_eq!(entry(&check, "apiserver")["inUse"]["state"], "presented");
}

/// With `all`, a certificate whose CA key is not on the node (an external CA) is skipped and
/// said, as kubeadm does; asked for by name, it is refused before anything is written.
#[test]
fn an_external_cas_certificates_are_skipped_by_all_and_refused_by_name() {
    let sim = full_node(true);
    std::fs::remove_file(sim.path("/etc/kubernetes/pki/front-proxy-ca.key")).unwrap();
    let dry = renew(&sim, &["all", "--dry-run", "-o", "json"], 0).json();
    assert_eq!(dry["skipped"][0]["name"], "front-proxy-client", "{dry}");
    assert!(
        dry["skipped"][0]["why"]
            .as_str()
            .unwrap()
            .contains("an external CA"),
        "{dry}"
    );
    let before = sim.snapshot();
    let refused = renew(&sim, &["front-proxy-client", "--yes"], 3);
    assert!(
        refused.stderr.contains("whose key is not on this node"),
        "{}",
        refused.stderr
    );
    assert!(sim.snapshot() == before, "nothing written");
}

/// The kubelet's client certificate: left to the kubelet while it is valid (`all` says so);
/// once expired (a node off for a year), re-issued for the same node from the cluster CA into
/// the file its link points at (the link kept, for the kubelet's own next rotation), and a
/// kubelet.conf that embeds an old credential rewritten to name the rotating pair, as kubeadm
/// lays it out. (The restart through systemd and the proof by the node's Lease and Ready are
/// the real-node tier's.)
#[test]
fn the_kubelets_expired_client_certificate_is_renewed_in_place_and_kubelet_conf_made_kubeadms() {
    let sim = full_node(true);
    let link = sim.path("/var/lib/kubelet/pki/kubelet-client-current.pem");
    let target = std::fs::read_link(&link).unwrap();
    let dry = renew(&sim, &["all", "--dry-run", "-o", "json"], 0).json();
    let skipped: Vec<&str> = dry["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, ["kubelet-client"], "{dry}");
    assert!(
        dry["skipped"][0]["why"]
            .as_str()
            .unwrap()
            .contains("the kubelet renews it itself"),
        "{dry}"
    );

    resign(&sim, 30, &["kubelet-client"]);
    let expired = check(&sim, 1);
    assert!(
        problem_ids(&expired)
            .iter()
            .any(|p| p.contains("kubelet-client")),
        "{expired}"
    );
    // A kubelet.conf that embeds a credential (a node from before client rotation).
    let conf = sim.path("/etc/kubernetes/kubelet.conf");
    let rotating = std::fs::read_to_string(&conf).unwrap();
    let embedding = rotating
        .replace(
            "client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem",
            "client-certificate-data: Y2VydA==",
        )
        .replace(
            "client-key: /var/lib/kubelet/pki/kubelet-client-current.pem",
            "client-key-data: a2V5",
        );
    std::fs::write(&conf, &embedding).unwrap();

    let doc = renew(&sim, &["all", "--yes", "-o", "json"], 0).json();
    let kubelet = renew_step(&doc, "kubelet");
    assert_eq!(kubelet["renewed"][0]["name"], "kubelet-client", "{kubelet}");
    assert_eq!(
        kubelet["components"][0]["proof"], "not-running",
        "a sandbox's kubelet is never the host's: {kubelet}"
    );
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        target,
        "the link is the kubelet's: kept"
    );
    let pair = std::fs::read_to_string(sim.path(target.to_str().unwrap())).unwrap();
    assert!(
        pair.contains("-----BEGIN CERTIFICATE-----") && pair.contains("PRIVATE KEY-----"),
        "certificate then key, one file"
    );
    let written = std::fs::read_to_string(&conf).unwrap();
    assert!(
        written.contains("client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem")
            && written.contains("client-key: /var/lib/kubelet/pki/kubelet-client-current.pem")
            && !written.contains("client-certificate-data"),
        "{written}"
    );
    let after = check(&sim, 0);
    let renewed = entry(&after, "kubelet-client");
    assert_eq!(
        renewed["subject"].as_str().unwrap(),
        entry(&expired, "kubelet-client")["subject"]
            .as_str()
            .unwrap(),
        "the same node's identity"
    );
    assert!(!doc.to_string().contains("PRIVATE KEY"));
}

/// A certificate whose key file is not its key (a half-done renewal or restore by hand): the
/// component cannot load the pair. `certs check` names it; a renewal (a new key and
/// certificate, proved) mends it.
#[test]
fn a_certificate_and_a_key_that_are_not_a_pair_are_named_and_a_renewal_mends_them() {
    let sim = full_node(true);
    std::fs::copy(
        sim.path("/etc/kubernetes/pki/front-proxy-client.key"),
        sim.path("/etc/kubernetes/pki/apiserver-kubelet-client.key"),
    )
    .unwrap();
    let doc = check(&sim, 1);
    let problem = doc["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["certificate"] == "apiserver-kubelet-client")
        .unwrap_or_else(|| panic!("{doc}"));
    assert_eq!(problem["severity"], "critical", "{problem}");
    assert!(
        problem["summary"]
            .as_str()
            .unwrap()
            .contains("are not a pair")
            && problem["fix"]
                .as_str()
                .unwrap()
                .starts_with("kubeadm-recover certs renew apiserver-kubelet-client"),
        "{problem}"
    );
    assert_eq!(entry(&doc, "apiserver-kubelet-client")["keyMismatch"], true);
    assert!(
        entry(&doc, "apiserver")["keyMismatch"].is_null(),
        "said only when so"
    );
    renew(&sim, &["apiserver-kubelet-client", "--yes"], 0);
    let after = check(&sim, 0);
    assert_eq!(after["problems"], serde_json::json!([]), "{after}");
}
