//! `revert` and `resume`: put back what a recorded change did, or finish it. The plan is the
//! domain's (`change::revert`); the executor writes and proves; this file reports.
use serde::Serialize;

use super::Context;
use crate::change::executor::{self, BackupRef, Done, Ran, Restart, Unfinished};
use crate::change::plan::ChangeSettings;
use crate::change::restart::Proof;
use crate::change::revert::{self as planner, Chosen};
use crate::change::{fleet, schedule};
use crate::error::{ExitStatus, Result};
use crate::ui::Report;

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
    /// A renewal's components, proved on the files put back.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<crate::certs::prove::ComponentProved>,
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
        for component in &self.components {
            out.push_str(&format!("  {}\n", component.describe()));
        }
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

pub fn revert(
    ctx: &Context,
    wanted: Option<&str>,
    settings: &ChangeSettings,
    fleet_lease: bool,
) -> Result<ExitStatus> {
    let layout = &ctx.layout;
    let lease = if fleet_lease && !settings.dry_run {
        let held = fleet::acquire_for_revert(layout, wanted, settings)?;
        ctx.ui.info(format!(
            "took the fleet lease kube-system/{}; every other apiserver is ready",
            fleet::LEASE_NAME
        ));
        Some(held)
    } else {
        None
    };
    let outcome = executor::run(layout, &ctx.ui, settings, Unfinished::Allow, || {
        planner::revert_plan(layout, wanted)
    });
    // After the proof (or the rollback's): the next node's apiserver may restart now.
    if let Some(lease) = lease
        && let Err(e) = lease.release()
    {
        ctx.ui.warn(format!(
            "could not give back the fleet lease kube-system/{} ({e}); it expires by itself",
            fleet::LEASE_NAME
        ));
    }
    let Done {
        plan,
        executed,
        facts: Chosen {
            session: target,
            how,
        },
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
        schedule::cancel(layout, &ctx.ui, Some(&target.id));
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
        components: executed
            .report()
            .map(|r| r.components.clone())
            .unwrap_or_default(),
        plan: plan.steps_text(),
        credentials_kept: !executed.dry_run() && !target.credentials_issued.is_empty(),
    })?;
    Ok(ExitStatus::Success)
}

pub fn resume(
    ctx: &Context,
    wanted: Option<&str>,
    settings: &ChangeSettings,
) -> Result<ExitStatus> {
    let layout = &ctx.layout;
    // Chosen first: the settings take its reason, and "nothing to resume" comes before the
    // executor's privilege check.
    let target = planner::resume_target(layout, wanted)?;
    // A change resumed as a new session keeps the reason it was started with.
    let settings = ChangeSettings {
        reason: settings.reason.clone().or_else(|| target.reason.clone()),
        ..settings.clone()
    };
    let ran = executor::run(layout, &ctx.ui, &settings, Unfinished::Allow, move || {
        planner::resume_plan(layout, target)
    })?;
    let Done {
        plan,
        executed,
        facts: Chosen {
            session: target,
            how,
        },
    } = match ran {
        Ran::Done(done) => done,
        Ran::Declined(declined) => return Ok(ExitStatus::Declined(declined)),
    };
    ctx.ui.report(&ResumeResult {
        session: target.id,
        how,
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
            components: Vec::new(),
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
