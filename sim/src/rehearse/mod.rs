//! `kubeadm-recover-sim rehearse`: the break-glass flow end to end on a simulated node in a temp
//! dir. `kubeadm-recover rehearse` hands over to it (exec, with its own path as `--product`):
//! the orchestration — network namespaces, the simulated kubelet, reading the product's
//! documents — lives here, so that the binary that runs as root on real nodes carries none of
//! it. Each step runs the product as an operator would (`--root <sandbox> ... -o json`), so
//! what is rehearsed is what runs on a real node.
//!
//! It speaks as `kubeadm-recover rehearse` always has, through the product's own `ui`: the same
//! progress lines, report (text, or the `Rehearsal` document), `error:` line, `Error` document
//! and exit codes.
mod product;
mod report;
mod sandbox;
mod steps;

use std::path::PathBuf;

use kubeadm_recover::cli::RehearseOptions;
use kubeadm_recover::error::Result;
use kubeadm_recover::ui::{self, Ui, UiSettings};

use sandbox::{Sandbox, Target};
use steps::Rehearsing;

/// Runs the rehearsal of the product binary `exe` and ends as a command of the product ends: its exit code,
/// after the `error:` line (and with `-o json` the `Error` document) when it failed.
pub fn main(exe: PathBuf, options: &RehearseOptions, settings: UiSettings) -> i32 {
    let ui = Ui::new(settings);
    match run(&ui, exe, options) {
        Ok(()) => 0,
        Err(err) => ui::fail(&err, settings.format),
    }
}

pub fn run(ui: &Ui, exe: PathBuf, options: &RehearseOptions) -> Result<()> {
    let kube_bin = options
        .kube_bin
        .as_deref()
        .map(sandbox::check_kube_bin)
        .transpose()?;
    let mut sandbox = Sandbox::start(options)?;
    let real = kube_bin.is_some() || (options.serve && sandbox.has_real_binaries());
    let netns = if real {
        let (holder, netns) = sandbox::hold_network_namespace()?;
        sandbox.netns_holder = Some(holder);
        Some(netns)
    } else {
        None
    };
    let mut rehearsing = Rehearsing {
        ui,
        product: product::Product { exe },
        target: Target {
            root: sandbox.root.clone(),
            netns,
        },
        kube_bin,
        real,
        show_timings: options.timings,
        steps: Vec::new(),
        noticed: Vec::new(),
        overhead: Vec::new(),
    };
    if !ui.json() {
        let what = match &rehearsing.kube_bin {
            Some(bin) => format!(
                "a node laid out by the real kubeadm, running the real etcd and kube-apiserver from {}",
                bin.display()
            ),
            None if real => "a node of real binaries".into(),
            None => "a simulated kubeadm node".into(),
        };
        ui::stdout_write(&format!(
            "rehearsal on {what} in {}\n",
            sandbox.root.display()
        ))?;
    }
    if options.serve {
        rehearsing.start_kubelet(&mut sandbox)?;
        let how = match &sandbox.netns_holder {
            // Its apiserver listens only inside the rehearsal's network namespace.
            Some(holder) => format!(
                "nsenter --net=/proc/{}/ns/net kubeadm-recover --root {} status",
                holder.id(),
                sandbox.root.display()
            ),
            None => format!("kubeadm-recover --root {} status", sandbox.root.display()),
        };
        ui.info(format!(
            "serving: point the tool at it with `{how}`; Ctrl-C stops it"
        ));
        let _ = sandbox.kubelet.as_mut().map(|k| k.wait());
        return Ok(());
    }
    rehearsing.build_node(options)?;
    rehearsing.start_kubelet(&mut sandbox)?;
    rehearsing.status()?;
    rehearsing.regenerate_admin()?;
    rehearsing.break_glass(options.rounds)?;
    rehearsing.rejected_change()?;
    rehearsing.expired_certificates()?;
    let report = rehearsing.report(sandbox.keep);
    drop(sandbox);
    ui.report(&report)?;
    Ok(())
}
