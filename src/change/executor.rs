//! The one executor. Every mutating command builds a [`Plan`]; this alone decides the order:
//! preflight → unfinished-session check → plan → dry run → gates → confirm → lock → signals →
//! the transaction (write → prove, or roll back) → journal marks → audit. `--dry-run` stops
//! before the first write in exactly one place, here.
use serde::Serialize;

use crate::change::journal::{self, Recorder};
use crate::change::plan::{
    Action, ChangeSettings, Gate, GoingBack, Mark, Plan, PlannedWrite, StaleTokens, Verify,
};
use crate::change::prove::{Prove, Proved, StaticPodRestart};
use crate::change::restart::{self, Before, Expected, Proof};
use crate::change::transaction::{Transaction, Writer};
use crate::credentials::verify::Verified;
use crate::error::{Declined, Error, Result};
use crate::manifest::Manifest;
use crate::node::store::strays::Stray;
use crate::node::store::{audit, lock};
use crate::node::{NodeLayout, StateHome};
use crate::runtime::interrupt;
use crate::survey::migration;
use crate::ui::{Answer, Ui};

/// Where the files a change replaced were backed up.
#[derive(Debug, Clone, Serialize)]
pub struct BackupRef {
    pub id: String,
    pub path: String,
}

/// The restart of kube-apiserver, as a command reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Restart {
    /// No apiserver manifest was written.
    NotNeeded,
    /// Written with `--no-wait`: the kubelet has yet to act.
    Pending,
    Proved,
}

/// What the executor did.
#[derive(Debug, Clone)]
pub enum Executed {
    /// `--dry-run`: the plan was shown, nothing was written.
    DryRun,
    /// The node already is as asked.
    Nothing,
    Changed(Box<ChangeReport>),
}

/// What a change did, as every command's report repeats it.
#[derive(Debug, Clone)]
pub struct ChangeReport {
    /// The journal session this run recorded (none for a proof or a journal update alone).
    pub session: Option<String>,
    pub backup: Option<BackupRef>,
    pub moved_strays: Vec<String>,
    pub restart: RestartReport,
    pub verified: Vec<Verified>,
    /// Components proved on their renewed certificates (`certs renew`).
    pub components: Vec<crate::certs::prove::ComponentProved>,
}

#[derive(Debug, Clone)]
pub enum RestartReport {
    NotNeeded,
    Pending,
    Proved {
        /// The apiserver it replaced (none when a running one was only proved).
        before: Option<Before>,
        proof: Proof,
    },
}

impl Executed {
    pub fn dry_run(&self) -> bool {
        matches!(self, Executed::DryRun)
    }

    /// True when the node was acted on (not a dry run, not nothing to do).
    pub fn changed(&self) -> bool {
        matches!(self, Executed::Changed(_))
    }

    pub fn report(&self) -> Option<&ChangeReport> {
        match self {
            Executed::Changed(report) => Some(report),
            Executed::DryRun | Executed::Nothing => None,
        }
    }

    pub fn session(&self) -> Option<String> {
        self.report().and_then(|r| r.session.clone())
    }

    pub fn backup(&self) -> Option<BackupRef> {
        self.report().and_then(|r| r.backup.clone())
    }

    /// The restart as reported, `None` when the node was not acted on.
    pub fn restart(&self) -> Option<Restart> {
        self.report().map(ChangeReport::restart_state)
    }

    pub fn proof(&self) -> Option<Proof> {
        self.report().and_then(|r| r.proof().cloned())
    }

    pub fn verified(&self) -> &[Verified] {
        self.report().map_or(&[], |r| &r.verified)
    }
}

/// Flattened into every command's report: `session`, `backup`, `movedStrays`, `restart`,
/// `apiserverBefore`, `proof`, each only when there is one.
impl Serialize for ChangeReport {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        if let Some(session) = &self.session {
            map.serialize_entry("session", session)?;
        }
        if let Some(backup) = &self.backup {
            map.serialize_entry("backup", backup)?;
        }
        if !self.moved_strays.is_empty() {
            map.serialize_entry("movedStrays", &self.moved_strays)?;
        }
        map.serialize_entry("restart", &self.restart_state())?;
        if let RestartReport::Proved { before, proof } = &self.restart {
            if let Some(before) = before {
                map.serialize_entry("apiserverBefore", before)?;
            }
            map.serialize_entry("proof", proof)?;
        }
        if !self.verified.is_empty() {
            map.serialize_entry("verified", &self.verified)?;
        }
        if !self.components.is_empty() {
            map.serialize_entry("components", &self.components)?;
        }
        map.end()
    }
}

