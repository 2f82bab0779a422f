//! The real-node tier: the tool against a real kubeadm control-plane node on this machine (real
//! `kubeadm init`, the real kubelet, containerd and runc), exactly as on production (`--root /`,
//! as root). `tests/realnode/run.sh` brings the node up once, runs these one at a time with
//! `--ignored`, and tears it down; every test leaves the node as it found it (the guard puts
//! kubeadm's files back and waits for the apiserver they describe).
use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::harness::*;

const MANIFEST: &str = "/etc/kubernetes/manifests/kube-apiserver.yaml";
const ADMIN: &str = "/etc/kubernetes/admin.conf";
const SUPER_ADMIN: &str = "/etc/kubernetes/super-admin.conf";
/// tests/realnode/node.sh puts the node on TEST-NET-2, off the machine's own network.
const SERVER: &str = "https://198.51.100.10:6443";
const TIER: &str =
    "the real-node tier: tests/realnode/run.sh brings up a real kubeadm node (root) and runs these";

static ONE_NODE: Mutex<()> = Mutex::new(());

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn pristine(name: &str) -> Vec<u8> {
    std::fs::read(repo().join("target/realnode/pristine").join(name))
        .unwrap_or_else(|e| panic!("{TIER}: no pristine {name} ({e})"))
}

/// The node, for one test at a time; on drop it is as kubeadm left it.
pub struct RealKubelet {
    _one: MutexGuard<'static, ()>,
}

impl Sandbox for RealKubelet {
    fn root(&self) -> &Path {
        Path::new("/")
    }
}

impl RealKubelet {
    fn get() -> Self {
        let one = ONE_NODE.lock().unwrap_or_else(|e| e.into_inner());
        assert!(
            Path::new(ADMIN).exists(),
            "{TIER}: there is no node here (no {ADMIN})"
        );
        let node = RealKubelet { _one: one };
        node.wait_ready(&pristine("kube-apiserver.yaml"));
        node
    }

    pub fn kubectl(&self, kubeconfig: &str, args: &[&str]) -> Output {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args)
            .output()
            .unwrap()
            .into()
    }

    fn kubectl_with_token(&self, token: &str, args: &[&str]) -> Output {
        Command::new("kubectl")
            .args(["--server", SERVER])
            .args(["--certificate-authority", "/etc/kubernetes/pki/ca.crt"])
            .args(["--token", token])
            .args(args)
            .output()
            .unwrap()
            .into()
    }

    fn crictl(&self, args: &[&str]) -> String {
        let out: Output = Command::new("crictl").args(args).output().unwrap().into();
        assert_eq!(out.code, 0, "crictl {args:?}: {}", out.stderr);
        out.stdout
    }

    fn status(&self) -> serde_json::Value {
        self.run().args(["status", "-o", "json"]).ok().json()
    }

    /// Waits (bounded) for a healthy apiserver running exactly `manifest`'s arguments.
    fn wait_ready(&self, manifest: &[u8]) {
        let text = String::from_utf8_lossy(manifest).into_owned();
        let want: Vec<String> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- --"))
            .map(|a| format!("--{a}"))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let status = self.run().args(["status", "-o", "json"]).output();
            if status.code == 0 {
                let doc = status.json();
                if doc["apiserver"]["health"] == "ok"
                    && doc["apiserver"]["matchesManifest"] == true
                    && running_args(&doc["apiserver"]["pid"])
                        .iter()
                        .skip(1)
                        .eq(want.iter())
                {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the real apiserver did not come back with kubeadm's manifest in 180 s"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn put_back(&self, path: &str, bytes: &[u8]) {
        put_back(path, bytes);
    }

    fn reject_image(&self, on: bool) {
        let out: Output = Command::new("bash")
            .arg(repo().join("tests/realnode/node.sh"))
            .args(["reject-image", if on { "on" } else { "off" }])
            .output()
            .unwrap()
            .into();
        assert_eq!(out.code, 0, "{}", out.stderr);
    }

    fn kubelet_pid(&self) -> i32 {
        std::fs::read_to_string(repo().join("target/realnode/kubelet.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for RealKubelet {
    fn drop(&mut self) {
        // A kubelet a test froze, the real image, kubeadm's files, then the apiserver they describe.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.kubelet_pid()),
            nix::sys::signal::Signal::SIGCONT,
        );
        self.reject_image(false);
        let manifest = pristine("kube-apiserver.yaml");
        let _ = std::fs::rename(
            "/etc/kubernetes/tmp/kube-apiserver.yaml.kubeadm-recover-nudge",
            "/etc/kubernetes/tmp/realnode-parked-left-behind",
        );
        self.put_back(MANIFEST, &manifest);
        self.put_back(ADMIN, &pristine("admin.conf"));
        self.put_back(SUPER_ADMIN, &pristine("super-admin.conf"));
        let _ = std::fs::remove_dir_all("/var/lib/kubeadm-recover");
        let _ = std::fs::remove_dir_all("/etc/kubernetes/tmp");
        if !std::thread::panicking() {
            self.wait_ready(&manifest);
        } else {
            // Still wait, so that the next test starts on a healthy node; a failure here is
            // the next test's to report.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.wait_ready(&manifest)
            }));
        }
    }
}

/// Puts a file back by atomic rename, as the tool would (never written in place), keeping its
/// mode.
fn put_back(path: &str, bytes: &[u8]) {
    if std::fs::read(path).ok().as_deref() == Some(bytes) {
        return;
    }
    let tmp = format!(
        "/etc/kubernetes/tmp/realnode-put-back-{}",
        std::process::id()
    );
    std::fs::create_dir_all("/etc/kubernetes/tmp").unwrap();
    std::fs::write(&tmp, bytes).unwrap();
    if let Ok(meta) = std::fs::metadata(path) {
        std::fs::set_permissions(&tmp, meta.permissions()).unwrap();
    }
    std::fs::rename(&tmp, path).unwrap();
}

/// The running process's command line, from /proc.
fn running_args(pid: &serde_json::Value) -> Vec<String> {
    let Some(pid) = pid.as_i64() else {
        return Vec::new();
    };
    args_of(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default())
}

/// A /proc cmdline's arguments (NUL-separated).
fn args_of(cmdline: &[u8]) -> Vec<String> {
    cmdline
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

fn flag_in(args: &[String]) -> Option<String> {
    args.iter()
        .find_map(|a| a.strip_prefix(&format!("--{FLAG}=")))
        .map(str::to_string)
}

/// The phases the tool reported while it waited, in order, each once: what the simulator is
/// compared against.
pub fn phases(stderr: &str) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for line in stderr.lines().filter(|l| l.starts_with('[')) {
        let phase = if line.contains("waiting for the kubelet to replace kube-apiserver") {
            "old serving"
        } else if line.contains("is shutting down") {
            "old shutting down"
        } else if line.contains("the old kube-apiserver has exited") {
            "old exited"
        } else if line.contains("the kubelet has started") && line.contains("attempt") {
            "attempts"
        } else if line.contains("started; not healthy yet") || line.ends_with(" started") {
            "new starting"
        } else if line.contains("nudging the kubelet") {
            "nudge"
        } else {
            continue;
        };
        if out.last() != Some(&phase) {
            out.push(phase);
        }
    }
    out
}

/// The attempt counts the progress showed, in order.
fn attempt_counts(stderr: &str) -> Vec<usize> {
    stderr
        .lines()
        .filter_map(|l| l.split("the kubelet has started ").nth(1))
        .filter_map(|rest| rest.split(' ').next()?.parse().ok())
        .collect()
}

fn assert_proved_without_nudge(doc: &serde_json::Value, stderr: &str) {
    assert_eq!(doc["restart"], "proved", "{doc}\n{stderr}");
    assert_eq!(
        doc["proof"]["nudged"], false,
        "the kubelet acted: no nudge into the old apiserver's grace period\n{stderr}"
    );
    assert!(!stderr.contains("nudging"), "{stderr}");
}

