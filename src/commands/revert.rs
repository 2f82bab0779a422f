//! `revert` and `resume`: put back what a recorded change did, or finish it, and prove it.
use serde_json::json;

use super::{Context, read_manifest};
use crate::change::{self, PlannedWrite};
use crate::cli::{ChangeOptions, SessionOptions};
use crate::error::{Error, Result};
use crate::journal::{Journal, Recorder, Session, State};
use crate::manifest::{FlagState, Manifest, Target, edit_extend_tokens};
use crate::restart::{self, Change};
use crate::store::{backup, lock, sha256_hex};
use crate::ui::unified_diff;
use crate::{interrupt, migration};

fn pick<'j>(
    journal: &'j Journal,
    wanted: Option<&str>,
    fallback: impl Fn(&'j Journal) -> Option<&'j Session>,
    none: &str,
) -> Result<&'j Session> {
    match wanted {
        Some(id) => journal.find(id).ok_or_else(|| {
            Error::Usage(format!(
                "no session {id} in the journal; see `kubeadm-recover status`"
            ))
        }),
        None => fallback(journal).ok_or_else(|| Error::Usage(none.to_string())),
    }
}

/// The original manifest bytes of a session, from its backup (checksums verified), or from
/// any backup holding bytes with the recorded hash.
fn original_bytes(ctx: &Context, session: &Session) -> Result<Vec<u8>> {
    let manifest = ctx.layout.node_path(&ctx.layout.apiserver_manifest());
    let from = |b: &backup::Backup| -> Option<Vec<u8>> {
        if !b.verify().is_empty() {
            return None;
        }
        let file = b
            .files
            .iter()
            .find(|f| f.path == manifest && f.sha256 == session.original.sha256)?;
        b.read(file).ok()
    };
    if let Some(Ok(b)) = session
        .backup_id
        .as_deref()
        .and_then(|id| backup::find(&ctx.layout, id))
        && let Some(bytes) = from(&b)
    {
        return Ok(bytes);
    }
    backup::list(&ctx.layout)
        .into_iter()
        .rev()
        .filter_map(|b| b.ok())
        .find_map(|b| from(&b))
        .ok_or_else(|| Error::Refused(format!(
            "no intact backup holds the original manifest of session {} (sha256 {}); restore it by hand",
            session.id, session.original.sha256
        )))
}

