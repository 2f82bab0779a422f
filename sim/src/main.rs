//! `kubeadm-recover-sim`: builds and runs simulated kubeadm nodes for `kubeadm-recover rehearse`
//! and the tests, and runs the rehearsal itself (`rehearse`, which `kubeadm-recover rehearse`
//! hands over to). Started as `kubelet` or `kube-apiserver` (through the sandbox's symlinks) it
//! is that simulated component, and only inside a sandbox it built.
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use kubeadm_recover::cli::RehearseOptions;
use kubeadm_recover::credentials::pki::KeyType;
use kubeadm_recover::ui::{Format, UiSettings};
use kubeadm_recover_sim::config::SimConfig;
use kubeadm_recover_sim::{kubeadm, kubelet, netns, node, rehearse, sandbox_root};

#[derive(Parser)]
#[command(
    name = "kubeadm-recover-sim",
    version,
    about = "Simulated kubeadm control-plane nodes for rehearsals and tests (never for a real node)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lay out a kubeadm node (CA, certificates, kubeconfigs, manifest) in an empty directory.
    Node {
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
        #[arg(
            long = "kubernetes-version",
            default_value = "1.30.2",
            value_name = "X.Y.Z"
        )]
        kubernetes_version: String,
        #[arg(long, value_enum, default_value_t = KeyTypeArg::Rsa2048)]
        key_type: KeyTypeArg,
        /// admin.conf (and super-admin.conf) expired a year ago.
        #[arg(long)]
        admin_expired: bool,
        /// The whole control-plane PKI: etcd's CA and certificates, controller-manager.conf,
        /// scheduler.conf, kubelet.conf and the kubelet's certificates.
        #[arg(long)]
        full_pki: bool,
        /// An extra apiserver flag for the manifest (repeatable).
        #[arg(long = "extra-arg", value_name = "FLAG", allow_hyphen_values = true)]
        extra_args: Vec<String>,
        /// The initial simulation knobs, as JSON (see `config`).
        #[arg(long, value_name = "JSON")]
        config: Option<String>,
        /// Lay the node out with the real kubeadm from DIR, whose kubelet then runs the real
        /// etcd and kube-apiserver from DIR (run it, and the tool, inside `netns`).
        #[arg(long, value_name = "DIR")]
        kube_bin: Option<PathBuf>,
    },
    /// On a node laid out by kubeadm whose apiserver answers: what `kubeadm init` does next
    /// (`init phase upload-config all`: kubeadm-config, and cluster-admin for admin.conf's group).
    /// Run it inside the node's network namespace.
    UploadConfig {
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
    },
    /// Replace admin.conf and super-admin.conf with ones that expired a year ago (same CA,
    /// subject and server): a locked-out node.
    ExpireAdmin {
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
    },
    /// Re-sign control-plane certificates (kubeadm's names; every one kubeadm renews when none
    /// is named) with their own identity and key by their own CA, but ended DAYS ago: the
    /// expired-certificates lockout. `--root /` on a real kubeadm node (the real-node tier).
    ExpireCerts {
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
        #[arg(long, value_name = "DAYS", default_value_t = 30)]
        ended_days_ago: i64,
        names: Vec<String>,
    },
    /// Run COMMAND in a new network namespace holding the real node's advertise address
    /// (192.0.2.10 on a veth pair that leads nowhere). Without COMMAND, print "ready" and hold
    /// the namespace until terminated (others join it through /proc/PID/ns/net).
    Netns {
        #[arg(last = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Run the node's simulated kubelet (and through it kube-apiserver) in the foreground.
    Kubelet {
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
    },
    /// The break-glass flow end to end on a simulated node, each step run by the product binary
    /// PATH as an operator would: what `kubeadm-recover rehearse` hands over to, with its flags
    /// (the same definitions) and its own path.
    Rehearse {
        /// The kubeadm-recover binary to rehearse.
        #[arg(long, value_name = "PATH")]
        product: PathBuf,
        #[command(flatten)]
        options: RehearseOptions,
        /// Output format, as the product's `-o`: text for people, json for scripts.
        #[arg(short, long, value_enum, default_value_t = kubeadm_recover::cli::Format::Text)]
        output: kubeadm_recover::cli::Format,
        /// As the product's `--non-interactive`.
        #[arg(long)]
        non_interactive: bool,
        /// As the product's `--verbose`.
        #[arg(short, long, conflicts_with = "quiet")]
        verbose: bool,
        /// As the product's `--quiet`: only errors on stderr.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Change the simulation's knobs while it runs: KEY=JSON pairs (e.g. rejectArgs='["--x=1"]').
    Config {
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
        #[arg(value_name = "KEY=JSON")]
        set: Vec<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum KeyTypeArg {
    #[value(name = "rsa-2048")]
    Rsa2048,
    #[value(name = "ecdsa-p256")]
    EcdsaP256,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let persona = args
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a).to_string());
    let code = match persona.as_deref() {
        Some("kube-apiserver") => kubeadm_recover_sim::apiserver::main(args),
        Some("kubelet") => kubelet::main(),
        _ => match run(Cli::parse()) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("kubeadm-recover-sim: {e}");
                1
            }
        },
    };
    std::process::exit(code);
}