/// The proof names the pod the runtime runs: the container crictl lists, the config hash of the
/// log directory the kubelet writes, both new.
fn assert_proof_is_the_runtimes(node: &RealKubelet, doc: &serde_json::Value) {
    let proof = &doc["proof"];
    let before = &doc["apiserverBefore"];
    let running = node.crictl(&["ps", "--name", "kube-apiserver", "--state", "running", "-q"]);
    assert_eq!(proof["containerId"], running.trim(), "{doc}");
    assert_ne!(proof["containerId"], before["containerId"], "{doc}");
    assert_ne!(
        proof["configHash"], before["configHash"],
        "an edited static pod is a new pod with a new config hash: {doc}"
    );
    let hash = proof["configHash"].as_str().unwrap();
    let logs: Vec<String> = std::fs::read_dir("/var/log/pods")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        logs.iter()
            .any(|d| d.starts_with("kube-system_kube-apiserver-") && d.ends_with(hash)),
        "the kubelet's log directory for the new pod is named by its hash {hash}: {logs:?}"
    );
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A service-account token for kube-system/default, signed with the cluster's sa.key the way
/// kube-apiserver signs them, with `warnafter` in the past: a token that works only because
/// extension is on. Used against the real apiserver, it counts as stale there.
fn use_a_stale_token(node: &RealKubelet) {
    let uid = node.kubectl(
        ADMIN,
        &[
            "get",
            "serviceaccount",
            "default",
            "-n",
            "kube-system",
            "-o",
            "jsonpath={.metadata.uid}",
        ],
    );
    assert_eq!(uid.code, 0, "{}", uid.stderr);
    let now = unix_now();
    let issuer = "https://kubernetes.default.svc.cluster.local";
    let claims = serde_json::json!({
        "aud": [issuer], "iss": issuer,
        "sub": "system:serviceaccount:kube-system:default",
        "iat": now - 7200, "nbf": now - 7200, "exp": now + 365 * 24 * 3600,
        "kubernetes.io": {
            "namespace": "kube-system",
            "serviceaccount": {"name": "default", "uid": uid.stdout},
            "warnafter": now - 3600,
        },
    });
    let sa_key = std::fs::read_to_string("/etc/kubernetes/pki/sa.key").unwrap();
    let token = kubeadm_recover_sim::apiserver::service_account_token(&sa_key, &claims).unwrap();
    let out = node.kubectl_with_token(&token, &["get", "--raw", "/api"]);
    assert_eq!(out.code, 0, "the stale token authenticates: {}", out.stderr);
}

#[test]
#[ignore = "the real-node tier (tests/realnode/run.sh, root)"]
fn disable_is_proved_on_the_real_restart_after_the_stale_token_check_and_revert_puts_it_back() {
    let node = RealKubelet::get();
    let kubeadm_bytes = pristine("kube-apiserver.yaml");
    use_a_stale_token(&node);
    let refused = node
        .run()
        .args(["extend-tokens", "disable", "--yes", "--stale-window", "0s"])
        .code(3);
    assert!(
        refused.stderr.contains("--accept-stale-tokens"),
        "the real apiserver's serviceaccount_stale_tokens_total stops it: {}",
        refused.stderr
    );
    assert_eq!(
        std::fs::read(MANIFEST).unwrap(),
        kubeadm_bytes,
        "nothing changed"
    );

    let out = node
        .run()
        .args(["extend-tokens", "disable", "--yes", "--accept-stale-tokens"])
        .args(["-o", "json"])
        .ok();
    let doc = out.json();
    assert_proved_without_nudge(&doc, &out.stderr);
    assert_proof_is_the_runtimes(&node, &doc);
    assert_eq!(
        phases(&out.stderr)[..3],
        ["old serving", "old shutting down", "old exited"],
        "the real kubelet's sequence: SIGTERM, the grace period, then the new pod\n{}",
        out.stderr
    );
    let args = running_args(&doc["proof"]["pid"]);
    assert_eq!(
        args[0], "kube-apiserver",
        "the real process, found in /proc"
    );
    assert_eq!(flag_in(&args).as_deref(), Some("false"));

    let out = node
        .run()
        .args(["revert", "--yes", "--accept-stale-tokens", "-o", "json"])
        .ok();
    let doc = out.json();
    assert_proved_without_nudge(&doc, &out.stderr);
    assert_eq!(
        std::fs::read(MANIFEST).unwrap(),
        kubeadm_bytes,
        "byte for byte"
    );
    assert_eq!(flag_in(&running_args(&doc["proof"]["pid"])), None);
}

#[test]
#[ignore = "the real-node tier (tests/realnode/run.sh, root)"]
fn enable_then_backups_restore_on_the_real_restart() {
    let node = RealKubelet::get();
    let kubeadm_bytes = pristine("kube-apiserver.yaml");
    let out = node
        .run()
        .args(["extend-tokens", "enable", "--yes", "-o", "json"])
        .ok();
    let doc = out.json();
    assert_proved_without_nudge(&doc, &out.stderr);
    assert_eq!(
        flag_in(&running_args(&doc["proof"]["pid"])).as_deref(),
        Some("true")
    );
    let backup = doc["backup"]["id"].as_str().unwrap().to_string();
    let out = node
        .run()
        .args(["backups", "restore", &backup, "--yes", "-o", "json"])
        .ok();
    let doc = out.json();
    assert_proved_without_nudge(&doc, &out.stderr);
    assert_eq!(std::fs::read(MANIFEST).unwrap(), kubeadm_bytes);
}

#[test]
#[ignore = "the real-node tier (tests/realnode/run.sh, root)"]
fn a_flag_the_new_apiserver_rejects_is_a_crash_loop_rolled_back_on_the_real_kubelet() {
    let node = RealKubelet::get();
    let kubeadm_bytes = pristine("kube-apiserver.yaml");
    // The same image tag, now a binary that refuses the new value (and is the real apiserver
    // otherwise): the kubelet meets it as it would a real rejection.
    node.reject_image(true);
    let out = node
        .run()
        .args(["extend-tokens", "disable", "--yes", "--accept-stale-tokens"])
        .code(1);
    assert!(out.stderr.contains("Rolled back"), "{}", out.stderr);
    assert!(
        out.stderr.contains("keeps exiting"),
        "caught as a crash loop, not waited out: {}",
        out.stderr
    );
    // The reason, from the CRI log format: the message, not the runtime's prefix.
    assert!(
        out.stderr
            .lines()
            .any(|l| l.trim_start().starts_with("Error: invalid argument")),
        "{}",
        out.stderr
    );
    let change = out.stderr.split("rolling back from").next().unwrap();
    let counts = attempt_counts(change);
    assert!(
        counts.windows(2).all(|w| w[0] <= w[1]),
        "attempts are counted by their numbers, never going back: {counts:?}\n{}",
        out.stderr
    );
    assert_eq!(std::fs::read(MANIFEST).unwrap(), kubeadm_bytes);
    let status = node.status();
    assert_eq!(status["apiserver"]["health"], "ok", "{status}");
    assert_eq!(flag_in(&running_args(&status["apiserver"]["pid"])), None);
}

/// `extend-tokens disable` (with `extra` arguments), its output piped, ready to spawn.
fn disable(extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubeadm-recover"));
    command
        .args(["extend-tokens", "disable", "--yes", "--accept-stale-tokens"])
        .args(extra)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    command
}

/// Starts `command` and hands each line of its stderr to `on_line` until that says stop or
/// the tool ends. Returns the running (or ended) tool and everything its stderr showed.
fn watching(
    command: &mut Command,
    mut on_line: impl FnMut(&str) -> bool,
) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = command.spawn().unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if on_line(&line) {
            break;
        }
    }
    (child, seen)
}

/// Starts `disable` and kills it with SIGKILL once its stderr shows `phase`.
fn kill_at(phase: &str) {
    let (mut child, seen) = watching(&mut disable(&[]), |line| line.contains(phase));
    // SIGKILL (a no-op if it has already exited), and reaped either way.
    let _ = child.kill();
    let status = child.wait().unwrap();
    assert!(
        seen.contains(phase) && !status.success(),
        "the tool ended before {phase:?} ({status}):\n{seen}"
    );
}

