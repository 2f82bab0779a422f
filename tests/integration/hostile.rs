//! A hostile world: filesystems that refuse, other mounts, a host runtime next to a sandbox,
//! impatient operators. Whatever happens, the exit code tells the truth about the node.
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::*;

/// A mount made for one test, undone when the test ends (even when it fails).
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, size: &str) -> Mount {
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                at.to_str().unwrap(),
            ],
        );
        Mount(at.to_path_buf())
    }

    fn read_only(at: &Path) -> Mount {
        let dir = at.to_str().unwrap();
        run("mount", &["--bind", dir, dir]);
        let mount = Mount(at.to_path_buf());
        run("mount", &["-o", "remount,ro,bind", dir]);
        mount
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().unwrap();
    assert!(status.success(), "{program} {args:?}");
}

/// Exit 1 means: the manifest is byte for byte what it was, and no session is left unfinished.
fn assert_as_before(sim: &SimNode, original: &str, out: &Output) {
    assert_eq!(out.code, 1, "exit 1\n{}", out.stderr);
    assert!(
        out.stderr.contains("the node is as before"),
        "{}",
        out.stderr
    );
    assert_eq!(sim.manifest(), original);
    let status = sim.status();
    assert_ne!(status["session"]["unfinished"], true, "{status}");
    assert_eq!(status["apiserver"]["health"], "ok");
}

fn enable(sim: &SimNode) -> Output {
    sim.run()
        .args(["extend-tokens", "enable", "--yes", "--timeout", "20s"])
        .output()
}

#[test]
fn a_write_refused_before_the_rename_is_exit_1_with_no_unfinished_session() {
    let sim = SimNode::start();
    let original = sim.manifest();
    let manifests = sim.path("/etc/kubernetes/manifests");

    // A read-only manifest directory.
    {
        let _ro = Mount::read_only(&manifests);
        assert_as_before(&sim, &original, &enable(&sim));
    }
    // An immutable manifest.
    run("chattr", &["+i", sim.manifest_path().to_str().unwrap()]);
    let out = enable(&sim);
    run("chattr", &["-i", sim.manifest_path().to_str().unwrap()]);
    assert_as_before(&sim, &original, &out);
    // The manifest directory on another filesystem: rename(2) gives EXDEV, never a copy.
    {
        let _other = Mount::tmpfs(&manifests, "1m");
        std::fs::write(sim.manifest_path(), &original).unwrap();
        let out = enable(&sim);
        assert!(
            out.stderr.contains("cross-device") || out.stderr.contains("os error 18"),
            "{}",
            out.stderr
        );
        assert_as_before(&sim, &original, &out);
    }
    // Afterwards the node takes the change as usual.
    sim.run().args(["extend-tokens", "enable", "--yes"]).ok();
}

#[test]
fn the_rollback_has_its_own_wait_and_a_zero_timeout_is_a_usage_error() {
    let sim = SimNode::start();
    let original = sim.manifest();
    sim.run()
        .args(["extend-tokens", "enable", "--yes", "--timeout", "0s"])
        .code(2);
    // Every apiserver now needs 4 s to serve: the change times out at 2 s, and the rollback
    // (its own budget) sees the old one come back.
    sim.configure(|c| c.startup_delay_ms = 4000);
    let out = sim
        .run()
        .args(["extend-tokens", "enable", "--yes", "--timeout", "2s"])
        .output();
    sim.configure(|c| c.startup_delay_ms = 300);
    assert_as_before(&sim, &original, &out);
}

#[test]
fn a_sandbox_never_touches_the_host_container_runtime() {
    let sim = SimNode::start();
    let bin = tempfile::tempdir().unwrap();
    let calls = bin.path().join("calls");
    let crictl = bin.path().join("crictl");
    std::fs::write(
        &crictl,
        format!(
            "#!/bin/sh\necho \"$@\" >> {}\necho 0123456789abcdef\n",
            calls.display()
        ),
    )
    .unwrap();
    run("chmod", &["755", crictl.to_str().unwrap()]);
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap()
    );
    sim.configure(|c| c.frozen = true);
    let out = sim
        .run()
        .args([
            "extend-tokens",
            "enable",
            "--yes",
            "--timeout",
            "4s",
            "--nudge-after",
            "1s",
        ])
        .env("PATH", &path)
        .output();
    sim.configure(|c| c.frozen = false);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("moving the manifest"),
        "the sandbox is nudged by moving its own manifest: {}",
        out.stderr
    );
    assert!(
        !calls.exists(),
        "crictl was run under a sandbox root: {}",
        std::fs::read_to_string(&calls).unwrap_or_default()
    );
    sim.run().args(["status"]).env("PATH", &path).ok();
    assert!(!calls.exists(), "status ran crictl under a sandbox root");
}

