//! What the machine is (a worker, no node at all) and the other lockouts the troubleshooting
//! notes list, each staged on a sandbox: swap on, another process on the apiserver's port,
//! etcd down or of another cluster, an admin.conf kubectl cannot use.
use std::path::Path;

use crate::harness::*;
use crate::snapshots::pin;

fn finding_ids(node: &impl Sandbox) -> Vec<String> {
    let doc = node.run().args(["diagnose", "-o", "json"]).ok().json();
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

fn finding<'a>(doc: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no finding {id}: {doc:#}"))
}

/// An empty directory as the root: no node at all.
struct Empty(tempfile::TempDir);

impl Sandbox for Empty {
    fn root(&self) -> &Path {
        self.0.path()
    }
}

/// A worker: a kubeadm node's kubelet files (kubelet.conf, the rotating client pair) and the
/// CA's certificate, no control-plane manifest, no admin.conf, no CA key.
struct Worker(tempfile::TempDir);

impl Sandbox for Worker {
    fn root(&self) -> &Path {
        self.0.path()
    }
}

impl Worker {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        kubeadm_recover_sim::node::build(
            dir.path(),
            &NodeOptions {
                full_pki: true,
                ..Default::default()
            },
        )
        .unwrap();
        let worker = Worker(dir);
        expire_certs(worker.root(), 10, &["kubelet-client"]);
        let k8s = worker.path("/etc/kubernetes");
        std::fs::remove_dir_all(k8s.join("manifests")).unwrap();
        std::fs::create_dir(k8s.join("manifests")).unwrap();
        for conf in [
            "admin.conf",
            "super-admin.conf",
            "controller-manager.conf",
            "scheduler.conf",
        ] {
            let _ = std::fs::remove_file(k8s.join(conf));
        }
        let ca = std::fs::read(k8s.join("pki/ca.crt")).unwrap();
        std::fs::remove_dir_all(k8s.join("pki")).unwrap();
        std::fs::create_dir(k8s.join("pki")).unwrap();
        std::fs::write(k8s.join("pki/ca.crt"), ca).unwrap();
        worker
    }
}

/// `/proc/swaps` and `/etc/fstab` of a sandbox with a swap file on.
fn swap_on(node: &impl Sandbox) {
    std::fs::create_dir_all(node.path("/proc")).unwrap();
    std::fs::write(
        node.path("/proc/swaps"),
        "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/swapfile                               file\t\t1048572\t\t0\t\t-2\n",
    )
    .unwrap();
    std::fs::write(
        node.path("/etc/fstab"),
        "UUID=0a1b / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n",
    )
    .unwrap();
}

#[test]
fn an_empty_machine_is_no_node_status_exits_0_and_nothing_is_proposed() {
    let empty = Empty(tempfile::tempdir().unwrap());
    pin(&empty, "status-not-a-node", &["status"], 0);
    pin(&empty, "diagnose-not-a-node", &["diagnose"], 0);
    let doc = empty.run().args(["diagnose", "-o", "json"]).ok().json();
    assert_eq!(doc["steps"].as_array().map_or(0, Vec::len), 0, "{doc:#}");
    assert_eq!(finding_ids(&empty), ["not-a-node"]);
    // The guide (at a terminal) has nothing to do either, and says what the machine is.
    let (code, seen) = Terminal::run(&empty, &["guide"]).finish();
    assert_eq!(code, 0, "{seen}");
    assert!(seen.contains("not a Kubernetes node"), "{seen}");
    assert!(seen.contains("nothing for kubeadm-recover to do"), "{seen}");
    assert!(
        !empty.path("/etc").exists() && !empty.path("/var").exists(),
        "nothing was made"
    );
}

#[test]
fn a_worker_says_where_its_control_plane_is_and_what_can_be_checked_here() {
    let worker = Worker::new();
    swap_on(&worker);
    pin(&worker, "status-worker", &["status"], 0);
    pin(&worker, "diagnose-worker", &["diagnose"], 0);
    let doc = worker.run().args(["diagnose", "-o", "json"]).ok().json();
    assert_eq!(
        finding_ids(&worker),
        [
            "kubelet-not-running",
            "swap-on",
            "kubelet-client-expired",
            "worker-node"
        ]
    );
    // Nothing that needs the control plane's files: no step of this tool, no regenerate.
    assert_eq!(doc["steps"].as_array().map_or(0, Vec::len), 0, "{doc:#}");
    let text = serde_json::to_string(&doc).unwrap();
    for impossible in [
        "admin-conf regenerate",
        "certs renew",
        "manifest cannot be read",
    ] {
        assert!(
            !text.contains(impossible),
            "{impossible} proposed on a worker: {doc:#}"
        );
    }
    assert!(
        finding(&doc, "kubelet-client-expired")["fix"]
            .as_str()
            .unwrap()
            .contains("kubeadm kubeconfig user --org system:nodes")
    );
    assert!(
        finding(&doc, "swap-on")["fix"]
            .as_str()
            .unwrap()
            .contains("/swapfile none swap sw 0 0")
    );
}

