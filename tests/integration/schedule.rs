//! `extend-tokens enable --revert-after`: the deadline in the session, the systemd timer (a fake
//! `systemd-run` records its arguments), the scheduled command itself, and the cancelling.
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use crate::harness::*;

/// A directory with a fake `systemd-run` and `systemctl` that record their arguments (one per
/// line) in `systemd-run.args` and `systemctl.log`.
pub struct FakeSystemd {
    dir: tempfile::TempDir,
}

impl FakeSystemd {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for (name, script) in [
            (
                "systemd-run",
                "for a in \"$@\"; do printf '%s\\n' \"$a\"; done > \"$(dirname \"$0\")/systemd-run.args\"\necho 'Running timer as unit: x.timer'\n",
            ),
            (
                "systemctl",
                // is-active answers from a file a test can remove (a reboot forgets
                // transient timers); every other call is logged.
                "d=$(dirname \"$0\")\nif [ \"$1\" = is-active ]; then [ ! -e \"$d/rebooted\" ]; exit; fi\necho \"$@\" >> \"$d/systemctl.log\"\n",
            ),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{script}")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        FakeSystemd { dir }
    }

    pub fn path_env(&self) -> String {
        format!(
            "{}:{}",
            self.dir.path().display(),
            std::env::var("PATH").unwrap()
        )
    }

    fn args(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("systemd-run.args"))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The command the timer would run.
    fn scheduled_command(&self) -> Vec<String> {
        let args = self.args();
        let at = args.iter().position(|a| a == "--").unwrap();
        args[at + 1..].to_vec()
    }

    fn systemctl_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("systemctl.log")).unwrap_or_default()
    }
}

fn disabled_node(audit: bool) -> SimNode {
    let mut extra_args = vec![format!("--{FLAG}=false")];
    if audit {
        extra_args.push("--audit-log-path=/var/log/kubernetes/audit.log".into());
    }
    SimNode::with(NodeOptions {
        extra_args,
        ..Default::default()
    })
}

/// Test builds only: lets a sandbox's revert use the fake systemd (a real build never gives the
/// host's systemd a timer for a `--root` sandbox).
pub const SANDBOX_SYSTEMD: &str = "KUBEADM_RECOVER_TEST_SANDBOX_SYSTEMD";

fn run_scheduled(command: &[String], path_env: &str) -> Output {
    Command::new(&command[0])
        .args(&command[1..])
        .env("PATH", path_env)
        .env(SANDBOX_SYSTEMD, "1")
        .env_remove("KUBEADM_RECOVER_ROOT")
        .output()
        .unwrap()
        .into()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn revert_after_schedules_a_timer_whose_command_reverts_and_stops_it() {
    let sim = disabled_node(false);
    let original = sim.manifest();
    let systemd = FakeSystemd::new();
    let doc = sim
        .run()
        .args([
            "extend-tokens",
            "enable",
            "--yes",
            "--revert-after",
            "7d",
            "-o",
            "json",
        ])
        .env("PATH", &systemd.path_env())
        .env(SANDBOX_SYSTEMD, "1")
        .ok()
        .json();
    let session = doc["session"].as_str().unwrap();
    let unit = format!("kubeadm-recover-revert-{}", session.replace('.', "-"));
    assert_eq!(
        doc["revertAfter"]["timer"],
        format!("{unit}.timer"),
        "{doc}"
    );
    let deadline = doc["revertAfter"]["deadlineUnix"].as_i64().unwrap();
    assert!((deadline - (now() + 7 * 86_400)).abs() < 120, "{doc}");

    let args = systemd.args();
    assert!(args.contains(&format!("--unit={unit}")), "{args:?}");
    let calendar = args
        .iter()
        .find(|a| a.starts_with("--on-calendar="))
        .unwrap();
    assert!(calendar.ends_with(" UTC"), "{calendar}");
    assert!(
        args.contains(&"--on-unit-active=1h".to_string()),
        "retries hourly: {args:?}"
    );
    let command = systemd.scheduled_command();
    assert_eq!(
        &command[1..],
        [
            format!("--root={}", sim.root().display()).as_str(),
            "revert",
            "--session",
            session,
            "--fleet-lease",
            "--yes",
            "--non-interactive",
            "--reason",
            "scheduled by --revert-after"
        ]
    );

    let status = sim.status();
    assert_eq!(
        status["session"]["revertAfter"]["timer"],
        format!("{unit}.timer")
    );
    let text = sim.run().arg("status").ok().stdout;
    assert!(text.contains("revert scheduled for"), "{text}");

    // The deadline comes: the timer runs its command.
    run_scheduled(&command, &systemd.path_env());
    assert_eq!(
        sim.manifest(),
        original,
        "reverted by the scheduled command"
    );
    assert!(
        systemd
            .systemctl_log()
            .contains(&format!("stop {unit}.timer")),
        "the timer is stopped once the revert is done: {}",
        systemd.systemctl_log()
    );
}

#[test]
fn the_scheduled_revert_refuses_while_stale_tokens_are_in_use() {
    let sim = disabled_node(true);
    let systemd = FakeSystemd::new();
    sim.run()
        .args(["extend-tokens", "enable", "--yes", "--revert-after", "1h"])
        .env("PATH", &systemd.path_env())
        .env(SANDBOX_SYSTEMD, "1")
        .ok();
    let enabled = sim.manifest();
    crate::sessions::use_a_stale_token(&sim);
    let out = run_scheduled(&systemd.scheduled_command(), &systemd.path_env());
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("web/frontend"),
        "says why: {}",
        out.stderr
    );
    assert_eq!(sim.manifest(), enabled, "clients keep working");
    assert_eq!(systemd.systemctl_log(), "", "the timer stays, to try again");
}

