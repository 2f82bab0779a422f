//! `kubeconfig check`: why kubectl cannot talk to this cluster. Reads, never writes; needs no
//! root and no node. The analysis is `credentials::kubeconfig::check`, the look at the server
//! `credentials::kubeconfig::probe`; this file reports.
use std::path::PathBuf;

use serde::Serialize;

use super::Context;
use crate::credentials::kubeconfig::check::{self, Note, Problem};
use crate::credentials::kubeconfig::probe;
use crate::credentials::token::relative;
use crate::credentials::verify::Verified;
use crate::error::{ExitStatus, Result};
use crate::runtime::clock::{now_unix, rfc3339};
use crate::ui::{Report, Untrusted, escape};

pub fn run(
    ctx: &Context,
    kubeconfig: Option<PathBuf>,
    context: Option<&str>,
) -> Result<ExitStatus> {
    let now = now_unix();
    let loaded = check::load(&ctx.layout, kubeconfig)?;
    let layout = &ctx.layout;
    let read = |named: &str| check::read_for(layout, loaded.owner, named);
    let mut analysis = match &loaded.unloadable {
        Some((file, why)) => check::unloadable(file, why),
        None => check::analyse(&loaded.config, context, now, &read),
    };
    if !loaded.skipped.is_empty() {
        analysis.notes.push(Note::Skipped {
            files: loaded.skipped.iter().map(|p| layout.node_path(p)).collect(),
        });
    }
    if let Some(chosen) = analysis.context.clone() {
        let others = check::other_contexts(&loaded.config, &chosen, now, &read);
        analysis.notes.extend(others);
    }
    let identity = match analysis.target.clone() {
        Some(target) => probe::look_at_server(&target, now, &mut analysis)?,
        None => None,
    };
    let tool = |args: &[&str]| layout.tool_command(args);
    let report = CheckReport {
        files: loaded.files.iter().map(|p| layout.node_path(p)).collect(),
        context: analysis.context.clone().map(Untrusted::from),
        cluster: analysis
            .target
            .as_ref()
            .map(|t| Untrusted::from(t.cluster.as_str())),
        server: analysis
            .target
            .as_ref()
            .map(|t| Untrusted::from(t.server.as_str())),
        user: analysis
            .target
            .as_ref()
            .and_then(|t| t.user.as_deref())
            .map(Untrusted::from),
        works: analysis.problems.is_empty() && identity.is_some(),
        findings: analysis
            .problems
            .iter()
            .map(|p| Finding {
                kubectl_says: p.kubectl_says(),
                fix: p.fix(&tool),
                problem: p.clone(),
            })
            .collect(),
        notes: analysis.notes.clone(),
        identity,
        now,
    };
    ctx.ui.report(&report)?;
    Ok(
        if report.works || (report.findings.is_empty() && report.asked_nothing()) {
            ExitStatus::Success
        } else {
            ExitStatus::Negative("kubectl would not work with this kubeconfig".into())
        },
    )
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Finding {
    #[serde(flatten)]
    problem: Problem,
    kubectl_says: String,
    fix: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CheckReport {
    files: Vec<String>,
    context: Option<Untrusted>,
    cluster: Option<Untrusted>,
    server: Option<Untrusted>,
    user: Option<Untrusted>,
    /// kubectl would work: nothing wrong, and the server said who we are.
    works: bool,
    findings: Vec<Finding>,
    notes: Vec<Note>,
    /// Who the server takes this kubeconfig for.
    identity: Option<Verified>,
    #[serde(skip)]
    now: i64,
}

impl CheckReport {
    /// The server was not asked (an exec plugin, basic auth, an apiserver before 1.26): nothing
    /// found is not a proof either way, and not a failure.
    fn asked_nothing(&self) -> bool {
        self.identity.is_none()
    }
}

impl Report for CheckReport {
    const KIND: &'static str = "KubeconfigCheck";

    fn text(&self) -> String {
        let mut out = format!(
            "kubeconfig: {}\n",
            if self.files.is_empty() {
                "(none of the files exists)".to_string()
            } else {
                self.files
                    .iter()
                    .map(|f| escape(f).into_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        let or = |v: &Option<Untrusted>| v.as_ref().map_or("-".to_string(), |u| u.to_string());
        out.push_str(&format!(
            "context: {}   cluster: {}   user: {}\nserver: {}\n",
            or(&self.context),
            or(&self.cluster),
            or(&self.user),
            or(&self.server)
        ));
        for finding in &self.findings {
            out.push_str(&format!("PROBLEM  {}\n", self.describe(&finding.problem)));
            out.push_str(&format!(
                "  kubectl says: {}\n",
                escape(&finding.kubectl_says)
            ));
            out.push_str(&format!("  what to do: {}\n", escape(&finding.fix)));
        }
        for note in &self.notes {
            out.push_str(&format!("note     {}\n", describe_note(note)));
        }
        match &self.identity {
            Some(who) => out.push_str(&format!(
                "kubectl works: the server takes you for {} (groups: {})\n",
                escape(&who.username),
                escape(&who.groups.join(", "))
            )),
            None if self.findings.is_empty() => out.push_str(
                "nothing wrong found, but the server was not asked who you are (see the notes): try `kubectl auth whoami`\n",
            ),
            None => out.push_str("kubectl will not work until the problems above are fixed\n"),
        }
        out
    }
}

impl CheckReport {
    fn describe(&self, problem: &Problem) -> String {
        match problem {
            Problem::InvalidConfiguration { reason, .. } => {
                format!("invalid configuration: {reason}")
            }
            Problem::ExpiredToken {
                user,
                field,
                expired,
            } => format!(
                "user {user}: the {field} EXPIRED {} ({})",
                relative(*expired, self.now),
                rfc3339(*expired)
            ),
            Problem::ExpiredClientCertificate { user, not_after } => format!(
                "user {user}: the client certificate EXPIRED {} (not after {})",
                relative(*not_after, self.now),
                rfc3339(*not_after)
            ),
            Problem::ExecPluginNotFound { user, command, .. } => {
                format!("user {user}: the exec plugin {command} is not installed (not on PATH)")
            }
            Problem::ServerCertificateExpired { server, not_after } => format!(
                "the server {server} presents a certificate that EXPIRED {} (not after {})",
                relative(*not_after, self.now),
                rfc3339(*not_after)
            ),
            Problem::UnknownAuthority { server } => format!(
                "the server {server} presents a certificate the kubeconfig's CA did not sign"
            ),
            Problem::ConnectionRefused { server } => format!("{server}: connection refused"),
            Problem::TimedOut { server } => format!("{server}: no answer in time"),
            Problem::Unreachable { server, error } => format!("{server}: {error}"),
            Problem::Rejected {
                server,
                status,
                message,
            } => format!("{server} answered {status}: {message}"),
        }
    }
}

fn describe_note(note: &Note) -> String {
    match note {
        Note::ExecPlugin {
            user,
            command,
            refresh,
        } => format!(
            "user {user}: the credential comes from the exec plugin {command}, not run here (it may prompt); if it fails: {}",
            escape(refresh)
        ),
        Note::OpaqueToken { user, field } => {
            format!(
                "user {user}: the {field} is not a JWT; only the server can say whether it is valid"
            )
        }
        Note::Anonymous => {
            "the user holds no credential: kubectl talks to the server as anonymous".into()
        }
        Note::InsecureSkipTlsVerify => {
            "insecure-skip-tls-verify: the server's certificate is not checked (by kubectl either)"
                .into()
        }
        Note::Skipped { files } => format!(
            "$KUBECONFIG names files that do not exist, skipped as kubectl skips them: {}",
            escape(&files.join(", "))
        ),
        Note::OtherContext {
            context,
            user,
            what,
            expired,
        } => format!(
            "context {context} (user {user}): the {what} EXPIRED {}; kubectl fails there too (`kubeadm-recover kubeconfig check --context {}`)",
            relative(*expired, crate::runtime::clock::now_unix()),
            crate::ui::command_line([context.to_string()])
        ),
    }
}
