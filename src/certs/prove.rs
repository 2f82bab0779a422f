//! Proving that a component uses its renewed certificate: a port that presents the new one (the
//! components that re-read their files), or a static pod restarted and healthy with a process
//! that started after its kubeconfig was written (the ones that read it only at their start).
//! Every wait has a deadline and stops at a signal.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::catalogue::Component;
use super::served::{self, ClientIdentity};
use crate::apiserver::process::{self, ProcessIdentity};
use crate::node::NodeLayout;
use crate::runtime::interrupt;
use crate::ui::Ui;

/// How one component is to show that it uses its renewed certificates.
#[derive(Debug, Clone)]
pub enum ComponentCheck {
    /// The port presents the new certificate within `within` (its reload period), by itself.
    Presents {
        name: &'static str,
        component: Component,
        host: String,
        port: u16,
        /// The certificate and key files a look offers (etcd demands a client certificate).
        client: Option<(PathBuf, PathBuf)>,
        new_der: Vec<u8>,
        /// What it presented before the step: what a rollback must see again.
        old_der: Vec<u8>,
        within: Duration,
    },
    /// Restart the static pod (its container stopped through the runtime; the kubelet starts
    /// it again, as for any static pod) and prove the new process healthy on `health_port`.
    Restart {
        component: Component,
        /// The kubeconfig it reads at its start: the new process must have started after it
        /// was written (a process that restarted by itself before the write holds the old one).
        kubeconfig: PathBuf,
        health_port: u16,
        within: Duration,
    },
    /// Not running here: it reads the new file when it starts. Nothing to prove, and said so.
    NotRunning { component: Component, why: String },
}

