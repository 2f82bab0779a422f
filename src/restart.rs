//! Restart, prove, roll back. After the manifest is written, the kubelet must replace the
//! apiserver; this proves that the NEW process runs the NEW argument list and is healthy, or
//! puts the old files back and proves the OLD apiserver healthy again.
//!
//! "Restarted" is proved, not assumed: the identity of the `kube-apiserver` process serving the
//! manifest's port (pid + start time) must change, its command line must be exactly the
//! manifest's argument list, and `/livez` then `/readyz` must answer ok over TLS verified with
//! the cluster CA.
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::apiserver::client::{ApiClient, Endpoint};
use crate::apiserver::process::{self, ProcessIdentity};
use crate::apiserver::{logs, runtime};
use crate::change::{self, Applied, PlannedWrite};
use crate::error::{Error, Result};
use crate::interrupt;
use crate::journal::{self, State};
use crate::manifest::Manifest;
use crate::node::NodeLayout;
use crate::store::audit;
use crate::store::strays::Stray;
use crate::ui::Ui;

const POLL: Duration = Duration::from_millis(250);

/// How long to wait, and when to nudge a kubelet that has not reacted.
#[derive(Debug, Clone, Copy)]
pub struct WaitOptions {
    pub timeout: Duration,
    pub nudge_after: Duration,
}

/// What the manifest says the running apiserver must look like.
#[derive(Debug, Clone)]
pub struct Expected {
    /// The arguments after the program name, exactly as the manifest gives them.
    pub args: Vec<String>,
    pub port: u16,
    pub endpoint: Endpoint,
    pub advertise_endpoint: Option<String>,
}

impl Expected {
    pub fn from_manifest(
        text: &str,
    ) -> std::result::Result<Expected, crate::manifest::ManifestError> {
        let manifest = Manifest::parse(text)?;
        let (host, port) = manifest.probe_endpoint();
        Ok(Expected {
            args: manifest
                .argument_values()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            port: manifest.secure_port(),
            endpoint: Endpoint { host, port },
            advertise_endpoint: manifest.advertise_endpoint.clone(),
        })
    }

    fn matches(&self, process: &process::ApiserverProcess) -> bool {
        process
            .args
            .get(1..)
            .is_some_and(|args| args == self.args.as_slice())
    }
}

/// The apiserver as it was before the change.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Before {
    pub process: Option<ProcessIdentity>,
    pub container_id: Option<String>,
    pub config_hash: Option<String>,
}

/// Evidence that the intended apiserver runs and is healthy.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Proof {
    pub pid: i32,
    pub started: Option<String>,
    pub container_id: Option<String>,
    pub config_hash: Option<String>,
    /// How long the wait took, from the write to "healthy".
    pub waited_ms: u64,
    /// When the tool saw /readyz answer ok (Unix ms), for measuring its reaction time.
    pub noticed_unix_ms: i64,
    pub nudged: bool,
}

#[derive(Debug)]
enum WaitFailure {
    Timeout(String),
    CrashLoop(String),
    Interrupted,
    Injected(String),
}

impl std::fmt::Display for WaitFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitFailure::Timeout(last) => write!(f, "timed out; last seen: {last}"),
            WaitFailure::CrashLoop(last) => write!(f, "the new apiserver keeps exiting ({last})"),
            WaitFailure::Interrupted => write!(f, "interrupted by a signal"),
            WaitFailure::Injected(what) => write!(f, "{what}"),
        }
    }
}

/// Refuses to change the manifest when no kubelet would act on it.
pub fn require_kubelet(layout: &NodeLayout) -> Result<()> {
    if process::kubelet_running(layout.root()) {
        return Ok(());
    }
    Err(Error::Refused(
        "the kubelet is not running, so nothing would restart kube-apiserver after the change.\n  \
         what to do: start it (systemctl start kubelet; journalctl -u kubelet to see why it stopped), \
         or pass --no-wait to only edit the file"
            .into(),
    ))
}

