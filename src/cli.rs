//! Command-line definitions: the only place that knows flags.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "kubeadm-recover",
    version,
    about = "Break-glass recovery for kubeadm control-plane nodes: token extension, admin credentials, backups",
    after_help = "Exit codes: 0 done; 1 failed, node as before; 2 usage or a decision is needed; \
                  3 refused by a preflight check; 4 failed and rollback failed: manual action needed."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOptions,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct GlobalOptions {
    /// The node's filesystem root (a sandbox); default `/`. Changing a real node needs root.
    #[arg(long, global = true, env = "KUBEADM_RECOVER_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Output format: text for people, json (on stdout; messages on stderr) for scripts.
    #[arg(short, long, global = true, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Why you are doing this; recorded in the audit log and in backups.
    #[arg(long, global = true, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Answer yes to confirmations.
    #[arg(short, long, global = true)]
    pub yes: bool,
    /// Never prompt (implied when stdin is not a terminal): a decision with no flag is an error.
    #[arg(long, global = true)]
    pub non_interactive: bool,
    /// More detail on stderr.
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the flag, stray files, backups and admin credential expiry. Changes nothing.
    Status,
    /// Turn --service-account-extend-token-expiration on or off in the apiserver manifest.
    #[command(subcommand)]
    ExtendTokens(ExtendTokens),
    /// The backups this tool made, and putting one back.
    #[command(subcommand)]
    Backups(Backups),
}

#[derive(Debug, Subcommand)]
pub enum ExtendTokens {
    /// Set the flag to true: projected tokens get a one-year exp, stale clients keep working.
    Enable(ChangeOptions),
    /// Set the flag to false (CIS 1.2.30): tokens are no longer extended.
    Disable(ChangeOptions),
}

#[derive(Debug, Args, Clone)]
pub struct ChangeOptions {
    /// Show the plan and the exact diff; write nothing, not even a backup.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the change and return; the kubelet restarts the apiserver on its own.
    #[arg(long)]
    pub no_wait: bool,
    /// Move stray copies and editor leftovers out of the manifest directory into a backup first.
    #[arg(long)]
    pub move_strays: bool,
}

#[derive(Debug, Subcommand)]
pub enum Backups {
    /// List backups, oldest first, with their checksum state.
    List,
    /// Put a backup's files back, byte for byte (the current files are backed up first).
    Restore {
        /// The backup id, as `backups list` shows it.
        id: String,
        #[command(flatten)]
        options: ChangeOptions,
    },
}