impl ChangeReport {
    pub fn restart_state(&self) -> Restart {
        match self.restart {
            RestartReport::NotNeeded => Restart::NotNeeded,
            RestartReport::Pending => Restart::Pending,
            RestartReport::Proved { .. } => Restart::Proved,
        }
    }

    pub fn proof(&self) -> Option<&Proof> {
        match &self.restart {
            RestartReport::Proved { proof, .. } => Some(proof),
            _ => None,
        }
    }

    fn idle(restart: RestartReport) -> Self {
        ChangeReport {
            session: None,
            backup: None,
            moved_strays: Vec::new(),
            restart,
            verified: Vec::new(),
            components: Vec::new(),
        }
    }
}

/// A plan carried out, with the facts its command learned while building it.
pub struct Done<T> {
    pub plan: Plan,
    pub executed: Executed,
    pub facts: T,
}

/// How a run ended that did not fail: `T` (the plan carried out, or what a command made of
/// it), or declined.
pub enum Ran<T> {
    Done(T),
    /// The person at the terminal declined the step (`guide`): nothing was changed.
    Declined(Declined),
}

/// Whether this command refuses to start while an earlier change is unfinished (`resume` and
/// `revert` are how such a change is finished, so they do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfinished {
    Refuse,
    Allow,
}

/// Runs a mutating command: `build` reads the node and returns the plan and the facts the
/// command reports from.
pub fn run<T>(
    layout: &NodeLayout,
    ui: &Ui,
    settings: &ChangeSettings,
    unfinished: Unfinished,
    build: impl FnOnce() -> Result<(Plan, T)>,
) -> Result<Ran<Done<T>>> {
    if settings.dry_run {
        if unfinished == Unfinished::Refuse
            && let Ok(j) = journal::Journal::load(layout)
            && let Some(session) = j.unfinished()
        {
            ui.warn(format!(
                "a real run will refuse: {}",
                journal::unfinished_message(layout, session)
            ));
        }
    } else {
        layout.require_privileges()?;
        if *layout.home() == StateHome::Node {
            restart::unpark_manifest(layout, ui)?;
        }
        if unfinished == Unfinished::Refuse {
            journal::refuse_if_unfinished(layout)?;
        }
    }
    let (plan, facts) = build()?;
    let done = |plan, executed| {
        Ok(Ran::Done(Done {
            plan,
            executed,
            facts,
        }))
    };
    if matches!(plan.action, Action::Nothing) {
        return done(plan, Executed::Nothing);
    }
    // The one place a dry run stops: nothing below this line runs without writing.
    if settings.dry_run {
        for warning in dry_run_warnings(layout, &plan, settings) {
            ui.warn(format!("a real run will refuse: {warning}"));
        }
        return done(plan, Executed::DryRun);
    }

    // From here a signal is a request to stop cleanly (exit 130, with a document), not a kill.
    interrupt::install();
    let strays = pass_gates(layout, ui, &plan, settings)?;
    stop_if_interrupted()?;
    ui.info(plan.describe());
    if let Answer::Declined(declined) = ui.confirm(&plan.question)? {
        return Ok(Ran::Declined(declined));
    }
    stop_if_interrupted()?;
    let _lock = lock::acquire(layout)?;
    // Every change is audited, so a change whose audit cannot be written does not start.
    let started = audit::Record::new(&plan.command, settings.reason.as_deref(), "started");
    audit::append(layout, &started).map_err(|source| Error::AuditUnwritable {
        path: layout.audit_log(),
        source,
    })?;
    clean_up_after_killed_runs(layout, ui, &plan);
    if let Some(mark) = &plan.supersedes {
        close(layout, mark, None)?;
    }
    let report = act(layout, ui, &plan, settings, &strays)?;
    if let Some(mark) = &plan.on_success {
        close(layout, mark, report.session.as_deref())?;
    }
    remember_certificates(layout, settings, &plan, &report);
    done(plan, Executed::Changed(Box::new(report)))
}

fn stop_if_interrupted() -> Result<()> {
    if interrupt::interrupted() {
        return Err(Error::InterruptedBeforeChange);
    }
    Ok(())
}

