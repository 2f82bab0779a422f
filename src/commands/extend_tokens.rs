//! `extend-tokens enable|disable`: plan the one-flag edit of the manifest; the executor backs
//! up, writes atomically and proves the restart (or rolls back), all journaled.
use serde::Serialize;

use super::{Context, change_settings};
use crate::change::executor::{self, ChangeReport, Done, Executed, Ran, Unfinished};
use crate::change::journal::RevertSchedule;
use crate::change::plan::{self, ChangeSettings, Gate, Plan, PlannedWrite};
use crate::cli::ExtendTokensCommand as Action;
use crate::error::{Error, ExitStatus, Result};
use crate::manifest::{ExtendTokens, Target, edit_extend_tokens};
use crate::node::read_apiserver_manifest as read_manifest;
use crate::ui::{Report, unified_diff};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtendTokensResult {
    pub action: &'static str,
    pub manifest: String,
    pub before: ExtendTokens,
    pub after: ExtendTokens,
    pub changed: bool,
    pub dry_run: bool,
    pub notes: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub diff: String,
    #[serde(flatten)]
    pub change: Option<ChangeReport>,
    /// `--revert-after`: the deadline and the timer that reverts the change then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revert_after: Option<RevertSchedule>,
    #[serde(skip)]
    plan: String,
}

impl Report for ExtendTokensResult {
    const KIND: &'static str = "ExtendTokensResult";

    fn text(&self) -> String {
        let done = if self.action == "enable" {
            "enabled"
        } else {
            "disabled"
        };
        if !self.changed {
            return format!(
                "token extension already {done} in {}: nothing to do\n",
                self.manifest
            );
        }
        if self.dry_run {
            return format!("{}dry run: nothing was written\n{}", self.plan, self.diff);
        }
        let change = self.change.as_ref();
        let mut out = match change.and_then(ChangeReport::proof) {
            Some(proof) => format!(
                "token extension {done} and proved: kube-apiserver pid {} runs the new manifest and is healthy ({:.1}s{})\n",
                proof.pid,
                proof.waited_ms as f64 / 1000.0,
                if proof.nudged { ", after a nudge" } else { "" }
            ),
            None => format!(
                "token extension {done} in {}\n  next: the kubelet notices the change (inotify, or its 20 s relist) and restarts kube-apiserver;\n  \
                 check with `kubeadm-recover status` or `crictl ps --name kube-apiserver`.\n",
                self.manifest
            ),
        };
        if let Some(backup) = change.and_then(|c| c.backup.as_ref()) {
            out.push_str(&format!("  backup: {} (id {})\n", backup.path, backup.id));
        }
        for moved in change.iter().flat_map(|c| &c.moved_strays) {
            out.push_str(&format!("  moved stray {moved} into the backup\n"));
        }
        out.push_str("  undo with: kubeadm-recover revert\n");
        if let Some(r) = &self.revert_after {
            match &r.timer {
                Some(timer) => out.push_str(&format!(
                    "  reverted by itself at {} (timer {timer}; retried hourly while stale tokens are in use)\n",
                    r.deadline
                )),
                None => out.push_str(&format!(
                    "  revert by {}: {}\n",
                    r.deadline,
                    r.note.as_deref().unwrap_or("no timer")
                )),
            }
        }
        out
    }
}

pub fn run(ctx: &Context, action: Action) -> Result<ExitStatus> {
    let (enable, settings, revert_after) = match &action {
        Action::Enable {
            confirm,
            restart,
            revert_after,
        } => (
            true,
            change_settings(confirm, Some(restart), None),
            *revert_after,
        ),
        Action::Disable {
            confirm,
            restart,
            stale,
        } => (
            false,
            change_settings(confirm, Some(restart), Some(stale)),
            None,
        ),
    };
    let result = match change_flag(ctx, enable, &settings, revert_after)? {
        Ran::Done(result) => result,
        Ran::Declined(declined) => return Ok(ExitStatus::Declined(declined)),
    };
    if !enable && result.changed && !result.dry_run {
        // Extension is off by hand: a scheduled revert of an earlier enable has nothing to do.
        crate::change::schedule::cancel(&ctx.layout, &ctx.ui, None);
    }
    ctx.ui.report(&result)?;
    Ok(ExitStatus::Success)
}