#[test]
fn without_systemd_the_deadline_is_kept_in_status_and_disable_cancels_a_timer() {
    let sim = disabled_node(false);
    // A PATH with no systemd-run (this tool needs no other program here).
    let empty = tempfile::tempdir().unwrap();
    let out = sim
        .run()
        .args(["extend-tokens", "enable", "--yes", "--revert-after", "2d"])
        .env("PATH", empty.path().to_str().unwrap())
        .env(SANDBOX_SYSTEMD, "1")
        .ok();
    assert!(out.stderr.contains("no systemd"), "{}", out.stderr);
    let text = sim.run().arg("status").ok().stdout;
    assert!(text.contains("revert due by"), "{text}");
    sim.run().args(["revert", "--yes"]).ok();

    let systemd = FakeSystemd::new();
    sim.run()
        .args(["extend-tokens", "enable", "--yes", "--revert-after", "2d"])
        .env("PATH", &systemd.path_env())
        .env(SANDBOX_SYSTEMD, "1")
        .ok();
    sim.run()
        .args(["extend-tokens", "disable", "--yes", "--accept-stale-tokens"])
        .env("PATH", &systemd.path_env())
        .env(SANDBOX_SYSTEMD, "1")
        .ok();
    assert!(
        systemd
            .systemctl_log()
            .starts_with("stop kubeadm-recover-revert-"),
        "{}",
        systemd.systemctl_log()
    );
}

#[test]
fn a_sandbox_never_gets_a_timer_on_the_hosts_systemd() {
    let sim = disabled_node(false);
    let systemd = FakeSystemd::new();
    let doc = sim
        .run()
        .args([
            "extend-tokens",
            "enable",
            "--yes",
            "--revert-after",
            "7d",
            "-o",
            "json",
        ])
        .env("PATH", &systemd.path_env())
        .ok()
        .json();
    assert!(
        !systemd.dir.path().join("systemd-run.args").exists(),
        "systemd-run was not run"
    );
    assert!(doc["revertAfter"]["timer"].is_null(), "{doc}");
    let note = doc["revertAfter"]["note"].as_str().unwrap();
    assert!(note.contains("sandbox"), "{note}");
    // Variant: turning it off later stops no host timer either.
    sim.run()
        .args(["extend-tokens", "disable", "--yes", "--accept-stale-tokens"])
        .env("PATH", &systemd.path_env())
        .ok();
    assert_eq!(systemd.systemctl_log(), "");
}

#[test]
fn a_timer_never_runs_a_binary_that_someone_else_can_replace() {
    use std::os::unix::fs::PermissionsExt;
    let sim = disabled_node(false);
    let original = sim.manifest();
    let systemd = FakeSystemd::new();
    let shared = tempfile::tempdir().unwrap();
    let dir = shared.path().join("bin");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let copy = dir.join("kubeadm-recover");
    std::fs::copy(env!("CARGO_BIN_EXE_kubeadm-recover"), &copy).unwrap();
    let run = |binary: &std::path::Path| -> Output {
        Command::new(binary)
            .arg("--root")
            .arg(sim.root())
            .args(["extend-tokens", "enable", "--yes", "--revert-after", "7d"])
            .env("PATH", systemd.path_env())
            .env(SANDBOX_SYSTEMD, "1")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
            .into()
    };
    let out = run(&copy);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("{} is not root's", dir.display())),
        "{}",
        out.stderr
    );
    assert_eq!(sim.manifest(), original, "refused before anything changed");
    assert!(!systemd.dir.path().join("systemd-run.args").exists());
    // Variant: a root-owned directory, but the binary itself is another user's.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&dir, Some(0), Some(0)).unwrap();
    std::os::unix::fs::chown(&copy, Some(65534), Some(65534)).unwrap();
    let out = run(&copy);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("{} is not root's", copy.display())),
        "{}",
        out.stderr
    );
    assert_eq!(sim.manifest(), original);
    // Root's binary in root's directory goes ahead, a sticky /tmp above them included: others
    // may add entries there but never replace root's.
    std::os::unix::fs::chown(&copy, Some(0), Some(0)).unwrap();
    let out = run(&copy);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_ne!(sim.manifest(), original);
}

/// The simulated apiserver keeps API objects as files (as etcd keeps them across restarts).
fn api_object(sim: &SimNode, kind: &str, name: &str) -> PathBuf {
    sim.path(&format!(
        "/var/lib/kubeadm-recover-sim/objects/{kind}/kube-system_{name}.json"
    ))
}