pub fn observe_before(layout: &NodeLayout, expected: &Expected) -> Before {
    let process = process::find_apiserver(expected.port).map(|p| p.identity);
    let config_hash = process.as_ref().and_then(|_| {
        runtime().block_on(async {
            let client = ApiClient::new(layout, &expected.endpoint).ok()?;
            client
                .mirror_config_hash(expected.advertise_endpoint.as_deref())
                .await
        })
    });
    Before {
        process,
        container_id: process::crictl_container_id(),
        config_hash,
    }
}

/// Progress on stderr: a spinner on a terminal, a log line per phase otherwise.
struct Progress<'a> {
    ui: &'a Ui,
    tty: bool,
    phase: String,
    started: Instant,
}

impl<'a> Progress<'a> {
    fn new(ui: &'a Ui) -> Self {
        Progress {
            ui,
            tty: std::io::stderr().is_terminal() && !ui.json(),
            phase: String::new(),
            started: Instant::now(),
        }
    }

    fn show(&mut self, phase: String) {
        let elapsed = self.started.elapsed().as_secs_f32();
        if self.tty {
            const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
            let frame = FRAMES[(self.started.elapsed().as_millis() / 250 % 4) as usize];
            crate::ui::stderr_raw(&format!("\r\x1b[2K{frame} {phase} ({elapsed:.1}s)"));
        } else if phase != self.phase {
            self.ui.info(format!("[{elapsed:5.1}s] {phase}"));
        }
        self.phase = phase;
    }

    fn done(&self) {
        if self.tty {
            crate::ui::stderr_raw("\r\x1b[2K");
        }
    }
}

/// Moves the manifest out of the kubelet's sight and back, as kubeadm's documentation
/// recommends for restarting a static pod; or stops the container through crictl.
fn nudge(layout: &NodeLayout, ui: &Ui, expected_port: u16, deadline: Instant) {
    if let Some(id) = process::crictl_container_id() {
        ui.info(format!("nudging the kubelet: crictl stop {id}"));
        let _ = duct::cmd!("crictl", "stop", &id)
            .stdout_null()
            .stderr_null()
            .unchecked()
            .run();
        return;
    }
    let manifest = layout.apiserver_manifest();
    let parked = parked_path(layout);
    ui.info(format!(
        "nudging the kubelet: moving the manifest to {} and back (if this is interrupted: mv {} {})",
        parked.display(),
        parked.display(),
        manifest.display()
    ));
    if std::fs::rename(&manifest, &parked).is_err() {
        return;
    }
    let _ = crate::store::sync_dir(&layout.manifests_dir());
    injected_during_nudge();
    // The kubelet relists every 20 s: give it that and a little, but never past our deadline.
    let deadline = deadline.min(Instant::now() + Duration::from_secs(25));
    while Instant::now() < deadline && process::find_apiserver(expected_port).is_some() {
        std::thread::sleep(POLL);
    }
    if let Err(e) = std::fs::rename(&parked, &manifest) {
        ui.warn(format!(
            "could not move the manifest back ({e}): run mv {} {}",
            parked.display(),
            manifest.display()
        ));
    }
    let _ = crate::store::sync_dir(&layout.manifests_dir());
}

/// Where a nudge parks the manifest while the kubelet notices it is gone (same filesystem).
pub fn parked_path(layout: &NodeLayout) -> std::path::PathBuf {
    layout
        .tmp_dir()
        .join("kube-apiserver.yaml.kubeadm-recover-nudge")
}

