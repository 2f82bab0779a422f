//! `status`: what the node says, read-only.
use std::path::PathBuf;

use serde::Serialize;

use super::Context;
use super::backups::{BackupEntry, entries};
use crate::apiserver::client::{ApiClient, Endpoint};
use crate::apiserver::process;
use crate::change::journal::{Journal, Session, State};
use crate::credentials::kubeconfig::{CredentialInfo, credential_info};
use crate::error::Result;
use crate::manifest::{ExtendTokens, Manifest};
use crate::node::NodeLayout;
use crate::node::store::strays;
use crate::survey::diagnose::{Finding, Severity};
use crate::ui::Report;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub root: PathBuf,
    pub session: Option<SessionSummary>,
    /// The journal cannot be read: every change is refused until someone looks at it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal_problem: Option<String>,
    pub manifest: ManifestStatus,
    /// The apiserver for the manifest's port; absent when the manifest cannot be read.
    pub apiserver: Option<ApiserverStatus>,
    pub kubelet_running: bool,
    pub strays: Vec<StrayEntry>,
    pub backups: Vec<BackupEntry>,
    pub credentials: Vec<CredentialInfo>,
    /// `migrate check`'s one line, when the apiserver answers it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migration: Option<String>,
    /// What is wrong, as `diagnose` says it (the same pure module, from the same facts).
    pub findings: Vec<Finding>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionSummary {
    pub id: String,
    pub command: String,
    pub state: State,
    pub step: String,
    pub started: String,
    pub age_seconds: i64,
    pub uid: u32,
    pub sudo_user: Option<String>,
    pub reason: Option<String>,
    pub unfinished: bool,
    pub credentials_issued: Vec<String>,
    pub message: String,
    /// `--revert-after`: when it is to be reverted, and by what.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revert_after: Option<crate::change::journal::RevertSchedule>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestStatus {
    pub path: String,
    #[serde(flatten)]
    pub read: ManifestRead,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ManifestRead {
    #[serde(rename_all = "camelCase")]
    Parsed {
        container: Option<String>,
        image: Option<String>,
        version: Option<String>,
        secure_port: Option<String>,
        extend_token_expiration: ExtendTokens,
    },
    Problem {
        error: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        hint: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        line: Option<usize>,
        #[serde(skip_serializing_if = "Option::is_none")]
        column: Option<usize>,
    },
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiserverStatus {
    pub port: u16,
    /// None: no `kube-apiserver` process serves the port.
    pub pid: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    /// "ok", or why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extend_token_expiration: Option<ExtendTokens>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matches_manifest: Option<bool>,
    /// The pod the process runs in, as the runtime and the kubelet's files say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodStatus>,
}

/// The apiserver's static pod on this node: what the runtime runs (the process's cgroup,
/// crictl), the kubelet's attempt logs, and the mirror pod in the API, which right after an
/// outage can still show the previous pod for about a minute.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    pub config_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// The container's restart count: the number of its newest attempt's log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_count: Option<u32>,
    /// The mirror pod's `kubernetes.io/config.hash`, where the API answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror_config_hash: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct StrayEntry {
    pub path: String,
    pub why: String,
}

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
        if let Some(migration) = &self.migration {
            out.push_str(&format!("migration {migration}\n"));
        }
        let problems: Vec<&Finding> = self
            .findings
            .iter()
            .filter(|f| f.severity != Severity::Info)
            .collect();
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
}

