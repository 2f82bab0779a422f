//! How each step of a renewal is proved, planned against the node as it is when the step
//! runs: SelfSubjectReview for the admin credentials, the port presenting the renewed
//! certificate for what re-reads its files, a restart with its lease for what reads its
//! kubeconfig only at its start.
use std::path::PathBuf;
use std::time::Duration;

use super::{ProofInput, RELOAD_WITHIN, RESTART_WITHIN};
use crate::certs::catalogue::{Component, Endpoint, LEAVES, Location, Pickup};
use crate::certs::prove::{ComponentCheck, Lease};
use crate::change::plan::{self, Action, CredentialCheck};
use crate::error::{Error, Result};
use crate::node::NodeLayout;

/// When a step's proofs are planned: for the plan shown before anything runs, or as the step
/// starts (after the steps before it, which may have brought a kubelet back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Shown,
    Starting,
}

/// How each step is proved.
pub(super) fn proofs(
    layout: &NodeLayout,
    title: &str,
    issued: &[ProofInput],
    timeout: Option<Duration>,
    when: When,
) -> Result<plan::Verify> {
    if title == "admin credentials" {
        let checks = issued
            .iter()
            .filter_map(|ProofInput { entry, old_der, .. }| {
                let Location::Kubeconfig(file) = entry.location else {
                    return None;
                };
                let subject = subject_of(old_der)?;
                Some(CredentialCheck {
                    file,
                    path: layout.kubeconfig(file),
                    subject,
                })
            })
            .collect();
        return Ok(plan::Verify::Credentials(checks));
    }
    let mut checks = Vec::new();
    for ProofInput { entry, old_der } in issued {
        match entry.pickup {
            Pickup::Reloads(Component::Kubelet) => checks.push(kubelet_check(
                layout,
                super::kubelet::node_name(old_der).ok_or_else(|| {
                    Error::Refused(format!(
                        "{}: not a kubelet client certificate (its subject is not CN=system:node:<name>)",
                        layout.node_path(&super::path_of(layout, entry))
                    ))
                })?,
                timeout.unwrap_or(RESTART_WITHIN),
                false,
            )),
            Pickup::Serves(component, endpoint) => checks.push(presents_check(
                layout,
                entry.name,
                component,
                endpoint,
                super::path_of(layout, entry),
                timeout.unwrap_or(RELOAD_WITHIN),
            )),
            Pickup::ReadAtStart(component) => checks.push(restart_check(
                layout,
                component,
                timeout.unwrap_or(RESTART_WITHIN),
                when,
            )?),
            Pickup::Reloads(_) | Pickup::People => {}
        }
    }
    one_line_per_idle_component(&mut checks);
    Ok(plan::Verify::Components(checks))
}

/// One line per component that is not running, however many of its certificates there are.
fn one_line_per_idle_component(checks: &mut Vec<ComponentCheck>) {
    checks.dedup_by(|a, b| {
        matches!((&*a, &*b), (ComponentCheck::NotRunning { component: x, .. }, ComponentCheck::NotRunning { component: y, .. }) if x == y)
    });
}

/// How a revert of a renewal proves the node as before: each component on the files put back
/// (a serving port presents the restored certificate; the controller-manager and scheduler are
/// restarted onto their restored kubeconfigs and healthy). No credential is asked to
/// authenticate, and no lease to be held: what is put back may be what had expired.
pub fn of_restored_files(layout: &NodeLayout, paths: &[PathBuf]) -> Result<plan::Verify> {
    let mut checks = Vec::new();
    for entry in LEAVES.iter().filter(|e| super::renewable(e)) {
        let certificate = super::path_of(layout, entry);
        // The kubelet's pair is written through its link: the file it points at is the one
        // put back.
        let written = layout
            .fs()
            .resolved(&certificate)
            .unwrap_or(certificate.clone());
        if !paths.contains(&certificate) && !paths.contains(&written) {
            continue;
        }
        match entry.pickup {
            Pickup::Reloads(Component::Kubelet) => {
                let node = layout
                    .fs()
                    .read_to_string(&written)
                    .ok()
                    .and_then(|pem| {
                        crate::credentials::pem::certificates(&pem)
                            .into_iter()
                            .next()
                    })
                    .and_then(|der| super::kubelet::node_name(&der));
                checks.push(match node {
                    Some(node) => kubelet_check(layout, node, RESTART_WITHIN, true),
                    None => ComponentCheck::NotRunning {
                        component: Component::Kubelet,
                        why:
                            "no node name in the certificate put back: the kubelet is not restarted"
                                .into(),
                    },
                });
            }
            Pickup::Serves(component, endpoint) => checks.push(presents_check(
                layout,
                entry.name,
                component,
                endpoint,
                certificate,
                RELOAD_WITHIN,
            )),
            Pickup::ReadAtStart(component) => {
                // A revert puts the files back whatever the runtime shows: what cannot be
                // restarted is said, not a reason to leave the renewed files.
                let mut check = restart_check(layout, component, RESTART_WITHIN, When::Starting)
                    .unwrap_or_else(|why| ComponentCheck::NotRunning {
                        component,
                        why: format!("not restarted: {why}"),
                    });
                if let ComponentCheck::Restart { lease, .. } = &mut check {
                    *lease = Lease::AsBefore;
                }
                checks.push(check);
            }
            Pickup::Reloads(_) | Pickup::People => {}
        }
    }
    one_line_per_idle_component(&mut checks);
    Ok(if checks.is_empty() {
        plan::Verify::Nothing
    } else {
        plan::Verify::Components(checks)
    })
}

