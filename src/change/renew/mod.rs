//! `certs renew`'s planner: which certificates, re-issued how (each with its own subject, SANs,
//! usages and key type, a new key, signed by its own CA on this node, valid for the cluster's
//! own period and never past the CA; or by the real kubeadm, `kubeadm.rs`), and then one step
//! per component, in the order a broken control plane comes back (etcd, the apiserver, the
//! admin credentials, the controller-manager, the scheduler, and the kubelet when its own
//! certificate has expired, `kubelet.rs`): each step its own journaled change with its own
//! proof (`proofs.rs`), so that a step that fails is rolled back alone and the steps before it
//! stay renewed and proved.
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use serde::Serialize;

use crate::certs::catalogue::{Authority, Entry, KubeletFile, LEAVES, Location, Pickup};
use crate::certs::reissue::reissue;
use crate::change::plan::{Action, Plan, PlannedWrite};
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
    pub method: Method,
}

/// Who re-issues the certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// This tool, from the CA keys on the node, kubeadm's way.
    Native,
    /// The real `kubeadm certs renew NAME --config FILE`.
    Kubeadm,
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
    /// Known from the plan when this tool issues it; read back after kubeadm wrote it.
    pub new: Option<CertFacts>,
    /// The CA ends before the period would: the new certificate ends with it.
    pub capped_to_ca: bool,
    pub how_picked_up: &'static str,
    #[serde(skip)]
    entry: &'static Entry,
}

impl Renewal {
    /// The renewed certificate as it is on the node now (after the step wrote it).
    pub fn read_back(&mut self, layout: &NodeLayout) {
        if let Ok(Some(current)) = current(layout, self.entry)
            && let Ok(facts) = issue::facts(&current.der)
        {
            self.new = Some(facts);
        }
    }
}

/// One step: a component's certificates, written and proved together.
pub struct Step {
    pub title: String,
    pub plan: Plan,
    pub renewals: Vec<Renewal>,
    /// What the proofs are planned from: planned again when the step runs, since the steps
    /// before it change what answers (an apiserver down for its etcd certificates serves again
    /// once etcd's are renewed).
    proof_basis: Vec<ProofInput>,
    timeout: Option<Duration>,
}

/// One certificate of a step, as its proof needs it.
struct ProofInput {
    entry: &'static Entry,
    old_der: Vec<u8>,
}

impl Step {
    /// The step as it is to run now: its proofs planned against the node as it is after the
    /// steps before it (the writes and the certificates issued stay those of the plan shown).
    pub fn planned_now(mut self, layout: &NodeLayout) -> Result<(Plan, Vec<Renewal>)> {
        let verify = proofs(
            layout,
            &self.title,
            &self.proof_basis,
            self.timeout,
            When::Starting,
        )?;
        match &mut self.plan.action {
            Action::Write {
                verify: planned, ..
            }
            | Action::External {
                verify: planned, ..
            } => *planned = verify,
            _ => {}
        }
        let proving = proof_line(&self.plan.action);
        if let Some(last) = self.plan.steps.last_mut() {
            *last = proving;
        }
        Ok((self.plan, self.renewals))
    }
}

/// A certificate `all` leaves alone, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub name: &'static str,
    pub why: String,
}

