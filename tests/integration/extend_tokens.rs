use std::os::unix::fs::{MetadataExt, PermissionsExt};

use crate::harness::*;

fn state(node: &Node) -> serde_json::Value {
    node.run().args(["status", "-o", "json"]).ok().json()["manifest"]["extendTokenExpiration"]
        .clone()
}

#[test]
fn enable_and_disable_change_only_the_flag_item_on_every_fixture() {
    for fixture in [
        "kubeadm-1.18.yaml",
        "kubeadm-1.25.yaml",
        "kubeadm-1.30.yaml",
        "hand-edited.yaml",
        "args-flow.yaml",
        "pod.json",
    ] {
        let node = Node::with_fixture(fixture);
        let original = node.manifest();
        for (verb, value) in [("disable", false), ("enable", true), ("disable", false)] {
            let before = node.manifest();
            node.run()
                .args(["extend-tokens", verb, "--no-wait", "--yes"])
                .ok();
            let after = node.manifest();
            assert_only_flag_changed(&before, &after, &format!("{fixture}: {verb}"));
            let flag = state(&node);
            assert_eq!(
                (flag["state"].as_str(), flag["value"].as_bool()),
                (Some("explicit"), Some(value)),
                "{fixture}"
            );
            assert_eq!(
                flag["occurrences"].as_array().unwrap().len(),
                1,
                "{fixture}"
            );
            assert_eq!(
                node.manifest_dir_entries(),
                vec!["kube-apiserver.yaml"],
                "{fixture}"
            );
        }
        if fixture.ends_with(".json") {
            serde_json::from_str::<serde_json::Value>(&node.manifest()).expect("JSON stays JSON");
        }
        if fixture == "hand-edited.yaml" {
            let text = node.manifest();
            assert_eq!(
                text.matches('\n').count(),
                text.matches("\r\n").count(),
                "CRLF kept"
            );
            assert!(text.contains("# KMS plugin runs first on purpose"));
        }
        // The first backup holds the original bytes, and restoring it gives them back.
        let first = node.backup_dirs()[0].clone();
        let id = first
            .file_name()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches("kubeadm-recover-backup-")
            .to_string();
        node.run()
            .args(["backups", "restore", &id, "--no-wait", "--yes"])
            .ok();
        assert_eq!(
            node.manifest(),
            original,
            "{fixture}: restore is byte-exact"
        );
    }
}

#[test]
fn already_enabled_is_a_no_op_that_writes_nothing() {
    let node = Node::new();
    node.run()
        .args(["extend-tokens", "enable", "--no-wait", "--yes"])
        .ok();
    let before = node.snapshot();
    let out = node
        .run()
        .args(["extend-tokens", "enable", "--no-wait", "--yes"])
        .ok();
    assert!(out.stdout.contains("already enabled"), "{}", out.stdout);
    assert_eq!(node.snapshot(), before);
}

#[test]
fn dry_run_prints_the_exact_diff_and_writes_nothing() {
    let node = Node::new();
    let before = node.snapshot();
    let out = node
        .run()
        .args(["extend-tokens", "disable", "--dry-run"])
        .ok();
    assert!(
        out.stdout
            .contains("--- a/etc/kubernetes/manifests/kube-apiserver.yaml"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("\n+    - --service-account-extend-token-expiration=false\n")
    );
    assert_eq!(node.snapshot(), before, "not even a backup");
    let doc = node
        .run()
        .args(["extend-tokens", "disable", "--dry-run", "-o", "json"])
        .ok()
        .json();
    assert_eq!(doc["kind"], "ExtendTokensResult");
    assert_eq!(doc["dryRun"], true);
    assert!(
        doc["diff"]
            .as_str()
            .unwrap()
            .contains("+    - --service-account-extend-token-expiration=false")
    );
}

#[test]
fn a_script_must_say_yes() {
    let node = Node::new();
    let before = node.snapshot();
    let out = node
        .run()
        .args(["extend-tokens", "enable", "--no-wait"])
        .code(2);
    assert!(out.stderr.contains("pass --yes"), "{}", out.stderr);
    assert_eq!(node.snapshot(), before);
}

#[test]
fn the_write_keeps_mode_and_owner_backs_up_and_audits() {
    let node = Node::new();
    let manifest = node.manifest_path();
    std::fs::set_permissions(&manifest, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(&manifest, Some(1234), Some(2345)).unwrap();
    let original = node.manifest();
    let doc = node
        .run()
        .args([
            "extend-tokens",
            "disable",
            "--no-wait",
            "--yes",
            "-o",
            "json",
            "--reason",
            "CIS 1.2.30",
        ])
        .env("SUDO_USER", "alice")
        .ok()
        .json();
    let meta = std::fs::metadata(&manifest).unwrap();
    assert_eq!(
        (meta.mode() & 0o7777, meta.uid(), meta.gid()),
        (0o640, 1234, 2345)
    );

    let backup_dir = node.path(doc["backup"]["path"].as_str().unwrap());
    assert!(backup_dir.starts_with(node.path("/etc/kubernetes/tmp")));
    assert_eq!(
        std::fs::metadata(&backup_dir).unwrap().mode() & 0o777,
        0o700
    );
    let copy = backup_dir.join("kube-apiserver.yaml");
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), original);
    assert_eq!(std::fs::metadata(&copy).unwrap().mode() & 0o777, 0o600);
    let sums = std::process::Command::new("sha256sum")
        .arg("-c")
        .arg("SHA256SUMS")
        .current_dir(&backup_dir)
        .output()
        .unwrap();
    assert!(sums.status.success(), "sha256sum -c accepts the backup");

    let audit = node.audit_lines();
    assert_eq!(audit.len(), 2);
    assert_eq!(
        audit[0]["outcome"], "started",
        "audited before anything is written"
    );
    let entry = &audit[1];
    assert_eq!(entry["command"], "extend-tokens disable");
    assert_eq!(entry["reason"], "CIS 1.2.30");
    assert_eq!(entry["sudo_user"], "alice");
    assert_eq!(
        entry["files"][0]["path"],
        "/etc/kubernetes/manifests/kube-apiserver.yaml"
    );
    assert_ne!(
        entry["files"][0]["sha256_before"],
        entry["files"][0]["sha256_after"]
    );
    assert_eq!(entry["backup"], doc["backup"]["path"]);
    let log = node.path("/var/log/kubeadm-recover/audit.jsonl");
    assert_eq!(std::fs::metadata(log).unwrap().mode() & 0o777, 0o600);
    assert!(
        node.path("/etc/kubernetes/tmp")
            .read_dir()
            .unwrap()
            .all(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("kubeadm-recover-backup-")),
        "no temp file left"
    );
}

