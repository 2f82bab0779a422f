//! `extend-tokens enable --revert-after`: the deadline in the session, the systemd timer (a fake
//! `systemd-run` records its arguments), the scheduled command itself, and the cancelling.
use std::os::unix::fs::PermissionsExt;
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
                "echo \"$@\" >> \"$(dirname \"$0\")/systemctl.log\"\n",
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

fn run_scheduled(command: &[String], path_env: &str) -> Output {
    Command::new(&command[0])
        .args(&command[1..])
        .env("PATH", path_env)
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
        .ok();
    assert!(out.stderr.contains("no systemd"), "{}", out.stderr);
    let text = sim.run().arg("status").ok().stdout;
    assert!(text.contains("revert due by"), "{text}");
    sim.run().args(["revert", "--yes"]).ok();

    let systemd = FakeSystemd::new();
    sim.run()
        .args(["extend-tokens", "enable", "--yes", "--revert-after", "2d"])
        .env("PATH", &systemd.path_env())
        .ok();
    sim.run()
        .args(["extend-tokens", "disable", "--yes", "--accept-stale-tokens"])
        .env("PATH", &systemd.path_env())
        .ok();
    assert!(
        systemd
            .systemctl_log()
            .starts_with("stop kubeadm-recover-revert-"),
        "{}",
        systemd.systemctl_log()
    );
}