/// The identity a client certificate carries.
fn subject_of(der: &[u8]) -> Option<crate::credentials::issue::Subject> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(crate::credentials::issue::Subject {
        common_name: cert
            .subject()
            .iter_common_name()
            .next()?
            .as_str()
            .ok()?
            .to_string(),
        organizations: cert
            .subject()
            .iter_organization()
            .filter_map(|o| o.as_str().ok())
            .map(str::to_string)
            .collect(),
    })
}

fn presents_check(
    layout: &NodeLayout,
    name: &'static str,
    component: Component,
    endpoint: Endpoint,
    certificate: std::path::PathBuf,
    within: Duration,
) -> ComponentCheck {
    let not_running = |why: String| ComponentCheck::NotRunning { component, why };
    let Some((host, port)) = crate::certs::inspect::endpoint(layout, endpoint) else {
        return not_running(
            "not asked on a --root sandbox, or no manifest says where it serves".into(),
        );
    };
    let client = match endpoint {
        Endpoint::EtcdClient => Some("etcd/healthcheck-client"),
        Endpoint::EtcdPeer => Some("etcd/peer"),
        _ => None,
    }
    .map(|stem| {
        (
            layout.pki_certificate(stem),
            layout.pki_dir().join(format!("{stem}.key")),
        )
    });
    // A component that does not answer now is not running: it reads the new file at its start.
    let identity = crate::certs::prove::identity(layout, client.as_ref());
    // What it presents now is what "as before" means after a rollback (not always the file's:
    // a component can still present an older one).
    let presented_before = match crate::certs::served::presented(&host, port, identity.as_ref()) {
        Ok(der) => der,
        Err(e) => return not_running(format!("{host}:{port}: {e}")),
    };
    ComponentCheck::Presents {
        name,
        component,
        host,
        port,
        client,
        certificate,
        old_der: presented_before,
        within,
    }
}