#[test]
fn broken_manifests_are_refused_with_their_line_and_nothing_changes() {
    for (text, expect) in [
        ("", "the manifest is empty"),
        (
            "apiVersion: v1\nkind: Pod\nspec:\n  containers: [\n",
            "invalid YAML",
        ),
        (
            "apiVersion: v1\nkind: Pod\nspec:\n\tcontainers: []\n",
            "line 4, column 1: a tab is used for indentation",
        ),
        (
            "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: etcd\n    command: [etcd]\n",
            "line 4, column 3: no kube-apiserver container (containers: etcd)",
        ),
        (
            "kind: Pod\n---\nkind: Pod\n",
            "line 2, column 1: the file holds several YAML documents",
        ),
    ] {
        let node = Node::with_manifest_text(text);
        let before = node.snapshot();
        for args in [
            &["extend-tokens", "enable", "--no-wait", "--yes"][..],
            &["extend-tokens", "disable", "--dry-run"],
        ] {
            let out = node.run().args(args).code(3);
            assert!(
                out.stderr.contains("kube-apiserver.yaml: "),
                "names the file: {}",
                out.stderr
            );
            assert!(out.stderr.contains(expect), "{expect:?} in {}", out.stderr);
            assert!(out.stderr.contains("what to do: "), "{}", out.stderr);
        }
        assert_eq!(
            node.snapshot(),
            before,
            "no backup, no temp file, no stray: {text:?}"
        );
    }
}

#[test]
fn a_stray_copy_is_refused_then_moved_out_with_move_strays() {
    let node = Node::new();
    let bak = node.path("/etc/kubernetes/manifests/kube-apiserver.yaml.bak");
    std::fs::copy(node.manifest_path(), &bak).unwrap();
    let before = node.snapshot();
    let out = node
        .run()
        .args(["extend-tokens", "enable", "--no-wait", "--yes"])
        .code(3);
    assert!(
        out.stderr
            .contains("kube-apiserver.yaml.bak: declares the same pod"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--move-strays"));
    assert_eq!(node.snapshot(), before);

    let doc = node
        .run()
        .args([
            "extend-tokens",
            "enable",
            "--no-wait",
            "--yes",
            "--move-strays",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(
        doc["movedStrays"][0],
        "/etc/kubernetes/manifests/kube-apiserver.yaml.bak"
    );
    assert_eq!(node.manifest_dir_entries(), vec!["kube-apiserver.yaml"]);
    let backup_dir = node.path(doc["backup"]["path"].as_str().unwrap());
    assert!(backup_dir.join("moved-kube-apiserver.yaml.bak").exists());
}

#[test]
fn editor_leftovers_are_refused() {
    let node = Node::new();
    std::fs::write(
        node.path("/etc/kubernetes/manifests/.kube-apiserver.yaml.swp"),
        "b0VIM",
    )
    .unwrap();
    let out = node
        .run()
        .args(["extend-tokens", "disable", "--no-wait", "--yes"])
        .code(3);
    assert!(out.stderr.contains("editor leftover"), "{}", out.stderr);
}

#[test]
fn a_second_run_is_refused_while_the_lock_is_held() {
    use std::io::Write;
    let node = Node::new();
    let lock_path = node.path("/var/lib/kubeadm-recover/lock");
    std::fs::create_dir_all(lock_path.parent().unwrap()).unwrap();
    std::fs::set_permissions(
        lock_path.parent().unwrap(),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let mut file = std::fs::File::create(&lock_path).unwrap();
    write!(file, "4242").unwrap();
    let _held = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).unwrap();
    let before = node.snapshot();
    let out = node
        .run()
        .args(["extend-tokens", "enable", "--no-wait", "--yes"])
        .code(3);
    assert!(out.stderr.contains("pid 4242"), "{}", out.stderr);
    assert_eq!(node.snapshot(), before);
}

#[test]
fn changing_a_real_node_needs_root() {
    if !nix::unistd::geteuid().is_root() {
        return; // the check below drops privileges, which needs root to begin with
    }
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_kubeadm-recover"),
        ])
        .args(["extend-tokens", "enable", "--no-wait", "--yes"])
        .env_remove("KUBEADM_RECOVER_ROOT")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs root"));
}

#[test]
fn errors_in_json_mode_are_a_document_too() {
    let node = Node::with_manifest_text("");
    let out = node
        .run()
        .args([
            "extend-tokens",
            "enable",
            "--no-wait",
            "--yes",
            "-o",
            "json",
        ])
        .code(3);
    let doc = out.json();
    assert_eq!(doc["kind"], "Error");
    assert_eq!(doc["exitCode"], 3);
    assert_eq!(doc["reason"], "Refused");
}
