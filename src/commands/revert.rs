//! `revert` and `resume`: put back what a recorded change did, or finish it; the executor
//! writes and proves.
use serde::Serialize;

use super::Context;
use crate::change::executor::{self, BackupRef, Done, Ran, Restart, Unfinished};
use crate::change::journal::{Journal, ManifestVersion, Session, State};
use crate::change::plan::{self, ChangeSettings, Gate, GoingBack, Mark, Plan, PlannedWrite};
use crate::change::restart::Proof;
use crate::error::{Error, ExitStatus, Result};
use crate::manifest::{FlagState, Manifest, Target, edit_extend_tokens};
use crate::node::read_apiserver_manifest as read_manifest;
use crate::node::store::{backup, sha256_hex};
use crate::ui::{Report, unified_diff};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevertResult {
    /// The session reverted.
    pub session: String,
    pub how: String,
    pub dry_run: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub diff: String,
    /// The session that recorded this revert (when it wrote the manifest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revert_session: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<Restart>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proof: Option<Proof>,
    #[serde(skip)]
    plan: String,
    #[serde(skip)]
    credentials_kept: bool,
}

impl Report for RevertResult {
    const KIND: &'static str = "RevertResult";

    fn text(&self) -> String {
        if self.dry_run {
            return format!("{}dry run: nothing was written\n{}", self.plan, self.diff);
        }
        let mut out = match (&self.revert_session, &self.proof) {
            (None, Some(p)) => format!(
                "session {} reverted: the original manifest runs and is healthy (pid {})\n",
                self.session, p.pid
            ),
            (_, proof) => format!(
                "session {} reverted ({}){}\n",
                self.session,
                self.how,
                match (proof, self.restart) {
                    (Some(p), _) => format!("; proved: kube-apiserver pid {} healthy", p.pid),
                    (None, Some(Restart::Pending)) => "; restart pending (--no-wait)".into(),
                    (None, _) =>
                        "; no restart needed (the apiserver manifest was not touched)".into(),
                }
            ),
        };
        if let Some(backup) = &self.backup {
            out.push_str(&format!("  backup of what it replaced: {}\n", backup.path));
        }
        if self.credentials_kept {
            out.push_str(
                "  admin credentials issued during the session are kept (the old ones had expired)\n",
            );
        }
        out
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResumeResult {
    /// The unfinished session.
    pub session: String,
    pub how: String,
    pub dry_run: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub diff: String,
    /// The new session that finished it, when the write had never happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_as: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proof: Option<Proof>,
    #[serde(skip)]
    plan: String,
}

impl Report for ResumeResult {
    const KIND: &'static str = "ResumeResult";

    fn text(&self) -> String {
        if self.dry_run {
            return format!("{}dry run: nothing was written\n{}", self.plan, self.diff);
        }
        match (&self.resumed_as, &self.proof) {
            (None, Some(p)) => format!(
                "session {} finished: kube-apiserver pid {} runs the new manifest and is healthy\n",
                self.session, p.pid
            ),
            (Some(new), proof) => format!(
                "session {} finished as session {new}{}\n",
                self.session,
                if proof.is_some() { ", proved" } else { "" }
            ),
            (None, None) => format!("session {} finished\n", self.session),
        }
    }
}

fn pick(
    journal: &Journal,
    wanted: Option<&str>,
    fallback: impl Fn(&Journal) -> Option<&Session>,
    none: &str,
) -> Result<Session> {
    match wanted {
        Some(id) => journal.find(id).cloned().ok_or_else(|| {
            Error::Usage(format!(
                "no session {id} in the journal; see `kubeadm-recover status`"
            ))
        }),
        None => fallback(journal)
            .cloned()
            .ok_or_else(|| Error::Usage(none.to_string())),
    }
}

/// Why `revert` without `--session` has nothing to do, naming what the latest change was.
fn nothing_to_revert(journal: &Journal) -> String {
    match journal.latest_change() {
        None => "nothing to revert: the journal records no change".into(),
        Some(latest) => match (&latest.reverts, latest.state) {
            (Some(undone), _) => format!(
                "nothing to revert: the latest change, session {}, already reverted session {undone}. \
                 Earlier sessions are reverted only when named: `kubeadm-recover revert --session ID` (see `status`)",
                latest.id
            ),
            (None, state) => format!(
                "nothing to revert: the latest change, session {} ({}), is {state:?}. \
                 Earlier sessions are reverted only when named: `kubeadm-recover revert --session ID`",
                latest.id, latest.command
            ),
        },
    }
}

fn is_unfinished(session: &Session) -> bool {
    matches!(session.state, State::InProgress | State::Failed)
}

/// The original manifest bytes of a session, from its backup (checksums verified), or from
/// any backup holding bytes with the recorded hash.
fn original_bytes(ctx: &Context, session: &Session) -> Result<Vec<u8>> {
    let manifest = ctx.layout.node_path(&ctx.layout.apiserver_manifest());
    let (original, _, _) = manifest_parts(session)?;
    backed_up_bytes(ctx, session, &manifest, &original.sha256).ok_or_else(|| {
        Error::Refused(format!(
            "no intact backup holds the original manifest of session {} (sha256 {}); restore it by hand",
            session.id, original.sha256
        ))
    })
}

/// The manifest's versions of a session that changed it.
fn manifest_parts(session: &Session) -> Result<(&ManifestVersion, &ManifestVersion, &str)> {
    session.manifest().ok_or_else(|| {
        Error::Refused(format!(
            "session {} changed other files than the manifest",
            session.id
        ))
    })
}

/// The bytes a session backed up for `node_path` with hash `sha256`: from the session's own
/// backup, else from any intact backup holding those very bytes (checksums verified).
fn backed_up_bytes(
    ctx: &Context,
    session: &Session,
    node_path: &str,
    sha256: &str,
) -> Option<Vec<u8>> {
    let from = |b: &backup::Backup| -> Option<Vec<u8>> {
        if !b.verify(&ctx.layout).is_empty() {
            return None;
        }
        let file = b
            .files
            .iter()
            .find(|f| f.path == node_path && f.sha256 == sha256)?;
        b.read(&ctx.layout, file).ok()
    };
    let own = session
        .backup_id
        .as_deref()
        .and_then(|id| backup::find(&ctx.layout, id))
        .and_then(|b| b.ok());
    own.as_ref().and_then(from).or_else(|| {
        backup::list(&ctx.layout)
            .into_iter()
            .rev()
            .filter_map(|b| b.ok())
            .find_map(|b| from(&b))
    })
}

fn manifest_write(ctx: &Context, current: &str, new: Vec<u8>) -> PlannedWrite {
    PlannedWrite {
        path: ctx.layout.apiserver_manifest(),
        old: Some(current.as_bytes().to_vec()),
        new,
        ownership: None,
    }
}

/// What going back to a session's original means now: the exact original bytes when the
/// manifest is what the session wrote; only the flag (minimal edit) when it changed since.
/// `None`: the original is already in place.
fn revert_text(ctx: &Context, target: &Session, current: &str) -> Result<(Option<String>, String)> {
    let path = ctx.layout.apiserver_manifest();
    let current_sha = sha256_hex(current.as_bytes());
    let (original, intended, _) = manifest_parts(target)?;
    if current_sha == original.sha256 {
        return Ok((None, "the manifest is already the original".into()));
    }
    if current_sha == intended.sha256 {
        let text = String::from_utf8(original_bytes(ctx, target)?)
            .map_err(|_| Error::Refused("the original manifest is not UTF-8".into()))?;
        return Ok((Some(text), "the original bytes come back exactly".into()));
    }
    if is_unfinished(target) {
        return Err(Error::Refused(format!(
            "{} is neither the original nor the version session {} wrote; someone changed it. Check it by hand, \
             then `{}` hands the session over to you \
             (and `backups restore` can put the original back)",
            ctx.layout.node_path(&path),
            target.id,
            crate::change::journal::abandon_command(&target.id)
        )));
    }
    let goal = match &original.flag {
        Some(FlagState::Explicit { value }) => Target::Set(*value),
        Some(FlagState::Absent { .. }) => Target::Remove,
        Some(FlagState::Invalid { value }) => {
            return Err(Error::Refused(format!(
                "the original manifest had an invalid value {value:?}; choose with extend-tokens enable|disable"
            )));
        }
        None => {
            return Err(Error::Refused(
                "the original manifest could not be read; choose with extend-tokens enable|disable"
                    .into(),
            ));
        }
    };
    let edit = edit_extend_tokens(current, goal).map_err(|e| Error::manifest(&path, &e))?;
    Ok((
        edit.changed.then_some(edit.new_text),
        "the manifest changed since (an upgrade or another edit): only the flag goes back".into(),
    ))
}

/// Whether going from `current` to `after` turns token extension off (explicitly, or back to
/// an old default of false): then stale-token users must be checked first.
fn turns_off(current: &str, after: &str) -> bool {
    let effective = |text: &str| {
        Manifest::parse(text)
            .ok()
            .and_then(|m| m.extend_tokens().state.effective())
    };
    effective(after) == Some(false) && effective(current) != Some(false)
}

pub fn revert(
    ctx: &Context,
    wanted: Option<&str>,
    settings: &ChangeSettings,
    fleet_lease: bool,
) -> Result<ExitStatus> {
    let layout = &ctx.layout;
    let lease = if fleet_lease && !settings.dry_run {
        let held = crate::change::fleet::acquire_for_revert(layout, wanted, settings)?;
        ctx.ui.info(format!(
            "took the fleet lease kube-system/{}; every other apiserver is ready",
            crate::change::fleet::LEASE_NAME
        ));
        Some(held)
    } else {
        None
    };
    let outcome = executor::run(layout, &ctx.ui, settings, Unfinished::Allow, || {
        let journal = Journal::load(layout)?;
        let target = pick(
            &journal,
            wanted,
            |j| j.unfinished().or_else(|| j.revertable()),
            &nothing_to_revert(&journal),
        )?;
        if !is_unfinished(&target) && target.state != State::Done {
            return Err(Error::Usage(format!(
                "session {} is already {:?}",
                target.id, target.state
            )));
        }
        if !target.is_manifest() {
            let plan = files_revert_plan(ctx, &target)?;
            return Ok((
                plan,
                (target, "the previous files come back exactly".to_string()),
            ));
        }
        let current = read_manifest(layout)?;
        let (new_text, how) = revert_text(ctx, &target, &current)?;
        let final_state = if is_unfinished(&target) {
            State::RolledBack
        } else {
            State::Reverted
        };
        let action = match &new_text {
            None => plan::Action::Prove {
                manifest: current.clone(),
                otherwise: None,
            },
            Some(text) => plan::Action::Write {
                writes: vec![manifest_write(ctx, &current, text.clone().into_bytes())],
                verify: plan::Verify::Nothing,
            },
        };
        let mut plan = Plan::new("revert", format!("revert session {}?", target.id), action)
            .step(format!(
                "revert session {} ({}, started {}): {how}",
                target.id, target.command, target.started
            ))
            .gate(Gate::Kubelet)
            .gate(Gate::Strays);
        if let Some(text) = &new_text {
            plan.diff = unified_diff(
                &layout.node_path(&layout.apiserver_manifest()),
                &current,
                text,
            );
            if turns_off(&current, text) {
                plan = plan.gate(Gate::StaleTokens {
                    manifest: current.clone(),
                    session: Some((target.started_unix, target.stale_tokens_at_start)),
                });
            }
        }
        plan.manifest.reverts = Some(target.id.clone());
        plan.on_success = Some(Mark {
            session: target.id.clone(),
            state: final_state,
            step: if new_text.is_some() {
                "reverted".into()
            } else {
                "reverted: the original was in place and is proved".into()
            },
        });
        Ok((plan, (target, how)))
    });
    // After the proof (or the rollback's): the next node's apiserver may restart now.
    if let Some(lease) = lease
        && let Err(e) = lease.release()
    {
        ctx.ui.warn(format!(
            "could not give back the fleet lease kube-system/{} ({e}); it expires by itself",
            crate::change::fleet::LEASE_NAME
        ));
    }
    let Done {
        plan,
        executed,
        facts: (target, how),
    } = match outcome? {
        Ran::Done(done) => done,
        Ran::Declined(declined) => return Ok(ExitStatus::Declined(declined)),
    };
    if !executed.dry_run()
        && target
            .revert_after
            .as_ref()
            .is_some_and(|r| r.timer.is_some())
    {
        // Reverted (by hand, or by the timer itself): its scheduled revert has nothing to do.
        crate::change::schedule::cancel(layout, &ctx.ui, Some(&target.id));
    }
    ctx.ui.report(&RevertResult {
        session: target.id,
        how,
        dry_run: executed.dry_run(),
        diff: plan.diff.clone(),
        revert_session: executed.session(),
        backup: executed.backup(),
        restart: (!executed.dry_run()).then(|| executed.restart().unwrap_or(Restart::NotNeeded)),
        proof: executed.proof(),
        plan: plan.steps_text(),
        credentials_kept: !executed.dry_run() && !target.credentials_issued.is_empty(),
    })?;
    Ok(ExitStatus::Success)
}

/// Going back on a change of files (credentials): every file that no longer holds its
/// original bytes gets them back from the session's backup.
fn files_revert_plan(ctx: &Context, target: &Session) -> Result<Plan> {
    let mut writes = Vec::new();
    let mut steps = Vec::new();
    for file in target.files() {
        let path = ctx.layout.path(&file.path);
        let now = ctx.layout.fs().read(&path).ok();
        if now.as_deref().map(sha256_hex) == file.sha256_before {
            continue;
        }
        let Some(before) = &file.sha256_before else {
            steps.push(format!(
                "leave {} (it did not exist before; remove it by hand if it should not)",
                file.path
            ));
            continue;
        };
        let original = backed_up_bytes(ctx, target, &file.path, before).ok_or_else(|| {
            Error::Refused(format!(
                "no intact backup holds the previous {} of session {}; restore it by hand",
                file.path, target.id
            ))
        })?;
        steps.push(format!("put back the previous {}", file.path));
        writes.push(PlannedWrite {
            path,
            old: now,
            new: original,
            ownership: None,
        });
    }
    let action = if writes.is_empty() {
        plan::Action::CloseSession
    } else {
        plan::Action::Write {
            writes,
            verify: plan::Verify::Nothing,
        }
    };
    let mut plan = Plan::new("revert", format!("revert session {}?", target.id), action);
    plan.steps = steps;
    plan.manifest.reverts = Some(target.id.clone());
    plan.on_success = Some(Mark {
        session: target.id.clone(),
        state: if is_unfinished(target) {
            State::RolledBack
        } else {
            State::Reverted
        },
        step: "reverted: the previous files are back".into(),
    });
    Ok(plan)
}

pub fn resume(
    ctx: &Context,
    wanted: Option<&str>,
    settings: &ChangeSettings,
) -> Result<ExitStatus> {
    let layout = &ctx.layout;
    let target = pick(
        &Journal::load(layout)?,
        wanted,
        |j| j.unfinished(),
        "nothing to resume: no unfinished change in the journal",
    )?;
    if !is_unfinished(&target) {
        return Err(Error::Usage(format!(
            "session {} is {:?}, not unfinished",
            target.id, target.state
        )));
    }
    if !target.is_manifest() {
        return Err(Error::Usage(format!(
            "session {} ({}) changed credentials: it is not resumed (that would issue yet another \
             certificate). `kubeadm-recover revert` puts the previous files back; then run it again",
            target.id, target.command
        )));
    }
    // A change resumed as a new session keeps the reason it was started with.
    let settings = ChangeSettings {
        reason: settings.reason.clone().or_else(|| target.reason.clone()),
        ..settings.clone()
    };
    let ran = executor::run(layout, &ctx.ui, &settings, Unfinished::Allow, || {
        let current = read_manifest(layout)?;
        let current_sha = sha256_hex(current.as_bytes());
        let question = format!("finish session {} ({})?", target.id, target.command);
        let (_, intended, intended_text) = manifest_parts(&target)?;
        let (plan, how) = if current_sha == intended.sha256 {
            // Written already: prove it; if it cannot be proved, go back and prove that.
            let how = "the manifest holds the new version; proving the restart";
            // Without an intact backup of the original there is nowhere to go back to; the
            // proof may still succeed.
            let going_back = original_bytes(ctx, &target).ok().map(|original| GoingBack {
                writes: vec![manifest_write(ctx, &current, original)],
                mark: Mark {
                    session: target.id.clone(),
                    state: State::RolledBack,
                    step: "could not be proved; reverted".into(),
                },
            });
            let mut plan = Plan::new(
                target.command.clone(),
                question,
                plan::Action::Prove {
                    manifest: current.clone(),
                    otherwise: going_back,
                },
            );
            plan.on_success = Some(Mark {
                session: target.id.clone(),
                state: State::Done,
                step: "proved (resumed)".into(),
            });
            (plan, how)
        } else if current_sha == manifest_parts(&target)?.0.sha256 {
            // The write never happened: do it now, as a change of its own.
            let how = "the manifest is still the original; writing the change now";
            let mut plan = Plan::new(
                target.command.clone(),
                question,
                plan::Action::Write {
                    writes: vec![manifest_write(
                        ctx,
                        &current,
                        intended_text.as_bytes().to_vec(),
                    )],
                    verify: plan::Verify::Nothing,
                },
            )
            .gate(Gate::Kubelet)
            .gate(Gate::Strays);
            plan.diff = unified_diff(
                &layout.node_path(&layout.apiserver_manifest()),
                &current,
                intended_text,
            );
            plan.manifest.stale_tokens = plan::StaleTokens::Carried(target.stale_tokens_at_start);
            plan.supersedes = Some(Mark {
                session: target.id.clone(),
                state: State::RolledBack,
                step: "never written; resumed as a new session".into(),
            });
            (plan, how)
        } else {
            return Err(Error::Refused(format!(
                "{} is neither the original nor the version session {} wrote; someone changed it. Check it by hand, \
                 then `{}` hands the session over to you",
                layout.apiserver_manifest().display(),
                target.id,
                crate::change::journal::abandon_command(&target.id)
            )));
        };
        Ok((plan.step(format!("session {}: {how}", target.id)), how))
    })?;
    let Done {
        plan,
        executed,
        facts: how,
    } = match ran {
        Ran::Done(done) => done,
        Ran::Declined(declined) => return Ok(ExitStatus::Declined(declined)),
    };
    ctx.ui.report(&ResumeResult {
        session: target.id,
        how: how.to_string(),
        dry_run: executed.dry_run(),
        diff: plan.diff.clone(),
        resumed_as: executed.session(),
        proof: executed.proof(),
        plan: plan.steps_text(),
    })?;
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reverted(restart: Option<Restart>) -> RevertResult {
        RevertResult {
            session: "s1".into(),
            how: "the previous files come back exactly".into(),
            dry_run: false,
            diff: String::new(),
            revert_session: Some("s2".into()),
            backup: None,
            restart,
            proof: None,
            plan: String::new(),
            credentials_kept: false,
        }
    }

    #[test]
    fn a_revert_says_what_happened_to_the_apiserver() {
        let files = reverted(Some(Restart::NotNeeded)).text();
        assert!(!files.contains("--no-wait"), "{files}");
        assert!(files.contains("no restart needed"), "{files}");
        let pending = reverted(Some(Restart::Pending)).text();
        assert!(pending.contains("restart pending (--no-wait)"), "{pending}");
    }
}