fn restart_check(
    layout: &NodeLayout,
    component: Component,
    within: Duration,
    when: When,
) -> Result<ComponentCheck> {
    if !layout.is_host() {
        return Ok(ComponentCheck::NotRunning {
            component,
            why: "a --root sandbox: the host's runtime is never touched".into(),
        });
    }
    let kubeconfig = layout.kubeconfig(match component {
        Component::KubeScheduler => "scheduler.conf",
        _ => "controller-manager.conf",
    });
    let manifest = layout
        .fs()
        .read_to_string(
            &layout
                .manifests_dir()
                .join(format!("{}.yaml", component.name())),
        )
        .ok();
    let running = crate::apiserver::process::find_node_component(layout, component.name());
    let container = crate::apiserver::process::running_container(layout, component.name(), true);
    // Refused before any write where a restart could not be proved or undone.
    let refused = |why: String| {
        Err(Error::Refused(format!(
            "{}: {why}; or leave {} out of the names",
            component.name(),
            layout.node_path(&kubeconfig)
        )))
    };
    // Asked as the step starts: an expired kubelet is down when the plan is shown, and its own
    // step, before this one, brings it back.
    if when == When::Starting
        && (running.is_some() || container.is_some())
        && !crate::apiserver::process::kubelet_running(layout)
    {
        return refused(
            "no kubelet runs here, and only the kubelet starts a static pod again after it is stopped: \
             start the kubelet (renew kubelet-client if its certificate has expired)"
                .into(),
        );
    }
    let arguments = match (&running, &manifest) {
        (Some(process), _) => crate::apiserver::process::arguments(process).unwrap_or_default(),
        (None, Some(text)) => manifest_arguments(text),
        (None, None) => Vec::new(),
    };
    // A static pod of this node: one that runs, or one whose manifest is here.
    let static_pod = manifest.is_some() || !arguments.is_empty();
    let settings = settings(component, &arguments);
    match (running, container) {
        // Running, but not to be restarted through the runtime.
        (Some(_), None) => refused(
            "it runs, but crictl cannot find its container, so it could not be restarted onto its new kubeconfig: \
             install crictl (or point /etc/crictl.yaml at the runtime)"
                .into(),
        ),
        // crictl sees it running, /proc does not: this tool is not in the host's PID
        // namespace, and could never see the new process it would wait for.
        (None, Some(_)) => refused(
            "crictl shows its container running, but no such process is visible here: run this tool in the host's PID namespace"
                .into(),
        ),
        // Running; or not running now, but a static pod: crash-looping (on an expired
        // certificate, say) or in the kubelet's back-off. The kubelet starts it again by
        // itself; that new process is what is proved (there is nothing to stop then).
        (Some(_), Some(_)) | (None, None) if static_pod => {
            Ok(ComponentCheck::Restart {
                component,
                kubeconfig,
                health_host: settings.health_host,
                health_port: settings.health_port,
                lease: settings.lease,
                within,
            })
        }
        _ => Ok(ComponentCheck::NotRunning {
            component,
            why:
                "no process and no static pod manifest: it reads the new kubeconfig when it starts"
                    .into(),
        }),
    }
}

/// A controller-manager or scheduler as its arguments set it up: where it serves `/healthz`
/// and which lease it elects its leader with.
struct Settings {
    health_host: String,
    health_port: u16,
    lease: Lease,
}

/// `--secure-port` and `--bind-address` (a wildcard, or none, is asked on loopback),
/// `--leader-elect` (default true; the last occurrence wins, Go's ParseBool) with
/// `--leader-elect-resource-namespace`/`-name` (default kube-system/<component>). A `--config`
/// file may set leader election otherwise: then no lease is asked of it.
fn settings(component: Component, args: &[String]) -> Settings {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let value = |name: &str| crate::manifest::flags::last_value(&args, name);
    let default_port = match component {
        Component::KubeScheduler => 10259,
        _ => 10257,
    };
    let health_port = value("secure-port")
        .and_then(|p| p.parse().ok())
        .unwrap_or(default_port);
    let health_host = match value("bind-address") {
        None | Some("" | "0.0.0.0" | "::") => "127.0.0.1".to_string(),
        Some(address) => address.to_string(),
    };
    let elects = crate::manifest::flags::occurrences(&args, "leader-elect")
        .last()
        .and_then(|&i| crate::manifest::flags::split_flag(args[i]))
        .map(|(_, value)| crate::manifest::flags::bool_value(value));
    let lease = match elects {
        Some(crate::manifest::flags::BoolValue::Valid(false)) => Lease::NotElected,
        _ if value("config").is_some() => Lease::NotElected,
        _ => Lease::Held {
            namespace: value("leader-elect-resource-namespace")
                .unwrap_or("kube-system")
                .to_string(),
            name: value("leader-elect-resource-name")
                .unwrap_or(component.name())
                .to_string(),
        },
    };
    Settings {
        health_host,
        health_port,
        lease,
    }
}

/// The kubelet restarted through systemd and proved by its node's Lease and Ready condition
/// (`as_before`: onto files put back, by a new kubelet process alone); on a `--root` sandbox,
/// never restarted (the host's kubelet is not the sandbox's).
fn kubelet_check(
    layout: &NodeLayout,
    node: String,
    within: Duration,
    as_before: bool,
) -> ComponentCheck {
    if !layout.is_host() {
        return ComponentCheck::NotRunning {
            component: Component::Kubelet,
            why: "a --root sandbox: the host's kubelet is never touched".into(),
        };
    }
    ComponentCheck::Kubelet {
        node,
        within,
        as_before,
    }
}

/// The list items of a static pod manifest that look like flags (`- --name=value`): enough
/// to see `--leader-elect` of a component that is not running.
fn manifest_arguments(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("- "))
        .map(|item| item.trim().trim_matches(['"', '\'']).to_string())
        .filter(|item| item.starts_with("--"))
        .collect()
}