#[test]
fn swap_on_a_control_plane_node_is_why_the_kubelet_does_not_start() {
    let node = Node::new();
    swap_on(&node);
    let doc = node.run().args(["diagnose", "-o", "json"]).ok().json();
    let swap = finding(&doc, "swap-on");
    assert_eq!(
        swap["severity"], "critical",
        "the kubelet is down: {swap:#}"
    );
    assert!(
        swap["summary"]
            .as_str()
            .unwrap()
            .contains("running with swap on is not supported")
    );
    assert!(
        swap["evidence"]
            .as_str()
            .unwrap()
            .contains("failSwapOn not set")
    );
    // The kubelet allowed to use swap: no finding.
    std::fs::create_dir_all(node.path("/var/lib/kubelet")).unwrap();
    std::fs::write(
        node.path("/var/lib/kubelet/config.yaml"),
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nfailSwapOn: false\nmemorySwap:\n  swapBehavior: LimitedSwap\n",
    )
    .unwrap();
    assert!(!finding_ids(&node).contains(&"swap-on".to_string()));
}

#[test]
fn another_process_on_the_apiservers_port_is_named() {
    // A live node (its kubelet runs here, so the host's sockets are its own), whose kubelet
    // is frozen: the manifest now names a port this test holds, and no apiserver serves it.
    let sim = SimNode::start();
    sim.configure(|c| c.frozen = true);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let manifest = sim.manifest();
    let old = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("- --secure-port="))
        .unwrap()
        .to_string();
    std::fs::write(
        sim.path("/etc/kubernetes/manifests/kube-apiserver.yaml"),
        manifest.replace(
            &format!("--secure-port={old}"),
            &format!("--secure-port={port}"),
        ),
    )
    .unwrap();
    let doc = sim.run().args(["diagnose", "-o", "json"]).ok().json();
    let taken = finding(&doc, "apiserver-port-taken");
    let ours = std::fs::read_to_string("/proc/self/comm").unwrap();
    let evidence = taken["evidence"].as_str().unwrap();
    assert!(
        evidence.contains(&format!("pid {}", std::process::id()))
            && evidence.contains(ours.trim_end()),
        "{taken:#}"
    );
    drop(listener);
    assert!(!finding_ids(&sim).contains(&"apiserver-port-taken".to_string()));
    // A disk mounted under --root (no kubelet runs it): the host's sockets are not its.
    let node = Node::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    node.write_manifest(
        &node
            .manifest()
            .replace("--secure-port=6443", &format!("--secure-port={port}")),
    );
    assert!(!finding_ids(&node).contains(&"apiserver-port-taken".to_string()));
}

/// A stacked etcd's manifest serving clients on `port`.
fn etcd_manifest(node: &Node, port: u16) {
    std::fs::write(
        node.path("/etc/kubernetes/manifests/etcd.yaml"),
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: etcd\n  namespace: kube-system\nspec:\n  containers:\n  - command:\n    - etcd\n    - --data-dir=/var/lib/etcd\n    - --listen-client-urls=https://127.0.0.1:{port}\n    image: registry.k8s.io/etcd:3.5.15-0\n    name: etcd\n"
        ),
    )
    .unwrap();
}

#[test]
fn etcd_down_or_of_another_cluster_is_why_the_connection_is_refused() {
    let node = Node::new();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    etcd_manifest(&node, closed);
    let doc = node.run().args(["diagnose", "-o", "json"]).ok().json();
    let down = finding(&doc, "etcd-down");
    assert!(
        down["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{closed}")),
        "{down:#}"
    );

    // etcd's log says it belongs to another cluster: named, with the member replacement.
    let logs = node.path("/var/log/pods/kube-system_etcd-cp1_0123abcd/etcd");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(
        logs.join("3.log"),
        "2026-12-07T01:00:00.000000000Z stderr F {\"level\":\"info\",\"msg\":\"starting peer\"}\n\
         2026-12-07T01:00:01.000000000Z stderr F {\"level\":\"fatal\",\"msg\":\"request cluster ID mismatch\",\"local-member-cluster-id\":\"cdf818194e3a8c32\",\"remote-peer-cluster-id\":\"a1b2c3\"}\n",
    )
    .unwrap();
    let doc = node.run().args(["diagnose", "-o", "json"]).ok().json();
    let mismatch = finding(&doc, "etcd-cluster-id-mismatch");
    assert!(
        mismatch["evidence"]
            .as_str()
            .unwrap()
            .contains("cluster ID mismatch")
    );
    assert!(
        mismatch["fix"]
            .as_str()
            .unwrap()
            .contains("etcdctl member remove")
    );
    assert!(
        mismatch["fix"]
            .as_str()
            .unwrap()
            .contains("never automatic")
    );
    let ids = finding_ids(&node);
    assert!(
        !ids.contains(&"etcd-down".to_string()),
        "the mismatch is the reason: {ids:?}"
    );
    // Never acted on: no step of this tool answers it.
    assert!(
        doc["byHand"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h.as_str().unwrap().contains("cluster ID mismatch")),
        "{doc:#}"
    );
}

#[test]
fn an_admin_conf_kubectl_cannot_use_is_said_in_kubectls_words() {
    let node = Node::new();
    let admin = node.path("/etc/kubernetes/admin.conf");
    let text = std::fs::read_to_string(&admin).unwrap();
    std::fs::write(
        &admin,
        text.replace("    user: kubernetes-admin", "    user: ghost"),
    )
    .unwrap();
    let doc = node.run().args(["diagnose", "-o", "json"]).ok().json();
    let invalid = finding(&doc, "admin-conf-invalid");
    assert!(
        invalid["summary"]
            .as_str()
            .unwrap()
            .contains("user \"ghost\" was not found"),
        "{invalid:#}"
    );
    assert!(
        invalid["fix"]
            .as_str()
            .unwrap()
            .contains("admin-conf regenerate")
    );
    // The guide's admin step answers it.
    assert!(
        doc["steps"].as_array().unwrap().iter().any(|s| s["answers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "admin-conf-invalid")),
        "{doc:#}"
    );
}
