//! Command-line definitions: the only place that knows flags.
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use crate::change::plan::OnInterrupt;
use crate::runtime::duration::{parse_duration, parse_positive_duration};

#[derive(Debug, Parser)]
#[command(
    name = "kubeadm-recover",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("KUBEADM_RECOVER_COMMIT"), ")"),
    about = "Break-glass recovery for kubeadm control-plane nodes: token extension, admin credentials, backups",
    after_help = "Exit codes: 0 done; 1 failed, node as before; 2 usage or a decision is needed; \
                  3 refused by a preflight check; 4 failed and rollback failed: manual action needed; \
                  130 interrupted by a signal: what was started was put back and proved."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOptions,
    /// With none, on a terminal: `guide`.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What every command takes.
#[derive(Debug, Args, Clone)]
pub struct GlobalOptions {
    /// The node's filesystem root (a sandbox); default `/`. Changing a real node needs root.
    #[arg(long, global = true, env = "KUBEADM_RECOVER_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Output format: text for people, json (on stdout; messages on stderr) for scripts.
    #[arg(short, long, global = true, value_enum, default_value_t = Format::Text)]
    pub output: Format,
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

/// What every command that changes the node takes.
#[derive(Debug, Args, Clone)]
pub struct ConfirmOptions {
    /// Answer yes to confirmations.
    #[arg(short, long)]
    pub yes: bool,
    /// Why you are doing this; recorded in the audit log, the session and the backup.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Show the plan and the exact diff; change nothing, not even the journal or the audit log.
    #[arg(long)]
    pub dry_run: bool,
}

/// What every command that may restart kube-apiserver takes.
#[derive(Debug, Args, Clone)]
pub struct RestartOptions {
    /// How long to wait for the apiserver to restart and be healthy.
    /// DURATION: a Go duration (90s, 1m30s, 1.5h) or days (7d).
    #[arg(long, value_parser = parse_positive_duration, default_value = "5m", value_name = "DURATION")]
    pub timeout: Duration,
    /// How long a rollback waits for the old apiserver to be healthy again.
    /// DURATION: a Go duration (90s, 1m30s, 1.5h) or days (7d).
    #[arg(long, value_parser = parse_positive_duration, default_value = "3m", value_name = "DURATION")]
    pub rollback_timeout: Duration,
    /// Write the change and return, without waiting for and proving the restart.
    #[arg(long)]
    pub no_wait: bool,
    /// If the old apiserver is still SERVING this long after the write (the kubelet notices an
    /// edit within milliseconds, its file relist is 20 s), nudge the kubelet: crictl stop, or
    /// move the manifest out and back. An old apiserver that has stopped listening is shutting
    /// down (up to the pod's grace period, 30 s) and is never nudged; the manifest's
    /// --shutdown-delay-duration is added. DURATION: a Go duration (90s, 1m30s, 1.5h) or days (7d).
    #[arg(long, value_parser = parse_duration, default_value = "40s", value_name = "DURATION")]
    pub nudge_after: Duration,
    /// Once the old apiserver has stopped listening, stop its container at once (crictl stop
    /// --timeout 0) instead of waiting out the pod's grace period (30 s in kubeadm's manifest):
    /// about 30 s sooner. Its open watches, exec and log streams are cut (clients reconnect to
    /// the new one) and audit events it had not written yet are lost. Never the default.
    #[arg(long)]
    pub skip_shutdown_grace: bool,
    /// Move stray copies and editor leftovers out of the manifest directory into a backup first.
    #[arg(long)]
    pub move_strays: bool,
    /// On SIGINT/SIGTERM/SIGHUP during the change: roll back (exit 130), or continue and finish.
    #[arg(long, value_enum, default_value_t = OnInterrupt::Rollback)]
    pub on_interrupt: OnInterrupt,
}

/// What a command that may turn token extension off takes.
#[derive(Debug, Args, Clone)]
pub struct StaleTokenOptions {
    /// Turn token extension off even though stale tokens are still in use.
    #[arg(long)]
    pub accept_stale_tokens: bool,
    /// How long to watch serviceaccount_stale_tokens_total for new stale-token use.
    /// DURATION: a Go duration (90s, 1m30s, 1.5h) or days (7d).
    #[arg(long, value_parser = parse_duration, default_value = "3s", value_name = "DURATION")]
    pub stale_window: Duration,
}

/// `--on-interrupt` takes the domain's own values: one type, spelled for the command line here.
impl ValueEnum for OnInterrupt {
    fn value_variants<'a>() -> &'a [Self] {
        &[OnInterrupt::Rollback, OnInterrupt::Continue]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(match self {
            OnInterrupt::Rollback => clap::builder::PossibleValue::new("rollback")
                .help("Put the original back, prove the old apiserver healthy, exit 130"),
            OnInterrupt::Continue => clap::builder::PossibleValue::new("continue").help(
                "Finish the change and prove it (an SSH session dropping must not leave it half-done)",
            ),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Walk through the recovery at a terminal: what is wrong, in plain words, then each fix as
    /// a step you confirm (do it / skip / show details / quit). The default with no command on
    /// a terminal. Scripts: `diagnose` shows the same steps; run each with --yes.
    ///
    /// Example: sudo kubeadm-recover guide
    Guide {
        /// Why you are doing this (recorded in the audit log); asked once when not given.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Show the flag, stray files, backups and admin credential expiry. Changes nothing.
    ///
    /// Example: kubeadm-recover status -o json
    Status,
    /// Turn --service-account-extend-token-expiration on or off in the apiserver manifest.
    #[command(subcommand)]
    ExtendTokens(ExtendTokensCommand),
    /// The backups this tool made, and putting one back.
    #[command(subcommand)]
    Backups(Backups),
    /// Put back what a recorded change did (after the migration), and prove it.
    ///
    /// Example: sudo kubeadm-recover revert --reason "migration done"
    Revert {
        #[command(flatten)]
        session: SessionOptions,
        #[command(flatten)]
        confirm: ConfirmOptions,
        #[command(flatten)]
        restart: RestartOptions,
        #[command(flatten)]
        stale: StaleTokenOptions,
        /// Keep the fleet rule without a person watching: take the Lease
        /// kube-system/kubeadm-recover-apiserver-restart through the API, and check that every
        /// other apiserver answers /readyz, before restarting this one; give it back after the
        /// proof. Held, or another apiserver unhealthy: refused (exit 3), nothing changed. The
        /// timer of --revert-after runs revert with it.
        #[arg(long)]
        fleet_lease: bool,
    },
    /// Finish an unfinished change (after a crash or a kill) and prove it.
    ///
    /// Example: sudo kubeadm-recover resume
    Resume {
        #[command(flatten)]
        session: SessionOptions,
        #[command(flatten)]
        confirm: ConfirmOptions,
        #[command(flatten)]
        restart: RestartOptions,
    },
    /// Re-issue the admin credentials from the cluster CA, keeping their identity, and prove them.
    #[command(subcommand)]
    AdminConf(AdminConf),
    /// The recovery journal: its sessions, and the way out of one that cannot be finished.
    #[command(subcommand)]
    Journal(JournalCommand),
    /// Rehearse the break-glass flow end to end on a simulated node in a temp dir: no cluster,
    /// no root needed.
    ///
    /// Example: kubeadm-recover rehearse --keep
    Rehearse(RehearseOptions),
    /// Service-account and OIDC tokens: read one offline, ask the apiserver about one, issue a
    /// short-lived one.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Kubeconfig files: expired tokens out, fresh short-lived ones in.
    #[command(subcommand)]
    Kubeconfig(KubeconfigCommand),
    /// The migration off long-lived and stale tokens.
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// The control-plane certificates: every one the node depends on, and whether the running
    /// components use what is on disk.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// What is wrong with this node, in plain words: each finding with its severity, evidence
    /// and fix (credentials and certificates expiring, kubelet and apiserver, token extension,
    /// unfinished sessions, strays, backups). Changes nothing.
    ///
    /// Example: kubeadm-recover diagnose -o json
    Diagnose,
    /// Print the shell completion script for SHELL to stdout.
    ///
    /// Example: kubeadm-recover completions bash > /etc/bash_completion.d/kubeadm-recover
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the manual page (roff) to stdout.
    ///
    /// Example: kubeadm-recover man > /usr/local/share/man/man1/kubeadm-recover.1
    Man,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// What still depends on long-lived or stale tokens: service-account-token Secrets and the
    /// pods that mount them (with the projected volume to use instead), and who uses stale
    /// tokens (serviceaccount_stale_tokens_total and the audit log). Exit 0 when nothing
    /// depends on token extension, 1 otherwise.
    ///
    /// Example: kubeadm-recover migrate check -o json
    Check {
        /// How long to watch serviceaccount_stale_tokens_total for new stale-token use.
        /// DURATION: a Go duration (90s, 1m30s, 1.5h) or days (7d).
        #[arg(long, value_parser = parse_duration, default_value = "0s", value_name = "DURATION")]
        stale_window: Duration,
        #[command(flatten)]
        api: ApiOptions,
    },
}

#[derive(Debug, Subcommand)]
pub enum KubeconfigCommand {
    /// Remove expired tokens (bearer `token`, OIDC `id-token`, `access-token` with its
    /// `refresh-token`) so that the next kubectl call re-authenticates; show expired client
    /// certificates and exec-plugin users (with the command that refreshes them), never edited.
    /// Backs up first; keeps owner and mode; every other byte stays.
    ///
    /// Example: kubeadm-recover kubeconfig prune-expired --kubeconfig ~/.kube/config --dry-run
    PruneExpired {
        /// The kubeconfig (default: $KUBECONFIG's first file, else ~/.kube/config).
        #[arg(long, value_name = "PATH")]
        kubeconfig: Option<PathBuf>,
        #[command(flatten)]
        confirm: ConfirmOptions,
    },
    /// Replace a user's static token with a fresh short-lived one from a service account
    /// (TokenRequest with the node's admin.conf), for the CI/CD kubeconfig that held a
    /// long-lived one.
    ///
    /// Example: kubeadm-recover kubeconfig set-token --kubeconfig ci.conf --user ci --from deployer -n ci --duration 24h
    SetToken {
        /// The kubeconfig to edit (default: $KUBECONFIG's first file, else ~/.kube/config).
        #[arg(long, value_name = "PATH")]
        kubeconfig: Option<PathBuf>,
        /// The kubeconfig user whose `token` is replaced.
        #[arg(long, value_name = "NAME")]
        user: String,
        /// The service account the new token is for.
        #[arg(long = "from", value_name = "SERVICE_ACCOUNT")]
        service_account: String,
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
        /// The lifetime to ask for (the apiserver may shorten it, and says so).
        /// DURATION: a Go duration (90s, 1m30s, 1.5h) or days (7d).
        #[arg(long, value_parser = parse_positive_duration, value_name = "DURATION")]
        duration: Option<Duration>,
        /// The kubeconfig that asks the apiserver for the token (default: the node's
        /// /etc/kubernetes/admin.conf; on a workstation, a kubeconfig of yours that may create
        /// tokens).
        #[arg(long, value_name = "PATH")]
        using: Option<PathBuf>,
        #[command(flatten)]
        confirm: ConfirmOptions,
    },
    /// Why kubectl cannot talk to this cluster: reads the kubeconfig as kubectl does
    /// ($KUBECONFIG's files merged, current-context), says what is wrong in kubectl's words
    /// (invalid configuration, an expired token, OIDC id-token or client certificate, an exec
    /// plugin not installed, the server's certificate expired or of another CA, connection
    /// refused or timed out), then asks the server who you are (SelfSubjectReview, bounded in
    /// time). Needs no root and no node. Changes nothing. Exit 0 when kubectl would work, 1
    /// otherwise.
    ///
    /// Example: kubeadm-recover kubeconfig check --context prod
    Check {
        /// The kubeconfig (default: $KUBECONFIG's files merged, else ~/.kube/config).
        #[arg(long, value_name = "PATH")]
        kubeconfig: Option<PathBuf>,
        /// The context to check (default: current-context).
        #[arg(long, value_name = "NAME")]
        context: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Every certificate the node depends on, one line each: the PKI leaves, the certificates
    /// embedded in the kubeconfigs, the kubelet's, and the CAs (and sa.key); its expiry, the CA
    /// that signed it (and whether that CA's key is here), and whether the component that uses
    /// it uses THIS one: the serial a port presents (a TLS handshake on 6443, 2379, 2380,
    /// 10250), or for an embedded client certificate the process start against the file's
    /// change. Changes nothing. Exit 0 when nothing has expired and everything on disk is in
    /// use, 1 otherwise.
    ///
    /// Example: sudo kubeadm-recover certs check -o json
    Check,
    /// Re-issue the control-plane certificates from the CAs on this node, each with its own
    /// subject, SANs, usages and key type (a new key), for the cluster's own
    /// certificateValidityPeriod (the kubeadm-config ConfigMap, else --config, else kubeadm's
    /// 8760h; the output says which), never past its CA. Backed up and journaled, one step per
    /// component, in the order a control plane comes back: etcd and the apiserver proved to
    /// present the new certificates by themselves (no restart), admin.conf and
    /// super-admin.conf proved with SelfSubjectReview, the controller-manager and the scheduler
    /// restarted (their container, through the runtime) and proved healthy. A step that fails
    /// is rolled back and proved as before (exit 1); the steps before it stay renewed. The CAs
    /// are reported, never rotated.
    ///
    /// Example: sudo kubeadm-recover certs renew all --reason "certificates expired" --yes
    Renew {
        /// kubeadm's names (`kubeadm certs renew` takes the same), or `all` (the default).
        #[arg(value_name = "NAME|all")]
        names: Vec<String>,
        /// The new certificates' validity, instead of the cluster's own period.
        #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
        validity: Option<Duration>,
        /// A local kubeadm configuration whose certificateValidityPeriod applies (when the
        /// kubeadm-config ConfigMap cannot be read).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// How long each component may take to be proved on its new certificates (then its step
        /// is rolled back): default 90s for one that re-reads its files, 5m30s for a restart
        /// (the kubelet's back-off for a container that crash-looped reaches five minutes).
        #[arg(long, value_parser = parse_positive_duration, value_name = "DURATION")]
        timeout: Option<Duration>,
        /// Who re-issues: this tool from the CA keys on the node, or the real `kubeadm certs
        /// renew NAME`, always given the cluster's configuration (--config, else the
        /// kubeadm-config ConfigMap's) so that it cannot fall back to its defaults. Backed up,
        /// proved and rolled back the same way.
        #[arg(long, value_enum, default_value_t = RenewMethod::Native)]
        method: RenewMethod,
        #[command(flatten)]
        confirm: ConfirmOptions,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RenewMethod {
    /// Re-issue from the CA keys on the node, each with its own subject, SANs, usages and key.
    Native,
    /// `kubeadm certs renew NAME --config FILE`.
    Kubeadm,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Decode a token offline: who, for whom, until when, whether it is stale (alive only
    /// because token extension is on) or a legacy secret-based token. Never prints the token.
    ///
    /// Example: kubeadm-recover token inspect /var/run/secrets/kubernetes.io/serviceaccount/token
    Inspect(InspectOptions),
    /// Ask the apiserver whether it accepts a token (TokenReview, with the admin credential).
    /// Exit 0 when authenticated, 1 when not.
    ///
    /// Example: kubectl -n ci get secret deployer-token -o jsonpath='{.data.token}' | base64 -d | kubeadm-recover token review -
    Review {
        /// The token, in a file or `-` for stdin.
        #[arg(value_name = "FILE|-")]
        file: PathBuf,
        /// An audience the token must be valid for (repeatable; default: the apiserver's).
        #[arg(long = "audience", value_name = "AUDIENCE")]
        audiences: Vec<String>,
        #[command(flatten)]
        api: ApiOptions,
    },
    /// Issue a short-lived service-account token (TokenRequest), like `kubectl create token`:
    /// the token alone on stdout, its expiry on stderr.
    ///
    /// Example: kubeadm-recover token create deployer -n ci --duration 1h > token
    Create {
        #[arg(value_name = "SERVICE_ACCOUNT")]
        service_account: String,
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
        /// The lifetime to ask for (the apiserver may shorten it, and says so).
        /// DURATION: a Go duration (90s, 1m30s, 1.5h) or days (7d).
        #[arg(long, value_parser = parse_positive_duration, value_name = "DURATION")]
        duration: Option<Duration>,
        /// An audience of the token (repeatable; default: the apiserver's).
        #[arg(long = "audience", value_name = "AUDIENCE")]
        audiences: Vec<String>,
        /// Bind the token to this pod (in the same namespace): it dies with the pod.
        #[arg(long, value_name = "NAME")]
        bound_pod: Option<String>,
        #[command(flatten)]
        api: ApiOptions,
    },
}

#[derive(Debug, Args, Clone)]
pub struct InspectOptions {
    /// The token, in a file or `-` for stdin.
    #[arg(
        value_name = "FILE|-",
        required_unless_present = "kubeconfig",
        conflicts_with = "kubeconfig"
    )]
    pub file: Option<PathBuf>,
    /// Inspect the tokens a kubeconfig holds (a bearer token, OIDC id-token and access-token).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Only this kubeconfig user (default: the current context's).
    #[arg(long, value_name = "NAME", requires = "kubeconfig")]
    pub user: Option<String>,
}

#[derive(Debug, Args, Clone)]
pub struct ApiOptions {
    /// The credential to call the apiserver with (default: the node's admin.conf).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
}

impl Command {
    /// The confirmation options of a command that changes the node.
    pub fn confirm(&self) -> Option<&ConfirmOptions> {
        match self {
            Command::ExtendTokens(ExtendTokensCommand::Enable { confirm, .. })
            | Command::ExtendTokens(ExtendTokensCommand::Disable { confirm, .. })
            | Command::Backups(Backups::Restore { confirm, .. })
            | Command::Revert { confirm, .. }
            | Command::Resume { confirm, .. }
            | Command::Journal(JournalCommand::Abandon { confirm, .. })
            | Command::Kubeconfig(KubeconfigCommand::PruneExpired { confirm, .. })
            | Command::Kubeconfig(KubeconfigCommand::SetToken { confirm, .. })
            | Command::Certs(CertsCommand::Renew { confirm, .. }) => Some(confirm),
            Command::AdminConf(AdminConf::Regenerate(options)) => Some(&options.confirm),
            Command::Status
            | Command::Guide { .. }
            | Command::Backups(Backups::List)
            | Command::Journal(JournalCommand::List)
            | Command::Rehearse(_)
            | Command::Token(_)
            | Command::Kubeconfig(KubeconfigCommand::Check { .. })
            | Command::Certs(CertsCommand::Check)
            | Command::Migrate(_)
            | Command::Completions { .. }
            | Command::Diagnose
            | Command::Man => None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum JournalCommand {
    /// Every recorded session, oldest first.
    ///
    /// Example: kubeadm-recover journal list
    List,
    /// Give up an unfinished session the tool cannot finish (say, after a hand edit): it is
    /// marked abandoned and audited, the manifest is left exactly as it is.
    ///
    /// Example: sudo kubeadm-recover journal abandon --session ID --reason "edited by hand"
    Abandon {
        /// The unfinished session (see `status`).
        #[arg(long, value_name = "ID")]
        session: String,
        #[command(flatten)]
        confirm: ConfirmOptions,
    },
}

#[derive(Debug, Args, Clone)]
pub struct SessionOptions {
    /// The session to act on (see `status`); default: the unfinished one, else the latest change.
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AdminConf {
    /// Re-issue admin.conf (and/or super-admin.conf), verify it with SelfSubjectReview.
    ///
    /// Example: sudo kubeadm-recover admin-conf regenerate --update-copies --reason "admin.conf expired"
    Regenerate(RegenerateOptions),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// native when the CA key is on the node, else kubeadm when it is installed.
    Auto,
    /// Sign with /etc/kubernetes/pki/ca.key, on the node, with no apiserver needed.
    Native,
    /// `kubeadm certs renew admin.conf`.
    Kubeadm,
}

#[derive(Debug, Args, Clone)]
pub struct RegenerateOptions {
    #[arg(long, value_enum, default_value_t = Method::Auto)]
    pub method: Method,
    /// How long the new certificate is valid; never past the CA's own expiry.
    /// DURATION: a Go duration (90s, 1m30s, 1.5h) or days (7d).
    #[arg(long, value_parser = parse_duration, default_value = "8760h", value_name = "DURATION")]
    pub validity: Duration,
    /// Also regenerate super-admin.conf (CN=kubernetes-super-admin, O=system:masters).
    #[arg(long)]
    pub super_admin: bool,
    /// Regenerate only super-admin.conf.
    #[arg(long, conflicts_with = "super_admin")]
    pub only_super_admin: bool,
    /// Key type of the new credential; default: the old credential's (RSA when unknown).
    #[arg(long, value_enum)]
    pub key_type: Option<KeyTypeArg>,
    /// Also update kubeconfigs that hold the old credential (/root/.kube/config,
    /// /home/*/.kube/config, $SUDO_USER's, and --copy paths): only that user's data changes.
    #[arg(long)]
    pub update_copies: bool,
    /// Another kubeconfig to check with --update-copies (repeatable).
    #[arg(long = "copy", value_name = "PATH")]
    pub copies: Vec<PathBuf>,
    /// Write ~USER/.kube/config (owned by USER, 0600) when it does not exist.
    #[arg(long, value_name = "USER")]
    pub install_for: Option<String>,
    /// Do not verify against the apiserver (for a node whose apiserver is down).
    #[arg(long)]
    pub no_verify: bool,
    #[command(flatten)]
    pub confirm: ConfirmOptions,
}

#[derive(Debug, Args, Clone)]
pub struct RehearseOptions {
    /// Keep the sandbox afterwards and print how to point the tool at it.
    #[arg(long)]
    pub keep: bool,
    /// Print how long each wait took and how soon after the apiserver was ready the tool noticed.
    #[arg(long)]
    pub timings: bool,
    /// Repeat the enable/disable cycle this many times (for --timings).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub rounds: u32,
    /// Kubernetes version of the simulated node.
    #[arg(
        long = "kubernetes-version",
        default_value = "1.30.2",
        value_name = "X.Y.Z"
    )]
    pub kubernetes_version: String,
    /// Key type of the simulated node's certificates.
    #[arg(long, value_enum, default_value_t = KeyTypeArg::Rsa2048)]
    pub key_type: KeyTypeArg,
    /// Use (and keep) this directory for the sandbox instead of a temp dir.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// With --dir of a kept sandbox: run its simulated kubelet and apiserver until interrupted.
    #[arg(long, requires = "dir")]
    pub serve: bool,
    /// Rehearse on the real thing: DIR holds kubeadm, kube-apiserver and etcd (the official
    /// release binaries, or tests/upstream/build.sh's); kubeadm lays the node out and the
    /// simulated kubelet runs the real etcd and kube-apiserver, in a network namespace of the
    /// rehearsal's own. Needs root. The version is the binaries'.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["kubernetes_version", "key_type"])]
    pub kube_bin: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyTypeArg {
    #[value(name = "rsa-2048")]
    Rsa2048,
    #[value(name = "ecdsa-p256")]
    EcdsaP256,
}

#[derive(Debug, Subcommand)]
pub enum ExtendTokensCommand {
    /// Set the flag to true: projected tokens get a one-year exp, stale clients keep working.
    ///
    /// Example: sudo kubeadm-recover extend-tokens enable --revert-after 7d --reason "tokens expired"
    Enable {
        /// Revert this change after DURATION (e.g. 7d): recorded in the session and, where the
        /// node has systemd, scheduled as a timer that reverts it then (retrying hourly while
        /// stale tokens are still in use). DURATION: a Go duration (90s, 1m30s, 1.5h) or days (7d).
        #[arg(long, value_parser = parse_positive_duration, value_name = "DURATION")]
        revert_after: Option<Duration>,
        #[command(flatten)]
        confirm: ConfirmOptions,
        #[command(flatten)]
        restart: RestartOptions,
    },
    /// Set the flag to false (CIS 1.2.30): tokens are no longer extended.
    ///
    /// Example: sudo kubeadm-recover extend-tokens disable --reason "CIS 1.2.30"
    Disable {
        #[command(flatten)]
        confirm: ConfirmOptions,
        #[command(flatten)]
        restart: RestartOptions,
        #[command(flatten)]
        stale: StaleTokenOptions,
    },
}

#[derive(Debug, Subcommand)]
pub enum Backups {
    /// List backups, oldest first, with their checksum state.
    ///
    /// Example: kubeadm-recover backups list
    List,
    /// Put a backup's files back, byte for byte (the current files are backed up first).
    ///
    /// Example: sudo kubeadm-recover backups restore 20261128T174427.454Z-extend-tokens-disable
    Restore {
        /// The backup id, as `backups list` shows it.
        id: String,
        #[command(flatten)]
        confirm: ConfirmOptions,
        #[command(flatten)]
        restart: RestartOptions,
    },
}

/// The command a guide step runs, with the reason the person gave: the step's own command line,
/// parsed as the operator would type it (`every_guide_step_parses_and_round_trips` parses each).
pub fn step_command(step: crate::survey::guide::StepCommand, reason: &str) -> Command {
    let argv = std::iter::once("kubeadm-recover")
        .chain(step.args())
        .chain(["--reason", reason]);
    Cli::try_parse_from(argv)
        .ok()
        .and_then(|cli| cli.command)
        .expect("every guide step is a command line that parses (tested)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_guide_step_parses_and_round_trips() {
        use crate::survey::guide::{Step, StepCommand};
        for command in StepCommand::ALL {
            let parsed = format!("{:?}", step_command(command, "INC-1"));
            assert!(
                parsed.contains("\"INC-1\""),
                "{command:?} takes the reason: {parsed}"
            );
            let step = Step {
                title: String::new(),
                command,
                answers: Vec::new(),
                note: None,
            };
            // What the guide prints for a person is the very command it runs.
            let printed = step.command_line();
            let typed: Vec<&str> = printed.split(' ').collect();
            assert_eq!(typed[0], "kubeadm-recover");
            assert_eq!(typed[1..], command.args()[..], "{printed}");
            let again = Cli::try_parse_from(typed.iter().copied().chain(["--reason", "INC-1"]))
                .unwrap_or_else(|e| panic!("{printed}: {e}"));
            assert_eq!(format!("{:?}", again.command.unwrap()), parsed, "{printed}");
        }
    }

    #[test]
    fn help_names_every_exit_code_an_error_can_have() {
        use crate::error::Error;
        use clap::CommandFactory;
        let help = Cli::command().get_after_help().unwrap().to_string();
        let every = [
            Error::Failed(String::new()),
            Error::Usage(String::new()),
            Error::Refused(String::new()),
            Error::ManualActionNeeded(String::new()),
            Error::Interrupted(String::new()),
        ];
        for code in std::iter::once(0).chain(every.iter().map(Error::code)) {
            assert!(
                help.contains(&format!(" {code} ")),
                "{code} missing from: {help}"
            );
        }
    }
}

#[cfg(test)]
mod help_tests {
    use clap::CommandFactory;

    /// Every command a person runs shows an example in its `--help`.
    #[test]
    fn every_command_has_an_example() {
        fn walk(command: &clap::Command, path: String, missing: &mut Vec<String>) {
            let leaves: Vec<&clap::Command> = command
                .get_subcommands()
                .filter(|c| c.get_name() != "help")
                .collect();
            if leaves.is_empty() {
                let about = command
                    .get_long_about()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                if !about.contains("Example: kubeadm-recover")
                    && !about.contains("Example: sudo kubeadm-recover")
                    && !about.contains("Example: kubectl")
                {
                    missing.push(path);
                }
                return;
            }
            for sub in leaves {
                walk(sub, format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(
            &super::Cli::command(),
            "kubeadm-recover".into(),
            &mut missing,
        );
        assert!(missing.is_empty(), "no example in --help: {missing:?}");
    }
}