pub(super) fn proof_line(action: &Action) -> String {
    let (Action::Write { verify, .. } | Action::External { verify, .. }) = action else {
        return String::new();
    };
    match verify {
        plan::Verify::Credentials(checks) => format!(
            "prove {} with SelfSubjectReview",
            checks.iter().map(|c| c.file).collect::<Vec<_>>().join(" and ")
        ),
        plan::Verify::Components(checks) if checks.is_empty() => {
            "nothing to restart: the apiserver re-reads these files at their next use".into()
        }
        plan::Verify::Components(checks) => checks
            .iter()
            .map(|c| match c {
                ComponentCheck::Presents { component, host, port, .. } => format!(
                    "prove {} presents the new certificate on {host}:{port} (it re-reads it; no restart)",
                    component.name()
                ),
                ComponentCheck::Restart { component, health_port, lease: Lease::Held { namespace, name }, .. } => format!(
                    "check that the new kubeconfig reads the lease {namespace}/{name}; restart {} (its container, through the runtime) \
                     and prove a new process healthy on :{health_port} and holding that lease",
                    component.name()
                ),
                ComponentCheck::Restart { component, health_port, lease: Lease::NotElected, .. } => format!(
                    "restart {} (its container, through the runtime) and prove a new process healthy on :{health_port} (--leader-elect=false: no lease)",
                    component.name()
                ),
                ComponentCheck::Restart { component, health_port, lease: Lease::AsBefore, .. } => format!(
                    "restart {} onto the file put back and prove a new process healthy on :{health_port}",
                    component.name()
                ),
                ComponentCheck::Kubelet { as_before: true, .. } => {
                    "restart the kubelet (systemctl restart kubelet) onto the files put back and prove a new kubelet running".into()
                }
                ComponentCheck::Kubelet { node, .. } => format!(
                    "restart the kubelet (systemctl restart kubelet) and prove node {} Ready, its Lease renewed since the restart",
                    crate::ui::escape(node)
                ),
                ComponentCheck::NotRunning { component, why } => {
                    format!("{} is not running ({why}): nothing to restart", component.name())
                }
            })
            .collect::<Vec<_>>()
            .join("; then "),
        plan::Verify::Nothing => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_election_port_and_address_come_from_the_components_own_arguments() {
        let args = |list: &[&str]| list.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        let kubeadms = settings(Component::KubeScheduler, &args(&["kube-scheduler"]));
        assert_eq!(
            kubeadms.lease,
            Lease::Held {
                namespace: "kube-system".into(),
                name: "kube-scheduler".into()
            }
        );
        assert_eq!(
            (kubeadms.health_host.as_str(), kubeadms.health_port),
            ("127.0.0.1", 10259)
        );
        let lease = |list: &[&str]| settings(Component::KubeControllerManager, &args(list)).lease;
        assert_eq!(lease(&["x", "--leader-elect=false"]), Lease::NotElected);
        assert!(
            matches!(
                lease(&["x", "--leader-elect=F", "--leader-elect"]),
                Lease::Held { .. }
            ),
            "the last one wins; bare means true"
        );
        assert_eq!(
            lease(&["x", "--leader_elect=0"]),
            Lease::NotElected,
            "pflag's word separators"
        );
        assert_eq!(
            lease(&["x", "--config=/etc/kubernetes/scheduler-config.yaml"]),
            Lease::NotElected,
            "a configuration file this tool does not read may set it"
        );
        assert_eq!(
            lease(&[
                "x",
                "--leader-elect-resource-name=kcm",
                "--leader-elect-resource-namespace=ops"
            ]),
            Lease::Held {
                namespace: "ops".into(),
                name: "kcm".into()
            }
        );
        let bound = settings(
            Component::KubeControllerManager,
            &args(&["x", "--bind-address=198.51.100.10", "--secure-port=11257"]),
        );
        assert_eq!(
            (bound.health_host.as_str(), bound.health_port),
            ("198.51.100.10", 11257)
        );
        let wildcard = settings(
            Component::KubeControllerManager,
            &args(&["x", "--bind-address=0.0.0.0"]),
        );
        assert_eq!(wildcard.health_host, "127.0.0.1");
        let manifest = "spec:\n  containers:\n  - command:\n    - kube-controller-manager\n    - --leader-elect=true\n    - \"--leader-elect=false\"\n    image: x\n";
        assert_eq!(
            settings(
                Component::KubeControllerManager,
                &manifest_arguments(manifest)
            )
            .lease,
            Lease::NotElected
        );
    }
}
