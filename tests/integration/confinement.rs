//! Issue 19, items 1 and 2: every path is resolved inside `--root`, and root never follows a
//! path a non-root user controls. Each test reproduces a way the tool was turned against the
//! host or the node, and a second variant of the same class.
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use crate::harness::*;

/// A directory on the HOST, outside every sandbox, that a test watches: whatever happens
/// inside a sandbox must leave it as it was.
struct HostDecoy {
    dir: tempfile::TempDir,
}

impl HostDecoy {
    fn new() -> Self {
        HostDecoy {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// `admin-conf regenerate --update-copies` (unverified: no apiserver needed), as JSON.
fn update_copies(node: &Node) -> serde_json::Value {
    node.run()
        .args([
            "admin-conf",
            "regenerate",
            "--update-copies",
            "--no-verify",
            "--yes",
            "-o",
            "json",
        ])
        .ok()
        .json()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// A user of the sandbox node: a line in its /etc/passwd and, unless `home` is false, a home
/// directory owned by them.
fn add_user(node: &Node, name: &str, uid: u32, home: &str, make_home: bool) {
    let passwd = node.path("/etc/passwd");
    let mut text = std::fs::read_to_string(&passwd)
        .unwrap_or_else(|_| "root:x:0:0:root:/root:/bin/bash\n".into());
    text.push_str(&format!("{name}:x:{uid}:{uid}::{home}:/bin/bash\n"));
    std::fs::write(&passwd, text).unwrap();
    if make_home {
        let dir = node.path(home);
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(uid), Some(uid)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
    }
}

#[test]
fn an_absolute_symlink_in_the_root_is_resolved_in_the_root_not_on_the_host() {
    let node = Node::new();
    let decoy = HostDecoy::new();
    let admin = read(&node.path("/etc/kubernetes/admin.conf"));
    // On the host, a file at the link's absolute target, holding the same (old) credential:
    // resolved on the host, --update-copies would rewrite it.
    let host_file = decoy.write("etc/kubernetes/admin.conf", &admin);
    let copy = node.path("/root/.kube/config");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    symlink(&host_file, &copy).unwrap();
    // A second link, the usual one, to the node's own admin.conf: it IS admin.conf.
    let usual = node.path("/home/ops/.kube/config");
    std::fs::create_dir_all(usual.parent().unwrap()).unwrap();
    symlink("/etc/kubernetes/admin.conf", &usual).unwrap();

    let doc = update_copies(&node);
    assert_eq!(read(&host_file), admin, "the host's file is untouched");
    assert_eq!(
        doc["copiesUpdated"],
        serde_json::json!([]),
        "the in-root target of the first link does not exist; the second is admin.conf itself"
    );
    assert!(std::fs::symlink_metadata(&usual).unwrap().is_symlink());
    assert_ne!(read(&node.path("/etc/kubernetes/admin.conf")), admin);
}

#[test]
fn a_backup_restore_through_an_absolute_symlink_stays_in_the_root() {
    // Variant: the restore path of a backup, with a directory on the way replaced by an
    // absolute link to a host directory.
    let node = Node::new();
    let decoy = HostDecoy::new();
    node.run()
        .args(["admin-conf", "regenerate", "--yes", "--no-verify"])
        .ok();
    let backups = node
        .run()
        .args(["backups", "list", "-o", "json"])
        .ok()
        .json();
    let id = backups["backups"][0]["id"].as_str().unwrap().to_string();
    let host_dir = decoy.path("kubernetes");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(host_dir.join("admin.conf"), "host's own\n").unwrap();
    let etc = node.path("/etc/kubernetes");
    std::fs::rename(&etc, node.path("/etc/kubernetes.real")).unwrap();
    symlink(&host_dir, &etc).unwrap();
    let out = node
        .run()
        .args(["backups", "restore", &id, "--yes"])
        .output();
    assert_eq!(
        read(&host_dir.join("admin.conf")),
        "host's own\n",
        "the host directory is untouched: {}",
        out.stderr
    );
    assert_ne!(out.code, 0, "{}", out.stderr);
}

#[test]
fn kubeconfig_commands_under_root_edit_the_roots_file_and_audit_its_node_path() {
    let node = Node::new();
    let decoy = HostDecoy::new();
    let expired = unsigned_jwt(serde_json::json!({"exp": 1_000_000_000, "sub": "me"}));
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n    server: https://k.example:6443\ncontexts:\n- name: c\n  context: {{cluster: k, user: u}}\nusers:\n- name: u\n  user:\n    auth-provider:\n      name: oidc\n      config:\n        id-token: {expired}\n        client-id: k\n"
    );
    let home = decoy.path("home");
    let host_config = decoy.write("home/.kube/config", &kubeconfig);
    let node_home = format!("/{}", home.strip_prefix("/").unwrap().display());
    let in_root = node.path(&format!("{node_home}/.kube/config"));
    std::fs::create_dir_all(in_root.parent().unwrap()).unwrap();
    std::fs::write(&in_root, &kubeconfig).unwrap();

    node.run()
        .env("HOME", home.to_str().unwrap())
        .args(["kubeconfig", "prune-expired", "--yes"])
        .ok();
    assert_eq!(
        read(&host_config),
        kubeconfig,
        "the host's kubeconfig is untouched"
    );
    assert_ne!(
        read(&in_root),
        kubeconfig,
        "the root's kubeconfig was pruned"
    );
    let audit = read(&node.path("/var/log/kubeadm-recover/audit.jsonl"));
    assert!(
        audit.contains(&format!("\"{node_home}/.kube/config\"")),
        "the audit log names the node path: {audit}"
    );
    assert!(!audit.contains(node.root().to_str().unwrap()), "{audit}");

    // Variant: --kubeconfig given as an absolute path is a node path too.
    std::fs::write(&in_root, &kubeconfig).unwrap();
    node.run()
        .args([
            "kubeconfig",
            "prune-expired",
            "--yes",
            "--kubeconfig",
            host_config.to_str().unwrap(),
        ])
        .ok();
    assert_eq!(read(&host_config), kubeconfig);
    assert_ne!(read(&in_root), kubeconfig);
}

#[test]
fn the_root_is_canonical_so_its_kubelet_is_recognised_however_it_is_spelled() {
    let sim = SimNode::start();
    let root = sim.root().to_str().unwrap().to_string();
    let parent = sim.root().parent().unwrap().to_str().unwrap().to_string();
    let name = sim
        .root()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let link_dir = tempfile::tempdir().unwrap();
    let link = link_dir.path().join("node");
    symlink(sim.root(), &link).unwrap();
    for spelling in [
        format!("{parent}//{name}"),
        format!("{parent}/./{name}/"),
        link.to_str().unwrap().to_string(),
        root,
    ] {
        let status = Run::new()
            .args(["--root", &spelling, "status", "-o", "json"])
            .ok()
            .json();
        assert_eq!(
            status["kubeletRunning"], true,
            "--root {spelling}: {status}"
        );
    }
}

#[test]
fn a_kubelet_for_another_root_whose_name_extends_ours_does_not_vouch_for_it() {
    // Variant: substring matching let a kubelet for /a/n10 vouch for /a/n1.
    let sim = SimNode::start();
    let sibling = PathBuf::from(format!("{}0", sim.root().display()));
    std::fs::create_dir_all(sibling.join("etc/kubernetes/manifests")).unwrap();
    // A control-plane node's layout: its own apiserver manifest, its kubelet not running.
    std::fs::write(
        sibling.join("etc/kubernetes/manifests/kube-apiserver.yaml"),
        sim.manifest(),
    )
    .unwrap();
    struct Gone(PathBuf);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _gone = Gone(sibling.clone());
    let status = Run::new()
        .args(["--root", sibling.to_str().unwrap(), "status", "-o", "json"])
        .output()
        .json();
    assert_eq!(status["kubeletRunning"], false, "{status}");
}

#[test]
fn install_for_a_user_whose_kube_dir_links_into_the_manifests_is_refused() {
    let node = Node::new();
    add_user(&node, "alice", 4242, "/home/alice", true);
    let kube = node.path("/home/alice/.kube");
    symlink("../../etc/kubernetes/manifests", &kube).unwrap();
    std::os::unix::fs::lchown(&kube, Some(4242), Some(4242)).unwrap();
    let before = node.manifest_dir_entries();
    let out = node
        .run()
        .args([
            "admin-conf",
            "regenerate",
            "--install-for",
            "alice",
            "--no-verify",
            "--yes",
        ])
        .code(3);
    assert!(out.stderr.contains("symbolic link"), "{}", out.stderr);
    assert_eq!(
        node.manifest_dir_entries(),
        before,
        "nothing landed in the manifests"
    );

    // Variant: the link is the config file itself, pointing at a manifest.
    std::fs::remove_file(&kube).unwrap();
    std::fs::create_dir(&kube).unwrap();
    std::os::unix::fs::chown(&kube, Some(4242), Some(4242)).unwrap();
    let config = kube.join("config");
    symlink("/etc/kubernetes/manifests/kube-apiserver.yaml", &config).unwrap();
    std::os::unix::fs::lchown(&config, Some(4242), Some(4242)).unwrap();
    let manifest = node.manifest();
    let out = node
        .run()
        .args([
            "admin-conf",
            "regenerate",
            "--update-copies",
            "--no-verify",
            "--yes",
        ])
        .ok();
    assert!(
        out.stderr.contains("left /home/alice/.kube/config alone")
            || out.stderr.contains(".kube/config alone"),
        "{}",
        out.stderr
    );
    assert_eq!(
        node.manifest(),
        manifest,
        "the manifest was not written through"
    );
}

#[test]
fn install_for_needs_a_real_home_of_the_users_own() {
    let node = Node::new();
    // No home at all: refused, and none is made (root:root 0700 would lock bob out).
    add_user(&node, "bob", 4343, "/home/bob", false);
    let out = node
        .run()
        .args(["admin-conf", "regenerate", "--install-for", "bob", "--yes"])
        .code(3);
    assert!(out.stderr.contains("/home/bob"), "{}", out.stderr);
    assert!(!node.path("/home/bob").exists());
    // A system account whose home is /.
    add_user(&node, "daemon2", 4444, "/", false);
    let out = node
        .run()
        .args([
            "admin-conf",
            "regenerate",
            "--install-for",
            "daemon2",
            "--yes",
        ])
        .code(3);
    assert!(
        out.stderr.contains("not a home directory"),
        "{}",
        out.stderr
    );
    assert!(!node.path("/.kube").exists());
    // A home that belongs to someone else.
    add_user(&node, "carol", 4545, "/home/carol", true);
    std::os::unix::fs::chown(node.path("/home/carol"), Some(4646), Some(4646)).unwrap();
    let out = node
        .run()
        .args([
            "admin-conf",
            "regenerate",
            "--install-for",
            "carol",
            "--yes",
        ])
        .code(3);
    assert!(out.stderr.contains("belongs to uid 4646"), "{}", out.stderr);
    // The user's own home: installed as theirs.
    add_user(&node, "dave", 4747, "/home/dave", true);
    node.run()
        .args([
            "admin-conf",
            "regenerate",
            "--install-for",
            "dave",
            "--no-verify",
            "--yes",
        ])
        .ok();
    let config = std::fs::metadata(node.path("/home/dave/.kube/config")).unwrap();
    let kube = std::fs::metadata(node.path("/home/dave/.kube")).unwrap();
    assert_eq!((config.uid(), config.mode() & 0o777), (4747, 0o600));
    assert_eq!((kube.uid(), kube.mode() & 0o777), (4747, 0o700));
}

#[test]
fn a_file_a_user_controls_in_the_manifest_directory_is_a_stray() {
    let node = Node::new();
    let planted = node.path("/etc/kubernetes/manifests/config");
    std::fs::write(&planted, "apiVersion: v1\nkind: Config\n").unwrap();
    std::os::unix::fs::chown(&planted, Some(4242), Some(4242)).unwrap();
    let status = node.run().args(["status", "-o", "json"]).ok().json();
    let strays = status["strays"].as_array().unwrap();
    assert!(
        strays
            .iter()
            .any(|s| s["path"] == "/etc/kubernetes/manifests/config"
                && s["why"].as_str().unwrap().contains("uid 4242")),
        "{status}"
    );
    // And a change refuses to work beside it.
    let out = node
        .run()
        .args(["extend-tokens", "enable", "--yes", "--no-wait"])
        .code(3);
    assert!(out.stderr.contains("manifests/config"), "{}", out.stderr);
}

/// A kubeconfig whose user gets its credential from a program.
fn exec_kubeconfig(marker: &Path) -> String {
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: c\n  context: {{cluster: k, user: u}}\nusers:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n      args: [\"-c\", \"touch {}; sleep 600\"]\n",
        marker.display()
    )
}

#[test]
fn root_never_runs_the_program_a_kubeconfig_names() {
    let node = Node::new();
    let decoy = HostDecoy::new();
    let marker = decoy.path("PWNED");
    let config = node.path("/etc/ci/exec.conf");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, exec_kubeconfig(&marker)).unwrap();
    let out = node
        .run()
        .args(["migrate", "check", "--kubeconfig", "/etc/ci/exec.conf"])
        .code(3);
    assert!(
        out.stderr.contains("never runs a program"),
        "{}",
        out.stderr
    );
    assert!(!marker.exists(), "the plugin did not run");
    // Variant: the node's own admin.conf made into one (token review uses it).
    std::fs::write(
        node.path("/etc/kubernetes/admin.conf"),
        exec_kubeconfig(&marker),
    )
    .unwrap();
    let token = decoy.write("token", &unsigned_jwt(serde_json::json!({"sub": "x"})));
    let out = node
        .run()
        .args(["token", "review", token.to_str().unwrap()])
        .code(3);
    assert!(
        out.stderr.contains("never runs a program"),
        "{}",
        out.stderr
    );
    assert!(!marker.exists());
}

#[test]
fn a_file_a_kubeconfig_names_is_read_inside_the_root() {
    let node = Node::new();
    let decoy = HostDecoy::new();
    let host_key = decoy.write("client.key", "host's key\n");
    let config = node.path("/etc/ci/files.conf");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(
        &config,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: c\n  context: {{cluster: k, user: u}}\nusers:\n- name: u\n  user:\n    client-certificate: /etc/kubernetes/pki/ca.crt\n    client-key: {}\n",
            host_key.display()
        ),
    )
    .unwrap();
    let out = node
        .run()
        .args(["migrate", "check", "--kubeconfig", "/etc/ci/files.conf"])
        .code(3);
    assert!(
        out.stderr.contains("cannot be used") && out.stderr.contains("client.key"),
        "the host's file is not the node's: {}",
        out.stderr
    );
}

#[test]
fn update_copies_never_gives_a_new_key_for_a_certificate_alone() {
    let node = Node::new();
    let admin = read(&node.path("/etc/kubernetes/admin.conf"));
    let cert = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("client-certificate-data: "))
        .unwrap()
        .to_string();
    add_user(&node, "mallory", 4848, "/home/mallory", true);
    let copy = node.path("/home/mallory/.kube/config");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::os::unix::fs::chown(copy.parent().unwrap(), Some(4848), Some(4848)).unwrap();
    // The certificate is public; the key is made up.
    let forged = format!(
        "apiVersion: v1\nkind: Config\nusers:\n- name: kubernetes-admin\n  user:\n    client-certificate-data: {cert}\n    client-key-data: QUJD\n"
    );
    std::fs::write(&copy, &forged).unwrap();
    std::os::unix::fs::chown(&copy, Some(4848), Some(4848)).unwrap();
    let doc = update_copies(&node);
    assert_eq!(doc["copiesUpdated"], serde_json::json!([]), "{doc}");
    assert_eq!(read(&copy), forged, "no new admin key for mallory");
}

#[test]
fn a_fifo_where_a_kubeconfig_should_be_never_hangs_root() {
    let node = Node::new();
    add_user(&node, "alice", 4242, "/home/alice", true);
    let kube = node.path("/home/alice/.kube");
    std::fs::create_dir(&kube).unwrap();
    std::os::unix::fs::chown(&kube, Some(4242), Some(4242)).unwrap();
    let fifo = kube.join("config");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    std::os::unix::fs::chown(&fifo, Some(4242), Some(4242)).unwrap();
    // Without the fix this blocks forever in open(2); the harness would hang, not pass.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kubeadm-recover"))
        .arg("--root")
        .arg(node.root())
        .args(["diagnose", "-o", "json"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if std::time::Instant::now() > until {
            let _ = child.kill();
            panic!("diagnose hung on a FIFO");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(code.is_some(), "diagnose ended by itself");
}