impl Status {
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
            match a.health.as_deref() {
                Some("ok") => "healthy (/livez, /readyz ok)".to_string(),
                Some(other) => format!("NOT healthy: {other}"),
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

pub fn run(ctx: &Context) -> Result<()> {
    ctx.ui.report(&status(ctx))?;
    Ok(())
}

pub fn status(ctx: &Context) -> Status {
    let layout = &ctx.layout;
    let path = layout.apiserver_manifest();
    let now = crate::runtime::clock::now_unix();
    let mut apiserver = None;
    let read = match super::read_manifest(layout) {
        Err(e) => ManifestRead::Problem {
            error: e.to_string(),
            hint: None,
            line: None,
            column: None,
        },
        Ok(text) => match Manifest::parse(&text) {
            Err(e) => ManifestRead::Problem {
                error: e.to_string(),
                hint: Some(e.hint().to_string()),
                line: e.line,
                column: e.col,
            },
            Ok(m) => {
                apiserver = Some(running_apiserver(layout, &m));
                ManifestRead::Parsed {
                    container: m.container_name.clone(),
                    image: m.image.clone(),
                    version: m.version().map(|(a, b, c)| format!("{a}.{b}.{c}")),
                    secure_port: m.flag("secure-port"),
                    extend_token_expiration: m.extend_tokens(),
                }
            }
        },
    };
    let (journal, journal_problem) = match Journal::load(layout) {
        Ok(j) => (j, None),
        Err(e) => (Journal::default(), Some(e.to_string())),
    };
    let session = journal
        .unfinished()
        .map(|s| (s, true))
        .or_else(|| journal.revertable().map(|s| (s, false)))
        .map(|(s, unfinished)| summary(layout, s, unfinished, now));
    // Only an apiserver that is there and healthy is asked (no waiting on one that is not).
    let migration = apiserver
        .as_ref()
        .filter(|a| a.health.as_deref() == Some("ok"))
        .and_then(|_| {
            super::migrate::inspect(
                ctx,
                std::time::Duration::ZERO,
                &crate::cli::ApiOptions { kubeconfig: None },
            )
            .ok()
        })
        .map(|check| check.summary());
    let mut status = Status {
        root: layout.root().to_path_buf(),
        migration,
        findings: Vec::new(),
        session,
        journal_problem,
        manifest: ManifestStatus {
            path: layout.node_path(&path),
            read,
        },
        apiserver,
        kubelet_running: process::kubelet_running(layout),
        strays: strays::find(layout)
            .into_iter()
            .map(|s| StrayEntry {
                path: layout.node_path(&s.path),
                why: s.why,
            })
            .collect(),
        backups: entries(ctx),
        credentials: [layout.admin_conf(), layout.super_admin_conf()]
            .iter()
            .map(|p| credential_info(layout, p, now))
            .collect(),
    };
    // What is wrong, from what was just read (and what only the diagnosis reads).
    status.findings = crate::survey::diagnose::diagnose(&super::diagnose::facts(ctx, &status));
    status
}

fn summary(layout: &NodeLayout, s: &Session, unfinished: bool, now: i64) -> SessionSummary {
    SessionSummary {
        id: s.id.clone(),
        command: s.command.clone(),
        state: s.state,
        step: s.step.clone(),
        started: s.started.clone(),
        age_seconds: now - s.started_unix,
        uid: s.uid,
        sudo_user: s.sudo_user.clone(),
        reason: s.reason.clone(),
        unfinished,
        credentials_issued: s.credentials_issued.clone(),
        revert_after: s
            .revert_after
            .as_ref()
            .map(|r| crate::change::schedule::live(layout, r)),
        message: if unfinished {
            crate::change::journal::unfinished_message(layout, s)
        } else {
            describe_session(layout, s, now)
        },
    }
}

/// The running apiserver for this manifest: pid, start, health, and the flag in its command line.
fn running_apiserver(layout: &NodeLayout, manifest: &Manifest) -> ApiserverStatus {
    let port = manifest.secure_port();
    let Some(found) = process::find_apiserver(port) else {
        return ApiserverStatus {
            port,
            pid: None,
            started: None,
            health: None,
            extend_token_expiration: None,
            matches_manifest: None,
            pod: None,
        };
    };
    let args = found.args.get(1..).unwrap_or_default();
    let (host, probe_port) = manifest.probe_endpoint();
    let (health, mirror_config_hash) = crate::apiserver::runtime().block_on(async {
        let client = match ApiClient::new(
            layout,
            &Endpoint {
                host,
                port: probe_port,
            },
        ) {
            Ok(client) => client,
            Err(e) => return (Err(e), None),
        };
        let health = client.healthy().await.map_err(|e| e.to_string());
        let mirror = match health {
            Ok(()) => {
                client
                    .mirror_config_hash(manifest.advertise_endpoint.as_deref())
                    .await
            }
            Err(_) => None,
        };
        (health, mirror)
    });
    let in_pod = process::pod_of(found.identity.pid);
    let pod = in_pod.map(|in_pod| PodStatus {
        restart_count: crate::apiserver::logs::restart_count(layout, &in_pod.uid),
        container_id: process::crictl_container_id(layout).or(Some(in_pod.container_id)),
        config_hash: in_pod.uid,
        mirror_config_hash,
    });
    ApiserverStatus {
        port,
        pid: Some(found.identity.pid),
        started: process::started_unix(&found.identity).map(crate::runtime::clock::rfc3339),
        health: Some(match health {
            Ok(()) => "ok".to_string(),
            Err(e) => e,
        }),
        extend_token_expiration: Some(crate::manifest::extend_tokens_of_process(
            args,
            manifest.version(),
        )),
        matches_manifest: Some(args == manifest.argument_values().as_slice()),
        pod,
    }
}

fn age(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s} seconds"),
        s if s < 2 * 3600 => format!("{} minutes", s / 60),
        s if s < 2 * 86_400 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

/// "token extension enabled 3 days ago by root (sudo alice), reason: ...; revert with: ..."
fn describe_session(layout: &crate::node::NodeLayout, s: &Session, now: i64) -> String {
    let what = match s.command.as_str() {
        "extend-tokens enable" => "token extension enabled".to_string(),
        "extend-tokens disable" => "token extension disabled".to_string(),
        other => other.to_string(),
    };
    let who = match (&s.sudo_user, s.uid) {
        (Some(user), _) => format!("{user} (via sudo)"),
        (None, 0) => "root".to_string(),
        (None, uid) => format!("uid {uid}"),
    };
    let reason = s
        .reason
        .as_deref()
        .map(|r| format!(", reason: {}", crate::ui::escape(r)))
        .unwrap_or_default();
    format!(
        "{what} {} ago by {}{reason}; revert with: {}",
        age(now - s.started_unix),
        crate::ui::escape(&who),
        layout.tool_command(&["revert"])
    )
}
