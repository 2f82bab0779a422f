use crate::harness::*;

fn only_backup_id(node: &Node) -> String {
    let doc = node
        .run()
        .args(["backups", "list", "-o", "json"])
        .ok()
        .json();
    let backups = doc["backups"].as_array().unwrap();
    backups.last().unwrap()["id"].as_str().unwrap().to_string()
}

#[test]
fn list_shows_backups_with_checksum_state() {
    let node = Node::new();
    assert!(
        node.run()
            .args(["backups", "list"])
            .ok()
            .stdout
            .starts_with("no backups")
    );
    node.run()
        .args([
            "extend-tokens",
            "disable",
            "--no-wait",
            "--yes",
            "--reason",
            "drill",
        ])
        .ok();
    let doc = node
        .run()
        .args(["backups", "list", "-o", "json"])
        .ok()
        .json();
    let b = &doc["backups"][0];
    assert_eq!(b["operation"], "extend-tokens-disable");
    assert_eq!(b["reason"], "drill");
    assert_eq!(b["checksumsOk"], true);
    assert_eq!(
        b["files"][0]["path"],
        "/etc/kubernetes/manifests/kube-apiserver.yaml"
    );
}

#[test]
fn restore_is_byte_exact_and_backs_up_what_it_replaces() {
    let node = Node::with_fixture("hand-edited.yaml");
    let original = node.manifest();
    node.run()
        .args(["extend-tokens", "disable", "--no-wait", "--yes"])
        .ok();
    let changed = node.manifest();
    let id = only_backup_id(&node);

    let before = node.snapshot();
    let out = node
        .run()
        .args(["backups", "restore", &id, "--dry-run"])
        .ok();
    assert!(out.stdout.contains("dry run"), "{}", out.stdout);
    assert_eq!(node.snapshot(), before);

    let doc = node
        .run()
        .args([
            "backups",
            "restore",
            &id,
            "--no-wait",
            "--yes",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(node.manifest(), original);
    let pre_restore = node.path(doc["backup"]["path"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(pre_restore.join("kube-apiserver.yaml")).unwrap(),
        changed
    );
    assert_eq!(node.manifest_dir_entries(), vec!["kube-apiserver.yaml"]);

    let again = node
        .run()
        .args(["backups", "restore", &id, "--no-wait", "--yes"])
        .ok();
    assert!(again.stdout.contains("nothing to do"), "{}", again.stdout);
}

#[test]
fn a_tampered_backup_is_refused() {
    let node = Node::new();
    node.run()
        .args(["extend-tokens", "disable", "--no-wait", "--yes"])
        .ok();
    let id = only_backup_id(&node);
    let copy = node.backup_dirs()[0].join("kube-apiserver.yaml");
    let mut bytes = std::fs::read(&copy).unwrap();
    bytes.extend_from_slice(b"# tampered\n");
    std::fs::write(&copy, bytes).unwrap();
    let before = node.snapshot();
    let out = node
        .run()
        .args(["backups", "restore", &id, "--no-wait", "--yes"])
        .code(3);
    assert!(
        out.stderr.contains("no longer matches its checksums"),
        "{}",
        out.stderr
    );
    assert_eq!(node.snapshot(), before);
    let listed = node.run().args(["backups", "list"]).ok();
    assert!(listed.stdout.contains("CHECKSUM MISMATCH"));
}

#[test]
fn unknown_backup_is_a_usage_error() {
    let node = Node::new();
    let out = node
        .run()
        .args([
            "backups",
            "restore",
            "20990101T000000Z-nope",
            "--no-wait",
            "--yes",
        ])
        .code(2);
    assert!(out.stderr.contains("backups list"), "{}", out.stderr);
}

#[test]
fn stray_copies_in_a_backup_are_never_put_back() {
    let node = Node::new();
    std::fs::copy(
        node.manifest_path(),
        node.path("/etc/kubernetes/manifests/kube-apiserver.yaml.orig"),
    )
    .unwrap();
    node.run()
        .args([
            "extend-tokens",
            "enable",
            "--no-wait",
            "--yes",
            "--move-strays",
        ])
        .ok();
    let id = only_backup_id(&node);
    let doc = node
        .run()
        .args([
            "backups",
            "restore",
            &id,
            "--no-wait",
            "--yes",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(
        doc["notRestored"][0],
        "/etc/kubernetes/manifests/kube-apiserver.yaml.orig"
    );
    assert_eq!(node.manifest_dir_entries(), vec!["kube-apiserver.yaml"]);
}