/// A run killed during a nudge leaves the manifest parked: every command that changes the node
/// first puts it back (the nudge would have done the same a moment later).
pub fn unpark_manifest(layout: &NodeLayout, ui: &Ui) -> Result<()> {
    let parked = parked_path(layout);
    let manifest = layout.apiserver_manifest();
    if !parked.exists() {
        return Ok(());
    }
    if manifest.exists() {
        return Err(Error::Refused(format!(
            "{} exists and so does {} (parked by an interrupted nudge): compare them and remove the one that is wrong",
            manifest.display(),
            parked.display()
        )));
    }
    std::fs::rename(&parked, &manifest)
        .map_err(|e| Error::io("cannot move back the parked manifest", &parked, e))?;
    let _ = crate::store::sync_dir(&layout.manifests_dir());
    ui.warn(format!(
        "an interrupted nudge had parked the manifest in {}; it is back in {}",
        parked.display(),
        manifest.display()
    ));
    Ok(())
}

/// Waits for an apiserver running `expected` that is healthy. With `replacing`, the process
/// must not be that one (a restart must have happened).
fn wait_for(
    layout: &NodeLayout,
    ui: &Ui,
    expected: &Expected,
    replacing: Option<&ProcessIdentity>,
    options: WaitOptions,
    allow_nudge: bool,
) -> std::result::Result<Proof, WaitFailure> {
    let started = Instant::now();
    let deadline = started + options.timeout;
    let mut progress = Progress::new(ui);
    let mut nudged = false;
    let mut seen_new: Vec<ProcessIdentity> = Vec::new();
    let logs_before = logs::attempt_files(layout);
    let why = |attempts: &[std::path::PathBuf]| {
        attempts
            .last()
            .map(|log| format!("; its log {} ends:\n{}", log.display(), logs::tail(log, 5)))
            .unwrap_or_default()
    };
    let runtime = runtime();
    let client = runtime.block_on(async { ApiClient::new(layout, &expected.endpoint) });
    let client = match client {
        Ok(c) => c,
        Err(e) => return Err(WaitFailure::Timeout(format!("cannot build a client: {e}"))),
    };
    if let (true, Err(e)) = (allow_nudge, injected_during_wait()) {
        return Err(WaitFailure::Injected(e.to_string()));
    }
    let result = loop {
        let now = Instant::now();
        if allow_nudge && interrupt::interrupted() {
            break Err(WaitFailure::Interrupted);
        }
        let attempts = logs::new_attempts(layout, &logs_before);
        if now >= deadline {
            break Err(WaitFailure::Timeout(format!(
                "{}{}",
                progress.phase,
                why(&attempts)
            )));
        }
        match process::find_apiserver(expected.port) {
            Some(p) if Some(&p.identity) == replacing => {
                if allow_nudge && !nudged && started.elapsed() >= options.nudge_after {
                    progress.done();
                    ui.warn(format!(
                        "the kubelet has not restarted kube-apiserver (pid {}) after {}s",
                        p.identity.pid,
                        started.elapsed().as_secs()
                    ));
                    nudge(layout, ui, expected.port, deadline);
                    nudged = true;
                }
                progress.show(format!(
                    "waiting for the kubelet to replace kube-apiserver (pid {})",
                    p.identity.pid
                ));
            }
            Some(p) if !expected.matches(&p) => {
                progress.show(format!(
                    "kube-apiserver pid {} runs other arguments than the manifest's",
                    p.identity.pid
                ));
            }
            Some(p) => {
                if !seen_new.contains(&p.identity) {
                    seen_new.push(p.identity.clone());
                }
                let health = runtime.block_on(client.healthy());
                match health {
                    Ok(()) => {
                        let config_hash = runtime.block_on(
                            client.mirror_config_hash(expected.advertise_endpoint.as_deref()),
                        );
                        break Ok(Proof {
                            pid: p.identity.pid,
                            started: process::started_unix(&p.identity).map(crate::clock::rfc3339),
                            container_id: process::crictl_container_id(),
                            config_hash,
                            waited_ms: started.elapsed().as_millis() as u64,
                            noticed_unix_ms: crate::clock::now_unix_ms(),
                            nudged,
                        });
                    }
                    Err(e) => progress.show(format!(
                        "kube-apiserver pid {} started; not healthy yet ({e})",
                        p.identity.pid
                    )),
                }
            }
            None => {
                if attempts.len() >= 3 || seen_new.len() >= 3 {
                    let count = attempts.len().max(seen_new.len());
                    break Err(WaitFailure::CrashLoop(format!(
                        "{count} attempts exited{}",
                        why(&attempts)
                    )));
                }
                progress.show(match attempts.len() {
                    0 => "no kube-apiserver process on the port yet".to_string(),
                    n => format!(
                        "no kube-apiserver on the port; the kubelet has made {n} attempt(s)"
                    ),
                });
            }
        }
        std::thread::sleep(POLL.saturating_sub(now.elapsed()));
    };
    progress.done();
    result
}

