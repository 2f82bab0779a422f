//! `rehearse`: the break-glass flow end to end on a simulated node in a temp dir. The node (its
//! files, kubelet and apiserver) and the rehearsal itself (sandbox, network namespace, each step)
//! belong to the separate `kubeadm-recover-sim` binary (`kubeadm-recover-sim rehearse`,
//! sim/src/rehearse/): this binary, which runs as root on real nodes, only finds it and hands
//! over, with the flags and its own path. Each step runs this very binary as an operator would
//! (`--root <sandbox> ... -o json`), so what is rehearsed is what runs on a real node.
use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use crate::cli::RehearseOptions;
use crate::error::{Error, Result};
use crate::ui::{Format, UiSettings};

fn exe() -> Result<PathBuf> {
    std::env::current_exe()
        .map_err(|e| Error::Failed(format!("cannot find this program's path: {e}")))
}

pub const SIMULATOR: &str = "kubeadm-recover-sim";

/// The simulator: next to this binary (a cargo build, or an unpacked release), else on PATH.
fn simulator() -> Result<PathBuf> {
    let beside = exe()?.with_file_name(SIMULATOR);
    if beside.is_file() {
        return Ok(beside);
    }
    crate::node::on_path(SIMULATOR).ok_or_else(|| {
            Error::Refused(format!(
                "rehearse needs the simulator `{SIMULATOR}`, which is neither next to {} nor on PATH.\n  \
                 what to do: build it with `cargo build --release` in the source tree (it builds both binaries), \
                 or `cargo install --path sim`. It is a separate binary so that the tool installed on \
                 real nodes carries no simulated apiserver",
                exe().map(|e| e.display().to_string()).unwrap_or_default()
            ))
        })
}

/// The command line of `kubeadm-recover-sim rehearse`, which parses the flags with the same
/// `RehearseOptions`: each flag as given (clap has checked them), and the global flags that
/// speak for the rehearsal. Values go as `--flag=VALUE`, so that none is read as a flag.
fn arguments(settings: UiSettings, options: &RehearseOptions, product: PathBuf) -> Vec<OsString> {
    let valued = |name: &str, value: &OsStr| {
        let mut arg = OsString::from(format!("--{name}="));
        arg.push(value);
        arg
    };
    let mut args = vec!["rehearse".into(), valued("product", product.as_os_str())];
    for (on, flag) in [
        (options.keep, "--keep"),
        (options.timings, "--timings"),
        (options.serve, "--serve"),
        (settings.format == Format::Json, "--output=json"),
        (settings.quiet, "--quiet"),
        (settings.verbose, "--verbose"),
        (settings.non_interactive, "--non-interactive"),
    ] {
        if on {
            args.push(flag.into());
        }
    }
    args.push(format!("--rounds={}", options.rounds).into());
    if let Some(dir) = &options.dir {
        args.push(valued("dir", dir.as_os_str()));
    }
    match &options.kube_bin {
        Some(bin) => args.push(valued("kube-bin", bin.as_os_str())),
        // With --kube-bin the version and key type are the binaries' (clap refuses both).
        None => {
            let key_type = clap::ValueEnum::to_possible_value(&options.key_type)
                .expect("every key type has a name");
            args.push(format!("--kubernetes-version={}", options.kubernetes_version).into());
            args.push(format!("--key-type={}", key_type.get_name()).into());
        }
    }
    args
}

/// Becomes `kubeadm-recover-sim rehearse` (exec: the same process, so signals, the terminal,
/// stdout and the exit code are the rehearsal's own, with nothing in between). Returns only
/// when the simulator cannot be run.
pub fn run(settings: UiSettings, options: &RehearseOptions) -> Result<()> {
    let mut command = Command::new(simulator()?);
    command.args(arguments(settings, options, exe()?));
    if crate::ui::STDOUT_CLOSED.load(std::sync::atomic::Ordering::Relaxed) {
        // Started with stdout closed, this process writes to the /dev/null the Rust runtime put
        // there: closed again, the simulator sees what this binary saw, and says so when its
        // result cannot be written.
        let _ = nix::unistd::close(1);
    }
    let e = command.exec();
    Err(Error::Failed(format!("cannot run {SIMULATOR}: {e}")))
}
