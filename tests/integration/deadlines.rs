//! Every wait has a deadline and every signal is honoured: an apiserver that is there (a process
//! named kube-apiserver with the node's genuine certificate) but answers a byte a second, or
//! answers without end, must neither hang the tool nor keep it from rolling back.
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kubeadm_recover_sim::config::Stall;
use nix::sys::signal::Signal;

use crate::harness::*;

/// The test's own bound on a run: far beyond any deadline of the tool, only there so that a hang
/// is a failure rather than a test that never ends. Never an assertion on speed.
const HANG: Duration = Duration::from_secs(60);

/// The binary started against a node, its output going to files (no pipe to fill up).
struct Started {
    child: std::process::Child,
    out: tempfile::NamedTempFile,
    err: tempfile::NamedTempFile,
    what: String,
}

fn start(sim: &SimNode, args: &[&str]) -> Started {
    let out = tempfile::NamedTempFile::new().unwrap();
    let err = tempfile::NamedTempFile::new().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_kubeadm-recover"))
        .env_remove("KUBEADM_RECOVER_ROOT")
        .arg("--root")
        .arg(sim.root())
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.reopen().unwrap())
        .stderr(err.reopen().unwrap())
        .spawn()
        .unwrap();
    Started {
        child,
        out,
        err,
        what: args.join(" "),
    }
}

impl Started {
    fn signal(&self, signal: Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    /// Waits for the run to end; a run still going after `HANG` is killed and fails the test.
    fn finish(mut self) -> Output {
        let until = Instant::now() + HANG;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > until {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "`{}` still ran after {}s (killed); it printed:\n{}\n{}",
                    self.what,
                    HANG.as_secs(),
                    std::fs::read_to_string(self.out.path()).unwrap_or_default(),
                    std::fs::read_to_string(self.err.path()).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Output {
            code: status.code().unwrap_or(-1),
            stdout: std::fs::read_to_string(self.out.path()).unwrap(),
            stderr: std::fs::read_to_string(self.err.path()).unwrap(),
        }
    }
}

fn journal(sim: &SimNode) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(sim.path("/var/lib/kubeadm-recover/journal.json")).unwrap(),
    )
    .unwrap()
}

/// Waits (bounded) until the journal's newest session has reached `step`.
fn wait_for_step(sim: &SimNode, step: &str) {
    let until = Instant::now() + HANG;
    let path = sim.path("/var/lib/kubeadm-recover/journal.json");
    while Instant::now() < until {
        if std::fs::read_to_string(&path)
            .is_ok_and(|j| j.contains(&format!("\"step\": \"{step}\"")))
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the journal never reached step {step}");
}

/// No session is left unfinished: each one is closed (done, rolled back, reverted).
fn assert_settled(sim: &SimNode) {
    let journal = journal(sim);
    let sessions = journal["sessions"].as_array().expect("sessions");
    assert!(!sessions.is_empty(), "{journal:#}");
    for session in sessions {
        assert!(
            !matches!(session["state"].as_str(), Some("in-progress" | "failed")),
            "an unfinished session is left: {session:#}"
        );
    }
}

fn expired_admin() -> SimNode {
    SimNode::with(NodeOptions {
        admin_expired: true,
        ..Default::default()
    })
}

#[test]
fn a_trickling_apiserver_bounds_status_and_a_sigterm_during_the_proof_puts_admin_conf_back() {
    let sim = expired_admin();
    let admin = sim.path("/etc/kubernetes/admin.conf");
    let original = std::fs::read(&admin).unwrap();
    sim.configure(|c| c.stall = Some(Stall::Trickle));

    // A read-only look ends and says what did not answer.
    let status = start(&sim, &["status"]).finish();
    assert_eq!(status.code, 0, "{}\n{}", status.stdout, status.stderr);
    assert!(
        status
            .stdout
            .contains("NOT healthy: the apiserver did not answer within"),
        "{}",
        status.stdout
    );
    let diagnose = start(&sim, &["diagnose"]).finish();
    assert!(
        diagnose.stdout.contains("did not answer within"),
        "{}\n{}",
        diagnose.stdout,
        diagnose.stderr
    );

    // The new admin.conf is written, then its proof hangs on the trickling /livez: a SIGTERM
    // there rolls the credential back and exits 130.
    let run = start(&sim, &["admin-conf", "regenerate", "--yes"]);
    wait_for_step(&sim, "written");
    std::thread::sleep(Duration::from_millis(500));
    run.signal(Signal::SIGTERM);
    let out = run.finish();
    assert_eq!(out.code, 130, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("interrupted"), "{}", out.stderr);
    assert!(
        std::fs::read(&admin).unwrap() == original,
        "admin.conf is put back byte for byte"
    );
    assert_settled(&sim);
}

#[test]
fn a_dropped_ssh_session_during_a_hung_proof_puts_admin_conf_back() {
    // Variant of the SIGTERM case: the SSH session drops (SIGHUP) during the same hung proof.
    let sim = expired_admin();
    let admin = sim.path("/etc/kubernetes/admin.conf");
    let original = std::fs::read(&admin).unwrap();
    sim.configure(|c| c.stall = Some(Stall::Trickle));
    let run = start(&sim, &["admin-conf", "regenerate", "--yes"]);
    wait_for_step(&sim, "written");
    std::thread::sleep(Duration::from_millis(500));
    run.signal(Signal::SIGHUP);
    let out = run.finish();
    assert_eq!(out.code, 130, "{}\n{}", out.stdout, out.stderr);
    assert!(std::fs::read(&admin).unwrap() == original);
    assert_settled(&sim);
}

#[test]
fn an_endless_answer_is_cut_at_its_cap_and_the_new_credential_is_put_back() {
    let sim = expired_admin();
    let admin = sim.path("/etc/kubernetes/admin.conf");
    let original = std::fs::read(&admin).unwrap();
    sim.configure(|c| c.stall = Some(Stall::Flood));

    let out = start(&sim, &["admin-conf", "regenerate", "--yes"]).finish();
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("larger than") && out.stderr.contains("the node is as before"),
        "{}",
        out.stderr
    );
    assert!(std::fs::read(&admin).unwrap() == original);
    assert_settled(&sim);

    let status = start(&sim, &["status"]).finish();
    assert!(status.stdout.contains("NOT healthy"), "{}", status.stdout);
}

#[test]
fn a_sigint_while_the_restart_proof_hangs_rolls_the_manifest_back() {
    let sim = SimNode::start();
    let original = sim.manifest();
    // The new apiserver takes a moment to serve, so that it trickles from its first answer.
    sim.configure(|c| c.startup_delay_ms = 2000);
    let run = start(
        &sim,
        &[
            "extend-tokens",
            "disable",
            "--yes",
            "--stale-window",
            "0s",
            "--nudge-after",
            "10m",
            "--timeout",
            "10m",
        ],
    );
    wait_for_step(&sim, "waiting");
    sim.configure(|c| c.stall = Some(Stall::Trickle));
    // By now the new apiserver serves and the tool's health probe hangs on it.
    std::thread::sleep(Duration::from_secs(5));
    run.signal(Signal::SIGINT);
    // The rollback proves the OLD apiserver healthy: it answers again.
    sim.configure(|c| {
        c.stall = None;
        c.startup_delay_ms = 300;
    });
    let out = run.finish();
    assert_eq!(out.code, 130, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(sim.manifest(), original);
    assert_settled(&sim);
    assert_eq!(sim.status()["apiserver"]["health"], "ok");
}