fn session_ids(sim: &SimNode) -> Vec<String> {
    let journal: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sim.path("/var/lib/kubeadm-recover/journal.json")).unwrap(),
    )
    .unwrap();
    journal["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_second_revert_never_quietly_undoes_an_older_session() {
    let sim = SimNode::start();
    // An earlier CIS hardening, then the break-glass change.
    sim.run()
        .args([
            "extend-tokens",
            "disable",
            "--yes",
            "--stale-window",
            "0s",
            "--reason",
            "CIS",
        ])
        .ok();
    let hardened = sim.manifest();
    sim.run().args(["extend-tokens", "enable", "--yes"]).ok();
    sim.run().args(["revert", "--yes"]).ok();
    assert_eq!(sim.manifest(), hardened, "the break-glass change is undone");
    let out = sim.run().args(["revert", "--yes"]).code(2);
    assert!(
        out.stderr.contains("already reverted") && out.stderr.contains("--session"),
        "{}",
        out.stderr
    );
    assert_eq!(sim.manifest(), hardened, "the CIS hardening stays");
    // Named, the older session is reverted.
    let cis = session_ids(&sim)[0].clone();
    sim.run()
        .args(["revert", "--yes", "--session", &cis, "--stale-window", "0s"])
        .ok();
    assert_ne!(sim.manifest(), hardened);
}

#[test]
fn an_unfinished_session_after_a_hand_edit_has_a_documented_way_out() {
    let sim = SimNode::start();
    sim.killed_mid_change();
    // Someone edits the manifest by hand: neither the original nor the intended version.
    let edited = sim.manifest().replace(
        "--allow-privileged=true",
        "--allow-privileged=true\n    - --v=2",
    );
    std::fs::write(sim.manifest_path(), &edited).unwrap();
    let resume = sim.run().args(["resume", "--yes"]).code(3);
    let revert = sim.run().args(["revert", "--yes"]).code(3);
    for out in [&resume, &revert] {
        assert!(
            out.stderr.contains("journal abandon --session"),
            "{}",
            out.stderr
        );
    }
    let id = session_ids(&sim).pop().unwrap();
    sim.run()
        .args([
            "journal",
            "abandon",
            "--session",
            &id,
            "--yes",
            "--reason",
            "hand edit",
        ])
        .ok();
    assert_eq!(sim.manifest(), edited, "abandon leaves the manifest alone");
    let audit = std::fs::read_to_string(sim.path("/var/log/kubeadm-recover/audit.jsonl")).unwrap();
    assert!(
        audit.contains("journal abandon") && audit.contains("hand edit"),
        "{audit}"
    );
    let list = sim.run().args(["journal", "list"]).ok().stdout;
    assert!(list.contains("abandoned"), "{list}");
    // The node takes changes again.
    sim.configure(|c| c.frozen = false);
    sim.run().args(["status"]).ok();
    sim.run()
        .args(["extend-tokens", "enable", "--yes", "--dry-run"])
        .ok();
}

#[test]
fn revert_no_wait_does_not_wait_for_a_kubelet_that_is_down() {
    let node = Node::new();
    node.run()
        .args(["extend-tokens", "enable", "--yes", "--no-wait"])
        .ok();
    // Someone already put the original back by hand; the kubelet is down.
    let backup = node.backup_dirs().pop().unwrap();
    std::fs::copy(backup.join("kube-apiserver.yaml"), node.manifest_path()).unwrap();
    let started = std::time::Instant::now();
    let out = node.run().args(["revert", "--yes", "--no-wait"]).ok();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "revert --no-wait returned without waiting"
    );
    assert!(out.stderr.contains("nothing was proved"), "{}", out.stderr);
}

