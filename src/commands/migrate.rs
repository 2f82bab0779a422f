//! `migrate check`: what still depends on long-lived or stale tokens, through the API with the
//! admin credential, and through the same stale-token reader `revert` uses.
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use serde::Serialize;

use super::Context;
use crate::apiserver::admin::Admin;
use crate::cli::{ApiOptions, MigrateCommand};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::survey::migration::{self, SecretMount, StaleUser, TokenSecret};
use crate::ui::Report;

pub fn run(ctx: &Context, action: MigrateCommand) -> Result<()> {
    match action {
        MigrateCommand::Check { stale_window, api } => check(ctx, stale_window, &api),
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationCheck {
    pub token_secrets: Vec<TokenSecret>,
    pub secret_mounts: Vec<SecretMount>,
    pub stale_token_users: Vec<StaleUser>,
    /// serviceaccount_stale_tokens_total now, when the apiserver answers.
    pub stale_tokens_total: Option<u64>,
    /// Where the users of stale tokens were read from (none: they cannot be named).
    pub audit_log: Option<String>,
    pub depends_on_extension: bool,
}

/// `status`'s migration line when nothing depends on token extension.
pub const NOTHING_DEPENDS: &str = "nothing depends on long-lived or stale tokens";

impl MigrationCheck {
    /// One line for `status`.
    pub fn summary(&self) -> String {
        if !self.depends_on_extension {
            return NOTHING_DEPENDS.into();
        }
        format!(
            "{} service-account-token secret(s), {} pod(s) mounting one, {} stale-token user(s) (kubeadm-recover migrate check)",
            self.token_secrets.len(),
            self.secret_mounts.len(),
            self.stale_token_users.len()
        )
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

/// Runs the check; `Err` when the API cannot be asked.
pub fn inspect(ctx: &Context, stale_window: Duration, api: &ApiOptions) -> Result<MigrationCheck> {
    let path = match &api.kubeconfig {
        Some(given) => ctx.layout.given_path(given)?,
        None => ctx.layout.admin_conf(),
    };
    let admin = Admin::connect(&ctx.layout, &path)?;
    let failed = |what: &str, e| Error::Failed(format!("listing {what}: {e}"));
    let secrets: k8s_openapi::List<Secret> = admin
        .get("/api/v1/secrets?fieldSelector=type%3Dkubernetes.io%2Fservice-account-token")
        .map_err(|e| failed("secrets", e))?;
    let pods: k8s_openapi::List<Pod> = admin.get("/api/v1/pods").map_err(|e| failed("pods", e))?;
    let manifest_text = ctx
        .layout
        .fs()
        .read_to_string(&ctx.layout.apiserver_manifest())
        .ok();
    let manifest = manifest_text
        .as_deref()
        .and_then(|t| Manifest::parse(t).ok());
    let audience = manifest.as_ref().and_then(|m| {
        m.flag("api-audiences")
            .and_then(|a| a.split(',').next().map(str::to_string))
            .or_else(|| m.flag("service-account-issuer"))
    });
    let (token_secrets, secret_mounts) =
        migration::dependents(&secrets.items, &pods.items, audience.as_deref());
    let stale = manifest
        .as_ref()
        .map(|m| migration::check(&ctx.layout, m, None, stale_window));
    let (stale_token_users, stale_tokens_total, audit_log, stale_in_use) = match stale {
        Some(c) => (c.users, c.metric_now, c.audit_log, c.in_use),
        None => (Vec::new(), None, None, false),
    };
    Ok(MigrationCheck {
        depends_on_extension: !token_secrets.is_empty()
            || !secret_mounts.is_empty()
            || !stale_token_users.is_empty()
            || stale_in_use,
        token_secrets,
        secret_mounts,
        stale_token_users,
        stale_tokens_total,
        audit_log,
    })
}

fn check(ctx: &Context, stale_window: Duration, api: &ApiOptions) -> Result<()> {
    let report = inspect(ctx, stale_window, api)?;
    ctx.ui.report(&report)?;
    if report.depends_on_extension {
        Err(Error::Negative(
            "workloads still depend on long-lived or stale tokens".into(),
        ))
    } else {
        Ok(())
    }
}
