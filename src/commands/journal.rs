//! `journal list` and `journal abandon`: the sessions, and the documented way out of one that
//! cannot be finished.
use serde::Serialize;

use super::{Context, change_settings};
use crate::change::executor::{self, Done, Ran, Unfinished};
use crate::change::journal::{Journal, Session, State};
use crate::change::plan::{self, Mark, Plan};
use crate::cli::JournalCommand;
use crate::error::{Error, ExitStatus, Result};
use crate::node::store::sha256_hex;
use crate::ui::Report;

pub fn run(ctx: &Context, action: JournalCommand) -> Result<ExitStatus> {
    match action {
        JournalCommand::List => {
            let journal = Journal::load(&ctx.layout)?;
            ctx.ui.report(&SessionList {
                sessions: journal.sessions,
            })?;
            Ok(ExitStatus::Success)
        }
        JournalCommand::Abandon { session, confirm } => {
            abandon(ctx, &session, &change_settings(&confirm, None, None))
        }
    }
}

#[derive(Debug, Serialize)]
pub struct SessionList {
    pub sessions: Vec<Session>,
}

impl Report for SessionList {
    const KIND: &'static str = "Journal";

    fn text(&self) -> String {
        if self.sessions.is_empty() {
            return "no sessions in the journal\n".into();
        }
        self.sessions
            .iter()
            .map(|s| {
                format!(
                    "{}  {:<22} {:<12} {}{}\n",
                    s.id,
                    s.command,
                    format!("{:?}", s.state).to_lowercase(),
                    s.step,
                    s.reverts
                        .as_deref()
                        .map(|r| format!(" (reverts {r})"))
                        .unwrap_or_default()
                )
            })
            .collect()
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AbandonResult {
    pub session: String,
    pub dry_run: bool,
    /// Where the manifest stands: "original", "intended" or "neither".
    pub manifest: &'static str,
    pub backup: Option<String>,
}

impl Report for AbandonResult {
    const KIND: &'static str = "AbandonResult";

    fn text(&self) -> String {
        let verb = if self.dry_run {
            "would be abandoned (dry run: nothing was written)"
        } else {
            "abandoned"
        };
        let mut out = format!(
            "session {} {verb}; the manifest was left as it is ({})\n",
            self.session,
            match self.manifest {
                "original" => "the original",
                "intended" => "the version the session wrote",
                _ => "neither the original nor the intended version",
            }
        );
        if let Some(backup) = &self.backup {
            out.push_str(&format!(
                "  the original is in {backup}; `kubeadm-recover backups restore` puts it back\n"
            ));
        }
        out
    }
}

fn abandon(ctx: &Context, id: &str, settings: &plan::ChangeSettings) -> Result<ExitStatus> {
    let layout = &ctx.layout;
    let ran = executor::run(layout, &ctx.ui, settings, Unfinished::Allow, || {
        let journal = Journal::load(layout)?;
        let session = journal.find(id).cloned().ok_or_else(|| {
            Error::Usage(format!(
                "no session {id} in the journal; see `kubeadm-recover journal list`"
            ))
        })?;
        if !matches!(session.state, State::InProgress | State::Failed) {
            return Err(Error::Usage(format!(
                "session {id} is {:?}, not unfinished: there is nothing to abandon",
                session.state
            )));
        }
        let current = layout
            .fs()
            .read(&layout.apiserver_manifest())
            .ok()
            .map(|b| sha256_hex(&b));
        let manifest = match (current, session.manifest()) {
            (Some(h), Some((original, _, _))) if h == original.sha256 => "original",
            (Some(h), Some((_, intended, _))) if h == intended.sha256 => "intended",
            _ => "neither",
        };
        let mut plan = Plan::new(
            "journal abandon",
            format!("abandon session {id}? The tool will no longer finish or undo it"),
            plan::Action::CloseSession,
        )
        .step(format!(
            "mark session {id} ({}) abandoned; the manifest stays as it is",
            session.command
        ));
        plan.on_success = Some(Mark {
            session: id.to_string(),
            state: State::Abandoned,
            step: format!(
                "abandoned by a person{}",
                settings
                    .reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
        });
        Ok((plan, (manifest, session.backup)))
    })?;
    let Done {
        executed,
        facts: (manifest, backup),
        ..
    } = match ran {
        Ran::Done(done) => done,
        Ran::Declined(declined) => return Ok(ExitStatus::Declined(declined)),
    };
    ctx.ui.report(&AbandonResult {
        session: id.to_string(),
        dry_run: executed.dry_run(),
        manifest,
        backup,
    })?;
    Ok(ExitStatus::Success)
}
