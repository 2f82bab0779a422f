//! The Ansible playbooks (`playbooks/`), run by the real `ansible-playbook` against three
//! simulated control-plane nodes on localhost: one inventory host per node, each with
//! `ansible_connection=local` and its own `--root`. tests/run.sh installs ansible-core.
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

use crate::harness::*;

/// The binary the playbooks copy to each node: the test build, stripped once (the playbooks copy
/// it to every node; 200 MB of debug info three times over would only slow the tests).
fn binary_to_copy() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let exe = Path::new(env!("CARGO_BIN_EXE_kubeadm-recover"));
        let stripped = exe.with_file_name("kubeadm-recover-stripped-for-playbooks");
        // Parallel test binaries may race here: each strips to its own name, then renames.
        let partial =
            exe.with_file_name(format!("kubeadm-recover-stripping-{}", std::process::id()));
        let status = Command::new("strip")
            .arg("-o")
            .arg(&partial)
            .arg(exe)
            .status()
            .expect("strip (binutils) is needed by the playbook tests");
        assert!(status.success(), "strip {} failed", exe.display());
        std::fs::rename(&partial, &stripped).unwrap();
        stripped
    })
}

fn ansible_playbook() -> PathBuf {
    kubeadm_recover::node::on_path("ansible-playbook").unwrap_or_else(|| {
        panic!(
            "ansible-playbook is not on PATH: run the tests with `bash tests/run.sh`, which \
             installs ansible-core into target/test-tools"
        )
    })
}

/// Three simulated control-plane nodes and an inventory that names them cp1..cp3, in order.
struct Cluster {
    nodes: Vec<SimNode>,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start(options: impl Fn(usize) -> NodeOptions) -> Self {
        let nodes: Vec<SimNode> = (0..3).map(|i| SimNode::with(options(i))).collect();
        let dir = tempfile::tempdir().unwrap();
        let mut inventory = String::from("[control_plane]\n");
        for (i, node) in nodes.iter().enumerate() {
            inventory.push_str(&format!(
                "cp{} kubeadm_recover_root={}\n",
                i + 1,
                node.root().display()
            ));
        }
        inventory.push_str(&format!(
            "\n[control_plane:vars]\nansible_connection=local\n\
             ansible_python_interpreter={python}\n\
             kubeadm_recover_become=false\n\
             kubeadm_recover_binary={binary}\n\
             kubeadm_recover_fetch_dest={fetched}\n\
             kubeadm_recover_timeout=60s\n",
            python = python_of_ansible().display(),
            binary = binary_to_copy().display(),
            fetched = dir.path().join("fetched").display(),
        ));
        std::fs::write(dir.path().join("inventory.ini"), inventory).unwrap();
        Cluster { nodes, dir }
    }