/// What the gates would refuse, said in a dry run (which changes nothing, so refuses nothing).
fn dry_run_warnings(layout: &NodeLayout, plan: &Plan, settings: &ChangeSettings) -> Vec<String> {
    let mut out = Vec::new();
    for gate in &plan.gates {
        match gate {
            Gate::Kubelet if restarts(layout, plan, settings) => {
                if let Err(e) = restart::require_kubelet(layout) {
                    out.push(e.to_string());
                }
            }
            Gate::Strays if !settings.move_strays => {
                for stray in crate::node::store::strays::find(layout) {
                    out.push(format!("{}: {}", stray.path.display(), stray.why));
                }
            }
            _ => {}
        }
    }
    out
}

/// The checks of a real run, in order; the strays to move into the backup.
fn pass_gates(
    layout: &NodeLayout,
    ui: &Ui,
    plan: &Plan,
    settings: &ChangeSettings,
) -> Result<Vec<Stray>> {
    let mut strays = Vec::new();
    for gate in &plan.gates {
        match gate {
            Gate::Kubelet if restarts(layout, plan, settings) => restart::require_kubelet(layout)?,
            Gate::Kubelet => {}
            Gate::Strays => {
                strays = crate::change::write::check_strays(layout, settings.move_strays)?
            }
            Gate::StaleTokens { manifest, session } => {
                let parsed = Manifest::parse(manifest)
                    .map_err(|e| Error::manifest(&layout.apiserver_manifest(), &e))?;
                let check = migration::check(layout, &parsed, *session, settings.stale_window);
                stop_if_interrupted()?;
                migration::confirm_or_refuse(ui, &check, settings.accept_stale_tokens)?;
            }
        }
    }
    Ok(strays)
}

/// Temp files of a run that was killed: removed (under the lock, so none is in flight), and said.
fn clean_up_after_killed_runs(layout: &NodeLayout, ui: &Ui, plan: &Plan) {
    let mut dirs = match layout.home() {
        StateHome::Node => vec![
            layout.tmp_dir(),
            layout.kubernetes_dir(),
            layout.state_dir(),
        ],
        StateHome::User(_) => vec![layout.staging_dir(), layout.state_dir()],
    };
    // A temp file is staged beside its target where /etc/kubernetes/tmp is another mount
    // (/var/lib/kubelet/pki): a killed run's, with a key in it, is swept there too.
    for write in plan.writes() {
        if let Some(dir) = write.path.parent()
            && !dirs.iter().any(|d| d == dir)
        {
            dirs.push(dir.to_path_buf());
        }
    }
    if *layout.home() == StateHome::Node {
        dirs.extend(
            crate::credentials::copies::candidates(layout, &[])
                .iter()
                .filter_map(|copy| copy.parent().map(|d| d.to_path_buf())),
        );
    }
    for path in crate::node::store::remove_stale_temps(layout, &dirs) {
        ui.warn(format!(
            "removed {}, a temp file left by a killed run",
            crate::ui::escape(&layout.node_path(&path))
        ));
    }
}

fn close(layout: &NodeLayout, mark: &Mark, by: Option<&str>) -> Result<()> {
    let step = match by {
        Some(session) => format!("{} by session {session}", mark.step),
        None => mark.step.clone(),
    };
    Recorder::attach(layout, &mark.session).finish(mark.state, &step)
}

fn act(
    layout: &NodeLayout,
    ui: &Ui,
    plan: &Plan,
    settings: &ChangeSettings,
    strays: &[Stray],
) -> Result<ChangeReport> {
    let reason = settings.reason.as_deref();
    match &plan.action {
        Action::Nothing => Ok(ChangeReport::idle(RestartReport::NotNeeded)),
        Action::Write { writes, verify } => change(
            layout,
            ui,
            plan,
            settings,
            Writer::Atomic,
            writes,
            strays,
            verify,
        ),
        Action::External {
            programs,
            files,
            verify,
        } => change(
            layout,
            ui,
            plan,
            settings,
            Writer::Programs(programs),
            files,
            &[],
            verify,
        ),
        Action::Prove {
            manifest: text,
            otherwise,
        } => prove_running(layout, ui, settings, text, otherwise.as_ref()),
        Action::CloseSession => {
            let record = audit::Record::new(&plan.command, reason, "journal updated");
            audit::append(layout, &record).map_err(|e| {
                Error::Failed(format!(
                    "the audit log {} cannot be written ({e}); nothing was changed",
                    layout.audit_log().display()
                ))
            })?;
            Ok(ChangeReport::idle(RestartReport::NotNeeded))
        }
    }
}

