//! `status`: what the node says, read-only.
use super::Context;
use crate::error::{ExitStatus, Result};
use crate::survey::diagnose::Finding;
use crate::survey::diagnose::{Health, Severity};
use crate::survey::facts::{
    BackupEntry, ControlPlaneNode, ManifestRead, NotANode, Status, Survey, WorkerStatus, survey,
};
use crate::survey::machine::Swap;
use crate::ui::{Report, escape};

impl Report for Status {
    const KIND: &'static str = "Status";

    fn text(&self) -> String {
        let mut out = format!("manifest  {}\n", self.manifest.path);
        match &self.manifest.read {
            ManifestRead::Problem { error, hint, .. } => {
                out.push_str(&format!("  PROBLEM: {error}\n"));
                if let Some(hint) = hint {
                    out.push_str(&format!("  what to do: {hint}\n"));
                }
            }
            ManifestRead::Parsed {
                image,
                version,
                secure_port,
                extend_token_expiration: flag,
                ..
            } => {
                out.push_str(&format!(
                    "  image     {} (version {})\n",
                    image.as_deref().unwrap_or("?"),
                    version.as_deref().unwrap_or("unknown")
                ));
                if let Some(port) = secure_port {
                    out.push_str(&format!("  port      {port}\n"));
                }
                out.push_str(&format!(
                    "  --service-account-extend-token-expiration: {}\n",
                    flag.state.describe()
                ));
                if flag.occurrences.len() > 1 {
                    let lines: Vec<String> = flag
                        .occurrences
                        .iter()
                        .map(|o| o.line.to_string())
                        .collect();
                    out.push_str(&format!(
                        "    written {} times (lines {}); the last one wins\n",
                        lines.len(),
                        lines.join(", ")
                    ));
                }
            }
        }
        if let Some(problem) = &self.journal_problem {
            out.push_str(&format!(
                "JOURNAL   UNREADABLE: {problem}\n          every change is refused until it is fixed\n"
            ));
        }
        if let Some(session) = &self.session {
            let label = if session.unfinished {
                "UNFINISHED"
            } else {
                "session"
            };
            out.push_str(&format!(
                "{label:<9} {}\n",
                session.message.replace('\n', "\n          ")
            ));
            if let Some(r) = &session.revert_after {
                out.push_str(&match &r.timer {
                    Some(timer) => format!(
                        "          revert scheduled for {} ({}) by the timer {timer}\n",
                        r.deadline,
                        crate::credentials::token::relative(
                            r.deadline_unix,
                            crate::runtime::clock::now_unix()
                        )
                    ),
                    None => format!(
                        "          revert due by {} ({}): {}\n",
                        r.deadline,
                        crate::credentials::token::relative(
                            r.deadline_unix,
                            crate::runtime::clock::now_unix()
                        ),
                        r.note.as_deref().unwrap_or("no timer")
                    ),
                });
            }
        }
        out.push_str(&self.apiserver_text());
        if self.strays.is_empty() {
            out.push_str("strays    none\n");
        } else {
            out.push_str("strays    (the kubelet reads these too; a change will be refused until they are moved)\n");
            for s in &self.strays {
                out.push_str(&format!("  {}: {}\n", s.path, s.why));
            }
        }
        out.push_str(&format!("backups   {}\n", self.backups.len()));
        for b in &self.backups {
            match b {
                BackupEntry::Readable {
                    id,
                    created,
                    checksums_ok,
                    ..
                } => out.push_str(&format!(
                    "  {id}  {created}{}\n",
                    if *checksums_ok {
                        ""
                    } else {
                        "  CHECKSUM MISMATCH"
                    }
                )),
                BackupEntry::Unreadable { path, error } => {
                    out.push_str(&format!("  {path}: unreadable: {error}\n"))
                }
            }
        }
        out.push_str("credentials\n");
        for c in &self.credentials {
            out.push_str(&format!("  {}: {}\n", c.path, c.describe()));
        }
        out.push_str(&self.certificates_text());
        if let Some(migration) = &self.migration {
            out.push_str(&format!("migration {migration}\n"));
        }
        if let Some(nodes) = self.control_plane_nodes.as_deref() {
            out.push_str(&ControlPlaneNode::line(nodes));
        }
        out.push_str(&findings_text(&self.findings));
        out
    }
}

/// The problems among the findings, one line each (the informational ones are the status itself).
fn findings_text(findings: &[Finding]) -> String {
    let problems: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.severity != Severity::Info)
        .collect();
    let mut out = String::new();
    if problems.is_empty() {
        out.push_str("findings  nothing wrong found\n");
    } else {
        out.push_str(
            "findings  (`kubeadm-recover diagnose`: evidence and fixes; `kubeadm-recover guide`: fix them)\n",
        );
        for f in problems {
            out.push_str(&format!("  [{}] {}\n", f.severity.label(), f.summary));
        }
    }
    out
}

