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
        /// The renewed certificate's file, read after the write (whoever wrote it: this tool
        /// or `kubeadm certs renew`).
        certificate: PathBuf,
        /// What it presented before the step: what a rollback must see again.
        old_der: Vec<u8>,
        within: Duration,
    },
    /// Restart the static pod (its container stopped through the runtime; the kubelet starts
    /// it again, as for any static pod) and prove the new process healthy on `health_port`,
    /// and, where it elects a leader, holding its lease with the new kubeconfig.
    Restart {
        component: Component,
        /// The kubeconfig it reads at its start: the new process must have started after it
        /// was written (a process that restarted by itself before the write holds the old one).
        kubeconfig: PathBuf,
        /// Where it serves `/healthz` (its `--bind-address`, loopback for a wildcard, and its
        /// `--secure-port`).
        health_host: String,
        health_port: u16,
        lease: Lease,
        within: Duration,
    },
    /// The kubelet, on a renewed client certificate: restarted through systemd, then (unless
    /// `as_before`) its node's Lease renewed since the restart and the node Ready, read with
    /// the kubelet's own kubeconfig (a kubelet may read its own Node and Lease).
    Kubelet {
        node: String,
        within: Duration,
        as_before: bool,
    },
    /// Not running here: it reads the new file when it starts. Nothing to prove, and said so.
    NotRunning { component: Component, why: String },
}

/// The leader-election lease a restarted component must come to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lease {
    /// `kube-system/<component>`: read with the component's own new kubeconfig before the
    /// restart (the credential authenticates as an identity allowed to it, or nothing is
    /// restarted), then held by the new process and renewed after its start. `/healthz` alone
    /// proves neither: it does not use the kubeconfig.
    Held { namespace: String, name: String },
    /// `--leader-elect=false` (or leader election set in a `--config` file this tool does not
    /// read): no lease is asked of it; `/healthz` is the proof.
    NotElected,
    /// Restarted onto files put back (a revert): "as before" may be a credential that had
    /// expired, so `/healthz` is the proof, as for a rollback.
    AsBefore,
}

/// What was proved, for the report.
#[derive(Debug, Clone, Serialize)]
#[serde(
    tag = "proof",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
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
        /// The new process's identity in its leader-election lease, renewed after its start.
        #[serde(skip_serializing_if = "Option::is_none")]
        lease_holder: Option<String>,
        waited_ms: u128,
    },
    KubeletRestarted {
        component: Component,
        node: String,
        old_pid: i32,
        new_pid: i32,
        /// When the node's Lease was renewed, after the restart (not asked of a kubelet put
        /// back as it was).
        #[serde(skip_serializing_if = "Option::is_none")]
        lease_renewed: Option<String>,
        waited_ms: u128,
    },
    NotRunning {
        component: Component,
        why: String,
    },
}