fn change_flag(
    ctx: &Context,
    enable: bool,
    settings: &ChangeSettings,
    revert_after: Option<std::time::Duration>,
) -> Result<Ran<ExtendTokensResult>> {
    let (ui, layout) = (&ctx.ui, &ctx.layout);
    let verb = if enable { "enable" } else { "disable" };
    let path = layout.apiserver_manifest();
    let node_path = layout.node_path(&path);
    // The timer's binary is checked before anything changes: a refusal then changes nothing.
    if revert_after.is_some() && crate::change::schedule::uses_systemd(layout) {
        crate::change::schedule::runnable_binary()?;
    }
    let ran = executor::run(layout, ui, settings, Unfinished::Refuse, || {
        let text = read_manifest(layout)?;
        let edit = edit_extend_tokens(&text, Target::Set(enable))
            .map_err(|e| Error::manifest(&path, &e))?;
        for note in &edit.notes {
            ui.info(format!("note: {note}"));
        }
        let diff = unified_diff(&node_path, &text, &edit.new_text);
        let action = if edit.changed {
            plan::Action::Write {
                writes: vec![PlannedWrite {
                    path: path.clone(),
                    old: Some(text.clone().into_bytes()),
                    new: edit.new_text.clone().into_bytes(),
                    ownership: None,
                }],
                verify: plan::Verify::Nothing,
            }
        } else {
            plan::Action::Nothing
        };
        let mut plan = Plan::new(
            format!("extend-tokens {verb}"),
            format!("{verb} token extension on this node?"),
            action,
        )
        .step(format!(
            "set --service-account-extend-token-expiration={enable} in {node_path}\n  now: {}\n  then: {}",
            edit.before.state.describe(),
            edit.after.state.describe()
        ))
        .gate(Gate::Kubelet)
        .gate(Gate::Strays);
        plan.diff = diff;
        if let (Some(after), true) = (revert_after, edit.changed) {
            let deadline = crate::runtime::clock::after(crate::runtime::clock::now_unix(), after)
                .ok_or_else(|| {
                Error::Usage(format!(
                    "--revert-after {}s is out of range: give at most 36500d",
                    after.as_secs()
                ))
            })?;
            plan.manifest.revert_after = Some(deadline);
            plan = plan.step(format!(
                "revert it at {} (--revert-after): a systemd timer where the node has systemd",
                crate::runtime::clock::rfc3339(deadline)
            ));
        } else if revert_after.is_some() {
            ui.warn("--revert-after: nothing changes, so there is nothing to revert later");
        }
        if enable {
            plan.manifest.stale_tokens = plan::StaleTokens::Measure;
        } else {
            // Turning extension off ends the grace for stale tokens: check who still uses them.
            plan = plan.gate(Gate::StaleTokens {
                manifest: text,
                session: None,
            });
        }
        Ok((plan, edit))
    })?;
    let Done {
        plan,
        executed,
        facts: edit,
    } = match ran {
        Ran::Done(done) => done,
        Ran::Declined(declined) => return Ok(Ran::Declined(declined)),
    };
    let revert_after = executed.session().and_then(|id| {
        crate::change::journal::Journal::load(layout)
            .ok()?
            .find(&id)?
            .revert_after
            .clone()
    });
    let mut result = result(verb, node_path, edit, &plan, executed);
    result.revert_after = revert_after;
    Ok(Ran::Done(result))
}

fn result(
    verb: &'static str,
    manifest: String,
    edit: crate::manifest::Edit,
    plan: &Plan,
    executed: Executed,
) -> ExtendTokensResult {
    let shows_diff = edit.changed;
    ExtendTokensResult {
        action: verb,
        manifest,
        before: edit.before,
        after: edit.after,
        changed: edit.changed,
        dry_run: executed.dry_run(),
        notes: edit.notes,
        diff: if shows_diff {
            plan.diff.clone()
        } else {
            String::new()
        },
        change: executed.report().cloned(),
        revert_after: None,
        plan: plan.steps_text(),
    }
}
