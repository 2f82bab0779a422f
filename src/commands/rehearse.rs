//! `rehearse`: the break-glass flow end to end on a simulated node in a temp dir. The node (its
//! files, kubelet and apiserver) comes from the separate `kubeadm-recover-sim` binary; each step
//! runs this very binary as an operator would (`--root <sandbox> ... -o json`), so what is
//! rehearsed is what runs on a real node.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::Context;
use crate::cli::RehearseOptions;
use crate::error::{Error, Result};
use crate::ui::Report;

struct Sandbox {
    root: PathBuf,
    kubelet: Option<Child>,
    keep: bool,
    _temp: Option<tempfile::TempDir>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(mut kubelet) = self.kubelet.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(kubelet.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = kubelet.wait();
        }
        if self.keep
            && let Some(temp) = self._temp.take()
        {
            let _ = temp.keep();
        }
    }
}

struct Step {
    name: String,
    elapsed: Duration,
    detail: String,
    timings: Option<Timings>,
}

#[derive(Clone, Copy)]
struct Timings {
    waited_ms: u64,
    noticed_after_ready_ms: Option<i64>,
    overhead_ms: u64,
}

fn exe() -> Result<PathBuf> {
    std::env::current_exe()
        .map_err(|e| Error::Failed(format!("cannot find this program's path: {e}")))
}

pub const SIMULATOR: &str = "kubeadm-recover-sim";

/// The simulator: next to this binary (a cargo build, or an unpacked release), else on PATH.
fn simulator() -> Result<PathBuf> {
    let beside = exe()?.with_file_name(SIMULATOR);
    if beside.is_file() {
        return Ok(beside);
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(SIMULATOR))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| {
            Error::Refused(format!(
                "rehearse needs the simulator `{SIMULATOR}`, which is neither next to {} nor on PATH.\n  \
                 what to do: build it with `cargo build --release` in the source tree (it builds both binaries), \
                 or `cargo install --path sim`. It is a separate binary so that the tool installed on \
                 real nodes carries no simulated apiserver",
                exe().map(|e| e.display().to_string()).unwrap_or_default()
            ))
        })
}

