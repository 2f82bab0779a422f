//! `admin-conf regenerate`, planned: each credential re-issued from the cluster CA with the
//! identity of the old certificate (or kubeadm's defaults), the copies that hold the old admin
//! certificate, a kubeconfig installed for a user; or the same done by `kubeadm certs renew`.
//! Reads the node, writes nothing: the executor carries the plan out.
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use secrecy::ExposeSecret;

use crate::change::plan::{self, CredentialCheck, Plan, PlannedWrite};
use crate::credentials::copies;
use crate::credentials::issue::{self, Kind, Subject};
use crate::credentials::kubeconfig::edit as kubeconfig_edit;
use crate::credentials::pki::KeyType;
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::node::NodeLayout;
use crate::node::fs::Ownership;
use crate::ui::Ui;

/// How the credentials are re-issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Native where the CA key is on the node, else kubeadm.
    Auto,
    /// Signed here with the CA key.
    Native,
    /// `kubeadm certs renew`.
    Kubeadm,
}

/// What was asked for.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub validity: Duration,
    /// admin.conf, super-admin.conf, or both.
    pub kinds: Vec<Kind>,
    /// `None`: the old certificate's key type (RSA 2048 when it cannot be read).
    pub key_type: Option<KeyType>,
    pub update_copies: bool,
    /// Further copies to look at, besides the usual places.
    pub copies: Vec<PathBuf>,
    pub install_for: Option<String>,
    pub no_verify: bool,
}

/// One credential to re-issue, planned.
pub struct Credential {
    pub kind: Kind,
    pub path: PathBuf,
    pub subject: Subject,
    pub subject_source: &'static str,
    pub key_type: KeyType,
    pub old_text: Option<String>,
    pub old_cert_b64: Option<String>,
    pub new_text: String,
    pub issued: Option<issue::Issued>,
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn resolve_method(layout: &NodeLayout, method: Method) -> Result<Method> {
    let ca_key = layout.cluster_ca_key();
    let kubeadm = crate::node::on_path("kubeadm").is_some();
    match method {
        Method::Auto if layout.fs().is_file(&ca_key) => Ok(Method::Native),
        Method::Auto if kubeadm => Ok(Method::Kubeadm),
        Method::Auto => Err(Error::Refused(format!(
            "{} is not on this node and kubeadm is not installed: run this on the control-plane node that holds the CA key",
            ca_key.display()
        ))),
        Method::Kubeadm if !kubeadm => Err(Error::Refused(
            "--method kubeadm needs `kubeadm` on PATH; it is not there. Use --method native (signs with the CA key on this node)".into(),
        )),
        other => Ok(other),
    }
}

/// What the apiserver manifest says about the cluster: 1.29 or later, and the server address.
fn cluster_facts(layout: &NodeLayout) -> (bool, Option<String>) {
    let manifest_text = layout
        .fs()
        .read_to_string(&layout.apiserver_manifest())
        .ok();
    let manifest = manifest_text
        .as_deref()
        .and_then(|t| Manifest::parse(t).ok());
    let v129 = match manifest.as_ref().and_then(Manifest::version) {
        Some((major, minor, _)) => (major, minor) >= (1, 29),
        None => layout.fs().exists(&layout.super_admin_conf()),
    };
    let server = manifest.as_ref().map(|m| {
        let (host, port) = m.probe_endpoint();
        m.advertise_endpoint.clone().map_or_else(
            || format!("https://{host}:{port}"),
            |ep| format!("https://{ep}"),
        )
    });
    (v129, server)
}

/// Kubeconfigs elsewhere on the node that hold the old admin certificate: only that user's
/// certificate and key change.
fn copy_writes(
    layout: &NodeLayout,
    ui: &Ui,
    options: &Request,
    admin: &Credential,
) -> Result<Vec<PlannedWrite>> {
    let issued = admin.issued.as_ref().expect("native plans are issued");
    let Some(old_cert) = &admin.old_cert_b64 else {
        ui.warn("the old admin certificate is unreadable, so copies of it cannot be recognised; --update-copies did nothing");
        return Ok(Vec::new());
    };
    let ca = issue::cluster_ca_der(layout);
    let mut writes = Vec::new();
    let admin_resolved = layout.fs().resolved(&admin.path).ok();
    for copy in copies::candidates(layout, &options.copies) {
        // A link to admin.conf (the usual ~/.kube/config) IS admin.conf, not a copy of it.
        if copy == admin.path || layout.fs().resolved(&copy).ok() == admin_resolved {
            continue;
        }
        let text = match layout.fs().read_to_string(&copy) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                // A copy behind a user's symlink, or in a directory others may write: root
                // does not follow it, and says so.
                ui.warn(format!(
                    "--update-copies left {} alone: {e}",
                    copy.display()
                ));
                continue;
            }
            Err(_) => continue,
        };
        let Ok(users) = kubeconfig_edit::user_credentials(&text) else {
            continue;
        };
        let mut new_text = text.clone();
        // The admin credential of THIS cluster, by identity: also a copy of an older one (a
        // second regenerate, a kill between two writes), never another cluster's admin.
        // ...and only a copy that holds the certificate's own key: a certificate is public, so
        // an entry with a copied certificate and a made-up key must not be handed a new
        // admin key (root writing it into a user's file would give them cluster-admin).
        for user in users.iter().filter(|u| {
            u.cert_b64.as_deref().is_some_and(|c| {
                (c == old_cert.as_str()
                    || issue::is_admin_certificate(c, Kind::Admin, ca.as_deref()))
                    && u.key_b64
                        .as_ref()
                        .is_some_and(|k| issue::key_matches(c, k.expose_secret()))
            })
        }) {
            new_text = kubeconfig_edit::replace_credential(
                &new_text,
                &user.name,
                &b64(&issued.cert_pem),
                &b64(&issued.key_pem),
            )
            .map_err(|e| Error::Refused(format!("{}: {e}", copy.display())))?;
        }
        if new_text != text {
            writes.push(PlannedWrite {
                path: copy,
                old: Some(text.into_bytes()),
                new: new_text.into_bytes(),
                ownership: None,
            });
        }
    }
    Ok(writes)
}