impl ComponentProved {
    /// One line for people: what was proved, and how.
    pub fn describe(&self) -> String {
        match self {
            ComponentProved::Reloaded {
                component,
                certificate,
                endpoint,
                waited_ms,
            } => format!(
                "proved: {} re-read {certificate} by itself: {endpoint} presents the new certificate (after {waited_ms} ms, no restart)",
                component.name()
            ),
            ComponentProved::Restarted {
                component,
                old_pid,
                new_pid,
                healthz,
                lease_holder,
                waited_ms,
            } => format!(
                "proved: {} restarted: pid {old_pid} -> {new_pid}, {healthz} ok{} (after {waited_ms} ms)",
                component.name(),
                lease_holder
                    .as_deref()
                    .map_or(String::new(), |holder| format!(
                        ", its lease held and renewed by the new process ({})",
                        crate::ui::escape(holder)
                    ))
            ),
            ComponentProved::KubeletRestarted {
                node,
                old_pid,
                new_pid,
                lease_renewed,
                waited_ms,
                ..
            } => match lease_renewed {
                Some(renewed) => format!(
                    "proved: the kubelet restarted: pid {old_pid} -> {new_pid}; node {} Ready, its Lease renewed at {renewed} (after {waited_ms} ms)",
                    crate::ui::escape(node)
                ),
                None => format!(
                    "proved: the kubelet restarted onto the files put back: pid {old_pid} -> {new_pid} (after {waited_ms} ms)"
                ),
            },
            ComponentProved::NotRunning { component, why } => {
                format!(
                    "not running: {} ({why}); it reads the new files when it starts",
                    component.name()
                )
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComponentFailure {
    #[error("{path}: the renewed certificate cannot be read back")]
    RenewedUnreadable { path: String },
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
            ComponentCheck::Kubelet { .. } => Component::Kubelet,
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
                certificate,
                within,
                ..
            } => {
                ui.info(format!(
                    "waiting for {} to present the new {name} certificate on {host}:{port} (it re-reads the file)",
                    component.name()
                ));
                let started = Instant::now();
                let new_der = layout
                    .fs()
                    .read_to_string(certificate)
                    .ok()
                    .and_then(|pem| {
                        crate::credentials::pem::certificates(&pem)
                            .into_iter()
                            .next()
                    })
                    .ok_or_else(|| ComponentFailure::RenewedUnreadable {
                        path: layout.node_path(certificate),
                    })?;
                presents(
                    layout,
                    host,
                    *port,
                    client.as_ref(),
                    &new_der,
                    *within,
                    true,
                )?;
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
                health_host,
                health_port,
                lease,
                within,
            } => {
                let started = Instant::now();
                // Right after the write: the new process must start after this.
                let written = now_ticks(component.name())?;
                // Before anything stops: the new credential reads the lease, or nothing is
                // restarted onto it.
                let lease_wanted = match lease {
                    Lease::Held { namespace, name } => {
                        ui.info(format!(
                            "checking that the new {} authenticates: reading the lease {namespace}/{name} with it",
                            layout.node_path(kubeconfig),
                        ));
                        let before =
                            read_lease(layout, kubeconfig, namespace, name).map_err(|why| {
                                ComponentFailure::NotRestarted {
                                    component: component.name(),
                                    why: format!("its new kubeconfig does not work: {why}"),
                                }
                            })?;
                        let ours = our_identity_prefix();
                        match &before.identity {
                            // Another node's leader holds it (an HA cluster where this one
                            // is not the leader): it keeps it, and the new process here only
                            // waits. The read with the new kubeconfig and /healthz prove it.
                            Some(holder) if !holder.starts_with(&ours) => {
                                ui.info(format!(
                                    "{namespace}/{name} is held by another node ({}): {} is proved by its new kubeconfig and /healthz",
                                    crate::ui::escape(holder),
                                    component.name()
                                ));
                                None
                            }
                            _ => Some(LeaseWanted {
                                before,
                                ours,
                                namespace,
                                name,
                            }),
                        }
                    }
                    Lease::NotElected | Lease::AsBefore => None,
                };
                ui.info(format!(
                    "restarting {} so that it reads its new kubeconfig",
                    component.name()
                ));
                let restarted = restart(
                    layout,
                    *component,
                    kubeconfig,
                    (health_host, *health_port),
                    lease_wanted,
                    written,
                    *within,
                    true,
                )?;
                Ok(ComponentProved::Restarted {
                    component: *component,
                    old_pid: restarted.stopped.map_or(0, |p| p.pid),
                    new_pid: restarted.new.pid,
                    healthz: format!("https://{health_host}:{health_port}/healthz"),
                    lease_holder: restarted.lease_holder,
                    waited_ms: started.elapsed().as_millis(),
                })
            }
            ComponentCheck::Kubelet {
                node,
                within,
                as_before,
            } => {
                ui.info("restarting the kubelet so that it reads its new client certificate");
                let started = Instant::now();
                let restarted = restart_kubelet(layout, node, *within, !*as_before, true)?;
                Ok(ComponentProved::KubeletRestarted {
                    component: Component::Kubelet,
                    node: node.clone(),
                    old_pid: restarted.stopped.map_or(0, |p| p.pid),
                    new_pid: restarted.new.pid,
                    lease_renewed: restarted
                        .lease_renewed_ms
                        .map(|ms| crate::runtime::clock::rfc3339(ms / 1000)),
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
                health_host,
                health_port,
                within,
                ..
            } => {
                ui.info(format!(
                    "restarting {} again with its old kubeconfig",
                    component.name()
                ));
                // Its own budget: a short --timeout must not leave the old one unproved. No
                // lease: "as before" may be a credential that had expired.
                let within = (*within).max(RESTART_BUDGET);
                let written = now_ticks(component.name())?;
                restart(
                    layout,
                    *component,
                    kubeconfig,
                    (health_host, *health_port),
                    None,
                    written,
                    within,
                    false,
                )
                .map(|_| ())
            }
            ComponentCheck::Kubelet { node, within, .. } => {
                ui.info("restarting the kubelet again with its previous files");
                // As before: a kubelet running again (the one before may not have been able to
                // authenticate, so no Lease or Ready is asked of it).
                restart_kubelet(layout, node, (*within).max(RESTART_BUDGET), false, false)
                    .map(|_| ())
            }
            ComponentCheck::NotRunning { .. } => Ok(()),
        }
    }
}

/// `systemctl restart kubelet`, bounded, not stopped by a signal once asked (a half-done
/// restart is worse than a finished one).
fn systemctl_restart_kubelet() -> Result<(), ComponentFailure> {
    let not_restarted = |why: String| ComponentFailure::NotRestarted {
        component: "kubelet",
        why,
    };
    let out = interrupt::run(
        duct::cmd("systemctl", ["restart", "kubelet"])
            .stderr_to_stdout()
            .stdout_capture(),
        Duration::from_secs(90),
        false,
    )
    .map_err(|e| not_restarted(format!("systemctl restart kubelet: {e}")))?;
    if !out.status.success() {
        return Err(not_restarted(format!(
            "systemctl restart kubelet: {}",
            crate::ui::escape(String::from_utf8_lossy(&out.stdout).trim())
        )));
    }
    Ok(())
}

/// Boot-clock ticks now (what a process's start is counted in), or the restart cannot be proved.
fn now_ticks(component: &'static str) -> Result<u64, ComponentFailure> {
    process::boot_ticks_now().ok_or(ComponentFailure::NotRestarted {
        component,
        why: "/proc/uptime cannot be read: a new process cannot be told from an old one".into(),
    })
}

/// The start of the identity client-go's leader election writes for a process of this host:
/// `<hostname>_<uuid>`.
fn our_identity_prefix() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}_", host.trim())
}

/// The kubelet restarted: a new kubelet process, started after the restart was asked; where
/// `ready` is asked, the node's Lease (`kube-node-lease/<node>`) renewed after the old kubelet
/// was gone and the node Ready.
struct KubeletRestarted {
    stopped: Option<ProcessIdentity>,
    new: ProcessIdentity,
    lease_renewed_ms: Option<i64>,
}

fn restart_kubelet(
    layout: &NodeLayout,
    node: &str,
    within: Duration,
    ready: bool,
    interruptible: bool,
) -> Result<KubeletRestarted, ComponentFailure> {
    let before = process::find_kubelet(layout);
    let asked = now_ticks("kubelet")?;
    systemctl_restart_kubelet()?;
    // systemctl returns once the old kubelet has stopped and the new one is started: a Lease
    // renewed after this instant is the new one's.
    let restarted_ms = crate::runtime::clock::now_unix_ms();
    let deadline = Instant::now() + within;
    let mut last = "no new kubelet process yet".to_string();
    loop {
        let fresh = process::find_kubelet(layout)
            .filter(|p| Some(p) != before.as_ref() && p.start_ticks >= asked);
        if let Some(now) = fresh {
            if !ready {
                return Ok(KubeletRestarted {
                    stopped: before,
                    new: now,
                    lease_renewed_ms: None,
                });
            }
            match node_state(layout, node) {
                Ok((Some(renewed), true)) if renewed > restarted_ms => {
                    return Ok(KubeletRestarted {
                        stopped: before,
                        new: now,
                        lease_renewed_ms: Some(renewed),
                    });
                }
                Ok((renewed, ready)) => {
                    last = format!(
                        "node {} is {}, its Lease last renewed {}",
                        crate::ui::escape(node),
                        if ready { "Ready" } else { "not Ready" },
                        renewed.map_or("never".into(), |ms| crate::runtime::clock::rfc3339(
                            ms / 1000
                        ))
                    )
                }
                Err(e) => last = format!("the node cannot be read with kubelet.conf: {e}"),
            }
        }
        if interruptible && interrupt::interrupted() {
            return Err(ComponentFailure::Interrupted);
        }
        if Instant::now() >= deadline {
            return Err(ComponentFailure::NotHealthy {
                component: "kubelet",
                within,
                last,
            });
        }
        std::thread::sleep(POLL);
    }
}

/// The node's Lease renewal (unix ms) and whether its Ready condition is True, read with the
/// kubelet's own kubeconfig: the node authorizer lets a kubelet read its own Node and Lease,
/// so this needs neither admin.conf nor the admin step before it.
fn node_state(layout: &NodeLayout, node: &str) -> Result<(Option<i64>, bool), ReadFailure> {
    let kubelet =
        crate::apiserver::admin::Admin::connect(layout, &layout.kubeconfig("kubelet.conf"))
            .map_err(ReadFailure::Connect)?;
    let read = |path: String| {
        kubelet
            .get::<serde_json::Value>(&path)
            .map_err(ReadFailure::Call)
    };
    let lease = read(format!(
        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}"
    ))?;
    let renewed = lease
        .pointer("/spec/renewTime")
        .and_then(|t| t.as_str())
        .and_then(crate::runtime::clock::parse_rfc3339_ms);
    let node = read(format!("/api/v1/nodes/{node}"))?;
    let ready = node
        .pointer("/status/conditions")
        .and_then(|c| c.as_array())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
    Ok((renewed, ready))
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

/// Who held a lease, and when it was last renewed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LeaseHolder {
    identity: Option<String>,
    renewed_unix: Option<i64>,
}