pub struct Renewals {
    pub steps: Vec<Step>,
    pub skipped: Vec<Skipped>,
    /// `--method kubeadm`: the configuration kubeadm is given.
    pub kubeadm: Option<kubeadm::Configuration>,
    pub validity: Duration,
    pub validity_source: ValiditySource,
    /// The CAs' expiry, reported and never rotated.
    pub authorities: Vec<(&'static str, String)>,
}

/// The order a control plane comes back in, and which certificates each step renews.
const STEPS: [(&str, &[&str]); 6] = [
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
    // Before anything that stops a static pod: only a running kubelet starts one again.
    ("kubelet", &["kubelet-client"]),
    ("admin credentials", &["admin.conf", "super-admin.conf"]),
    ("kube-controller-manager", &["controller-manager.conf"]),
    ("kube-scheduler", &["scheduler.conf"]),
];

use crate::certs::prove::{RELOAD_BUDGET as RELOAD_WITHIN, RESTART_BUDGET as RESTART_WITHIN};

/// A CA that ends sooner than this cannot sign a renewal worth having: rotate it first.
const CA_MARGIN: time::Duration = time::Duration::days(1);

pub mod kubeadm;
mod kubelet;
mod proofs;

pub use proofs::of_restored_files;
use proofs::{When, proof_line, proofs};

pub fn plan(layout: &NodeLayout, ui: &Ui, request: &Request) -> Result<Renewals> {
    let selected = select(&request.names)?;
    // The kubeadm-config ConfigMap (an API call, bounded): asked at most once, and only where
    // --config does not answer first.
    let asked = std::cell::OnceCell::new();
    let cluster = || asked.get_or_init(|| cluster_configuration(layout)).clone();
    let kubeadm = match request.method {
        Method::Native => None,
        Method::Kubeadm => {
            if request.validity.is_some() {
                return Err(Error::Usage(
                    "--validity with --method kubeadm: kubeadm takes the period from its configuration; \
                     set certificateValidityPeriod in --config FILE, or use --method native"
                        .into(),
                ));
            }
            kubeadm::require_kubeadm()?;
            Some(kubeadm::Configuration::choose(
                layout,
                request.config.as_ref(),
                &cluster,
            )?)
        }
    };
    let (validity, validity_source) = validity(layout, ui, request, &cluster)?;
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
    let mut skipped = Vec::new();
    for (title, names) in STEPS {
        let mut writes = Vec::new();
        let mut programs = Vec::new();
        let mut renewals = Vec::new();
        let mut issued = Vec::new();
        let mut proof_basis = Vec::new();
        for entry in selected.iter().filter(|e| names.contains(&e.name)) {
            // Asked for by name, not by `all`: refused where `all` would skip it.
            let named = request.names.iter().any(|n| n == entry.name);
            let Some(current) = current(layout, entry)? else {
                if named {
                    return Err(Error::Refused(format!(
                        "{} is not on this node ({}): nothing to renew",
                        entry.name,
                        layout.node_path(&path_of(layout, entry))
                    )));
                }
                continue;
            };
            if entry.location == Location::Kubelet(KubeletFile::Client)
                && let Some(why) = kubelet::left_alone(layout, &current, named, kubeadm.is_some())?
            {
                ui.warn(format!("{}: skipped: {why}", entry.name));
                skipped.push(Skipped {
                    name: entry.name,
                    why,
                });
                continue;
            }
            let Some((_, ca_pem, ca_key, ca_not_after)) =
                cas.iter().find(|(a, ..)| *a == entry.authority)
            else {
                // With `all`, as kubeadm does in external-CA mode: skipped, and said; a name
                // asked for by itself is refused.
                if !named {
                    let why = format!(
                        "signed by {}, whose key is not on this node (an external CA): renew it where that key is kept",
                        entry.authority.name()
                    );
                    ui.warn(format!("{}: skipped: {why}", entry.name));
                    skipped.push(Skipped {
                        name: entry.name,
                        why,
                    });
                    continue;
                }
                return Err(Error::Refused(format!(
                    "{} is signed by {}, whose key is not on this node (an external CA): renew it where that key is kept",
                    entry.name,
                    entry.authority.name()
                )));
            };
            if *ca_not_after < (now + CA_MARGIN).unix_timestamp() {
                return Err(Error::Refused(format!(
                    "{} would be signed by {}, which ends {}: a renewal under it would not outlive it. \
                     Rotate the CA by hand first (kubeadm's \"manual rotation of CA certificates\"); this tool never rotates a CA",
                    entry.name,
                    entry.authority.name(),
                    crate::runtime::clock::rfc3339(*ca_not_after)
                )));
            }
            let (new, capped_to_ca) = match &kubeadm {
                // kubeadm writes it: what it wrote is read back after the step.
                Some(configuration) => {
                    writes.extend(current.files_kubeadm_rewrites());
                    programs.push(configuration.program(layout, entry.name));
                    (None, false)
                }
                None => {
                    let (facts, capped) = reissued(
                        layout,
                        entry,
                        &current,
                        (ca_pem, ca_key, *ca_not_after),
                        now,
                        validity,
                        &mut writes,
                    )?;
                    issued.push(facts.clone());
                    (Some(facts), capped)
                }
            };
            renewals.push(Renewal {
                name: entry.name,
                path: layout.node_path(&path_of(layout, entry)),
                old_serial: current.serial.clone(),
                old_not_after: current.not_after.clone(),
                new,
                capped_to_ca,
                how_picked_up: picked_up(entry.pickup),
                entry,
            });
            proof_basis.push(ProofInput {
                entry,
                old_der: current.der,
            });
        }
        if renewals.is_empty() {
            continue;
        }
        let verify = proofs(layout, title, &proof_basis, request.timeout, When::Shown)?;
        let action = match &kubeadm {
            None => Action::Write { writes, verify },
            Some(_) => Action::External {
                programs: std::mem::take(&mut programs),
                files: writes,
                verify,
            },
        };
        let mut plan = Plan::new(
            "certs renew",
            format!("Renew the {title} certificates and prove them?"),
            action,
        );
        for r in &renewals {
            plan = plan.step(match (&r.new, &kubeadm) {
                (Some(new), _) => format!(
                    "re-issue {} ({}): serial {} (not after {}) -> {} (not after {}){}",
                    r.name,
                    r.path,
                    r.old_serial,
                    r.old_not_after,
                    new.serial,
                    new.not_after,
                    if r.capped_to_ca {
                        ", capped at the CA's expiry"
                    } else {
                        ""
                    }
                ),
                (None, Some(configuration)) => format!(
                    "kubeadm certs renew {} ({}, serial {}, not after {}) with the configuration {}",
                    r.name,
                    r.path,
                    r.old_serial,
                    r.old_not_after,
                    configuration.describe(layout)
                ),
                (None, None) => unreachable!("a native renewal knows its new certificate"),
            });
        }
        let proving = proof_line(&plan.action);
        plan = plan.step(proving);
        plan.certificates = issued;
        steps.push(Step {
            title: title.to_string(),
            plan,
            renewals,
            proof_basis,
            timeout: request.timeout,
        });
    }
    if steps.is_empty() {
        return Err(Error::Refused(
            "none of kubeadm's certificates is on this node: is it a control-plane node (or --root the right place)?".into(),
        ));
    }
    Ok(Renewals {
        steps,
        skipped,
        kubeadm,
        validity,
        validity_source,
        authorities,
    })
}

/// The certificate re-issued by this tool: its own subject, SANs, usages and key type, a new
/// key, signed by its CA and never past it; its writes (and kubelet.conf's, for the kubelet's
/// pair) added to `writes`. Returns its facts, and whether the CA's end capped it.
fn reissued(
    layout: &NodeLayout,
    entry: &Entry,
    current: &Current,
    (ca_pem, ca_key, ca_not_after): (&str, &Key, i64),
    now: time::OffsetDateTime,
    validity: Duration,
    writes: &mut Vec<PlannedWrite>,
) -> Result<(CertFacts, bool)> {
    let key = Key::generate(current.key_type)
        .map_err(|e| Error::Failed(format!("a new key for {}: {e}", entry.name)))?;
    let wanted_end = now + validity;
    let ca_end = time::OffsetDateTime::from_unix_timestamp(ca_not_after)
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
    let facts =
        issue::facts(&new.der).map_err(|e| Error::Failed(format!("{}: {e}", entry.name)))?;
    writes.extend(current.writes(&new.pem, &key)?);
    if entry.location == Location::Kubelet(KubeletFile::Client) {
        writes.extend(kubelet::conf_write(layout)?);
    }
    Ok((facts, capped))
}

/// What `certs renew` renews: kubeadm's certificates, by kubeadm's names, and the kubelet's
/// client certificate (which kubeadm leaves to the kubelet, and to its documented by-hand
/// steps once it has expired).
fn renewable(entry: &Entry) -> bool {
    entry.kubeadm_renews || entry.location == Location::Kubelet(KubeletFile::Client)
}

fn select(names: &[String]) -> Result<Vec<&'static Entry>> {
    let renewable: Vec<&'static Entry> = LEAVES.iter().filter(|e| renewable(e)).collect();
    if names.is_empty() || names.iter().any(|n| n == "all") {
        return Ok(renewable);
    }
    for name in names {
        if !renewable.iter().any(|e| e.name == name) {
            return Err(Error::Usage(format!(
                "{}: not a certificate kubeadm-recover renews; give `all` or some of: {}",
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
    /// The kubelet's rotating client pair: certificate and key in one file.
    KubeletPair { path: PathBuf, old: Vec<u8> },
}

impl Current {
    /// The files `kubeadm certs renew` rewrites for this certificate, with their bytes now (the
    /// transaction backs them up and puts them back).
    fn files_kubeadm_rewrites(&self) -> Vec<PlannedWrite> {
        let file = |path: &PathBuf, old: Option<&Vec<u8>>| PlannedWrite {
            path: path.clone(),
            old: old.cloned(),
            new: Vec::new(),
            ownership: None,
        };
        match &self.place {
            Place::Pki {
                cert,
                cert_old,
                key,
                key_old,
            } => vec![file(cert, Some(cert_old)), file(key, key_old.as_ref())],
            Place::Kubeconfig { path, text, .. } => vec![PlannedWrite {
                path: path.clone(),
                old: Some(text.clone().into_bytes()),
                new: Vec::new(),
                ownership: None,
            }],
            // kubeadm does not renew the kubelet's certificate: never planned for it.
            Place::KubeletPair { path, old } => vec![file(path, Some(old))],
        }
    }

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
            Place::KubeletPair { path, old } => vec![PlannedWrite {
                path: path.clone(),
                old: Some(old.clone()),
                new: format!("{cert_pem}{}", key.pem).into_bytes(),
                ownership: None,
            }],
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
            // The user the component authenticates as: the current context's. Without one,
            // the only user with an embedded certificate; never a guess among several.
            let current = crate::credentials::kubeconfig::current_user_name(&text);
            let embedded: Vec<_> = users.into_iter().filter(|u| u.cert_b64.is_some()).collect();
            let user = match current {
                Some(name) => embedded.into_iter().find(|u| u.name == name).ok_or_else(|| {
                    unreadable(
                        &path,
                        format!(
                            "the current context's user {} has no embedded client certificate to renew",
                            crate::ui::escape(&name)
                        ),
                    )
                })?,
                None if embedded.len() == 1 => embedded.into_iter().next().expect("one"),
                None if embedded.is_empty() => {
                    return Err(unreadable(
                        &path,
                        "no embedded client certificate to renew".into(),
                    ));
                }
                None => {
                    return Err(unreadable(
                        &path,
                        format!(
                            "no current-context, and {} users hold a client certificate: set current-context to the one the component uses",
                            embedded.len()
                        ),
                    ));
                }
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
        Location::Kubelet(KubeletFile::Client) => {
            // kubelet-client-current.pem is the kubelet's link to its latest pair (certificate
            // then key, one file). The link stays: the kubelet's own next rotation writes a new
            // file and moves it, and refuses a "current" that is not a link. The file it points
            // at, inside the root, is what is rewritten.
            let link = path_of(layout, entry);
            let path = match layout.fs().resolved(&link) {
                Ok(path) => path,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(unreadable(&link, e.to_string())),
            };
            // Only ever one of the kubelet's own pairs, beside the link.
            let beside = path.parent() == link.parent()
                && path.file_name().is_some_and(|name| {
                    let name = name.to_string_lossy();
                    name.starts_with("kubelet-client-") && name.ends_with(".pem")
                });
            if !beside {
                return Err(unreadable(
                    &link,
                    format!(
                        "it points at {}, not at a kubelet-client-*.pem beside it: not renewed through it",
                        layout.node_path(&path)
                    ),
                ));
            }
            let old = layout
                .fs()
                .read(&path)
                .map_err(|e| unreadable(&path, e.to_string()))?;
            (
                String::from_utf8_lossy(&old).into_owned(),
                Place::KubeletPair { path, old },
            )
        }
        Location::Kubelet(KubeletFile::Serving) => return Ok(None),
    };
    let der = crate::credentials::pem::certificates(&pem)
        .into_iter()
        .next()
        .ok_or_else(|| unreadable(&path_of(layout, entry), "no PEM CERTIFICATE block".into()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| unreadable(&path_of(layout, entry), format!("not a certificate: {e}")))?;
    // Its own key type and size (kubeadm's encryptionAlgorithm), never a default.
    let key_type = KeyType::of_public_key(cert.public_key()).ok_or_else(|| {
        unreadable(
            &path_of(layout, entry),
            "its key is of a type kubeadm never writes (kubeadm's are RSA-2048/3072/4096 and ECDSA-P256/P384): renew it by hand".into(),
        )
    })?;
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
fn validity(
    layout: &NodeLayout,
    ui: &Ui,
    request: &Request,
    cluster: &dyn Fn() -> Option<String>,
) -> Result<(Duration, ValiditySource)> {
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
    match cluster() {
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
        assert_eq!(select(&[]).unwrap().len(), 12);
        assert_eq!(select(&["all".into()]).unwrap().len(), 12);
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
    fn every_certificate_it_renews_belongs_to_one_step() {
        for entry in LEAVES.iter().filter(|e| renewable(e)) {
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