pub fn revert(ctx: &Context, session: &SessionOptions, options: &ChangeOptions) -> Result<()> {
    let (ui, layout) = (&ctx.ui, &ctx.layout);
    if !options.dry_run {
        layout.require_privileges()?;
    }
    if !options.dry_run {
        restart::unpark_manifest(layout, ui)?;
    }
    let journal = Journal::load(layout)?;
    let target = pick(
        &journal,
        session.session.as_deref(),
        |j| j.unfinished().or_else(|| j.revertable()),
        "nothing to revert: the journal records no change that is still in effect",
    )?
    .clone();
    let path = layout.apiserver_manifest();
    let node_path = layout.node_path(&path);
    let current = read_manifest(layout)?;
    let current_sha = sha256_hex(current.as_bytes());
    let unfinished = matches!(target.state, State::InProgress | State::Failed);
    if !unfinished && target.state != State::Done {
        return Err(Error::Usage(format!(
            "session {} is already {:?}",
            target.id, target.state
        )));
    }

    // What to write: the exact original bytes when the manifest is what the session wrote;
    // otherwise (an upgrade or an edit since) only the flag goes back, by the minimal edit.
    let (new_text, how) = if current_sha == target.original.sha256 {
        (None, "the manifest is already the original".to_string())
    } else if current_sha == target.intended.sha256 {
        let bytes = original_bytes(ctx, &target)?;
        (
            Some(
                String::from_utf8(bytes)
                    .map_err(|_| Error::Refused("the original manifest is not UTF-8".into()))?,
            ),
            "the original bytes come back exactly".into(),
        )
    } else if unfinished {
        return Err(Error::Refused(format!(
            "{node_path} is neither the original nor the version session {} wrote; someone changed it. Check it by hand",
            target.id
        )));
    } else {
        let goal = match &target.original.flag {
            Some(FlagState::Explicit { value }) => Target::Set(*value),
            Some(FlagState::Absent { .. }) => Target::Remove,
            Some(FlagState::Invalid { value }) => {
                return Err(Error::Refused(format!(
                    "the original manifest had an invalid value {value:?}; choose with extend-tokens enable|disable"
                )));
            }
            None => return Err(Error::Refused(
                "the original manifest could not be read; choose with extend-tokens enable|disable"
                    .into(),
            )),
        };
        let edit = edit_extend_tokens(&current, goal).map_err(|e| Error::manifest(&path, &e))?;
        (
            edit.changed.then_some(edit.new_text),
            "the manifest changed since (an upgrade or another edit): only the flag goes back"
                .into(),
        )
    };

    let mut document = json!({ "session": target.id, "how": how, "dryRun": options.dry_run });
    let diff = new_text
        .as_deref()
        .map(|t| unified_diff(&node_path, &current, t))
        .unwrap_or_default();
    document["diff"] = json!(diff);
    let plan = format!(
        "plan: revert session {} ({}, started {}): {how}\n",
        target.id, target.command, target.started
    );

    // Turning extension off (explicitly, or back to an old default of false) needs the check.
    let after = new_text.as_deref().unwrap_or(&current);
    let after_manifest = Manifest::parse(after).map_err(|e| Error::manifest(&path, &e))?;
    let turns_off = after_manifest.extend_tokens().state.effective() == Some(false)
        && Manifest::parse(&current)
            .ok()
            .and_then(|m| m.extend_tokens().state.effective())
            != Some(false);

    if options.dry_run {
        ui.report("RevertResult", document, || {
            format!("{plan}dry run: nothing was written\n{diff}")
        });
        return Ok(());
    }
    if turns_off {
        let current_manifest = Manifest::parse(&current).map_err(|e| Error::manifest(&path, &e))?;
        let check = migration::check(
            layout,
            &current_manifest,
            Some((target.started_unix, target.stale_tokens_at_start)),
            options.stale_window,
        );
        migration::confirm_or_refuse(ui, &check, options.accept_stale_tokens)?;
    }
    if new_text.is_some() && !options.no_wait {
        restart::require_kubelet(layout)?;
    }
    ui.info(format!("{plan}{diff}"));
    ui.confirm(&format!("revert session {}?", target.id))?;
    let _lock = lock::acquire(&layout.lock_file())?;
    interrupt::install();
    let record_on_target = Recorder::attach(layout, &target.id);
    let final_state = if unfinished {
        State::RolledBack
    } else {
        State::Reverted
    };

    let Some(new_text) = new_text else {
        let proof = restart::prove_running(layout, ui, &current, ctx.wait_options(options))?;
        record_on_target.finish(
            final_state,
            "reverted: the original was in place and is proved",
        )?;
        document["proof"] = json!(proof);
        ui.report("RevertResult", document, || {
            format!(
                "session {} reverted: the original manifest runs and is healthy (pid {})\n",
                target.id, proof.pid
            )
        });
        return Ok(());
    };
    let strays = change::check_strays(layout, options.move_strays)?;
    let writes = [PlannedWrite {
        path: path.clone(),
        old: Some(current.into_bytes()),
        new: new_text.into_bytes(),
        ownership: None,
    }];
    let outcome = restart::execute(
        layout,
        ui,
        Change {
            command: "revert",
            reason: ctx.reason.as_deref(),
            writes: &writes,
            strays: &strays,
            wait: (!options.no_wait).then(|| ctx.wait_options(options)),
            on_interrupt: options.on_interrupt,
            reverts: Some(target.id.clone()),
            stale_tokens_at_start: None,
        },
    )?;
    record_on_target.finish(
        final_state,
        &format!("reverted by session {}", outcome.session),
    )?;
    document["revertSession"] = json!(outcome.session);
    document["backup"] = json!({ "id": outcome.applied.backup.id, "path": layout.node_path(&outcome.applied.backup.dir) });
    document["restart"] = json!(if outcome.proof.is_some() {
        "proved"
    } else {
        "pending"
    });
    document["proof"] = json!(outcome.proof);
    if !target.credentials_issued.is_empty() {
        ui.info("admin credentials issued during the session are kept (the old ones had expired)");
    }
    ui.report("RevertResult", document, || {
        format!(
            "session {} reverted ({how}){}\n  backup of what it replaced: {}\n",
            target.id,
            match &outcome.proof {
                Some(p) => format!("; proved: kube-apiserver pid {} healthy", p.pid),
                None => "; restart pending (--no-wait)".into(),
            },
            layout.node_path(&outcome.applied.backup.dir)
        )
    });
    Ok(())
}