/// Why an object could not be read from the API.
#[derive(Debug, thiserror::Error)]
enum ReadFailure {
    #[error("{0}")]
    Connect(crate::error::Error),
    #[error("{0}")]
    Call(crate::apiserver::admin::CallError),
}

/// `path` read with `kubeconfig` (bounded in time, as every API call).
fn read_object(
    layout: &NodeLayout,
    kubeconfig: &std::path::Path,
    path: &str,
) -> Result<serde_json::Value, ReadFailure> {
    crate::apiserver::admin::Admin::connect(layout, kubeconfig)
        .map_err(ReadFailure::Connect)?
        .get(path)
        .map_err(ReadFailure::Call)
}

/// The lease `namespace/name`, read with `kubeconfig`. A holder written as "" (a lease
/// released at its holder's shutdown, as the scheduler does) is no holder.
fn read_lease(
    layout: &NodeLayout,
    kubeconfig: &std::path::Path,
    namespace: &str,
    name: &str,
) -> Result<LeaseHolder, ReadFailure> {
    let lease = read_object(
        layout,
        kubeconfig,
        &format!("/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"),
    )?;
    Ok(LeaseHolder {
        identity: lease
            .pointer("/spec/holderIdentity")
            .and_then(|h| h.as_str())
            .filter(|h| !h.is_empty())
            .map(str::to_string),
        renewed_unix: lease
            .pointer("/spec/renewTime")
            .and_then(|t| t.as_str())
            .and_then(crate::runtime::clock::parse_rfc3339),
    })
}