    /// `ansible-playbook -i inventory playbooks/<playbook> <args>`: its exit code and output.
    fn play(&self, playbook: &str, args: &[&str]) -> (i32, String) {
        let out = Command::new(ansible_playbook())
            .arg("-i")
            .arg(self.dir.path().join("inventory.ini"))
            .arg(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("playbooks")
                    .join(playbook),
            )
            .args(args)
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_LOCAL_TEMP", self.dir.path().join("ansible-tmp"))
            .env("ANSIBLE_REMOTE_TEMP", self.dir.path().join("ansible-tmp"))
            .env("ANSIBLE_HOME", self.dir.path().join("ansible-home"))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    fn fetched(&self, host: &str) -> PathBuf {
        self.dir
            .path()
            .join("fetched")
            .join(host)
            .join("admin.conf")
    }
}

/// The interpreter that runs ansible-playbook (its venv): the modules run under it too.
fn python_of_ansible() -> PathBuf {
    let script = std::fs::read_to_string(ansible_playbook()).unwrap();
    let shebang = script.lines().next().unwrap_or_default();
    PathBuf::from(shebang.trim_start_matches("#!").trim())
}

fn reason() -> [&'static str; 2] {
    ["-e", "kubeadm_recover_reason='INC-42 tokens expired'"]
}

fn extension_running(node: &SimNode) -> serde_json::Value {
    let status = node.status();
    assert_eq!(status["apiserver"]["health"], "ok", "{status}");
    let flag = &status["apiserver"]["extendTokenExpiration"];
    if flag["state"] == "explicit" {
        flag["value"].clone()
    } else {
        flag["default"].clone()
    }
}

/// The newest session in a node's journal: its id (which begins with its start, to the
/// millisecond) and when the journal was last written (its `proved` step).
fn newest_session(node: &SimNode) -> (String, SystemTime) {
    let journal = node.path("/var/lib/kubeadm-recover/journal.json");
    let text = std::fs::read_to_string(&journal).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let id = value["sessions"]
        .as_array()
        .and_then(|s| s.last())
        .map(|s| s["id"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no session in {}", journal.display()));
    (id, std::fs::metadata(&journal).unwrap().modified().unwrap())
}

/// `20261129T042006.118Z-...` as a time.
fn session_start(id: &str) -> SystemTime {
    let s = |range: std::ops::Range<usize>| &id[range];
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        s(0..4),
        s(4..6),
        s(6..8),
        s(9..11),
        s(11..13),
        s(13..15)
    );
    let seconds = kubeadm_recover::runtime::clock::parse_rfc3339(&rfc3339)
        .unwrap_or_else(|| panic!("{id} does not begin with a time stamp"));
    let ms: u64 = s(16..19).parse().unwrap();
    SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(seconds as u64 * 1000 + ms)
}

#[test]
fn extend_tokens_lands_on_every_node_in_order_then_status_regenerate_and_revert() {
    let cluster = Cluster::start(|i| NodeOptions {
        admin_expired: i == 1,
        ..NodeOptions::default()
    });
    let before: Vec<Snapshot> = cluster.nodes.iter().map(|n| n.snapshot()).collect();
    let manifests_before: Vec<String> = cluster.nodes.iter().map(|n| n.manifest()).collect();
    let disable_first = ["-e", "state=disabled"];

    // Check mode: a dry run on every node that shows its diff and changes nothing, not even
    // an installed binary.
    let (code, out) = cluster.play(
        "extend-tokens.yml",
        &[&disable_first[..], &reason(), &["--check"]].concat(),
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.matches(&format!("+    - --{FLAG}=false")).count(),
        3,
        "each node's diff is shown:\n{out}"
    );
    assert_eq!(
        out.matches(" changed=1 ").count(),
        3,
        "check mode says each node would change:\n{out}"
    );
    for (node, before) in cluster.nodes.iter().zip(&before) {
        assert_eq!(
            &node.snapshot(),
            before,
            "check mode changed a node:\n{out}"
        );
    }

    // The change, node after node: each one proved before the next one starts.
    let (code, out) = cluster.play(
        "extend-tokens.yml",
        &[&disable_first[..], &reason()].concat(),
    );
    assert_eq!(code, 0, "{out}");
    let sessions: Vec<(String, SystemTime)> = cluster.nodes.iter().map(newest_session).collect();
    for pair in sessions.windows(2) {
        let (earlier, next) = (&pair[0], &pair[1]);
        assert!(
            earlier.1 < session_start(&next.0),
            "{} started before {} was proved: two apiservers restarting at once",
            next.0,
            earlier.0
        );
    }
    for (node, (session, _)) in cluster.nodes.iter().zip(&sessions) {
        assert_eq!(extension_running(node), false);
        assert!(
            out.contains(session),
            "the report names each node's session:\n{out}"
        );
        assert!(
            node.path("/usr/local/sbin/kubeadm-recover").is_file(),
            "installed under the node's root"
        );
        let audit = node.audit_lines();
        assert_eq!(
            audit.last().unwrap()["reason"],
            "INC-42 tokens expired",
            "{audit:?}"
        );
    }
    assert!(out.contains("kubeadm-recover-backup-"), "{out}");

    // Again: nothing to do, nothing changed.
    let (code, again) = cluster.play(
        "extend-tokens.yml",
        &[&disable_first[..], &reason()].concat(),
    );
    assert_eq!(code, 0, "{again}");
    assert!(again.contains("changed=0"), "{again}");

    // status: every node reported, all healthy.
    let (code, out) = cluster.play("status.yml", &[]);
    assert_eq!(code, 0, "{out}");
    for host in ["cp1", "cp2", "cp3"] {
        assert!(out.contains(&format!("ok: [{host}]")), "{out}");
    }
    assert_eq!(
        out.matches("\"admin.conf expired").count(),
        1,
        "cp2's expired admin.conf is reported, and only cp2's:\n{out}"
    );

    // The admin credentials: re-issued, proved, fetched private, and working with the real
    // kubectl; on cp2, the copy someone made of its expired admin.conf is rewritten too.
    let copy = cluster.nodes[1].path("/home/alice/.kube/config");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(cluster.nodes[1].path("/etc/kubernetes/admin.conf"), &copy).unwrap();
    let (code, out) = cluster.play(
        "regenerate-admin.yml",
        &[&reason()[..], &["-e", "kubeadm_recover_update_copies=true"]].concat(),
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        std::fs::read(cluster.nodes[1].path("/etc/kubernetes/admin.conf")).unwrap(),
        "cp2's copy is rewritten:\n{out}"
    );
    for (i, node) in cluster.nodes.iter().enumerate() {
        let fetched = cluster.fetched(&format!("cp{}", i + 1));
        let meta = std::fs::metadata(&fetched)
            .unwrap_or_else(|e| panic!("{}: {e}\n{out}", fetched.display()));
        let mode = meta.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", fetched.display());
        assert_eq!(
            std::fs::read(&fetched).unwrap(),
            std::fs::read(node.path("/etc/kubernetes/admin.conf")).unwrap()
        );
        let whoami = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&fetched)
            .args([
                "auth",
                "whoami",
                "-o",
                "jsonpath={.status.userInfo.username}",
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&whoami.stdout),
            "kubernetes-admin",
            "{}",
            String::from_utf8_lossy(&whoami.stderr)
        );
    }

    // revert: every node back to its first manifest, byte for byte; a second revert has
    // nothing to do and says so without failing.
    let (code, out) = cluster.play("revert.yml", &reason());
    assert_eq!(code, 0, "{out}");
    for (node, before) in cluster.nodes.iter().zip(&manifests_before) {
        assert_eq!(&node.manifest(), before);
        assert_eq!(extension_running(node), true);
    }
    let (code, out) = cluster.play("revert.yml", &reason());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("nothing to revert"), "{out}");
    assert!(out.contains("changed=0"), "{out}");
}

