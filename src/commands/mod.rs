//! One file per subcommand; orchestration only.
mod admin_conf;
mod backups;
mod extend_tokens;
mod rehearse;
mod revert;
mod status;

use crate::cli::{Cli, Command};
use crate::error::{Error, Result};
use crate::node::NodeLayout;
use crate::ui::Ui;

/// What every command gets: where the node is, how to talk, why we are here.
pub struct Context {
    pub layout: NodeLayout,
    pub ui: Ui,
    pub reason: Option<String>,
    pub timeout: std::time::Duration,
}

impl Context {
    pub fn wait_options(&self, options: &crate::cli::ChangeOptions) -> crate::restart::WaitOptions {
        crate::restart::WaitOptions {
            timeout: self.timeout,
            nudge_after: options.nudge_after,
        }
    }
}

pub fn run(cli: Cli) -> Result<()> {
    let ctx = Context {
        layout: NodeLayout::new(cli.global.root.clone()),
        ui: Ui::new(&cli.global),
        reason: cli.global.reason.clone(),
        timeout: cli.global.timeout,
    };
    match cli.command {
        Command::Status => status::run(&ctx),
        Command::ExtendTokens(action) => extend_tokens::run(&ctx, action),
        Command::Backups(action) => backups::run(&ctx, action),
        Command::AdminConf(action) => admin_conf::run(&ctx, action),
        Command::Revert { session, options } => revert::revert(&ctx, &session, &options),
        Command::Resume { session, options } => revert::resume(&ctx, &session, &options),
        Command::Rehearse(options) => rehearse::run(&ctx, &options),
    }
}

/// The apiserver manifest's text, or a refusal that says why this node cannot be worked on.
pub fn read_manifest(layout: &NodeLayout) -> Result<String> {
    let path = layout.apiserver_manifest();
    let bytes = std::fs::read(&path).map_err(|e| {
        let parked = crate::restart::parked_path(layout);
        if e.kind() == std::io::ErrorKind::NotFound && parked.exists() {
            Error::Refused(format!(
                "{} is parked at {} by an interrupted nudge; any kubeadm-recover command that changes the node \
                 (resume, revert) moves it back first",
                path.display(),
                parked.display()
            ))
        } else if e.kind() == std::io::ErrorKind::NotFound {
            Error::Refused(format!(
                "{} does not exist: this is not a kubeadm control-plane node (or --root points at the wrong place)",
                path.display()
            ))
        } else {
            Error::Refused(format!("cannot read {}: {e}", path.display()))
        }
    })?;
    String::from_utf8(bytes).map_err(|e| {
        Error::Refused(format!(
            "{}: not UTF-8 text ({e}); the kubelet cannot read it either",
            path.display()
        ))
    })
}
