//! `admin-conf regenerate`: re-issue admin.conf / super-admin.conf from the cluster CA on the
//! node, keeping the identity; the executor writes them, proves them with SelfSubjectReview and
//! fixes the copies (or puts everything back).
use serde::Serialize;

use super::{Context, change_settings};
use crate::change::executor::{self, BackupRef, Done, Ran, Unfinished};
use crate::change::plan::Plan;
use crate::change::regenerate::{self, Method, Regeneration, Request};
use crate::cli::{self, AdminConf, KeyTypeArg, RegenerateOptions};
use crate::credentials::issue::{CertFacts, Kind};
use crate::credentials::pki::KeyType;
use crate::credentials::verify::Verified;
use crate::error::{ExitStatus, Result};
use crate::ui::Report;

pub fn run(ctx: &Context, action: AdminConf) -> Result<ExitStatus> {
    match action {
        AdminConf::Regenerate(options) => regenerate(ctx, &options),
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialResult {
    pub kind: Kind,
    pub path: String,
    pub subject: String,
    pub subject_from: &'static str,
    pub key_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertFacts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capped_to_ca_expiry: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_as: Option<Verified>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminConfResult {
    pub method: &'static str,
    pub credentials: Vec<CredentialResult>,
    pub copies_updated: Vec<String>,
    pub installed: Option<String>,
    pub dry_run: bool,
    pub verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupRef>,
    #[serde(skip)]
    plan: String,
    #[serde(skip)]
    installed_for: Option<String>,
}

impl Report for AdminConfResult {
    const KIND: &'static str = "AdminConfResult";

    fn text(&self) -> String {
        if self.dry_run {
            return format!("{}dry run: nothing was written\n", self.plan);
        }
        let mut out = String::new();
        for c in &self.credentials {
            match &c.certificate {
                Some(facts) => out.push_str(&format!(
                    "{} re-issued: {} serial {}, valid until {}\n",
                    c.path, c.subject, facts.serial, facts.not_after
                )),
                None => out.push_str(&format!("{} renewed by kubeadm\n", c.path)),
            }
        }
        if !self.verified {
            out.push_str(
                "  NOT verified (--no-verify): nothing was proved against the apiserver\n",
            );
        }
        for c in &self.credentials {
            if let Some(v) = &c.verified_as {
                out.push_str(&format!(
                    "  proved: the apiserver answers {} as user {} in groups {}\n",
                    c.kind.file_name(),
                    v.username,
                    v.groups.join(", ")
                ));
            }
        }
        for copy in &self.copies_updated {
            out.push_str(&format!("  updated copy {copy}\n"));
        }
        if let (Some(path), Some(user)) = (&self.installed, &self.installed_for) {
            out.push_str(&format!("  installed {path} for {user}\n"));
        }
        if let Some(backup) = &self.backup {
            out.push_str(&format!("  backup: {}\n", backup.path));
        }
        out
    }
}

fn request(options: &RegenerateOptions) -> Request {
    let kinds = if options.only_super_admin {
        vec![Kind::SuperAdmin]
    } else if options.super_admin {
        vec![Kind::Admin, Kind::SuperAdmin]
    } else {
        vec![Kind::Admin]
    };
    Request {
        method: match options.method {
            cli::Method::Auto => Method::Auto,
            cli::Method::Native => Method::Native,
            cli::Method::Kubeadm => Method::Kubeadm,
        },
        validity: options.validity,
        kinds,
        key_type: options.key_type.map(|arg| match arg {
            KeyTypeArg::Rsa2048 => KeyType::Rsa2048,
            KeyTypeArg::EcdsaP256 => KeyType::EcdsaP256,
        }),
        update_copies: options.update_copies,
        copies: options.copies.clone(),
        install_for: options.install_for.clone(),
        no_verify: options.no_verify,
    }
}

fn regenerate(ctx: &Context, options: &RegenerateOptions) -> Result<ExitStatus> {
    let settings = change_settings(&options.confirm, None, None);
    let request = request(options);
    let ran = executor::run(&ctx.layout, &ctx.ui, &settings, Unfinished::Refuse, || {
        regenerate::plan(&ctx.layout, &ctx.ui, &request)
    })?;
    let Done {
        plan,
        executed,
        facts: regeneration,
    } = match ran {
        Ran::Done(done) => done,
        Ran::Declined(declined) => return Ok(ExitStatus::Declined(declined)),
    };
    if executed.changed() {
        if options.no_verify {
            ctx.ui.warn("--no-verify: the new credentials were NOT checked against the apiserver; nothing was proved");
        }
        regenerate::warn_system_masters(&ctx.ui, &regeneration.credentials);
    }
    ctx.ui.report(&result(ctx, regeneration, &plan, executed))?;
    Ok(ExitStatus::Success)
}

fn result(
    ctx: &Context,
    regeneration: Regeneration,
    plan: &Plan,
    executed: executor::Executed,
) -> AdminConfResult {
    let mut verified = executed.verified().iter();
    let changed = executed.changed();
    AdminConfResult {
        method: if regeneration.native {
            "native"
        } else {
            "kubeadm"
        },
        credentials: regeneration
            .credentials
            .iter()
            .map(|c| CredentialResult {
                kind: c.kind,
                path: ctx.layout.node_path(&c.path),
                subject: c.subject.to_string(),
                subject_from: c.subject_source,
                key_type: format!("{:?}", c.key_type),
                certificate: c.issued.as_ref().map(|i| i.facts.clone()),
                capped_to_ca_expiry: c.issued.as_ref().map(|i| i.capped_to_ca),
                verified_as: changed.then(|| verified.next().cloned()).flatten(),
            })
            .collect(),
        copies_updated: regeneration.copies_updated,
        installed: regeneration
            .installed
            .as_ref()
            .map(|(_, p)| ctx.layout.node_path(p)),
        installed_for: regeneration.installed.map(|(a, _)| a.name),
        dry_run: executed.dry_run(),
        verified: !executed.verified().is_empty(),
        backup: executed.backup(),
        plan: plan.steps_text(),
    }
}
