//! What is wrong with the node's certificates, from an inventory and the time: pure.
use serde::Serialize;

use super::catalogue::{Component, Pickup};
use super::inspect::{InUse, Inventory, Reading};

/// Within this many days of its end a certificate is "expiring" (kubeadm warns at 30 too).
pub const SOON_DAYS: i64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Validity {
    Valid,
    Expiring,
    Expired,
}

pub fn validity(not_after_unix: i64, now: i64) -> Validity {
    match not_after_unix - now {
        left if left <= 0 => Validity::Expired,
        left if left <= SOON_DAYS * 86_400 => Validity::Expiring,
        _ => Validity::Valid,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Critical,
    Warning,
    Info,
}

/// One thing wrong, with its evidence and its fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A leaf (or CA) past its not-after, or within [`SOON_DAYS`] of it.
    Ends {
        name: &'static str,
        validity: Validity,
        not_after: String,
        path: String,
        is_authority: bool,
        /// How its user picks up a renewed one.
        pickup: Option<Pickup>,
    },
    /// The file holds a certificate the running component does not use.
    NotInUse {
        name: &'static str,
        evidence: String,
        /// The one in use has already expired.
        in_use_expired: bool,
        restart: &'static str,
    },
    Unreadable {
        name: &'static str,
        path: String,
        problem: String,
    },
    /// The CA key is not on this node (an external CA): renewals are signed elsewhere.
    AuthorityKeyAbsent {
        name: &'static str,
    },
    /// The certificate and its key file are not a pair: the component cannot load them.
    KeyMismatch {
        name: &'static str,
        path: String,
    },
    ServiceAccountKeyMissing,
}

impl Problem {
    pub fn level(&self) -> Level {
        match self {
            Problem::Ends {
                validity: Validity::Expired,
                ..
            } => Level::Critical,
            Problem::Ends { .. } => Level::Warning,
            Problem::NotInUse { in_use_expired, .. } => {
                if *in_use_expired {
                    Level::Critical
                } else {
                    Level::Warning
                }
            }
            Problem::Unreadable { .. }
            | Problem::ServiceAccountKeyMissing
            | Problem::KeyMismatch { .. } => Level::Critical,
            Problem::AuthorityKeyAbsent { .. } => Level::Info,
        }
    }

    /// The certificate it is about (`sa` for the service-account key).
    pub fn subject(&self) -> &'static str {
        match self {
            Problem::Ends { name, .. }
            | Problem::NotInUse { name, .. }
            | Problem::Unreadable { name, .. }
            | Problem::KeyMismatch { name, .. }
            | Problem::AuthorityKeyAbsent { name } => name,
            Problem::ServiceAccountKeyMissing => "sa",
        }
    }

    pub fn summary(&self) -> String {
        match self {
            Problem::Ends {
                name,
                validity,
                is_authority,
                ..
            } => {
                let what = if *is_authority { "CA" } else { "certificate" };
                let state = match validity {
                    Validity::Expired => "has expired",
                    _ => "expires soon",
                };
                format!("the {name} {what} {state}")
            }
            Problem::NotInUse { name, .. } => {
                format!("{name} is renewed on disk but not in use")
            }
            Problem::Unreadable { name, .. } => format!("the {name} certificate cannot be read"),
            Problem::KeyMismatch { name, .. } => {
                format!("the {name} certificate and its key are not a pair")
            }
            Problem::AuthorityKeyAbsent { name } => {
                format!("the {name} key is not on this node (an external CA)")
            }
            Problem::ServiceAccountKeyMissing => {
                "the service-account signing key (sa.key or sa.pub) is missing".into()
            }
        }
    }

    pub fn evidence(&self) -> String {
        match self {
            Problem::Ends {
                path, not_after, ..
            } => format!("{path}: not after {not_after}"),
            Problem::NotInUse { evidence, .. } => evidence.clone(),
            Problem::Unreadable { path, problem, .. } => format!("{path}: {problem}"),
            Problem::KeyMismatch { path, .. } => format!(
                "{path}: its public key is not the one of the key file beside it (a half-done renewal or restore?)"
            ),
            Problem::AuthorityKeyAbsent { name } => {
                format!("/etc/kubernetes/pki has {name}'s certificate but not its key")
            }
            Problem::ServiceAccountKeyMissing => "/etc/kubernetes/pki/sa.key, sa.pub".into(),
        }
    }

    pub fn fix(&self) -> String {
        match self {
            Problem::Ends {
                is_authority: true, ..
            } => "a CA is rotated by hand, for every node (kubeadm's \"manual rotation of CA certificates\"); this tool reports CAs and never rotates them".into(),
            Problem::Ends { name, pickup, .. } => match pickup {
                Some(Pickup::People) if name.ends_with(".conf") => format!(
                    "kubeadm-recover admin-conf regenerate{} (re-issues it with its identity and proves it)",
                    if *name == "super-admin.conf" { " --only-super-admin" } else { "" }
                ),
                Some(Pickup::Reloads(Component::Kubelet)) => {
                    "kubeadm-recover certs renew kubelet-client (the kubelet renews it itself only while it is valid: \
                     re-issued for this node from the cluster CA, kubelet.conf made to name the rotating pair, the kubelet \
                     restarted through systemd and proved by the node's Lease and Ready)"
                        .into()
                }
                Some(Pickup::Serves(Component::Kubelet, _)) => {
                    "the kubelet renews its serving certificate itself (serverTLSBootstrap) or writes a new self-signed one at \
                     its start: remove kubelet.crt and kubelet.key and restart the kubelet (systemctl restart kubelet)"
                        .into()
                }
                Some(Pickup::ReadAtStart(component)) => format!(
                    "kubeadm-recover certs renew {name} (it restarts {} and proves it: it reads the certificate only at its start)",
                    component.name()
                ),
                Some(Pickup::Serves(component, _) | Pickup::Reloads(component)) => format!(
                    "kubeadm-recover certs renew {name} ({} re-reads it by itself: proved without a restart)",
                    component.name()
                ),
                _ => format!("kubeadm-recover certs renew {name}"),
            },
            Problem::NotInUse { restart, .. } if *restart == "kubelet" => {
                "restart the kubelet so that it reads the file: systemctl restart kubelet".into()
            }
            Problem::NotInUse { restart, .. } => format!(
                "restart {restart} so that it reads the file: crictl stop \"$(crictl ps -q --name '^{restart}$')\" (the kubelet starts it again)"
            ),
            Problem::Unreadable { name, .. } => format!(
                "restore it from a backup (kubeadm-recover backups list) or re-issue it: kubeadm certs renew {name}"
            ),
            Problem::AuthorityKeyAbsent { .. } => {
                "renew the certificates it signs where its key is kept".into()
            }
            Problem::KeyMismatch { name, .. } => format!(
                "kubeadm-recover certs renew {name} (a new key and certificate, proved), or restore both files from one backup (kubeadm-recover backups list)"
            ),
            Problem::ServiceAccountKeyMissing => {
                "put back sa.key and sa.pub from a backup or another control-plane node: every node must share them".into()
            }
        }
    }
}