/// The plan writes the manifest and waits for the kubelet to act on it.
fn restarts(layout: &NodeLayout, plan: &Plan, settings: &ChangeSettings) -> bool {
    settings.wait.is_some() && manifest_write(layout, plan.writes()).is_some()
}

fn manifest_write<'a>(layout: &NodeLayout, writes: &'a [PlannedWrite]) -> Option<&'a PlannedWrite> {
    let manifest = layout.apiserver_manifest();
    writes.iter().find(|w| w.path == manifest)
}

/// One change through the transaction: its journal session, and its proofs (the restart when
/// the manifest is written, then the credentials).
#[allow(clippy::too_many_arguments)]
fn change(
    layout: &NodeLayout,
    ui: &Ui,
    plan: &Plan,
    settings: &ChangeSettings,
    writer: Writer,
    writes: &[PlannedWrite],
    strays: &[Stray],
    verify: &Verify,
) -> Result<ChangeReport> {
    let reason = settings.reason.as_deref();
    let mut proofs = Vec::new();
    let session = match manifest_write(layout, writes) {
        Some(manifest) => {
            let restart = static_pod_restart(layout, ui, manifest, settings)?;
            let session = manifest_session(layout, plan, reason, manifest);
            proofs.push(Prove::StaticPodRestart(Box::new(restart)));
            session
        }
        None => journal::new_files_session(
            &plan.command,
            reason,
            file_versions(layout, writes, matches!(writer, Writer::Atomic)),
        ),
    };
    match verify {
        Verify::Credentials(checks) => proofs.push(Prove::Credentials(checks.clone())),
        Verify::Components(checks) => {
            proofs.extend(checks.iter().cloned().map(Prove::Component));
        }
        Verify::Nothing => {}
    }
    let committed = Transaction {
        layout,
        ui,
        command: &plan.command,
        reason,
        writes,
        writer,
        strays,
        session,
        proofs,
    }
    .run()?;
    if let (Some(deadline), Some(_)) = (plan.manifest.revert_after, manifest_write(layout, writes))
    {
        let scheduled = crate::change::schedule::schedule(layout, ui, &committed.session, deadline);
        if let Err(e) = Recorder::attach(layout, &committed.session)
            .update(|s| s.revert_after = Some(scheduled))
        {
            ui.warn(format!(
                "the journal could not record the scheduled revert: {e}"
            ));
        }
    }
    let mut report = ChangeReport::idle(RestartReport::NotNeeded);
    report.session = Some(committed.session);
    report.backup = Some(BackupRef {
        id: committed.backup.backup.id.clone(),
        path: layout.node_path(&committed.backup.backup.dir),
    });
    report.moved_strays = committed.backup.moved_strays;
    for proved in committed.proved {
        match proved {
            Proved::Restarted { before, proof } => {
                report.restart = RestartReport::Proved {
                    before: Some(before),
                    proof,
                }
            }
            Proved::RestartPending => report.restart = RestartReport::Pending,
            Proved::Credentials(verified) => report.verified = verified,
            Proved::Component(proved) => report.components.push(proved),
        }
    }
    Ok(report)
}

/// What the new manifest must run, and the apiserver it replaces.
fn static_pod_restart(
    layout: &NodeLayout,
    ui: &Ui,
    manifest: &PlannedWrite,
    settings: &ChangeSettings,
) -> Result<StaticPodRestart> {
    let path = layout.apiserver_manifest();
    let new = Expected::from_manifest(&String::from_utf8_lossy(&manifest.new))
        .map_err(|e| Error::manifest(&path, &e))?;
    let old = Expected::from_manifest(&old_text(manifest)).ok();
    let before = match (&settings.wait, &old) {
        (Some(_), Some(old)) => restart::observe_before(layout, old),
        _ => Before {
            process: None,
            container_id: None,
            config_hash: None,
        },
    };
    if settings.wait.is_some() && before.process.is_none() {
        ui.warn("no kube-apiserver is running for this manifest right now; the change will be proved by the one the kubelet starts");
    }
    Ok(StaticPodRestart {
        new,
        old,
        before,
        wait: settings.wait,
        on_interrupt: settings.on_interrupt,
    })
}

fn old_text(manifest: &PlannedWrite) -> String {
    String::from_utf8_lossy(manifest.old.as_deref().unwrap_or_default()).into_owned()
}

