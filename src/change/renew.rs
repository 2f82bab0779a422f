//! `certs renew`'s planner: which certificates, re-issued how (each with its own subject, SANs,
//! usages and key type, a new key, signed by its own CA on this node, valid for the cluster's
//! own period and never past the CA), and then one step per component, in the order a broken
//! control plane comes back (etcd, the apiserver, the admin credentials, the controller-manager,
//! the scheduler): each step its own journaled change with its own proof, so that a step that
//! fails is rolled back alone and the steps before it stay renewed and proved.
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use serde::Serialize;

use crate::certs::catalogue::{Authority, Component, Endpoint, Entry, LEAVES, Location, Pickup};
use crate::certs::prove::ComponentCheck;
use crate::certs::reissue::reissue;
use crate::change::plan::{self, Action, CredentialCheck, Plan, PlannedWrite};
use crate::credentials::issue::{self, CertFacts};
use crate::credentials::kubeconfig::edit as kubeconfig_edit;
use crate::credentials::pki::{self, Key, KeyType};
use crate::error::{Error, Result};
use crate::node::NodeLayout;
use crate::ui::Ui;

/// kubeadm's default `certificateValidityPeriod`.
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(8760 * 3600);

pub struct Request {
    /// kubeadm's names; empty (or `all`): every certificate kubeadm renews that is on the node.
    pub names: Vec<String>,
    /// `--validity`: overrides the cluster's own period.
    pub validity: Option<Duration>,
    /// `--config`: a local kubeadm configuration to read `certificateValidityPeriod` from.
    pub config: Option<PathBuf>,
    /// `--timeout`: each component's proof, instead of its own default.
    pub timeout: Option<Duration>,
}

/// Where the validity came from: the output says which.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ValiditySource {
    /// `--validity`.
    Flag,
    /// `certificateValidityPeriod` in the kubeadm-config ConfigMap.
    ClusterConfiguration,
    /// `certificateValidityPeriod` in the `--config` file.
    ConfigFile(String),
    /// kubeadm's default, 8760h: neither the cluster nor a file said otherwise.
    Default,
}

impl ValiditySource {
    pub fn describe(&self) -> String {
        match self {
            ValiditySource::Flag => "--validity".into(),
            ValiditySource::ClusterConfiguration => {
                "certificateValidityPeriod in the kubeadm-config ConfigMap".into()
            }
            ValiditySource::ConfigFile(path) => format!("certificateValidityPeriod in {path}"),
            ValiditySource::Default => {
                "kubeadm's default: the kubeadm-config ConfigMap could not be read and no --config was given".into()
            }
        }
    }
}

/// One certificate's renewal, for the report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Renewal {
    pub name: &'static str,
    pub path: String,
    pub old_serial: String,
    pub old_not_after: String,
    pub new: CertFacts,
    /// The CA ends before the period would: the new certificate ends with it.
    pub capped_to_ca: bool,
    pub how_picked_up: &'static str,
}

/// One step: a component's certificates, written and proved together.
pub struct Step {
    pub title: String,
    pub plan: Plan,
    pub renewals: Vec<Renewal>,
}