/// Proves that an apiserver running `manifest_text` is up and healthy (no restart required):
/// for `resume`, and for a revert that finds the original already in place.
pub fn prove_running(
    layout: &NodeLayout,
    ui: &Ui,
    manifest_text: &str,
    options: WaitOptions,
) -> Result<Proof> {
    let expected = Expected::from_manifest(manifest_text)
        .map_err(|e| Error::manifest(&layout.apiserver_manifest(), &e))?;
    wait_for(layout, ui, &expected, None, options, true).map_err(|e| Error::Failed(e.to_string()))
}

/// What to do on SIGINT/SIGTERM/SIGHUP while a change is under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnInterrupt {
    /// Put the original back, prove the old apiserver healthy, exit 130.
    Rollback,
    /// Finish the change and prove it (an SSH session dropping must not leave it half-done).
    Continue,
}

/// A change of the manifest (and maybe other files), journaled step by step.
pub struct Change<'a> {
    pub command: &'a str,
    pub reason: Option<&'a str>,
    pub writes: &'a [PlannedWrite],
    pub strays: &'a [Stray],
    /// None: write and return (`--no-wait`).
    pub wait: Option<WaitOptions>,
    pub on_interrupt: OnInterrupt,
    /// The session this change reverts, if it is a revert.
    pub reverts: Option<String>,
    pub stale_tokens_at_start: Option<u64>,
}

/// What a change reports.
pub struct Outcome {
    pub applied: Applied,
    pub before: Before,
    pub proof: Option<Proof>,
    pub session: String,
}

fn text_of(bytes: Option<&Vec<u8>>) -> String {
    String::from_utf8_lossy(bytes.map_or(&[][..], |b| b)).into_owned()
}