pub fn resume(ctx: &Context, session: &SessionOptions, options: &ChangeOptions) -> Result<()> {
    let (ui, layout) = (&ctx.ui, &ctx.layout);
    layout.require_privileges()?;
    restart::unpark_manifest(layout, ui)?;
    let journal = Journal::load(layout)?;
    let target = pick(
        &journal,
        session.session.as_deref(),
        |j| j.unfinished(),
        "nothing to resume: no unfinished change in the journal",
    )?
    .clone();
    if !matches!(target.state, State::InProgress | State::Failed) {
        return Err(Error::Usage(format!(
            "session {} is {:?}, not unfinished",
            target.id, target.state
        )));
    }
    let path = layout.apiserver_manifest();
    let current = read_manifest(layout)?;
    let current_sha = sha256_hex(current.as_bytes());
    let record_on_target = Recorder::attach(layout, &target.id);
    ui.confirm(&format!(
        "finish session {} ({})?",
        target.id, target.command
    ))?;
    let _lock = lock::acquire(&layout.lock_file())?;
    interrupt::install();

    if current_sha == target.intended.sha256 {
        // Written already: prove it; if it cannot be proved, go back and prove that.
        ui.info(format!(
            "session {}: the manifest holds the new version; proving the restart",
            target.id
        ));
        match restart::prove_running(layout, ui, &current, ctx.wait_options(options)) {
            Ok(proof) => {
                record_on_target.finish(State::Done, "proved (resumed)")?;
                ui.report("ResumeResult", json!({"session": target.id, "proof": proof}), || {
                    format!("session {} finished: kube-apiserver pid {} runs the new manifest and is healthy\n", target.id, proof.pid)
                });
                Ok(())
            }
            Err(e) => {
                ui.warn(format!(
                    "the resumed change could not be proved ({e}); going back"
                ));
                let original = original_bytes(ctx, &target)?;
                let writes = [PlannedWrite {
                    path: path.clone(),
                    old: Some(current.into_bytes()),
                    new: original,
                    ownership: None,
                }];
                let outcome = restart::execute(
                    layout,
                    ui,
                    Change {
                        command: "revert",
                        reason: ctx.reason.as_deref(),
                        writes: &writes,
                        strays: &[],
                        wait: Some(ctx.wait_options(options)),
                        on_interrupt: options.on_interrupt,
                        reverts: Some(target.id.clone()),
                        stale_tokens_at_start: None,
                    },
                )?;
                record_on_target.finish(
                    State::RolledBack,
                    &format!("could not be proved; reverted by {}", outcome.session),
                )?;
                Err(Error::Failed(format!(
                    "session {} could not be finished ({e}); the original manifest is back and proved healthy",
                    target.id
                )))
            }
        }
    } else if current_sha == target.original.sha256 {
        // The write never happened: do it now, as a change of its own.
        ui.info(format!(
            "session {}: the manifest is still the original; writing the change now",
            target.id
        ));
        let strays = change::check_strays(layout, options.move_strays)?;
        let writes = [PlannedWrite {
            path: path.clone(),
            old: Some(current.into_bytes()),
            new: target.intended_text.clone().into_bytes(),
            ownership: None,
        }];
        record_on_target.finish(State::RolledBack, "never written; resumed as a new session")?;
        let outcome = restart::execute(
            layout,
            ui,
            Change {
                command: &target.command,
                reason: target.reason.as_deref(),
                writes: &writes,
                strays: &strays,
                wait: (!options.no_wait).then(|| ctx.wait_options(options)),
                on_interrupt: options.on_interrupt,
                reverts: None,
                stale_tokens_at_start: target.stale_tokens_at_start,
            },
        )?;
        ui.report(
            "ResumeResult",
            json!({"session": outcome.session, "resumes": target.id, "proof": outcome.proof}),
            || {
                format!(
                    "session {} finished as session {}{}\n",
                    target.id,
                    outcome.session,
                    if outcome.proof.is_some() {
                        ", proved"
                    } else {
                        ""
                    }
                )
            },
        );
        Ok(())
    } else {
        Err(Error::Refused(format!(
            "{} is neither the original nor the version session {} wrote; someone changed it. Check it, then `kubeadm-recover revert`",
            path.display(),
            target.id
        )))
    }
}