impl Status {
    /// One line: what has expired or is not in use, else when the next one ends.
    fn certificates_text(&self) -> String {
        let c = &self.certificates;
        let mut parts = Vec::new();
        for (what, names) in [
            ("EXPIRED", &c.expired),
            ("expiring within 30 days", &c.expiring),
            ("renewed but NOT IN USE", &c.not_in_use),
        ] {
            if !names.is_empty() {
                parts.push(format!("{what}: {}", names.join(", ")));
            }
        }
        if parts.is_empty() {
            match &c.next_expiry {
                Some(next) => parts.push(format!(
                    "next to expire: {} at {}",
                    next.name, next.not_after
                )),
                None => parts.push("none found".into()),
            }
        }
        format!(
            "certificates  {} (`kubeadm-recover certs check`)\n",
            parts.join("; ")
        )
    }

    fn apiserver_text(&self) -> String {
        let kubelet = if self.kubelet_running {
            "running"
        } else {
            "NOT running"
        };
        let Some(a) = &self.apiserver else {
            return format!(
                "apiserver unknown: the manifest cannot be read, so its port is unknown (kubelet {kubelet})\n"
            );
        };
        let Some(pid) = a.pid else {
            return format!(
                "apiserver no kube-apiserver process serves port {} (kubelet {kubelet})\n",
                a.port
            );
        };
        let mut out = format!(
            "apiserver pid {pid}, started {}, {}\n",
            a.started.as_deref().unwrap_or("?"),
            match &a.health {
                Some(Health::Ok) => "healthy (/livez, /readyz ok)".to_string(),
                Some(Health::Unhealthy(why)) => format!("NOT healthy: {why}"),
                None => "health unknown".to_string(),
            }
        );
        if let Some(flag) = &a.extend_token_expiration {
            out.push_str(&format!(
                "  --service-account-extend-token-expiration in its command line: {}\n",
                flag.state.describe()
            ));
        }
        if a.matches_manifest == Some(false) {
            out.push_str("  its command line differs from the manifest: a restart is pending (or the kubelet is not picking it up)\n");
        }
        if let Some(pod) = &a.pod {
            out.push_str(&format!(
                "  pod       config hash {}, container {}, restarts {}\n",
                pod.config_hash,
                pod.container_id
                    .as_deref()
                    .map_or("?", |id| &id[..id.len().min(13)]),
                pod.restart_count.map_or("?".to_string(), |n| n.to_string()),
            ));
            if let Some(mirror) = pod
                .mirror_config_hash
                .as_ref()
                .filter(|m| **m != pod.config_hash)
            {
                out.push_str(&format!(
                    "  the mirror pod in the API still shows config hash {mirror}: the kubelet replaces it at its next sync (about a minute after an outage)\n"
                ));
            }
        }
        out
    }
}

pub fn run(ctx: &Context) -> Result<ExitStatus> {
    match survey(&ctx.layout) {
        Survey::ControlPlane(status) => ctx.ui.report(status.as_ref())?,
        Survey::Worker(worker) => ctx.ui.report(worker.as_ref())?,
        Survey::NotANode(none) => ctx.ui.report(&none)?,
    }
    Ok(ExitStatus::Success)
}

impl Report for WorkerStatus {
    const KIND: &'static str = "Status";

    fn text(&self) -> String {
        let now = crate::runtime::clock::now_unix();
        let mut out = format!(
            "machine   worker node; its control plane is at {}\n",
            escape(
                self.control_plane
                    .as_deref()
                    .unwrap_or("? (kubelet.conf names no server)")
            )
        );
        out.push_str(&format!(
            "kubelet   {}\n",
            if self.kubelet_running {
                "running"
            } else {
                "NOT RUNNING"
            }
        ));
        if let Some(client) = &self.kubelet_client {
            out.push_str(&format!(
                "  client certificate {}: {}\n",
                client.path,
                client.describe(now)
            ));
        }
        if let Some(endpoint) = &self.runtime_endpoint {
            out.push_str(&format!("  runtime   {}\n", escape(endpoint)));
        }
        out.push_str(&format!(
            "swap      {}\n",
            Swap::describe(self.swap.as_ref())
        ));
        out.push_str(&findings_text(&self.findings));
        out
    }
}

impl Report for NotANode {
    const KIND: &'static str = "Status";

    fn text(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            out.push_str(&format!("{}\n  {}\n  {}\n", f.summary, f.evidence, f.fix));
        }
        out
    }
}
