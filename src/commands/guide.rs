//! `guide` (and `kubeadm-recover` alone on a terminal): the break-glass flow for a person. It
//! reads the node, says what is wrong, and runs each step of the plan `guide::plan` makes as the
//! command a script would run — through the same executor — with the executor's question
//! replaced by the guide's (do it / skip / show details / quit).
use std::collections::BTreeSet;

use super::{Context, dispatch};
use crate::change::journal::{Journal, Session, State};
use crate::error::{Declined, Error, ExitStatus, Result};
use crate::survey::diagnose::Finding;
use crate::survey::guide::{self, Guidance, Step};
use crate::ui::guided::{self, GuidedStep};
use crate::ui::shell_quote;
use crate::ui::{Ui, UiSettings, stdout_write};

const NOT_A_TERMINAL: &str = "the guide asks its questions at a terminal, and stdin or stderr is not one. \
     For scripts: `kubeadm-recover diagnose` shows this node's findings and the steps that fix them; \
     run each step with --yes and --reason, e.g. `kubeadm-recover admin-conf regenerate --update-copies \
     --yes --reason 'admin.conf expired'`. `kubeadm-recover --help` lists every command";

const DEFAULT_REASON: &str = "break-glass recovery with kubeadm-recover guide";

/// What became of a step.
enum Outcome {
    Done,
    Skipped,
    Stopped(String),
}

pub fn run(ctx: &Context, settings: UiSettings, reason: Option<String>) -> Result<ExitStatus> {
    if ctx.ui.json() {
        return Err(Error::Usage(
            "the guide talks to a person; for a document, use `kubeadm-recover diagnose -o json`"
                .into(),
        ));
    }
    if !ctx.ui.interactive() {
        return Err(Error::Usage(NOT_A_TERMINAL.into()));
    }
    // From the first question on, Ctrl-C is reported, never a kill mid-sentence.
    crate::runtime::interrupt::install();
    ctx.ui
        .info("looking at the node: manifest, kubelet, apiserver, credentials, journal ...");
    let findings = crate::survey::facts::survey(&ctx.layout).into_findings();
    let guidance = guide::plan(&findings);
    stdout_write(&overview(&findings, &guidance))?;
    if guidance.steps.is_empty() {
        stdout_write("\nnothing for kubeadm-recover to do on this node.\n")?;
        return Ok(ExitStatus::Success);
    }
    let reason = match reason {
        Some(reason) => reason,
        None => guided::ask_reason(DEFAULT_REASON)?,
    };
    let before = session_ids(ctx);
    let mut outcomes = Vec::new();
    let mut ending = Ok(ExitStatus::Success);
    for (i, step) in guidance.steps.iter().enumerate() {
        let number = i + 1;
        stdout_write(&format!(
            "\n== step {number}/{}: {}\n   the same, scripted: {}\n{}",
            guidance.steps.len(),
            step.title,
            scripted(ctx, step, &reason),
            step.note
                .as_deref()
                .map(|n| format!("   note: {n}\n"))
                .unwrap_or_default()
        ))?;
        let step_ui = Ui::guided(
            settings,
            GuidedStep {
                number,
                total: guidance.steps.len(),
                details: details(ctx, step, &findings, &reason),
            },
        );
        match run_step(ctx, settings, step_ui, step, &reason) {
            Ok(ExitStatus::Success) => outcomes.push(Outcome::Done),
            Ok(ExitStatus::Declined(Declined { quit: false, .. })) => {
                outcomes.push(Outcome::Skipped)
            }
            Ok(stopped) => {
                outcomes.push(Outcome::Stopped(
                    stopped.message().unwrap_or_default().to_string(),
                ));
                ending = Ok(stopped);
                break;
            }
            Err(e) => {
                outcomes.push(Outcome::Stopped(e.to_string()));
                ending = Err(e);
                break;
            }
        }
    }
    stdout_write(&summary(ctx, &guidance, &outcomes, &before))?;
    ending
}

/// The step as `kubeadm-recover` parses it, run on this node with the guide's question.
fn run_step(
    ctx: &Context,
    settings: UiSettings,
    ui: Ui,
    step: &Step,
    reason: &str,
) -> Result<ExitStatus> {
    let command = crate::cli::step_command(step.command, reason);
    let step_ctx = Context {
        layout: ctx.layout.clone(),
        ui,
    };
    dispatch(&step_ctx, settings, command)
}

/// ` --root DIR` on a sandbox, nothing on the node itself: for the commands the guide prints.
fn root_flag(ctx: &Context) -> String {
    if ctx.layout.is_host() {
        String::new()
    } else {
        format!(
            " --root {}",
            shell_quote(&ctx.layout.root().display().to_string())
        )
    }
}

