//! `kubeconfig prune-expired` and `kubeconfig set-token`: the notes' kubeconfig steps, as
//! journaled, backed-up edits through the one executor. Diffs are shown with every secret value
//! redacted.
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::{Context, change_settings};
use crate::apiserver::admin::{Admin, TokenRequest};
use crate::change::executor::{self, BackupRef, Done, Ran, Unfinished};
use crate::change::plan::{self, Plan, PlannedWrite};
use crate::cli::KubeconfigCommand;
use crate::credentials::kubeconfig::edit::{redacted, replace_token};
use crate::credentials::kubeconfig::prune::{Finding, prune};
use crate::credentials::token::relative;
use crate::error::{Error, ExitStatus, Result};
use crate::runtime::clock::{now_unix, rfc3339};
use crate::ui::{Report, escape, unified_diff};

pub fn run(ctx: &Context, action: KubeconfigCommand) -> Result<ExitStatus> {
    match action {
        KubeconfigCommand::PruneExpired {
            kubeconfig,
            confirm,
        } => prune_expired(
            ctx,
            &target(ctx, kubeconfig)?,
            &change_settings(&confirm, None, None),
        ),
        KubeconfigCommand::SetToken {
            kubeconfig,
            user,
            service_account,
            namespace,
            duration,
            confirm,
        } => set_token(
            ctx,
            &target(ctx, kubeconfig)?,
            &NewToken {
                user,
                request: TokenRequest {
                    service_account,
                    namespace,
                    duration,
                    audiences: Vec::new(),
                    bound_pod: None,
                },
            },
            &change_settings(&confirm, None, None),
        ),
    }
}

/// The kubeconfig kubectl would use: `--kubeconfig`, else `$KUBECONFIG`'s first file, else
/// `~/.kube/config` — each a path on the node, so that under `--root` it is the sandbox's.
fn target(ctx: &Context, given: Option<PathBuf>) -> Result<PathBuf> {
    let chosen = match given {
        Some(path) => path,
        None => match std::env::var_os("KUBECONFIG")
            .and_then(|v| std::env::split_paths(&v).find(|p| !p.as_os_str().is_empty()))
        {
            Some(first) => first,
            None => std::env::var_os("HOME")
                .map(|home| Path::new(&home).join(".kube/config"))
                .ok_or_else(|| {
                    Error::Usage("no --kubeconfig, no $KUBECONFIG and no $HOME".into())
                })?,
        },
    };
    ctx.layout.given_path(&chosen)
}

fn read(ctx: &Context, path: &Path) -> Result<String> {
    ctx.layout.fs().read_to_string(path).map_err(|e| {
        Error::Usage(format!(
            "{}: {e}\n  what to do: name the kubeconfig with --kubeconfig PATH",
            path.display()
        ))
    })
}

fn write_plan(
    ctx: &Context,
    command: &str,
    question: &str,
    path: &Path,
    old: &str,
    new: &str,
) -> Plan {
    let mut plan = Plan::new(
        command,
        question,
        plan::Action::Write {
            writes: vec![PlannedWrite {
                path: path.to_path_buf(),
                old: Some(old.as_bytes().to_vec()),
                new: new.as_bytes().to_vec(),
                ownership: None,
            }],
            verify: plan::Verify::Nothing,
        },
    );
    plan.diff = unified_diff(&ctx.layout.node_path(path), &redacted(old), &redacted(new));
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
    path: &Path,
    settings: &plan::ChangeSettings,
) -> Result<ExitStatus> {
    let now = now_unix();
    let ran = executor::run(&ctx.layout, &ctx.ui, settings, Unfinished::Refuse, || {
        let text = read(ctx, path)?;
        let pruned =
            prune(&text, now).map_err(|e| Error::Refused(format!("{}: {e}", path.display())))?;
        let plan = match pruned.text {
            None => Plan::new("kubeconfig prune-expired", "", plan::Action::Nothing),
            Some(new) => write_plan(
                ctx,
                "kubeconfig prune-expired",
                &format!("remove the expired tokens from {}?", path.display()),
                path,
                &text,
                &new,
            )
            .step(format!(
                "remove the expired tokens from {} (backed up first)",
                path.display()
            )),
        };
        Ok((plan, pruned.findings))
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

struct NewToken {
    user: String,
    request: TokenRequest,
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

/// A TokenRequest with the node's admin credential: (token, expirationTimestamp).
fn request_token(ctx: &Context, new: &NewToken) -> Result<(SecretString, String)> {
    let issued = Admin::connect(&ctx.layout, &ctx.layout.admin_conf())?
        .request_token(&new.request)
        .map_err(|e| Error::Failed(format!("{e}; nothing was changed")))?;
    Ok((issued.token, issued.expiration_timestamp))
}

fn set_token(
    ctx: &Context,
    path: &Path,
    new: &NewToken,
    settings: &plan::ChangeSettings,
) -> Result<ExitStatus> {
    let ran = executor::run(&ctx.layout, &ctx.ui, settings, Unfinished::Refuse, || {
        let text = read(ctx, path)?;
        // The dry run shows where the token goes without minting one.
        let (token, expires) = if settings.dry_run {
            (SecretString::from("dry-run".to_string()), None)
        } else {
            let (token, expires) = request_token(ctx, new)?;
            (token, Some(expires))
        };
        let edited = replace_token(&text, &new.user, token.expose_secret())
            .map_err(|e| Error::Refused(format!("{}: {e}", path.display())))?;
        let plan = write_plan(
            ctx,
            "kubeconfig set-token",
            &format!("replace user {}'s token in {}?", new.user, path.display()),
            path,
            &text,
            &edited,
        )
        .step(format!(
            "replace user {}'s token in {} with a new one for {}/{} (backed up first)",
            new.user,
            path.display(),
            new.request.namespace,
            new.request.service_account
        ));
        Ok((plan, expires))
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