/// Whether stdout was closed (`>&-`) when the process started, as the product's `main` notes it
/// (see there): `kubeadm-recover rehearse >&-` hands over with stdout closed, and the rehearsal's
/// result must fail to arrive as loudly as any other command's.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static NOTE_CLOSED_STDOUT: extern "C" fn() = note_closed_stdout;

#[cfg(target_os = "linux")]
extern "C" fn note_closed_stdout() {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    if unsafe { nix::libc::fcntl(1, nix::libc::F_GETFD) } == -1 {
        kubeadm_recover::ui::STDOUT_CLOSED.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Node {
            root,
            kubernetes_version,
            key_type,
            admin_expired,
            full_pki,
            extra_args,
            config,
            kube_bin,
        } => {
            let root = sandbox_root(&root)?;
            let not_empty = std::fs::read_dir(&root)
                .map_err(|e| format!("{}: {e}", root.display()))?
                .next()
                .is_some();
            if not_empty {
                return Err(format!(
                    "{} is not empty: a simulated node is built only in an empty directory",
                    root.display()
                ));
            }
            let config = match config {
                Some(json) => serde_json::from_str::<SimConfig>(&json)
                    .map_err(|e| format!("--config: {e}"))?,
                None => SimConfig::default(),
            };
            if let Some(kube_bin) = kube_bin {
                if admin_expired {
                    return Err(
                        "--admin-expired with --kube-bin: kubeadm needs a working admin.conf \
                        until `upload-config`; expire it afterwards with `expire-admin`"
                            .into(),
                    );
                }
                kubeadm::lay_out(
                    &root,
                    &kubeadm::RealOptions {
                        kube_bin: &kube_bin,
                        config,
                    },
                )?;
                println!(
                    "{}",
                    serde_json::json!({ "root": root, "port": kubeadm::APISERVER_PORT })
                );
                return Ok(());
            }
            let options = node::NodeOptions {
                version: kubernetes_version,
                key_type: match key_type {
                    KeyTypeArg::Rsa2048 => KeyType::Rsa2048,
                    KeyTypeArg::EcdsaP256 => KeyType::EcdsaP256,
                },
                admin_expired,
                extra_args,
                config,
                full_pki,
            };
            let built = node::build(&root, &options).map_err(|e| e.to_string())?;
            println!(
                "{}",
                serde_json::json!({ "root": built.root, "port": built.port })
            );
            Ok(())
        }
        Command::Kubelet { root } => {
            let root = sandbox_root(&root)?;
            Err(format!(
                "cannot start the kubelet: {}",
                kubelet::exec(&root)
            ))
        }
        Command::UploadConfig { root } => kubeadm::upload_config(&sandbox_root(&root)?),
        Command::ExpireCerts {
            root,
            ended_days_ago,
            names,
        } => {
            let root = root
                .canonicalize()
                .map_err(|e| format!("{}: {e}", root.display()))?;
            kubeadm_recover_sim::certs::expire(&root, &names, ended_days_ago).map(|done| {
                println!("{}", done.join(" "));
            })
        }
        Command::ExpireAdmin { root } => {
            kubeadm::expire_admin_credentials(&sandbox_root(&root)?).map_err(|e| e.to_string())
        }
        Command::Netns { command } => {
            netns::enter_new()?;
            match command.split_first() {
                Some((program, args)) => {
                    use std::os::unix::process::CommandExt;
                    let e = std::process::Command::new(program).args(args).exec();
                    Err(format!("{program}: {e}"))
                }
                None => {
                    // The holder goes when whoever started it goes.
                    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM);
                    println!("ready");
                    // Held until a signal ends it; the namespace goes with the last process in it.
                    nix::unistd::pause();
                    Ok(())
                }
            }
        }
        Command::Config { root, set } => {
            let root = sandbox_root(&root)?;
            let mut value = serde_json::to_value(SimConfig::load(&root)).expect("serializable");
            for pair in &set {
                let (key, json) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("{pair:?}: write KEY=JSON"))?;
                let parsed: serde_json::Value =
                    serde_json::from_str(json).map_err(|e| format!("{key}: {e}"))?;
                value[key] = parsed;
            }
            let config: SimConfig =
                serde_json::from_value(value).map_err(|e| format!("config: {e}"))?;
            config.save(&root).map_err(|e| e.to_string())?;
            println!("{}", serde_json::to_string(&config).expect("serializable"));
            Ok(())
        }
        // The product's command, handed over: it ends as the product's commands end (its own
        // `error:` line, `Error` document and exit code), never with this binary's messages.
        Command::Rehearse {
            product,
            options,
            output,
            non_interactive,
            verbose,
            quiet,
        } => std::process::exit(rehearse::main(
            product,
            &options,
            UiSettings {
                format: match output {
                    kubeadm_recover::cli::Format::Text => Format::Text,
                    kubeadm_recover::cli::Format::Json => Format::Json,
                },
                quiet,
                verbose,
                non_interactive,
                yes: false,
            },
        )),
    }
}
