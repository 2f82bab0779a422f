use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::*;

fn journal(sim: &SimNode) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(sim.path("/var/lib/kubeadm-recover/journal.json")).unwrap(),
    )
    .unwrap()
}

fn states(sim: &SimNode) -> Vec<(String, String)> {
    journal(sim)["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["command"].as_str().unwrap().to_string(),
                s["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn enable_regenerate_revert_brings_back_the_original_bytes_proved() {
    let sim = SimNode::with(NodeOptions {
        admin_expired: true,
        ..Default::default()
    });
    let original = sim.manifest();
    sim.run()
        .args(["extend-tokens", "enable", "--yes", "--reason", "INC-1"])
        .ok();
    sim.run().args(["admin-conf", "regenerate", "--yes"]).ok();
    let status = sim.run().arg("status").ok().stdout;
    assert!(status.contains("token extension enabled"), "{status}");
    // The advice names this sandbox: `kubeadm-recover revert` alone would revert the host.
    assert!(
        status.contains(&format!(
            "reason: INC-1; revert with: kubeadm-recover --root {} revert",
            sim.root().display()
        )),
        "{status}"
    );
    assert!(
        !journal(&sim)["sessions"][0]["credentialsIssued"]
            .as_array()
            .unwrap()
            .is_empty(),
        "serials recorded"
    );

    let doc = sim
        .run()
        .args(["revert", "--yes", "-o", "json"])
        .ok()
        .json();
    assert_eq!(doc["restart"], "proved");
    assert_eq!(doc["how"], "the original bytes come back exactly");
    assert_eq!(sim.manifest(), original);
    assert_eq!(sim.status()["apiserver"]["matchesManifest"], true);
    assert_eq!(
        states(&sim),
        vec![
            ("extend-tokens enable".into(), "reverted".into()),
            ("admin-conf regenerate".into(), "done".into()),
            ("revert".into(), "done".into())
        ]
    );
    let again = sim.run().args(["revert", "--yes"]).code(2);
    assert!(
        again.stderr.contains("nothing to revert"),
        "{}",
        again.stderr
    );
}

#[test]
fn after_an_upgrade_or_edit_revert_puts_back_only_the_flag() {
    let sim = SimNode::start();
    sim.run()
        .args(["extend-tokens", "disable", "--yes", "--stale-window", "0s"])
        .ok();
    // Someone edits the manifest afterwards (say, an upgrade adds a flag).
    let edited = sim.manifest().replace(
        "    - --allow-privileged=true\n",
        "    - --allow-privileged=true\n    - --audit-log-maxage=30\n",
    );
    std::fs::write(sim.manifest_path(), &edited).unwrap();
    sim.wait_healthy();
    for _ in 0..100 {
        if sim.status()["apiserver"]["matchesManifest"] == true {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let doc = sim
        .run()
        .args(["revert", "--yes", "-o", "json"])
        .ok()
        .json();
    assert!(
        doc["how"]
            .as_str()
            .unwrap()
            .contains("only the flag goes back"),
        "{doc}"
    );
    let expected = edited.replace(
        "    - --service-account-extend-token-expiration=false\n",
        "",
    );
    assert_eq!(
        sim.manifest(),
        expected,
        "the edit stays, the flag is gone again"
    );
    assert_eq!(sim.status()["apiserver"]["matchesManifest"], true);
}

/// A pod-bound token with the magic 3607 s lifetime, then used after its warn-after time.
pub fn use_a_stale_token(sim: &SimNode) {
    let kubeconfig = sim.path("/etc/kubernetes/admin.conf");
    let token = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "create",
            "token",
            "frontend",
            "-n",
            "web",
            "--bound-object-kind",
            "Pod",
            "--bound-object-name",
            "web-1",
            "--bound-object-uid",
            "u-1",
            "--duration",
            "3607s",
        ])
        .output()
        .unwrap();
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();
    sim.configure(|c| c.clock_offset_seconds = 4000);
    let review = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(review.path(), serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}).to_string()).unwrap();
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "create",
            "--raw",
            "/apis/authentication.k8s.io/v1/tokenreviews",
            "-f",
        ])
        .arg(review.path())
        .output()
        .unwrap();
    let reviewed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(
        reviewed["status"]["authenticated"],
        true,
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    sim.configure(|c| c.clock_offset_seconds = 0);
}

#[test]
fn stale_tokens_in_use_stop_a_revert_to_false_unless_accepted() {
    let sim = SimNode::with(NodeOptions {
        extra_args: vec![
            "--audit-log-path=/var/log/kubernetes/audit.log".into(),
            "--service-account-extend-token-expiration=false".into(),
        ],
        ..Default::default()
    });
    let original = sim.manifest();
    sim.run().args(["extend-tokens", "enable", "--yes"]).ok();
    use_a_stale_token(&sim);

    let out = sim
        .run()
        .args(["revert", "--yes", "--stale-window", "0s"])
        .code(3);
    assert!(
        out.stderr.contains("web/frontend"),
        "names the service account: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("--accept-stale-tokens"),
        "{}",
        out.stderr
    );
    assert_ne!(sim.manifest(), original, "nothing changed");

    sim.run()
        .args([
            "revert",
            "--yes",
            "--stale-window",
            "0s",
            "--accept-stale-tokens",
        ])
        .ok();
    assert_eq!(sim.manifest(), original);
}

#[test]
fn sigterm_mid_wait_rolls_back_and_exits_130_or_continues_on_request() {
    let sim = SimNode::start();
    let original = sim.manifest();
    sim.configure(|c| c.startup_delay_ms = 2500);
    let wait_for_step = |step: &str| {
        for _ in 0..200 {
            if let Ok(bytes) = std::fs::read(sim.path("/var/lib/kubeadm-recover/journal.json")) {
                let j: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
                if j["sessions"]
                    .as_array()
                    .and_then(|s| s.last())
                    .is_some_and(|s| s["step"] == step)
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("never reached step {step}");
    };
    for (on_interrupt, code) in [("rollback", 130), ("continue", 0)] {
        let child = Command::new(env!("CARGO_BIN_EXE_kubeadm-recover"))
            .arg("--root")
            .arg(sim.root())
            .args([
                "extend-tokens",
                "enable",
                "--yes",
                "--on-interrupt",
                on_interrupt,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_step("waiting");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{on_interrupt}: {stderr}");
        let status = sim.status();
        assert_eq!(status["apiserver"]["health"], "ok");
        assert_eq!(status["apiserver"]["matchesManifest"], true);
        if on_interrupt == "rollback" {
            assert_eq!(sim.manifest(), original, "rolled back");
            assert!(stderr.contains("Rolled back"), "{stderr}");
        } else {
            assert_eq!(
                status["manifest"]["extendTokenExpiration"]["value"], true,
                "finished instead"
            );
        }
    }
    assert_eq!(
        states(&sim)
            .iter()
            .map(|(_, s)| s.as_str())
            .collect::<Vec<_>>(),
        vec!["rolled-back", "done"]
    );
}