/// The journal session of a change of the manifest: its two versions, what it reverts, the
/// stale-token counter at its start, its revert deadline.
fn manifest_session(
    layout: &NodeLayout,
    plan: &Plan,
    reason: Option<&str>,
    manifest: &PlannedWrite,
) -> journal::Session {
    let stale_tokens_at_start = match plan.manifest.stale_tokens {
        StaleTokens::Measure => Manifest::parse(&old_text(manifest))
            .ok()
            .and_then(|m| migration::stale_tokens_total(layout, &m)),
        StaleTokens::Carried(value) => value,
    };
    let mut session = journal::new_session(
        &plan.command,
        reason,
        manifest.old.as_deref().unwrap_or_default(),
        &String::from_utf8_lossy(&manifest.new),
    );
    session.reverts = plan.manifest.reverts.clone();
    session.stale_tokens_at_start = stale_tokens_at_start;
    session.revert_after = plan
        .manifest
        .revert_after
        .map(|deadline| journal::RevertSchedule {
            deadline: crate::runtime::clock::rfc3339(deadline),
            deadline_unix: deadline,
            timer: None,
            note: Some("not scheduled yet: the change is under way".into()),
        });
    session
}

/// Each file a change writes, with its hashes before and (where known in advance) after.
fn file_versions(
    layout: &NodeLayout,
    writes: &[PlannedWrite],
    after_known: bool,
) -> Vec<journal::FileVersion> {
    writes
        .iter()
        .map(|w| journal::FileVersion {
            path: layout.node_path(&w.path),
            sha256_before: w.old.as_deref().map(crate::node::store::sha256_hex),
            sha256_after: after_known.then(|| crate::node::store::sha256_hex(&w.new)),
        })
        .collect()
}

/// Nothing to write: prove the running apiserver; if it cannot be proved, go back.
fn prove_running(
    layout: &NodeLayout,
    ui: &Ui,
    settings: &ChangeSettings,
    text: &str,
    otherwise: Option<&GoingBack>,
) -> Result<ChangeReport> {
    // `--no-wait`: nothing to write and nothing to wait for; the restart stays unproved.
    let Some(wait) = settings.wait else {
        ui.warn("--no-wait: the running kube-apiserver was not checked; nothing was proved");
        return Ok(ChangeReport::idle(RestartReport::Pending));
    };
    let failure = match restart::prove_running(layout, ui, text, wait) {
        Ok(proof) => {
            return Ok(ChangeReport::idle(RestartReport::Proved {
                before: None,
                proof,
            }));
        }
        Err(e) => e,
    };
    let Some(going_back) = otherwise else {
        return Err(failure);
    };
    ui.warn(format!("it could not be proved ({failure}); going back"));
    let back = Plan {
        command: "revert".into(),
        manifest: crate::change::plan::ManifestSession {
            reverts: Some(going_back.mark.session.clone()),
            stale_tokens: StaleTokens::Carried(None),
            revert_after: None,
        },
        ..Plan::new("revert", "", Action::Nothing)
    };
    let report = change(
        layout,
        ui,
        &back,
        settings,
        Writer::Atomic,
        &going_back.writes,
        &[],
        &Verify::Nothing,
    )?;
    close(layout, &going_back.mark, report.session.as_deref())?;
    Err(Error::Failed(format!(
        "{failure}; the original manifest is back and proved healthy (session {})",
        report.session.unwrap_or_default()
    )))
}

/// Certificates issued are audited, and remembered by the break-glass session in effect.
fn remember_certificates(
    layout: &NodeLayout,
    settings: &ChangeSettings,
    plan: &Plan,
    report: &ChangeReport,
) {
    if plan.certificates.is_empty() {
        return;
    }
    let mut record = audit::Record::new(&plan.command, settings.reason.as_deref(), "issued");
    record.backup = report.backup.as_ref().map(|b| b.path.clone());
    record.certificates = plan.certificates.clone();
    audit::append_or_warn(layout, &record);
    if let Some(session) = journal::Journal::load(layout)
        .ok()
        .and_then(|j| j.revertable().map(|s| s.id.clone()))
    {
        let serials: Vec<String> = plan.certificates.iter().map(|c| c.serial.clone()).collect();
        let _ = Recorder::attach(layout, &session).update(|s| s.credentials_issued.extend(serials));
    }
}