/// Runs the simulator to completion; its stdout.
fn simulate(args: &[&std::ffi::OsStr]) -> Result<String> {
    let out = Command::new(simulator()?)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Failed(format!("cannot run {SIMULATOR}: {e}")))?;
    if !out.status.success() {
        return Err(Error::Failed(format!(
            "{SIMULATOR} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Sets the simulation's knobs (`KEY=JSON`) while it runs.
fn configure(root: &Path, settings: &[&str]) -> Result<()> {
    let mut args: Vec<&std::ffi::OsStr> =
        vec!["config".as_ref(), "--root".as_ref(), root.as_os_str()];
    args.extend(settings.iter().map(std::ffi::OsStr::new));
    simulate(&args).map(drop)
}

/// Starts the node's simulated kubelet; it dies with us.
fn spawn_kubelet(root: &Path) -> Result<Child> {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(simulator()?);
    command
        .arg("kubelet")
        .arg("--root")
        .arg(root)
        .stdin(Stdio::null());
    // SAFETY: prctl is async-signal-safe; it only ties the child's life to ours.
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                .map_err(std::io::Error::from)
        });
    }
    command
        .spawn()
        .map_err(|e| Error::Failed(format!("starting the simulated kubelet: {e}")))
}

/// Runs this binary against the sandbox with `-o json`; returns (exit code, JSON, stderr).
fn tool(root: &Path, args: &[&str]) -> Result<(i32, Value, String)> {
    let out = Command::new(exe()?)
        .arg("--root")
        .arg(root)
        .args(args)
        .args(["-o", "json", "--non-interactive"])
        .env_remove("KUBEADM_RECOVER_ROOT")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Failed(format!("cannot run kubeadm-recover: {e}")))?;
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    Ok((
        out.status.code().unwrap_or(-1),
        doc,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// When the newest simulated apiserver started serving (the simulation's own log line), to
/// measure how quickly the tool noticed. The tool under test never reads this.
fn ready_at_ms(root: &Path) -> Option<i64> {
    let logs = crate::apiserver::logs::attempt_files(&crate::node::NodeLayout::new(Some(
        root.to_path_buf(),
    )));
    let newest = logs
        .iter()
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())?;
    let text = std::fs::read_to_string(newest).ok()?;
    text.lines()
        .rev()
        .find_map(|l| l.rsplit(" at ").next()?.trim().parse().ok())
}

fn read_manifest(root: &Path) -> Result<Vec<u8>> {
    let path = root.join("etc/kubernetes/manifests/kube-apiserver.yaml");
    std::fs::read(&path).map_err(|e| Error::io("cannot read", &path, e))
}

fn expect(step: &str, code: i32, want: i32, stderr: &str) -> Result<()> {
    if code == want {
        Ok(())
    } else {
        Err(Error::Failed(format!(
            "rehearsal step {step:?} exited {code}, expected {want}:\n{stderr}"
        )))
    }
}

fn change_step(root: &Path, name: &str, args: &[&str], want: i32) -> Result<Step> {
    let started = Instant::now();
    let (code, doc, stderr) = tool(root, args)?;
    let elapsed = started.elapsed();
    expect(name, code, want, &stderr)?;
    let proof = &doc["proof"];
    let timings = proof["waitedMs"].as_u64().map(|waited_ms| Timings {
        waited_ms,
        noticed_after_ready_ms: proof["noticedUnixMs"]
            .as_i64()
            .zip(ready_at_ms(root))
            .map(|(n, r)| n - r),
        overhead_ms: (elapsed.as_millis() as u64).saturating_sub(waited_ms),
    });
    let detail = if code == 0 {
        format!(
            "proved: kube-apiserver pid {} runs the new manifest, healthy",
            proof["pid"]
        )
    } else {
        let first = stderr
            .lines()
            .find(|l| l.starts_with("error:"))
            .unwrap_or("failed");
        let why = first.trim_start_matches("error: ");
        let why = why.split("; its log").next().unwrap_or(why);
        let close = if why.matches('(').count() > why.matches(')').count() {
            ")"
        } else {
            ""
        };
        format!("exit {code}, rolled back: {why}{close}")
    };
    Ok(Step {
        name: name.into(),
        elapsed,
        detail,
        timings,
    })
}

fn record(ctx: &Context, steps: &mut Vec<Step>, show_timings: bool, step: Step) {
    print_step(ctx, &step, show_timings);
    steps.push(step);
}

fn print_step(ctx: &Context, step: &Step, show_timings: bool) {
    let mut line = format!(
        "  ok  {:<58} {:>6.2}s  {}",
        step.name,
        step.elapsed.as_secs_f64(),
        step.detail
    );
    if let (true, Some(t)) = (show_timings, step.timings) {
        line.push_str(&format!(
            "\n      wait {} ms; noticed {} after the apiserver was ready; tool overhead {} ms",
            t.waited_ms,
            t.noticed_after_ready_ms
                .map_or("?".into(), |ms| format!("{ms} ms")),
            t.overhead_ms
        ));
    }
    if !ctx.ui.json() {
        crate::ui::stdout_write(&format!("{line}\n"));
    }
}

fn start_sandbox(options: &RehearseOptions) -> Result<Sandbox> {
    let (root, temp) = match &options.dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let temp = tempfile::Builder::new()
                .prefix("kubeadm-recover-rehearse-")
                .tempdir()
                .map_err(|e| Error::Failed(format!("cannot make a temp dir: {e}")))?;
            (temp.path().to_path_buf(), Some(temp))
        }
    };
    Ok(Sandbox {
        root,
        kubelet: None,
        keep: options.keep || options.dir.is_some(),
        _temp: temp,
    })
}