/// Every problem of the inventory at `now`, the most serious first.
pub fn problems(inventory: &Inventory, now: i64) -> Vec<Problem> {
    let mut out = Vec::new();
    for ca in &inventory.authorities {
        match &ca.file {
            Reading::Present(cert) => {
                let validity = validity(cert.not_after_unix, now);
                if validity != Validity::Valid {
                    out.push(Problem::Ends {
                        name: ca.name,
                        validity,
                        not_after: cert.not_after.clone(),
                        path: ca.path.clone(),
                        is_authority: true,
                        pickup: None,
                    });
                }
                if !ca.key_on_node {
                    out.push(Problem::AuthorityKeyAbsent { name: ca.name });
                }
            }
            Reading::Unreadable { problem } => out.push(Problem::Unreadable {
                name: ca.name,
                path: ca.path.clone(),
                problem: problem.clone(),
            }),
            Reading::Missing => {}
        }
    }
    for observed in &inventory.certificates {
        match &observed.file {
            Reading::Present(cert) => {
                let validity = validity(cert.not_after_unix, now);
                if validity != Validity::Valid {
                    out.push(Problem::Ends {
                        name: observed.name,
                        validity,
                        not_after: cert.not_after.clone(),
                        path: observed.path.clone(),
                        is_authority: false,
                        pickup: Some(observed.entry.pickup),
                    });
                }
            }
            Reading::Unreadable { problem } => out.push(Problem::Unreadable {
                name: observed.name,
                path: observed.path.clone(),
                problem: problem.clone(),
            }),
            Reading::Missing => {}
        }
        if observed.key_mismatch {
            out.push(Problem::KeyMismatch {
                name: observed.name,
                path: observed.path.clone(),
            });
        }
        match &observed.in_use {
            InUse::PresentsAnother {
                endpoint,
                serial,
                not_after,
                not_after_unix,
            } => {
                let component = match observed.entry.pickup {
                    Pickup::Serves(component, _) => component.name(),
                    _ => "its component",
                };
                out.push(Problem::NotInUse {
                    name: observed.name,
                    evidence: format!(
                        "{endpoint} presents serial {serial} (not after {not_after}), not the one in {}",
                        observed.path
                    ),
                    in_use_expired: *not_after_unix <= now,
                    restart: component,
                });
            }
            InUse::StartedBeforeTheFile {
                component,
                pid,
                started,
                file_changed,
            } => out.push(Problem::NotInUse {
                name: observed.name,
                evidence: format!(
                    "{} (pid {pid}) started {started}; {} changed {file_changed}, after it: the process holds the client certificate it read at its start",
                    component.name(),
                    observed.path
                ),
                in_use_expired: false,
                restart: component.name(),
            }),
            _ => {}
        }
    }
    if !(inventory.service_account_key.key_present
        && inventory.service_account_key.public_key_present)
        && inventory.authorities.iter().any(|a| a.key_on_node)
    {
        out.push(Problem::ServiceAccountKeyMissing);
    }
    out.sort_by_key(Problem::level);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_counted_to_the_second() {
        assert_eq!(validity(100, 100), Validity::Expired);
        assert_eq!(validity(101, 100), Validity::Expiring);
        assert_eq!(validity(100 + SOON_DAYS * 86_400, 100), Validity::Expiring);
        assert_eq!(validity(101 + SOON_DAYS * 86_400, 100), Validity::Valid);
    }

    #[test]
    fn fixes_name_the_restart_only_where_it_is_needed() {
        let ends = |name| Problem::Ends {
            name,
            validity: Validity::Expired,
            not_after: "t".into(),
            path: "p".into(),
            is_authority: false,
            pickup: Some(super::super::catalogue::leaf(name).unwrap().pickup),
        };
        assert!(
            ends("apiserver")
                .fix()
                .contains("kube-apiserver re-reads it by itself")
        );
        assert!(
            ends("scheduler.conf")
                .fix()
                .contains("it restarts kube-scheduler and proves it")
        );
        assert!(
            ends("super-admin.conf")
                .fix()
                .starts_with("kubeadm-recover admin-conf regenerate --only-super-admin")
        );
        assert_eq!(ends("apiserver").level(), Level::Critical);
    }
}
