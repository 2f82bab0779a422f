//! The upstream tier: the same end-to-end checks against the real kube-apiserver, etcd and
//! kubeadm (tests/upstream/build.sh), on nodes kubeadm lays out. Skipped, loudly, without
//! KUBEADM_RECOVER_KUBE_BIN; CI requires it.
use std::process::Command;

use crate::harness::*;

const MANIFEST: &str = "/etc/kubernetes/manifests/kube-apiserver.yaml";
const ADMIN: &str = "/etc/kubernetes/admin.conf";

/// The running apiserver's command line, from /proc (what the kubelet actually started).
fn running_args(pid: &serde_json::Value) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap()
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

fn flag_in(args: &[String]) -> Option<String> {
    args.iter()
        .find_map(|a| a.strip_prefix(&format!("--{FLAG}=")))
        .map(str::to_string)
}

/// The real apiserver's /readyz through the real kubectl and the node's admin.conf.
fn assert_ready(node: &RealNode) {
    let out = node.kubectl(ADMIN, &["get", "--raw", "/readyz"]);
    assert_eq!(out.stdout.trim(), "ok", "{}", out.stderr);
}

/// A certificate field as openssl prints it, from a kubeconfig's embedded client certificate.
fn openssl_field(node: &RealNode, kubeconfig: &str, field: &str) -> String {
    use base64::Engine;
    let text = std::fs::read_to_string(node.path(kubeconfig)).unwrap();
    let data = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("client-certificate-data: "))
        .unwrap();
    let pem = base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap();
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-dateopt", "iso_8601", field])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &pem).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The kube-apiserver mirror pod's config hash in the real apiserver, once it differs from
/// `other` (the kubelet replaces the mirror pod when the apiserver answers again).
fn mirror_hash(node: &RealNode, other: Option<&str>) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let out = node.kubectl(
            ADMIN,
            &[
                "get",
                "pods",
                "-n",
                "kube-system",
                "-l",
                "component=kube-apiserver",
                "-o",
                r"jsonpath={.items[0].metadata.annotations.kubernetes\.io/config\.hash}",
            ],
        );
        let hash = out.stdout.trim().to_string();
        if !hash.is_empty() && Some(hash.as_str()) != other {
            return hash;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no new mirror pod: {}",
            out.stderr
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
#[ignore = "the upstream tier: real binaries (tests/upstream/build.sh; tests/run.sh runs it)"]
fn status_reads_what_the_real_kubeadm_wrote() {
    let node = RealNode::start();
    let status = node.status();
    let version = kubeadm_recover_sim::kubeadm::binary_version(&kube_bin()).unwrap();
    assert_eq!(
        status["manifest"]["version"],
        version.trim_start_matches('v')
    );
    assert_eq!(
        status["manifest"]["image"],
        format!("registry.k8s.io/kube-apiserver:{version}")
    );
    assert_eq!(
        status["manifest"]["extendTokenExpiration"]["state"],
        "absent"
    );
    assert_eq!(status["manifest"]["extendTokenExpiration"]["default"], true);
    assert_eq!(status["apiserver"]["health"], "ok");
    let args = running_args(&status["apiserver"]["pid"]);
    assert_eq!(
        args[0], "kube-apiserver",
        "the real process, found in /proc"
    );
    assert!(args.contains(&"--advertise-address=192.0.2.10".to_string()));

    // Expiry, subject and serial as openssl reads kubeadm's own certificate.
    let admin = &status["credentials"][0];
    assert_eq!(
        admin["subject"],
        "O=kubeadm:cluster-admins, CN=kubernetes-admin"
    );
    assert_eq!(admin["expired"], false);
    let not_after = openssl_field(&node, ADMIN, "-enddate");
    assert_eq!(
        not_after.trim_start_matches("notAfter=").replace(' ', "T"),
        admin["notAfter"].as_str().unwrap()
    );
    let serial = openssl_field(&node, ADMIN, "-serial");
    assert_eq!(
        serial.trim_start_matches("serial=").trim_start_matches('0'),
        admin["serial"]
            .as_str()
            .unwrap()
            .replace(':', "")
            .to_uppercase()
            .trim_start_matches('0')
    );
}

#[test]
#[ignore = "the upstream tier: real binaries (tests/upstream/build.sh; tests/run.sh runs it)"]
fn token_extension_off_revert_and_on_against_the_real_apiserver() {
    let node = RealNode::start();
    let kubeadm_bytes = std::fs::read(node.path(MANIFEST)).unwrap();
    let before_disable = mirror_hash(&node, None);

    let doc = node
        .run()
        .args(["extend-tokens", "disable", "--yes", "--accept-stale-tokens"])
        .args(["-o", "json"])
        .ok()
        .json();
    assert_eq!(
        flag_in(&running_args(&doc["proof"]["pid"])).as_deref(),
        Some("false")
    );
    assert_only_flag_changed(
        &String::from_utf8_lossy(&kubeadm_bytes),
        &node.manifest(),
        "disable on kubeadm's manifest",
    );
    assert_ready(&node);

    // The kubelet keeps the mirror pod in the real apiserver; the tool reads its hash.
    let after_disable = mirror_hash(&node, Some(&before_disable));
    node.run().args(["revert", "--yes"]).ok();
    assert_eq!(
        std::fs::read(node.path(MANIFEST)).unwrap(),
        kubeadm_bytes,
        "revert restores the bytes kubeadm wrote"
    );
    let status = node.status();
    assert_eq!(status["apiserver"]["health"], "ok");
    assert_eq!(flag_in(&running_args(&status["apiserver"]["pid"])), None);

    let after_revert = mirror_hash(&node, Some(&after_disable));
    assert_eq!(
        after_revert, before_disable,
        "the same pod as kubeadm wrote it, the same hash"
    );
    let doc = node
        .run()
        .args(["extend-tokens", "enable", "--yes", "-o", "json"])
        .ok()
        .json();
    assert_eq!(
        doc["apiserverBefore"]["configHash"],
        after_revert.as_str(),
        "the tool reads the mirror pod the kubelet keeps in the real apiserver"
    );
    assert_eq!(
        flag_in(&running_args(&doc["proof"]["pid"])).as_deref(),
        Some("true")
    );
    assert_ready(&node);
}

#[test]
#[ignore = "the upstream tier: real binaries (tests/upstream/build.sh; tests/run.sh runs it)"]
fn a_restart_the_runtime_refuses_is_rolled_back_to_the_real_apiserver() {
    let node = RealNode::start();
    let kubeadm_bytes = std::fs::read(node.path(MANIFEST)).unwrap();
    node.configure(|c| c.reject_args = vec![format!("--{FLAG}=false")]);
    let out = node
        .run()
        .args(["extend-tokens", "disable", "--yes", "--accept-stale-tokens"])
        .args(["--timeout", "20s"])
        .code(1);
    assert!(out.stderr.contains("Rolled back"), "{}", out.stderr);
    assert_eq!(std::fs::read(node.path(MANIFEST)).unwrap(), kubeadm_bytes);
    let status = node.status();
    assert_eq!(status["apiserver"]["health"], "ok", "{status}");
    assert_eq!(flag_in(&running_args(&status["apiserver"]["pid"])), None);
    assert_ready(&node);
    assert!(node.path("/var/lib/kubeadm-recover/journal.json").exists());
    assert_eq!(node.status()["session"], serde_json::Value::Null);
}

#[test]
#[ignore = "the upstream tier: real binaries (tests/upstream/build.sh; tests/run.sh runs it)"]
fn admin_conf_regenerate_on_an_expired_kubeadm_credential() {
    let node = RealNode::with(true);
    let denied = node.kubectl(ADMIN, &["auth", "whoami"]);
    assert_ne!(denied.code, 0);
    assert!(
        denied.stderr.contains("Unauthorized") || denied.stderr.contains("401"),
        "the real apiserver answers an expired client certificate with 401: {}",
        denied.stderr
    );

    let doc = node
        .run()
        .args([
            "admin-conf",
            "regenerate",
            "--yes",
            "--super-admin",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(doc["method"], "native");
    for (kubeconfig, user, group) in [
        (ADMIN, "kubernetes-admin", "kubeadm:cluster-admins"),
        (
            "/etc/kubernetes/super-admin.conf",
            "kubernetes-super-admin",
            "system:masters",
        ),
    ] {
        let whoami = node.kubectl(kubeconfig, &["auth", "whoami", "-o", "json"]);
        assert_eq!(whoami.code, 0, "{}", whoami.stderr);
        let who: serde_json::Value = serde_json::from_str(&whoami.stdout).unwrap();
        assert_eq!(who["status"]["userInfo"]["username"], user);
        assert!(
            who["status"]["userInfo"]["groups"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!(group)),
            "{who}"
        );
    }
    assert_ready(&node);
}

#[test]
#[ignore = "the upstream tier: real binaries (tests/upstream/build.sh; tests/run.sh runs it)"]
fn admin_conf_regenerate_with_the_real_kubeadm_certs_renew() {
    let node = RealNode::start();
    let before = node.status()["credentials"][0]["serial"].clone();
    let path = format!(
        "{}:{}",
        kube_bin().display(),
        std::env::var("PATH").unwrap()
    );
    let doc = node
        .run()
        .args([
            "admin-conf",
            "regenerate",
            "--method",
            "kubeadm",
            "--yes",
            "-o",
            "json",
        ])
        .env("PATH", &path)
        .ok()
        .json();
    assert_eq!(doc["method"], "kubeadm");
    let after = node.status()["credentials"][0].clone();
    assert_ne!(after["serial"], before, "kubeadm issued a new certificate");
    assert_eq!(
        after["subject"],
        "O=kubeadm:cluster-admins, CN=kubernetes-admin"
    );
    let whoami = node.kubectl(ADMIN, &["auth", "whoami", "-o", "json"]);
    assert_eq!(whoami.code, 0, "{}", whoami.stderr);
    assert_ready(&node);
}

/// A serial as hex digits alone, lower case, without leading zeros.
fn normalized_serial(serial: &str) -> String {
    serial
        .chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .collect::<String>()
        .trim_start_matches('0')
        .to_string()
}

/// `certs renew all --method kubeadm`: the real `kubeadm certs renew NAME`, one per
/// certificate, each given the cluster's ClusterConfiguration (read from the kubeadm-config
/// ConfigMap, as a private scratch file that is gone afterwards) so that it cannot fall back to
/// its defaults; every certificate new, each component proved the same way as the native
/// renewal proves it, and the real kubectl works.
#[test]
#[ignore = "the upstream tier: real binaries (tests/upstream/build.sh; tests/run.sh runs it)"]
fn certs_renew_with_the_real_kubeadm_is_given_the_clusters_configuration_and_proved() {
    let node = RealNode::start();
    let path = format!(
        "{}:{}",
        kube_bin().display(),
        std::env::var("PATH").unwrap()
    );
    let before = node
        .run()
        .args(["certs", "check", "-o", "json"])
        .ok()
        .json();
    let serial = |doc: &serde_json::Value, name: &str| {
        doc["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .and_then(|c| c["serial"].as_str())
            .map(normalized_serial)
            .unwrap_or_default()
    };
    let doc = node
        .run()
        .args([
            "certs", "renew", "all", "--method", "kubeadm", "--yes", "-o", "json",
        ])
        .env("PATH", &path)
        .ok()
        .json();
    assert_eq!(doc["validitySource"], "cluster-configuration", "{doc}");
    let proofs = component_proofs(&doc);
    assert!(
        proofs.contains(&("kube-apiserver".into(), "reloaded".into())),
        "{doc}"
    );
    let after = node
        .run()
        .args(["certs", "check", "-o", "json"])
        .ok()
        .json();
    for name in [
        "apiserver",
        "apiserver-etcd-client",
        "front-proxy-client",
        "admin.conf",
    ] {
        assert_ne!(
            serial(&before, name),
            serial(&after, name),
            "{name}: {after}"
        );
        let renewed = doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["renewed"].as_array().cloned().unwrap_or_default())
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {doc}"));
        assert_eq!(
            renewed["new"]["serial"]
                .as_str()
                .map(normalized_serial)
                .unwrap_or_default(),
            serial(&after, name),
            "the report reads back what kubeadm wrote: {renewed}"
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(node.path("/etc/kubernetes/tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("kubeadm-config"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "the scratch configuration is removed: {leftovers:?}"
    );
    let whoami = node.kubectl(ADMIN, &["auth", "whoami"]);
    assert_eq!(whoami.code, 0, "{}", whoami.stderr);
    assert_ready(&node);
}

/// The service account `default` and a pod `stale-client` using it (no controller-manager
/// creates the former here).
fn create_pod(node: &RealNode) {
    for args in [
        &["create", "serviceaccount", "default", "-n", "default"][..],
        &[
            "run",
            "stale-client",
            "-n",
            "default",
            "--image=registry.k8s.io/pause:3.10",
            "--restart=Never",
        ],
    ] {
        let out = node.kubectl(ADMIN, args);
        assert_eq!(out.code, 0, "kubectl {args:?}: {}", out.stderr);
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A token for default/default bound to the pod `stale-client`, signed with the cluster's
/// `sa.key` as kube-apiserver signs them, with the given `exp` and `warnafter`.
fn mint(node: &RealNode, exp: i64, warn_after: i64) -> String {
    let uid = |kind: &str, name: &str| {
        let out = node.kubectl(
            ADMIN,
            &[
                "get",
                kind,
                name,
                "-n",
                "default",
                "-o",
                "jsonpath={.metadata.uid}",
            ],
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        out.stdout
    };
    let now = unix_now();
    let issuer = "https://kubernetes.default.svc.cluster.local";
    let claims = serde_json::json!({
        "aud": [issuer], "iss": issuer,
        "sub": "system:serviceaccount:default:default",
        "iat": now - 7200, "nbf": now - 7200, "exp": exp,
        "kubernetes.io": {
            "namespace": "default",
            "pod": {"name": "stale-client", "uid": uid("pod", "stale-client")},
            "serviceaccount": {"name": "default", "uid": uid("serviceaccount", "default")},
            "warnafter": warn_after,
        },
    });
    let sa_key = std::fs::read_to_string(node.path("/etc/kubernetes/pki/sa.key")).unwrap();
    kubeadm_recover_sim::apiserver::service_account_token(&sa_key, &claims).unwrap()
}

/// Uses, against the real apiserver, a service-account token bound to a real pod whose
/// `kubernetes.io.warnafter` has passed: a token that works only because extension is on.
fn use_a_stale_token(node: &RealNode) {
    create_pod(node);
    let now = unix_now();
    let token = mint(node, now + 365 * 24 * 3600, now - 3600);
    let out = node.kubectl_with_token(&token, &["get", "--raw", "/api"]);
    assert_eq!(out.code, 0, "the stale token authenticates: {}", out.stderr);

    let metrics = node.kubectl(ADMIN, &["get", "--raw", "/metrics"]).stdout;
    let stale = kubeadm_recover::survey::migration::parse_metric(
        &metrics,
        "serviceaccount_stale_tokens_total",
    );
    assert!(stale.is_some_and(|n| n >= 1), "the real counter counts it");
    let audit =
        std::fs::read_to_string(node.path(kubeadm_recover_sim::kubeadm::AUDIT_LOG)).unwrap();
    assert!(
        audit.contains("authentication.k8s.io/stale-token"),
        "the real audit annotation is there"
    );
}

#[test]
#[ignore = "the upstream tier: real binaries (tests/upstream/build.sh; tests/run.sh runs it)"]
fn tokens_created_inspected_and_reviewed_by_the_real_apiserver() {
    use crate::token::{create_token, inspect, lifetime, review};
    let node = RealNode::start();
    create_pod(&node);
    let (token, stderr) = create_token(&node, &["default", "-n", "default", "--duration", "1h"]);
    assert!(stderr.contains("expires"), "{stderr}");
    let doc = inspect(&node, &token);
    assert!((3500..=3600).contains(&lifetime(&doc)), "{doc}");
    let (code, doc) = review(&node, &token, &[]);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["username"], "system:serviceaccount:default:default");
    let (code, doc) = review(&node, &token, &["--audience", "vault"]);
    assert_eq!(code, 1, "another audience: {doc}");

    let bound = [
        "default",
        "-n",
        "default",
        "--bound-pod",
        "stale-client",
        "--duration",
        "3607s",
    ];
    let (token, _) = create_token(&node, &bound);
    let doc = inspect(&node, &token);
    assert!(
        lifetime(&doc) > 300 * 86_400,
        "one year with extension on: {doc}"
    );
    assert_eq!(
        doc["tokens"][0]["kubernetes"]["pod"]["name"],
        "stale-client"
    );

    let now = unix_now();
    let (code, doc) = review(&node, &mint(&node, now - 60, now - 3600), &[]);
    assert_eq!(code, 1, "an expired token: {doc}");
    assert_eq!(doc["authenticated"], false);

    node.run()
        .args(["extend-tokens", "disable", "--yes", "--accept-stale-tokens"])
        .ok();
    let (token, _) = create_token(&node, &bound);
    let doc = inspect(&node, &token);
    assert!(
        (3500..=3607).contains(&lifetime(&doc)),
        "3607 s with it off: {doc}"
    );
}

#[test]
#[ignore = "the upstream tier: real binaries (tests/upstream/build.sh; tests/run.sh runs it)"]
fn stale_tokens_seen_by_the_real_apiserver_stop_a_revert_to_false() {
    let node = RealNode::start();
    node.run()
        .args(["extend-tokens", "disable", "--yes", "--accept-stale-tokens"])
        .ok();
    let off = node.manifest();
    node.run().args(["extend-tokens", "enable", "--yes"]).ok();
    let on = node.manifest();
    use_a_stale_token(&node);

    let out = node
        .run()
        .args(["revert", "--yes", "--stale-window", "0s"])
        .code(3);
    assert!(
        out.stderr.contains("default/default"),
        "names the service account from the real audit annotation: {}",
        out.stderr
    );
    assert_eq!(node.manifest(), on, "nothing changed");
    let out = node
        .run()
        .args(["extend-tokens", "disable", "--yes", "--stale-window", "0s"])
        .code(3);
    assert!(
        out.stderr.contains("--accept-stale-tokens"),
        "{}",
        out.stderr
    );

    node.run()
        .args([
            "revert",
            "--yes",
            "--stale-window",
            "0s",
            "--accept-stale-tokens",
        ])
        .ok();
    assert_eq!(node.manifest(), off);
}

#[test]
#[ignore = "the upstream tier: real binaries (tests/upstream/build.sh; tests/run.sh runs it)"]
fn a_change_killed_mid_way_on_the_real_node_is_finished_by_resume() {
    let node = RealNode::start();
    let kubeadm_bytes = std::fs::read(node.path(MANIFEST)).unwrap();
    node.killed_mid_change();
    node.configure(|c| c.frozen = false);
    let doc = node
        .run()
        .args(["resume", "--yes", "-o", "json"])
        .ok()
        .json();
    let status = node.status();
    assert_eq!(status["apiserver"]["health"], "ok", "{doc}");
    assert_eq!(
        flag_in(&running_args(&status["apiserver"]["pid"])).as_deref(),
        Some("false")
    );
    node.run().args(["revert", "--yes"]).ok();
    assert_eq!(std::fs::read(node.path(MANIFEST)).unwrap(), kubeadm_bytes);
    assert_ready(&node);
}

#[test]
#[ignore = "the upstream tier: real binaries (tests/upstream/build.sh; tests/run.sh runs it)"]
fn rehearse_runs_on_the_real_binaries_a_user_supplies() {
    let bin = kube_bin();
    let out = Run::new()
        .args(["rehearse", "--kube-bin"])
        .arg(&bin)
        .args(["-o", "json"])
        .ok();
    let doc = out.json();
    let steps: Vec<&str> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(steps[0].contains("the real kubeadm"), "{steps:?}");
    assert!(steps.iter().any(|s| s.contains("rolled back")), "{steps:?}");
    assert!(!doc["root"].as_str().unwrap().is_empty());
    assert!(
        !std::path::Path::new(doc["root"].as_str().unwrap()).exists(),
        "the sandbox is removed"
    );
}

#[test]
fn rehearse_kube_bin_names_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kubeadm"), "").unwrap();
    let out = Run::new()
        .args(["rehearse", "--kube-bin"])
        .arg(dir.path())
        .code(3);
    assert!(
        out.stderr.contains("kube-apiserver, etcd missing"),
        "{}",
        out.stderr
    );
    let out = Run::new()
        .args(["rehearse", "--kube-bin"])
        .arg(dir.path())
        .args(["--kubernetes-version", "1.30.2"])
        .code(2);
    assert!(out.stderr.contains("cannot be used with"), "{}", out.stderr);
}

#[test]
#[ignore = "the upstream tier: real binaries (tests/upstream/build.sh; tests/run.sh runs it)"]
fn migrate_check_against_the_real_apiserver() {
    use crate::migrate::{assert_finds_the_legacy_token, check, legacy_token_in_use};
    let node = RealNode::start();
    let (code, doc) = check(&node);
    assert_eq!(code, 0, "a new cluster has no legacy tokens: {doc}");
    assert_eq!(
        node.status()["migration"],
        "nothing depends on long-lived or stale tokens"
    );

    use_a_stale_token(&node);
    legacy_token_in_use(|args| node.kubectl(ADMIN, args));
    let (code, doc) = check(&node);
    assert_eq!(code, 1, "{doc}");
    assert_finds_the_legacy_token(&doc);
    assert_eq!(
        doc["staleTokenUsers"][0]["subject"], "default/default",
        "{doc}"
    );
}