/// After a kill: `resume` finishes the change, proved.
fn resume_finishes_it(node: &RealKubelet) {
    let out = node.run().args(["resume", "--yes", "-o", "json"]).ok();
    let status = node.status();
    assert_eq!(status["apiserver"]["health"], "ok", "{}", out.stderr);
    assert_eq!(
        flag_in(&running_args(&status["apiserver"]["pid"])).as_deref(),
        Some("false")
    );
    assert_eq!(status["session"]["state"], "done", "{status}");
    assert_eq!(status["session"]["unfinished"], false, "{status}");
}

/// After a kill: `revert` puts kubeadm's manifest back, proved.
fn revert_finishes_it(node: &RealKubelet) {
    let out = node
        .run()
        .args(["revert", "--yes", "--accept-stale-tokens", "-o", "json"])
        .ok();
    assert_eq!(
        std::fs::read(MANIFEST).unwrap(),
        pristine("kube-apiserver.yaml"),
        "{}",
        out.stderr
    );
    let status = node.status();
    assert_eq!(status["apiserver"]["health"], "ok", "{status}");
    assert_eq!(flag_in(&running_args(&status["apiserver"]["pid"])), None);
}

// kill -9 at each phase of the real restart, in order: right after the rename, while the old
// apiserver shuts down (its 30 s), once it has exited and before the new one starts, while the
// new one starts. Each ends with `resume` or `revert`, alternately.

#[test]
#[ignore = "the real-node tier (tests/realnode/run.sh, root)"]
fn killed_right_after_the_rename_revert_finishes_it() {
    let node = RealKubelet::get();
    kill_at("waiting for the kubelet to restart kube-apiserver with the new manifest");
    revert_finishes_it(&node);
}

#[test]
#[ignore = "the real-node tier (tests/realnode/run.sh, root)"]
fn killed_while_the_old_apiserver_shuts_down_resume_finishes_it() {
    let node = RealKubelet::get();
    kill_at("is shutting down");
    resume_finishes_it(&node);
}

#[test]
#[ignore = "the real-node tier (tests/realnode/run.sh, root)"]
fn killed_between_the_old_apiserver_and_the_new_resume_finishes_it() {
    let node = RealKubelet::get();
    kill_at("the old kube-apiserver has exited; waiting for the kubelet to start the new one");
    resume_finishes_it(&node);
}

#[test]
#[ignore = "the real-node tier (tests/realnode/run.sh, root)"]
fn killed_while_the_new_apiserver_starts_revert_finishes_it() {
    let node = RealKubelet::get();
    kill_at("started; not healthy yet");
    revert_finishes_it(&node);
}

/// `command` (a `disable` with `--nudge-after 5s -o json`) against a kubelet that truly does not
/// act: stopped, so the old apiserver keeps serving. Once the tool's stderr shows `nudge`, the
/// kubelet is resumed 2 s later. Asserts the change proved after a nudge, with the flag running;
/// returns the proof document, the stderr seen, and when the nudge began.
fn nudged_with_the_kubelet_stopped(
    node: &RealKubelet,
    command: &mut Command,
    nudge: &str,
) -> (serde_json::Value, String, Instant) {
    let kubelet = nix::unistd::Pid::from_raw(node.kubelet_pid());
    nix::sys::signal::kill(kubelet, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let mut nudged_at = None;
    let (child, seen) = watching(command, |line| {
        if line.contains(nudge) {
            nudged_at = Some(Instant::now());
            std::thread::sleep(Duration::from_secs(2));
            nix::sys::signal::kill(kubelet, nix::sys::signal::Signal::SIGCONT).unwrap();
        }
        false
    });
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{seen}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["proof"]["nudged"], true, "{seen}");
    assert_eq!(
        flag_in(&running_args(&doc["proof"]["pid"])).as_deref(),
        Some("false")
    );
    let nudged_at = nudged_at.unwrap_or_else(|| panic!("no {nudge:?} in:\n{seen}"));
    (doc, seen, nudged_at)
}

#[test]
#[ignore = "the real-node tier (tests/realnode/run.sh, root)"]
fn a_kubelet_that_does_not_act_is_nudged_through_the_real_crictl() {
    let node = RealKubelet::get();
    // The runtime stops the old container; the kubelet, back, starts the new pod.
    let (_, seen, _) = nudged_with_the_kubelet_stopped(
        &node,
        &mut disable(&["--nudge-after", "5s", "-o", "json"]),
        "nudging the kubelet: crictl stop",
    );
    assert!(
        seen.contains("nudging the kubelet: crictl stop"),
        "the real crictl, with the node's endpoint: {seen}"
    );
}

