//! `migrate check`: what still depends on long-lived or stale tokens, through the API with the
//! admin credential, and through the same stale-token reader `revert` uses.
use std::time::Duration;

use super::Context;
use crate::cli::{ApiOptions, MigrateCommand};
use crate::error::{ExitStatus, Result};
use crate::survey::migration::{self, MigrationCheck};
use crate::ui::Report;

pub fn run(ctx: &Context, action: MigrateCommand) -> Result<ExitStatus> {
    match action {
        MigrateCommand::Check { stale_window, api } => check(ctx, stale_window, &api),
    }
}

impl Report for MigrationCheck {
    const KIND: &'static str = "MigrationCheck";

    fn text(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "service-account-token secrets (long-lived, never expire): {}\n",
            self.token_secrets.len()
        ));
        for s in &self.token_secrets {
            out.push_str(&format!(
                "  {:<40} service account {:<20} mounted by {}\n",
                format!("{}/{}", s.namespace, s.name),
                s.service_account.as_deref().unwrap_or("?"),
                if s.mounted_by.is_empty() {
                    "no pod".to_string()
                } else {
                    s.mounted_by.join(", ")
                }
            ));
        }
        out.push_str(&format!(
            "pods mounting a token from a secret instead of a projected volume: {}\n",
            self.secret_mounts.len()
        ));
        for m in &self.secret_mounts {
            out.push_str(&format!(
                "  {}/{} volume {} (secret {}); use instead:\n{}",
                m.namespace,
                m.pod,
                m.volume,
                m.secret,
                m.projected_volume
                    .lines()
                    .map(|l| format!("      {l}\n"))
                    .collect::<String>()
            ));
        }
        out.push_str(&format!(
            "stale-token users (alive only because token extension is on): {}\n",
            self.stale_token_users.len()
        ));
        for u in &self.stale_token_users {
            out.push_str(&format!(
                "  {:<40} {:>6} uses, last {}\n",
                // From the audit log: the subject is a token's claim, shown escaped.
                crate::ui::escape(&u.subject),
                u.count,
                crate::ui::escape(&u.last_seen)
            ));
        }
        if self.audit_log.is_none() {
            out.push_str("  (no --audit-log-path in the manifest, so stale-token users cannot be named; serviceaccount_stale_tokens_total still counts them)\n");
        }
        if let Some(total) = self.stale_tokens_total {
            out.push_str(&format!("  serviceaccount_stale_tokens_total: {total}\n"));
        }
        out.push_str(if self.depends_on_extension {
            "verdict: workloads still depend on long-lived or stale tokens; migrate them before turning token extension off\n"
        } else {
            "verdict: nothing depends on token extension\n"
        });
        out
    }
}

fn check(ctx: &Context, stale_window: Duration, api: &ApiOptions) -> Result<ExitStatus> {
    let report = migration::inspect(&ctx.layout, stale_window, api.kubeconfig.as_deref())?;
    ctx.ui.report(&report)?;
    Ok(if report.depends_on_extension {
        ExitStatus::Negative("workloads still depend on long-lived or stale tokens".into())
    } else {
        ExitStatus::Success
    })
}
