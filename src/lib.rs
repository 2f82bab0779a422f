//! kubeadm-recover: break-glass recovery for kubeadm control-plane nodes.
//!
//! `manifest` is pure; `store` and `change` are the only writers; `commands` orchestrate.
pub mod apiserver;
pub mod change;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod credentials;
pub mod error;
pub mod failpoints;
pub mod interrupt;
pub mod journal;
pub mod kubeconfig;
pub mod manifest;
pub mod migration;
pub mod node;
pub mod pem;
pub mod store;
pub mod ui;

use clap::Parser;

/// Parses the command line, runs the command, and returns the process exit code.
pub fn main_exit_code() -> i32 {
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
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let json = cli.global.output == cli::Format::Json;
    match commands::run(cli) {
        Ok(()) => 0,
        Err(err) => {
            ui::stderr_line(&format!("error: {err}"));
            if json {
                let doc = serde_json::json!({
                    "apiVersion": ui::API_VERSION,
                    "kind": "Error",
                    "reason": err.kind(),
                    "exitCode": err.code(),
                    "message": err.to_string(),
                });
                ui::stdout_write(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&doc).expect("serializable")
                ));
            }
            err.code()
        }
    }
}
pub mod pki;
pub mod restart;