/// What a script would type for this step on this node.
fn scripted(ctx: &Context, step: &Step, reason: &str) -> String {
    format!(
        "{}{} --reason {} --yes",
        step.command_line(),
        root_flag(ctx),
        shell_quote(reason)
    )
}

/// The findings, one line each, and the proposed steps in order.
fn overview(findings: &[Finding], guidance: &Guidance) -> String {
    let mut out = String::from("What is wrong on this node:\n");
    if findings.is_empty() {
        out.push_str("  nothing\n");
    }
    for f in findings {
        out.push_str(&format!("  [{}] {}\n", f.severity.label(), f.summary));
    }
    if !guidance.steps.is_empty() {
        out.push_str("\nProposed steps (each is shown and asked for):\n");
        for (i, step) in guidance.steps.iter().enumerate() {
            out.push_str(&format!("  {}. {}\n", i + 1, step.title));
        }
    }
    if !guidance.by_hand.is_empty() {
        out.push_str("\nFor you to do (this tool does not):\n");
        for item in &guidance.by_hand {
            out.push_str(&format!("  - {item}\n"));
        }
    }
    out
}

/// "show details": the findings a step answers, with their evidence, and what it runs.
fn details(ctx: &Context, step: &Step, findings: &[Finding], reason: &str) -> String {
    let mut out = String::new();
    for f in findings.iter().filter(|f| step.answers.contains(&f.id)) {
        out.push_str(&format!(
            "  [{}] {}\n    evidence: {}\n",
            f.severity.label(),
            f.summary,
            f.evidence.replace('\n', "\n              ")
        ));
    }
    out.push_str(&format!("  runs: {}\n", scripted(ctx, step, reason)));
    if let Some(note) = &step.note {
        out.push_str(&format!("  note: {note}\n"));
    }
    out
}

/// The sessions of the journal; the guide only starts with a readable one (an unreadable
/// journal refuses every change, so the plan has no steps).
fn session_ids(ctx: &Context) -> BTreeSet<String> {
    Journal::load(&ctx.layout)
        .map(|j| j.sessions.into_iter().map(|s| s.id).collect())
        .unwrap_or_default()
}

/// What changed, the backups and sessions, how to undo each, and what comes next.
fn summary(
    ctx: &Context,
    guidance: &Guidance,
    outcomes: &[Outcome],
    before: &BTreeSet<String>,
) -> String {
    let mut out = String::from("\nSummary:\n");
    for (i, step) in guidance.steps.iter().enumerate() {
        let what = match outcomes.get(i) {
            Some(Outcome::Done) => "done".to_string(),
            Some(Outcome::Skipped) => "skipped (nothing changed)".to_string(),
            Some(Outcome::Stopped(why)) => format!("not done: {why}"),
            None => "not started".to_string(),
        };
        out.push_str(&format!("  {}. {}: {what}\n", i + 1, step.title));
    }
    let root = root_flag(ctx);
    // What changed is what the journal recorded; when it cannot be read, say so rather than
    // claim that nothing changed.
    let new: Vec<Session> = match Journal::load(&ctx.layout) {
        Ok(journal) => {
            let new: Vec<Session> = journal
                .sessions
                .into_iter()
                .filter(|s| !before.contains(&s.id))
                .collect();
            if new.is_empty() {
                out.push_str("  nothing on the node was changed\n");
            }
            new
        }
        Err(e) => {
            out.push_str(&format!(
                "  what changed cannot be told: {e}; the audit log and `kubeadm-recover backups list{root}` show it\n"
            ));
            Vec::new()
        }
    };
    for s in &new {
        out.push_str(&format!(
            "  session {} ({}): {}; backup {}\n",
            s.id,
            s.command,
            s.state.name(),
            s.backup.as_deref().unwrap_or("none"),
        ));
        if s.state != State::Done {
            continue;
        }
        out.push_str(&format!(
            "    undo: {}{root}\n",
            crate::ui::command_line(["kubeadm-recover", "revert", "--session", &s.id])
        ));
        if let Some(r) = &s.revert_after {
            out.push_str(&match &r.timer {
                Some(timer) => format!(
                    "    token extension is reverted by itself at {} (timer {timer}), once nothing depends on it\n",
                    r.deadline
                ),
                None => format!("    revert token extension by {}: no timer on this node\n", r.deadline),
            });
        }
    }
    let extension_enabled = new
        .iter()
        .any(|s| s.enables_token_extension() && s.state == State::Done);
    if extension_enabled {
        out.push_str(&format!(
            "  next: move the clients off stale and long-lived tokens — `kubeadm-recover migrate check{root}` says who — \
             then turn extension off with the undo command above\n"
        ));
    }
    if !guidance.by_hand.is_empty() {
        out.push_str("  still for you to do:\n");
        for item in &guidance.by_hand {
            out.push_str(&format!("    - {item}\n"));
        }
    }
    out
}