/// What was proved, for the report.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "proof", rename_all = "kebab-case")]
pub enum ComponentProved {
    /// Reloaded by itself: the port presents the new serial.
    Reloaded {
        component: Component,
        certificate: &'static str,
        endpoint: String,
        waited_ms: u128,
    },
    Restarted {
        component: Component,
        old_pid: i32,
        new_pid: i32,
        healthz: String,
        waited_ms: u128,
    },
    NotRunning {
        component: Component,
        why: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComponentFailure {
    #[error("{endpoint} still presents the old certificate after {}s", within.as_secs())]
    NotReloaded { endpoint: String, within: Duration },
    #[error("{component} could not be restarted: {why}")]
    NotRestarted {
        component: &'static str,
        why: String,
    },
    #[error("{component} did not come back healthy within {}s ({last})", within.as_secs())]
    NotHealthy {
        component: &'static str,
        within: Duration,
        last: String,
    },
    #[error("interrupted")]
    Interrupted,
}

const POLL: Duration = Duration::from_millis(500);

/// How long a component that re-reads its files may take to present a certificate: the
/// apiserver watches the file and rechecks every minute; etcd reads it at each handshake.
pub const RELOAD_BUDGET: Duration = Duration::from_secs(90);
/// How long a restarted controller-manager or scheduler may take to answer `/healthz`: the
/// kubelet's back-off for a container that crash-looped (on an expired certificate) reaches
/// five minutes before it starts it again.
pub const RESTART_BUDGET: Duration = Duration::from_secs(330);

impl ComponentCheck {
    pub fn component(&self) -> Component {
        match self {
            ComponentCheck::Presents { component, .. }
            | ComponentCheck::Restart { component, .. }
            | ComponentCheck::NotRunning { component, .. } => *component,
        }
    }

    /// After the write: the new certificate in use.
    pub fn prove(&self, layout: &NodeLayout, ui: &Ui) -> Result<ComponentProved, ComponentFailure> {
        match self {
            ComponentCheck::Presents {
                name,
                component,
                host,
                port,
                client,
                new_der,
                within,
                ..
            } => {
                ui.info(format!(
                    "waiting for {} to present the new {name} certificate on {host}:{port} (it re-reads the file)",
                    component.name()
                ));
                let started = Instant::now();
                presents(layout, host, *port, client.as_ref(), new_der, *within, true)?;
                Ok(ComponentProved::Reloaded {
                    component: *component,
                    certificate: name,
                    endpoint: format!("{host}:{port}"),
                    waited_ms: started.elapsed().as_millis(),
                })
            }
            ComponentCheck::Restart {
                component,
                kubeconfig,
                health_port,
                within,
            } => {
                ui.info(format!(
                    "restarting {} so that it reads its new kubeconfig",
                    component.name()
                ));
                let started = Instant::now();
                let (old, new) =
                    restart(layout, *component, kubeconfig, *health_port, *within, true)?;
                Ok(ComponentProved::Restarted {
                    component: *component,
                    old_pid: old.map_or(0, |p| p.pid),
                    new_pid: new.pid,
                    healthz: format!("https://127.0.0.1:{health_port}/healthz"),
                    waited_ms: started.elapsed().as_millis(),
                })
            }
            ComponentCheck::NotRunning { component, why } => Ok(ComponentProved::NotRunning {
                component: *component,
                why: why.clone(),
            }),
        }
    }

    /// After the old files are back: the component as before (not interruptible: this is how
    /// an interrupt is handled).
    pub fn prove_old(&self, layout: &NodeLayout, ui: &Ui) -> Result<(), ComponentFailure> {
        match self {
            ComponentCheck::Presents {
                host,
                port,
                client,
                old_der,
                within,
                ..
            } => presents(
                layout,
                host,
                *port,
                client.as_ref(),
                old_der,
                // Its own budget: a short --timeout must not leave the old one unproved.
                (*within).max(RELOAD_BUDGET),
                false,
            ),
            ComponentCheck::Restart {
                component,
                kubeconfig,
                health_port,
                within,
            } => {
                ui.info(format!(
                    "restarting {} again with its old kubeconfig",
                    component.name()
                ));
                // Its own budget: a short --timeout must not leave the old one unproved.
                let within = (*within).max(RESTART_BUDGET);
                restart(layout, *component, kubeconfig, *health_port, within, false).map(|_| ())
            }
            ComponentCheck::NotRunning { .. } => Ok(()),
        }
    }
}

/// The client certificate and key to offer a port, read from their files (anew each time).
pub fn identity(
    layout: &NodeLayout,
    client: Option<&(PathBuf, PathBuf)>,
) -> Option<ClientIdentity> {
    let (cert, key) = client?;
    Some(ClientIdentity {
        certificate_pem: layout.fs().read_to_string(cert).ok()?,
        key_pem: layout.fs().read_to_string(key).ok()?.into(),
    })
}

fn presents(
    layout: &NodeLayout,
    host: &str,
    port: u16,
    client: Option<&(PathBuf, PathBuf)>,
    want: &[u8],
    within: Duration,
    interruptible: bool,
) -> Result<(), ComponentFailure> {
    let deadline = Instant::now() + within;
    loop {
        // Read anew each time: the files offered are the ones being renewed.
        let client = identity(layout, client);
        if served::presented(host, port, client.as_ref()).is_ok_and(|der| der == want) {
            return Ok(());
        }
        if interruptible && interrupt::interrupted() {
            return Err(ComponentFailure::Interrupted);
        }
        if Instant::now() >= deadline {
            return Err(ComponentFailure::NotReloaded {
                endpoint: format!("{host}:{port}"),
                within,
            });
        }
        std::thread::sleep(POLL);
    }
}

/// Stops the component's container through the runtime (the kubelet starts a new one from the
/// same manifest), then waits for a process that is not the one stopped, started after its
/// kubeconfig was last written, and answers `/healthz` with 200. Returns (stopped, new).
fn restart(
    layout: &NodeLayout,
    component: Component,
    kubeconfig: &std::path::Path,
    health_port: u16,
    within: Duration,
    interruptible: bool,
) -> Result<(Option<ProcessIdentity>, ProcessIdentity), ComponentFailure> {
    let name = component.name();
    let not_restarted = |why: String| ComponentFailure::NotRestarted {
        component: name,
        why,
    };
    let written = layout
        .fs()
        .metadata(kubeconfig)
        .map_err(|e| not_restarted(format!("{}: {e}", kubeconfig.display())))?
        .changed_unix;
    // Who runs now, after the write: the one to replace.
    let before = process::find_component(name);
    if let Some(container) = process::running_container(layout, name, interruptible) {
        let stop = process::crictl(layout, &["stop", "--timeout", "30", &container])
            .ok_or_else(|| not_restarted("no container runtime on this root".into()))?;
        let out = interrupt::run(
            stop.stderr_capture().stdout_null(),
            Duration::from_secs(45),
            false,
        )
        .map_err(|e| not_restarted(format!("crictl stop: {e}")))?;
        if !out.status.success() {
            return Err(not_restarted(format!(
                "crictl stop: {}",
                crate::ui::escape(String::from_utf8_lossy(&out.stderr).trim())
            )));
        }
    } else if before.is_some() {
        return Err(not_restarted(
            "its container cannot be found through crictl".into(),
        ));
    }
    let deadline = Instant::now() + within;
    let mut last = "no new process yet".to_string();
    loop {
        let fresh = process::find_component(name).filter(|p| {
            Some(p) != before.as_ref()
                && process::started_unix(p).is_some_and(|started| started >= written)
        });
        if let Some(now) = fresh {
            match served::get_status("127.0.0.1", health_port, "/healthz") {
                Ok(200) => return Ok((before, now)),
                Ok(code) => last = format!("/healthz answered {code}"),
                Err(e) => last = format!("/healthz: {e}"),
            }
        }
        if interruptible && interrupt::interrupted() {
            return Err(ComponentFailure::Interrupted);
        }
        if Instant::now() >= deadline {
            return Err(ComponentFailure::NotHealthy {
                component: name,
                within,
                last,
            });
        }
        std::thread::sleep(POLL);
    }
}