/// `$PATH` without any directory that holds a `crictl`.
fn path_without_crictl() -> String {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .filter(|dir| !dir.join("crictl").exists())
        .map(|dir| dir.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

#[test]
#[ignore = "the real-node tier (tests/realnode/run.sh, root)"]
fn where_there_is_no_crictl_the_nudge_moves_the_manifest_out_and_back() {
    let node = RealKubelet::get();
    // The kubelet, back while the manifest is parked, stops the old pod; the manifest back, it
    // starts the new one.
    let (doc, seen, nudged_at) = nudged_with_the_kubelet_stopped(
        &node,
        disable(&["--nudge-after", "5s", "-o", "json"]).env("PATH", path_without_crictl()),
        "nudging the kubelet: moving the manifest",
    );
    assert!(!seen.contains("crictl stop"), "{seen}");
    assert!(
        !std::path::Path::new("/etc/kubernetes/tmp/kube-apiserver.yaml.kubeadm-recover-nudge")
            .exists(),
        "the manifest is back, nothing parked"
    );
    // The measurement docs/fidelity.md reports: from the nudge to the proof.
    eprintln!(
        "move-out-and-back nudge: proved {:.1} s after the nudge began ({} ms in all)\n{seen}",
        nudged_at.elapsed().as_secs_f32(),
        doc["proof"]["waitedMs"]
    );
}

#[test]
#[ignore = "the real-node tier (tests/realnode/run.sh, root)"]
fn skip_shutdown_grace_stops_the_old_apiserver_once_it_stopped_listening() {
    let node = RealKubelet::get();
    let old = node.status()["apiserver"]["pod"]["containerId"].clone();
    let out = node
        .run()
        .args(["extend-tokens", "disable", "--yes", "--accept-stale-tokens"])
        .args(["--skip-shutdown-grace", "-o", "json"])
        .ok();
    let doc = out.json();
    assert_eq!(doc["proof"]["shutdownGraceSkipped"], true, "{}", out.stderr);
    // In order: the kubelet's SIGTERM (not listening), then our stop, never before.
    let shutting = out.stderr.find("is shutting down").unwrap_or(usize::MAX);
    let stopped = out
        .stderr
        .find(
            "has stopped listening; skipping the rest of its grace period: crictl stop --timeout 0",
        )
        .expect(&out.stderr);
    assert!(
        stopped < shutting || shutting == usize::MAX,
        "{}",
        out.stderr
    );
    assert_eq!(
        flag_in(&running_args(&doc["proof"]["pid"])).as_deref(),
        Some("false")
    );
    assert!(old.is_string(), "{old}");
    assert_ne!(node.status()["apiserver"]["pod"]["containerId"], old);
    eprintln!(
        "--skip-shutdown-grace: proved in {} ms\n{}",
        doc["proof"]["waitedMs"], out.stderr
    );
}

/// admin.conf and super-admin.conf re-issued, expired, by the cluster CA: the lockout.
fn expire_admin_credentials(node: &RealKubelet) {
    kubeadm_recover_sim::kubeadm::expire_admin_credentials_at(node.root(), SERVER).unwrap();
    let denied = node.kubectl(ADMIN, &["auth", "whoami"]);
    assert_ne!(denied.code, 0);
    assert!(
        denied.stderr.contains("Unauthorized") || denied.stderr.contains("401"),
        "the real apiserver answers an expired client certificate with 401: {}",
        denied.stderr
    );
}

fn assert_whoami(node: &RealKubelet, kubeconfig: &str, user: &str) {
    let whoami = node.kubectl(kubeconfig, &["auth", "whoami", "-o", "json"]);
    assert_eq!(whoami.code, 0, "{}", whoami.stderr);
    let who: serde_json::Value = serde_json::from_str(&whoami.stdout).unwrap();
    assert_eq!(who["status"]["userInfo"]["username"], user);
}

#[test]
#[ignore = "the real-node tier (tests/realnode/run.sh, root)"]
fn admin_conf_regenerate_natively_and_with_the_real_kubeadm_on_an_expired_admin_conf() {
    let node = RealKubelet::get();
    expire_admin_credentials(&node);
    let doc = node
        .run()
        .args([
            "admin-conf",
            "regenerate",
            "--yes",
            "--super-admin",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(doc["method"], "native");
    assert_whoami(&node, ADMIN, "kubernetes-admin");
    assert_whoami(&node, SUPER_ADMIN, "kubernetes-super-admin");

    expire_admin_credentials(&node);
    let doc = node
        .run()
        .args(["admin-conf", "regenerate", "--method", "kubeadm", "--yes"])
        .args(["-o", "json"])
        .ok()
        .json();
    assert_eq!(doc["method"], "kubeadm");
    assert_whoami(&node, ADMIN, "kubernetes-admin");
}

#[test]
#[ignore = "the real-node tier (tests/realnode/run.sh, root)"]
fn status_and_diagnose_read_the_real_node() {
    let node = RealKubelet::get();
    let status = node.status();
    let apiserver = &status["apiserver"];
    assert_eq!(apiserver["health"], "ok", "{status}");
    let pid = apiserver["pid"].as_i64().unwrap();
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cgroup.contains("/kubepods/"),
        "the real apiserver, in the kubelet's pod cgroup: {cgroup}"
    );
    let running = node.crictl(&["ps", "--name", "kube-apiserver", "--state", "running", "-q"]);
    assert_eq!(apiserver["pod"]["containerId"], running.trim(), "{status}");
    let hash = apiserver["pod"]["configHash"].as_str().unwrap();
    assert!(cgroup.contains(&format!("pod{hash}")), "{cgroup}");
    // The runtime's own attempt number: not always 0, since a pod re-added under a hash the
    // kubelet ran before (kubeadm's manifest put back by each test) continues its count.
    let listed: serde_json::Value = serde_json::from_str(&node.crictl(&[
        "ps",
        "--name",
        "kube-apiserver",
        "--state",
        "running",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(
        apiserver["pod"]["restartCount"].as_u64(),
        listed["containers"][0]["metadata"]["attempt"].as_u64(),
        "{status}\n{listed}"
    );
    assert!(apiserver["pod"]["restartCount"].is_u64(), "{status}");
    assert_eq!(status["kubeletRunning"], true);
    assert_eq!(status["strays"], serde_json::json!([]));

    let out = node.run().args(["diagnose", "-o", "json"]).ok();
    let doc = out.json();
    let findings: Vec<&str> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        findings,
        ["token-extension-on"],
        "kubeadm's node: only the information that extension is on by default\n{}",
        out.stdout
    );
}

#[test]
#[ignore = "the real-node tier (tests/realnode/run.sh, root)"]
fn guide_gets_a_locked_out_operator_back_on_the_real_node() {
    let node = RealKubelet::get();
    expire_admin_credentials(&node);
    let mut terminal = Terminal::run(&node, &[]);
    let overview = terminal.expect("Why are you doing this?");
    assert!(
        overview.contains("[CRITICAL] admin.conf expired"),
        "{overview}"
    );
    let steps = overview
        .split("Proposed steps")
        .nth(1)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .count();
    assert!(steps >= 1, "{overview}");
    terminal.send("real-node tier\r");
    for step in 1..=steps {
        terminal.answer(step, Answer::DoIt);
    }
    let (code, screen) = terminal.finish();
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("Summary:"), "{screen}");
    assert_whoami(&node, ADMIN, "kubernetes-admin");
}

/// The phases both kubelets must show the tool in the same order: a first look that still finds
/// the old process serving and the moment a log file exists before its process are races of
/// the poll, not behaviour, and are left out.
fn essential(phases: Vec<&'static str>) -> Vec<&'static str> {
    phases
        .into_iter()
        .skip_while(|p| *p == "old serving")
        .filter(|p| *p != "attempts")
        .collect()
}

#[test]
#[ignore = "the real-node tier (tests/realnode/run.sh, root)"]
fn the_simulator_shows_the_tool_the_restart_the_real_kubelet_does() {
    let node = RealKubelet::get();
    let real = node
        .run()
        .args(["extend-tokens", "disable", "--yes", "--accept-stale-tokens"])
        .ok();
    let real = essential(phases(&real.stderr));
    drop(node);

    // The simulated kubelet honours the same 30 s grace period; its apiserver drains for 3 s
    // (a real one with no open watch exits as soon; the real node's waits for the kubelet's
    // kill), and the new pod's sandbox takes 2 s (about 6 s on the real kubelet).
    let sim = SimNode::start();
    sim.configure(|c| {
        c.shutdown_linger_ms = 3000;
        c.pod_replace_ms = 2000;
    });
    let simulated = sim
        .run()
        .args(["extend-tokens", "disable", "--yes", "--accept-stale-tokens"])
        .ok();
    assert_eq!(
        essential(phases(&simulated.stderr)),
        real,
        "the simulator and the real kubelet show the tool the same sequence\n{}",
        simulated.stderr
    );
    assert_eq!(
        real,
        ["old shutting down", "old exited", "new starting"],
        "what the real kubelet showed"
    );
}

/// Puts kubeadm's certificates and kubeconfigs back as `kubeadm init` wrote them (by rename),
/// when a certificates test ends, however it ends.
struct KubeadmPki;

impl Drop for KubeadmPki {
    fn drop(&mut self) {
        fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
        // Dropped before the node's guard, which still holds the one-node lock.
        let dir = repo().join("target/realnode/pristine");
        let mut files = Vec::new();
        walk(&dir.join("pki"), &mut files);
        for file in files {
            let relative = file.strip_prefix(&dir).unwrap();
            put_back(
                &format!("/etc/kubernetes/{}", relative.display()),
                &std::fs::read(&file).unwrap(),
            );
        }
        for (conf, component) in [
            ("controller-manager.conf", "kube-controller-manager"),
            ("scheduler.conf", "kube-scheduler"),
        ] {
            let path = format!("/etc/kubernetes/{conf}");
            let kubeadms = pristine(conf);
            if std::fs::read(&path).ok().as_deref() == Some(&kubeadms) {
                continue;
            }
            put_back(&path, &kubeadms);
            // The process holds the file it read at its start: restart it on kubeadm's.
            let _ = Command::new("sh")
                .args([
                    "-c",
                    &format!("crictl stop $(crictl ps -q --name '^{component}$')"),
                ])
                .output();
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            let out: Output = Command::new(env!("CARGO_BIN_EXE_kubeadm-recover"))
                .args(["certs", "check", "-o", "json"])
                .output()
                .unwrap()
                .into();
            if out.stdout.matches("\"started-after-the-file\"").count() == 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

fn expire_all_certificates() {
    expire_certs(Path::new("/"), 30, &[]);
}

#[test]
#[ignore = "the real-node tier (tests/realnode/run.sh, root)"]
fn certs_check_names_every_expired_certificate_and_renew_all_brings_the_real_node_back() {
    let node = RealKubelet::get();
    let _pki = KubeadmPki;
    let healthy = node
        .run()
        .args(["certs", "check", "-o", "json"])
        .ok()
        .json();
    let state = |doc: &serde_json::Value, name: &str| {
        doc["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()["inUse"]["state"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for (name, want) in [
        ("apiserver", "presented"),
        ("etcd-server", "presented"),
        ("etcd-peer", "presented"),
        ("kubelet-serving", "presented"),
        ("controller-manager.conf", "started-after-the-file"),
        ("scheduler.conf", "started-after-the-file"),
    ] {
        assert_eq!(state(&healthy, name), want, "{name}: {healthy}");
    }

    expire_all_certificates();
    let denied = node.kubectl(ADMIN, &["get", "nodes"]);
    assert!(
        denied.stderr.contains("x509: certificate has expired"),
        "kubectl's own words: {}",
        denied.stderr
    );

    let expired = node
        .run()
        .args(["certs", "check", "-o", "json"])
        .code(1)
        .json();
    let critical: Vec<&str> = expired["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["severity"] == "critical")
        .map(|p| p["certificate"].as_str().unwrap())
        .collect();
    assert_eq!(critical.len(), 11, "{critical:?}");
    // The real apiserver and etcd re-read their files at once: they present the expired ones.
    assert_eq!(state(&expired, "apiserver"), "presented");
    assert_eq!(state(&expired, "etcd-server"), "presented");
    assert_eq!(
        state(&expired, "controller-manager.conf"),
        "started-before-the-file"
    );
    let controller_manager_restarted_on_its_expired_kubeconfig =
        restart_on_expired_kubeconfig(&node);

    let doc = node
        .run()
        .args([
            "certs",
            "renew",
            "all",
            "--yes",
            "--reason",
            "real-node test",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(
        component_proofs(&doc),
        [
            ("etcd".to_string(), "reloaded".to_string()),
            ("etcd".into(), "reloaded".into()),
            ("kube-apiserver".into(), "reloaded".into()),
            ("kube-controller-manager".into(), "restarted".into()),
            ("kube-scheduler".into(), "restarted".into()),
        ],
        "only the controller-manager and the scheduler restarted: {doc}"
    );
    // Each restarted one holds its leader-election lease as a new holder, renewed since its
    // start: proof that its new kubeconfig works, which /healthz alone is not.
    for component in ["kube-controller-manager", "kube-scheduler"] {
        let proved = doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["components"].as_array().cloned().unwrap_or_default())
            .find(|c| c["component"] == component)
            .unwrap();
        // client-go's identity: the host's name, "_", a UUID of the process.
        let holder = proved["leaseHolder"].as_str().unwrap_or_default();
        assert!(
            holder.split_once('_').is_some_and(|(_, id)| id.len() == 36),
            "{component}: {proved}"
        );
        let lease = node.kubectl(
            ADMIN,
            &[
                "-n",
                "kube-system",
                "get",
                "lease",
                component,
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ],
        );
        assert_eq!(lease.stdout, holder, "{}", lease.stderr);
    }
    drop(controller_manager_restarted_on_its_expired_kubeconfig);
    let after = node
        .run()
        .args(["certs", "check", "-o", "json"])
        .ok()
        .json();
    assert_eq!(after["problems"], serde_json::json!([]), "{after}");
    assert_eq!(state(&after, "scheduler.conf"), "started-after-the-file");
    let nodes = node.kubectl(ADMIN, &["get", "nodes"]);
    assert_eq!(nodes.code, 0, "{}", nodes.stderr);
    assert!(nodes.stdout.contains("realnode"), "{}", nodes.stdout);
}

/// With etcd's and the apiserver's certificates renewed (so that the apiserver's serving
/// certificate is good again) but not controller-manager.conf: the apiserver answers that
/// expired client certificate 401 on every request, and a controller-manager restarted onto it
/// (as after a reboot) gets exactly that. Returns the step's output, for the record.
fn restart_on_expired_kubeconfig(node: &RealKubelet) -> Output {
    let partial = node
        .run()
        .args([
            "certs",
            "renew",
            "--yes",
            "--reason",
            "real-node test: serving first",
        ])
        .args([
            "etcd-server",
            "etcd-peer",
            "etcd-healthcheck-client",
            "apiserver",
            "apiserver-etcd-client",
            "apiserver-kubelet-client",
            "front-proxy-client",
            "admin.conf",
        ])
        .ok();
    let unauthorized = node.kubectl(
        "/etc/kubernetes/controller-manager.conf",
        &["get", "--raw", "/healthz"],
    );
    assert!(
        unauthorized.stderr.contains("Unauthorized"),
        "the apiserver's answer to the expired controller-manager.conf: {}",
        unauthorized.stderr
    );
    node.crictl(&[
        "stop",
        node.crictl(&["ps", "-q", "--name", "^kube-controller-manager$"])
            .trim(),
    ]);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out: Output = Command::new("sh")
            .args([
                "-c",
                "crictl logs \"$(crictl ps -q --name '^kube-controller-manager$' | head -1)\" 2>&1",
            ])
            .output()
            .unwrap()
            .into();
        if out.stdout.contains("Unauthorized") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the controller-manager on its expired kubeconfig did not log a 401 in 120 s: {}",
            out.stdout
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    partial
}

/// controller-manager.conf replaced, by the test, with one that is not a kubeconfig right
/// after the tool wrote the renewed one and before it restarts the component: the new process
/// crash-loops, the tool puts its own backup back and proves the old one healthy again
/// through the kubelet's back-off; the scheduler's step does not run.
#[test]
#[ignore = "the real-node tier (tests/realnode/run.sh, root)"]
fn a_controller_manager_restart_that_fails_gets_its_old_kubeconfig_back_and_is_restarted_healthy() {
    let node = RealKubelet::get();
    let _pki = KubeadmPki;
    let before = std::fs::read("/etc/kubernetes/controller-manager.conf").unwrap();
    let scheduler = std::fs::read("/etc/kubernetes/scheduler.conf").unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubeadm-recover"));
    command
        .args([
            "certs",
            "renew",
            "controller-manager.conf",
            "scheduler.conf",
        ])
        .args(["--yes", "--timeout", "40s"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut seen = String::new();
    let mut injected = false;
    for line in std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap())) {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if !injected
            && line
                .contains("restarting kube-controller-manager so that it reads its new kubeconfig")
        {
            put_back(
                "/etc/kubernetes/controller-manager.conf",
                b"this: is not\na kubeconfig: [\n",
            );
            injected = true;
        }
    }
    let status = child.wait().unwrap();
    assert!(
        injected,
        "the tool never restarted the controller-manager:\n{seen}"
    );
    assert_eq!(status.code(), Some(1), "{seen}");
    let out = Output {
        code: 1,
        stdout: String::new(),
        stderr: seen,
    };
    assert!(
        out.stderr
            .contains("kube-controller-manager was not proved"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("proved as before"), "{}", out.stderr);
    assert_eq!(
        std::fs::read("/etc/kubernetes/controller-manager.conf").unwrap(),
        before
    );
    assert_eq!(
        std::fs::read("/etc/kubernetes/scheduler.conf").unwrap(),
        scheduler,
        "the step after it is not run"
    );
    let check = node
        .run()
        .args(["certs", "check", "-o", "json"])
        .ok()
        .json();
    let cm = check["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "controller-manager.conf")
        .unwrap();
    assert_eq!(
        cm["inUse"]["state"], "started-after-the-file",
        "restarted on its old file: {cm}"
    );
}

/// The kubelet's files as the test found them, put back (by rename) when it ends, and the
/// kubelet restarted onto them (the tier's supervisor starts it again), however the test ends.
struct KubeletFiles {
    saved: Vec<(std::path::PathBuf, Vec<u8>)>,
    kubelet_pid: std::path::PathBuf,
}

impl KubeletFiles {
    fn save() -> Self {
        let mut saved = vec![(
            std::path::PathBuf::from("/etc/kubernetes/kubelet.conf"),
            std::fs::read("/etc/kubernetes/kubelet.conf").unwrap(),
        )];
        for entry in std::fs::read_dir("/var/lib/kubelet/pki").unwrap().flatten() {
            let path = entry.path();
            if !path.is_symlink() && path.is_file() {
                saved.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
        KubeletFiles {
            saved,
            kubelet_pid: repo().join("target/realnode/kubelet.pid"),
        }
    }
}

impl Drop for KubeletFiles {
    fn drop(&mut self) {
        // Beside each file: /var/lib/kubelet is a mount of its own (the kubelet's bind mount).
        for (path, bytes) in &self.saved {
            if std::fs::read(path).ok().as_deref() == Some(bytes) {
                continue;
            }
            let tmp = path.with_file_name(format!(".realnode-put-back-{}", std::process::id()));
            std::fs::write(&tmp, bytes).unwrap();
            if let Ok(meta) = std::fs::metadata(path) {
                std::fs::set_permissions(&tmp, meta.permissions()).unwrap();
            }
            std::fs::rename(&tmp, path).unwrap();
        }
        if let Ok(pid) = std::fs::read_to_string(&self.kubelet_pid) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        // Ready again on its own files (bounded; the node guard waits for the apiserver).
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            let out: Output = Command::new("kubectl")
                .args(["--kubeconfig", ADMIN, "get", "node", "realnode", "-o"])
                .arg("jsonpath={.status.conditions[?(@.type==\"Ready\")].status}")
                .output()
                .unwrap()
                .into();
            if out.stdout == "True" {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// A node off for a year: every certificate has expired, the kubelet's own client certificate
/// too, so the kubelet no longer starts ("unable to load bootstrap kubeconfig" once
/// kubelet.conf's credential is expired). `certs renew all` brings it back in order: etcd and
/// the apiserver reload theirs; the kubelet's is re-issued for the same node and the kubelet
/// restarted through systemctl, proved by its node's Lease renewed since and the node Ready —
/// before the controller-manager and the scheduler are stopped (only a running kubelet starts
/// them again); then those two are restarted and proved. This machine
/// has no systemd: the systemctl on PATH here drives the tier's kubelet supervisor as systemd
/// would (`show` says the unit is loaded, `restart` stops the kubelet and the supervisor starts
/// it); everything else is the real kubelet.
#[test]
#[ignore = "the real-node tier (tests/realnode/run.sh, root)"]
fn a_node_off_for_a_year_with_the_kubelets_certificate_expired_too_comes_back_with_renew_all() {
    let node = RealKubelet::get();
    let _pki = KubeadmPki;
    let _files = KubeletFiles::save();
    let bin = tempfile::tempdir().unwrap();
    let systemctl = bin.path().join("systemctl");
    std::fs::write(
        &systemctl,
        format!(
            "#!/bin/sh\ncase \"$*\" in\n  'show --property=LoadState --value kubelet') echo loaded ;;\n  \
             'restart kubelet') kill \"$(cat {})\" 2>/dev/null; exit 0 ;;\n  *) exit 1 ;;\nesac\n",
            repo().join("target/realnode/kubelet.pid").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &systemctl,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap()
    );

    expire_all_certificates();
    expire_certs(Path::new("/"), 30, &["kubelet-client"]);
    let log = repo().join("target/realnode/logs/kubelet.log");
    let logged = std::fs::metadata(&log).unwrap().len();
    // The kubelet restarted onto it, as after a reboot: it cannot start.
    let _ = Command::new("kill")
        .arg(node.kubelet_pid().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read(&log).unwrap();
        let since = String::from_utf8_lossy(&text[logged as usize..]).into_owned();
        if since.contains("is expired") || since.contains("bootstrap kubeconfig") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the kubelet on an expired client certificate did not fail in 60 s: {since}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let check = node
        .run()
        .args(["certs", "check", "-o", "json"])
        .code(1)
        .json();
    assert!(
        check["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["certificate"] == "kubelet-client" && p["severity"] == "critical"),
        "{check}"
    );

    let doc = node
        .run()
        .args(["certs", "renew", "all", "--yes", "-o", "json"])
        .env("PATH", &path)
        .ok()
        .json();
    assert_eq!(
        component_proofs(&doc),
        [
            ("etcd".to_string(), "reloaded".to_string()),
            ("etcd".into(), "reloaded".into()),
            ("kube-apiserver".into(), "reloaded".into()),
            ("kubelet".into(), "kubelet-restarted".into()),
            ("kube-controller-manager".into(), "restarted".into()),
            ("kube-scheduler".into(), "restarted".into()),
        ],
        "the kubelet back before any static pod is stopped: {doc}"
    );
    let proved = &renew_step(&doc, "kubelet")["components"][0];
    assert_eq!(proved["proof"], "kubelet-restarted", "{doc}");
    assert_eq!(proved["node"], "realnode", "{doc}");
    assert!(proved["leaseRenewed"].is_string(), "{doc}");
    let ready = node.kubectl(
        ADMIN,
        &[
            "get",
            "node",
            "realnode",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ],
    );
    assert_eq!(ready.stdout, "True", "{}", ready.stderr);
    let after = node
        .run()
        .args(["certs", "check", "-o", "json"])
        .output()
        .json();
    // The problems first, on one line: a CI log keeps only the start of a long message.
    assert_eq!(
        after["problems"],
        serde_json::json!([]),
        "certs check after renew all: {}\n{after}",
        after["problems"]
    );
    let nodes = node.kubectl(ADMIN, &["get", "nodes"]);
    assert_eq!(nodes.code, 0, "{}", nodes.stderr);
}

/// `certs renew` of `names`, killed with SIGKILL once its stderr shows `phase`. Returns what
/// it showed.
fn renew_killed_at(names: &[&str], phase: &str) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubeadm-recover"));
    command
        .args(["certs", "renew", "--yes"])
        .args(names)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let (mut child, seen) = watching(&mut command, |line| line.contains(phase));
    let _ = child.kill();
    let status = child.wait().unwrap();
    assert!(
        seen.contains(phase) && !status.success(),
        "the tool ended before {phase:?} ({status}):\n{seen}"
    );
    seen
}

/// kill -9 of a renewal where it waits on the real node — controller-manager.conf written and
/// its lease being read with it, and the restart under way — then: the journal shows the step unfinished,
/// another renewal is refused, `resume` declines (it would issue yet another certificate), and
/// `revert` puts the files back and proves the component on them (the port presents the
/// certificate put back; the controller-manager restarted onto its kubeconfig, healthy).
#[test]
#[ignore = "the real-node tier (tests/realnode/run.sh, root)"]
fn a_renewal_killed_at_each_step_is_reverted_and_proved_on_the_real_node() {
    let node = RealKubelet::get();
    let _pki = KubeadmPki;
    for (names, phase, file) in [
        (
            &["controller-manager.conf"][..],
            "checking that the new /etc/kubernetes/controller-manager.conf authenticates",
            "/etc/kubernetes/controller-manager.conf",
        ),
        (
            &["controller-manager.conf"][..],
            "restarting kube-controller-manager so that it reads its new kubeconfig",
            "/etc/kubernetes/controller-manager.conf",
        ),
    ] {
        let before = std::fs::read(file).unwrap();
        let seen = renew_killed_at(names, phase);
        assert_ne!(
            std::fs::read(file).unwrap(),
            before,
            "written before {phase:?}:\n{seen}"
        );
        let status = node.status();
        assert_eq!(status["session"]["unfinished"], true, "{status}");
        let again = node
            .run()
            .args(["certs", "renew", "--yes"])
            .args(names)
            .code(3);
        assert!(again.stderr.contains("did not finish"), "{}", again.stderr);
        let resume = node.run().args(["resume", "--yes"]).code(2);
        assert!(resume.stderr.contains("revert"), "{}", resume.stderr);
        let reverted = node
            .run()
            .args(["revert", "--yes", "-o", "json"])
            .ok()
            .json();
        assert_eq!(std::fs::read(file).unwrap(), before, "{reverted}");
        assert_eq!(
            reverted["components"][0]["proof"], "restarted",
            "proved on the files put back: {reverted}"
        );
        let check = node
            .run()
            .args(["certs", "check", "-o", "json"])
            .ok()
            .json();
        assert_eq!(
            check["problems"],
            serde_json::json!([]),
            "after {phase:?}: {check}"
        );
    }
}

/// The findings `diagnose` makes now.
fn diagnosed(node: &RealKubelet) -> serde_json::Value {
    node.run().args(["diagnose", "-o", "json"]).ok().json()
}

fn has_finding(doc: &serde_json::Value, id: &str) -> bool {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["id"] == id)
}

/// Waits (bounded) until `diagnose` says what `wanted` accepts; the last document otherwise.
fn diagnose_until(
    node: &RealKubelet,
    within: Duration,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let doc = diagnosed(node);
        if wanted(&doc) || Instant::now() > deadline {
            return doc;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// What the lockout test changes besides kubeadm's files, put back on drop: the kubelet's
/// hold (the tier's supervisor starts no kubelet while it exists), its configuration, a swap
/// file, and etcd's manifest.
struct Lockouts {
    hold: std::path::PathBuf,
    config: Vec<u8>,
    swapfile: std::path::PathBuf,
    etcd: Vec<u8>,
}

const KUBELET_CONFIG: &str = "/var/lib/kubelet/config.yaml";
const ETCD: &str = "/etc/kubernetes/manifests/etcd.yaml";

impl Lockouts {
    fn new() -> Self {
        Lockouts {
            hold: repo().join("target/realnode/kubelet.hold"),
            config: std::fs::read(KUBELET_CONFIG).unwrap(),
            swapfile: repo().join("target/realnode/swapfile"),
            etcd: std::fs::read(ETCD).unwrap(),
        }
    }

    fn kill_kubelet(node: &RealKubelet) {
        let _ = Command::new("kill")
            .arg(node.kubelet_pid().to_string())
            .status();
    }
}

impl Drop for Lockouts {
    fn drop(&mut self) {
        if self.swapfile.exists() {
            let _ = Command::new("swapoff").arg(&self.swapfile).status();
            let _ = std::fs::remove_file(&self.swapfile);
        }
        if std::fs::read(KUBELET_CONFIG).ok().as_deref() != Some(&self.config[..]) {
            let tmp = Path::new(KUBELET_CONFIG).with_file_name(".realnode-put-back");
            std::fs::write(&tmp, &self.config).unwrap();
            std::fs::rename(&tmp, KUBELET_CONFIG).unwrap();
            if let Ok(pid) = std::fs::read_to_string(repo().join("target/realnode/kubelet.pid")) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
        let _ = std::fs::remove_file(&self.hold);
        put_back(ETCD, &self.etcd);
    }
}

/// The lockouts of the troubleshooting notes, each staged on the real node and named by
/// `diagnose` with its evidence: an admin.conf kubectl cannot use (kubectl itself fails the
/// same way), the kubelet stopped, swap turned on under a kubelet that refuses it (the real
/// kubelet's own "running with swap on is not supported"), and etcd stopped (the apiserver
/// loses its storage). And the control-plane nodes, as the API lists them.
#[test]
#[ignore = "the real-node tier (tests/realnode/run.sh, root)"]
fn the_lockouts_the_troubleshooting_notes_list_are_named_on_the_real_node() {
    let node = RealKubelet::get();
    let lockouts = Lockouts::new();

    let status = node.status();
    let nodes = status["controlPlaneNodes"]
        .as_array()
        .expect("the API lists them");
    assert_eq!(nodes.len(), 1, "{status:#}");
    assert_eq!(nodes[0]["ready"], true, "{status:#}");
    let whoami = node
        .run()
        .args(["kubeconfig", "check", "-o", "json", "--kubeconfig", ADMIN])
        .ok()
        .json();
    assert_eq!(
        whoami["identity"]["username"], "kubernetes-admin",
        "{whoami:#}"
    );

    // admin.conf naming a user it does not have: kubectl fails, and so does the check.
    let admin = std::fs::read_to_string(ADMIN).unwrap();
    node.put_back(
        ADMIN,
        admin
            .replace("    user: kubernetes-admin", "    user: ghost")
            .as_bytes(),
    );
    assert_ne!(node.kubectl(ADMIN, &["get", "--raw", "/livez"]).code, 0);
    let doc = diagnosed(&node);
    assert!(has_finding(&doc, "admin-conf-invalid"), "{doc:#}");
    node.run()
        .args(["kubeconfig", "check", "--kubeconfig", ADMIN])
        .code(1);
    node.put_back(ADMIN, admin.as_bytes());

    // The kubelet stopped (held by the supervisor): the static pods keep running without it.
    std::fs::write(&lockouts.hold, "").unwrap();
    Lockouts::kill_kubelet(&node);
    let doc = diagnose_until(&node, Duration::from_secs(30), |d| {
        has_finding(d, "kubelet-not-running")
    });
    assert!(has_finding(&doc, "kubelet-not-running"), "{doc:#}");

    // Swap on, and the kubelet's failSwapOn back to its default: the real kubelet refuses.
    let swapfile = lockouts.swapfile.to_str().unwrap();
    bash_ok([
        "-c",
        &format!(
            "fallocate -l 64M {swapfile} && chmod 600 {swapfile} && mkswap {swapfile} >/dev/null && swapon {swapfile}"
        ),
    ]);
    let config = String::from_utf8(lockouts.config.clone()).unwrap();
    let strict: String = config
        .lines()
        .filter(|l| !l.starts_with("failSwapOn:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let tmp = Path::new(KUBELET_CONFIG).with_file_name(".realnode-strict");
    std::fs::write(&tmp, strict).unwrap();
    std::fs::rename(&tmp, KUBELET_CONFIG).unwrap();
    let log = repo().join("target/realnode/logs/kubelet.log");
    let logged = std::fs::metadata(&log).unwrap().len() as usize;
    std::fs::remove_file(&lockouts.hold).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !String::from_utf8_lossy(&std::fs::read(&log).unwrap()[logged..])
        .contains("running with swap on is not supported")
    {
        assert!(
            Instant::now() < deadline,
            "the real kubelet did not refuse swap"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let doc = diagnose_until(&node, Duration::from_secs(30), |d| {
        has_finding(d, "swap-on") && has_finding(d, "kubelet-not-running")
    });
    assert!(has_finding(&doc, "swap-on"), "{doc:#}");
    let swap = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "swap-on")
        .unwrap();
    assert!(
        swap["evidence"].as_str().unwrap().contains(swapfile),
        "{swap:#}"
    );
    drop(lockouts);

    // etcd stopped (its manifest moved out): the apiserver loses its storage.
    let lockouts = Lockouts::new();
    let etcd_before = std::fs::read(ETCD).unwrap();
    let parked = "/etc/kubernetes/tmp/realnode-etcd.yaml";
    std::fs::create_dir_all("/etc/kubernetes/tmp").unwrap();
    std::fs::rename(ETCD, parked).unwrap();
    let doc = diagnose_until(&node, Duration::from_secs(90), |d| {
        has_finding(d, "etcd-down")
    });
    // Put back before asserting: the node must come back whatever the outcome.
    std::fs::rename(parked, ETCD).unwrap();
    assert_eq!(std::fs::read(ETCD).unwrap(), etcd_before);
    assert!(has_finding(&doc, "etcd-down"), "{doc:#}");
    drop(lockouts);
}

/// The node's etcd, over its gRPC gateway with the health-check client kubeadm made for it:
/// `method` (`member/list`, `member/add`) with `body`; the JSON answer.
fn etcd_cluster(method: &str, body: &str) -> serde_json::Value {
    let pki = "/etc/kubernetes/pki/etcd";
    let out: Output = Command::new("curl")
        .args(["-sS", "--max-time", "5", "-X", "POST", "-d", body])
        .args(["--cacert", &format!("{pki}/ca.crt")])
        .args(["--cert", &format!("{pki}/healthcheck-client.crt")])
        .args(["--key", &format!("{pki}/healthcheck-client.key")])
        .arg(format!("https://127.0.0.1:2379/v3/cluster/{method}"))
        .output()
        .unwrap()
        .into();
    assert_eq!(out.code, 0, "etcd {method}: {}", out.stderr);
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("etcd {method}: {e}: {}", out.stdout))
}

/// How many members the node's etcd counts (read locally: it answers without quorum).
fn etcd_members() -> Option<usize> {
    std::panic::catch_unwind(|| etcd_cluster("member/list", "{}"))
        .ok()
        .and_then(|doc| doc["members"].as_array().map(Vec::len))
}

/// The running etcd of the node (its `--name=realnode`), by its arguments.
fn node_etcd_args() -> Option<Vec<String>> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let args = args_of(&std::fs::read(entry.path().join("cmdline")).ok()?);
            (args.first().is_some_and(|a| a.ends_with("etcd"))
                && args.iter().any(|a| a == "--name=realnode"))
            .then_some(args)
        })
}

/// A second etcd, of ANOTHER cluster (its own data directory, `--initial-cluster-state=new`),
/// on loopback ports of its own: a machine reused without `kubeadm reset`, added to the node's
/// cluster as a voter (`etcdctl member add`; kubeadm's own join adds a learner first, which
/// costs no quorum). It dies with the test (`setpriv --pdeathsig`). On drop it is stopped and,
/// if the node's etcd still counts it, the node's etcd is brought back to one member by the fix
/// the finding gives (--force-new-cluster once), its manifest put back byte for byte.
struct Stranger {
    etcd: std::process::Child,
    peer_url: String,
    _data: tempfile::TempDir,
    manifest: Vec<u8>,
}

impl Stranger {
    fn start() -> Self {
        let port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (peer, client) = (port(), port());
        // Read before anything starts: a panic here leaves nothing running.
        let manifest = std::fs::read(ETCD).unwrap();
        let data = tempfile::tempdir().unwrap();
        let peer_url = format!("http://127.0.0.1:{peer}");
        let client_url = format!("http://127.0.0.1:{client}");
        let log =
            std::fs::File::create(repo().join("target/realnode/logs/stranger-etcd.log")).unwrap();
        let etcd = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "etcd"])
            .args(["--name", "stranger", "--data-dir"])
            .arg(data.path().join("data"))
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("stranger={peer_url}")])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "another-cluster"])
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("the upstream tier's etcd on PATH (tests/realnode/run.sh puts it there)");
        Stranger {
            etcd,
            peer_url,
            _data: data,
            manifest,
        }
    }

    fn stop(&mut self) {
        let _ = self.etcd.kill();
        let _ = self.etcd.wait();
    }

    /// The node's etcd once with `--force-new-cluster` (it keeps its data and forgets every other
    /// member), then its own manifest again; bounded waits for each restart the kubelet does.
    fn forget_the_stranger(&self) {
        let text = String::from_utf8(self.manifest.clone()).unwrap();
        let forced = text.replacen(
            "    - --data-dir=/var/lib/etcd\n",
            "    - --data-dir=/var/lib/etcd\n    - --force-new-cluster\n",
            1,
        );
        assert_ne!(
            forced, text,
            "kubeadm's etcd.yaml has --data-dir=/var/lib/etcd"
        );
        put_back(ETCD, forced.as_bytes());
        let deadline = Instant::now() + Duration::from_secs(180);
        while !(node_etcd_args().is_some_and(|a| a.iter().any(|a| a == "--force-new-cluster"))
            && etcd_members() == Some(1))
        {
            assert!(
                Instant::now() < deadline,
                "etcd did not restart with --force-new-cluster in 180 s"
            );
            std::thread::sleep(Duration::from_secs(1));
        }
        put_back(ETCD, &self.manifest);
        let deadline = Instant::now() + Duration::from_secs(180);
        while !(node_etcd_args().is_some_and(|a| !a.iter().any(|a| a == "--force-new-cluster"))
            && etcd_members() == Some(1))
        {
            assert!(
                Instant::now() < deadline,
                "etcd did not restart with its own manifest in 180 s"
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

impl Drop for Stranger {
    fn drop(&mut self) {
        self.stop();
        let left = etcd_members() != Some(1)
            || std::fs::read(ETCD).ok().as_deref() != Some(&self.manifest[..]);
        let brought_back = !left
            || std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.forget_the_stranger()
            }))
            .is_ok();
        if !brought_back {
            // Said, so that a node left with two voters is not a mystery to the next test.
            eprintln!("{TIER}: the node's etcd was not brought back to one member (see above)");
        }
        put_back(ETCD, &self.manifest);
    }
}

/// "etcdserver: cluster ID mismatch" as operators meet it: a second voter added to the node's
/// one-member cluster, whose etcd runs on a data directory of another cluster. The node's etcd
/// loses quorum (two voters, one a stranger), the apiserver its storage, and the real etcd's log
/// says the peer ignores it. diagnose names the peer and both cluster IDs from that log, never
/// which member to remove (the log cannot tell), and the fix it gives for a cluster left
/// without quorum brings the node back.
#[test]
#[ignore = "the real-node tier (tests/realnode/run.sh, root)"]
fn a_member_of_another_cluster_is_named_from_the_real_etcds_log_and_its_fix_works() {
    let node = RealKubelet::get();
    let mut stranger = Stranger::start();
    let added = etcd_cluster(
        "member/add",
        &format!("{{\"peerURLs\":[\"{}\"]}}", stranger.peer_url),
    );
    let id: u64 = added["member"]["ID"].as_str().unwrap().parse().unwrap();
    let id = format!("{id:x}");

    let doc = diagnose_until(&node, Duration::from_secs(60), |d| {
        has_finding(d, "etcd-cluster-id-mismatch")
    });
    let mismatch = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "etcd-cluster-id-mismatch")
        .unwrap_or_else(|| panic!("{doc:#}"));
    let summary = mismatch["summary"].as_str().unwrap();
    let fix = mismatch["fix"].as_str().unwrap();
    assert!(summary.contains(&format!("member {id}")), "{mismatch:#}");
    assert!(
        summary.contains("answers as another cluster"),
        "{mismatch:#}"
    );
    assert!(
        mismatch["evidence"]
            .as_str()
            .unwrap()
            .contains("cluster ID mismatch"),
        "{mismatch:#}"
    );
    assert!(
        summary.contains("one of the two holds another cluster's data"),
        "{mismatch:#}"
    );
    assert!(fix.contains("etcdctl member remove ID"), "{mismatch:#}");
    assert!(fix.contains("--consistency=s"), "{mismatch:#}");
    assert!(fix.contains("--force-new-cluster"), "{mismatch:#}");
    assert!(fix.contains("never automatic"), "{mismatch:#}");
    assert!(
        !has_finding(&doc, "etcd-down"),
        "the mismatch is the reason: {doc:#}"
    );
    assert_eq!(
        doc["steps"].as_array().map_or(0, Vec::len),
        0,
        "never acted on: {doc:#}"
    );
    // The lockout itself: without quorum the apiserver has no storage.
    let deadline = Instant::now() + Duration::from_secs(90);
    while node
        .kubectl(ADMIN, &["get", "--raw", "/readyz", "--request-timeout=5s"])
        .code
        == 0
    {
        assert!(
            Instant::now() < deadline,
            "the apiserver kept its storage without quorum"
        );
        std::thread::sleep(Duration::from_secs(1));
    }

    // The fix as the finding gives it for a cluster left without quorum: the stranger stopped,
    // this member once with --force-new-cluster. Its data is kept: the node comes back.
    stranger.stop();
    stranger.forget_the_stranger();
    assert_eq!(std::fs::read(ETCD).unwrap(), stranger.manifest);
    let deadline = Instant::now() + Duration::from_secs(120);
    while node.kubectl(ADMIN, &["get", "node", "realnode"]).code != 0 {
        assert!(
            Instant::now() < deadline,
            "the apiserver did not come back on the node's own data"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let doc = diagnose_until(&node, Duration::from_secs(60), |d| {
        !has_finding(d, "etcd-cluster-id-mismatch")
    });
    assert!(!has_finding(&doc, "etcd-cluster-id-mismatch"), "{doc:#}");
    drop(stranger);
}
