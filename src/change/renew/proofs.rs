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

/// How each step is proved.
pub(super) fn proofs(
    layout: &NodeLayout,
    title: &str,
    issued: &[ProofInput],
    timeout: Option<Duration>,
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
            )?),
            Pickup::Reloads(_) | Pickup::People => {}
        }
    }
    // One line per component that is not running, however many of its certificates there are.
    checks.dedup_by(|a, b| {
        matches!((&*a, &*b), (ComponentCheck::NotRunning { component: x, .. }, ComponentCheck::NotRunning { component: y, .. }) if x == y)
    });
    Ok(plan::Verify::Components(checks))
}

/// How a revert of a renewal proves the node as before: each component on the files put back
/// (a serving port presents the restored certificate; the controller-manager and scheduler are
/// restarted onto their restored kubeconfigs and healthy). No credential is asked to
/// authenticate, and no lease to be held: what is put back may be what had expired.
pub fn of_restored_files(layout: &NodeLayout, paths: &[PathBuf]) -> Result<plan::Verify> {
    let mut checks = Vec::new();
    for entry in LEAVES.iter().filter(|e| e.kubeadm_renews) {
        let certificate = super::path_of(layout, entry);
        if !paths.contains(&certificate) {
            continue;
        }
        match entry.pickup {
            Pickup::Serves(component, endpoint) => checks.push(presents_check(
                layout,
                entry.name,
                component,
                endpoint,
                certificate,
                RELOAD_WITHIN,
            )),
            Pickup::ReadAtStart(component) => {
                let mut check = restart_check(layout, component, RESTART_WITHIN)?;
                if let ComponentCheck::Restart { lease, .. } = &mut check {
                    *lease = Lease::AsBefore;
                }
                checks.push(check);
            }
            Pickup::Reloads(_) | Pickup::People => {}
        }
    }
    checks.dedup_by(|a, b| {
        matches!((&*a, &*b), (ComponentCheck::NotRunning { component: x, .. }, ComponentCheck::NotRunning { component: y, .. }) if x == y)
    });
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
    let health_port = match component {
        Component::KubeScheduler => 10259,
        _ => 10257,
    };
    let manifest = layout
        .fs()
        .read_to_string(
            &layout
                .manifests_dir()
                .join(format!("{}.yaml", component.name())),
        )
        .ok();
    match crate::apiserver::process::find_component(component.name()) {
        // Running, but not to be restarted through the runtime: refused before any write.
        Some(_)
            if crate::apiserver::process::running_container(layout, component.name(), true)
                .is_none() =>
        {
            Err(Error::Refused(format!(
                "{} runs, but crictl cannot find its container, so it could not be restarted onto its new \
                 kubeconfig: install crictl (or point /etc/crictl.yaml at the runtime), or leave {} out of the names",
                component.name(),
                layout.node_path(&kubeconfig)
            )))
        }
        Some(running) => Ok(ComponentCheck::Restart {
            lease: leader_election(
                &crate::apiserver::process::arguments(&running).unwrap_or_default(),
            ),
            component,
            kubeconfig,
            health_port,
            within,
        }),
        // Not running now, but a static pod: crash-looping (on an expired certificate, say) or
        // in the kubelet's back-off. The kubelet starts it again by itself; that new process
        // is what is proved (there is nothing to stop).
        None if manifest.is_some() => Ok(ComponentCheck::Restart {
            lease: leader_election(&manifest_arguments(manifest.as_deref().unwrap_or_default())),
            component,
            kubeconfig,
            health_port,
            within,
        }),
        None => Ok(ComponentCheck::NotRunning {
            component,
            why:
                "no process and no static pod manifest: it reads the new kubeconfig when it starts"
                    .into(),
        }),
    }
}

/// The kubelet restarted through systemd and proved by its node's Lease and Ready condition;
/// on a `--root` sandbox, never restarted (the host's kubelet is not the sandbox's).
fn kubelet_check(layout: &NodeLayout, node: String, within: Duration) -> ComponentCheck {
    if !layout.is_host() {
        return ComponentCheck::NotRunning {
            component: Component::Kubelet,
            why: "a --root sandbox: the host's kubelet is never touched".into(),
        };
    }
    ComponentCheck::Kubelet { node, within }
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

/// Whether a controller-manager or scheduler with these arguments elects a leader
/// (`--leader-elect`, default true; the last occurrence wins, Go's ParseBool), so must hold
/// its lease.
fn leader_election(args: &[String]) -> Lease {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let last = crate::manifest::flags::occurrences(&args, "leader-elect")
        .last()
        .and_then(|&i| crate::manifest::flags::split_flag(args[i]))
        .map(|(_, value)| crate::manifest::flags::bool_value(value));
    match last {
        Some(crate::manifest::flags::BoolValue::Valid(false)) => Lease::NotElected,
        _ => Lease::Held,
    }
}

pub(super) fn proof_line(action: &Action) -> String {
    let Action::Write { verify, .. } = action else {
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
                ComponentCheck::Restart { component, health_port, lease: Lease::Held, .. } => format!(
                    "check that the new kubeconfig reads the lease kube-system/{0}; restart {0} (its container, through the runtime) \
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
    fn leader_election_is_on_unless_the_last_leader_elect_says_false() {
        let args = |list: &[&str]| list.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert_eq!(leader_election(&args(&["kube-scheduler"])), Lease::Held);
        assert_eq!(
            leader_election(&args(&["kube-scheduler", "--leader-elect=false"])),
            Lease::NotElected
        );
        assert_eq!(
            leader_election(&args(&["x", "--leader-elect=F", "--leader-elect"])),
            Lease::Held,
            "the last one wins; bare means true"
        );
        assert_eq!(
            leader_election(&args(&["x", "--leader_elect=0"])),
            Lease::NotElected,
            "pflag's word separators"
        );
        let manifest = "spec:\n  containers:\n  - command:\n    - kube-controller-manager\n    - --leader-elect=true\n    - \"--leader-elect=false\"\n    image: x\n";
        assert_eq!(
            leader_election(&manifest_arguments(manifest)),
            Lease::NotElected
        );
    }
}