fn wait_until_serving(root: &Path, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let (_, doc, _) = tool(root, &["status"])?;
        if doc["apiserver"]["health"] == "ok" {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(Error::Failed(
        "the simulated kube-apiserver did not come up".into(),
    ))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rehearsal {
    pub root: PathBuf,
    pub kept: bool,
    pub steps: Vec<StepReport>,
    pub median_noticed_after_ready_ms: Option<i64>,
    pub median_overhead_ms: Option<i64>,
    #[serde(skip)]
    timings: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    pub name: String,
    pub ms: u64,
    pub detail: String,
    pub waited_ms: Option<u64>,
    pub noticed_after_ready_ms: Option<i64>,
    pub overhead_ms: Option<u64>,
}

impl Report for Rehearsal {
    const KIND: &'static str = "Rehearsal";

    /// The steps were printed as they ran; this is the verdict.
    fn text(&self) -> String {
        let mut out = String::from("rehearsal passed.\n");
        if self.timings {
            let ms = |m: Option<i64>| m.map_or("?".into(), |m| format!("{m} ms"));
            out.push_str(&format!(
                "timings: median {} from the apiserver being ready to the tool noticing; median tool overhead {} (target: < 300 ms to notice)\n",
                ms(self.median_noticed_after_ready_ms),
                ms(self.median_overhead_ms),
            ));
        }
        if self.kept {
            out.push_str(&format!(
                "sandbox kept: kubeadm-recover --root {0} status\n  (run its kubelet and apiserver again with: kubeadm-recover rehearse --dir {0} --serve)\n",
                self.root.display()
            ));
        } else {
            out.push_str("sandbox removed; no process left behind\n");
        }
        out
    }
}

fn median(values: &mut [i64]) -> Option<i64> {
    values.sort();
    values.get(values.len() / 2).copied()
}

pub fn run(ctx: &Context, options: &RehearseOptions) -> Result<()> {
    let mut sandbox = start_sandbox(options)?;
    let root = sandbox.root.clone();
    let mut steps: Vec<Step> = Vec::new();

    if !ctx.ui.json() {
        crate::ui::stdout_write(&format!(
            "rehearsal on a simulated kubeadm node in {}\n",
            root.display()
        ));
    }

    if options.serve {
        if !root.join("etc/kubernetes/manifests").is_dir() {
            return Err(Error::Usage(format!(
                "{} is not a sandbox node: run `kubeadm-recover rehearse --keep` first",
                root.display()
            )));
        }
    } else {
        let started = Instant::now();
        let key_type = clap::ValueEnum::to_possible_value(&options.key_type)
            .expect("every key type has a name")
            .get_name()
            .to_string();
        simulate(&[
            "node".as_ref(),
            "--root".as_ref(),
            root.as_os_str(),
            "--kubernetes-version".as_ref(),
            options.kubernetes_version.as_ref(),
            "--key-type".as_ref(),
            key_type.as_ref(),
            "--admin-expired".as_ref(),
        ])?;
        record(
            ctx,
            &mut steps,
            options.timings,
            Step {
                name: format!(
                    "build a kubeadm v{} node (CA, certificates, kubeconfigs, manifest)",
                    options.kubernetes_version
                ),
                elapsed: started.elapsed(),
                detail: String::new(),
                timings: None,
            },
        );
    }

    let started = Instant::now();
    sandbox.kubelet = Some(spawn_kubelet(&root)?);
    wait_until_serving(&root, Duration::from_secs(30))?;
    record(
        ctx,
        &mut steps,
        options.timings,
        Step {
            name: "start the simulated kubelet; kube-apiserver comes up".into(),
            elapsed: started.elapsed(),
            detail: String::new(),
            timings: None,
        },
    );

    if options.serve {
        ctx.ui.info(format!(
            "serving: point the tool at it with `kubeadm-recover --root {} status`; Ctrl-C stops it",
            root.display()
        ));
        let _ = sandbox.kubelet.as_mut().map(|k| k.wait());
        return Ok(());
    }

    let started = Instant::now();
    let (code, doc, stderr) = tool(&root, &["status"])?;
    expect("status", code, 0, &stderr)?;
    let admin = &doc["credentials"][0];
    record(
        ctx,
        &mut steps,
        options.timings,
        Step {
            name: "status".into(),
            elapsed: started.elapsed(),
            detail: format!(
                "flag {}; kube-apiserver pid {} healthy: {}; admin.conf {}",
                doc["manifest"]["extendTokenExpiration"]["state"]
                    .as_str()
                    .unwrap_or("?"),
                doc["apiserver"]["pid"],
                doc["apiserver"]["health"].as_str().unwrap_or("?"),
                if admin["expired"] == true {
                    "EXPIRED"
                } else {
                    "valid"
                }
            ),
            timings: None,
        },
    );

    // The node starts locked out: admin.conf expired. Re-issue it and prove it.
    let started = Instant::now();
    let (code, doc, stderr) = tool(
        &root,
        &["admin-conf", "regenerate", "--yes", "--reason", "rehearsal"],
    )?;
    expect("admin-conf regenerate", code, 0, &stderr)?;
    let who = &doc["credentials"][0]["verifiedAs"];
    record(
        ctx,
        &mut steps,
        options.timings,
        Step {
            name: "admin-conf regenerate (admin.conf had expired)".into(),
            elapsed: started.elapsed(),
            detail: format!(
                "proved by SelfSubjectReview: {} in {}",
                who["username"].as_str().unwrap_or("?"),
                who["groups"]
                    .as_array()
                    .map(|g| g
                        .iter()
                        .filter_map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default()
            ),
            timings: None,
        },
    );

    let mut noticed = Vec::new();
    let mut overhead = Vec::new();
    for round in 0..options.rounds.max(1) {
        let suffix = if options.rounds > 1 {
            format!(" (round {})", round + 1)
        } else {
            String::new()
        };
        // Break glass, then, after the migration, put the node back exactly as it was.
        let before_round = read_manifest(&root)?;
        for (name, args) in [
            (
                "extend-tokens enable",
                &["extend-tokens", "enable", "--yes", "--reason", "rehearsal"][..],
            ),
            (
                "revert (after the migration)",
                &["revert", "--yes", "--stale-window", "0s"][..],
            ),
        ] {
            let step = change_step(&root, &format!("{name}{suffix}"), args, 0)?;
            if let Some(t) = step.timings {
                noticed.extend(t.noticed_after_ready_ms);
                overhead.push(t.overhead_ms as i64);
            }
            record(ctx, &mut steps, options.timings, step);
        }
        if read_manifest(&root)? != before_round {
            return Err(Error::Failed(
                "after revert the manifest differs from the original".into(),
            ));
        }
    }

    // A change the apiserver refuses at start-up must be rolled back by the tool itself.
    let manifest_path = root.join("etc/kubernetes/manifests/kube-apiserver.yaml");
    let before =
        std::fs::read(&manifest_path).map_err(|e| Error::io("cannot read", &manifest_path, e))?;
    configure(
        &root,
        &[r#"rejectArgs=["--service-account-extend-token-expiration=true"]"#],
    )?;
    let step = change_step(
        &root,
        "a change the new apiserver rejects is rolled back",
        &["extend-tokens", "enable", "--yes", "--timeout", "60s"],
        1,
    )?;
    configure(&root, &["rejectArgs=[]"])?;
    let after =
        std::fs::read(&manifest_path).map_err(|e| Error::io("cannot read", &manifest_path, e))?;
    if after != before {
        return Err(Error::Failed(
            "the rolled-back manifest differs from the original".into(),
        ));
    }
    record(ctx, &mut steps, options.timings, step);

    let (_, doc, _) = tool(&root, &["status"])?;
    if doc["apiserver"]["health"] != "ok" {
        return Err(Error::Failed(
            "after the rollback the apiserver is not healthy".into(),
        ));
    }
    let (_, doc, _) = tool(&root, &["backups", "list"])?;
    let count = doc["backups"].as_array().map_or(0, Vec::len);
    record(
        ctx,
        &mut steps,
        options.timings,
        Step {
            name: "after the rollback: manifest byte-identical, apiserver healthy".into(),
            elapsed: Duration::ZERO,
            detail: format!("{count} backups, all with checksums"),
            timings: None,
        },
    );

    let report = Rehearsal {
        root: root.clone(),
        kept: sandbox.keep,
        median_noticed_after_ready_ms: median(&mut noticed),
        median_overhead_ms: median(&mut overhead),
        steps: steps
            .iter()
            .map(|s| StepReport {
                name: s.name.clone(),
                ms: s.elapsed.as_millis() as u64,
                detail: s.detail.clone(),
                waited_ms: s.timings.map(|t| t.waited_ms),
                noticed_after_ready_ms: s.timings.and_then(|t| t.noticed_after_ready_ms),
                overhead_ms: s.timings.map(|t| t.overhead_ms),
            })
            .collect(),
        timings: options.timings,
    };
    drop(sandbox);
    ctx.ui.report(&report);
    Ok(())
}
