//! Getting a kubelet that has not reacted to restart kube-apiserver: stop the container through
//! crictl, or move the manifest out of the kubelet's sight and back. A run killed in between
//! leaves the manifest parked; every command that changes the node puts it back first.
use std::time::{Duration, Instant};

use crate::apiserver::process;
use crate::error::{Error, Result};
use crate::node::NodeLayout;
use crate::ui::Ui;

use super::POLL;

/// Moves the manifest out of the kubelet's sight and back, as kubeadm's documentation
/// recommends for restarting a static pod; or stops the container through crictl.
pub fn nudge(layout: &NodeLayout, ui: &Ui, expected_port: u16, deadline: Instant) {
    if let Some(id) = process::crictl_container_id(layout)
        && let Some(stop) = process::crictl(layout, &["stop", &id])
    {
        ui.info(format!(
            "nudging the kubelet: {}",
            crate::ui::command_line(["crictl", "stop", &id])
        ));
        // crictl's own grace period is 10 s; a signal stops the wait (the change rolls back).
        let _ = crate::interrupt::run(
            stop.stdout_null().stderr_null(),
            Duration::from_secs(30),
            true,
        );
        return;
    }
    let manifest = layout.apiserver_manifest();
    let parked = parked_path(layout);
    ui.info(format!(
        "nudging the kubelet: moving the manifest to {} and back (if this is interrupted: mv {} {})",
        parked.display(),
        parked.display(),
        manifest.display()
    ));
    if layout.fs().rename(&manifest, &parked).is_err() {
        return;
    }
    injected_during_nudge();
    // The kubelet relists every 20 s: give it that and a little, but never past our deadline.
    let deadline = deadline.min(Instant::now() + Duration::from_secs(25));
    // A signal ends the wait at once (the manifest is moved back below, then the change rolls back).
    while Instant::now() < deadline
        && !crate::interrupt::interrupted()
        && process::find_apiserver(expected_port).is_some()
    {
        std::thread::sleep(POLL);
    }
    if let Err(e) = layout.fs().rename(&parked, &manifest) {
        ui.warn(format!(
            "could not move the manifest back ({e}): run mv {} {}",
            parked.display(),
            manifest.display()
        ));
    }
}

/// Where a nudge parks the manifest while the kubelet notices it is gone (same filesystem).
pub fn parked_path(layout: &NodeLayout) -> std::path::PathBuf {
    layout
        .tmp_dir()
        .join("kube-apiserver.yaml.kubeadm-recover-nudge")
}

/// A run killed during a nudge leaves the manifest parked: every command that changes the node
/// first puts it back (the nudge would have done the same a moment later).
pub fn unpark_manifest(layout: &NodeLayout, ui: &Ui) -> Result<()> {
    let parked = parked_path(layout);
    let manifest = layout.apiserver_manifest();
    if !layout.fs().exists(&parked) {
        return Ok(());
    }
    if layout.fs().exists(&manifest) {
        return Err(Error::Refused(format!(
            "{} exists and so does {} (parked by an interrupted nudge): compare them and remove the one that is wrong",
            manifest.display(),
            parked.display()
        )));
    }
    layout
        .fs()
        .rename(&parked, &manifest)
        .map_err(|e| Error::io("cannot move back the parked manifest", &parked, e))?;
    ui.warn(format!(
        "an interrupted nudge had parked the manifest in {}; it is back in {}",
        parked.display(),
        manifest.display()
    ));
    Ok(())
}

/// Only the kill form matters here: the nudge has no error path to take.
fn injected_during_nudge() {
    let _ = nudge_failpoint();
}

fn nudge_failpoint() -> Result<()> {
    crate::failpoint!("during-nudge");
    Ok(())
}
