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
    /// With real binaries: the process holding the node's network namespace.
    netns_holder: Option<Child>,
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
        if let Some(mut holder) = self.netns_holder.take() {
            let _ = holder.kill();
            let _ = holder.wait();
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

/// Where the rehearsal's commands run: the sandbox root and, for a node of real binaries, its
/// network namespace (kubeadm's fixed ports and advertise address live only there).
struct Target {
    root: PathBuf,
    netns: Option<std::fs::File>,
}

impl Target {
    /// Makes `command` join the node's network namespace, if it has one.
    fn enter(&self, command: &mut Command) {
        if let Some(netns) = &self.netns {
            crate::apiserver::process::join_network_namespace(command, netns);
        }
    }
}

/// Starts the simulator's network-namespace holder; returns it and its namespace.
fn hold_network_namespace() -> Result<(Child, std::fs::File)> {
    let mut holder = Command::new(simulator()?)
        .arg("netns")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Failed(format!("cannot run {SIMULATOR} netns: {e}")))?;
    let mut ready = String::new();
    let stdout = holder.stdout.take().expect("piped");
    let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut ready);
    if ready.trim() != "ready" {
        let _ = holder.kill();
        let _ = holder.wait();
        return Err(Error::Failed(format!(
            "{SIMULATOR} netns could not make the node's network namespace (it needs root and iproute2)"
        )));
    }
    let path = format!("/proc/{}/ns/net", holder.id());
    let netns = std::fs::File::open(&path).map_err(|e| Error::Failed(format!("{path}: {e}")))?;
    Ok((holder, netns))
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
    crate::node::on_path(SIMULATOR).ok_or_else(|| {
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
    simulate_in(None, args)
}

fn simulate_in(target: Option<&Target>, args: &[&std::ffi::OsStr]) -> Result<String> {
    let mut command = Command::new(simulator()?);
    command.args(args).stdin(Stdio::null());
    if let Some(target) = target {
        target.enter(&mut command);
    }
    let out = command
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
fn spawn_kubelet(target: &Target) -> Result<Child> {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(simulator()?);
    command
        .arg("kubelet")
        .arg("--root")
        .arg(&target.root)
        .stdin(Stdio::null());
    target.enter(&mut command);
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
fn tool(target: &Target, args: &[&str]) -> Result<(i32, Value, String)> {
    let mut command = Command::new(exe()?);
    command
        .arg("--root")
        .arg(&target.root)
        .args(args)
        .args(["-o", "json", "--non-interactive"])
        .env_remove("KUBEADM_RECOVER_ROOT")
        .stdin(Stdio::null());
    target.enter(&mut command);
    let out = command
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
    let layout = crate::node::NodeLayout::new(Some(root.to_path_buf())).ok()?;
    let (_, newest) = crate::apiserver::logs::latest(&layout)?;
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

fn change_step(target: &Target, name: &str, args: &[&str], want: i32) -> Result<Step> {
    let root = &target.root;
    let started = Instant::now();
    let (code, doc, stderr) = tool(target, args)?;
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

/// `--dir`: a new or empty directory to build in, or (with `--serve`) a sandbox `rehearse`
/// built. Never `/`, never a directory holding anything else: a rehearsal writes a CA key and
/// an admin.conf there.
fn check_dir(dir: &Path, serve: bool) -> Result<PathBuf> {
    if dir.canonicalize().is_ok_and(|d| d == Path::new("/")) {
        return Err(Error::Refused(
            "--dir /: a rehearsal never runs on a real root; give it a directory of its own".into(),
        ));
    }
    let built = dir.join("var/lib/kubeadm-recover-sim").is_dir();
    if serve {
        if !built {
            return Err(Error::Refused(format!(
                "{} is not a sandbox node made by `kubeadm-recover rehearse --keep`",
                dir.display()
            )));
        }
        return Ok(dir.to_path_buf());
    }
    let empty = match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
            true
        }
        Err(e) => return Err(Error::io("cannot read", dir, e)),
    };
    if !empty {
        return Err(Error::Refused(format!(
            "{} is not empty: a rehearsal builds its node only in a new or empty directory \
             (to run a kept sandbox again: --dir {} --serve)",
            dir.display(),
            dir.display()
        )));
    }
    Ok(dir.to_path_buf())
}

fn start_sandbox(options: &RehearseOptions) -> Result<Sandbox> {
    let (root, temp) = match &options.dir {
        Some(dir) => (check_dir(dir, options.serve)?, None),
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
        netns_holder: None,
        keep: options.keep || options.dir.is_some(),
        _temp: temp,
    })
}

fn wait_until_serving(target: &Target, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let (_, doc, _) = tool(target, &["status"])?;
        if doc["apiserver"]["health"] == "ok" {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(Error::Failed("kube-apiserver did not come up".into()))
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
            let root = self.root.display().to_string();
            out.push_str(&format!(
                "sandbox kept: {}\n  (run its kubelet and apiserver again with: {})\n",
                crate::ui::command_line(["kubeadm-recover", "--root", &root, "status"]),
                crate::ui::command_line(["kubeadm-recover", "rehearse", "--dir", &root, "--serve"])
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

/// The rehearsal as it goes: each step is printed as it finishes and kept for the report.
struct Rehearsing<'a> {
    ctx: &'a Context,
    target: Target,
    /// The real binaries to lay a new node out with.
    kube_bin: Option<PathBuf>,
    /// The node runs the real etcd and kube-apiserver (new with --kube-bin, or kept and served).
    real: bool,
    show_timings: bool,
    steps: Vec<Step>,
    noticed: Vec<i64>,
    overhead: Vec<i64>,
}

impl Rehearsing<'_> {
    fn record(&mut self, step: Step) {
        let mut line = format!(
            "  ok  {:<58} {:>6.2}s  {}",
            step.name,
            step.elapsed.as_secs_f64(),
            step.detail
        );
        if let (true, Some(t)) = (self.show_timings, step.timings) {
            line.push_str(&format!(
                "\n      wait {} ms; noticed {} after the apiserver was ready; tool overhead {} ms",
                t.waited_ms,
                t.noticed_after_ready_ms
                    .map_or("?".into(), |ms| format!("{ms} ms")),
                t.overhead_ms
            ));
        }
        if !self.ctx.ui.json() {
            // A progress line: the report at the end says whether stdout took the result.
            let _ = crate::ui::stdout_write(&format!("{line}\n"));
        }
        if let Some(t) = step.timings {
            self.noticed.extend(t.noticed_after_ready_ms);
            self.overhead.push(t.overhead_ms as i64);
        }
        self.steps.push(step);
    }

    fn timed(&mut self, name: String, started: Instant, detail: String) {
        self.record(Step {
            name,
            elapsed: started.elapsed(),
            detail,
            timings: None,
        });
    }

    fn build_node(&mut self, options: &RehearseOptions) -> Result<()> {
        let started = Instant::now();
        let root = self.target.root.as_os_str();
        if let Some(bin) = &self.kube_bin {
            simulate(&[
                "node".as_ref(),
                "--root".as_ref(),
                root,
                "--kube-bin".as_ref(),
                bin.as_os_str(),
            ])?;
            self.timed(
                "lay the node out with the real kubeadm (init phase certs, kubeconfig, etcd, control-plane)".into(),
                started,
                String::new(),
            );
            return Ok(());
        }
        let key_type = clap::ValueEnum::to_possible_value(&options.key_type)
            .expect("every key type has a name")
            .get_name()
            .to_string();
        simulate(&[
            "node".as_ref(),
            "--root".as_ref(),
            root,
            "--kubernetes-version".as_ref(),
            options.kubernetes_version.as_ref(),
            "--key-type".as_ref(),
            key_type.as_ref(),
            "--admin-expired".as_ref(),
        ])?;
        self.timed(
            format!(
                "build a kubeadm v{} node (CA, certificates, kubeconfigs, manifest)",
                options.kubernetes_version
            ),
            started,
            String::new(),
        );
        Ok(())
    }

    fn start_kubelet(&mut self, sandbox: &mut Sandbox) -> Result<()> {
        let started = Instant::now();
        sandbox.kubelet = Some(spawn_kubelet(&self.target)?);
        if !self.real {
            wait_until_serving(&self.target, Duration::from_secs(30))?;
            self.timed(
                "start the simulated kubelet; kube-apiserver comes up".into(),
                started,
                String::new(),
            );
            return Ok(());
        }
        wait_until_serving(&self.target, Duration::from_secs(120))?;
        // What `kubeadm init` does next: kubeadm-config, and cluster-admin for admin.conf's group.
        simulate_in(
            Some(&self.target),
            &[
                "upload-config".as_ref(),
                "--root".as_ref(),
                self.target.root.as_os_str(),
            ],
        )?;
        // Locked out from here on, as the simulated node is from the start.
        simulate(&[
            "expire-admin".as_ref(),
            "--root".as_ref(),
            self.target.root.as_os_str(),
        ])?;
        self.timed(
            "start the simulated kubelet; the real etcd and kube-apiserver come up; admin.conf expires".into(),
            started,
            String::new(),
        );
        Ok(())
    }

    fn status(&mut self) -> Result<()> {
        let started = Instant::now();
        let (code, doc, stderr) = tool(&self.target, &["status"])?;
        expect("status", code, 0, &stderr)?;
        let expired = doc["credentials"][0]["expired"] == true;
        self.timed(
            "status".into(),
            started,
            format!(
                "flag {}; kube-apiserver pid {} healthy: {}; admin.conf {}",
                doc["manifest"]["extendTokenExpiration"]["state"]
                    .as_str()
                    .unwrap_or("?"),
                doc["apiserver"]["pid"],
                doc["apiserver"]["health"].as_str().unwrap_or("?"),
                if expired { "EXPIRED" } else { "valid" }
            ),
        );
        Ok(())
    }

    /// The node starts locked out: admin.conf expired. Re-issue it and prove it.
    fn regenerate_admin(&mut self) -> Result<()> {
        let started = Instant::now();
        let (code, doc, stderr) = tool(
            &self.target,
            &["admin-conf", "regenerate", "--yes", "--reason", "rehearsal"],
        )?;
        expect("admin-conf regenerate", code, 0, &stderr)?;
        let who = &doc["credentials"][0]["verifiedAs"];
        let groups: Vec<&str> = who["groups"]
            .as_array()
            .map(|g| g.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        self.timed(
            "admin-conf regenerate (admin.conf had expired)".into(),
            started,
            format!(
                "proved by SelfSubjectReview: {} in {}",
                who["username"].as_str().unwrap_or("?"),
                groups.join(", ")
            ),
        );
        Ok(())
    }

    /// Break glass, then, after the migration, put the node back exactly as it was.
    fn break_glass(&mut self, rounds: u32) -> Result<()> {
        for round in 0..rounds.max(1) {
            let suffix = if rounds > 1 {
                format!(" (round {})", round + 1)
            } else {
                String::new()
            };
            let before_round = read_manifest(&self.target.root)?;
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
                let step = change_step(&self.target, &format!("{name}{suffix}"), args, 0)?;
                self.record(step);
            }
            if read_manifest(&self.target.root)? != before_round {
                return Err(Error::Failed(
                    "after revert the manifest differs from the original".into(),
                ));
            }
        }
        Ok(())
    }

    /// A change the apiserver refuses at start-up must be rolled back by the tool itself.
    fn rejected_change(&mut self) -> Result<()> {
        let before = read_manifest(&self.target.root)?;
        configure(
            &self.target.root,
            &[r#"rejectArgs=["--service-account-extend-token-expiration=true"]"#],
        )?;
        let step = change_step(
            &self.target,
            "a change the new apiserver rejects is rolled back",
            &["extend-tokens", "enable", "--yes", "--timeout", "60s"],
            1,
        )?;
        configure(&self.target.root, &["rejectArgs=[]"])?;
        if read_manifest(&self.target.root)? != before {
            return Err(Error::Failed(
                "the rolled-back manifest differs from the original".into(),
            ));
        }
        self.record(step);
        let (_, doc, _) = tool(&self.target, &["status"])?;
        if doc["apiserver"]["health"] != "ok" {
            return Err(Error::Failed(
                "after the rollback the apiserver is not healthy".into(),
            ));
        }
        let (_, doc, _) = tool(&self.target, &["backups", "list"])?;
        let count = doc["backups"].as_array().map_or(0, Vec::len);
        self.record(Step {
            name: "after the rollback: manifest byte-identical, apiserver healthy".into(),
            elapsed: Duration::ZERO,
            detail: format!("{count} backups, all with checksums"),
            timings: None,
        });
        Ok(())
    }

    fn report(mut self, kept: bool) -> Rehearsal {
        Rehearsal {
            root: self.target.root,
            kept,
            median_noticed_after_ready_ms: median(&mut self.noticed),
            median_overhead_ms: median(&mut self.overhead),
            steps: self
                .steps
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
            timings: self.show_timings,
        }
    }
}

/// `--kube-bin`: a directory with the three real binaries, used as root.
fn check_kube_bin(dir: &Path) -> Result<PathBuf> {
    let missing: Vec<&str> = ["kubeadm", "kube-apiserver", "etcd"]
        .into_iter()
        .filter(|name| !dir.join(name).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(Error::Refused(format!(
            "--kube-bin {}: {} missing; it needs kubeadm, kube-apiserver and etcd (the official \
             release binaries, or the ones tests/upstream/build.sh builds)",
            dir.display(),
            missing.join(", ")
        )));
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(Error::Refused(
            "--kube-bin needs root: kubeadm and the pods run chrooted into the sandbox, in a network namespace of their own".into(),
        ));
    }
    dir.canonicalize()
        .map_err(|e| Error::io("cannot read", dir, e))
}

pub fn run(ctx: &Context, options: &RehearseOptions) -> Result<()> {
    let kube_bin = options
        .kube_bin
        .as_deref()
        .map(check_kube_bin)
        .transpose()?;
    let mut sandbox = start_sandbox(options)?;
    let real = kube_bin.is_some()
        || (options.serve
            && sandbox
                .root
                .join("var/lib/kubeadm-recover-sim/kubeadm.yaml")
                .is_file());
    let netns = if real {
        let (holder, netns) = hold_network_namespace()?;
        sandbox.netns_holder = Some(holder);
        Some(netns)
    } else {
        None
    };
    let mut rehearsing = Rehearsing {
        ctx,
        target: Target {
            root: sandbox.root.clone(),
            netns,
        },
        kube_bin,
        real,
        show_timings: options.timings,
        steps: Vec::new(),
        noticed: Vec::new(),
        overhead: Vec::new(),
    };
    if !ctx.ui.json() {
        let what = match &rehearsing.kube_bin {
            Some(bin) => format!(
                "a node laid out by the real kubeadm, running the real etcd and kube-apiserver from {}",
                bin.display()
            ),
            None if real => "a node of real binaries".into(),
            None => "a simulated kubeadm node".into(),
        };
        crate::ui::stdout_write(&format!(
            "rehearsal on {what} in {}\n",
            sandbox.root.display()
        ))?;
    }
    if options.serve {
        rehearsing.start_kubelet(&mut sandbox)?;
        let how = match &sandbox.netns_holder {
            // Its apiserver listens only inside the rehearsal's network namespace.
            Some(holder) => format!(
                "nsenter --net=/proc/{}/ns/net kubeadm-recover --root {} status",
                holder.id(),
                sandbox.root.display()
            ),
            None => format!("kubeadm-recover --root {} status", sandbox.root.display()),
        };
        ctx.ui.info(format!(
            "serving: point the tool at it with `{how}`; Ctrl-C stops it"
        ));
        let _ = sandbox.kubelet.as_mut().map(|k| k.wait());
        return Ok(());
    }
    rehearsing.build_node(options)?;
    rehearsing.start_kubelet(&mut sandbox)?;
    rehearsing.status()?;
    rehearsing.regenerate_admin()?;
    rehearsing.break_glass(options.rounds)?;
    rehearsing.rejected_change()?;
    let report = rehearsing.report(sandbox.keep);
    drop(sandbox);
    ctx.ui.report(&report)?;
    Ok(())
}
