//! The one executor. Every mutating command builds a [`Plan`]; this alone decides the order:
//! preflight → unfinished-session check → plan → dry run → gates → confirm → lock → signals →
//! write → prove (or roll back) → journal → audit. `--dry-run` stops before the first write in
//! exactly one place, here.
mod files;
mod manifest;

use serde::Serialize;

use crate::change::journal::{self, Recorder};
use crate::change::plan::{Action, ChangeSettings, Gate, GoingBack, Mark, Plan, PlannedWrite};
use crate::change::restart::{self, Before, Proof};
use crate::change::write as change;
use crate::credentials::verify::Verified;
use crate::error::{Error, Result};
use crate::manifest as manifest_engine;
use crate::node::NodeLayout;
use crate::node::store::strays::Stray;
use crate::node::store::{audit, lock};
use crate::runtime::interrupt;
use crate::survey::migration;
use crate::ui::Ui;

/// Where the files a change replaced were backed up.
#[derive(Debug, Clone, Serialize)]
pub struct BackupRef {
    pub id: String,
    pub path: String,
}

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
pub struct Executed {
    pub dry_run: bool,
    /// The plan had nothing to do.
    pub nothing: bool,
    /// The journal session this run recorded, if it changed the manifest.
    pub session: Option<String>,
    pub backup: Option<BackupRef>,
    pub moved_strays: Vec<String>,
    pub before: Option<Before>,
    pub proof: Option<Proof>,
    pub restart: Restart,
    pub verified: Vec<Verified>,
}

impl Executed {
    fn idle(dry_run: bool, nothing: bool) -> Self {
        Executed {
            dry_run,
            nothing,
            session: None,
            backup: None,
            moved_strays: Vec::new(),
            before: None,
            proof: None,
            restart: Restart::NotNeeded,
            verified: Vec::new(),
        }
    }

    /// True when files were written (not a dry run, not nothing to do).
    pub fn changed(&self) -> bool {
        !self.dry_run && !self.nothing
    }
}

/// Whether this command refuses to start while an earlier change is unfinished (`resume` and
/// `revert` are how such a change is finished, so they do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfinished {
    Refuse,
    Allow,
}

/// Runs a mutating command: `build` reads the node and returns the plan.
pub fn run(
    layout: &NodeLayout,
    ui: &Ui,
    settings: &ChangeSettings,
    unfinished: Unfinished,
    build: impl FnOnce() -> Result<Plan>,
) -> Result<(Plan, Executed)> {
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
        restart::unpark_manifest(layout, ui)?;
        if unfinished == Unfinished::Refuse {
            journal::refuse_if_unfinished(layout)?;
        }
    }
    let plan = build()?;
    if matches!(plan.action, Action::Nothing) {
        return Ok((plan, Executed::idle(settings.dry_run, true)));
    }
    // The one place a dry run stops: nothing below this line runs without writing.
    if settings.dry_run {
        for warning in dry_run_warnings(layout, &plan, settings) {
            ui.warn(format!("a real run will refuse: {warning}"));
        }
        return Ok((plan, Executed::idle(true, false)));
    }

    // From here a signal is a request to stop cleanly (exit 130, with a document), not a kill.
    interrupt::install();
    let strays = pass_gates(layout, ui, &plan, settings)?;
    stop_if_interrupted()?;
    ui.info(plan.describe());
    ui.confirm(&plan.question)?;
    stop_if_interrupted()?;
    let _lock = lock::acquire(layout)?;
    // Every change is audited, so a change whose audit cannot be written does not start.
    let started = audit::Record::new(&plan.command, settings.reason.as_deref(), "started");
    audit::append(layout, &started).map_err(|e| {
        Error::Refused(format!(
            "the audit log {} cannot be written ({e}); every change is audited, so nothing was changed. \
             Free space or fix it, then run this again",
            layout.audit_log().display()
        ))
    })?;
    clean_up_after_killed_runs(layout, ui);
    if let Some(mark) = &plan.supersedes {
        close(layout, mark, None)?;
    }
    let executed = act(layout, ui, &plan, settings, &strays)?;
    if let Some(mark) = &plan.on_success {
        close(layout, mark, executed.session.as_deref())?;
    }
    remember_certificates(layout, settings, &plan, &executed);
    Ok((plan, executed))
}