/// Journal, back up, write atomically, then (unless `--no-wait`) prove the restart; on failure
/// or interrupt put the files back and prove the old apiserver healthy. The caller holds the lock.
pub fn execute(layout: &NodeLayout, ui: &Ui, change: Change) -> Result<Outcome> {
    let manifest_path = layout.apiserver_manifest();
    let manifest_write = change
        .writes
        .iter()
        .find(|w| w.path == manifest_path)
        .expect("the manifest is written");
    let new_text = text_of(Some(&manifest_write.new));
    let old_text = text_of(manifest_write.old.as_ref());
    let new_expected =
        Expected::from_manifest(&new_text).map_err(|e| Error::manifest(&manifest_path, &e))?;
    let old_expected = Expected::from_manifest(&old_text).ok();
    let before = match (&change.wait, &old_expected) {
        (Some(_), Some(old)) => observe_before(layout, old),
        _ => Before {
            process: None,
            container_id: None,
            config_hash: None,
        },
    };
    if change.wait.is_some() && before.process.is_none() {
        ui.warn("no kube-apiserver is running for this manifest right now; the change will be proved by the one the kubelet starts");
    }

    let mut session = journal::new_session(
        change.command,
        change.reason,
        manifest_write.old.as_deref().unwrap_or_default(),
        &new_text,
    );
    session.reverts = change.reverts.clone();
    session.stale_tokens_at_start = change.stale_tokens_at_start;
    let recorder = journal::Recorder::begin(layout, session)?;
    crate::failpoint!("after-lock");
    if interrupt::interrupted() {
        recorder.finish(State::RolledBack, "interrupted before any change")?;
        return Err(Error::Interrupted(
            "interrupted before anything was changed; the node is as before".into(),
        ));
    }

    let prepared = match change::prepare(
        layout,
        ui,
        change.command,
        change.reason,
        change.writes,
        change.strays,
    ) {
        Ok(p) => p,
        Err(e) => {
            recorder.finish(State::RolledBack, "failed before writing")?;
            return Err(e);
        }
    };
    let backup_id = prepared.backup.id.clone();
    let backup_path = layout.node_path(&prepared.backup.dir);
    recorder.update(|s| {
        s.backup_id = Some(backup_id.clone());
        s.backup = Some(backup_path.clone());
        s.step = "backed-up".into();
    })?;
    let applied = match change::commit(
        layout,
        ui,
        change.command,
        change.reason,
        change.writes,
        prepared,
    ) {
        Ok(a) => a,
        Err(e) => {
            return Err(settle_failed_write(
                layout,
                ui,
                &recorder,
                &change,
                old_expected.as_ref(),
                &backup_path,
                e,
            ));
        }
    };
    recorder.step("written")?;
    let Some(options) = change.wait else {
        recorder.finish(State::Done, "written; restart pending (--no-wait)")?;
        return Ok(Outcome {
            applied,
            before,
            proof: None,
            session: recorder.id.clone(),
        });
    };

    recorder.step("waiting")?;
    ui.info("waiting for the kubelet to restart kube-apiserver with the new manifest");
    let mut result = wait_for(
        layout,
        ui,
        &new_expected,
        before.process.as_ref(),
        options,
        true,
    );
    while matches!(result, Err(WaitFailure::Interrupted))
        && change.on_interrupt == OnInterrupt::Continue
    {
        ui.warn("interrupted: finishing the change first (--on-interrupt continue)");
        interrupt::clear();
        result = wait_for(
            layout,
            ui,
            &new_expected,
            before.process.as_ref(),
            options,
            true,
        );
    }
    match result {
        Ok(proof) => {
            recorder.finish(State::Done, "proved")?;
            record(layout, change.command, change.reason, "proved", &applied);
            if interrupt::interrupted() && change.on_interrupt == OnInterrupt::Continue {
                ui.warn("the change was finished and proved before stopping");
            }
            Ok(Outcome {
                applied,
                before,
                proof: Some(proof),
                session: recorder.id.clone(),
            })
        }
        Err(failure) => {
            recorder.step("rolling-back")?;
            let interrupted = matches!(failure, WaitFailure::Interrupted);
            let error = roll_back(
                layout,
                ui,
                &change,
                &applied,
                old_expected.as_ref(),
                options,
                failure,
            );
            let (state, step) = match &error {
                Error::ManualActionNeeded(_) => (State::Failed, "rollback failed"),
                _ => (State::RolledBack, "rolled back and proved"),
            };
            recorder.finish(state, step)?;
            Err(match (interrupted, error) {
                (true, Error::Failed(msg)) => Error::Interrupted(msg),
                (_, e) => e,
            })
        }
    }
}

fn injected_during_wait() -> Result<()> {
    crate::failpoint!("during-wait");
    Ok(())
}

/// Only the kill form matters here: the nudge has no error path to take.
fn injected_during_nudge() {
    let _ = nudge_failpoint();
}

fn nudge_failpoint() -> Result<()> {
    crate::failpoint!("during-nudge");
    Ok(())
}

fn injected_during_rollback() -> Result<()> {
    crate::failpoint!("during-rollback");
    Ok(())
}

