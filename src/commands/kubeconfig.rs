//! `kubeconfig prune-expired` and `kubeconfig set-token`: the notes' kubeconfig steps, as
//! journaled, backed-up edits through the one executor. Diffs are shown with every secret value
//! redacted.
use std::path::Path;

use serde::Serialize;

use super::{Context, change_settings};
use crate::apiserver::admin::TokenRequest;
use crate::change::executor::{self, BackupRef, Done, Ran, Unfinished};
use crate::change::plan::{self, Plan, PlannedWrite};
use crate::cli::KubeconfigCommand;
use crate::credentials::kubeconfig::prune::Finding;
use crate::credentials::kubeconfig::rewrite::{self, NewToken, Rewrite};
use crate::credentials::token::relative;
use crate::error::{ExitStatus, Result};
use crate::node::NodeLayout;
use crate::runtime::clock::{now_unix, rfc3339};
use crate::ui::{Report, escape};

pub fn run(ctx: &Context, action: KubeconfigCommand) -> Result<ExitStatus> {
    match action {
        KubeconfigCommand::PruneExpired {
            kubeconfig,
            confirm,
        } => {
            let path = rewrite::target(&ctx.layout, kubeconfig)?;
            prune_expired(
                ctx,
                &ctx.layout.for_file(&path)?,
                &path,
                &change_settings(&confirm, None, None),
            )
        }
        KubeconfigCommand::SetToken {
            kubeconfig,
            user,
            service_account,
            namespace,
            duration,
            using,
            confirm,
        } => {
            let path = rewrite::target(&ctx.layout, kubeconfig)?;
            set_token(
                ctx,
                &ctx.layout.for_file(&path)?,
                &path,
                &NewToken {
                    user,
                    request: TokenRequest {
                        service_account,
                        namespace,
                        duration,
                        audiences: Vec::new(),
                        bound_pod: None,
                    },
                    using,
                },
                &change_settings(&confirm, None, None),
            )
        }
        // Read-only, with no records of its own: `commands` dispatches it to its own file.
        KubeconfigCommand::Check { .. } => unreachable!("`kubeconfig check` is kubeconfig_check"),
    }
}