pub struct Renewals {
    pub steps: Vec<Step>,
    pub validity: Duration,
    pub validity_source: ValiditySource,
    /// The CAs' expiry, reported and never rotated.
    pub authorities: Vec<(&'static str, String)>,
}

/// The order a control plane comes back in, and which certificates each step renews.
const STEPS: [(&str, &[&str]); 5] = [
    (
        "etcd",
        &["etcd-server", "etcd-peer", "etcd-healthcheck-client"],
    ),
    (
        "kube-apiserver",
        &[
            "apiserver",
            "apiserver-kubelet-client",
            "apiserver-etcd-client",
            "front-proxy-client",
        ],
    ),
    ("admin credentials", &["admin.conf", "super-admin.conf"]),
    ("kube-controller-manager", &["controller-manager.conf"]),
    ("kube-scheduler", &["scheduler.conf"]),
];

use crate::certs::prove::{RELOAD_BUDGET as RELOAD_WITHIN, RESTART_BUDGET as RESTART_WITHIN};

/// A CA that ends sooner than this cannot sign a renewal worth having: rotate it first.
const CA_MARGIN: time::Duration = time::Duration::days(1);

pub fn plan(layout: &NodeLayout, ui: &Ui, request: &Request) -> Result<Renewals> {
    let selected = select(&request.names)?;
    let (validity, validity_source) = validity(layout, ui, request)?;
    let now = pki::now();
    let mut authorities = Vec::new();
    let mut cas: Vec<(Authority, String, Key, i64)> = Vec::new();
    for authority in Authority::ALL {
        let cert_path = layout.pki_certificate(authority.pki_stem());
        let Ok(pem) = layout.fs().read_to_string(&cert_path) else {
            continue;
        };
        let not_after = crate::credentials::pem::not_after(pem.as_bytes())
            .map_err(|e| Error::Refused(format!("{}: {e}", cert_path.display())))?;
        authorities.push((authority.name(), crate::runtime::clock::rfc3339(not_after)));
        let key_path = layout
            .pki_dir()
            .join(format!("{}.key", authority.pki_stem()));
        match layout.fs().read_to_string(&key_path) {
            Ok(key_pem) => {
                let key = Key::from_pem(&key_pem).map_err(|e| {
                    Error::Refused(format!(
                        "{}: not a key this tool can sign with ({e})",
                        key_path.display()
                    ))
                })?;
                cas.push((authority, pem, key, not_after));
            }
            // An external CA: the certificates it signs are refused below, by name.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("cannot read the CA key", &key_path, e)),
        }
    }
    let mut steps = Vec::new();
    for (title, names) in STEPS {
        let mut writes = Vec::new();
        let mut renewals = Vec::new();
        let mut issued = Vec::new();
        for entry in selected.iter().filter(|e| names.contains(&e.name)) {
            let Some(current) = current(layout, entry)? else {
                if request.names.iter().any(|n| n == entry.name) {
                    return Err(Error::Refused(format!(
                        "{} is not on this node ({}): nothing to renew",
                        entry.name,
                        layout.node_path(&path_of(layout, entry))
                    )));
                }
                continue;
            };
            let Some((_, ca_pem, ca_key, ca_not_after)) =
                cas.iter().find(|(a, ..)| *a == entry.authority)
            else {
                return Err(Error::Refused(format!(
                    "{} is signed by {}, whose key is not on this node (an external CA): renew it where that key is kept",
                    entry.name,
                    entry.authority.name()
                )));
            };
            let key = Key::generate(current.key_type)
                .map_err(|e| Error::Failed(format!("a new key for {}: {e}", entry.name)))?;
            if *ca_not_after < (now + CA_MARGIN).unix_timestamp() {
                return Err(Error::Refused(format!(
                    "{} would be signed by {}, which ends {}: a renewal under it would not outlive it. \
                     Rotate the CA by hand first (kubeadm's \"manual rotation of CA certificates\"); this tool never rotates a CA",
                    entry.name,
                    entry.authority.name(),
                    crate::runtime::clock::rfc3339(*ca_not_after)
                )));
            }
            let wanted_end = now + validity;
            let ca_end = time::OffsetDateTime::from_unix_timestamp(*ca_not_after)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            let capped = wanted_end > ca_end;
            let not_after = if capped { ca_end } else { wanted_end };
            let new = reissue(
                &current.der,
                &key,
                ca_pem,
                ca_key,
                now - time::Duration::minutes(5),
                not_after,
            )
            .map_err(|e| Error::Refused(format!("{}: {e}", entry.name)))?;
            if !issue::signed_by(&new.der, &crate::credentials::pem::certificates(ca_pem)[0]) {
                return Err(Error::Failed(format!(
                    "{}: the re-issued certificate does not verify against {}; nothing was written",
                    entry.name,
                    entry.authority.name()
                )));
            }
            let facts = issue::facts(&new.der)
                .map_err(|e| Error::Failed(format!("{}: {e}", entry.name)))?;
            writes.extend(current.writes(&new.pem, &key)?);
            renewals.push(Renewal {
                name: entry.name,
                path: layout.node_path(&path_of(layout, entry)),
                old_serial: current.serial.clone(),
                old_not_after: current.not_after.clone(),
                new: facts.clone(),
                capped_to_ca: capped,
                how_picked_up: picked_up(entry.pickup),
            });
            issued.push((entry, current, new.der, facts));
        }
        if renewals.is_empty() {
            continue;
        }
        let verify = proofs(layout, title, &issued, request.timeout)?;
        let mut plan = Plan::new(
            "certs renew",
            format!("Renew the {title} certificates and prove them?"),
            Action::Write { writes, verify },
        );
        for r in &renewals {
            plan = plan.step(format!(
                "re-issue {} ({}): serial {} (not after {}) -> {} (not after {}){}",
                r.name,
                r.path,
                r.old_serial,
                r.old_not_after,
                r.new.serial,
                r.new.not_after,
                if r.capped_to_ca {
                    ", capped at the CA's expiry"
                } else {
                    ""
                }
            ));
        }
        let proving = proof_line(&plan.action);
        plan = plan.step(proving);
        plan.certificates = issued.iter().map(|(.., facts)| facts.clone()).collect();
        steps.push(Step {
            title: title.to_string(),
            plan,
            renewals,
        });
    }
    if steps.is_empty() {
        return Err(Error::Refused(
            "none of kubeadm's certificates is on this node: is it a control-plane node (or --root the right place)?".into(),
        ));
    }
    Ok(Renewals {
        steps,
        validity,
        validity_source,
        authorities,
    })
}

fn select(names: &[String]) -> Result<Vec<&'static Entry>> {
    let renewable: Vec<&'static Entry> = LEAVES.iter().filter(|e| e.kubeadm_renews).collect();
    if names.is_empty() || names.iter().any(|n| n == "all") {
        return Ok(renewable);
    }
    for name in names {
        if !renewable.iter().any(|e| e.name == name) {
            return Err(Error::Usage(format!(
                "{}: not a certificate kubeadm renews; give `all` or some of: {}",
                crate::ui::escape(name),
                renewable
                    .iter()
                    .map(|e| e.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(renewable
        .into_iter()
        .filter(|e| names.iter().any(|n| n == e.name))
        .collect())
}

fn path_of(layout: &NodeLayout, entry: &Entry) -> PathBuf {
    crate::certs::inspect::path_of(layout, entry)
}

fn picked_up(pickup: Pickup) -> &'static str {
    match pickup {
        Pickup::Serves(..) => "re-read by the component (proved on its port)",
        Pickup::ReadAtStart(_) => "read at the component's start: restarted and proved",
        Pickup::Reloads(_) => "re-read by the component at its next use",
        Pickup::People => "read at each use",
    }
}

/// A certificate as it is now, and how to write its renewal.
struct Current {
    der: Vec<u8>,
    serial: String,
    not_after: String,
    key_type: KeyType,
    place: Place,
}

enum Place {
    Pki {
        cert: PathBuf,
        cert_old: Vec<u8>,
        key: PathBuf,
        key_old: Option<Vec<u8>>,
    },
    Kubeconfig {
        path: PathBuf,
        text: String,
        user: String,
    },
}

impl Current {
    fn writes(&self, cert_pem: &str, key: &Key) -> Result<Vec<PlannedWrite>> {
        Ok(match &self.place {
            Place::Pki {
                cert,
                cert_old,
                key: key_path,
                key_old,
            } => vec![
                PlannedWrite {
                    path: cert.clone(),
                    old: Some(cert_old.clone()),
                    new: cert_pem.as_bytes().to_vec(),
                    ownership: None,
                },
                PlannedWrite {
                    path: key_path.clone(),
                    old: key_old.clone(),
                    new: key.pem.as_bytes().to_vec(),
                    ownership: key_old.is_none().then_some(crate::node::fs::Ownership {
                        mode: 0o600,
                        uid: 0,
                        gid: 0,
                    }),
                },
            ],
            Place::Kubeconfig { path, text, user } => {
                let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
                let new =
                    kubeconfig_edit::replace_credential(text, user, &b64(cert_pem), &b64(&key.pem))
                        .map_err(|e| Error::Refused(format!("{}: {e}", path.display())))?;
                vec![PlannedWrite {
                    path: path.clone(),
                    old: Some(text.clone().into_bytes()),
                    new: new.into_bytes(),
                    ownership: None,
                }]
            }
        })
    }
}

fn current(layout: &NodeLayout, entry: &Entry) -> Result<Option<Current>> {
    let unreadable = |path: &std::path::Path, why: String| {
        Error::Refused(format!(
            "{}: {why}\n  what to do: restore it from a backup (kubeadm-recover backups list), or renew it with kubeadm",
            path.display()
        ))
    };
    let (pem, place) = match entry.location {
        Location::Pki(stem) => {
            let cert = layout.pki_certificate(stem);
            let cert_old = match layout.fs().read(&cert) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(unreadable(&cert, e.to_string())),
            };
            let key = layout.pki_dir().join(format!("{stem}.key"));
            let key_old = layout.fs().read(&key).ok();
            (
                String::from_utf8_lossy(&cert_old).into_owned(),
                Place::Pki {
                    cert,
                    cert_old,
                    key,
                    key_old,
                },
            )
        }
        Location::Kubeconfig(file) => {
            let path = layout.kubeconfig(file);
            let text = match layout.fs().read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(unreadable(&path, e.to_string())),
            };
            let users = kubeconfig_edit::user_credentials(&text)
                .map_err(|e| unreadable(&path, format!("not a kubeconfig: {e}")))?;
            let Some(user) = users.into_iter().find(|u| u.cert_b64.is_some()) else {
                return Err(unreadable(
                    &path,
                    "no embedded client certificate to renew".into(),
                ));
            };
            let pem = base64::engine::general_purpose::STANDARD
                .decode(user.cert_b64.as_deref().unwrap_or_default().trim())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .map_err(|e| unreadable(&path, format!("client-certificate-data: {e}")))?;
            (
                pem,
                Place::Kubeconfig {
                    path,
                    text,
                    user: user.name,
                },
            )
        }
        Location::Kubelet(_) => return Ok(None),
    };
    let der = crate::credentials::pem::certificates(&pem)
        .into_iter()
        .next()
        .ok_or_else(|| unreadable(&path_of(layout, entry), "no PEM CERTIFICATE block".into()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| unreadable(&path_of(layout, entry), format!("not a certificate: {e}")))?;
    let key_type = match cert.public_key().parsed() {
        Ok(x509_parser::public_key::PublicKey::EC(_)) => KeyType::EcdsaP256,
        _ => KeyType::Rsa2048,
    };
    Ok(Some(Current {
        serial: cert.raw_serial_as_string(),
        not_after: crate::runtime::clock::rfc3339(cert.validity().not_after.timestamp()),
        key_type,
        der,
        place,
    }))
}

/// `--validity`, else the cluster's `certificateValidityPeriod` (the ConfigMap, asked with
/// admin.conf when it works; else `--config`), else kubeadm's default.
fn validity(layout: &NodeLayout, ui: &Ui, request: &Request) -> Result<(Duration, ValiditySource)> {
    if let Some(validity) = request.validity {
        // A certificate that ends before the operator is done is not a renewal.
        if validity < Duration::from_secs(3600) {
            return Err(Error::Usage(format!(
                "--validity {}s is too short for a control-plane certificate: give at least 1h (kubeadm's default is 8760h)",
                validity.as_secs()
            )));
        }
        return Ok((validity, ValiditySource::Flag));
    }
    if let Some(path) = &request.config {
        let path = layout.given_path(path)?;
        let text = layout
            .fs()
            .read_to_string(&path)
            .map_err(|e| Error::io("cannot read the kubeadm configuration", &path, e))?;
        return match period_in(&text) {
            Some(Ok(period)) => Ok((period, ValiditySource::ConfigFile(layout.node_path(&path)))),
            Some(Err(e)) => Err(Error::Usage(format!(
                "{}: certificateValidityPeriod: {e}",
                path.display()
            ))),
            None => {
                ui.warn(format!(
                    "{} sets no certificateValidityPeriod: kubeadm's default 8760h applies",
                    path.display()
                ));
                Ok((
                    DEFAULT_VALIDITY,
                    ValiditySource::ConfigFile(layout.node_path(&path)),
                ))
            }
        };
    }
    match cluster_configuration(layout) {
        Some(text) => match period_in(&text) {
            Some(Ok(period)) => Ok((period, ValiditySource::ClusterConfiguration)),
            _ => Ok((DEFAULT_VALIDITY, ValiditySource::ClusterConfiguration)),
        },
        None => {
            ui.warn(
                "the kubeadm-config ConfigMap cannot be read (admin.conf or the apiserver is what is broken?): \
                 renewing for kubeadm's default 8760h; give --config FILE or --validity to use another period",
            );
            Ok((DEFAULT_VALIDITY, ValiditySource::Default))
        }
    }
}

/// `certificateValidityPeriod: 8760h0m0s` in a kubeadm configuration (its ClusterConfiguration).
fn period_in(
    text: &str,
) -> Option<std::result::Result<Duration, crate::runtime::duration::DurationError>> {
    text.lines().find_map(|line| {
        line.trim()
            .strip_prefix("certificateValidityPeriod:")
            .map(|v| crate::runtime::duration::parse_duration(v.trim().trim_matches(['"', '\''])))
    })
}

fn cluster_configuration(layout: &NodeLayout) -> Option<String> {
    let admin = crate::apiserver::admin::Admin::connect(layout, &layout.admin_conf()).ok()?;
    let map: k8s_openapi::api::core::v1::ConfigMap = admin
        .get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
        .ok()?;
    map.data?.get("ClusterConfiguration").cloned()
}

/// How each step is proved.
fn proofs(
    layout: &NodeLayout,
    title: &str,
    issued: &[(&&'static Entry, Current, Vec<u8>, CertFacts)],
    timeout: Option<Duration>,
) -> Result<plan::Verify> {
    if title == "admin credentials" {
        let checks = issued
            .iter()
            .filter_map(|(entry, current, ..)| {
                let Location::Kubeconfig(file) = entry.location else {
                    return None;
                };
                let subject = subject_of(&current.der)?;
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
    for (entry, _, new_der, _) in issued {
        match entry.pickup {
            Pickup::Serves(component, endpoint) => checks.push(presents_check(
                layout,
                entry.name,
                component,
                endpoint,
                new_der,
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
    new_der: &[u8],
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
        new_der: new_der.to_vec(),
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
                match component {
                    Component::KubeScheduler => "scheduler.conf",
                    _ => "controller-manager.conf",
                }
            )))
        }
        Some(_) => Ok(ComponentCheck::Restart {
            component,
            kubeconfig: layout.kubeconfig(match component {
                Component::KubeScheduler => "scheduler.conf",
                _ => "controller-manager.conf",
            }),
            health_port: match component {
                Component::KubeScheduler => 10259,
                _ => 10257,
            },
            within,
        }),
        None => Ok(ComponentCheck::NotRunning {
            component,
            why: "no process: it reads the new kubeconfig when the kubelet starts it".into(),
        }),
    }
}

fn proof_line(action: &Action) -> String {
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
                ComponentCheck::Restart { component, health_port, .. } => format!(
                    "restart {} (its container, through the runtime) and prove a new process healthy on :{health_port}",
                    component.name()
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
    fn the_period_is_read_from_a_kubeadm_configuration() {
        let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncaCertificateValidityPeriod: 87600h0m0s\ncertificateValidityPeriod: 4380h0m0s\n";
        assert_eq!(
            period_in(text).unwrap().unwrap(),
            Duration::from_secs(4380 * 3600)
        );
        assert!(period_in("kind: ClusterConfiguration\n").is_none());
        assert!(
            period_in("certificateValidityPeriod: soon\n")
                .unwrap()
                .is_err()
        );
    }

    #[test]
    fn names_are_kubeadms_and_a_wrong_one_is_a_usage_error_listing_them() {
        assert_eq!(select(&[]).unwrap().len(), 11);
        assert_eq!(select(&["all".into()]).unwrap().len(), 11);
        assert_eq!(
            select(&["etcd-server".into()]).unwrap()[0].name,
            "etcd-server"
        );
        let err = select(&["etcd/server".into()]).err().unwrap();
        assert!(
            matches!(&err, Error::Usage(m) if m.contains("etcd-server, ")),
            "{err}"
        );
    }

    #[test]
    fn every_certificate_kubeadm_renews_belongs_to_one_step() {
        for entry in LEAVES.iter().filter(|e| e.kubeadm_renews) {
            assert_eq!(
                STEPS
                    .iter()
                    .filter(|(_, names)| names.contains(&entry.name))
                    .count(),
                1,
                "{}",
                entry.name
            );
        }
    }
}