/// A write failed half-way (an error, not a crash): put back what was written and, if the
/// apiserver may have seen the new manifest, prove the old one healthy again.
fn settle_failed_write(
    layout: &NodeLayout,
    ui: &Ui,
    recorder: &journal::Recorder,
    change: &Change,
    old_expected: Option<&Expected>,
    backup: &str,
    error: Error,
) -> Error {
    let failed = change::put_back(layout, change.writes);
    if !failed.is_empty() {
        let _ = recorder.finish(State::Failed, "write failed and could not be put back");
        return Error::ManualActionNeeded(format!(
            "{error}; putting the files back failed too: {}. The originals are in {backup}",
            failed.join("; ")
        ));
    }
    if let (Some(options), Some(old)) = (change.wait, old_expected)
        && let Err(e) = wait_for(layout, ui, old, None, options, false)
    {
        let _ = recorder.finish(
            State::Failed,
            "write failed; the old apiserver is not healthy",
        );
        return Error::ManualActionNeeded(format!(
            "{error}; the files are back, but the old kube-apiserver is not healthy ({e}). The originals are in {backup}"
        ));
    }
    let _ = recorder.finish(State::RolledBack, "write failed; put back");
    match error {
        Error::Failed(msg) => Error::Failed(format!(
            "{msg}; the files are put back, the node is as before"
        )),
        other => other,
    }
}

fn record(
    layout: &NodeLayout,
    command: &str,
    reason: Option<&str>,
    outcome: &str,
    applied: &Applied,
) {
    let mut record = audit::Record::new(command, reason, outcome);
    record.backup = Some(layout.node_path(&applied.backup.dir));
    if let Err(e) = audit::append(&layout.audit_log(), &record) {
        crate::ui::stderr_line(&format!("warning: could not write the audit log: {e}"));
    }
}

fn roll_back(
    layout: &NodeLayout,
    ui: &Ui,
    change: &Change,
    applied: &Applied,
    old_expected: Option<&Expected>,
    options: WaitOptions,
    failure: WaitFailure,
) -> Error {
    let (command, reason) = (change.command, change.reason);
    let backup = applied.backup.dir.display().to_string();
    ui.warn(format!(
        "the change was not proved: {failure}; rolling back from {backup}"
    ));
    let unrestored = match injected_during_rollback() {
        Ok(()) => change::put_back(layout, change.writes),
        Err(e) => vec![e.to_string()],
    };
    let manual = |what: String| {
        record(layout, command, reason, "rollback failed", applied);
        Error::ManualActionNeeded(format!(
            "{failure}, and the rollback failed: {what}.\n  The original files are in {backup} (backup.json says where each belongs).\n  \
             Put each back: cp <backup>/<name> /etc/kubernetes/tmp/<name>.new && mv /etc/kubernetes/tmp/<name>.new <original path>\n  \
             then watch: crictl ps --name kube-apiserver; and check: kubectl --kubeconfig /etc/kubernetes/admin.conf get --raw /readyz\n  \
             or run `kubeadm-recover revert`, which does exactly that and proves it"
        ))
    };
    if !unrestored.is_empty() {
        return manual(format!("could not write {}", unrestored.join("; ")));
    }
    let Some(old_expected) = old_expected else {
        return manual("the original manifest does not describe an apiserver to wait for".into());
    };
    ui.info("original files restored; waiting for the old kube-apiserver to be healthy again");
    // The rollback itself is not interruptible: it is how an interrupt is handled.
    match wait_for(layout, ui, old_expected, None, options, false) {
        Ok(_) => {
            record(layout, command, reason, "rolled back", applied);
            Error::Failed(format!(
                "{failure}.\n  Rolled back: the original files are in place and the old kube-apiserver is healthy again; the node is as before.\n  \
                 The file as it was before the attempt is in {backup}."
            ))
        }
        Err(e) => manual(format!(
            "the old kube-apiserver did not become healthy either ({e})"
        )),
    }
}