/// Whether the lease as read now is held by a process of this host (`ours`: its identity's
/// start) that started at `started` — a new holder, renewed since then — given who held it
/// before the restart.
fn held_since(now: &LeaseHolder, before: &LeaseHolder, ours: &str, started: i64) -> bool {
    // /proc's start time is whole seconds and rounds down: a second of slack.
    now.identity
        .as_deref()
        .is_some_and(|id| id.starts_with(ours))
        && now.identity != before.identity
        && now
            .renewed_unix
            .is_some_and(|renewed| renewed >= started - 1)
}

/// The lease a restarted process must come to hold: who held it before, and this host's start
/// of a holder's identity.
struct LeaseWanted<'a> {
    before: LeaseHolder,
    ours: String,
    namespace: &'a str,
    name: &'a str,
}

struct Restarted {
    stopped: Option<ProcessIdentity>,
    new: ProcessIdentity,
    lease_holder: Option<String>,
}

/// Stops the component's container through the runtime (the kubelet starts a new one from the
/// same manifest), then waits for a process that is not the one stopped, started after
/// `written` (boot-clock ticks taken right after its kubeconfig was written), that answers
/// `/healthz` with 200 and, where a lease is wanted, holds it and has renewed it since its
/// start.
#[allow(clippy::too_many_arguments)]
fn restart(
    layout: &NodeLayout,
    component: Component,
    kubeconfig: &std::path::Path,
    (health_host, health_port): (&str, u16),
    lease: Option<LeaseWanted>,
    written: u64,
    within: Duration,
    interruptible: bool,
) -> Result<Restarted, ComponentFailure> {
    let name = component.name();
    let not_restarted = |why: String| ComponentFailure::NotRestarted {
        component: name,
        why,
    };
    // Only the kubelet starts a static pod's container again: nothing is stopped without one.
    if !process::kubelet_running(layout) {
        return Err(not_restarted(
            "no kubelet runs here to start it again, so it is not stopped: start the kubelet first"
                .into(),
        ));
    }
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
        let fresh = process::find_component(name)
            .filter(|p| Some(p) != before.as_ref() && p.start_ticks >= written);
        if let Some(now) = fresh {
            match served::get_status(health_host, health_port, "/healthz") {
                Ok(200) => match &lease {
                    None => {
                        return Ok(Restarted {
                            stopped: before,
                            new: now,
                            lease_holder: None,
                        });
                    }
                    Some(wanted) => {
                        let started = process::started_unix(&now).unwrap_or(i64::MAX);
                        match read_lease(layout, kubeconfig, wanted.namespace, wanted.name) {
                            Ok(lease)
                                if held_since(&lease, &wanted.before, &wanted.ours, started) =>
                            {
                                return Ok(Restarted {
                                    stopped: before,
                                    new: now,
                                    lease_holder: lease.identity,
                                });
                            }
                            Ok(lease) => {
                                last = format!(
                                    "healthy, but the lease {}/{} is held by {} (renewed {}), not yet by the new process",
                                    wanted.namespace,
                                    wanted.name,
                                    crate::ui::escape(
                                        lease.identity.as_deref().unwrap_or("no one")
                                    ),
                                    lease
                                        .renewed_unix
                                        .map_or("never".into(), crate::runtime::clock::rfc3339)
                                )
                            }
                            Err(e) => last = format!("healthy, but its lease cannot be read: {e}"),
                        }
                    }
                },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(identity: Option<&str>, renewed: Option<i64>) -> LeaseHolder {
        LeaseHolder {
            identity: identity.map(str::to_string),
            renewed_unix: renewed,
        }
    }

    #[test]
    fn the_lease_proves_the_new_process_only_with_a_new_holder_of_this_host_renewed_since_its_start()
     {
        let ours = "node1_";
        let before = holder(Some("node1_old-uuid"), Some(1_000));
        let started = 2_000;
        assert!(held_since(
            &holder(Some("node1_new-uuid"), Some(2_003)),
            &before,
            ours,
            started
        ));
        // /proc's whole seconds: renewed in the second it started.
        assert!(held_since(
            &holder(Some("node1_new-uuid"), Some(1_999)),
            &before,
            ours,
            started
        ));
        // Still the old holder (the new process waits for the old lease to lapse).
        assert!(!held_since(
            &holder(Some("node1_old-uuid"), Some(2_010)),
            &before,
            ours,
            started
        ));
        // Another node's process took it (an HA cluster): not this new process.
        assert!(!held_since(
            &holder(Some("node2_other-uuid"), Some(2_010)),
            &before,
            ours,
            started
        ));
        // A new holder that has not renewed since the start: another process's.
        assert!(!held_since(
            &holder(Some("node1_new-uuid"), Some(1_500)),
            &before,
            ours,
            started
        ));
        // Released, or never held.
        assert!(!held_since(
            &holder(None, Some(2_010)),
            &before,
            ours,
            started
        ));
        assert!(!held_since(
            &holder(Some("node1_new-uuid"), None),
            &before,
            ours,
            started
        ));
        // No one held it before: the first holder of this host since the start.
        assert!(held_since(
            &holder(Some("node1_new-uuid"), Some(2_001)),
            &holder(None, None),
            ours,
            started
        ));
    }
}