fn put_object(sim: &SimNode, kind: &str, name: &str, object: serde_json::Value) {
    let path = api_object(sim, kind, name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, object.to_string()).unwrap();
}

fn micro(unix: i64) -> String {
    let out = Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("@{unix}"),
            "+%Y-%m-%dT%H:%M:%S.000000Z",
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn lease(holder: &str, renewed: i64) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "kubeadm-recover-apiserver-restart", "namespace": "kube-system", "resourceVersion": "7"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 600,
                 "acquireTime": micro(renewed), "renewTime": micro(renewed)}
    })
}

fn enabled_for_revert(sim: &SimNode) -> String {
    let doc = sim
        .run()
        .args(["extend-tokens", "enable", "--yes", "-o", "json"])
        .ok()
        .json();
    doc["session"].as_str().unwrap().to_string()
}

fn fleet_revert(sim: &SimNode, session: &str) -> Output {
    sim.run()
        .args([
            "revert",
            "--session",
            session,
            "--fleet-lease",
            "--yes",
            "--stale-window",
            "0s",
        ])
        .output()
}

#[test]
fn a_timed_revert_waits_while_another_node_holds_the_fleet_lease() {
    let sim = disabled_node(false);
    let original = sim.manifest();
    let session = enabled_for_revert(&sim);
    let enabled = sim.manifest();
    put_object(
        &sim,
        "leases",
        "kubeadm-recover-apiserver-restart",
        lease("cp2/other-session", now()),
    );
    let out = fleet_revert(&sim, &session);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("cp2/other-session holds the fleet lease"),
        "{}",
        out.stderr
    );
    assert_eq!(sim.manifest(), enabled, "nothing restarted");

    // Expired (its holder died mid-restart an hour ago): taken over, and given back after the proof.
    put_object(
        &sim,
        "leases",
        "kubeadm-recover-apiserver-restart",
        lease("cp2/other-session", now() - 3600),
    );
    let out = fleet_revert(&sim, &session);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("took the fleet lease"),
        "{}",
        out.stderr
    );
    assert_eq!(sim.manifest(), original);
    assert!(
        !api_object(&sim, "leases", "kubeadm-recover-apiserver-restart").exists(),
        "released after the proof"
    );
}

#[test]
fn a_timed_revert_waits_while_another_apiserver_is_unhealthy() {
    let sim = disabled_node(false);
    let session = enabled_for_revert(&sim);
    let enabled = sim.manifest();
    // A second control-plane node whose apiserver does not answer (nothing listens there).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    put_object(
        &sim,
        "pods",
        "kube-apiserver-cp2",
        serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "kube-apiserver-cp2", "namespace": "kube-system",
                         "labels": {"component": "kube-apiserver", "tier": "control-plane"},
                         "annotations": {"kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint": format!("127.0.0.1:{port}")}},
            "spec": {"nodeName": "cp2"}
        }),
    );
    let out = fleet_revert(&sim, &session);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("kube-apiserver-cp2") && out.stderr.contains("not ready"),
        "{}",
        out.stderr
    );
    assert_eq!(sim.manifest(), enabled);
    assert!(
        !api_object(&sim, "leases", "kubeadm-recover-apiserver-restart").exists(),
        "no lease taken"
    );
    // Variant: an apiserver pod that names no endpoint cannot be checked: it is not counted
    // as healthy.
    put_object(
        &sim,
        "pods",
        "kube-apiserver-cp2",
        serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "kube-apiserver-cp2", "namespace": "kube-system",
                         "labels": {"component": "kube-apiserver", "tier": "control-plane"}},
            "spec": {"nodeName": "cp2"}
        }),
    );
    let out = fleet_revert(&sim, &session);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("cannot be checked"), "{}", out.stderr);
    assert_eq!(sim.manifest(), enabled);
    // Without --fleet-lease (a person at the node decides), the revert goes ahead.
    sim.run()
        .args([
            "revert",
            "--session",
            &session,
            "--yes",
            "--stale-window",
            "0s",
        ])
        .ok();
}

#[test]
fn a_timer_a_reboot_forgot_is_said_to_be_gone_not_scheduled() {
    let sim = disabled_node(false);
    let systemd = FakeSystemd::new();
    let enable = sim
        .run()
        .args(["extend-tokens", "enable", "--yes", "--revert-after", "7d"])
        .env("PATH", &systemd.path_env())
        .env(SANDBOX_SYSTEMD, "1")
        .ok();
    assert!(
        enable.stderr.contains("revert scheduled"),
        "{}",
        enable.stderr
    );
    let status = |systemd: &FakeSystemd| {
        sim.run()
            .arg("status")
            .env("PATH", &systemd.path_env())
            .env(SANDBOX_SYSTEMD, "1")
            .ok()
            .stdout
    };
    assert!(status(&systemd).contains("by the timer kubeadm-recover-revert-"));
    std::fs::write(systemd.dir.path().join("rebooted"), "").unwrap();
    let text = status(&systemd);
    assert!(
        text.contains("is gone") && text.contains("revert due by"),
        "{text}"
    );
}