#[test]
fn a_node_whose_apiserver_rejects_the_change_stops_the_play_and_the_rest_are_untouched() {
    let cluster = Cluster::start(|i| {
        let mut options = NodeOptions::default();
        if i == 1 {
            options.config.reject_args = vec![format!("--{FLAG}=false")];
        }
        options
    });
    let before: Vec<Snapshot> = cluster.nodes.iter().map(|n| n.snapshot()).collect();
    let cp2_manifest = cluster.nodes[1].manifest();

    // Refused before anything is done: a state that is not one, no reason, no binary, and a
    // binary that is not the tool.
    let not_the_tool = cluster.dir.path().join("not-the-tool");
    std::fs::write(
        &not_the_tool,
        "#!/bin/sh\necho 'Permission denied' >&2\necho hello\n",
    )
    .unwrap();
    std::fs::set_permissions(&not_the_tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let not_the_tool = format!("kubeadm_recover_binary={}", not_the_tool.display());
    let reason = reason();
    let cases: [(Vec<&str>, &str); 4] = [
        (
            [&["-e", "state=on"][..], &reason].concat(),
            "Set state=enabled or state=disabled",
        ),
        (vec!["-e", "state=enabled"], "and kubeadm_recover_reason"),
        (
            [
                &["-e", "state=enabled"][..],
                &reason,
                &["-e", "kubeadm_recover_binary=/nonexistent/kubeadm-recover"],
            ]
            .concat(),
            "/nonexistent/kubeadm-recover is missing or not executable",
        ),
        (
            [
                &["-e", "state=enabled"][..],
                &reason,
                &["-e", &not_the_tool],
            ]
            .concat(),
            "printed no JSON document: Permission denied; hello",
        ),
    ];
    for (args, says) in cases {
        let (code, out) = cluster.play("extend-tokens.yml", &args);
        assert_ne!(code, 0, "{out}");
        assert!(out.contains(says), "{says}:\n{out}");
        assert!(!out.contains("[cp2]"), "the play went on past cp1:\n{out}");
        for (node, before) in cluster.nodes.iter().zip(&before) {
            // Only the copied binary may be there (the not-the-tool case installs it).
            assert_eq!(&node.snapshot().without("usr"), before, "{out}");
        }
    }

    let (code, out) = cluster.play(
        "extend-tokens.yml",
        &[&["-e", "state=disabled"][..], &reason].concat(),
    );
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("kubeadm-recover exited 1 on cp2")
            && out.contains("the node is as it was before (rolled back)"),
        "the failure is told in the tool's words:\n{out}"
    );
    // cp1: changed and proved before cp2 was touched.
    assert_eq!(extension_running(&cluster.nodes[0]), false);
    // cp2: rolled back by the tool, byte for byte, and healthy again.
    assert_eq!(cluster.nodes[1].manifest(), cp2_manifest);
    assert_eq!(extension_running(&cluster.nodes[1]), true);
    // cp3: never reached; not even the binary was copied there.
    assert_eq!(cluster.nodes[2].snapshot(), before[2], "{out}");
    assert!(!out.contains("[cp3]"), "cp3 was not in the play:\n{out}");

    // cp2 is fixed; cp3 is left half-way by a killed run of the tool (its journal holds the
    // unfinished change). The next play finishes cp2 and stops at cp3 with the tool's refusal.
    cluster.nodes[1].configure(|c| c.reject_args.clear());
    cluster.nodes[2].killed_mid_change();
    let (code, out) = cluster.play(
        "extend-tokens.yml",
        &[&["-e", "state=disabled"][..], &reason].concat(),
    );
    assert_ne!(code, 0, "{out}");
    assert_eq!(extension_running(&cluster.nodes[1]), false);
    assert!(
        out.contains("kubeadm-recover exited 3 on cp3: refused by a preflight check")
            && out.contains("resume")
            && out.contains("revert"),
        "cp3's unfinished change is named, with resume and revert:\n{out}"
    );
}