/// The executor's plan for a rewrite (`None`: nothing to do).
fn write_plan(command: &str, rewrite: Option<Rewrite>) -> Plan {
    let Some(rewrite) = rewrite else {
        return Plan::new(command, "", plan::Action::Nothing);
    };
    let mut plan = Plan::new(
        command,
        rewrite.question,
        plan::Action::Write {
            writes: vec![PlannedWrite {
                path: rewrite.path,
                old: Some(rewrite.old.into_bytes()),
                new: rewrite.new.into_bytes(),
                ownership: None,
            }],
            verify: plan::Verify::Nothing,
        },
    )
    .step(rewrite.step);
    plan.diff = rewrite.diff;
    plan
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneResult {
    pub kubeconfig: String,
    pub findings: Vec<Finding>,
    /// The edit, every secret value redacted.
    pub diff: String,
    pub changed: bool,
    pub dry_run: bool,
    pub backup: Option<BackupRef>,
    #[serde(skip)]
    now: i64,
}

impl Report for PruneResult {
    const KIND: &'static str = "KubeconfigPrune";

    fn text(&self) -> String {
        let mut out = String::new();
        let kubeconfig = escape(&self.kubeconfig);
        if self.findings.is_empty() {
            out.push_str(&format!("{kubeconfig}: nothing expired; nothing to do\n"));
        }
        for finding in &self.findings {
            out.push_str(&match finding {
                Finding::ExpiredToken {
                    user,
                    field,
                    expired,
                    removes,
                } => format!(
                    "  user {user}: {field} expired {} -> {} {}\n",
                    relative(*expired, self.now),
                    if self.changed { "removed" } else { "remove" },
                    removes.join(", ")
                ),
                Finding::ExpiredCertificate {
                    user,
                    not_after,
                    fix,
                } => format!(
                    "  user {user}: client certificate EXPIRED {} (not after {}); left as is: {fix}\n",
                    relative(*not_after, self.now),
                    rfc3339(*not_after)
                ),
                Finding::ExecPlugin {
                    user,
                    command,
                    refresh,
                } => format!(
                    "  user {user}: credential made by the exec plugin {command}; not edited. Refresh with: {refresh}\n"
                ),
                Finding::OpaqueToken { user, field } => format!(
                    "  user {user}: {field} is not a JWT, its expiry cannot be read offline; left as is (check it with `kubeadm-recover token review`)\n"
                ),
            });
        }
        if self.changed {
            out.push_str(&format!(
                "{kubeconfig}: the expired tokens are removed; the next kubectl call re-authenticates\n"
            ));
            if let Some(backup) = &self.backup {
                out.push_str(&format!("  backup: {} (id {})\n", backup.path, backup.id));
            }
        } else if self.dry_run && !self.diff.is_empty() {
            out.push_str(&self.diff);
            out.push_str("dry run: nothing was written\n");
        }
        out
    }
}

fn prune_expired(
    ctx: &Context,
    layout: &NodeLayout,
    path: &Path,
    settings: &plan::ChangeSettings,
) -> Result<ExitStatus> {
    let now = now_unix();
    let ran = executor::run(layout, &ctx.ui, settings, Unfinished::Refuse, || {
        let (pruned, findings) = rewrite::prune_expired(layout, path, now)?;
        Ok((write_plan("kubeconfig prune-expired", pruned), findings))
    })?;
    let Done {
        plan,
        executed,
        facts: findings,
    } = match ran {
        Ran::Done(done) => done,
        Ran::Declined(declined) => return Ok(ExitStatus::Declined(declined)),
    };
    ctx.ui.report(&PruneResult {
        kubeconfig: path.display().to_string(),
        findings,
        diff: plan.diff,
        changed: executed.changed(),
        dry_run: executed.dry_run(),
        backup: executed.backup(),
        now,
    })?;
    Ok(ExitStatus::Success)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SetTokenResult {
    pub kubeconfig: String,
    /// The edit, every secret value redacted.
    pub diff: String,
    pub user: String,
    pub service_account: String,
    pub expiration_timestamp: Option<String>,
    pub changed: bool,
    pub dry_run: bool,
    pub backup: Option<BackupRef>,
}

impl Report for SetTokenResult {
    const KIND: &'static str = "KubeconfigSetToken";

    fn text(&self) -> String {
        if !self.changed {
            return format!(
                "{}dry run: nothing was written (a real run asks the apiserver for the token)\n",
                self.diff
            );
        }
        let mut out = format!(
            "{}: user {} now holds a token for {} that expires {}\n",
            escape(&self.kubeconfig),
            escape(&self.user),
            escape(&self.service_account),
            escape(self.expiration_timestamp.as_deref().unwrap_or("?"))
        );
        if let Some(backup) = &self.backup {
            out.push_str(&format!("  backup: {} (id {})\n", backup.path, backup.id));
        }
        out
    }
}

fn set_token(
    ctx: &Context,
    layout: &NodeLayout,
    path: &Path,
    new: &NewToken,
    settings: &plan::ChangeSettings,
) -> Result<ExitStatus> {
    let ran = executor::run(layout, &ctx.ui, settings, Unfinished::Refuse, || {
        let (edited, expires) = rewrite::set_token(layout, path, new, settings.dry_run)?;
        Ok((write_plan("kubeconfig set-token", Some(edited)), expires))
    })?;
    let Done {
        plan,
        executed,
        facts: expiration,
    } = match ran {
        Ran::Done(done) => done,
        Ran::Declined(declined) => return Ok(ExitStatus::Declined(declined)),
    };
    ctx.ui.report(&SetTokenResult {
        kubeconfig: path.display().to_string(),
        diff: plan.diff,
        user: new.user.clone(),
        service_account: format!("{}/{}", new.request.namespace, new.request.service_account),
        expiration_timestamp: expiration,
        changed: executed.changed(),
        dry_run: executed.dry_run(),
        backup: executed.backup(),
    })?;
    Ok(ExitStatus::Success)
}