#[test]
fn a_tampered_backup_cannot_choose_where_root_writes() {
    let node = Node::new();
    node.run()
        .args(["extend-tokens", "enable", "--yes", "--no-wait"])
        .ok();
    let backup = node.backup_dirs().pop().unwrap();
    let id = backup
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("kubeadm-recover-backup-")
        .to_string();
    let meta_path = backup.join("backup.json");
    let original_meta = std::fs::read_to_string(&meta_path).unwrap();
    let cases = [
        (
            "/etc/kubernetes/manifests/etcd.yaml",
            "0600",
            "not a file kubeadm-recover backs up",
        ),
        (
            "/etc/kubernetes/manifests/../../../../tmp/escaped",
            "0600",
            "not a file kubeadm-recover backs up",
        ),
        (
            "/etc/kubernetes/manifests/kube-apiserver.yaml",
            "0666",
            "would let others write it",
        ),
        (
            "/etc/kubernetes/manifests/kube-apiserver.yaml",
            "4755",
            "would let others write it",
        ),
    ];
    for (path, mode, why) in cases {
        let mut meta: serde_json::Value = serde_json::from_str(&original_meta).unwrap();
        meta["files"][0]["path"] = path.into();
        meta["files"][0]["ownership"]["mode"] = mode.into();
        std::fs::write(&meta_path, serde_json::to_string_pretty(&meta).unwrap()).unwrap();
        let before = node.snapshot();
        let out = node
            .run()
            .args(["backups", "restore", &id, "--yes", "--no-wait"])
            .code(3);
        assert!(out.stderr.contains(why), "{path} {mode}: {}", out.stderr);
        assert_eq!(node.snapshot(), before, "{path} {mode}: nothing written");
    }
    // A symlinked /etc/kubernetes/manifests leading out of the root is refused too.
    std::fs::write(&meta_path, &original_meta).unwrap();
    let outside = tempfile::tempdir().unwrap();
    let manifests = node.path("/etc/kubernetes/manifests");
    let moved = node.path("/etc/kubernetes/manifests.real");
    std::fs::rename(&manifests, &moved).unwrap();
    std::os::unix::fs::symlink(outside.path(), &manifests).unwrap();
    let out = node
        .run()
        .args(["backups", "restore", &id, "--yes", "--no-wait"])
        .output();
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        0,
        "nothing written outside"
    );
}

#[test]
fn state_files_are_never_followed_through_symlinks() {
    let node = Node::new();
    let victim = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(victim.path(), "precious").unwrap();
    std::fs::create_dir_all(node.path("/var/lib/kubeadm-recover")).unwrap();
    std::os::unix::fs::symlink(victim.path(), node.path("/var/lib/kubeadm-recover/lock")).unwrap();
    let out = node
        .run()
        .args(["extend-tokens", "enable", "--yes", "--no-wait"])
        .output();
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(victim.path()).unwrap(), "precious");
    std::fs::remove_file(node.path("/var/lib/kubeadm-recover/lock")).unwrap();

    std::fs::create_dir_all(node.path("/var/log/kubeadm-recover")).unwrap();
    std::os::unix::fs::symlink(
        victim.path(),
        node.path("/var/log/kubeadm-recover/audit.jsonl"),
    )
    .unwrap();
    let _ = node
        .run()
        .args(["extend-tokens", "enable", "--yes", "--no-wait"])
        .output();
    assert_eq!(std::fs::read_to_string(victim.path()).unwrap(), "precious");
}

