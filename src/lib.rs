//! kubeadm-recover: break-glass recovery for kubeadm control-plane nodes.
//!
//! Layers, top down (ARCHITECTURE.md draws them): `commands` (one per subcommand, returning an
//! `ExitStatus`) read the node through `survey` and change it only through `change` (a plan,
//! the one executor, the one transaction: back up → write → prove → roll back). Below them:
//! `credentials`, `apiserver`, the pure `manifest` engine, `node` (every path under `--root`;
//! `node::fs` performs every file operation, confined to the root), `runtime` and `ui`.
pub mod apiserver;
pub mod certs;
pub mod change;
pub mod cli;
pub mod commands;
pub mod credentials;
pub mod error;
pub mod manifest;
pub mod node;
pub mod runtime;
pub mod survey;
pub mod ui;

use clap::Parser;

use error::Error;

/// Parses the command line, runs the command, and returns the process exit code.
pub fn run() -> i32 {
    // A symlink or a copy named like a control-plane component must not be mistaken for one
    // (nor mistake its arguments for ours): this binary is only ever kubeadm-recover.
    const COMPONENTS: [&str; 5] = [
        "kube-apiserver",
        "kubelet",
        "etcd",
        "kube-controller-manager",
        "kube-scheduler",
    ];
    let program = std::env::args_os().next().and_then(|a| {
        std::path::Path::new(&a)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
    });
    if let Some(name) = program.filter(|n| COMPONENTS.contains(&n.as_str())) {
        ui::stderr_line(&format!(
            "{name}: this is kubeadm-recover, not {name}; run it under its own name"
        ));
        return 2;
    }
    // `KUBEADM_RECOVER_ROOT=` (set, but empty) means "no sandbox", as unset does.
    if std::env::var_os("KUBEADM_RECOVER_ROOT").is_some_and(|v| v.is_empty()) {
        // SAFETY: nothing else runs yet; no other thread reads the environment.
        unsafe { std::env::remove_var("KUBEADM_RECOVER_ROOT") };
    }
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            if !e.use_stderr() {
                return 0; // --help, --version
            }
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or_default();
            let error = Error::Usage(first.trim_start_matches("error: ").to_string());
            if wants_json(std::env::args_os().skip(1)) {
                ui::report_error(&error);
            }
            return error.code();
        }
    };
    let format = commands::format(&cli);
    let ending = commands::run(cli);
    match &ending {
        Ok(status) => {
            // A negative answer's document is the command's own report, already printed.
            if let Some(message) = status.message() {
                ui::stderr_line(&format!("error: {message}"));
            }
        }
        Err(err) => {
            ui::fail(err, format);
        }
    }
    error::exit_code(ending.as_ref())
}

/// Whether a command line clap refused still asked for JSON, so that the script reading it
/// gets a document too.
fn wants_json(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    let args: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
    args.iter().enumerate().any(|(i, a)| {
        matches!(a.as_str(), "-ojson" | "--output=json" | "-o=json")
            || (matches!(a.as_str(), "-o" | "--output")
                && args.get(i + 1).is_some_and(|v| v == "json"))
    })
}