fn stop_if_interrupted() -> Result<()> {
    if interrupt::interrupted() {
        return Err(Error::Interrupted(
            "interrupted before anything was changed; the node is as before".into(),
        ));
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
            Gate::Strays => strays = change::check_strays(layout, settings.move_strays)?,
            Gate::StaleTokens { manifest, session } => {
                let parsed = manifest_engine::Manifest::parse(manifest)
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
fn clean_up_after_killed_runs(layout: &NodeLayout, ui: &Ui) {
    let mut dirs = vec![
        layout.tmp_dir(),
        layout.path("/etc/kubernetes"),
        layout.state_dir(),
    ];
    dirs.extend(
        crate::credentials::copies::candidates(layout, &[])
            .iter()
            .filter_map(|copy| copy.parent().map(|d| d.to_path_buf())),
    );
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
) -> Result<Executed> {
    let reason = settings.reason.as_deref();
    match &plan.action {
        Action::Nothing => Ok(Executed::idle(false, true)),
        Action::Write { writes, verify } => {
            if touches_manifest(layout, writes) {
                let executed = change_manifest(layout, ui, plan, settings, strays, writes)?;
                files::verify_or_restore(layout, ui, &plan.command, reason, verify, writes).map(
                    |verified| Executed {
                        verified,
                        ..executed
                    },
                )
            } else {
                files::write(layout, ui, &plan.command, reason, writes, strays, verify)
            }
        }
        Action::Prove {
            manifest: text,
            otherwise,
        } => prove(layout, ui, plan, settings, text, otherwise.as_ref()),
        Action::External {
            programs,
            files: targets,
            verify,
        } => files::external(layout, ui, &plan.command, reason, programs, targets, verify),
        Action::CloseSession => {
            let record = audit::Record::new(&plan.command, reason, "journal updated");
            audit::append(layout, &record).map_err(|e| {
                Error::Failed(format!(
                    "the audit log {} cannot be written ({e}); nothing was changed",
                    layout.audit_log().display()
                ))
            })?;
            Ok(Executed::idle(false, false))
        }
    }
}

/// The plan writes the manifest and waits for the kubelet to act on it.
fn restarts(layout: &NodeLayout, plan: &Plan, settings: &ChangeSettings) -> bool {
    settings.wait.is_some() && touches_manifest(layout, plan.writes())
}

fn touches_manifest(layout: &NodeLayout, writes: &[PlannedWrite]) -> bool {
    let manifest = layout.apiserver_manifest();
    writes.iter().any(|w| w.path == manifest)
}

fn change_manifest(
    layout: &NodeLayout,
    ui: &Ui,
    plan: &Plan,
    settings: &ChangeSettings,
    strays: &[Stray],
    writes: &[PlannedWrite],
) -> Result<Executed> {
    let stale_tokens_at_start = if plan.measure_stale_tokens {
        let old = writes
            .iter()
            .find(|w| w.path == layout.apiserver_manifest())
            .and_then(|w| w.old.as_deref())
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|t| manifest_engine::Manifest::parse(t).ok());
        old.and_then(|m| migration::stale_tokens_total(layout, &m))
    } else {
        plan.stale_tokens_at_start
    };
    let outcome = manifest::execute(
        layout,
        ui,
        manifest::Change {
            command: &plan.command,
            reason: settings.reason.as_deref(),
            writes,
            strays,
            wait: settings.wait,
            on_interrupt: settings.on_interrupt,
            reverts: plan.reverts.clone(),
            stale_tokens_at_start,
            revert_after: plan.revert_after,
        },
    )?;
    if let Some(deadline) = plan.revert_after {
        let scheduled = crate::change::schedule::schedule(layout, ui, &outcome.session, deadline);
        if let Err(e) = journal::Recorder::attach(layout, &outcome.session)
            .update(|s| s.revert_after = Some(scheduled))
        {
            ui.warn(format!(
                "the journal could not record the scheduled revert: {e}"
            ));
        }
    }
    Ok(Executed {
        dry_run: false,
        nothing: false,
        session: Some(outcome.session),
        backup: Some(BackupRef {
            id: outcome.applied.backup.id.clone(),
            path: layout.node_path(&outcome.applied.backup.dir),
        }),
        moved_strays: outcome.applied.moved_strays,
        restart: if outcome.proof.is_some() {
            Restart::Proved
        } else {
            Restart::Pending
        },
        before: outcome.proof.is_some().then_some(outcome.before),
        proof: outcome.proof,
        verified: Vec::new(),
    })
}

/// Nothing to write: prove the running apiserver; if it cannot be proved, go back.
fn prove(
    layout: &NodeLayout,
    ui: &Ui,
    plan: &Plan,
    settings: &ChangeSettings,
    text: &str,
    otherwise: Option<&GoingBack>,
) -> Result<Executed> {
    // `--no-wait`: nothing to write and nothing to wait for; the restart stays unproved.
    let Some(wait) = settings.wait else {
        ui.warn("--no-wait: the running kube-apiserver was not checked; nothing was proved");
        return Ok(Executed {
            restart: Restart::Pending,
            ..Executed::idle(false, false)
        });
    };
    let failure = match restart::prove_running(layout, ui, text, wait) {
        Ok(proof) => {
            return Ok(Executed {
                proof: Some(proof),
                restart: Restart::Proved,
                ..Executed::idle(false, false)
            });
        }
        Err(e) => e,
    };
    let Some(going_back) = otherwise else {
        return Err(failure);
    };
    ui.warn(format!("it could not be proved ({failure}); going back"));
    let back = Plan {
        command: "revert".into(),
        reverts: Some(going_back.mark.session.clone()),
        measure_stale_tokens: false,
        stale_tokens_at_start: None,
        ..plan.clone()
    };
    let executed = change_manifest(
        layout,
        ui,
        &back,
        &ChangeSettings {
            wait: Some(wait),
            ..settings.clone()
        },
        &[],
        &going_back.writes,
    )?;
    close(layout, &going_back.mark, executed.session.as_deref())?;
    Err(Error::Failed(format!(
        "{failure}; the original manifest is back and proved healthy (session {})",
        executed.session.unwrap_or_default()
    )))
}

/// Certificates issued are audited, and remembered by the break-glass session in effect.
fn remember_certificates(
    layout: &NodeLayout,
    settings: &ChangeSettings,
    plan: &Plan,
    executed: &Executed,
) {
    if plan.certificates.is_empty() || !executed.changed() {
        return;
    }
    let mut record = audit::Record::new(&plan.command, settings.reason.as_deref(), "issued");
    record.backup = executed.backup.as_ref().map(|b| b.path.clone());
    record.certificates = plan.certificates.clone();
    let _ = audit::append(layout, &record);
    if let Some(session) = journal::Journal::load(layout)
        .ok()
        .and_then(|j| j.revertable().map(|s| s.id.clone()))
    {
        let serials: Vec<String> = plan.certificates.iter().map(|c| c.serial.clone()).collect();
        let _ = Recorder::attach(layout, &session).update(|s| s.credentials_issued.extend(serials));
    }
}