#[test]
fn a_symlinked_manifest_is_written_through_and_stays_a_link() {
    let node = Node::new();
    let original = node.manifest();
    let real = node.path("/etc/kubernetes/real/kube-apiserver.yaml");
    std::fs::create_dir_all(real.parent().unwrap()).unwrap();
    std::fs::rename(node.manifest_path(), &real).unwrap();
    // The link names the node's own path: under --root it resolves inside the root.
    std::os::unix::fs::symlink(
        "/etc/kubernetes/real/kube-apiserver.yaml",
        node.manifest_path(),
    )
    .unwrap();
    node.run()
        .args(["extend-tokens", "enable", "--yes", "--no-wait"])
        .ok();
    let meta = std::fs::symlink_metadata(node.manifest_path()).unwrap();
    assert!(meta.file_type().is_symlink(), "the link stays a link");
    assert!(
        std::fs::read_to_string(&real)
            .unwrap()
            .contains("--service-account-extend-token-expiration=true")
    );
    node.run().args(["revert", "--yes", "--no-wait"]).ok();
    assert_eq!(std::fs::read_to_string(&real).unwrap(), original);
    assert!(
        std::fs::symlink_metadata(node.manifest_path())
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn temp_files_of_a_killed_run_are_removed_and_said() {
    let node = Node::new();
    let leftovers = [
        node.path("/etc/kubernetes/tmp/.kubeadm-recover-AbC123"),
        node.path("/etc/kubernetes/.kubeadm-recover-XyZ789"),
    ];
    std::fs::create_dir_all(node.path("/etc/kubernetes/tmp")).unwrap();
    for path in &leftovers {
        std::fs::write(path, "client-key-data: c2VjcmV0").unwrap();
    }
    let out = node
        .run()
        .args(["extend-tokens", "enable", "--yes", "--no-wait"])
        .ok();
    for path in &leftovers {
        assert!(!path.exists(), "{} removed", path.display());
    }
    assert!(
        out.stderr.contains("a temp file left by a killed run"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_tmp_dir_that_is_a_file_is_named_and_nothing_changes() {
    let node = Node::new();
    std::fs::write(node.path("/etc/kubernetes/tmp"), "not a directory").unwrap();
    let original = node.manifest();
    let out = node
        .run()
        .args(["extend-tokens", "enable", "--yes", "--no-wait"])
        .code(1);
    assert!(
        out.stderr
            .contains("/etc/kubernetes/tmp must be a directory"),
        "{}",
        out.stderr
    );
    assert_eq!(node.manifest(), original);
    let status = node.run().args(["status", "-o", "json"]).ok().json();
    assert_ne!(status["session"]["unfinished"], true, "{status}");
}

#[test]
fn a_change_that_cannot_be_audited_does_not_start() {
    let node = Node::new();
    let original = node.manifest();
    let log_dir = node.path("/var/log/kubeadm-recover");
    std::fs::create_dir_all(&log_dir).unwrap();
    let _full = Mount::tmpfs(&log_dir, "4k");
    // Fill it.
    let _ = std::fs::write(log_dir.join("filler"), vec![b'x'; 8192]);
    let out = node
        .run()
        .args(["extend-tokens", "enable", "--yes", "--no-wait"])
        .code(3);
    assert!(out.stderr.contains("cannot be written"), "{}", out.stderr);
    assert_eq!(node.manifest(), original);
    assert!(node.backup_dirs().is_empty(), "no backup either");
}

fn field(text: &str, user: &str, key: &str) -> String {
    let start = text.find(&format!("- name: {user}\n")).unwrap();
    let rest = &text[start..];
    let at = rest.find(&format!("{key}: ")).unwrap() + key.len() + 2;
    rest[at..].lines().next().unwrap().to_string()
}

#[test]
fn regenerate_finds_the_admin_user_by_identity_not_by_the_current_context() {
    let node = Node::new();
    let path = node.path("/etc/kubernetes/admin.conf");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(
            "contexts:\n",
            "contexts:\n- context:\n    cluster: kubernetes\n    user: alice\n  name: alice@kubernetes\n",
        )
        .replace(
            "current-context: kubernetes-admin@kubernetes",
            "current-context: alice@kubernetes",
        )
        .replace("users:\n", "users:\n- name: alice\n  user:\n    token: alices-own-token\n");
    std::fs::write(&path, &text).unwrap();
    node.run()
        .args(["admin-conf", "regenerate", "--yes", "--no-verify"])
        .ok();
    let new = std::fs::read_to_string(&path).unwrap();
    assert_ne!(
        field(&new, "kubernetes-admin", "client-certificate-data"),
        field(&text, "kubernetes-admin", "client-certificate-data")
    );
    let changed: Vec<_> = text
        .lines()
        .zip(new.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(
        changed.len(),
        2,
        "only the admin's certificate and key change: {changed:?}"
    );
    assert_eq!(text.lines().count(), new.lines().count());
    assert!(
        new.contains("token: alices-own-token")
            && new.contains("current-context: alice@kubernetes")
    );

    // No admin user at all: refused, nothing changed.
    let tokens_only = "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\ncurrent-context: \"\"\nusers:\n- name: bob\n  user:\n    token: bobs-token\n";
    std::fs::write(&path, tokens_only).unwrap();
    let out = node
        .run()
        .args(["admin-conf", "regenerate", "--yes", "--no-verify"])
        .code(3);
    assert!(
        out.stderr.contains("holds no kubeadm admin.conf user"),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), tokens_only);
}

#[test]
fn a_ca_key_that_does_not_match_an_encrypted_key_and_silly_validities_are_refused() {
    let node = Node::new();
    let admin = node.path("/etc/kubernetes/admin.conf");
    let original = std::fs::read_to_string(&admin).unwrap();
    let ca_key = node.path("/etc/kubernetes/pki/ca.key");
    let real_key = std::fs::read(&ca_key).unwrap();

    let out = node
        .run()
        .args([
            "admin-conf",
            "regenerate",
            "--yes",
            "--no-verify",
            "--validity",
            "1s",
        ])
        .code(2);
    assert!(out.stderr.contains("at least 10m"), "{}", out.stderr);
    let out = node
        .run()
        .args(["admin-conf", "regenerate", "--dry-run", "--validity", "24m"])
        .ok();
    assert!(
        out.stderr.contains("expires in 24 minutes"),
        "{}",
        out.stderr
    );

    run(
        "openssl",
        &[
            "genrsa",
            "-traditional",
            "-out",
            ca_key.to_str().unwrap(),
            "2048",
        ],
    );
    let out = node
        .run()
        .args(["admin-conf", "regenerate", "--yes", "--no-verify"])
        .code(3);
    assert!(out.stderr.contains("does not belong to"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&admin).unwrap(), original);

    run(
        "openssl",
        &[
            "genrsa",
            "-aes256",
            "-passout",
            "pass:secret",
            "-out",
            ca_key.to_str().unwrap(),
            "2048",
        ],
    );
    let out = node
        .run()
        .args(["admin-conf", "regenerate", "--yes", "--no-verify"])
        .code(3);
    assert!(
        out.stderr.contains("ca.key") && out.stderr.contains("encrypted"),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read_to_string(&admin).unwrap(), original);
    std::fs::write(&ca_key, real_key).unwrap();
}

#[test]
fn copies_are_found_by_identity_and_another_clusters_admin_is_left_alone() {
    let node = Node::new();
    let other = Node::new();
    let admin = node.path("/etc/kubernetes/admin.conf");
    let old = std::fs::read_to_string(&admin).unwrap();
    let foreign = std::fs::read_to_string(other.path("/etc/kubernetes/admin.conf")).unwrap();
    let foreign_user = format!(
        "- name: other-admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        field(&foreign, "kubernetes-admin", "client-certificate-data"),
        field(&foreign, "kubernetes-admin", "client-key-data")
    );
    // A copy of the OLD credential (a regenerate has happened since), plus another cluster's admin.
    node.run()
        .args(["admin-conf", "regenerate", "--yes", "--no-verify"])
        .ok();
    let copy = node.path("/root/.kube/config");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::write(&copy, format!("{old}{foreign_user}")).unwrap();
    node.run()
        .args([
            "admin-conf",
            "regenerate",
            "--yes",
            "--no-verify",
            "--update-copies",
        ])
        .ok();
    let now = std::fs::read_to_string(&copy).unwrap();
    let current = std::fs::read_to_string(&admin).unwrap();
    assert_eq!(
        field(&now, "kubernetes-admin", "client-certificate-data"),
        field(&current, "kubernetes-admin", "client-certificate-data"),
        "the stale copy got the new credential"
    );
    assert!(
        now.ends_with(&foreign_user),
        "the other cluster's admin is untouched"
    );
}

#[test]
fn a_signal_during_the_migration_check_stops_cleanly_with_a_document() {
    let sim = SimNode::start();
    let original = sim.manifest();
    let child = Command::new(env!("CARGO_BIN_EXE_kubeadm-recover"))
        .arg("--root")
        .arg(sim.root())
        .args([
            "extend-tokens",
            "disable",
            "--yes",
            "--stale-window",
            "20s",
            "-o",
            "json",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["kind"], "Error");
    assert_eq!(doc["exitCode"], 130);
    assert_eq!(sim.manifest(), original);
}

#[test]
fn rehearse_never_builds_over_something_else() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin.conf"), "precious").unwrap();
    for args in [
        vec!["rehearse", "--dir", dir.path().to_str().unwrap()],
        vec!["rehearse", "--dir", "/"],
        vec!["rehearse", "--dir", dir.path().to_str().unwrap(), "--serve"],
    ] {
        let out = Run::new().args(&args).code(3);
        assert!(!out.stderr.is_empty(), "{args:?} says why");
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("admin.conf")).unwrap(),
        "precious"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn an_empty_root_variable_means_no_sandbox() {
    let out = Run::new()
        .args(["status", "-o", "json"])
        .env("KUBEADM_RECOVER_ROOT", "")
        .output();
    // Not a usage error: it reads the host's own `/` (which is no kubeadm node here).
    assert_ne!(out.code, 2, "{}", out.stderr);
    assert_eq!(out.json()["root"], "/");
}

/// Runs the tool on a pseudo-terminal (its controlling terminal, as over SSH), types `keys`
/// once the question is on the screen, and returns (exit code, everything it printed).
fn on_a_terminal(node: &Node, args: &[&str], keys: &[u8]) -> (i32, String) {
    let mut terminal = Terminal::run(node, args);
    terminal.expect("[y/N]");
    terminal.send(std::str::from_utf8(keys).unwrap());
    terminal.finish()
}

#[test]
fn ctrl_c_and_ctrl_d_at_the_question_mean_no_cleanly() {
    let node = Node::new();
    let original = node.manifest();
    for (name, key) in [
        ("Ctrl-C", b"\x03"),
        ("Ctrl-D", b"\x04"),
        ("Enter", b"\r"),
        ("n", b"n"),
    ] {
        let (code, screen) = on_a_terminal(&node, &["extend-tokens", "enable", "--no-wait"], key);
        assert_eq!(code, 2, "{name}: {screen}");
        assert!(screen.contains("nothing was changed"), "{name}: {screen}");
        assert!(
            !screen.contains("\x1b[?25l"),
            "{name}: the cursor is never hidden: {screen:?}"
        );
        assert_eq!(node.manifest(), original, "{name}");
    }
    let (code, screen) = on_a_terminal(&node, &["extend-tokens", "enable", "--no-wait"], b"y");
    assert_eq!(code, 0, "{screen}");
    assert_ne!(node.manifest(), original);
}

#[test]
fn keys_typed_before_the_question_are_not_its_answer() {
    let node = Node::new();
    let original = node.manifest();
    let mut terminal = Terminal::run(&node, &["extend-tokens", "enable", "--no-wait"]);
    // Typed (or pasted) while the tool starts, long before it asks.
    terminal.send("y");
    terminal.expect("[y/N]");
    terminal.send("n");
    let (code, screen) = terminal.finish();
    assert_eq!(code, 2, "{screen}");
    assert!(screen.contains("nothing was changed"), "{screen}");
    assert_eq!(node.manifest(), original);
}

#[test]
fn a_signal_while_the_question_waits_is_no_at_once() {
    let node = Node::new();
    let original = node.manifest();
    for signal in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGHUP,
    ] {
        let mut terminal = Terminal::run(&node, &["extend-tokens", "enable", "--no-wait"]);
        terminal.expect("[y/N]");
        // A signal is not a key: the question is still waiting when it arrives.
        std::thread::sleep(std::time::Duration::from_millis(300));
        terminal.signal(signal);
        let (code, screen) = terminal.finish();
        assert_eq!(code, 2, "{signal}: {screen}");
        assert!(screen.contains("nothing was changed"), "{signal}: {screen}");
        assert_eq!(node.manifest(), original, "{signal}");
    }
}

#[test]
fn a_garbage_journal_is_said_by_status_and_refuses_changes() {
    let node = Node::new();
    std::fs::create_dir_all(node.path("/var/lib/kubeadm-recover")).unwrap();
    std::fs::write(
        node.path("/var/lib/kubeadm-recover/journal.json"),
        "{not json",
    )
    .unwrap();
    let out = node.run().arg("status").ok();
    assert!(
        out.stdout.contains("JOURNAL   UNREADABLE"),
        "{}",
        out.stdout
    );
    let doc = node.run().args(["status", "-o", "json"]).ok().json();
    assert!(doc["journalProblem"].is_string(), "{doc}");
    node.run()
        .args(["extend-tokens", "enable", "--yes", "--no-wait"])
        .code(3);
}

#[test]
fn a_copy_on_another_filesystem_is_updated_without_crossing_it() {
    let node = Node::new();
    let kube = node.path("/root/.kube");
    std::fs::create_dir_all(&kube).unwrap();
    let _other = Mount::tmpfs(&kube, "1m");
    let admin = node.path("/etc/kubernetes/admin.conf");
    std::fs::copy(&admin, kube.join("config")).unwrap();
    node.run()
        .args([
            "admin-conf",
            "regenerate",
            "--yes",
            "--no-verify",
            "--update-copies",
        ])
        .ok();
    assert_eq!(
        std::fs::read_to_string(kube.join("config")).unwrap(),
        std::fs::read_to_string(&admin).unwrap(),
        "the copy holds the new credential"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&kube)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("config")]);
}

#[test]
fn an_apiserver_in_another_network_namespace_is_not_ours() {
    // The same port, served in the host's namespace; the tool looks from a namespace of its own
    // (as from another sandbox or container): that apiserver is not the one it would talk to.
    let sim = SimNode::start();
    let out = Command::new(simulator())
        .args([
            "netns",
            "--",
            env!("CARGO_BIN_EXE_kubeadm-recover"),
            "--root",
        ])
        .arg(sim.root())
        .args(["status", "-o", "json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(doc["apiserver"]["pid"], serde_json::Value::Null, "{doc}");
    assert!(sim.status()["apiserver"]["pid"].is_number());
}

/// A kube-apiserver that has exited but is not reaped yet (a zombie: its name stays, its command
/// line is gone) serves nothing, on the default port 6443 least of all.
#[test]
fn an_exited_apiserver_not_yet_reaped_is_not_the_apiserver() {
    let node = Node::new(); // its manifest serves 6443
    let dir = tempfile::tempdir().unwrap();
    let name = dir.path().join("kube-apiserver");
    std::os::unix::fs::symlink("/bin/true", &name).unwrap();
    let mut zombie = Command::new(&name).spawn().unwrap();
    let proc_dir = format!("/proc/{}", zombie.id());
    let exited = || {
        std::fs::read_to_string(format!("{proc_dir}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
    };
    for _ in 0..100 {
        if exited() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(exited(), "the child is a zombie named kube-apiserver");
    assert_eq!(
        std::fs::read_to_string(format!("{proc_dir}/comm"))
            .unwrap()
            .trim(),
        "kube-apiserver"
    );
    let doc = node.run().args(["status", "-o", "json"]).ok().json();
    zombie.wait().unwrap();
    assert_eq!(doc["apiserver"]["pid"], serde_json::Value::Null, "{doc}");
}

/// The kubelet bind-mounts /var/lib/kubelet on itself: the same filesystem, another mount, so
/// a rename from /etc/kubernetes/tmp into it fails with EXDEV (the real node found this). The
/// renewed kubelet pair is staged beside its file instead and renamed there; nothing is left.
#[test]
fn a_file_on_another_mount_of_the_same_filesystem_is_replaced_by_a_rename_beside_it() {
    let sim = SimNode::with(NodeOptions {
        full_pki: true,
        ..NodeOptions::default()
    });
    expire_certs(sim.root(), 30, &["kubelet-client"]);
    let kubelet = sim.path("/var/lib/kubelet");
    let dir = kubelet.to_str().unwrap();
    run("mount", &["--bind", dir, dir]);
    let _mount = Mount(kubelet.clone());
    let pair = sim.path("/var/lib/kubelet/pki/kubelet-client-2026-01-01-00-00-00.pem");
    let before = std::fs::read(&pair).unwrap();
    sim.run()
        .args(["certs", "renew", "kubelet-client", "--yes"])
        .ok();
    assert_ne!(std::fs::read(&pair).unwrap(), before, "renewed");
    let left: Vec<_> = std::fs::read_dir(sim.path("/var/lib/kubelet/pki"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".kubeadm-recover-"))
        .collect();
    assert!(left.is_empty(), "no temp file left: {left:?}");
    let check = sim.run().args(["certs", "check", "-o", "json"]).ok().json();
    assert_eq!(check["problems"], serde_json::json!([]), "{check}");
}