/// `--install-for USER`: ~USER/.kube/config when it does not exist yet.
fn install_write(
    layout: &NodeLayout,
    ui: &Ui,
    user: &str,
    admin: Option<&Credential>,
) -> Result<Option<(copies::Account, PlannedWrite)>> {
    let admin = admin.ok_or_else(|| {
        Error::Usage(
            "--install-for installs admin.conf: do not combine it with --only-super-admin".into(),
        )
    })?;
    let account = copies::account(layout, user).ok_or_else(|| {
        Error::Usage(format!(
            "no user {user:?} in {}",
            layout.path("/etc/passwd").display()
        ))
    })?;
    let home = copies::home_of(layout, &account)?;
    let target = home.join(".kube/config");
    match layout.fs().symlink_metadata(&target) {
        Ok(_) => {
            ui.warn(format!(
                "{} exists; --install-for leaves it alone (use --update-copies to update it)",
                target.display()
            ));
            return Ok(None);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        // A link or a directory others may write on the way: never followed as root.
        Err(e) => {
            return Err(Error::Refused(format!(
                "cannot install a kubeconfig for {user}: {e}\n  what to do: make ~{user}/.kube a real directory of {user}'s own, or copy admin.conf by hand"
            )));
        }
    }
    let write = PlannedWrite {
        path: target,
        old: None,
        new: admin.new_text.clone().into_bytes(),
        ownership: Some(Ownership {
            mode: 0o600,
            uid: account.uid,
            gid: account.gid,
        }),
    };
    Ok(Some((account, write)))
}

fn checks(credentials: &[Credential], no_verify: bool) -> plan::Verify {
    if no_verify {
        return plan::Verify::Nothing;
    }
    plan::Verify::Credentials(
        credentials
            .iter()
            .map(|c| CredentialCheck {
                file: c.kind.file_name(),
                path: c.path.clone(),
                subject: c.subject.clone(),
            })
            .collect(),
    )
}

/// What the plan was built from, for the report.
pub struct Regeneration {
    pub credentials: Vec<Credential>,
    pub copies_updated: Vec<String>,
    pub installed: Option<(copies::Account, PathBuf)>,
    pub native: bool,
}

/// kubeadm's admin user in a kubeconfig, found by what it is: the user whose client
/// certificate is this cluster's `kind` credential, else the user with kubeadm's name for it.
/// Never simply the current context's user: that may be an OIDC or token user someone added.
fn admin_user(
    text: &str,
    kind: Kind,
    ca: Option<&[u8]>,
) -> Option<kubeconfig_edit::UserCredential> {
    let users = kubeconfig_edit::user_credentials(text).ok()?;
    let by_certificate = users.iter().position(|u| {
        u.cert_b64
            .as_deref()
            .is_some_and(|c| issue::is_admin_certificate(c, kind, ca))
    });
    let by_name = || users.iter().position(|u| u.name == kind.user_name());
    by_certificate.or_else(by_name).map(|i| users[i].clone())
}

fn user_names(text: &str) -> String {
    let names: Vec<String> = kubeconfig_edit::user_credentials(text)
        .unwrap_or_default()
        .into_iter()
        .map(|u| u.name)
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// A credential shorter-lived than this would expire while the operator is still using it.
const SHORTEST_VALIDITY: std::time::Duration = std::time::Duration::from_secs(10 * 60);

fn check_validity(ui: &Ui, validity: std::time::Duration) -> Result<()> {
    if validity < SHORTEST_VALIDITY {
        return Err(Error::Usage(format!(
            "--validity {}s is too short to be of use: give at least 10m (e.g. 24h for a system:masters credential)",
            validity.as_secs()
        )));
    }
    if validity < std::time::Duration::from_secs(24 * 3600) {
        ui.warn(format!(
            "the new credential expires in {} minutes: plan to replace it before then",
            validity.as_secs() / 60
        ));
    }
    Ok(())
}

pub fn plan(layout: &NodeLayout, ui: &Ui, options: &Request) -> Result<(Plan, Regeneration)> {
    check_validity(ui, options.validity)?;
    let native = resolve_method(layout, options.method)? == Method::Native;
    let (v129, server) = cluster_facts(layout);
    let credentials = options
        .kinds
        .iter()
        .copied()
        .map(|kind| plan_credential(layout, kind, options, v129, server.as_deref(), native))
        .collect::<Result<Vec<_>>>()?;
    let mut regeneration = Regeneration {
        credentials,
        copies_updated: Vec::new(),
        installed: None,
        native,
    };
    let verify = checks(&regeneration.credentials, options.no_verify);
    let mut plan = if native {
        let writes = native_writes(layout, ui, options, &mut regeneration)?;
        let mut plan = Plan::new(
            "admin-conf regenerate",
            "write the new credentials?",
            plan::Action::Write { writes, verify },
        );
        plan.steps = plan_steps(
            layout,
            &regeneration.credentials,
            &regeneration.copies_updated,
            regeneration.installed.as_ref().map(|(_, p)| p),
        );
        plan
    } else {
        kubeadm_plan(layout, &regeneration.credentials, verify)
    };
    plan.certificates = regeneration
        .credentials
        .iter()
        .filter_map(|c| c.issued.as_ref().map(|i| i.facts.clone()))
        .collect();
    Ok((plan, regeneration))
}

/// The credentials themselves, then the copies and the installed kubeconfig.
fn native_writes(
    layout: &NodeLayout,
    ui: &Ui,
    options: &Request,
    regeneration: &mut Regeneration,
) -> Result<Vec<PlannedWrite>> {
    let mut writes: Vec<PlannedWrite> = regeneration
        .credentials
        .iter()
        .map(|c| PlannedWrite {
            path: c.path.clone(),
            old: c.old_text.clone().map(String::into_bytes),
            new: c.new_text.clone().into_bytes(),
            ownership: c.old_text.is_none().then_some(Ownership {
                mode: 0o600,
                uid: 0,
                gid: 0,
            }),
        })
        .collect();
    let admin = regeneration
        .credentials
        .iter()
        .find(|c| c.kind == Kind::Admin);
    if let (true, Some(admin)) = (options.update_copies, admin) {
        let copies = copy_writes(layout, ui, options, admin)?;
        regeneration.copies_updated = copies.iter().map(|w| layout.node_path(&w.path)).collect();
        writes.extend(copies);
    }
    if let Some(user) = &options.install_for
        && let Some((account, write)) = install_write(layout, ui, user, admin)?
        && !writes.iter().any(|w| w.path == write.path)
    {
        regeneration.installed = Some((account, write.path.clone()));
        writes.push(write);
    }
    Ok(writes)
}

/// `kubeadm certs renew` for each file, backed up first and verified after.
fn kubeadm_plan(layout: &NodeLayout, credentials: &[Credential], verify: plan::Verify) -> Plan {
    let files: Vec<&str> = credentials.iter().map(|c| c.kind.file_name()).collect();
    let command_line = format!("kubeadm certs renew {}", files.join(" "));
    // kubeadm has no flag for the kubeconfig directory (it is always /etc/kubernetes): on a
    // sandbox root it runs chrooted there, with --rootfs, as it would on that node.
    let programs = files
        .iter()
        .map(|file| {
            let mut program: Vec<String> = vec![
                "kubeadm".into(),
                "certs".into(),
                "renew".into(),
                file.to_string(),
            ];
            if !layout.is_host() {
                program.push(format!("--rootfs={}", layout.root().display()));
            }
            program
        })
        .collect();
    let files = credentials
        .iter()
        .map(|c| PlannedWrite {
            path: c.path.clone(),
            old: c.old_text.clone().map(String::into_bytes),
            new: Vec::new(),
            ownership: None,
        })
        .collect();
    Plan::new(
        "admin-conf regenerate --method kubeadm",
        format!("run {command_line}?"),
        plan::Action::External {
            programs,
            files,
            verify,
        },
    )
    .step(command_line)
}

fn plan_credential(
    layout: &NodeLayout,
    kind: Kind,
    options: &Request,
    v129: bool,
    server: Option<&str>,
    issue_now: bool,
) -> Result<Credential> {
    let path = layout.kubeconfig(kind.file_name());
    let old_text = layout.fs().read_to_string(&path).ok();
    let ca = issue::cluster_ca_der(layout);
    let admin = match old_text.as_deref() {
        Some(text) => Some(admin_user(text, kind, ca.as_deref()).ok_or_else(|| {
            Error::Refused(format!(
                "{} holds no kubeadm {} user (a client certificate for {} from this cluster's CA, or a user \
                 named {}): users {}. Nothing was changed; to have a new file written in kubeadm's shape, \
                 move this one aside first",
                path.display(),
                kind.file_name(),
                kind.user_name(),
                kind.user_name(),
                user_names(text)
            ))
        })?),
        None => None,
    };
    let user = admin
        .as_ref()
        .map_or_else(|| kind.user_name().to_string(), |u| u.name.clone());
    let old_cert_b64 = admin.and_then(|u| u.cert_b64);
    let old = old_cert_b64.as_deref().and_then(issue::read_certificate);
    let (subject, subject_source, old_key_type) = match &old {
        Some((subject, key_type, _)) => (subject.clone(), "the old certificate", Some(*key_type)),
        None => (
            kind.default_subject(v129),
            "kubeadm's defaults (the old certificate is unreadable or missing)",
            None,
        ),
    };
    let key_type = options
        .key_type
        .or(old_key_type)
        .unwrap_or(KeyType::Rsa2048);
    if !issue_now {
        return Ok(Credential {
            kind,
            path,
            subject,
            subject_source,
            key_type,
            old_text,
            old_cert_b64,
            new_text: String::new(),
            issued: None,
        });
    }
    let issued = issue::issue(
        layout,
        &layout.pki_dir(),
        &subject,
        key_type,
        options.validity,
    )
    .map_err(|e| Error::Refused(e.to_string()))?;
    let (cert_b64, key_b64) = (b64(&issued.cert_pem), b64(&issued.key_pem));
    let edited = old_text
        .as_deref()
        .filter(|_| old_cert_b64.is_some())
        .map(|t| kubeconfig_edit::replace_credential(t, &user, &cert_b64, &key_b64));
    let new_text = match edited {
        Some(Ok(text)) => text,
        Some(Err(e)) => return Err(Error::Refused(format!("{}: {e}", path.display()))),
        None => {
            // No usable old file: write one shaped exactly like kubeadm's.
            let ca = layout
                .fs()
                .read_to_string(&layout.cluster_ca())
                .map_err(|e| Error::io("cannot read", &layout.cluster_ca(), e))?;
            let server = server.ok_or_else(|| Error::Refused("no usable old kubeconfig and no apiserver manifest to take the server address from".into()))?;
            crate::credentials::kubeconfig::edit::kubeadm_kubeconfig(
                &ca,
                server,
                &user,
                &issued.cert_pem,
                &issued.key_pem,
            )
        }
    };
    Ok(Credential {
        kind,
        path,
        subject,
        subject_source,
        key_type,
        old_text,
        old_cert_b64,
        new_text,
        issued: Some(issued),
    })
}

fn plan_steps(
    layout: &NodeLayout,
    credentials: &[Credential],
    copies: &[String],
    installed: Option<&PathBuf>,
) -> Vec<String> {
    let mut out = Vec::new();
    for c in credentials {
        let mut line = format!(
            "re-issue {} for {} (identity from {}), {:?} key",
            layout.node_path(&c.path),
            c.subject,
            c.subject_source,
            c.key_type
        );
        if let Some(i) = &c.issued {
            line.push_str(&format!(
                ", valid until {}{}",
                i.facts.not_after,
                if i.capped_to_ca {
                    " (the CA's own expiry)"
                } else {
                    ""
                }
            ));
        }
        out.push(line);
    }
    for c in copies {
        out.push(format!("update the copy in {c}"));
    }
    if let Some(path) = installed {
        out.push(format!("install {}", layout.node_path(path)));
    }
    out
}

pub fn warn_system_masters(ui: &Ui, plans: &[Credential]) {
    for p in plans {
        if let Some(i) = p.issued.as_ref().filter(|i| i.facts.system_masters) {
            let lifetime = crate::runtime::clock::parse_rfc3339(&i.facts.not_after)
                .zip(crate::runtime::clock::parse_rfc3339(&i.facts.not_before))
                .map(|(after, before)| after - before);
            // kubeadm back-dates not-before a little; a day plus that is "short-lived".
            let advice = if lifetime.is_some_and(|l| l <= 25 * 3600) {
                "Keep it offline"
            } else {
                "Keep it offline, or issue it short-lived (--validity 24h)"
            };
            ui.warn(format!(
                "{} is in system:masters: it bypasses RBAC and cannot be revoked before it expires ({}). {advice}",
                p.kind.file_name(),
                i.facts.not_after
            ));
        }
    }
}
