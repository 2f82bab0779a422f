//! One file per subcommand; orchestration only. Parsed flags become domain settings here, at
//! the top: below this module nothing knows about clap.
mod admin_conf;
mod backups;
mod certs;
mod certs_renew;
mod diagnose;
mod extend_tokens;
mod guide;
mod journal;
mod kubeconfig;
mod kubeconfig_check;
mod migrate;
mod rehearse;
mod revert;
mod shell;
mod status;
mod token;

use crate::change::plan::ChangeSettings;
use crate::change::renew::Request;
use crate::change::restart::WaitOptions;
use crate::cli::{self, Cli, Command, ConfirmOptions, RestartOptions, StaleTokenOptions};
use crate::error::{ExitStatus, Result};
use crate::node::NodeLayout;
use crate::ui::{Format, Ui, UiSettings};

/// What every command gets: where the node is, and how to talk.
pub struct Context {
    pub layout: NodeLayout,
    pub ui: Ui,
}

pub fn run(cli: Cli) -> Result<ExitStatus> {
    let settings = ui_settings(&cli);
    let node = NodeLayout::new(cli.global.root.clone())?;
    let ctx = Context {
        layout: match &cli.command {
            Some(command) => records_layout(&node, command)?,
            None => node,
        },
        ui: Ui::new(settings),
    };
    match cli.command {
        // Alone on a terminal: the guide. Anywhere else, at once, the advice (never a hang).
        None => guide::run(&ctx, settings, None),
        Some(command) => dispatch(&ctx, settings, command),
    }
}

/// A command about past changes works on the records that hold them (the node's, or a
/// person's own: `change::journal::records_home`); every other command on the node's.
fn records_layout(node: &NodeLayout, command: &Command) -> Result<NodeLayout> {
    let session = match command {
        Command::Revert { session, .. } | Command::Resume { session, .. } => {
            session.session.as_deref()
        }
        Command::Journal(cli::JournalCommand::Abandon { session, .. }) => Some(session.as_str()),
        Command::Journal(_) | Command::Backups(_) => None,
        _ => return Ok(node.clone()),
    };
    crate::change::journal::records_home(node, session)
}

/// Runs one command on the node; `guide` runs its steps through here too.
fn dispatch(ctx: &Context, settings: UiSettings, command: Command) -> Result<ExitStatus> {
    match command {
        Command::Guide { reason } => guide::run(ctx, settings, reason),
        Command::Status => status::run(ctx),
        Command::ExtendTokens(action) => extend_tokens::run(ctx, action),
        Command::Backups(action) => backups::run(ctx, action),
        Command::AdminConf(action) => admin_conf::run(ctx, action),
        Command::Revert {
            session,
            confirm,
            restart,
            stale,
            fleet_lease,
        } => revert::revert(
            ctx,
            session.session.as_deref(),
            &change_settings(&confirm, Some(&restart), Some(&stale)),
            fleet_lease,
        ),
        Command::Resume {
            session,
            confirm,
            restart,
        } => revert::resume(
            ctx,
            session.session.as_deref(),
            &change_settings(&confirm, Some(&restart), None),
        ),
        Command::Journal(action) => journal::run(ctx, action),
        Command::Rehearse(options) => {
            rehearse::run(settings, &options).map(|()| ExitStatus::Success)
        }
        Command::Token(action) => token::run(ctx, action),
        Command::Kubeconfig(cli::KubeconfigCommand::Check {
            kubeconfig,
            context,
        }) => kubeconfig_check::run(ctx, kubeconfig, context.as_deref()),
        Command::Kubeconfig(action) => kubeconfig::run(ctx, action),
        Command::Migrate(action) => migrate::run(ctx, action),
        Command::Completions { shell } => shell::completions(shell).map(|()| ExitStatus::Success),
        Command::Man => shell::man().map(|()| ExitStatus::Success),
        Command::Diagnose => diagnose::run(ctx),
        Command::Certs(cli::CertsCommand::Check) => certs::check(ctx),
        Command::Certs(cli::CertsCommand::Renew {
            names,
            validity,
            config,
            timeout,
            method,
            confirm,
        }) => certs_renew::run(
            ctx,
            Request {
                names,
                validity,
                config,
                timeout,
                method: match method {
                    cli::RenewMethod::Native => crate::change::renew::Method::Native,
                    cli::RenewMethod::Kubeadm => crate::change::renew::Method::Kubeadm,
                },
            },
            &confirm,
        ),
    }
}

pub fn format(cli: &Cli) -> Format {
    match cli.global.output {
        cli::Format::Text => Format::Text,
        cli::Format::Json => Format::Json,
    }
}

fn ui_settings(cli: &Cli) -> UiSettings {
    UiSettings {
        format: format(cli),
        quiet: cli.global.quiet,
        verbose: cli.global.verbose,
        non_interactive: cli.global.non_interactive,
        yes: cli
            .command
            .as_ref()
            .and_then(Command::confirm)
            .is_some_and(|c| c.yes),
    }
}

/// The settings of a mutating command. Options a command does not take keep the safe default.
pub fn change_settings(
    confirm: &ConfirmOptions,
    restart: Option<&RestartOptions>,
    stale: Option<&StaleTokenOptions>,
) -> ChangeSettings {
    let mut settings = ChangeSettings::files_only(confirm.dry_run, confirm.reason.clone());
    if let Some(r) = restart {
        settings.wait = (!r.no_wait).then_some(WaitOptions {
            timeout: r.timeout,
            nudge_after: r.nudge_after,
            rollback_timeout: r.rollback_timeout,
            skip_shutdown_grace: r.skip_shutdown_grace,
        });
        settings.move_strays = r.move_strays;
        settings.on_interrupt = r.on_interrupt;
    }
    if let Some(s) = stale {
        settings.accept_stale_tokens = s.accept_stale_tokens;
        settings.stale_window = s.stale_window;
    }
    settings
}
