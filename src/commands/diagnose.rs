//! `diagnose`: reads the node (what `status` reads, plus the control-plane certificates, the
//! kubeconfig copies and the apiserver's attempt logs) and hands the facts to the pure
//! `diagnose` module.
use serde::Serialize;

use super::Context;
use super::backups::BackupEntry;
use super::status::{ManifestRead, Status, status};
use crate::credentials::copies;
use crate::credentials::issue::Kind;
use crate::credentials::kubeconfig::edit as kubeconfig_edit;
use crate::error::Result;
use crate::survey::diagnose::{Apiserver, Expiry, Facts, Finding};
use crate::survey::guide::Guidance;
use crate::ui::Report;

/// The certificates kubeadm manages besides the kubeconfigs', as `kubeadm certs renew` names
/// them (`etcd/server` is `etcd-server` there).
const CERTIFICATES: [&str; 7] = [
    "apiserver",
    "apiserver-kubelet-client",
    "front-proxy-client",
    "apiserver-etcd-client",
    "etcd/server",
    "etcd/peer",
    "etcd/healthcheck-client",
];

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnosis {
    pub findings: Vec<Finding>,
    /// What `guide` would propose: this tool's steps in order, and what is left to a person.
    #[serde(flatten)]
    pub guidance: Guidance,
}

impl Report for Diagnosis {
    const KIND: &'static str = "Diagnosis";

    fn text(&self) -> String {
        let mut out = String::new();
        for (i, f) in self.findings.iter().enumerate() {
            let severity = f.severity.label();
            out.push_str(&format!(
                "{}. [{severity}] {}\n   evidence: {}\n   fix: {}\n",
                i + 1,
                f.summary,
                f.evidence.replace('\n', "\n             "),
                f.fix
            ));
        }
        if self.findings.is_empty() {
            out.push_str("nothing wrong found\n");
        }
        if !self.guidance.steps.is_empty() {
            out.push_str(
                "\nsteps (`kubeadm-recover guide` asks about each; scripts add --reason and --yes):\n",
            );
            for (i, step) in self.guidance.steps.iter().enumerate() {
                out.push_str(&format!(
                    "{}. {}\n   {}\n",
                    i + 1,
                    step.title,
                    step.command_line()
                ));
            }
        }
        out
    }
}

fn certificates(ctx: &Context) -> Vec<Expiry> {
    CERTIFICATES
        .iter()
        .filter_map(|name| {
            let path = ctx.layout.path(&format!("/etc/kubernetes/pki/{name}.crt"));
            let bytes = ctx.layout.fs().read(&path).ok()?;
            let (not_after, problem) = match crate::credentials::pem::not_after(&bytes) {
                Ok(n) => (Some(n), None),
                Err(e) => (None, Some(e)),
            };
            Some(Expiry {
                name: (*name).into(),
                path: ctx.layout.node_path(&path),
                not_after,
                problem,
            })
        })
        .collect()
}

/// Kubeconfig copies whose admin certificate (this cluster's) is not admin.conf's current one.
fn stale_copies(ctx: &Context) -> Vec<String> {
    let admin = ctx
        .layout
        .fs()
        .read_to_string(&ctx.layout.admin_conf())
        .ok();
    let current = admin
        .as_deref()
        .and_then(|t| kubeconfig_edit::user_credentials(t).ok())
        .and_then(|users| users.into_iter().find_map(|u| u.cert_b64));
    let Some(current) = current else {
        return Vec::new();
    };
    let ca = super::admin_conf::cluster_ca_der(ctx);
    copies::candidates(&ctx.layout, &[])
        .into_iter()
        .filter(|copy| *copy != ctx.layout.admin_conf())
        .filter(|copy| {
            ctx.layout
                .fs()
                .read_to_string(copy)
                .ok()
                .and_then(|t| kubeconfig_edit::user_credentials(&t).ok())
                .is_some_and(|users| {
                    users.iter().any(|u| {
                        u.cert_b64.as_deref().is_some_and(|c| {
                            c != current
                                && super::admin_conf::is_admin_certificate(
                                    c,
                                    Kind::Admin,
                                    ca.as_deref(),
                                )
                        })
                    })
                })
        })
        .map(|copy| ctx.layout.node_path(&copy))
        .collect()
}

/// The newest apiserver pod's restart count (the number of its newest attempt's log: the real
/// kubelet keeps only one dead attempt's file), and the last lines of that attempt.
fn crash_attempts(ctx: &Context) -> (usize, Option<String>) {
    match crate::apiserver::logs::latest(&ctx.layout) {
        Some((number, log)) => (
            number as usize,
            Some(crate::apiserver::logs::tail(&ctx.layout, &log, 5)),
        ),
        None => (0, None),
    }
}

/// The facts: a `status` just read, and what only the diagnosis reads.
pub fn facts(ctx: &Context, status: &Status) -> Facts {
    let now = crate::runtime::clock::now_unix();
    let (manifest_problem, manifest_extends_tokens) = match &status.manifest.read {
        ManifestRead::Parsed {
            extend_token_expiration,
            ..
        } => (None, extend_token_expiration.state.effective()),
        ManifestRead::Problem { error, .. } => (Some(error.clone()), None),
    };
    let mut apiserver = Apiserver::default();
    if let Some(a) = &status.apiserver {
        apiserver.pid = a.pid;
        apiserver.health = a.health.clone();
        apiserver.matches_manifest = a.matches_manifest;
        apiserver.extends_tokens = a
            .extend_token_expiration
            .as_ref()
            .and_then(|e| e.state.effective());
    }
    if apiserver.health.as_deref() != Some("ok") {
        (apiserver.crashed_attempts, apiserver.last_log) = crash_attempts(ctx);
    }
    let parked = crate::change::restart::nudge::parked_path(&ctx.layout);
    Facts {
        now,
        sandbox: !ctx.layout.is_host(),
        credentials: status
            .credentials
            .iter()
            .map(|c| Expiry {
                name: c.path.rsplit('/').next().unwrap_or_default().to_string(),
                path: c.path.clone(),
                not_after: c
                    .not_after
                    .as_deref()
                    .and_then(crate::runtime::clock::parse_rfc3339),
                problem: c.problem.clone(),
            })
            .collect(),
        stale_copies: stale_copies(ctx),
        certificates: certificates(ctx),
        kubelet_running: status.kubelet_running,
        manifest_problem,
        manifest_extends_tokens,
        apiserver,
        migration: status
            .migration
            .clone()
            .filter(|m| m != super::migrate::NOTHING_DEPENDS),
        unfinished: status
            .session
            .as_ref()
            .filter(|s| s.unfinished)
            .map(|s| (s.id.clone(), s.message.clone())),
        parked_manifest: ctx
            .layout
            .fs()
            .exists(&parked)
            .then(|| ctx.layout.node_path(&parked)),
        strays: status.strays.iter().map(|s| s.path.clone()).collect(),
        bad_backups: status
            .backups
            .iter()
            .filter_map(|b| match b {
                BackupEntry::Readable {
                    checksums_ok: false,
                    path,
                    ..
                } => Some(path.clone()),
                BackupEntry::Unreadable { path, .. } => Some(path.clone()),
                _ => None,
            })
            .collect(),
        journal_problem: status.journal_problem.clone(),
    }
}

pub fn run(ctx: &Context) -> Result<()> {
    let findings = status(ctx).findings;
    ctx.ui.report(&Diagnosis {
        guidance: crate::survey::guide::plan(&findings),
        findings,
    })?;
    Ok(())
}