#[test]
fn certs_renew_goes_node_by_node_and_stops_at_the_first_whose_apiserver_does_not_reload() {
    let cluster = Cluster::start(|i| {
        let mut options = NodeOptions::default();
        options.config.serving_cert_reload = i != 1;
        options
    });
    let serving = |i: usize| {
        std::fs::read(cluster.nodes[i].path("/etc/kubernetes/pki/apiserver.crt")).unwrap()
    };
    let before: Vec<Vec<u8>> = (0..3).map(serving).collect();
    let (code, out) = cluster.play(
        "certs-renew.yml",
        &[
            &reason()[..],
            &[
                "-e",
                "kubeadm_recover_certificates=apiserver",
                "-e",
                "kubeadm_recover_timeout=2s",
            ],
        ]
        .concat(),
    );
    assert_ne!(code, 0, "{out}");
    assert_ne!(serving(0), before[0], "cp1 renewed and proved:\n{out}");
    assert!(
        out.contains("kube-apiserver: reloaded"),
        "cp1's report:\n{out}"
    );
    assert_eq!(serving(1), before[1], "cp2 rolled back:\n{out}");
    assert!(out.contains("exited 1 on cp2"), "{out}");
    assert!(out.contains("the node is as it was before"), "{out}");
    assert_eq!(serving(2), before[2], "cp3 never touched:\n{out}");
}
