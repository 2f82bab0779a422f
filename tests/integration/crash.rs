//! The failure-point matrix (`cargo test --features failpoints`): at every step boundary, make
//! the step fail, and kill the process there with SIGKILL. Afterwards the manifest is
//! byte-for-byte the original or the intended file, nothing else is in the manifest directory,
//! and an unfinished change is refused by the next run, shown by status, and undone by revert.
#![cfg(feature = "failpoints")]

use kubeadm_recover::manifest::{Target, edit_extend_tokens};

use crate::harness::*;

const POINTS: &[&str] = &[
    "before-journal-write",
    "after-journal-write",
    "after-lock",
    "after-backup",
    "after-temp-write",
    "after-rename",
    "during-wait",
    "during-rollback",
];

fn unfinished(sim: &SimNode) -> bool {
    let Ok(bytes) = std::fs::read(sim.path("/var/lib/kubeadm-recover/journal.json")) else {
        return false;
    };
    let journal: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    journal["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["state"] == "in-progress" || s["state"] == "failed")
}

fn wait_until_matching(sim: &SimNode) {
    for _ in 0..200 {
        let status = sim.status();
        if status["apiserver"]["health"] == "ok" && status["apiserver"]["matchesManifest"] == true {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("the apiserver does not run the manifest:\n{}", sim.status());
}

fn case(sim: &SimNode, point: &str, action: &str) {
    let context = format!("{point}={action}");
    let original = sim.manifest();
    let intended = edit_extend_tokens(&original, Target::Set(false))
        .unwrap()
        .new_text;
    let out = sim
        .run()
        .args([
            "extend-tokens",
            "disable",
            "--yes",
            "--stale-window",
            "0s",
            "--timeout",
            "40s",
        ])
        .env("FAILPOINTS", &context)
        .output();
    if action.contains("kill") {
        assert_eq!(out.code, -1, "{context}: killed by SIGKILL\n{}", out.stderr);
    } else {
        assert!(
            [1, 4].contains(&out.code),
            "{context}: exit {}\n{}",
            out.code,
            out.stderr
        );
    }
    let now = sim.manifest();
    assert!(
        now == original || now == intended,
        "{context}: the manifest is neither the original nor the intended file"
    );
    assert_eq!(
        sim.manifest_dir_entries(),
        vec!["kube-apiserver.yaml"],
        "{context}"
    );

    if out.code == 1 {
        assert_eq!(
            now, original,
            "{context}: exit 1 means the node is as before"
        );
        assert!(
            !unfinished(sim),
            "{context}: exit 1 leaves no unfinished session"
        );
    }
    if unfinished(sim) {
        let journal =
            std::fs::read_to_string(sim.path("/var/lib/kubeadm-recover/journal.json")).unwrap();
        let next = sim
            .run()
            .args(["extend-tokens", "enable", "--yes"])
            .output();
        assert_eq!(next.code, 3, "{context}: {}\n{journal}", next.stderr);
        assert!(
            next.stderr.contains("kubeadm-recover resume")
                && next.stderr.contains("kubeadm-recover revert"),
            "{context}: {}",
            next.stderr
        );
        let status = sim.run().arg("status").ok().stdout;
        assert!(status.contains("UNFINISHED"), "{context}: {status}");
        sim.run()
            .args(["revert", "--yes", "--stale-window", "0s"])
            .ok();
    } else {
        assert_eq!(
            now, original,
            "{context}: a handled failure leaves the node as before"
        );
    }
    assert_eq!(sim.manifest(), original, "{context}");
    assert!(!unfinished(sim), "{context}: revert finished the session");
    wait_until_matching(sim);
}

fn matrix(points: &[&str]) {
    for point in points {
        let sim = SimNode::start();
        if *point == "during-rollback" {
            // A rollback happens only when the new apiserver fails.
            sim.configure(|c| {
                c.reject_args = vec!["--service-account-extend-token-expiration=false".into()]
            });
        }
        case(&sim, point, "return");
        case(&sim, point, "return(kill)");
    }
}

// Split in two so the two test threads share the work.
#[test]
fn failure_points_before_the_write() {
    matrix(&POINTS[..4]);
}

#[test]
fn failure_points_from_the_write_on() {
    matrix(&POINTS[4..]);
}

#[test]
fn resume_finishes_a_killed_change_whether_or_not_the_write_happened() {
    let sim = SimNode::start();
    let original = sim.manifest();
    let intended = edit_extend_tokens(&original, Target::Set(true))
        .unwrap()
        .new_text;
    for point in ["after-backup", "after-rename"] {
        let out = sim
            .run()
            .args(["extend-tokens", "enable", "--yes"])
            .env("FAILPOINTS", &format!("{point}=return(kill)"))
            .output();
        assert_eq!(out.code, -1, "{point}");
        assert!(unfinished(&sim), "{point}");
        let doc = sim
            .run()
            .args(["resume", "--yes", "-o", "json"])
            .ok()
            .json();
        assert!(doc["proof"]["pid"].is_i64(), "{point}: proved: {doc}");
        assert_eq!(sim.manifest(), intended, "{point}");
        assert!(!unfinished(&sim), "{point}");
        wait_until_matching(&sim);
        sim.run().args(["revert", "--yes"]).ok();
        assert_eq!(sim.manifest(), original, "{point}");
    }
}

#[test]
fn a_kill_during_the_nudge_leaves_the_manifest_parked_and_the_next_run_puts_it_back() {
    let sim = SimNode::start();
    let original = sim.manifest();
    sim.configure(|c| c.frozen = true);
    let out = sim
        .run()
        .args([
            "extend-tokens",
            "disable",
            "--yes",
            "--stale-window",
            "0s",
            "--nudge-after",
            "1s",
            "--timeout",
            "30s",
        ])
        .env("FAILPOINTS", "during-nudge=return(kill)")
        .output();
    assert_eq!(out.code, -1, "killed in the nudge: {}", out.stderr);
    assert!(
        sim.manifest_dir_entries().is_empty(),
        "the manifest is parked"
    );
    let parked = sim.path("/etc/kubernetes/tmp/kube-apiserver.yaml.kubeadm-recover-nudge");
    assert!(parked.exists());
    let status = sim.run().arg("status").ok();
    assert!(
        status.stdout.contains("parked"),
        "status says where it is: {}",
        status.stdout
    );

    sim.configure(|c| c.frozen = false);
    let revert = sim
        .run()
        .args(["revert", "--yes", "--stale-window", "0s"])
        .ok();
    assert!(revert.stderr.contains("it is back in"), "{}", revert.stderr);
    assert!(!parked.exists());
    assert_eq!(sim.manifest(), original);
    assert_eq!(sim.manifest_dir_entries(), vec!["kube-apiserver.yaml"]);
    wait_until_matching(&sim);
}

/// The journal fills up right after the manifest is renamed into place (a full disk): the change
/// is live, so it is proved and reported as done (exit 0) with a loud warning, never as "failed,
/// node as before"; the next run finds the session unfinished and `resume` settles it.
#[test]
fn a_journal_that_cannot_be_written_after_the_rename_does_not_hide_a_live_change() {
    let sim = SimNode::start();
    let intended = edit_extend_tokens(&sim.manifest(), Target::Set(true))
        .unwrap()
        .new_text;
    // Journal writes: 1 begin, 2 backed-up, 3 written (after the rename) and every later one.
    let out = sim
        .run()
        .args(["extend-tokens", "enable", "--yes", "--timeout", "40s"])
        .env("FAILPOINTS", "before-journal-write=2*off->return")
        .output();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("THE JOURNAL COULD NOT BE WRITTEN"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains("enabled and proved"), "{}", out.stdout);
    assert_eq!(sim.manifest(), intended);
    assert!(unfinished(&sim), "the journal could not record the end");
    sim.run().args(["resume", "--yes"]).ok();
    assert!(!unfinished(&sim));
    assert_eq!(sim.manifest(), intended);
}

/// A credential change killed between its two files: `status` shows it unfinished file by
/// file, the next change is refused, `resume` declines (it would issue yet another
/// certificate), and `revert` puts the previous files back.
#[test]
fn a_credential_change_killed_between_two_files_is_shown_and_reverted() {
    let node = Node::new();
    let admin = node.path("/etc/kubernetes/admin.conf");
    let super_admin = node.path("/etc/kubernetes/super-admin.conf");
    let (admin_before, super_before) = (
        std::fs::read(&admin).unwrap(),
        std::fs::read(&super_admin).unwrap(),
    );
    // Temp writes: 1-2 the journal (begin, backed up), 3 admin.conf, 4 super-admin.conf (killed).
    let out = node
        .run()
        .args([
            "admin-conf",
            "regenerate",
            "--yes",
            "--no-verify",
            "--super-admin",
        ])
        .env("FAILPOINTS", "after-temp-write=3*off->return(kill)")
        .output();
    assert_eq!(out.code, -1, "{}", out.stderr);
    assert!(
        std::fs::read(&admin).unwrap() != admin_before,
        "admin.conf is new"
    );
    assert!(
        std::fs::read(&super_admin).unwrap() == super_before,
        "super-admin.conf is not"
    );

    let status = node.run().arg("status").ok().stdout;
    assert!(
        status.contains("UNFINISHED")
            && status.contains("/etc/kubernetes/admin.conf new")
            && status.contains("/etc/kubernetes/super-admin.conf as before"),
        "{status}"
    );
    node.run()
        .args(["admin-conf", "regenerate", "--yes", "--no-verify"])
        .code(3);
    let out = node.run().args(["resume", "--yes"]).code(2);
    assert!(out.stderr.contains("revert"), "{}", out.stderr);
    node.run().args(["revert", "--yes"]).ok();
    assert!(
        std::fs::read(&admin).unwrap() == admin_before,
        "admin.conf is back"
    );
    assert!(std::fs::read(&super_admin).unwrap() == super_before);
    node.run()
        .args(["admin-conf", "regenerate", "--yes", "--no-verify"])
        .ok();
}

/// A renewal killed between a certificate and its key: the pair on disk does not match, so the
/// session is shown unfinished, the next change is refused, `resume` declines (it would issue
/// yet another certificate) and `revert` puts the matching pair back.
#[test]
fn a_renewal_killed_between_a_certificate_and_its_key_is_shown_and_reverted() {
    let sim = SimNode::with(NodeOptions {
        key_type: kubeadm_recover::credentials::pki::KeyType::EcdsaP256,
        ..NodeOptions::default()
    });
    let cert = sim.path("/etc/kubernetes/pki/apiserver.crt");
    let key = sim.path("/etc/kubernetes/pki/apiserver.key");
    let (cert_before, key_before) = (std::fs::read(&cert).unwrap(), std::fs::read(&key).unwrap());
    // Temp writes: 1-2 the journal (begin, backed up), 3 apiserver.crt, 4 apiserver.key (killed).
    let out = sim
        .run()
        .args(["certs", "renew", "apiserver", "--yes", "--validity", "24h"])
        .env("FAILPOINTS", "after-temp-write=3*off->return(kill)")
        .output();
    assert_eq!(out.code, -1, "{}", out.stderr);
    assert!(
        std::fs::read(&cert).unwrap() != cert_before,
        "the certificate is new"
    );
    assert!(std::fs::read(&key).unwrap() == key_before, "its key is not");

    let status = sim.run().arg("status").ok().stdout;
    assert!(
        status.contains("UNFINISHED")
            && status.contains("/etc/kubernetes/pki/apiserver.key as before"),
        "{status}"
    );
    sim.run()
        .args(["certs", "renew", "apiserver", "--yes"])
        .code(3);
    let out = sim.run().args(["resume", "--yes"]).code(2);
    assert!(out.stderr.contains("revert"), "{}", out.stderr);
    sim.run().args(["revert", "--yes"]).ok();
    assert!(
        std::fs::read(&cert).unwrap() == cert_before,
        "the certificate is back"
    );
    assert!(std::fs::read(&key).unwrap() == key_before);
    let check = sim.run().args(["certs", "check", "-o", "json"]).ok().json();
    assert_eq!(check["problems"], serde_json::json!([]), "{check}");
}

/// `certs renew all` killed at each of its file writes in turn (every step's journal, backup,
/// certificates and keys): afterwards a renewal is refused while a step is unfinished, and
/// `revert` of it leaves a consistent node — every certificate with its own key, every one in
/// use, none expired (the steps before the kill renewed, the killed one as before).
#[test]
fn a_renewal_killed_at_every_write_is_reverted_to_a_consistent_node() {
    let mut finished = false;
    for n in 1..=80 {
        let sim = SimNode::with(NodeOptions {
            key_type: kubeadm_recover::credentials::pki::KeyType::EcdsaP256,
            full_pki: true,
            ..NodeOptions::default()
        });
        let out = sim
            .run()
            .args(["certs", "renew", "all", "--yes"])
            .env(
                "FAILPOINTS",
                &match n {
                    1 => "after-temp-write=return(kill)".to_string(),
                    n => format!("after-temp-write={}*off->return(kill)", n - 1),
                },
            )
            .output();
        if out.code == 0 {
            finished = true;
            break;
        }
        assert_eq!(out.code, -1, "write {n}: {}", out.stderr);
        if unfinished(&sim) {
            sim.run().args(["certs", "renew", "all", "--yes"]).code(3);
            let reverted = sim.run().args(["revert", "--yes"]).output();
            assert_eq!(reverted.code, 0, "write {n}: {}", reverted.stderr);
        }
        assert!(!unfinished(&sim), "write {n}");
        let check = sim
            .run()
            .args(["certs", "check", "-o", "json"])
            .output()
            .json();
        assert_eq!(
            check["problems"],
            serde_json::json!([]),
            "killed at write {n}: {check}"
        );
    }
    assert!(
        finished,
        "the renewal never ran to its end within 80 writes"
    );
}
